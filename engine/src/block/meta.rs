//! `meta.json` of a block and the tenant index that lists live blocks.

use parquet::bloom_filter::Sbbf;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Description of one Parquet block, written as `meta.json` after the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockMeta {
    pub block_id: Uuid,
    pub tenant: String,
    pub schema_version: u32,
    /// Earliest span start in the block.
    pub min_start_unix_nano: i64,
    /// Latest span end in the block.
    pub max_end_unix_nano: i64,
    /// Latest span start in the block (a span's end can precede its start:
    /// OTLP keeps what the client sent). `None` in blocks written before
    /// this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_start_unix_nano: Option<i64>,
    /// Smallest and largest trace id, hex.
    pub min_trace_id: String,
    pub max_trace_id: String,
    pub span_count: u64,
    pub trace_count: u64,
    /// Size of `data.parquet` in bytes.
    pub size_bytes: u64,
    pub compaction_level: u32,
    pub row_groups: u32,
    /// Columns holding promoted attributes in this block.
    pub dedicated_columns: Vec<String>,
    /// Unix seconds when the block was written.
    pub created_unix_seconds: u64,
    /// Unix seconds when the newest of its spans were ingested (written in
    /// a level-0 block); a compacted block keeps the newest of its inputs'.
    /// Retention counts from here, not from span times, so that backfilled
    /// or clock-skewed spans live as long as any others. 0 in blocks written
    /// before this field: [`created_unix_seconds`](Self::created_unix_seconds) stands in.
    #[serde(default)]
    pub ingested_unix_seconds: u64,
    /// Blocks merged into this one by compaction. They stop being live the
    /// moment this meta exists, even if marking them compacted did not happen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compacted_from: Vec<Uuid>,
    /// WAL segment files whose spans this block holds: after a crash between
    /// writing the block and deleting them, replay skips them.
    #[serde(default)]
    pub wal_segments: Vec<String>,
}

impl BlockMeta {
    /// Is `trace_id` (16 bytes) inside the block's trace-id range?
    pub fn trace_in_range(&self, trace_id: &[u8]) -> bool {
        let id = hex::encode(trace_id);
        self.min_trace_id.as_str() <= id.as_str() && id.as_str() <= self.max_trace_id.as_str()
    }

    /// When the block's newest spans were ingested (unix seconds).
    pub fn ingested_at(&self) -> u64 {
        if self.ingested_unix_seconds > 0 { self.ingested_unix_seconds } else { self.created_unix_seconds }
    }

    /// Does the block overlap `[start, end]` (unix nanos, inclusive)?
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.min_start_unix_nano <= end && start <= self.max_end_unix_nano
    }
}

/// A block known to the catalog: its meta plus the block-wide bloom filter
/// of its trace ids (`bloom.bin`), held in memory so that a lookup by trace
/// id opens only the blocks that may hold it, however many blocks there are.
#[derive(Debug, Clone)]
pub struct LiveBlock {
    pub meta: BlockMeta,
    /// `None` for blocks written without a filter (the range check still applies).
    pub trace_filter: Option<Sbbf>,
    /// Attribute names and values (`tags.json`); `None` when absent.
    pub tags: Option<std::sync::Arc<super::TagSummary>>,
}

impl LiveBlock {
    /// Could this block hold spans of `trace_id` (16 bytes)?
    pub fn may_contain_trace(&self, trace_id: &[u8]) -> bool {
        self.meta.trace_in_range(trace_id) && self.trace_filter.as_ref().is_none_or(|f| f.check(trace_id))
    }
}

/// `meta.compacted.json` (Tempo's name): written when a block is merged
/// into another or expires, before its `meta.json` is deleted. The block's
/// files are deleted `compacted_block_retention` later (queries that took
/// their snapshot before may still read them); the marker goes last, so an
/// interrupted deletion is resumed at the next start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompactedMeta {
    #[serde(flatten)]
    pub meta: BlockMeta,
    /// Unix seconds when the block stopped being live.
    pub compacted_unix_seconds: u64,
}

/// `<tenant>/index.json`: the live blocks of a tenant, so queries need no LIST.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TenantIndex {
    pub blocks: Vec<BlockMeta>,
}
