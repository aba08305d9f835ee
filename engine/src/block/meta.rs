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

/// `<tenant>/index.json`: the live blocks of a tenant, so queries need no LIST.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TenantIndex {
    pub blocks: Vec<BlockMeta>,
}
