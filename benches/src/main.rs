//! `spanlake-bench`: Spanlake's end-to-end benchmarks (issue 5). Drives the
//! real `spanlake serve` binary and prints one Markdown table per section:
//!
//! 1. `ingest`: OTLP gRPC with N connections, spans/s, MB/s, server CPU
//!    seconds per million spans, peak RSS;
//! 2. `storage`: bytes per span and the share of each column group;
//! 3. `traceql`: a fixed query set over HTTP, cold and warm, bytes read;
//! 4. `duckdb`: the same questions as SQL in DuckDB over the same Parquet
//!    files, latency ratios; exits with status 2 if any answer differs;
//! 5. `trace-by-id`: latency with 1, 100 and 1000 blocks.
//!
//! Tables go to stdout and, as CSV plus `summary.md`, to `--out`; charts
//! (PNG) are drawn by `benches/python/charts.py` with matplotlib.
//! See `benches/README.md`.

mod duckdb;
mod ingest;
mod queries;
mod report;
mod server;
mod storage;
mod trace_by_id;
mod traceql;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Parser;
use spanlake_datasets::Size;

use crate::report::Table;
use crate::server::{BlockCut, Server};

/// The sections, in run order.
const SECTIONS: [&str; 5] = ["ingest", "storage", "traceql", "duckdb", "trace-by-id"];

/// Marker written into the data directory once a dataset is fully ingested.
const DATASET_MARKER: &str = "bench-dataset.json";

#[derive(Debug, Parser)]
#[command(name = "spanlake-bench", about = "Spanlake's end-to-end benchmarks: ingest, storage, TraceQL, versus DuckDB, trace by ID")]
struct Args {
    /// Dataset size (from the generator): tiny (~10k spans), small (~1M), medium (~10M).
    #[arg(long, default_value = "small")]
    size: Size,
    /// Comma-separated sections: ingest, storage, traceql, duckdb, trace-by-id.
    #[arg(long, default_value = "ingest,storage,traceql,duckdb,trace-by-id")]
    sections: String,
    /// Output directory for CSV, summary.md and charts [default: benches/results/<UTC date>/].
    #[arg(long)]
    out: Option<PathBuf>,
    /// The server binary [default: target/release/spanlake].
    #[arg(long)]
    spanlake: Option<PathBuf>,
    /// Data directory of the dataset; reused when it already holds the
    /// same dataset and `ingest` is not run [default: target/bench-data/<size>].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Concurrent OTLP gRPC connections while ingesting.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Warm runs per query.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Block counts of the trace-by-ID section.
    #[arg(long, default_value = "1,100,1000", value_delimiter = ',')]
    blocks: Vec<usize>,
    /// Spans of the trace-by-ID dataset (split over the blocks).
    #[arg(long, default_value_t = 100_000)]
    tbi_spans: u64,
    /// Trace-by-ID lookups per block count.
    #[arg(long, default_value_t = 200)]
    lookups: usize,
    /// Skip drawing the PNG charts.
    #[arg(long)]
    no_charts: bool,
}

/// The workspace root (the parent of `benches/`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

