//! The ingester: per tenant, a WAL segment and the head block it backs;
//! cutting heads into blocks and flushing them to object storage (DESIGN §3).
//!
//! ```text
//! append ─► WAL segment (fsync) ─► head (queryable) ─cut─► sealed head (queryable)
//!        ─► sort + nested sets ─► data.parquet ─► meta.json ─► index.json ─► delete segment
//! ```

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::record_batch::RecordBatch;
use object_store::ObjectStore;
use parking_lot::{Condvar, Mutex};

use crate::block::{BlockCatalog, BlockPlan, TagSummary, prepare_block, write_block, write_planned_block};
use crate::convert::ReceivedSpans;
use crate::config::{BlockConfig, FsyncPolicy, IngesterConfig, TraceStorageConfig};
use crate::error::{Error, Result};
use crate::metrics::EngineMetrics;
use crate::schema::col;
use crate::storage::Layout;
use crate::wal::{self, SegmentSync, WalSegment};

/// Checks a tenant id the way Tempo does: 1-150 characters from
/// `[A-Za-z0-9!-_.*'()]`, and not `.` or `..` (it names directories).
pub fn validate_tenant(tenant: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "!-_.*'()".contains(c);
    if tenant.is_empty() || tenant.len() > 150 || tenant == "." || tenant == ".." || !tenant.chars().all(ok_char) {
        return Err(Error::invalid(format!("invalid tenant id {tenant:?}")));
    }
    Ok(())
}

/// Spans written to the WAL but not yet cut into a block.
struct Head {
    segment: WalSegment,
    batches: Vec<ReceivedSpans>,
    bytes: usize,
    /// The spans' [`ReceivedSpans::expanded_size`]: bounds what queries and
    /// the flush copy of the head.
    expanded_bytes: usize,
    created: Instant,
    /// Per trace: when it last got spans, and whether it was already carried
    /// over from a previous head (traces are carried at most once).
    traces: HashMap<[u8; 16], (Instant, bool)>,
}

impl Head {
    fn new(segment: WalSegment) -> Self {
        Self {
            segment,
            batches: Vec::new(),
            bytes: 0,
            expanded_bytes: 0,
            created: Instant::now(),
            traces: HashMap::new(),
        }
    }

    /// Adds `spans`, of [`ReceivedSpans::expanded_size`] `expanded`.
    fn push(&mut self, spans: ReceivedSpans, expanded: usize, carried: bool) {
        let now = Instant::now();
        if let Ok(ids) = spans.trace_ids() {
            for i in 0..ids.len() {
                if let Ok(id) = <[u8; 16]>::try_from(ids.value(i)) {
                    let entry = self.traces.entry(id).or_insert((now, carried));
                    entry.0 = now;
                }
            }
        }
        self.bytes += spans.memory_size();
        self.expanded_bytes = self.expanded_bytes.saturating_add(expanded);
        self.batches.push(spans);
    }

    /// Whether the head is big enough to cut: `max_block_bytes` held, or
    /// [`MAX_EXPANDED_HEAD_BYTES`] once expanded (a few requests with large
    /// resources over many spans).
    fn full(&self, max_block_bytes: u64) -> bool {
        self.bytes as u64 >= max_block_bytes || self.expanded_bytes >= MAX_EXPANDED_HEAD_BYTES
    }
}

/// Most bytes a head's spans may take expanded (each span with its resource
/// and scope values, as queries and the flush copy them): a head that would
/// pass it is sealed before the next spans are added. Spans of usual
/// resources take 2–3 times their held size expanded, so this bounds only
/// heads of large resources over many spans; with the request limit
/// (`MAX_REQUEST_COLUMN_BYTES`, 1 GiB) what a flush or query copies of one
/// head stays within a column's 32-bit offsets.
pub const MAX_EXPANDED_HEAD_BYTES: usize = 256 << 20;

/// A cut head waiting to become a block; still answers queries.
struct Sealed {
    /// Raw batches until first prepared, then the prepared batch alone (the
    /// WAL segments keep the spans durable either way). Held only to look at
    /// or change the state, never while preparing.
    spans: Mutex<SealedSpans>,
    /// Notified when a preparation ends, prepared or not.
    preparation_ended: Condvar,
    /// Bytes counted against `max_unflushed_bytes`: the raw spans' expanded
    /// size, or the prepared batch's memory.
    bytes: AtomicUsize,
    /// WAL segments holding these spans, deleted once the block is written.
    segment_paths: Vec<PathBuf>,
    /// How often the spans were prepared (tests check it is once).
    #[cfg(test)]
    preparations: AtomicUsize,
    /// Called as a preparation starts, outside the lock (tests pause it there).
    #[cfg(test)]
    on_preparing: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// The tag summary of a block written from a sealed head's spans as
/// received, whose trace-level root names and services are `roots`.
fn summarise(spans: &[ReceivedSpans], roots: [&ArrayRef; 2]) -> Result<TagSummary> {
    let mut tags = TagSummary::default();
    for received in spans {
        tags.add_spans(received)?;
    }
    tags.add_trace_roots(roots[0], roots[1]);
    Ok(tags)
}

/// What a flush writes of a sealed head.
enum SpansToFlush {
    /// A query prepared them already.
    Prepared(RecordBatch),
    /// As received: the flush gathers them in block order a slice at a time.
    Raw(Vec<ReceivedSpans>),
}

enum SealedSpans {
    Raw(Vec<ReceivedSpans>),
    /// One caller prepares these outside the lock; the others wait for it.
    Preparing(Vec<ReceivedSpans>),
    /// Sorted, de-duplicated and with derived columns, like a block.
    Prepared(RecordBatch),
}

impl Sealed {
    /// Sealed `batches` of `expanded_bytes` in all ([`ReceivedSpans::expanded_size`]).
    fn new(batches: Vec<ReceivedSpans>, segment_paths: Vec<PathBuf>, expanded_bytes: usize) -> Self {
        let bytes = expanded_bytes;
        Self {
            spans: Mutex::new(SealedSpans::Raw(batches)),
            preparation_ended: Condvar::new(),
            bytes: AtomicUsize::new(bytes),
            segment_paths,
            #[cfg(test)]
            preparations: AtomicUsize::new(0),
            #[cfg(test)]
            on_preparing: Mutex::new(None),
        }
    }

