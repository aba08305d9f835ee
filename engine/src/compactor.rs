//! The compactor: merges small blocks into bigger ones and enforces
//! retention (DESIGN §2, after Tempo's compaction).
//!
//! ```text
//! plan: live blocks ─► groups (same time window; same level while recent) of 2..=32 blocks
//! merge: k sorted inputs ─► complete traces ─► prepare (sort, dedupe, nested sets) ─► one new block
//! publish: meta.json of the new block (names its inputs) ─► catalog swap ─► inputs' meta.compacted.json
//! delete: compacted/expired blocks' objects, compacted_block_retention later;
//!         orphaned blocks' objects (no meta), orphaned_block_retention after their last write
//! ```
//!
//! A trace whose spans were flushed into several blocks becomes one trace
//! again: its nested-set and trace-level columns are computed over all its
//! spans, and spans received twice are kept once. Inputs stay readable for
//! `compacted_block_retention`, because queries that took their snapshot of
//! the catalog before the swap still read them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use serde::Serialize;
use uuid::Uuid;

use crate::block::{
    BlockCatalog, BlockOrigin, BlockReader, BlockWriter, CompactedMeta, LiveBlock, TagSummary, delete_block_objects,
    mark_compacted, prepare_block, unix_seconds,
};
use crate::config::{BlockConfig, CompactionConfig};
use crate::error::{Error, Result};
use crate::metrics::EngineMetrics;
use crate::schema::{SCHEMA_VERSION, adapt_to_span_schema, col, column_index};
use crate::storage::Layout;

/// Blocks whose latest span ended within this long of now are "recent":
/// they are merged only with blocks of their own compaction level, so that
/// fresh small blocks are not merged into big ones over and over (Tempo's
/// active window).
const ACTIVE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Failed merges after which a block is left out of planning (until a
/// restart), so that one unreadable block does not fail its group every
/// cycle and keep the healthy blocks beside it from being merged.
pub const MAX_FAILURES: u32 = 3;

/// Rows decoded per batch over all inputs together (each input reads its
/// share, within [`MIN_READ_BATCH_ROWS`]..=[`MAX_READ_BATCH_ROWS`]). A row
/// is about 1.5 KB in Arrow (strings and attribute maps are not
/// dictionary-encoded there), and each input holds a batch or two: this
/// keeps the read side near 100 MB however many blocks are merged. Smaller
/// batches cost more per row: 32 inputs of 512 rows merged at 9.8 µs/span.
const READ_ROWS: usize = 65_536;
const MIN_READ_BATCH_ROWS: usize = 1024;
const MAX_READ_BATCH_ROWS: usize = 8192;

/// Rows of complete traces prepared together and handed to the writer
/// (held twice meanwhile: as read, and sorted).
const WRITE_CHUNK_ROWS: usize = 16_384;

/// How often the store is listed for orphaned block objects: the LIST
/// covers every object, so not every cycle.
const ORPHAN_SCAN_INTERVAL: Duration = Duration::from_secs(300);

/// What a compaction run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CompactionReport {
    /// New blocks written by merging.
    pub compactions: usize,
    /// Blocks merged into them.
    pub blocks_compacted: usize,
    /// Blocks taken out past `block_retention`.
    pub blocks_expired: usize,
    /// Compacted or expired blocks whose objects were deleted.
    pub blocks_deleted: usize,
    /// Merges that failed (retried next cycle; a block in
    /// [`MAX_FAILURES`] failed merges is left out of planning).
    pub failures: usize,
    /// Blocks without meta (a flush or merge cut short) whose objects were deleted.
    pub orphans_deleted: usize,
}

impl CompactionReport {
    fn add(&mut self, other: CompactionReport) {
        self.compactions += other.compactions;
        self.blocks_compacted += other.blocks_compacted;
        self.blocks_expired += other.blocks_expired;
        self.blocks_deleted += other.blocks_deleted;
        self.failures += other.failures;
        self.orphans_deleted += other.orphans_deleted;
    }
}

/// Merges, expires and deletes the blocks of every tenant.
#[derive(Debug)]
pub struct Compactor {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    catalog: Arc<BlockCatalog>,
    block_config: BlockConfig,
    config: CompactionConfig,
    metrics: EngineMetrics,
    /// Where the WAL segments live: a merged block keeps naming its inputs'
    /// segments that are still on disk (see [`BlockMeta::wal_segments`]).
    wal_dir: PathBuf,
    /// One cycle at a time (the loop and `/compact`), held by the task that
    /// runs it, so that a caller giving up does not let a second cycle start.
    running: Arc<tokio::sync::Mutex<()>>,
    /// Failed merges per block.
    failures: parking_lot::Mutex<HashMap<Uuid, u32>>,
    /// When the store was last listed for orphaned blocks.
    last_orphan_scan: parking_lot::Mutex<Option<Instant>>,
}

