use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use arrow::array::{Array, FixedSizeBinaryArray, Int32Array};
use arrow::compute::concat_batches;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStoreExt, PutPayload};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;
use crate::block::{BlockMeta, write_block};
use crate::convert::resource_spans_to_batch;

const TENANT: &str = "t";

/// `traces` traces of a root and a chain of `1 + t % 7` descendants, service `svc<t % 3>`.
fn spans(traces: u8) -> Vec<Span> {
    (0..traces)
        .flat_map(|t| {
            (0..2 + t % 7).map(move |i| Span {
                // Distinct, not all zero (an invalid id), in an order unlike t's.
                trace_id: [vec![t.wrapping_mul(37)], vec![1; 15]].concat(),
                span_id: vec![t, i, 1, 1, 1, 1, 1, 1],
                parent_span_id: if i == 0 { Vec::new() } else { vec![t, i - 1, 1, 1, 1, 1, 1, 1] },
                name: format!("op{i}"),
                start_time_unix_nano: 1_700_000_000_000_000_000 + 1_000 * u64::from(i) + u64::from(t),
                end_time_unix_nano: 1_700_000_000_000_900_000 - 10 * u64::from(i),
                ..Default::default()
            })
        })
        .collect()
}

fn batch_of(spans: Vec<Span>) -> RecordBatch {
    let service = KeyValue {
        key: "service.name".into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue("svc".into())) }),
        ..Default::default()
    };
    let resource = Resource { attributes: vec![service], ..Default::default() };
    let rs = ResourceSpans {
        resource: Some(resource),
        scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
        ..Default::default()
    };
    resource_spans_to_batch(&[rs]).unwrap().0
}

struct Fixture {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    catalog: Arc<BlockCatalog>,
}

impl Fixture {
    async fn new() -> Self {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let layout = Layout::new("");
        let catalog = Arc::new(BlockCatalog::load(store.clone(), layout.clone(), false).await.unwrap());
        Self { store, layout, catalog }
    }

    /// Writes `spans` as a live level-0 block.
    async fn block(&self, spans: Vec<Span>) -> Arc<LiveBlock> {
        let prepared = prepare_block(&[batch_of(spans)]).unwrap();
        let block = write_block(&self.store, &self.layout, &BlockConfig::default(), TENANT, &prepared, None, Vec::new()).await.unwrap();
        self.catalog.insert(block.clone());
        Arc::new(block)
    }

    fn compactor(&self, config: CompactionConfig) -> Arc<Compactor> {
        self.compactor_over(self.catalog.clone(), config)
    }

    /// A compactor of another catalog of the same store (as after a restart).
    fn compactor_over(&self, catalog: Arc<BlockCatalog>, config: CompactionConfig) -> Arc<Compactor> {
        let (store, layout) = (self.store.clone(), self.layout.clone());
        Arc::new(Compactor::new(store, layout, catalog, BlockConfig::default(), config, EngineMetrics::default(), "/nonexistent".into()))
    }

    fn merge_job(&self, inputs: &[Arc<LiveBlock>], sizes: MergeSizes) -> MergeJob {
        MergeJob {
            store: self.store.clone(),
            layout: self.layout.clone(),
            block_config: BlockConfig::default(),
            tenant: TENANT.into(),
            inputs: inputs.to_vec(),
            sizes,
            wal_segments: Vec::new(),
        }
    }

    async fn rows(&self, block: &BlockMeta) -> RecordBatch {
        let data = self.store.get(&self.layout.data(TENANT, block.block_id)).await.unwrap().bytes().await.unwrap();
        let batches: Vec<RecordBatch> =
            ParquetRecordBatchReaderBuilder::try_new(data).unwrap().build().unwrap().map(|b| b.unwrap()).collect();
        concat_batches(&crate::schema::span_schema(), &batches).unwrap()
    }

    async fn exists(&self, path: &object_store::path::Path) -> bool {
        self.store.head(path).await.is_ok()
    }
}