    /// Bytes counted against `max_unflushed_bytes`.
    fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The sealed spans prepared like a block, computed exactly once: the
    /// first caller prepares them outside the lock, concurrent callers (the
    /// flush, queries) wait for it and share its batch; the raw batches are
    /// then dropped. If the preparation fails, the next caller tries again.
    fn prepared(&self) -> Result<RecordBatch> {
        let raw = {
            let mut spans = self.spans.lock();
            loop {
                match &*spans {
                    SealedSpans::Prepared(batch) => return Ok(batch.clone()),
                    SealedSpans::Preparing(_) => blocking(|| self.preparation_ended.wait(&mut spans)),
                    SealedSpans::Raw(batches) => {
                        let batches = batches.clone();
                        *spans = SealedSpans::Preparing(batches.clone());
                        break batches;
                    }
                }
            }
        };
        let _end = PreparationEnd(self);
        #[cfg(test)]
        {
            let hook = self.on_preparing.lock().take();
            if let Some(hook) = hook {
                hook();
            }
        }
        let batch = prepare_block(&raw)?;
        #[cfg(test)]
        self.preparations.fetch_add(1, Ordering::Relaxed);
        self.bytes.store(batch.get_array_memory_size(), Ordering::Relaxed);
        *self.spans.lock() = SealedSpans::Prepared(batch.clone());
        Ok(batch)
    }

    /// The spans for a flush: prepared if a query prepared them, otherwise
    /// raw (a preparation under way is left to the queries waiting for it).
    fn to_flush(&self) -> SpansToFlush {
        match &*self.spans.lock() {
            SealedSpans::Raw(batches) | SealedSpans::Preparing(batches) => SpansToFlush::Raw(batches.clone()),
            SealedSpans::Prepared(batch) => SpansToFlush::Prepared(batch.clone()),
        }
    }

    /// The spans as span-schema batches: the raw ones, or the prepared one.
    fn batches(&self, tenant: &str) -> Vec<RecordBatch> {
        match &*self.spans.lock() {
            SealedSpans::Raw(batches) | SealedSpans::Preparing(batches) => expanded(batches, tenant),
            SealedSpans::Prepared(batch) => vec![batch.clone()],
        }
    }
}

/// `spans` as span-schema batches, for queries when preparing them failed;
/// spans that cannot be expanded either are left out, with an error logged.
fn expanded(spans: &[ReceivedSpans], tenant: &str) -> Vec<RecordBatch> {
    let batches = spans.iter().map(ReceivedSpans::to_batch);
    batches.filter_map(|b| b.inspect_err(|e| tracing::error!(%tenant, error = %e, "unflushed spans cannot be served")).ok()).collect()
}

/// Ends a preparation however it ends (done, failed or panicked): puts the
/// raw batches back unless the prepared batch replaced them, so that no
/// caller waits forever, and wakes the waiting callers.
struct PreparationEnd<'a>(&'a Sealed);

impl Drop for PreparationEnd<'_> {
    fn drop(&mut self) {
        let mut spans = self.0.spans.lock();
        let unprepared = match &mut *spans {
            SealedSpans::Preparing(batches) => Some(std::mem::take(batches)),
            _ => None,
        };
        if let Some(batches) = unprepared {
            *spans = SealedSpans::Raw(batches);
        }
        self.0.preparation_ended.notify_all();
    }
}