#[tokio::main]
async fn main() {
    match run(Args::parse()).await {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("spanlake-bench: error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Prints a table and keeps it for the summary.
fn emit(tables: &mut Vec<Table>, table: Table) {
    println!("{}", table.markdown());
    tables.push(table);
}

/// Runs the selected sections; returns the exit code (2: DuckDB disagreed).
async fn run(args: Args) -> Result<i32> {
    let size = args.size;
    let sections: Vec<&str> = args.sections.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if let Some(unknown) = sections.iter().find(|s| !SECTIONS.contains(s)) {
        bail!("unknown section {unknown:?}: expected some of {}", SECTIONS.join(", "));
    }
    let wants = |s: &str| sections.contains(&s);
    let root = workspace_root();
    let binary = args.spanlake.clone().unwrap_or_else(|| root.join("target/release/spanlake"));
    let data = args.data.clone().unwrap_or_else(|| root.join("target/bench-data").join(size.name()));
    let out = args.out.clone().unwrap_or_else(|| root.join("benches/results").join(chrono::Utc::now().format("%Y-%m-%d").to_string()));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut tables = Vec::new();
    let mut exit_code = 0;
    let dataset = size.name();

    if ["ingest", "storage", "traceql", "duckdb"].iter().any(|s| wants(s)) {
        let marker = data.join(DATASET_MARKER);
        let marker_text = format!("{{\"size\": \"{dataset}\", \"seed\": {}}}\n", ingest::SEED);
        let mut server = if wants("ingest") || std::fs::read_to_string(&marker).ok().as_deref() != Some(marker_text.as_str()) {
            eprintln!("spanlake-bench: ingesting {dataset} into {}", data.display());
            let (server, result) = ingest::ingest(&binary, &data, size, args.connections).await?;
            std::fs::write(&marker, &marker_text).with_context(|| format!("writing {}", marker.display()))?;
            if wants("ingest") {
                emit(&mut tables, ingest::table(size, &result));
            }
            server
        } else {
            eprintln!("spanlake-bench: reusing {dataset} in {}", data.display());
            Server::start(&binary, &data, BlockCut::Default)?
        };

        if wants("storage") {
            emit(&mut tables, storage::table(dataset, &storage::measure(&data)?));
        }

        if wants("traceql") || wants("duckdb") {
            let range = traceql::DataRange::of_blocks(&data)?;
            let queries = queries::query_set(range);
            let (restarted, spanlake_runs) = traceql::run(server, &queries, args.runs, range).await?;
            server = restarted;
            if wants("traceql") {
                emit(&mut tables, traceql::table(dataset, &queries, &spanlake_runs));
            }
            if wants("duckdb") {
                let python = duckdb::ensure_venv()?;
                let files = server::parquet_files(&data)?;
                let duckdb_runs = duckdb::run(&python, &files, &queries, args.runs)?;
                emit(&mut tables, duckdb::table(dataset, &spanlake_runs, &duckdb_runs));
                let disagreements = duckdb::disagreements(&spanlake_runs, &duckdb_runs.answers);
                if !disagreements.is_empty() {
                    let mut t = Table::new("DISAGREEMENTS: Spanlake and DuckDB answered differently", "disagreements", &["query", "difference"]);
                    for (name, difference) in disagreements {
                        t.row(vec![name, difference]);
                    }
                    emit(&mut tables, t);
                    exit_code = 2;
                }
            }
        }
        drop(server);
    }

    if wants("trace-by-id") {
        let mut runs = Vec::new();
        for &blocks in &args.blocks {
            let dir = data.with_file_name(format!("trace-by-id-{blocks}"));
            eprintln!("spanlake-bench: trace by ID with {blocks} blocks in {}", dir.display());
            runs.push(trace_by_id::run(&binary, &dir, args.tbi_spans, blocks, args.lookups).await?);
        }
        emit(&mut tables, trace_by_id::table(&runs));
    }

    write_outputs(&out, &tables, dataset, !args.no_charts)?;
    if exit_code != 0 {
        eprintln!("spanlake-bench: FAILED: Spanlake and DuckDB disagree (see the DISAGREEMENTS table)");
    }
    Ok(exit_code)
}

/// Writes each table's CSV, `summary.md`, and the charts.
fn write_outputs(out: &Path, tables: &[Table], dataset: &str, charts: bool) -> Result<()> {
    let mut summary = format!(
        "# Spanlake benchmarks\n\n{} UTC, dataset `{dataset}`, machine: {}\n\n",
        chrono::Utc::now().format("%Y-%m-%d %H:%M"),
        report::machine()
    );
    for table in tables {
        table.write_csv(out)?;
        summary.push_str(&table.markdown());
        summary.push('\n');
    }
    let path = out.join("summary.md");
    std::fs::write(&path, summary).with_context(|| format!("writing {}", path.display()))?;
    if charts && !tables.is_empty() {
        let python = duckdb::ensure_venv()?;
        let script = duckdb::python_dir().join("charts.py");
        let status = Command::new(python).arg(&script).arg(out).status().with_context(|| format!("running {}", script.display()))?;
        if !status.success() {
            bail!("{} failed: {status}", script.display());
        }
    }
    eprintln!("spanlake-bench: results in {}", out.display());
    Ok(())
}