impl Compactor {
    /// A compactor of the blocks in `catalog`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        layout: Layout,
        catalog: Arc<BlockCatalog>,
        block_config: BlockConfig,
        config: CompactionConfig,
        metrics: EngineMetrics,
        wal_dir: PathBuf,
    ) -> Self {
        Self {
            store,
            layout,
            catalog,
            block_config,
            config,
            metrics,
            wal_dir,
            running: Arc::new(tokio::sync::Mutex::new(())),
            failures: parking_lot::Mutex::new(HashMap::new()),
            last_orphan_scan: parking_lot::Mutex::new(None),
        }
    }

    /// One cycle over every tenant: expire blocks past retention, run the
    /// compactions planned now, delete blocks compacted long enough ago.
    /// A failed compaction is logged and counted, and planned again next
    /// cycle. The cycle runs in a task of its own: if the caller stops
    /// waiting (a client hanging up on `/compact`), it still finishes
    /// (a merge is published or undone whole) before another can start.
    pub async fn run_cycle(self: &Arc<Self>) -> Result<CompactionReport> {
        let running = self.running.clone().lock_owned().await;
        let this = self.clone();
        tokio::spawn(async move {
            let _running = running;
            this.cycle().await
        })
        .await
        .map_err(|e| Error::internal(format!("compaction cycle failed: {e}")))?
    }

    async fn cycle(&self) -> Result<CompactionReport> {
        let mut report = CompactionReport::default();
        for tenant in self.catalog.tenants() {
            report.add(self.expire(&tenant).await?);
            let now_nanos = (unix_seconds() as i64).saturating_mul(1_000_000_000);
            let failed = self.failures.lock().iter().filter(|(_, n)| **n >= MAX_FAILURES).map(|(id, _)| *id).collect::<HashSet<_>>();
            let candidates: Vec<Arc<LiveBlock>> =
                self.catalog.blocks(&tenant).iter().filter(|b| !failed.contains(&b.meta.block_id)).cloned().collect();
            for group in plan(&candidates, &self.config, now_nanos) {
                match self.compact(&tenant, &group).await {
                    Ok(_) => {
                        report.compactions += 1;
                        report.blocks_compacted += group.len();
                    }
                    Err(failure) => {
                        report.failures += 1;
                        self.metrics.compaction_errors.inc();
                        tracing::error!(%tenant, error = %failure.error, "compaction failed; retried next cycle");
                        if let Some(block) = failure.unreadable_input {
                            let mut failures = self.failures.lock();
                            let count = failures.entry(block).or_default();
                            *count += 1;
                            if *count == MAX_FAILURES {
                                tracing::error!(%tenant, %block, "block unreadable in {MAX_FAILURES} merges; no longer compacted until a restart");
                            }
                        }
                    }
                }
            }
            report.blocks_deleted += self.delete_compacted(&tenant).await;
        }
        report.orphans_deleted = self.delete_orphans().await;
        Ok(report)
    }

    /// Runs cycles until one finds nothing to merge (`POST /compact`, benches, tests).
    pub async fn run_until_idle(self: &Arc<Self>) -> Result<CompactionReport> {
        let mut total = CompactionReport::default();
        loop {
            let report = self.run_cycle().await?;
            total.add(report);
            if report.compactions == 0 {
                return Ok(total);
            }
        }
    }

    /// Runs [`run_cycle`](Self::run_cycle) every `compaction_cycle` until the task is aborted.
    pub fn spawn_loop(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.config.compaction_cycle.max(Duration::from_millis(100)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match this.run_cycle().await {
                    Ok(report) if report != CompactionReport::default() => tracing::info!(?report, "compaction cycle"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "compaction cycle failed"),
                }
            }
        })
    }

    /// Merges `inputs` into one block and swaps it in for them.
    async fn compact(&self, tenant: &str, inputs: &[Arc<LiveBlock>]) -> Result<LiveBlock, MergeFailure> {
        let started = Instant::now();
        let job = MergeJob {
            store: self.store.clone(),
            layout: self.layout.clone(),
            block_config: self.block_config.clone(),
            tenant: tenant.to_owned(),
            inputs: inputs.to_vec(),
            sizes: MergeSizes::for_inputs(inputs.len()),
            wal_segments: self.wal_segments_on_disk(tenant, inputs),
        };
        // Decoding, sorting and zstd are CPU work: keep them off the async
        // workers that serve ingest and queries.
        let handle = tokio::runtime::Handle::current();
        let block = tokio::task::spawn_blocking(move || handle.block_on(job.run()))
            .await
            .map_err(|e| Error::internal(format!("compaction task failed: {e}")))??;
        let ids: Vec<Uuid> = inputs.iter().map(|b| b.meta.block_id).collect();
        let spans = block.meta.span_count;
        tracing::info!(
            %tenant,
            block = %block.meta.block_id,
            level = block.meta.compaction_level,
            inputs = ids.len(),
            spans,
            bytes = block.meta.size_bytes,
            ms = started.elapsed().as_millis() as u64,
            "compacted blocks"
        );
        let compacted = match self.catalog.replace(tenant, &ids, Some(block.clone())) {
            Ok(compacted) => compacted,
            Err(e) => {
                // An input left the catalog meanwhile (expired): publishing
                // would bring its spans back. Undo the merged block.
                delete_block_objects(&self.store, &self.layout, tenant, block.meta.block_id).await;
                return Err(e.into());
            }
        };
        self.retire(tenant, &compacted).await;
        self.metrics.compaction_blocks.inc_by(ids.len() as u64);
        self.metrics.compaction_spans_written.inc_by(spans);
        self.metrics.compaction_duration.observe(started.elapsed().as_secs_f64());
        Ok(block)
    }

    /// The WAL segments named by `inputs` that are still on disk: they were
    /// flushed, but deleting them failed or did not happen before a crash;
    /// replay skips a segment only when a live block names it.
    fn wal_segments_on_disk(&self, tenant: &str, inputs: &[Arc<LiveBlock>]) -> Vec<String> {
        let dir = self.wal_dir.join(tenant);
        inputs.iter().flat_map(|b| b.meta.wal_segments.iter()).filter(|name| dir.join(name).exists()).cloned().collect()
    }

    /// Takes blocks whose newest spans were ingested more than
    /// `block_retention` ago out of the catalog.
    async fn expire(&self, tenant: &str) -> Result<CompactionReport> {
        let now = unix_seconds();
        let retention = self.config.block_retention.as_secs();
        let expired: Vec<Uuid> = self
            .catalog
            .blocks(tenant)
            .iter()
            .filter(|b| b.meta.ingested_at().saturating_add(retention) < now)
            .map(|b| b.meta.block_id)
            .collect();
        if expired.is_empty() {
            return Ok(CompactionReport::default());
        }
        let compacted = self.catalog.replace(tenant, &expired, None)?;
        tracing::info!(%tenant, blocks = compacted.len(), "blocks past retention taken out");
        self.retire(tenant, &compacted).await;
        self.metrics.retention_marked.inc_by(compacted.len() as u64);
        Ok(CompactionReport { blocks_expired: compacted.len(), ..Default::default() })
    }

    /// Marks blocks just taken out of the catalog as compacted in the store
    /// and rewrites the tenant index. Failures are logged: the catalog
    /// already answers without them, and at the next start a block named in
    /// another's `compacted_from` is marked then (an expired one is expired again).
    async fn retire(&self, tenant: &str, compacted: &[CompactedMeta]) {
        for c in compacted {
            if let Err(e) = mark_compacted(&self.store, &self.layout, c).await {
                tracing::warn!(%tenant, block = %c.meta.block_id, error = %e, "could not mark a block compacted");
            }
        }
        if let Err(e) = self.catalog.persist_index(tenant).await {
            tracing::warn!(%tenant, error = %e, "could not rewrite the tenant index; it is repaired at start");
        }
    }

    /// Deletes the objects of blocks compacted at least
    /// `compacted_block_retention` ago. A block goes only after the blocks
    /// it was merged from: while they exist, its meta is what keeps them
    /// from coming back to life at a restart.
    async fn delete_compacted(&self, tenant: &str) -> usize {
        let now = unix_seconds();
        let grace = self.config.compacted_block_retention.as_secs();
        let compacted = self.catalog.compacted(tenant);
        let pending: HashSet<Uuid> = compacted.iter().map(|c| c.meta.block_id).collect();
        let mut deleted = 0;
        for c in &compacted {
            let due = c.compacted_unix_seconds.saturating_add(grace) <= now;
            if !due || c.meta.compacted_from.iter().any(|id| pending.contains(id)) {
                continue;
            }
            if delete_block_objects(&self.store, &self.layout, tenant, c.meta.block_id).await {
                self.catalog.forget_compacted(tenant, c.meta.block_id);
                self.metrics.retention_deleted.inc();
                deleted += 1;
            }
        }
        deleted
    }

    /// Deletes the objects of blocks that have neither `meta.json` nor
    /// `meta.compacted.json` and none of whose objects was written in the
    /// last `orphaned_block_retention`: a flush or merge cut short before
    /// its meta. Blocks the catalog knows are kept whatever the store says.
    /// Lists the whole store, so at most every [`ORPHAN_SCAN_INTERVAL`];
    /// failures are logged and retried at the next scan.
    async fn delete_orphans(&self) -> usize {
        {
            let mut last = self.last_orphan_scan.lock();
            if last.is_some_and(|at| at.elapsed() < ORPHAN_SCAN_INTERVAL) {
                return 0;
            }
            *last = Some(Instant::now());
        }
        let objects: Vec<ObjectMeta> = match self.store.list(self.layout.root().as_ref()).try_collect().await {
            Ok(objects) => objects,
            Err(e) => {
                tracing::warn!(error = %e, "could not list the store for orphaned blocks");
                return 0;
            }
        };
        let written_before = unix_seconds().saturating_sub(self.config.orphaned_block_retention.as_secs());
        let mut deleted = 0;
        for ((tenant, block), paths) in orphaned_blocks(&self.layout, &objects, written_before as i64) {
            if self.catalog.contains(&tenant, block) {
                continue;
            }
            let mut complete = true;
            for path in &paths {
                match self.store.delete(path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => {
                        tracing::warn!(%path, error = %e, "could not delete an orphaned block object");
                        complete = false;
                    }
                }
            }
            if complete {
                tracing::info!(%tenant, %block, objects = paths.len(), "deleted an orphaned block (no meta.json or meta.compacted.json)");
                self.metrics.orphaned_blocks_deleted.inc();
                deleted += 1;
            }
        }
        deleted
    }
}