/// Runs `wait`, which blocks the thread. On a worker of a multi-thread tokio
/// runtime (queries call in from async code) the worker's other tasks move
/// to another thread meanwhile, so they do not stall behind the wait.
fn blocking<T>(wait: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

#[derive(Default)]
struct TenantState {
    head: Option<Head>,
    sealed: Vec<Arc<Sealed>>,
    /// Bumped on every change of `head` or `sealed`.
    generation: u64,
    /// The live head's spans prepared like a block (sorted, trace-level and
    /// nested-set columns filled) at `generation`, so queries see the same
    /// columns in the head as in blocks. Sealed heads cache their own.
    prepared_head: Option<(u64, RecordBatch)>,
}

impl TenantState {
    /// Unflushed spans as counted against `max_unflushed_bytes`: expanded,
    /// as queries and flushes copy them.
    fn unflushed_bytes(&self) -> usize {
        self.head.as_ref().map_or(0, |h| h.expanded_bytes) + self.sealed.iter().map(|s| s.bytes()).sum::<usize>()
    }

    /// Seals the head, if any: it is kept, queryable, until flushed.
    fn seal_head(&mut self) {
        if let Some(head) = self.head.take() {
            let path = head.segment.path().to_owned();
            self.seal(head.batches, path, head.expanded_bytes);
        }
    }

    /// Seals the spans of a head taken off (its segment, at `path`, closed):
    /// nothing to keep deletes the segment.
    fn seal(&mut self, batches: Vec<ReceivedSpans>, path: PathBuf, expanded_bytes: usize) {
        if batches.is_empty() {
            let _ = std::fs::remove_file(&path);
        } else {
            self.sealed.push(Arc::new(Sealed::new(batches, vec![path], expanded_bytes)));
        }
        self.generation += 1;
    }
}

/// Per-tenant WAL, heads and block flushing.
pub struct Ingester {
    config: IngesterConfig,
    block_config: BlockConfig,
    wal_dir: PathBuf,
    fsync: FsyncPolicy,
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    catalog: Arc<BlockCatalog>,
    metrics: EngineMetrics,
    tenants: Mutex<HashMap<String, Arc<Mutex<TenantState>>>>,
    next_seq: AtomicU64,
    flush_lock: tokio::sync::Mutex<()>,
    /// Woken when a head reaches `max_block_bytes`, so the flush loop cuts
    /// it at once instead of at its next tick.
    head_full: tokio::sync::Notify,
    /// Held (write) while a flushed head is swapped for its block, and (read)
    /// by queries taking a snapshot, so no query sees a span in both or neither.
    publish: parking_lot::RwLock<()>,
    stopping: AtomicBool,
}

impl std::fmt::Debug for Ingester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingester").field("wal_dir", &self.wal_dir).finish()
    }
}

impl Ingester {
    /// Opens the ingester and replays the WAL: every segment found becomes a
    /// sealed head, queryable at once and flushed by the next [`flush`](Self::flush).
    /// WAL and block settings come from `storage`.
    pub fn open(
        config: IngesterConfig,
        storage: &TraceStorageConfig,
        store: Arc<dyn ObjectStore>,
        layout: Layout,
        catalog: Arc<BlockCatalog>,
        metrics: EngineMetrics,
    ) -> Result<Self> {
        let wal_dir = storage.wal.path.clone();
        std::fs::create_dir_all(&wal_dir).map_err(Error::io(format!("creating WAL dir {}", wal_dir.display())))?;
        let replayed = wal::replay(&wal_dir)?;
        let next_seq = first_free_seq(&replayed, &catalog);
        // All segments of a tenant replay into one sealed head, so spans
        // written twice (carried between heads) are de-duplicated in one block.
        let mut by_tenant: HashMap<String, (Vec<ReceivedSpans>, Vec<PathBuf>)> = HashMap::new();
        for segment in replayed {
            let name = WalSegment::file_name(&segment.path);
            let flushed = catalog.blocks(&segment.tenant).iter().any(|b| b.meta.wal_segments.contains(&name));
            if flushed {
                tracing::info!(path = %segment.path.display(), "WAL segment already in a block; deleting");
                let _ = std::fs::remove_file(&segment.path);
                continue;
            }
            let spans: usize = segment.batches.iter().map(|b| b.num_rows()).sum();
            metrics.wal_replayed_spans.inc_by(spans as u64);
            tracing::info!(tenant = %segment.tenant, path = %segment.path.display(), spans, "replayed WAL segment");
            let (batches, paths) = by_tenant.entry(segment.tenant).or_default();
            batches.extend(segment.batches);
            paths.push(segment.path);
        }
        let tenants: HashMap<String, Arc<Mutex<TenantState>>> = by_tenant
            .into_iter()
            .map(|(tenant, (batches, paths))| {
                let expanded = batches.iter().map(ReceivedSpans::expanded_size).sum();
                let state = TenantState { sealed: vec![Arc::new(Sealed::new(batches, paths, expanded))], ..Default::default() };
                (tenant, Arc::new(Mutex::new(state)))
            })
            .collect();
        Ok(Self {
            config,
            block_config: storage.block.clone(),
            wal_dir,
            fsync: storage.wal.fsync,
            store,
            layout,
            catalog,
            metrics,
            tenants: Mutex::new(tenants),
            next_seq: AtomicU64::new(next_seq),
            flush_lock: tokio::sync::Mutex::new(()),
            head_full: tokio::sync::Notify::new(),
            publish: parking_lot::RwLock::new(()),
            stopping: AtomicBool::new(false),
        })
    }

    fn tenant(&self, tenant: &str) -> Arc<Mutex<TenantState>> {
        self.tenants.lock().entry(tenant.to_owned()).or_default().clone()
    }

    fn new_segment(&self, tenant: &str) -> Result<WalSegment> {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        WalSegment::create(&self.wal_dir.join(tenant), seq, self.fsync)
    }

