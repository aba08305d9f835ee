//! Engine-level tests over real local storage: spans are readable from the
//! head, from Parquet blocks alone, across blocks, and after a WAL replay.

use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use spanlake_engine::Engine;
use spanlake_engine::config::{CompactionConfig, IngesterConfig, StorageConfig};
use spanlake_engine::convert::convert_request;
use spanlake_engine::metrics::EngineMetrics;

fn config(dir: &std::path::Path) -> (StorageConfig, IngesterConfig) {
    let mut storage = StorageConfig::default();
    storage.trace.local.path = dir.join("blocks");
    storage.trace.wal.path = dir.join("wal");
    let ingester = IngesterConfig { max_block_duration: Duration::from_secs(3600), ..Default::default() };
    (storage, ingester)
}

fn spans(trace: u8, ids: &[(u8, Option<u8>)]) -> Vec<ResourceSpans> {
    let spans = ids
        .iter()
        .map(|(id, parent)| Span {
            trace_id: vec![trace; 16],
            span_id: vec![*id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: format!("span-{id}"),
            start_time_unix_nano: 1_700_000_000_000_000_000 + *id as u64,
            end_time_unix_nano: 1_700_000_000_000_000_100 + *id as u64,
            ..Default::default()
        })
        .collect();
    vec![ResourceSpans { scope_spans: vec![ScopeSpans { spans, ..Default::default() }], ..Default::default() }]
}

async fn append(engine: &Engine, tenant: &str, rs: Vec<ResourceSpans>) {
    let (spans, rejected) = convert_request(&rs).unwrap();
    assert!(rejected.is_empty());
    engine.ingester.append(tenant, spans).await.unwrap();
}

async fn span_names(engine: &Engine, tenant: &str, trace: u8) -> Vec<String> {
    let Some(rs) = engine.query.trace_by_id(tenant, [trace; 16], None).await.unwrap() else { return Vec::new() };
    let mut names: Vec<String> =
        rs.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans).map(|s| s.name.clone()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn trace_is_read_from_head_then_from_blocks_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, ingester) = config(dir.path());
    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    append(&engine, "t1", spans(7, &[(1, None), (2, Some(1))])).await;
    assert_eq!(span_names(&engine, "t1", 7).await, ["span-1", "span-2"]);
    assert!(span_names(&engine, "other", 7).await.is_empty(), "tenants are isolated");

    engine.ingester.flush(true).await.unwrap();
    assert_eq!(engine.catalog.blocks("t1").len(), 1);
    assert!(engine.ingester.unflushed_batches("t1").is_empty());
    assert!(std::fs::read_dir(dir.path().join("wal/t1")).unwrap().next().is_none(), "WAL segment dropped");

    // A fresh instance has no WAL left: the trace comes from Parquet alone.
    drop(engine);
    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    assert_eq!(span_names(&engine, "t1", 7).await, ["span-1", "span-2"]);
    assert!(span_names(&engine, "t1", 8).await.is_empty());
}

#[tokio::test]
async fn trace_split_over_two_blocks_and_the_head_comes_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, ingester) = config(dir.path());
    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    append(&engine, "t1", spans(9, &[(1, None)])).await;
    engine.ingester.flush(true).await.unwrap();
    append(&engine, "t1", spans(9, &[(2, Some(1)), (3, Some(2))])).await;
    append(&engine, "t1", spans(10, &[(1, None)])).await;
    engine.ingester.flush(true).await.unwrap();
    append(&engine, "t1", spans(9, &[(4, Some(1)), (1, None)])).await; // span 1 again: deduplicated
    assert_eq!(engine.catalog.blocks("t1").len(), 2);
    assert_eq!(span_names(&engine, "t1", 9).await, ["span-1", "span-2", "span-3", "span-4"]);
}

#[tokio::test]
async fn unflushed_spans_survive_a_restart_through_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, ingester) = config(dir.path());
    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    append(&engine, "t1", spans(5, &[(1, None), (2, Some(1))])).await;
    // No flush, no shutdown: as after a crash.
    drop(engine);
    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    assert_eq!(span_names(&engine, "t1", 5).await, ["span-1", "span-2"]);
    engine.ingester.flush(false).await.unwrap();
    assert_eq!(engine.catalog.blocks("t1").len(), 1, "replayed segments are flushed as blocks");
    assert_eq!(span_names(&engine, "t1", 5).await, ["span-1", "span-2"]);
}

