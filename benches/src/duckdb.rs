//! Section 4, versus DuckDB: the hand-written SQL of the query set run by
//! DuckDB (Python, `benches/python/duckdb_runner.py`, in the venv made by
//! `benches/python/ensure_venv.sh`) over the very same Parquet files; the
//! answers must agree with Spanlake's.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::queries::{Answer, BenchQuery, Kind, SEARCH_LIMIT};
use crate::report::{Table, ms, quantile};
use crate::traceql::QueryRun;

/// `benches/python`.
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Makes sure the bench venv exists (installing duckdb and matplotlib on
/// first use) and returns its python.
pub fn ensure_venv() -> Result<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv-bench");
    let script = python_dir().join("ensure_venv.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(&venv)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!("{} failed: {}", script.display(), output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let python = stdout.lines().last().context("ensure_venv.sh printed no python")?.trim().to_owned();
    Ok(PathBuf::from(python))
}

#[derive(Deserialize)]
struct RunnerOutput {
    duckdb: String,
    results: Vec<RunnerResult>,
}

#[derive(Deserialize)]
struct RunnerResult {
    name: String,
    cold_ms: f64,
    warm_ms: Vec<f64>,
    rows: Vec<Vec<Option<String>>>,
}

/// DuckDB's runs of the query set.
pub struct DuckDbRuns {
    /// DuckDB's version.
    pub version: String,
    /// One run of each query's `sql` (the answer Spanlake gives).
    pub answers: Vec<QueryRun>,
    /// One run of each query's `ids_sql`, when it has one.
    pub ids_only: Vec<Option<QueryRun>>,
}

/// Runs the SQL of `queries` (`sql`, then `ids_sql`) with DuckDB over `files`.
pub fn run(python: &Path, files: &[PathBuf], queries: &[BenchQuery], runs: usize) -> Result<DuckDbRuns> {
    let ids_name = |q: &BenchQuery| format!("{} (ids only)", q.name);
    let mut specs: Vec<serde_json::Value> = queries.iter().map(|q| serde_json::json!({"name": q.name, "sql": q.sql})).collect();
    specs.extend(queries.iter().filter_map(|q| q.ids_sql.as_ref().map(|sql| serde_json::json!({"name": ids_name(q), "sql": sql}))));
    let spec = serde_json::json!({
        "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "runs": runs,
        "queries": specs,
    });
    let script = python_dir().join("duckdb_runner.py");
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("running {}", script.display()))?;
    child.stdin.take().context("runner stdin")?.write_all(spec.to_string().as_bytes()).context("writing to the DuckDB runner")?;
    let output = child.wait_with_output().context("waiting for the DuckDB runner")?;
    if !output.status.success() {
        bail!("{} failed: {}", script.display(), output.status);
    }
    let parsed: RunnerOutput = serde_json::from_slice(&output.stdout).context("parsing the DuckDB runner's output")?;
    let mut by_name: BTreeMap<String, RunnerResult> = parsed.results.into_iter().map(|r| (r.name.clone(), r)).collect();
    let mut take = |name: &str| by_name.remove(name).with_context(|| format!("the DuckDB runner did not run {name:?}"));
    let mut answers = Vec::new();
    let mut ids_only = Vec::new();
    for query in queries {
        answers.push(query_run(query, take(query.name)?));
        ids_only.push(match query.ids_sql {
            Some(_) => Some(query_run(query, take(&ids_name(query))?)),
            None => None,
        });
    }
    Ok(DuckDbRuns { version: parsed.duckdb, answers, ids_only })
}

/// One query's runner result as a run: its timings and its answer.
fn query_run(query: &BenchQuery, r: RunnerResult) -> QueryRun {
    let duration = |ms: f64| Duration::from_secs_f64(ms / 1e3);
    let answer = match query.kind {
        Kind::Search => Answer::Traces(r.rows.iter().filter_map(|row| row.first().cloned().flatten()).collect::<BTreeSet<_>>()),
        Kind::Metrics => {
            let mut counts = BTreeMap::new();
            for row in &r.rows {
                let label = row.first().cloned().flatten().unwrap_or_default();
                let count = row.get(1).cloned().flatten().and_then(|c| c.parse::<u64>().ok()).unwrap_or(0);
                *counts.entry(label).or_default() += count;
            }
            Answer::Counts(counts)
        }
    };
    QueryRun {
        name: r.name,
        cold: duration(r.cold_ms),
        warm: r.warm_ms.into_iter().map(duration).collect(),
        cold_read_bytes: None,
        warm_read_bytes: None,
        answer,
    }
}

/// Queries whose answers differ: (name, how).
pub fn disagreements(spanlake: &[QueryRun], duckdb: &[QueryRun]) -> Vec<(String, String)> {
    spanlake
        .iter()
        .zip(duckdb)
        .filter_map(|(s, d)| {
            let difference = s.answer.difference(&d.answer);
            (!difference.is_empty()).then(|| (s.name.clone(), difference))
        })
        .collect()
}

/// The comparison table: latencies and Spanlake/DuckDB ratios.
pub fn table(dataset: &str, spanlake: &[QueryRun], duckdb: &DuckDbRuns) -> Table {
    let mut t = Table::new(
        "Spanlake versus DuckDB (same Parquet files)",
        "versus_duckdb",
        &[
            "dataset",
            "query",
            "results",
            "agree",
            "Spanlake warm median ms",
            "DuckDB warm median ms",
            "ratio warm",
            "Spanlake cold ms",
            "DuckDB cold ms",
            "ratio cold",
            "DuckDB ids only warm median ms",
            "ratio warm vs ids only",
        ],
    );
    let ratio = |a: Duration, b: Duration| format!("{:.2}", a.as_secs_f64() / b.as_secs_f64().max(1e-9));
    for ((s, d), ids) in spanlake.iter().zip(&duckdb.answers).zip(&duckdb.ids_only) {
        let (sw, dw) = (quantile(&s.warm, 0.5), quantile(&d.warm, 0.5));
        let ids_warm = ids.as_ref().map(|ids| quantile(&ids.warm, 0.5));
        t.row(vec![
            dataset.to_owned(),
            s.name.clone(),
            s.answer.size().to_string(),
            match (&s.answer, s.answer.difference(&d.answer).is_empty()) {
                (Answer::CappedTraces(_), true) => "yes (capped)".to_owned(),
                (_, true) => "yes".to_owned(),
                (_, false) => "**NO**".to_owned(),
            },
            ms(sw),
            ms(dw),
            ratio(sw, dw),
            ms(s.cold),
            ms(d.cold),
            ratio(s.cold, d.cold),
            ids_warm.map(ms).unwrap_or_default(),
            ids_warm.map(|i| ratio(sw, i)).unwrap_or_default(),
        ]);
    }
    t.notes.push(format!(
        "DuckDB {} (Python, in process, all cores, rows fetched into Python) against Spanlake over HTTP (JSON answer included). \
         Both answer the same question: the {SEARCH_LIMIT} most recent matching traces with what Tempo's search answer carries \
         (root service and name, start, duration, spansets with their matched count and most recent spans, per-service counts). \
         ratio = Spanlake / DuckDB: below 1 is Spanlake faster; the target is ≤ 1.0 for every query. \
         \"ids only\": DuckDB answering with the matching trace ids alone, for reference. \
         \"capped\": more traces matched than one answer carries; both answered the most recent ones.",
        duckdb.version
    ));
    t
}