    /// Appends a batch of spans for `tenant`. When this returns `Ok`, the
    /// spans are in the WAL (durable per the fsync policy) and queryable.
    pub async fn append(self: &Arc<Self>, tenant: &str, spans: ReceivedSpans) -> Result<()> {
        validate_tenant(tenant)?;
        if self.stopping.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        if spans.num_rows() == 0 {
            return Ok(());
        }
        let this = self.clone();
        let tenant = tenant.to_owned();
        // WAL writes and fsync block: keep them off the async workers.
        tokio::task::spawn_blocking(move || this.append_blocking(&tenant, spans))
            .await
            .map_err(|e| Error::internal(format!("WAL writer task failed: {e}")))?
    }

    fn append_blocking(&self, tenant: &str, spans: ReceivedSpans) -> Result<()> {
        let started = Instant::now();
        let (sync, end) = self.write_to_head(tenant, spans)?;
        // Outside the tenant lock, so that appends arriving meanwhile share the fsync.
        sync.sync_to(end)?;
        self.metrics.wal_append_duration.observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Writes a batch to the tenant's WAL segment (not yet durable) and its
    /// head; returns what to wait on before acknowledging it.
    fn write_to_head(&self, tenant: &str, spans: ReceivedSpans) -> Result<(Arc<SegmentSync>, u64)> {
        let expanded = spans.expanded_size();
        let state = self.tenant(tenant);
        let mut state = state.lock();
        let unflushed = state.unflushed_bytes() as u64;
        if unflushed > self.config.max_unflushed_bytes {
            return Err(Error::ResourceExhausted(format!(
                "tenant {tenant} has {unflushed} bytes waiting to be flushed (limit {}); retry later",
                self.config.max_unflushed_bytes
            )));
        }
        if state.head.as_ref().is_some_and(|h| h.expanded_bytes.saturating_add(expanded) > MAX_EXPANDED_HEAD_BYTES) {
            state.seal_head();
            self.head_full.notify_one();
        }
        if state.head.is_none() {
            state.head = Some(Head::new(self.new_segment(tenant)?));
        }
        let head = state.head.as_mut().expect("head was just created");
        let end = match head.segment.write(&spans) {
            Ok(end) => end,
            Err(e) => {
                // Retire the segment (cut back to its last complete record) and
                // its head; the next write starts a new one. The head's
                // acknowledged spans stay queryable as a sealed head even when
                // the cut fails: replay stops at a torn record anyway.
                let head = state.head.take().expect("head exists");
                let path = head.segment.path().to_owned();
                if let Err(abandon_error) = head.segment.abandon() {
                    tracing::error!(path = %path.display(), error = %abandon_error, "could not cut back a failed WAL segment");
                }
                state.seal(head.batches, path, head.expanded_bytes);
                return Err(e);
            }
        };
        let sync = head.segment.sync();
        head.push(spans, expanded, false);
        if head.full(self.config.max_block_bytes) {
            self.head_full.notify_one();
        }
        state.generation += 1;
        Ok((sync, end))
    }

    /// Every span of `tenant` not yet in a block, prepared like a block
    /// (sorted by trace, duplicates dropped, trace-level and nested-set
    /// columns filled): one batch per sealed head (prepared once) and one for
    /// the live head (cached until the next write).
    pub fn unflushed_batches(&self, tenant: &str) -> Vec<RecordBatch> {
        let Some(state) = self.tenants.lock().get(tenant).cloned() else { return Vec::new() };
        let (sealed, head_raw, cached_head, generation) = {
            let state = state.lock();
            let cached = state.prepared_head.as_ref().filter(|(g, _)| *g == state.generation).map(|(_, b)| b.clone());
            let raw: Vec<ReceivedSpans> = state.head.as_ref().map(|h| h.batches.clone()).unwrap_or_default();
            (state.sealed.clone(), raw, cached, state.generation)
        };
        let mut out = Vec::new();
        for s in &sealed {
            match s.prepared() {
                Ok(batch) => out.push(batch),
                Err(e) => {
                    tracing::error!(%tenant, error = %e, "preparing sealed spans failed; serving them raw");
                    out.extend(s.batches(tenant));
                }
            }
        }
        match (cached_head, head_raw.is_empty()) {
            (Some(batch), _) => out.push(batch),
            (None, true) => {}
            (None, false) => match prepare_block(&head_raw) {
                Ok(batch) => {
                    let mut state = state.lock();
                    if state.generation == generation {
                        state.prepared_head = Some((generation, batch.clone()));
                    }
                    out.push(batch);
                }
                Err(e) => {
                    tracing::error!(%tenant, error = %e, "preparing unflushed spans failed; serving them raw");
                    out.extend(expanded(&head_raw, tenant));
                }
            },
        }
        out
    }

    /// Unflushed spans and live blocks of `tenant`, taken together so that a
    /// concurrent flush is either wholly before or wholly after the snapshot.
    pub fn snapshot(&self, tenant: &str) -> (Vec<RecordBatch>, Arc<Vec<Arc<crate::block::LiveBlock>>>) {
        let _published = self.publish.read();
        (self.unflushed_batches(tenant), self.catalog.blocks(tenant))
    }

    /// Cuts heads that are due (or all, when `force`) and writes every sealed
    /// head as a block. A failed upload leaves the sealed head (and its WAL
    /// segment) in place for the next attempt.
    pub async fn flush(&self, force: bool) -> Result<()> {
        let _guard = self.flush_lock.lock().await;
        let tenants: Vec<(String, Arc<Mutex<TenantState>>)> =
            self.tenants.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let mut first_error = None;
        for (tenant, state) in tenants {
            if let Err(e) = self.cut_if_due(&tenant, &state, force) {
                first_error.get_or_insert(e);
            }
            let sealed: Vec<Arc<Sealed>> = state.lock().sealed.clone();
            for head in sealed {
                match self.write_sealed(&tenant, &head).await {
                    Ok(block) => {
                        {
                            let _publishing = self.publish.write();
                            if let Some(block) = block {
                                self.catalog.insert(block);
                            }
                            let mut state = state.lock();
                            state.sealed.retain(|s| !Arc::ptr_eq(s, &head));
                            state.generation += 1;
                        }
                        // The block exists once its meta.json does; the index is a cache of metas.
                        if let Err(e) = self.catalog.persist_index(&tenant).await {
                            tracing::warn!(%tenant, error = %e, "could not rewrite the tenant index; it is repaired at start");
                        }
                        for path in &head.segment_paths {
                            if let Err(e) = std::fs::remove_file(path) {
                                tracing::warn!(path = %path.display(), error = %e, "could not delete flushed WAL segment");
                            }
                        }
                    }
                    Err(e) => {
                        self.metrics.failed_flushes.inc();
                        tracing::error!(%tenant, error = %e, "block flush failed; will retry");
                        first_error.get_or_insert(e);
                        break;
                    }
                }
            }
        }
        let unflushed: usize = self.tenants.lock().values().map(|s| s.lock().unflushed_bytes()).sum();
        self.metrics.head_bytes.set(unflushed as i64);
        first_error.map_or(Ok(()), Err)
    }

    /// Seals the head of a tenant when it is old or big enough (or `force`).
    /// Traces still receiving spans move to the new head once, so that a
    /// trace's spans tend to land in one block.
    fn cut_if_due(&self, tenant: &str, state: &Mutex<TenantState>, force: bool) -> Result<()> {
        let mut state = state.lock();
        let Some(head) = state.head.as_ref() else { return Ok(()) };
        let due = head.created.elapsed() >= self.config.max_block_duration || head.full(self.config.max_block_bytes);
        if !(due || (force && !head.batches.is_empty())) {
            return Ok(());
        }
        let now = Instant::now();
        // A head cut for size before `trace_idle_period` has passed holds
        // only live traces: carrying them would copy the whole head.
        let young = head.created.elapsed() < self.config.trace_idle_period;
        let live: HashSet<[u8; 16]> = if force || young {
            HashSet::new()
        } else {
            head.traces
                .iter()
                .filter(|(_, (seen, carried))| !carried && now.duration_since(*seen) < self.config.trace_idle_period)
                .map(|(id, _)| *id)
                .collect()
        };
        let (kept, carried) = split_live(&head.batches, &live)?;
        let kept_expanded = if carried.is_empty() { head.expanded_bytes } else { kept.iter().map(ReceivedSpans::expanded_size).sum() };
        // The new head (with the carried spans in its segment) is complete
        // before the old one is touched: a failure leaves the old head as it was.
        let new_head = if carried.is_empty() { None } else { Some(self.head_with(tenant, carried)?) };
        let old = state.head.take().expect("checked above");
        state.head = new_head;
        if kept.is_empty() {
            // Everything was carried over; the old segment is no longer needed.
            let _ = std::fs::remove_file(old.segment.path());
            return Ok(());
        }
        state.sealed.push(Arc::new(Sealed::new(kept, vec![old.segment.path().to_owned()], kept_expanded)));
        Ok(())
    }

    /// A new head whose segment holds `batches` (spans carried from the previous head).
    fn head_with(&self, tenant: &str, batches: Vec<ReceivedSpans>) -> Result<Head> {
        let mut head = Head::new(self.new_segment(tenant)?);
        for spans in batches {
            if let Err(e) = head.segment.append(&spans) {
                let _ = head.segment.abandon().map(std::fs::remove_file);
                return Err(e);
            }
            let expanded = spans.expanded_size();
            head.push(spans, expanded, true);
        }
        Ok(head)
    }

    /// Writes a sealed head as a block; `None` when it held nothing to write.
    async fn write_sealed(&self, tenant: &str, sealed: &Arc<Sealed>) -> Result<Option<crate::block::LiveBlock>> {
        let started = Instant::now();
        let segments = sealed.segment_paths.iter().map(|p| WalSegment::file_name(p)).collect();
        let (store, layout, config) = (&self.store, &self.layout, &self.block_config);
        let block = match sealed.to_flush() {
            SpansToFlush::Prepared(batch) => {
                if batch.num_rows() == 0 {
                    return Ok(None);
                }
                write_block(store, layout, config, tenant, &batch, None, segments).await?
            }
            SpansToFlush::Raw(raw) => {
                let (plan, tags, raw) = tokio::task::spawn_blocking(move || -> Result<_> {
                    let plan = BlockPlan::new(&raw)?;
                    let root = |name| plan.computed_column(name).ok_or_else(|| Error::internal("no trace-level column"));
                    let roots = [root(col::TRACE_ROOT_NAME)?, root(col::TRACE_ROOT_SERVICE)?];
                    let tags = summarise(&raw, roots)?;
                    Ok((plan, tags, raw))
                })
                .await
                .map_err(|e| Error::internal(format!("block preparation failed: {e}")))??;
                if plan.num_rows() == 0 {
                    return Ok(None);
                }
                write_planned_block(store, layout, config, tenant, &plan, &raw, tags, segments).await?
            }
        };
        let meta = &block.meta;
        tracing::info!(%tenant, block = %meta.block_id, spans = meta.span_count, bytes = meta.size_bytes, "flushed block");
        self.metrics.blocks_flushed.inc();
        self.metrics.flush_duration.observe(started.elapsed().as_secs_f64());
        Ok(Some(block))
    }

    /// Refuses new writes and flushes everything (graceful shutdown).
    pub async fn shutdown(&self) -> Result<()> {
        self.stopping.store(true, Ordering::SeqCst);
        self.flush(true).await
    }

    /// Runs [`flush`](Self::flush) every `flush_check_period` until dropped.
    pub fn spawn_flush_loop(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.config.flush_check_period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = this.head_full.notified() => {}
                }
                if this.stopping.load(Ordering::SeqCst) {
                    break;
                }
                // Errors are logged and counted inside; the next tick retries.
                let _ = this.flush(false).await;
            }
        })
    }
}

