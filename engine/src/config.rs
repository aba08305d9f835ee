//! Engine configuration: storage backend, WAL and block cutting. Keys follow
//! Tempo's YAML where one exists (`storage.trace.backend`,
//! `ingester.max_block_duration`, ...); every field has a working default.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// `storage:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub trace: TraceStorageConfig,
}

/// Which object store holds the blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Local,
    S3,
}

/// `storage.trace:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TraceStorageConfig {
    pub backend: Backend,
    pub local: LocalConfig,
    pub s3: S3Config,
    pub wal: WalConfig,
    pub block: BlockConfig,
}

/// `storage.trace.local:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalConfig {
    /// Directory holding the blocks.
    pub path: PathBuf,
}

impl Default for LocalConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("./data/blocks") }
    }
}

/// `storage.trace.s3:` section. Credentials come from `access_key` /
/// `secret_key` when set, otherwise from aws-config's default chain
/// (environment, profile, web identity, IMDS).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix inside the bucket.
    pub prefix: String,
    /// Endpoint URL or host:port; empty for AWS.
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub session_token: String,
    /// Allow plain HTTP to the endpoint.
    pub insecure: bool,
    /// Path-style requests (`endpoint/bucket/key`), needed by most S3-compatible servers.
    pub forcepathstyle: bool,
    pub sse: SseConfig,
}

/// `storage.trace.s3.sse:` server-side encryption.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SseConfig {
    /// `SSE-KMS` or `SSE-S3`; empty for none.
    #[serde(rename = "type")]
    pub kind: String,
    pub kms_key_id: String,
}

/// When the WAL is fsynced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Before every acknowledgement (default): nothing acknowledged is lost.
    #[default]
    Always,
    /// Never explicitly; the OS decides. Survives a process crash, not a power loss.
    Never,
}

/// `storage.trace.wal:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalConfig {
    pub path: PathBuf,
    pub fsync: FsyncPolicy,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("./data/wal"), fsync: FsyncPolicy::Always }
    }
}

/// `storage.trace.block:` Parquet layout.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockConfig {
    /// Rows per Parquet row group (the unit of statistics pruning, and of
    /// column chunks: arrow-rs creates a zstd context for every zstd column
    /// chunk a query reads, so larger groups cost a query less, while a
    /// trace lookup decodes each column's dictionary, larger in a larger
    /// group). Pages, pruned by the page index, stay at 8192 rows. On
    /// `small` 65536 → 131072 took the metrics query 16.9 → 13.9 ms and
    /// `avg() by` 115 → 102 ms, storage 44.5 → 44.2 bytes/span (262144:
    /// 12.8 and 99.5 ms, 44.0). A one-block lookup (100k spans: one row
    /// group instead of two) went 5.4–5.5 → 5.5–5.8 ms (6.0–6.2 in the runs
    /// with 262144, the same layout for that block: noise of that order).
    /// The middle value takes half the gain for a smaller lookup risk.
    pub row_group_size: usize,
    /// Target false-positive rate of the trace_id bloom filter.
    pub bloom_filter_fpp: f64,
    pub zstd_level: i32,
}

impl Default for BlockConfig {
    fn default() -> Self {
        Self { row_group_size: 131_072, bloom_filter_fpp: 0.01, zstd_level: 3 }
    }
}

/// `ingester:` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngesterConfig {
    /// Cut the head into a block once it is this old.
    #[serde(with = "humantime_serde")]
    pub max_block_duration: Duration,
    /// Cut the head into a block once it holds this many bytes (Arrow
    /// memory; a head holds each request's resource and scope once, so the
    /// default of 24 MiB is about 35k spans of the `small` dataset).
    pub max_block_bytes: u64,
    /// A trace that got spans this recently is carried into the next head
    /// (once) so that its spans land in one block.
    #[serde(with = "humantime_serde")]
    pub trace_idle_period: Duration,
    /// How often the cut conditions are checked.
    #[serde(with = "humantime_serde")]
    pub flush_check_period: Duration,
    /// Refuse writes (429 / RESOURCE_EXHAUSTED) while heads not yet flushed
    /// would take more than this many bytes expanded (each span with its
    /// resource and scope, as queries and flushes copy them), per tenant.
    pub max_unflushed_bytes: u64,
}

impl Default for IngesterConfig {
    fn default() -> Self {
        Self {
            max_block_duration: Duration::from_secs(30),
            max_block_bytes: 24 * 1024 * 1024,
            trace_idle_period: Duration::from_secs(5),
            flush_check_period: Duration::from_secs(1),
            max_unflushed_bytes: 256 * 1024 * 1024,
        }
    }
}

