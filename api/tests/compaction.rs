//! The compactor in the real server: a trace flushed into three blocks is
//! one trace again after `POST /compact` (structural queries see it whole),
//! the inputs are gone from disk once `compacted_block_retention` passes,
//! and a restart serves the merged block alone.

mod common;

use std::path::{Path, PathBuf};

use common::{Options, TestServer, post_otlp, random_trace_id, trace};
use serde_json::Value;

/// `data.parquet` files of live blocks (those with a `meta.json`), and of all blocks.
fn data_files(dir: &Path) -> (Vec<PathBuf>, usize) {
    let blocks = dir.join("blocks/single-tenant/blocks");
    let all: Vec<PathBuf> = std::fs::read_dir(&blocks)
        .map(|entries| entries.map(|e| e.unwrap().path().join("data.parquet")).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    let live = all.iter().filter(|p| p.with_file_name("meta.json").is_file()).cloned().collect();
    (live, all.len())
}

async fn trace_ids(server: &TestServer, query: &str) -> Vec<String> {
    let r = reqwest::Client::new().get(server.url("/api/search")).query(&[("q", query)]).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["traces"].as_array().unwrap().iter().map(|t| t["traceID"].as_str().unwrap().to_owned()).collect()
}

async fn compact(server: &TestServer) -> Value {
    let r = reqwest::Client::new().post(server.url("/compact")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_trace_flushed_into_three_blocks_is_one_trace_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        // The loop would compact on its own: keep it out of the way (POST /compact runs now).
        extra_yaml: "compactor:\n  compaction:\n    compaction_cycle: 1h\n    compacted_block_retention: 0s\n".into(),
        ..Default::default()
    };
    let mut server = TestServer::start(dir.path(), options);
    let id = random_trace_id();
    let other = random_trace_id();
    let parts: [&[(u8, Option<u8>, &str)]; 3] = [&[(1, None, "root")], &[(2, Some(1), "child")], &[(3, Some(2), "grandchild")]];
    for part in parts {
        assert_eq!(post_otlp(&server, vec![trace(id, "svc", part)], None).await.0, 200);
        assert_eq!(post_otlp(&server, vec![trace(other, "svc", &[(9, None, "lone")])], None).await.0, 200);
        server.flush().await;
    }
    assert_eq!(data_files(dir.path()).0.len(), 3);
    let structural = r#"{ name = "root" } >> { name = "grandchild" }"#;
    assert!(trace_ids(&server, structural).await.is_empty(), "the grandchild's parent is in another block");

    let report = compact(&server).await;
    assert_eq!(report["compactions"], 1, "{report}");
    assert_eq!(report["blocks_compacted"], 3, "{report}");
    assert_eq!(report["blocks_deleted"], 3, "{report}");
    let (live, all) = data_files(dir.path());
    assert_eq!((live.len(), all), (1, 1), "the inputs are deleted (no grace configured)");

    let hex_id = hex::encode(id);
    assert_eq!(trace_ids(&server, structural).await, [hex_id.clone()], "nested sets span the whole trace now");
    assert_eq!(server.span_names(&id).await, ["child", "grandchild", "root"]);
    assert_eq!(server.span_names(&other).await, ["lone"], "the span sent three times is kept once");
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tempodb_compaction_blocks_total 3"), "{metrics}");

    server.restart();
    assert_eq!(trace_ids(&server, structural).await, [hex_id]);
    assert_eq!(compact(&server).await["compactions"], 0, "nothing left to merge");
}

#[tokio::test]
async fn compact_is_refused_where_the_compactor_is_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options { extra_yaml: "compactor:\n  disabled: true\n".into(), ..Default::default() };
    let server = TestServer::start(dir.path(), options);
    let r = reqwest::Client::new().post(server.url("/compact")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("compactor.disabled"));
}