/// The first WAL segment number never used before: above every replayed
/// segment, every segment a block's meta names (a block keeps its segments'
/// names after they are deleted, so a reused number would make replay drop
/// a new segment as already flushed), and the wall clock in nanoseconds
/// (numbers grow across restarts even with an empty WAL and no blocks).
fn first_free_seq(replayed: &[wal::ReplayedSegment], catalog: &BlockCatalog) -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let replayed_max = replayed.iter().map(|s| s.seq).max();
    let recorded_max = catalog
        .tenants()
        .iter()
        .flat_map(|tenant| {
            catalog.blocks(tenant).iter().flat_map(|b| b.meta.wal_segments.iter().filter_map(|n| WalSegment::seq_of(n))).max()
        })
        .max();
    let used_max = replayed_max.max(recorded_max);
    used_max.map_or(1, |seq| seq.saturating_add(1)).max(now)
}

/// Splits a head's spans into those of traces not in `live`, kept for the
/// block, and those of `live` ones, carried on. Spans received together
/// without live spans are kept whole.
fn split_live(batches: &[ReceivedSpans], live: &HashSet<[u8; 16]>) -> Result<(Vec<ReceivedSpans>, Vec<ReceivedSpans>)> {
    if live.is_empty() {
        return Ok((batches.to_vec(), Vec::new()));
    }
    let (mut kept, mut carried) = (Vec::new(), Vec::new());
    for spans in batches {
        let ids = spans.trace_ids()?;
        let mask: BooleanArray =
            (0..ids.len()).map(|i| Some(<[u8; 16]>::try_from(ids.value(i)).is_ok_and(|id| live.contains(&id)))).collect();
        if mask.true_count() == 0 {
            kept.push(spans.clone());
            continue;
        }
        carried.push(spans.filter(&mask)?);
        let keep = spans.filter(&arrow::compute::not(&mask)?)?;
        if keep.num_rows() > 0 {
            kept.push(keep);
        }
    }
    Ok((kept, carried))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use object_store::memory::InMemory;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;
    use crate::convert::SpanBatchBuilder;

    /// `spans` spans of trace `trace`, as received.
    fn batch(trace: u8, spans: u8) -> ReceivedSpans {
        let spans = (1..=spans)
            .map(|i| Span { trace_id: vec![trace; 16], span_id: vec![i; 8], name: format!("s{i}"), ..Default::default() })
            .collect();
        let rs = ResourceSpans { scope_spans: vec![ScopeSpans { spans, ..Default::default() }], ..Default::default() };
        let mut b = SpanBatchBuilder::new();
        b.append_resource_spans(&rs, |reason| panic!("{reason}")).unwrap();
        b.finish_received().unwrap()
    }

    fn rows(batches: &[RecordBatch]) -> usize {
        batches.iter().map(|b| b.num_rows()).sum()
    }

    async fn empty_catalog(store: &Arc<dyn ObjectStore>) -> Arc<BlockCatalog> {
        Arc::new(BlockCatalog::load(store.clone(), Layout::default(), false).await.unwrap())
    }

    fn open(wal_dir: &Path, store: Arc<dyn ObjectStore>, catalog: Arc<BlockCatalog>) -> Arc<Ingester> {
        let mut storage = TraceStorageConfig::default();
        storage.wal.path = wal_dir.to_owned();
        let config = IngesterConfig::default();
        Arc::new(Ingester::open(config, &storage, store, Layout::default(), catalog, EngineMetrics::default()).unwrap())
    }

    /// An ingester whose "t1" has one sealed head of 5 spans (two traces).
    async fn with_sealed_head(wal_dir: &Path) -> (Arc<Ingester>, Arc<Sealed>) {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let ingester = open(wal_dir, store.clone(), empty_catalog(&store).await);
        ingester.append_blocking("t1", batch(1, 3)).unwrap();
        ingester.append_blocking("t1", batch(2, 2)).unwrap();
        let state = ingester.tenant("t1");
        ingester.cut_if_due("t1", &state, true).unwrap();
        let sealed = state.lock().sealed[0].clone();
        (ingester, sealed)
    }

    #[tokio::test]
    async fn a_head_of_a_large_resource_over_many_spans_is_full_once_expanded_though_small_held() {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
        use opentelemetry_proto::tonic::resource::v1::Resource;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let ingester = open(dir.path(), store.clone(), empty_catalog(&store).await);
        let big = KeyValue {
            key: "blob".into(),
            value: Some(AnyValue { value: Some(Value::StringValue("x".repeat(1 << 20))) }),
            ..Default::default()
        };
        let request = |trace: u8, spans: u32| {
            let spans: Vec<Span> = (0..spans)
                .map(|i| Span { trace_id: vec![trace; 16], span_id: [i.to_be_bytes(), [1; 4]].concat(), ..Default::default() })
                .collect();
            let rs = ResourceSpans {
                resource: Some(Resource { attributes: vec![big.clone()], ..Default::default() }),
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            };
            crate::convert::convert_request(&[rs]).unwrap().0
        };
        let state = ingester.tenant("t1");
        // 150 MiB expanded each: the second would take the head past 256 MiB, so the first is sealed.
        ingester.append_blocking("t1", request(1, 150)).unwrap();
        ingester.append_blocking("t1", request(2, 150)).unwrap();
        {
            let state = state.lock();
            assert_eq!(state.sealed.len(), 1);
            let head = state.head.as_ref().unwrap();
            assert_eq!(head.batches.len(), 1);
            assert!(head.bytes < 2 << 20, "the resource is held once: {} bytes", head.bytes);
            assert!(head.expanded_bytes >= 150 << 20, "{} bytes expanded", head.expanded_bytes);
            assert!(state.unflushed_bytes() >= 300 << 20, "counted expanded");
        }
        // Unflushed spans count expanded: the next request is refused.
        assert!(matches!(ingester.append_blocking("t1", request(3, 1)), Err(Error::ResourceExhausted(_))));
        // A single request past the bound fills a head alone; it is cut without waiting for its age.
        let dir = tempfile::tempdir().unwrap();
        let ingester = open(dir.path(), store.clone(), empty_catalog(&store).await);
        ingester.append_blocking("t1", request(1, 300)).unwrap();
        let state = ingester.tenant("t1");
        assert!(state.lock().head.as_ref().unwrap().full(ingester.config.max_block_bytes));
        ingester.cut_if_due("t1", &state, false).unwrap();
        assert!(state.lock().head.is_none() && state.lock().sealed.len() == 1);
    }

    #[tokio::test]
    async fn concurrent_queries_prepare_a_sealed_head_once_and_it_then_holds_only_the_prepared_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (ingester, sealed) = with_sealed_head(dir.path()).await;
        let raw_bytes = sealed.bytes();
        let barrier = std::sync::Barrier::new(4);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    barrier.wait();
                    assert_eq!(rows(&ingester.unflushed_batches("t1")), 5);
                });
            }
        });
        assert_eq!(sealed.preparations.load(Ordering::Relaxed), 1);
        let SealedSpans::Prepared(prepared) = &*sealed.spans.lock() else { panic!("raw batches kept after preparing") };
        assert_eq!(sealed.bytes(), prepared.get_array_memory_size());
        assert_ne!(sealed.bytes(), raw_bytes);
        assert_eq!(ingester.tenant("t1").lock().unflushed_bytes(), prepared.get_array_memory_size());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_query_during_a_flushs_preparation_waits_without_holding_up_its_worker() {
        let dir = tempfile::tempdir().unwrap();
        let (ingester, sealed) = with_sealed_head(dir.path()).await;
        let (started_tx, started) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        *sealed.on_preparing.lock() = Some(Box::new(move || {
            started_tx.send(()).unwrap();
            let _ = go_rx.recv();
        }));
        // A first caller prepares on a thread of its own and pauses there.
        let flushing = sealed.clone();
        let flush = std::thread::spawn(move || flushing.prepared().map(|b| b.num_rows()));
        started.recv().unwrap();
        assert_eq!(sealed.batches("t1").len(), 2, "the raw batches stay readable while preparing");
        // A query on the only worker waits for the flush's batch ...
        let (querying_tx, querying) = std::sync::mpsc::channel();
        let query = tokio::spawn(async move {
            querying_tx.send(()).unwrap();
            rows(&ingester.unflushed_batches("t1"))
        });
        querying.recv().unwrap();
        // ... while another task still runs.
        let (ran_tx, ran) = std::sync::mpsc::channel();
        tokio::spawn(async move { ran_tx.send(()).unwrap() });
        let ran = ran.recv_timeout(std::time::Duration::from_secs(10));
        go.send(()).unwrap();
        assert!(ran.is_ok(), "a task was held up behind the waiting query");
        assert_eq!(flush.join().unwrap().unwrap(), 5);
        assert_eq!(query.await.unwrap(), 5);
        assert_eq!(sealed.preparations.load(Ordering::Relaxed), 1);
        assert_eq!(sealed.batches("t1").len(), 1, "only the prepared batch is held");
    }

    #[tokio::test]
    async fn a_failed_preparation_leaves_the_raw_batches_for_the_next_caller() {
        let dir = tempfile::tempdir().unwrap();
        let (_ingester, sealed) = with_sealed_head(dir.path()).await;
        *sealed.on_preparing.lock() = Some(Box::new(|| panic!("preparation failed")));
        let preparing = sealed.clone();
        assert!(std::thread::spawn(move || preparing.prepared()).join().is_err());
        assert_eq!(sealed.batches("t1").len(), 2);
        assert_eq!(sealed.prepared().unwrap().num_rows(), 5, "the next caller prepares them");
        assert_eq!(sealed.preparations.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_flush_writes_raw_spans_without_preparing_them_and_a_query_prepared_batch_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let (ingester, sealed) = with_sealed_head(dir.path()).await;
        let block = ingester.write_sealed("t1", &sealed).await.unwrap().unwrap();
        assert_eq!(block.meta.span_count, 5);
        assert!(matches!(*sealed.spans.lock(), SealedSpans::Raw(_)), "no sorted copy held");
        assert_eq!(sealed.preparations.load(Ordering::Relaxed), 0);
        // Until the block is published, queries still read the sealed head.
        assert_eq!(rows(&ingester.unflushed_batches("t1")), 5);
        assert_eq!(sealed.preparations.load(Ordering::Relaxed), 1);
        // Once a query prepared them, a (retried) flush writes that batch.
        let again = ingester.write_sealed("t1", &sealed).await.unwrap().unwrap();
        assert_eq!(again.meta.span_count, 5);
        assert_eq!(again.tags, block.tags);
        assert_eq!(sealed.preparations.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_flushed_blocks_tags_are_the_summary_of_its_prepared_spans() {
        let dir = tempfile::tempdir().unwrap();
        let (ingester, sealed) = with_sealed_head(dir.path()).await;
        let raw = sealed.batches("t1");
        let block = ingester.write_sealed("t1", &sealed).await.unwrap().unwrap();
        let expected = TagSummary::from_batch(&prepare_block(&raw).unwrap()).unwrap();
        assert!(expected.scopes["intrinsic"].contains_key("rootName"), "trace-level tags included");
        assert_eq!(block.tags.as_deref(), Some(&expected));
    }

    #[tokio::test]
    async fn a_failed_wal_write_keeps_the_heads_spans_queryable_even_when_the_segment_cannot_be_cut() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let ingester = open(dir.path(), store.clone(), empty_catalog(&store).await);
        ingester.append_blocking("t1", batch(1, 3)).unwrap();
        let path = {
            let state = ingester.tenant("t1");
            let state = state.lock();
            let segment = &state.head.as_ref().unwrap().segment;
            // The next write fails (as after a failed fsync), and so does
            // cutting the segment back (it cannot be reopened).
            segment.sync().poison();
            std::fs::remove_file(segment.path()).unwrap();
            segment.path().to_owned()
        };
        assert!(ingester.append_blocking("t1", batch(2, 2)).is_err());
        assert_eq!(rows(&ingester.unflushed_batches("t1")), 3, "acknowledged spans are still queryable");
        let state = ingester.tenant("t1");
        let state = state.lock();
        assert!(state.head.is_none());
        assert_eq!(state.sealed.len(), 1);
        assert_eq!(state.sealed[0].segment_paths, [path]);
    }

    #[tokio::test]
    async fn segment_numbers_stay_above_those_recorded_in_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let catalog = empty_catalog(&store).await;
        // A block from segments numbered far beyond today's clock, as after
        // the clock went back and the WAL emptied.
        let recorded = u64::MAX - 10;
        let prepared = prepare_block(&[batch(1, 2)]).unwrap();
        let block_config = BlockConfig::default();
        let block = write_block(&store, &Layout::default(), &block_config, "t1", &prepared, None, vec![format!("{recorded:020}.arrow")])
            .await
            .unwrap();
        catalog.insert(block);
        let ingester = open(dir.path(), store, catalog);
        ingester.append_blocking("t2", batch(2, 1)).unwrap();
        let state = ingester.tenant("t2");
        let state = state.lock();
        let name = WalSegment::file_name(state.head.as_ref().unwrap().segment.path());
        assert!(WalSegment::seq_of(&name).unwrap() > recorded, "segment {name} reuses a number a block records");
    }

    #[test]
    fn splitting_live_traces_off_keeps_spans_received_without_them_whole_and_filters_the_others() {
        let batches = [batch(1, 3), batch(2, 2)];
        let (kept, carried) = split_live(&batches, &HashSet::from([[2; 16]])).unwrap();
        let expanded = |spans: &[ReceivedSpans]| spans.iter().map(|s| s.to_batch().unwrap()).collect::<Vec<_>>();
        assert_eq!(expanded(&kept), expanded(&batches[..1]));
        assert_eq!(expanded(&carried), expanded(&batches[1..]));
        let both = ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: [(1, 1), (2, 2), (1, 3)]
                    .into_iter()
                    .map(|(trace, id)| Span { trace_id: vec![trace; 16], span_id: vec![id; 8], ..Default::default() })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut b = SpanBatchBuilder::new();
        b.append_resource_spans(&both, |reason| panic!("{reason}")).unwrap();
        let (kept, carried) = split_live(&[b.finish_received().unwrap()], &HashSet::from([[2; 16]])).unwrap();
        assert_eq!((rows(&expanded(&kept)), rows(&expanded(&carried))), (2, 1));
    }
}
