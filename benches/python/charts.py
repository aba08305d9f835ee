"""Draws the bench charts (PNG) from the CSV files spanlake-bench wrote.

Usage: charts.py OUT_DIR. Draws, for each CSV present:
  versus_duckdb.csv -> versus_duckdb.png (warm median latency per query, both engines, log scale)
  storage.csv       -> storage.png       (bytes per span by column group)
  trace_by_id.csv   -> trace_by_id.png   (median and p99 latency by block count)
"""

import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def rows(out, name):
    path = os.path.join(out, name + ".csv")
    if not os.path.exists(path):
        return None
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def save(fig, out, name):
    fig.tight_layout()
    fig.savefig(os.path.join(out, name + ".png"), dpi=110)
    plt.close(fig)


def versus_duckdb(out):
    data = rows(out, "versus_duckdb")
    if not data:
        return
    names = [r["query"] for r in data]
    spanlake = [float(r["Spanlake warm median ms"]) for r in data]
    duck = [float(r["DuckDB warm median ms"]) for r in data]
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(names) + 1.5))
    ys = range(len(names))
    ax.barh([y + 0.2 for y in ys], spanlake, height=0.4, label="Spanlake (HTTP)")
    ax.barh([y - 0.2 for y in ys], duck, height=0.4, label="DuckDB (SQL)")
    ax.set_yticks(list(ys), names)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("warm median latency, ms (log)")
    ax.set_title(f"TraceQL vs DuckDB, dataset {data[0]['dataset']}")
    ax.legend()
    save(fig, out, "versus_duckdb")


def storage(out):
    data = [r for r in (rows(out, "storage") or []) if r["group"] != "total"]
    if not data:
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.barh([r["group"] for r in data], [float(r["bytes/span"]) for r in data])
    ax.invert_yaxis()
    ax.set_xlabel("bytes per span")
    ax.set_title(f"Storage by column group, dataset {data[0]['dataset']}")
    save(fig, out, "storage")


def trace_by_id(out):
    data = rows(out, "trace_by_id")
    if not data:
        return
    blocks = [int(r["blocks"]) for r in data]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(blocks, [float(r["median ms"]) for r in data], marker="o", label="median")
    ax.plot(blocks, [float(r["p99 ms"]) for r in data], marker="o", label="p99")
    ax.set_xscale("log")
    ax.set_xlabel("blocks")
    ax.set_ylabel("latency, ms")
    ax.set_title("Trace by ID")
    ax.legend()
    save(fig, out, "trace_by_id")


def main():
    out = sys.argv[1]
    for chart in (versus_duckdb, storage, trace_by_id):
        chart(out)


if __name__ == "__main__":
    main()
