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
    /// Blocks merged into others by compaction.
    pub compaction_blocks: Counter,
    /// Spans written by compaction.
    pub compaction_spans_written: Counter,
    pub compaction_errors: Counter,
    pub compaction_duration: Histogram,
    /// Blocks past `block_retention`, taken out of the catalog.
    pub retention_marked: Counter,
    /// Compacted or expired blocks whose objects were deleted.
    pub retention_deleted: Counter,
    /// Blocks with neither meta.json nor meta.compacted.json (a flush or
    /// merge cut short) whose objects were deleted.
    pub orphaned_blocks_deleted: Counter,
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
            compaction_blocks: Counter::default(),
            compaction_spans_written: Counter::default(),
            compaction_errors: Counter::default(),
            compaction_duration: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            retention_marked: Counter::default(),
            retention_deleted: Counter::default(),
            orphaned_blocks_deleted: Counter::default(),
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
        registry.register("tempodb_compaction_blocks", "Blocks merged into others by compaction", m.compaction_blocks.clone());
        registry.register("tempodb_compaction_objects_written", "Spans written by compaction", m.compaction_spans_written.clone());
        registry.register("tempodb_compaction_errors", "Compactions that failed (retried next cycle)", m.compaction_errors.clone());
        registry.register(
            "spanlake_compaction_duration_seconds",
            "Time to merge one group of blocks",
            m.compaction_duration.clone(),
        );
        registry.register(
            "tempodb_retention_marked_for_deletion",
            "Blocks past their retention, taken out of queries",
            m.retention_marked.clone(),
        );
        registry.register("tempodb_retention_deleted", "Compacted or expired blocks deleted from storage", m.retention_deleted.clone());
        registry.register(
            "spanlake_orphaned_blocks_deleted",
            "Blocks without meta.json or meta.compacted.json (a flush or merge cut short) deleted from storage",
            m.orphaned_blocks_deleted.clone(),
        );
        m
    }
}
