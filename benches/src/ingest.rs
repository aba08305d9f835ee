//! Section 1, ingest: a generated dataset sent to a fresh server over OTLP
//! gRPC by N concurrent connections (the datasets crate's sender), until
//! every request is acknowledged, then `POST /flush`. Measures wall time,
//! wire bytes, the server's CPU seconds (receive to flushed block) and its
//! peak RSS; then `POST /compact` and what merging the flushed blocks costs.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use prost::Message;
use spanlake_datasets::{Endpoint, GenConfig, Generator, SendOptions, Size};

use crate::report::{Table, mib};
use crate::server::{BlockCut, Server, parquet_files};

/// Seed of every dataset the benches generate.
pub const SEED: u64 = 42;

/// What ingesting a dataset cost.
#[derive(Debug, Clone)]
pub struct IngestResult {
    /// Spans acknowledged.
    pub spans: u64,
    /// Traces generated.
    pub traces: u64,
    /// Encoded OTLP protobuf bytes of every request.
    pub wire_bytes: u64,
    /// From the first request to the last acknowledgement.
    pub send: Duration,
    /// `POST /flush` after the last acknowledgement.
    pub flush: Duration,
    /// Server CPU seconds from before the first request to after the flush.
    pub server_cpu_seconds: f64,
    /// Server peak RSS until the flush, bytes.
    pub peak_rss_bytes: u64,
    /// Blocks flushed, and blocks after compaction.
    pub blocks_flushed: usize,
    pub blocks_compacted: usize,
    /// `POST /compact` after the flush.
    pub compact: Duration,
    /// Server CPU seconds of the compaction.
    pub compact_cpu_seconds: f64,
    /// Server peak RSS after the compaction, bytes.
    pub compact_peak_rss_bytes: u64,
    /// Concurrent connections.
    pub connections: usize,
}

/// The generator of the named dataset.
pub fn generator(size: Size) -> Result<Generator> {
    Ok(Generator::new(GenConfig { spans: size.spans(), seed: SEED, ..GenConfig::default() })?)
}

/// Spans, traces and protobuf bytes of a dataset (a generation pass of its own,
/// so the measured send is not slowed down by counting).
fn wire_size(size: Size) -> Result<(u64, u64, u64)> {
    let mut generator = generator(size)?;
    let bytes: u64 = generator.by_ref().map(|request| request.encoded_len() as u64).sum();
    let stats = generator.stats();
    Ok((stats.spans, stats.traces, bytes))
}

/// Starts a server on the empty directory `dir`, ingests `size` and flushes.
/// Returns the server (still running, holding the dataset) and the costs.
pub async fn ingest(binary: &Path, dir: &Path, size: Size, connections: usize) -> Result<(Server, IngestResult)> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let (spans, traces, wire_bytes) = tokio::task::spawn_blocking(move || wire_size(size)).await??;
    let server = Server::start(binary, dir, BlockCut::Default)?;
    let before = server.proc_stats()?;
    let mut options = SendOptions::new(Endpoint::Grpc { uri: format!("http://{}", server.otlp_grpc) });
    options.connections = connections;
    let report = spanlake_datasets::send(generator(size)?, options).await?;
    if report.failed_requests > 0 || report.spans != spans {
        bail!("ingest lost data: {report} (expected {spans} spans)");
    }
    let flush_started = Instant::now();
    server.flush().await?;
    let flush = flush_started.elapsed();
    let after = server.proc_stats()?;
    let blocks_flushed = parquet_files(dir)?.len();
    let compact_started = Instant::now();
    server.compact().await?;
    let compact = compact_started.elapsed();
    let compacted = server.proc_stats()?;
    let result = IngestResult {
        spans,
        traces,
        wire_bytes,
        send: report.elapsed,
        flush,
        server_cpu_seconds: after.cpu_seconds - before.cpu_seconds,
        peak_rss_bytes: after.peak_rss_bytes,
        blocks_flushed,
        blocks_compacted: parquet_files(dir)?.len(),
        compact,
        compact_cpu_seconds: compacted.cpu_seconds - after.cpu_seconds,
        compact_peak_rss_bytes: compacted.peak_rss_bytes,
        connections,
    };
    Ok((server, result))
}

/// The ingest table.
pub fn table(size: Size, r: &IngestResult) -> Table {
    let mut t = Table::new(
        "Ingest (OTLP gRPC, acknowledged, then POST /flush)",
        "ingest",
        &[
            "dataset",
            "spans",
            "traces",
            "connections",
            "wire MiB",
            "send s",
            "flush s",
            "spans/s",
            "MB/s",
            "server CPU s / M spans",
            "spans/s per server core",
            "peak RSS MiB",
            "blocks flushed → compacted",
            "compact s",
            "compaction CPU s / M spans",
        ],
    );
    let total = (r.send + r.flush).as_secs_f64();
    let cpu_per_million = r.server_cpu_seconds / (r.spans as f64 / 1e6);
    t.row(vec![
        size.to_string(),
        r.spans.to_string(),
        r.traces.to_string(),
        r.connections.to_string(),
        mib(r.wire_bytes),
        format!("{:.2}", r.send.as_secs_f64()),
        format!("{:.2}", r.flush.as_secs_f64()),
        format!("{:.0}", r.spans as f64 / r.send.as_secs_f64()),
        format!("{:.1}", r.wire_bytes as f64 / 1e6 / r.send.as_secs_f64()),
        format!("{cpu_per_million:.1}"),
        format!("{:.0}", 1e6 / cpu_per_million.max(1e-9)),
        mib(r.peak_rss_bytes),
        format!("{} → {}", r.blocks_flushed, r.blocks_compacted),
        format!("{:.2}", r.compact.as_secs_f64()),
        format!("{:.1}", r.compact_cpu_seconds / (r.spans as f64 / 1e6)),
    ]);
    t.notes.push(format!(
        "spans/s and MB/s over the send (until the last acknowledgement); the flush adds {:.2} s ({:.0} spans/s end to end). \
         Client (generator + sender) and server share the machine. WAL fsync policy: always (the default).",
        r.flush.as_secs_f64(),
        r.spans as f64 / total
    ));
    t.notes.push(format!(
        "CPU and peak RSS are from receive to flushed block, as Tempo's figure is; compaction (`POST /compact` after the flush, \
         merging until nothing is left) is measured apart: peak RSS {} MiB after it.",
        mib(r.compact_peak_rss_bytes)
    ));
    t
}