#[tokio::test]
async fn trace_id_filter_is_pushed_into_the_parquet_scan() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, ingester) = config(dir.path());
    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    append(&engine, "t1", spans(3, &[(1, None)])).await;
    engine.ingester.flush(true).await.unwrap();
    let ctx = engine.query.session("t1").unwrap();
    let df = ctx.sql("EXPLAIN SELECT name FROM spans WHERE trace_id = X'03030303030303030303030303030303'").await.unwrap();
    let plan = arrow::util::pretty::pretty_format_batches(&df.collect().await.unwrap()).unwrap().to_string();
    println!("{plan}");
    assert!(plan.contains("DataSourceExec: file_groups"), "{plan}");
    assert!(plan.contains("predicate=trace_id@0 = "), "filter reaches the Parquet scan: {plan}");
}

#[tokio::test]
async fn trace_lookup_opens_only_blocks_whose_filter_may_hold_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, ingester) = config(dir.path());
    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    // Each block holds traces 0x01 and 0xF0 (so every trace-id range covers 0x42..)
    // plus one trace of its own.
    for own in [0x40u8, 0x42, 0x44] {
        append(&engine, "t1", spans(1, &[(own, None)])).await;
        append(&engine, "t1", spans(0xF0, &[(own, None)])).await;
        append(&engine, "t1", spans(own, &[(1, None)])).await;
        engine.ingester.flush(true).await.unwrap();
    }
    // Reload so the filters come from bloom.bin, not from the flush.
    drop(engine);
    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    assert_eq!(engine.catalog.blocks("t1").len(), 3);
    let ctx = engine.query.session("t1").unwrap();
    let df = ctx.sql("EXPLAIN SELECT name FROM spans WHERE trace_id = X'42424242424242424242424242424242'").await.unwrap();
    let plan = arrow::util::pretty::pretty_format_batches(&df.collect().await.unwrap()).unwrap().to_string();
    assert_eq!(plan.matches("data.parquet").count(), 1, "only the block holding the trace is opened: {plan}");
    assert_eq!(span_names(&engine, "t1", 0x42).await, ["span-1"]);
    assert_eq!(span_names(&engine, "t1", 0x01).await, ["span-64", "span-66", "span-68"]);
}

async fn span_count(engine: &Engine, tenant: &str) -> i64 {
    let ctx = engine.query.session(tenant).unwrap();
    let batches = ctx.sql("SELECT count(*) FROM spans").await.unwrap().collect().await.unwrap();
    batches[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().value(0)
}

#[tokio::test]
async fn a_segment_already_in_a_block_is_not_replayed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, ingester) = config(dir.path());
    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    append(&engine, "t1", spans(4, &[(1, None), (2, Some(1))])).await;
    // Keep a copy of the segment, as if the process died after writing the
    // block but before deleting the segment.
    let wal = dir.path().join("wal/t1");
    let segment = std::fs::read_dir(&wal).unwrap().next().unwrap().unwrap().path();
    let saved = std::fs::read(&segment).unwrap();
    engine.ingester.flush(true).await.unwrap();
    assert!(!segment.exists());
    let meta = &engine.catalog.blocks("t1")[0].meta;
    assert_eq!(meta.wal_segments, [segment.file_name().unwrap().to_string_lossy()]);
    drop(engine);
    std::fs::write(&segment, saved).unwrap();

    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    assert!(!segment.exists(), "the flushed segment is deleted at start");
    engine.ingester.flush(false).await.unwrap();
    assert_eq!(engine.catalog.blocks("t1").len(), 1, "no second block");
    assert_eq!(span_count(&engine, "t1").await, 2);
}

#[tokio::test]
async fn replayed_segments_of_a_tenant_become_one_deduplicated_block() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, ingester) = config(dir.path());
    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    append(&engine, "t1", spans(6, &[(1, None), (2, Some(1))])).await;
    // A cut that leaves the spans unflushed in a second segment, then the
    // same spans again (as a carried trace is written twice).
    let wal = dir.path().join("wal/t1");
    let first = std::fs::read_dir(&wal).unwrap().next().unwrap().unwrap().path();
    let copy = wal.join(format!("{:020}.arrow", u64::MAX / 2));
    std::fs::copy(&first, &copy).unwrap();
    drop(engine);
    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    assert_eq!(span_count(&engine, "t1").await, 2, "duplicates across segments are dropped");
    engine.ingester.flush(false).await.unwrap();
    assert_eq!(engine.catalog.blocks("t1").len(), 1);
    assert_eq!(span_count(&engine, "t1").await, 2);
    assert!(std::fs::read_dir(&wal).unwrap().next().is_none(), "both segments deleted");
}