/// The objects of each block (by tenant and id) in `objects` that has
/// neither `meta.json` nor `meta.compacted.json` and whose objects were all
/// last modified at or before `written_before` (unix seconds).
fn orphaned_blocks(layout: &Layout, objects: &[ObjectMeta], written_before: i64) -> BTreeMap<(String, Uuid), Vec<Path>> {
    struct Found {
        has_meta: bool,
        newest: i64,
        paths: Vec<Path>,
    }
    let mut blocks: BTreeMap<(String, Uuid), Found> = BTreeMap::new();
    for object in objects {
        let Some(block) = layout.block_of(&object.location) else { continue };
        let found = blocks.entry(block).or_insert(Found { has_meta: false, newest: i64::MIN, paths: Vec::new() });
        found.has_meta |= matches!(object.location.filename(), Some("meta.json" | "meta.compacted.json"));
        found.newest = found.newest.max(object.last_modified.timestamp());
        found.paths.push(object.location.clone());
    }
    blocks
        .into_iter()
        .filter(|(_, found)| !found.has_meta && found.newest <= written_before)
        .map(|(block, found)| (block, found.paths))
        .collect()
}

/// Groups of live blocks (of this schema version) to merge, lower
/// compaction levels first. Blocks
/// are grouped by the time window their latest span falls in; recent blocks
/// (see [`ACTIVE_WINDOW`]) only with blocks of the same level. Inside a
/// group the smallest blocks go first, `min_input_blocks..=max_input_blocks`
/// at a time and at most `max_block_bytes` together.
pub fn plan(blocks: &[Arc<LiveBlock>], config: &CompactionConfig, now_unix_nano: i64) -> Vec<Vec<Arc<LiveBlock>>> {
    let window = (config.compaction_window.as_nanos() as i64).max(1);
    let active_since = now_unix_nano.saturating_sub(ACTIVE_WINDOW.as_nanos() as i64);
    let mut groups: BTreeMap<(u32, i64), Vec<Arc<LiveBlock>>> = BTreeMap::new();
    // Blocks of another schema version are left as they are: adapting them
    // to this one could drop a column (an older binary meeting a newer block).
    for block in blocks.iter().filter(|b| b.meta.schema_version == SCHEMA_VERSION) {
        let end = block.meta.max_end_unix_nano;
        let level = if end >= active_since { block.meta.compaction_level } else { u32::MAX };
        groups.entry((level, end.div_euclid(window))).or_default().push(block.clone());
    }
    // A max below the min would plan nothing at all: the min wins.
    let min_inputs = config.min_input_blocks.max(2);
    let max_inputs = config.max_input_blocks.max(min_inputs);
    let mut plans = Vec::new();
    for mut candidates in groups.into_values() {
        candidates.sort_by_key(|b| (b.meta.size_bytes, b.meta.block_id));
        let mut group: Vec<Arc<LiveBlock>> = Vec::new();
        let mut bytes = 0u64;
        for block in candidates {
            let full = group.len() >= max_inputs || bytes.saturating_add(block.meta.size_bytes) > config.max_block_bytes;
            if full {
                if group.len() >= min_inputs {
                    plans.push(std::mem::take(&mut group));
                }
                // Sorted by size: a block too big to join this group is too big for any later one.
                group.clear();
                bytes = 0;
            }
            bytes = bytes.saturating_add(block.meta.size_bytes);
            group.push(block);
        }
        if group.len() >= min_inputs && bytes <= config.max_block_bytes {
            plans.push(group);
        }
    }
    plans
}

