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

use crate::queries::{Answer, BenchQuery, Kind};
use crate::report::{Table, ms, quantile};
use crate::traceql::{QueryRun, SEARCH_LIMIT};

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

/// Runs the SQL of `queries` with DuckDB over `files`; returns its version
/// and one run per query.
pub fn run(python: &Path, files: &[PathBuf], queries: &[BenchQuery], runs: usize) -> Result<(String, Vec<QueryRun>)> {
    let spec = serde_json::json!({
        "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        "runs": runs,
        "queries": queries.iter().map(|q| serde_json::json!({"name": q.name, "sql": q.sql})).collect::<Vec<_>>(),
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
    let duration = |ms: f64| Duration::from_secs_f64(ms / 1e3);
    let results = queries
        .iter()
        .zip(parsed.results)
        .map(|(query, r)| {
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
        })
        .collect();
    Ok((parsed.duckdb, results))
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
pub fn table(dataset: &str, version: &str, spanlake: &[QueryRun], duckdb: &[QueryRun]) -> Table {
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
        ],
    );
    let ratio = |a: Duration, b: Duration| format!("{:.2}", a.as_secs_f64() / b.as_secs_f64().max(1e-9));
    for (s, d) in spanlake.iter().zip(duckdb) {
        let (sw, dw) = (quantile(&s.warm, 0.5), quantile(&d.warm, 0.5));
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
        ]);
    }
    t.notes.push(format!(
        "DuckDB {version} (Python, in process, all cores) against Spanlake over HTTP (JSON answer included). \
         ratio = Spanlake / DuckDB: below 1 is Spanlake faster; the target is ≤ 1.0 for every query. \
         \"capped\": more traces matched than one search answer carries (limit {SEARCH_LIMIT}); Spanlake answered the most recent \
         ones and DuckDB found all of them (and more), so the two did different work."
    ));
    t
}