/// `compactor:` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactorConfig {
    /// Run no compaction or retention in this process.
    pub disabled: bool,
    pub compaction: CompactionConfig,
}

/// `compactor.compaction:` section. Keys and defaults follow Tempo's.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionConfig {
    /// Blocks are deleted this long after their newest spans were ingested.
    #[serde(with = "humantime_serde")]
    pub block_retention: Duration,
    /// A compacted (or expired) block's objects stay readable this long,
    /// for queries that took their snapshot before.
    #[serde(with = "humantime_serde")]
    pub compacted_block_retention: Duration,
    /// Only blocks whose latest span ends in the same window of this length
    /// are merged together.
    #[serde(with = "humantime_serde")]
    pub compaction_window: Duration,
    /// The inputs of one compaction hold at most this many bytes (≈ the output's size).
    pub max_block_bytes: u64,
    /// Fewest and most blocks merged by one compaction. More than Tempo's
    /// 4: a merge reads a fixed number of rows at a time whatever the number
    /// of inputs, and every level of merging rewrites all the data again
    /// (on `small`, 39 blocks: 12.3 CPU-s with 8, 6.0 with 40).
    pub min_input_blocks: usize,
    pub max_input_blocks: usize,
    /// How often to look for blocks to compact and expire.
    #[serde(with = "humantime_serde")]
    pub compaction_cycle: Duration,
    /// Objects of a block with neither `meta.json` nor `meta.compacted.json`
    /// (a flush or merge cut short) are deleted once none was written for
    /// this long. Longer than any upload, so a block being written is never
    /// taken for one.
    #[serde(with = "humantime_serde")]
    pub orphaned_block_retention: Duration,
}

impl CompactionConfig {
    /// Refuses values that make no sense, naming the key. Like Tempo, a zero
    /// `compaction_window` is an error; so is a zero `compaction_cycle` (Tempo
    /// panics on one) or `block_retention` (it would delete every block as
    /// soon as it is written) or `orphaned_block_retention` (it would delete
    /// blocks being written), and limits under which nothing is ever merged.
    /// `compacted_block_retention` may be zero: compacted blocks go at once.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("block_retention", self.block_retention.is_zero()),
            ("compaction_window", self.compaction_window.is_zero()),
            ("compaction_cycle", self.compaction_cycle.is_zero()),
            ("max_block_bytes", self.max_block_bytes == 0),
            ("orphaned_block_retention", self.orphaned_block_retention.is_zero()),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, zero)| *zero) {
            return Err(Error::invalid(format!("compactor.compaction.{key} must be greater than 0")));
        }
        if self.min_input_blocks < 2 {
            return Err(Error::invalid(format!(
                "compactor.compaction.min_input_blocks must be at least 2 (a merge needs two blocks), not {}",
                self.min_input_blocks
            )));
        }
        Ok(())
    }
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            block_retention: Duration::from_secs(14 * 24 * 3600),
            compacted_block_retention: Duration::from_secs(3600),
            compaction_window: Duration::from_secs(3600),
            max_block_bytes: 100 * 1024 * 1024 * 1024,
            min_input_blocks: 2,
            max_input_blocks: 32,
            compaction_cycle: Duration::from_secs(30),
            orphaned_block_retention: Duration::from_secs(4 * 3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_config_refuses_values_under_which_it_cannot_work() {
        assert!(CompactionConfig::default().validate().is_ok());
        let zero_retention = CompactionConfig { compacted_block_retention: Duration::ZERO, ..Default::default() };
        assert!(zero_retention.validate().is_ok(), "compacted blocks may be deleted at once");
        let cases = [
            ("block_retention", CompactionConfig { block_retention: Duration::ZERO, ..Default::default() }),
            ("compaction_window", CompactionConfig { compaction_window: Duration::ZERO, ..Default::default() }),
            ("compaction_cycle", CompactionConfig { compaction_cycle: Duration::ZERO, ..Default::default() }),
            ("max_block_bytes", CompactionConfig { max_block_bytes: 0, ..Default::default() }),
            ("min_input_blocks", CompactionConfig { min_input_blocks: 1, ..Default::default() }),
            ("orphaned_block_retention", CompactionConfig { orphaned_block_retention: Duration::ZERO, ..Default::default() }),
        ];
        for (key, config) in cases {
            let error = config.validate().expect_err(key).to_string();
            assert!(error.contains(&format!("compactor.compaction.{key} must be")), "{key}: {error}");
        }
    }
}