/// Why a merge failed: the error, and the input it could not read when
/// that was the cause (a failed write is the store's, not an input's).
#[derive(Debug)]
struct MergeFailure {
    unreadable_input: Option<Uuid>,
    error: Error,
}

impl From<Error> for MergeFailure {
    fn from(error: Error) -> Self {
        Self { unreadable_input: None, error }
    }
}

impl MergeFailure {
    fn reading(block: Uuid) -> impl FnOnce(Error) -> Self {
        move |error| Self { unreadable_input: Some(block), error }
    }
}

/// One merge, owned so that it can run on a blocking thread.
struct MergeJob {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    block_config: BlockConfig,
    tenant: String,
    inputs: Vec<Arc<LiveBlock>>,
    sizes: MergeSizes,
    wal_segments: Vec<String>,
}

/// Batch sizes of a merge (small in tests, to cross many batch boundaries).
#[derive(Debug, Clone, Copy)]
struct MergeSizes {
    read_batch_rows: usize,
    write_chunk_rows: usize,
}

impl MergeSizes {
    fn for_inputs(inputs: usize) -> Self {
        let read_batch_rows = (READ_ROWS / inputs.max(1)).clamp(MIN_READ_BATCH_ROWS, MAX_READ_BATCH_ROWS);
        Self { read_batch_rows, write_chunk_rows: WRITE_CHUNK_ROWS }
    }
}