/// No grace for compacted blocks, no retention worth the name.
fn eager() -> CompactionConfig {
    CompactionConfig { compacted_block_retention: Duration::ZERO, ..CompactionConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_block_equals_preparing_all_spans_at_once() {
    let f = Fixture::new().await;
    let all = spans(120);
    // Every trace is spread over the three blocks (span i goes to block i % 3),
    // so each block holds fragments: parents in one block, children in another.
    // Block 2 also repeats some spans of block 0, as a retried export would.
    let part = |k: usize| -> Vec<Span> {
        all.iter().enumerate().filter(|(i, s)| i % 3 == k || (k == 2 && i % 3 == 0 && s.span_id[0] % 2 == 0)).map(|(_, s)| s.clone()).collect()
    };
    let inputs = vec![f.block(part(0)).await, f.block(part(1)).await, f.block(part(2)).await];
    let before: Vec<RecordBatch> = futures::future::join_all(inputs.iter().map(|b| f.rows(&b.meta))).await;
    let fragment_parents = before[1].column(column_index(col::NESTED_SET_PARENT)).as_any().downcast_ref::<Int32Array>().unwrap().clone();
    assert!(fragment_parents.values().contains(&0), "a fragment has spans whose parent is elsewhere");

    for (read_batch_rows, write_chunk_rows) in [(7, 20), (1, 1), (8192, 65_536)] {
        let merged = f.merge_job(&inputs, MergeSizes { read_batch_rows, write_chunk_rows }).run().await.unwrap();
        assert_eq!(merged.meta.compaction_level, 1);
        assert_eq!(merged.meta.compacted_from, inputs.iter().map(|b| b.meta.block_id).collect::<Vec<_>>());
        let expected = prepare_block(&[batch_of(all.clone())]).unwrap();
        assert_eq!(merged.meta.span_count, expected.num_rows() as u64, "repeated spans are kept once");
        assert_eq!(merged.meta.trace_count, 120);
        let rows = f.rows(&merged.meta).await;
        assert_eq!(rows, expected, "batches {read_batch_rows}/{write_chunk_rows}: same rows, nested sets and trace columns");
        assert_eq!(merged.tags.as_deref(), Some(&TagSummary::from_batch(&expected).unwrap()), "the union of the inputs' tags");
        let parents = rows.column(column_index(col::NESTED_SET_PARENT)).as_any().downcast_ref::<Int32Array>().unwrap();
        assert!(!parents.values().contains(&0), "every span is reachable from its root again");
        let ids = rows.column(column_index(col::TRACE_ID)).as_any().downcast_ref::<FixedSizeBinaryArray>().unwrap();
        assert!(merged.may_contain_trace(ids.value(0)) && merged.may_contain_trace(ids.value(ids.len() - 1)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_swaps_blocks_marks_inputs_and_deletes_them_after_the_grace() {
    let f = Fixture::new().await;
    let all = spans(40);
    let (a, b) = all.split_at(70);
    let inputs = [f.block(a.to_vec()).await, f.block(b.to_vec()).await];
    let kept = CompactionConfig { compacted_block_retention: Duration::from_secs(3600), ..CompactionConfig::default() };

    let report = f.compactor(kept).run_until_idle().await.unwrap();
    assert_eq!((report.compactions, report.blocks_compacted, report.blocks_deleted), (1, 2, 0));
    let live = f.catalog.blocks(TENANT);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].meta.span_count, all.len() as u64);
    for input in &inputs {
        let id = input.meta.block_id;
        assert!(!f.exists(&f.layout.meta(TENANT, id)).await, "meta.json goes: the block is not live");
        assert!(f.exists(&f.layout.compacted_meta(TENANT, id)).await);
        assert!(f.exists(&f.layout.data(TENANT, id)).await, "data stays for queries in flight");
    }
    let index: crate::block::TenantIndex =
        serde_json::from_slice(&f.store.get(&f.layout.index(TENANT)).await.unwrap().bytes().await.unwrap()).unwrap();
    assert_eq!(index.blocks, vec![live[0].meta.clone()]);

    // A restart sees the same: one live block, two compacted.
    let reloaded = BlockCatalog::load(f.store.clone(), f.layout.clone(), false).await.unwrap();
    assert_eq!(reloaded.blocks(TENANT).len(), 1);
    assert_eq!(reloaded.compacted(TENANT).len(), 2);

    let report = f.compactor(eager()).run_until_idle().await.unwrap();
    assert_eq!((report.compactions, report.blocks_deleted), (0, 2));
    for input in &inputs {
        for path in f.layout.block_objects(TENANT, input.meta.block_id) {
            assert!(!f.exists(&path).await, "{path} deleted");
        }
    }
    assert!(f.catalog.compacted(TENANT).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_of_a_written_block_are_not_live_after_a_crash_before_marking_them() {
    let f = Fixture::new().await;
    let all = spans(10);
    let inputs = vec![f.block(all[..20].to_vec()).await, f.block(all[20..].to_vec()).await];
    // The merged block is written, then the process dies: no swap, no markers.
    let merged = f.merge_job(&inputs, MergeSizes::for_inputs(2)).run().await.unwrap();

    let reloaded = BlockCatalog::load(f.store.clone(), f.layout.clone(), false).await.unwrap();
    let live: Vec<Uuid> = reloaded.blocks(TENANT).iter().map(|b| b.meta.block_id).collect();
    assert_eq!(live, vec![merged.meta.block_id], "no span is served twice");
    for input in &inputs {
        assert!(f.exists(&f.layout.compacted_meta(TENANT, input.meta.block_id)).await, "marked at load");
    }
    // The merged block is deleted only after its inputs: while they exist, its meta keeps them dead.
    let reloaded = Arc::new(reloaded);
    let compactor = f.compactor_over(reloaded.clone(), CompactionConfig { block_retention: Duration::ZERO, ..eager() });
    // Retention (zero) expires the merged block; its inputs are deleted in
    // that cycle, the merged block only in the next.
    std::thread::sleep(Duration::from_millis(1100));
    let report = compactor.run_until_idle().await.unwrap();
    assert_eq!((report.blocks_expired, report.blocks_deleted), (1, 2));
    assert!(reloaded.blocks(TENANT).is_empty());
    assert_eq!(reloaded.compacted(TENANT).iter().map(|c| c.meta.block_id).collect::<Vec<_>>(), vec![merged.meta.block_id]);
    let report = compactor.run_until_idle().await.unwrap();
    assert_eq!(report.blocks_deleted, 1);
    assert!(reloaded.compacted(TENANT).is_empty());
    let left: Vec<_> = f.store.list(None).map(|o| o.unwrap().location.to_string()).collect::<Vec<_>>().await;
    assert_eq!(left, vec![format!("{TENANT}/index.json")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_whose_compacted_marker_is_unreadable_stays_out_of_the_live_set() {
    let f = Fixture::new().await;
    let block = f.block(spans(3)).await;
    let id = block.meta.block_id;
    // The marker was cut short after meta.json was deleted, or meta.json is still there.
    let corrupt = PutPayload::from_static(b"{\"block_id\": ");
    f.store.put(&f.layout.compacted_meta(TENANT, id), corrupt).await.unwrap();

    let read_only = BlockCatalog::load(f.store.clone(), f.layout.clone(), true).await.unwrap();
    assert!(read_only.blocks(TENANT).is_empty(), "its spans are served by the block it was merged into");
    assert!(f.exists(&f.layout.meta(TENANT, id)).await, "a read-only load writes nothing");

    let before = unix_seconds();
    let reloaded = BlockCatalog::load(f.store.clone(), f.layout.clone(), false).await.unwrap();
    assert!(reloaded.blocks(TENANT).is_empty());
    let compacted = reloaded.compacted(TENANT);
    assert_eq!(compacted.iter().map(|c| c.meta.block_id).collect::<Vec<_>>(), vec![id]);
    assert!(compacted[0].compacted_unix_seconds >= before, "deleted a full grace after this load");
    assert!(!f.exists(&f.layout.meta(TENANT, id)).await);
    let marker = f.store.get(&f.layout.compacted_meta(TENANT, id)).await.unwrap().bytes().await.unwrap();
    assert_eq!(serde_json::from_slice::<CompactedMeta>(&marker).unwrap(), compacted[0], "the marker is rewritten");

    // Without meta.json, an unreadable marker still keeps the block dead (and is left alone).
    f.store.put(&f.layout.compacted_meta(TENANT, id), PutPayload::from_static(b"not json")).await.unwrap();
    let reloaded = BlockCatalog::load(f.store.clone(), f.layout.clone(), false).await.unwrap();
    assert!(reloaded.blocks(TENANT).is_empty() && reloaded.compacted(TENANT).is_empty());
    assert!(f.exists(&f.layout.data(TENANT, id)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_past_retention_leave_queries_at_once_and_storage_after_the_grace() {
    let f = Fixture::new().await;
    let old = f.block(spans(3)).await;
    // Rewrite the block's meta as if ingested 15 days ago.
    let mut meta = old.meta.clone();
    meta.ingested_unix_seconds = unix_seconds() - 15 * 24 * 3600;
    f.store.put(&f.layout.meta(TENANT, meta.block_id), PutPayload::from(serde_json::to_vec(&meta).unwrap())).await.unwrap();
    let catalog = Arc::new(BlockCatalog::load(f.store.clone(), f.layout.clone(), false).await.unwrap());
    let fresh_meta = {
        let fixture = Fixture { store: f.store.clone(), layout: f.layout.clone(), catalog: catalog.clone() };
        fixture.block(spans(5)).await.meta.clone()
    };
    let compactor = f.compactor_over(catalog.clone(), CompactionConfig { min_input_blocks: 3, ..CompactionConfig::default() });
    let report = compactor.run_cycle().await.unwrap();
    assert_eq!((report.blocks_expired, report.compactions, report.blocks_deleted), (1, 0, 0));
    let live: Vec<Uuid> = catalog.blocks(TENANT).iter().map(|b| b.meta.block_id).collect();
    assert_eq!(live, vec![fresh_meta.block_id]);
    assert!(f.exists(&f.layout.data(TENANT, meta.block_id)).await, "kept for the grace period");
}

/// An object listed at `path`, last modified at `unix_seconds`.
fn listed(path: &Path, unix_seconds: u64) -> ObjectMeta {
    ObjectMeta {
        location: path.clone(),
        last_modified: (std::time::UNIX_EPOCH + Duration::from_secs(unix_seconds)).into(),
        size: 1,
        e_tag: None,
        version: None,
    }
}

#[test]
fn orphaned_blocks_have_no_meta_and_no_object_written_within_the_grace() {
    let layout = Layout::new("root");
    let [orphan, recent, live, compacted] = [1, 2, 3, 4].map(Uuid::from_u128);
    let objects = [
        listed(&layout.data(TENANT, orphan), 100),
        listed(&layout.bloom(TENANT, orphan), 110),
        // Data written long ago, but the bloom filter just now: still being written.
        listed(&layout.data(TENANT, recent), 100),
        listed(&layout.bloom(TENANT, recent), 300),
        listed(&layout.data(TENANT, live), 100),
        listed(&layout.meta(TENANT, live), 100),
        listed(&layout.data(TENANT, compacted), 100),
        listed(&layout.compacted_meta(TENANT, compacted), 100),
        listed(&layout.index(TENANT), 100),
    ];
    let orphans = orphaned_blocks(&layout, &objects, 200);
    let expected = [((TENANT.to_owned(), orphan), vec![layout.data(TENANT, orphan), layout.bloom(TENANT, orphan)])];
    assert_eq!(orphans, BTreeMap::from(expected));
    assert!(orphaned_blocks(&layout, &objects, 109).is_empty(), "the newest object counts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_deletes_orphaned_blocks_but_not_those_the_catalog_knows() {
    let f = Fixture::new().await;
    let live = f.block(spans(3)).await;
    let orphan = Uuid::new_v4();
    for path in [f.layout.data(TENANT, orphan), f.layout.tags(TENANT, orphan)] {
        f.store.put(&path, PutPayload::from_static(b"cut short")).await.unwrap();
    }
    // A live block whose meta.json went missing keeps its data: queries read it.
    f.store.delete(&f.layout.meta(TENANT, live.meta.block_id)).await.unwrap();
    let compactor = f.compactor(CompactionConfig { orphaned_block_retention: Duration::ZERO, ..eager() });

    let report = compactor.run_cycle().await.unwrap();
    assert_eq!(report.orphans_deleted, 1);
    assert_eq!(compactor.metrics.orphaned_blocks_deleted.get(), 1);
    for path in f.layout.block_objects(TENANT, orphan) {
        assert!(!f.exists(&path).await, "{path} deleted");
    }
    assert!(f.exists(&f.layout.data(TENANT, live.meta.block_id)).await);

    // The next scan waits for ORPHAN_SCAN_INTERVAL: no LIST every cycle.
    f.store.put(&f.layout.data(TENANT, orphan), PutPayload::from_static(b"cut short")).await.unwrap();
    assert_eq!(compactor.run_cycle().await.unwrap().orphans_deleted, 0);
}

fn live_block(id: u128, level: u32, end_secs: i64, size_bytes: u64) -> Arc<LiveBlock> {
    let meta = BlockMeta {
        block_id: Uuid::from_u128(id),
        tenant: TENANT.into(),
        schema_version: crate::schema::SCHEMA_VERSION,
        min_start_unix_nano: (end_secs - 10) * 1_000_000_000,
        max_end_unix_nano: end_secs * 1_000_000_000,
        max_start_unix_nano: None,
        min_trace_id: "00".repeat(16),
        max_trace_id: "ff".repeat(16),
        span_count: 1,
        trace_count: 1,
        size_bytes,
        compaction_level: level,
        row_groups: 1,
        dedicated_columns: Vec::new(),
        created_unix_seconds: 0,
        ingested_unix_seconds: 0,
        compacted_from: Vec::new(),
        wal_segments: Vec::new(),
    };
    Arc::new(LiveBlock { meta, trace_filter: None, tags: None })
}

fn ids(plans: &[Vec<Arc<LiveBlock>>]) -> Vec<Vec<u128>> {
    plans.iter().map(|g| g.iter().map(|b| b.meta.block_id.as_u128()).collect()).collect()
}

#[test]
fn plan_groups_by_window_and_recent_blocks_by_level_smallest_first() {
    let now: i64 = 1_800_000_000;
    let config = CompactionConfig { max_input_blocks: 3, ..CompactionConfig::default() };
    let hour = 3600;
    let window_start = now - now.rem_euclid(hour) - 2 * hour;
    let blocks = vec![
        // Recent, one window: levels 0 and 1 apart; level 0 in size order, three at a time.
        live_block(1, 0, window_start + 10, 500),
        live_block(2, 0, window_start + 20, 100),
        live_block(3, 0, window_start + 30, 300),
        live_block(4, 0, window_start + 40, 200),
        live_block(5, 1, window_start + 50, 1000),
        live_block(6, 1, window_start + 60, 900),
        // Recent, the next window: alone, not merged.
        live_block(7, 0, window_start + hour + 5, 100),
        // Old (beyond the active window), one window: levels mixed.
        live_block(8, 0, now - 3 * 24 * hour, 50),
        live_block(9, 4, now - 3 * 24 * hour + 1, 5000),
    ];
    let plans = plan(&blocks, &config, now * 1_000_000_000);
    assert_eq!(ids(&plans), vec![vec![2, 4, 3], vec![6, 5], vec![8, 9]]);

    let small = CompactionConfig { max_block_bytes: 450, ..config.clone() };
    assert_eq!(ids(&plan(&blocks, &small, now * 1_000_000_000)), vec![vec![2, 4]], "at most max_block_bytes together");
    let three = CompactionConfig { min_input_blocks: 3, ..config.clone() };
    assert_eq!(ids(&plan(&blocks, &three, now * 1_000_000_000)), vec![vec![2, 4, 3]]);
    let inverted = CompactionConfig { min_input_blocks: 3, max_input_blocks: 2, ..config };
    assert_eq!(ids(&plan(&blocks, &inverted, now * 1_000_000_000)), vec![vec![2, 4, 3]], "a max below the min is the min");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_that_keeps_failing_is_left_out_and_the_others_are_merged() {
    let f = Fixture::new().await;
    let all = spans(12);
    let broken = f.block(all[..10].to_vec()).await;
    let (b, c) = (f.block(all[10..30].to_vec()).await, f.block(all[30..].to_vec()).await);
    f.store.delete(&f.layout.data(TENANT, broken.meta.block_id)).await.unwrap();
    let compactor = f.compactor(eager());
    for _ in 0..MAX_FAILURES {
        let report = compactor.run_cycle().await.unwrap();
        assert_eq!((report.compactions, report.failures), (0, 1));
        assert_eq!(f.catalog.blocks(TENANT).len(), 3, "a failed merge publishes nothing");
    }
    let report = compactor.run_cycle().await.unwrap();
    assert_eq!((report.compactions, report.blocks_compacted, report.failures), (1, 2, 0));
    let live: HashSet<Uuid> = f.catalog.blocks(TENANT).iter().map(|b| b.meta.block_id).collect();
    assert!(live.contains(&broken.meta.block_id) && !live.contains(&b.meta.block_id) && !live.contains(&c.meta.block_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_block_names_its_inputs_wal_segments_still_on_disk() {
    let f = Fixture::new().await;
    let wal = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(wal.path().join(TENANT)).unwrap();
    std::fs::write(wal.path().join(TENANT).join("7.arrow"), b"left over").unwrap();
    let all = spans(6);
    for (part, segment) in [(&all[..10], "7.arrow"), (&all[10..], "8.arrow")] {
        let prepared = prepare_block(&[batch_of(part.to_vec())]).unwrap();
        let segments = vec![segment.to_owned()];
        f.catalog.insert(write_block(&f.store, &f.layout, &BlockConfig::default(), TENANT, &prepared, None, segments).await.unwrap());
    }
    let (store, layout, catalog) = (f.store.clone(), f.layout.clone(), f.catalog.clone());
    let compactor =
        Arc::new(Compactor::new(store, layout, catalog, BlockConfig::default(), eager(), EngineMetrics::default(), wal.path().into()));
    assert_eq!(compactor.run_cycle().await.unwrap().compactions, 1);
    let merged = f.catalog.blocks(TENANT);
    assert_eq!(merged[0].meta.wal_segments, ["7.arrow"], "a replay at the next start skips the leftover segment");
}

#[tokio::test]
async fn replace_refuses_inputs_that_are_no_longer_live() {
    let f = Fixture::new().await;
    let block = f.block(spans(2)).await;
    let gone = Uuid::from_u128(42);
    assert!(f.catalog.replace(TENANT, &[block.meta.block_id, gone], None).is_err());
    assert_eq!(f.catalog.blocks(TENANT).len(), 1, "nothing changed");
    assert!(f.catalog.compacted(TENANT).is_empty());
}