#[tokio::test]
async fn a_head_full_before_the_idle_period_is_cut_whole_not_carried() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, ingester) = config(dir.path());
    let ingester = IngesterConfig { max_block_bytes: 1, trace_idle_period: Duration::from_secs(3600), ..ingester };
    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    append(&engine, "t1", spans(3, &[(1, None), (2, Some(1))])).await;
    // Not forced: due for size alone, with its only trace still live.
    engine.ingester.flush(false).await.unwrap();
    assert_eq!(engine.catalog.blocks("t1").len(), 1);
    assert!(engine.ingester.unflushed_batches("t1").is_empty(), "nothing carried into a new head");
    assert_eq!(span_names(&engine, "t1", 3).await, ["span-1", "span-2"]);
}

#[tokio::test]
async fn blocks_whose_tag_summary_lacks_an_attribute_value_are_not_read() {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    let dir = tempfile::tempdir().unwrap();
    let (storage, ingester) = config(dir.path());
    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    for (trace, operation) in [(1u8, "SELECT"), (2, "INSERT")] {
        let mut rs = spans(trace, &[(1, None)]);
        rs[0].scope_spans[0].spans[0].attributes = vec![KeyValue {
            key: "db.operation".into(),
            value: Some(AnyValue { value: Some(any_value::Value::StringValue(operation.into())) }),
            ..Default::default()
        }];
        append(&engine, "t1", rs).await;
        engine.ingester.flush(true).await.unwrap();
    }
    assert_eq!(engine.catalog.blocks("t1").len(), 2);
    let ctx = engine.query.session("t1").unwrap();
    let files_read = |operation: &str| {
        let ctx = ctx.clone();
        let sql = format!("SELECT hex_id(trace_id) AS id FROM spans WHERE span_attrs_str['db.operation'] = '{operation}'");
        async move {
            let explain = ctx.sql(&format!("EXPLAIN {sql}")).await.unwrap().collect().await.unwrap();
            let plan = arrow::util::pretty::pretty_format_batches(&explain).unwrap().to_string();
            let rows = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            (plan.matches("data.parquet").count(), rows.iter().map(|b| b.num_rows()).sum::<usize>())
        }
    };
    assert_eq!(files_read("INSERT").await, (1, 1), "only the block holding INSERT");
    assert_eq!(files_read("SELECT").await, (1, 1));
    assert_eq!(files_read("UPDATE").await, (0, 0), "no block holds UPDATE");
}

#[tokio::test]
async fn attribute_map_entries_no_span_has_are_not_read() {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    let dir = tempfile::tempdir().unwrap();
    let (storage, ingester) = config(dir.path());
    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    let mut rs = spans(1, &[(1, None)]);
    rs[0].scope_spans[0].spans[0].attributes = vec![KeyValue {
        key: "port".into(),
        value: Some(AnyValue { value: Some(any_value::Value::IntValue(8080)) }),
        ..Default::default()
    }];
    append(&engine, "t1", rs).await;
    let sql = "SELECT coalesce(CAST(span_attrs_int['port'] AS VARCHAR), span_attrs_str['port']) AS port, \
               coalesce(http_route, CAST(span_attrs_int['http.route'] AS VARCHAR)) AS route FROM spans";
    for phase in ["head", "block"] {
        if phase == "block" {
            engine.ingester.flush(true).await.unwrap();
            assert_eq!(engine.catalog.blocks("t1").len(), 1);
        }
        let ctx = engine.query.session("t1").unwrap();
        let explain = ctx.sql(&format!("EXPLAIN {sql}")).await.unwrap().collect().await.unwrap();
        let plan = arrow::util::pretty::pretty_format_batches(&explain).unwrap().to_string();
        let physical = plan.split("physical_plan").nth(1).unwrap();
        assert!(physical.contains("span_attrs_int"), "{phase}: port is an int attribute: {plan}");
        assert!(!physical.contains("span_attrs_str"), "{phase}: no span has a string port: {plan}");
        let rows = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let rows = arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string();
        assert!(rows.contains("| 8080 |"), "{phase}: {rows}");
    }
}