/// One input block being read in trace-id order.
struct Input {
    stream: Option<ParquetRecordBatchStream<BlockReader>>,
    /// Batches read but not yet handed to the output, in order (kept apart,
    /// not concatenated: a trace of a million spans would be copied over
    /// and over while it is read).
    pending: VecDeque<RecordBatch>,
    block_id: Uuid,
}

impl Input {
    /// Reads the next batch onto `pending`; false once the block is exhausted.
    async fn read_more(&mut self) -> Result<bool, MergeFailure> {
        let Some(stream) = self.stream.as_mut() else { return Ok(false) };
        match stream.next().await {
            Some(batch) => {
                let batch = batch.map_err(Error::from).map_err(MergeFailure::reading(self.block_id))?;
                let batch = adapt_to_span_schema(&batch)
                    .map_err(|e| Error::internal(format!("block {}: {e}", self.block_id)))
                    .map_err(MergeFailure::reading(self.block_id))?;
                if batch.num_rows() > 0 {
                    self.pending.push_back(batch);
                }
                Ok(true)
            }
            None => {
                self.stream = None;
                Ok(false)
            }
        }
    }

    /// The largest trace id read so far (the last pending row's).
    fn last_trace_id(&self) -> Option<[u8; 16]> {
        let last = self.pending.back()?;
        trace_id_at(last, last.num_rows() - 1)
    }

    /// Takes the pending rows whose trace id is below `bound` (all with `None`).
    fn take_below(&mut self, bound: Option<[u8; 16]>, out: &mut Vec<RecordBatch>) {
        while let Some(first) = self.pending.pop_front() {
            let cut = match bound {
                None => first.num_rows(),
                // Rows are sorted by trace id: the first row at or past the bound.
                Some(bound) => partition_point(first.num_rows(), |row| trace_id_at(&first, row).is_some_and(|id| id < bound)),
            };
            if cut > 0 {
                out.push(first.slice(0, cut));
            }
            if cut < first.num_rows() {
                self.pending.push_front(first.slice(cut, first.num_rows() - cut));
                return;
            }
        }
    }
}

