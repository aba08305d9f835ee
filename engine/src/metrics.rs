//! Prometheus metrics of the engine (names follow Tempo's where one exists).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Counters and histograms of the ingest and flush path.
#[derive(Debug, Clone)]
pub struct EngineMetrics {
    pub blocks_flushed: Counter,
    pub failed_flushes: Counter,
    pub flush_duration: Histogram,
    pub wal_append_duration: Histogram,
    pub wal_replayed_spans: Counter,
    pub head_bytes: Gauge,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        Self {
            blocks_flushed: Counter::default(),
            failed_flushes: Counter::default(),
            flush_duration: Histogram::new(exponential_buckets(0.005, 2.0, 14)),
            wal_append_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            wal_replayed_spans: Counter::default(),
            head_bytes: Gauge::default(),
        }
    }
}

impl EngineMetrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register("tempo_ingester_blocks_flushed", "Blocks written to object storage", m.blocks_flushed.clone());
        registry.register("tempo_ingester_failed_flushes", "Block flushes that failed (retried)", m.failed_flushes.clone());
        registry.register(
            "tempo_ingester_flush_duration_seconds",
            "Time to write a block (sort, Parquet, upload, meta, index)",
            m.flush_duration.clone(),
        );
        registry.register(
            "spanlake_wal_append_duration_seconds",
            "Time to append a batch to the WAL, fsync included",
            m.wal_append_duration.clone(),
        );
        registry.register("spanlake_wal_replayed_spans", "Spans recovered from the WAL at start", m.wal_replayed_spans.clone());
        registry.register("spanlake_head_bytes", "Arrow bytes held in heads not yet flushed", m.head_bytes.clone());
        m
    }
}
