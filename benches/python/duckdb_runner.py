"""Runs hand-written SQL with DuckDB over Spanlake's Parquet blocks.

Reads one JSON document on stdin:
  {"files": ["<data>/blocks/<tenant>/blocks/<id>/data.parquet", ...],
   "runs": N,
   "queries": [{"name": "...", "sql": "SELECT ... FROM spans ..."}, ...]}
and writes one JSON document on stdout:
  {"duckdb": "<version>",
   "results": [{"name": ..., "cold_ms": f, "warm_ms": [f, ...], "rows": [[...], ...]}, ...]}

`spans` is a view over the files. Each query gets a fresh in-memory
database (its first run is the cold one), then N warm runs; rows are those
of the last run, every value as a string.
"""

import json
import sys
import time

import duckdb


def run(con, sql):
    started = time.perf_counter()
    rows = con.execute(sql).fetchall()
    return (time.perf_counter() - started) * 1e3, rows


def main():
    spec = json.load(sys.stdin)
    files = ", ".join("'" + f.replace("'", "''") + "'" for f in spec["files"])
    results = []
    for query in spec["queries"]:
        con = duckdb.connect()
        con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet([{files}])")
        cold_ms, rows = run(con, query["sql"])
        warm_ms = []
        for _ in range(spec["runs"]):
            elapsed, rows = run(con, query["sql"])
            warm_ms.append(elapsed)
        con.close()
        results.append({
            "name": query["name"],
            "cold_ms": cold_ms,
            "warm_ms": warm_ms,
            "rows": [[None if v is None else str(v) for v in row] for row in rows],
        })
    json.dump({"duckdb": duckdb.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