fn trace_id_at(batch: &RecordBatch, row: usize) -> Option<[u8; 16]> {
    batch.column(column_index(col::TRACE_ID)).as_fixed_size_binary_opt()?.value(row).try_into().ok()
}

/// The first index in `0..len` where `below` is false (`below` must be true then false).
fn partition_point(len: usize, below: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(mid) { lo = mid + 1 } else { hi = mid }
    }
    lo
}

impl MergeJob {
    async fn run(self) -> Result<LiveBlock, MergeFailure> {
        let mut inputs = Vec::with_capacity(self.inputs.len());
        for block in &self.inputs {
            let reader = BlockReader::new(self.store.clone(), &self.layout, &block.meta, None);
            let open = async { Ok::<_, Error>(ParquetRecordBatchStreamBuilder::new(reader).await?.with_batch_size(self.sizes.read_batch_rows).build()?) };
            let stream = open.await.map_err(MergeFailure::reading(block.meta.block_id))?;
            inputs.push(Input { stream: Some(stream), pending: VecDeque::new(), block_id: block.meta.block_id });
        }
        let expected_traces = self.inputs.iter().map(|b| b.meta.trace_count).sum();
        let level = self.inputs.iter().map(|b| b.meta.compaction_level).max().unwrap_or(0) + 1;
        let mut writer =
            BlockWriter::new(self.store.clone(), self.layout.clone(), &self.block_config, level, &self.tenant, expected_traces)?;
        // Every input's tag summary at hand: their union is the merged block's.
        // (Trace-level intrinsics such as rootName may keep a value a merged
        // trace no longer has; autocomplete can live with that.)
        let summaries: Option<Vec<&TagSummary>> = self.inputs.iter().map(|b| b.tags.as_deref()).collect();
        if let Some(summaries) = summaries {
            let mut union = TagSummary::default();
            for summary in summaries {
                union.merge(summary);
            }
            writer = writer.with_tag_summary(union);
        }
        match merge_into(&mut inputs, &mut writer, self.sizes.write_chunk_rows).await {
            Ok(()) => {}
            Err(e) => {
                writer.abort().await;
                return Err(e);
            }
        }
        let origin = BlockOrigin {
            ingested_unix_seconds: self.inputs.iter().map(|b| b.meta.ingested_at()).max().unwrap_or(0),
            wal_segments: self.wal_segments,
            compacted_from: self.inputs.iter().map(|b| b.meta.block_id).collect(),
        };
        Ok(writer.finish(origin).await?)
    }
}

/// Streams the inputs into `writer` in trace-id order, a chunk of complete
/// traces at a time. Every input is sorted by trace id, so rows below the
/// smallest "last trace id read" among the inputs not yet exhausted are
/// complete: no input can hold more of them.
async fn merge_into(inputs: &mut [Input], writer: &mut BlockWriter, chunk_rows_wanted: usize) -> Result<(), MergeFailure> {
    let mut chunk: Vec<RecordBatch> = Vec::new();
    let mut chunk_rows = 0;
    loop {
        for input in inputs.iter_mut() {
            while input.stream.is_some() && input.last_trace_id().is_none() {
                input.read_more().await?;
            }
        }
        let open: Vec<usize> = (0..inputs.len()).filter(|&i| inputs[i].stream.is_some()).collect();
        // Every open input has pending rows here; `None` once all are read.
        let bound = open.iter().filter_map(|&i| inputs[i].last_trace_id()).min();
        let taken = chunk.len();
        for input in inputs.iter_mut() {
            input.take_below(bound, &mut chunk);
        }
        chunk_rows += chunk[taken..].iter().map(RecordBatch::num_rows).sum::<usize>();
        if chunk_rows >= chunk_rows_wanted || (bound.is_none() && chunk_rows > 0) {
            let prepared = prepare_block(&std::mem::take(&mut chunk))?;
            chunk_rows = 0;
            writer.write(&prepared).await?;
        }
        if bound.is_none() {
            return Ok(());
        }
        // The inputs whose rows all belong to the bound trace read on; every
        // other open input still holds rows past it.
        for &i in &open {
            if inputs[i].last_trace_id() == bound {
                inputs[i].read_more().await?;
            }
        }
    }
}

#[cfg(test)]
mod tests;
