//! Section 3, TraceQL: every query of the set run by Spanlake over HTTP —
//! once cold (right after a server restart) and N times warm — with the
//! latency and the bytes the server read (`rchar` of its process) per run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::queries::{Answer, BenchQuery, Kind, SEARCH_LIMIT, SPANS_PER_SPANSET};
use crate::report::{Table, mib, ms, quantile};
use crate::server::{Server, blocks_dir};

/// The measurements of one query by one engine.
#[derive(Debug, Clone)]
pub struct QueryRun {
    /// Query name.
    pub name: String,
    /// First run (after a restart / in a fresh database).
    pub cold: Duration,
    /// The warm runs.
    pub warm: Vec<Duration>,
    /// Bytes read during the cold run, when known.
    pub cold_read_bytes: Option<u64>,
    /// Bytes read during the last warm run, when known.
    pub warm_read_bytes: Option<u64>,
    /// The answer of the last run.
    pub answer: Answer,
}

/// Time range of the dataset, for the metrics query.
#[derive(Debug, Clone, Copy)]
pub struct DataRange {
    /// Earliest span start, Unix ns, rounded down to the second.
    pub start_unix_nano: i64,
    /// Latest span end, Unix ns, rounded up to the second, plus one second.
    pub end_unix_nano: i64,
}

impl DataRange {
    /// From the `meta.json` of every block under `data_dir`.
    pub fn of_blocks(data_dir: &Path) -> Result<DataRange> {
        let dir = blocks_dir(data_dir);
        let (mut start, mut end) = (i64::MAX, i64::MIN);
        for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path().join("meta.json");
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let meta: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            let field = |k: &str| meta[k].as_i64().with_context(|| format!("{k} in {}", path.display()));
            start = start.min(field("min_start_unix_nano")?);
            end = end.max(field("max_end_unix_nano")?);
        }
        if start > end {
            bail!("no blocks under {}", dir.display());
        }
        const S: i64 = 1_000_000_000;
        Ok(DataRange { start_unix_nano: start / S * S, end_unix_nano: (end / S + 2) * S })
    }

    /// A whole-second step giving at most ~100 points.
    pub fn step_seconds(&self) -> i64 {
        ((self.end_unix_nano - self.start_unix_nano) / 100 / 1_000_000_000).max(1)
    }
}

/// Runs `query` once against `server`; returns its answer.
async fn ask(server: &Server, query: &BenchQuery, range: DataRange) -> Result<Answer> {
    match query.kind {
        Kind::Search => {
            let params = [("q", query.traceql.to_owned()), ("limit", SEARCH_LIMIT.to_string()), ("spss", SPANS_PER_SPANSET.to_string())];
            let json = server.get_json("/api/search", &params).await?;
            let traces: BTreeSet<String> = json["traces"]
                .as_array()
                .with_context(|| format!("no traces in the answer to {}", query.traceql))?
                .iter()
                .filter_map(|t| t["traceID"].as_str().map(|id| format!("{id:0>32}")))
                .collect();
            if traces.len() >= SEARCH_LIMIT {
                return Ok(Answer::CappedTraces(traces));
            }
            Ok(Answer::Traces(traces))
        }
        Kind::Metrics => {
            let params = [
                ("q", query.traceql.to_owned()),
                ("start", range.start_unix_nano.to_string()),
                ("end", range.end_unix_nano.to_string()),
                ("step", format!("{}s", range.step_seconds())),
            ];
            let json = server.get_json("/api/metrics/query_range", &params).await?;
            let mut counts = BTreeMap::new();
            for series in json["series"].as_array().with_context(|| format!("no series in the answer to {}", query.traceql))? {
                let label = series["labels"][0]["value"]["stringValue"].as_str().unwrap_or("").to_owned();
                let total: f64 = series["samples"].as_array().into_iter().flatten().filter_map(|s| s["value"].as_f64()).sum();
                *counts.entry(label).or_default() += total.round() as u64;
            }
            Ok(Answer::Counts(counts))
        }
    }
}

/// Runs `query` once, timing it and counting the server's reads.
async fn timed(server: &Server, query: &BenchQuery, range: DataRange) -> Result<(Duration, u64, Answer)> {
    let before = server.proc_stats()?.read_bytes;
    let started = Instant::now();
    let answer = ask(server, query, range).await.with_context(|| format!("query {:?}", query.name))?;
    let elapsed = started.elapsed();
    let read = server.proc_stats()?.read_bytes.saturating_sub(before);
    Ok((elapsed, read, answer))
}

/// Runs every query cold (after a restart) and `runs` times warm; returns
/// the server, restarted along the way.
pub async fn run(mut server: Server, queries: &[BenchQuery], runs: usize, range: DataRange) -> Result<(Server, Vec<QueryRun>)> {
    let mut results = Vec::new();
    for query in queries {
        server = server.restart()?;
        let (cold, cold_read, mut answer) = timed(&server, query, range).await?;
        let mut warm = Vec::with_capacity(runs);
        let mut warm_read = 0;
        for _ in 0..runs {
            let (elapsed, read, a) = timed(&server, query, range).await?;
            warm.push(elapsed);
            warm_read = read;
            answer = a;
        }
        eprintln!("spanlake-bench: {:<28} cold {:>8} ms, warm median {:>8} ms, {} results", query.name, ms(cold), ms(quantile(&warm, 0.5)), answer.size());
        results.push(QueryRun {
            name: query.name.to_owned(),
            cold,
            warm,
            cold_read_bytes: Some(cold_read),
            warm_read_bytes: Some(warm_read),
            answer,
        });
    }
    Ok((server, results))
}

/// The TraceQL table.
pub fn table(dataset: &str, queries: &[BenchQuery], runs: &[QueryRun]) -> Table {
    let mut t = Table::new(
        "TraceQL over HTTP (Spanlake)",
        "traceql",
        &["dataset", "query", "TraceQL", "results", "cold ms", "warm median ms", "warm p95 ms", "read MiB cold", "read MiB warm"],
    );
    for (query, run) in queries.iter().zip(runs) {
        t.row(vec![
            dataset.to_owned(),
            run.name.clone(),
            format!("`{}`", query.traceql.replace('|', "\\|")),
            run.answer.size().to_string(),
            ms(run.cold),
            ms(quantile(&run.warm, 0.5)),
            ms(quantile(&run.warm, 0.95)),
            run.cold_read_bytes.map(mib).unwrap_or_default(),
            run.warm_read_bytes.map(mib).unwrap_or_default(),
        ]);
    }
    t.notes.push(
        "results: matching traces (search, limit 100000, spss 1) or total count (metrics). Cold: first run after a server \
         restart (the OS page cache stays warm). Read: bytes the server process read (rchar), page-cache hits included."
            .to_owned(),
    );
    t
}
