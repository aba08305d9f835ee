//! Section 5, trace by ID: one dataset written as 1, 100 or 1000 blocks
//! (its requests split into that many groups, `POST /flush` after each),
//! then `GET /api/traces/{id}` (protobuf, as Grafana asks) for traces
//! spread over every block, after a restart. Heads are cut at 24 MiB as
//! well, so one flush can give several blocks: `POST /compact` then merges
//! them when fewer blocks were asked for.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use spanlake_datasets::{GenConfig, Generator, span_count};

use crate::ingest::SEED;
use crate::report::{Table, ms, quantile};
use crate::server::{BlockCut, Server, parquet_files};

/// The latencies with one block count.
#[derive(Debug, Clone)]
pub struct TraceByIdRun {
    /// Blocks on disk.
    pub blocks: usize,
    /// Spans in them.
    pub spans: u64,
    /// First lookup after the restart.
    pub first: Duration,
    /// Every other lookup.
    pub lookups: Vec<Duration>,
}

/// Most spans per request (the generator's default; far below the gRPC
/// message limit).
const MAX_BATCH_SPANS: usize = 1000;

/// The dataset's requests, small enough that there are at least `2 * blocks`
/// of them, and every trace id, sorted.
fn requests(spans: u64, blocks: usize) -> Result<(Vec<ExportTraceServiceRequest>, Vec<Vec<u8>>)> {
    let batch_spans = (spans as usize / (2 * blocks)).clamp(1, MAX_BATCH_SPANS);
    let generator = Generator::new(GenConfig { spans, seed: SEED, batch_spans, ..GenConfig::default() })?;
    let requests: Vec<_> = generator.collect();
    let mut trace_ids = Vec::new();
    for span in requests.iter().flat_map(|r| &r.resource_spans).flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans) {
        if trace_ids.last() != Some(&span.trace_id) {
            trace_ids.push(span.trace_id.clone());
        }
    }
    trace_ids.sort();
    trace_ids.dedup();
    Ok((requests, trace_ids))
}

/// Writes about `spans` spans (to a trace boundary) as `blocks` blocks into a fresh server under `dir`,
/// restarts it and looks up `lookups` traces.
pub async fn run(binary: &Path, dir: &Path, spans: u64, blocks: usize, lookups: usize) -> Result<TraceByIdRun> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let (requests, trace_ids) = requests(spans, blocks)?;
    let spans: u64 = requests.iter().map(span_count).sum();
    let server = Server::start(binary, dir, BlockCut::FlushOnly)?;
    let mut client = TraceServiceClient::connect(format!("http://{}", server.otlp_grpc))
        .await
        .context("connecting to the OTLP gRPC receiver")?
        .max_encoding_message_size(usize::MAX);
    let groups = blocks.min(requests.len());
    let mut sent = 0;
    for group in 0..groups {
        let end = (group + 1) * requests.len() / groups;
        for request in &requests[sent..end] {
            client.export(request.clone()).await.context("OTLP export")?;
        }
        sent = end;
        server.flush().await?;
    }
    if parquet_files(dir)?.len() > blocks {
        server.compact().await?;
    }
    let on_disk = parquet_files(dir)?.len();
    let server = server.restart()?;

    let step = (trace_ids.len() / lookups.max(1)).max(1);
    let mut times = Vec::new();
    for trace_id in trace_ids.iter().step_by(step).take(lookups + 1) {
        let url = server.url(&format!("/api/traces/{}", hex::encode(trace_id)));
        let started = Instant::now();
        let response = server.client().get(&url).header("Accept", "application/protobuf").send().await.with_context(|| format!("GET {url}"))?;
        let status = response.status();
        let body = response.bytes().await.with_context(|| format!("reading GET {url}"))?;
        times.push(started.elapsed());
        if !status.is_success() || body.is_empty() {
            bail!("GET {url}: {status}, {} bytes: a generated trace was not found", body.len());
        }
    }
    let first = times.remove(0);
    Ok(TraceByIdRun { blocks: on_disk, spans, first, lookups: times })
}

/// The trace-by-ID table.
pub fn table(runs: &[TraceByIdRun]) -> Table {
    let mut t = Table::new(
        "Trace by ID (GET /api/traces/{id}, protobuf)",
        "trace_by_id",
        &["blocks", "spans", "lookups", "first after restart ms", "median ms", "p99 ms", "max ms"],
    );
    for r in runs {
        t.row(vec![
            r.blocks.to_string(),
            r.spans.to_string(),
            r.lookups.len().to_string(),
            ms(r.first),
            ms(quantile(&r.lookups, 0.5)),
            ms(quantile(&r.lookups, 0.99)),
            ms(quantile(&r.lookups, 1.0)),
        ]);
    }
    t.notes.push("Traces spread evenly over the sorted trace ids, so over every block; one HTTP/1.1 connection, sequential.".to_owned());
    t
}
