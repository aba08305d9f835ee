//! Acknowledged spans survive `kill -9` (WAL replay), before and after a
//! block flush; SIGTERM flushes every head to blocks.

mod common;

use common::{Options, TestServer, post_otlp, random_trace_id, trace};

#[tokio::test]
async fn acknowledged_spans_survive_kill_9_before_and_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(dir.path(), Options::default());
    let id = random_trace_id();

    assert_eq!(post_otlp(&server, vec![trace(id, "svc", &[(1, None, "root")])], None).await.0, 200);
    server.kill9();
    server.restart();
    assert_eq!(server.span_names(&id).await, ["root"], "replayed from the WAL");

    // The replayed segment becomes a block; more spans go to a new WAL segment.
    server.flush().await;
    assert_eq!(post_otlp(&server, vec![trace(id, "svc", &[(2, Some(1), "child")])], None).await.0, 200);
    server.kill9();
    server.restart();
    assert_eq!(server.span_names(&id).await, ["child", "root"], "block + replayed WAL");

    server.flush().await;
    server.restart();
    assert_eq!(server.span_names(&id).await, ["child", "root"], "from blocks alone");
    let wal_files = walk(&dir.path().join("wal")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "arrow")).count();
    assert!(wal_files <= 1, "flushed segments are deleted");
}

#[tokio::test]
async fn sigterm_flushes_heads_to_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start(
        dir.path(),
        Options { ingester_yaml: "max_block_duration: 1h\n".into(), ..Default::default() },
    );
    let id = random_trace_id();
    assert_eq!(post_otlp(&server, vec![trace(id, "svc", &[(1, None, "root"), (2, Some(1), "leaf")])], None).await.0, 200);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let blocks = walk(&dir.path().join("blocks"));
    assert!(blocks.iter().any(|p| p.ends_with("data.parquet")), "{blocks:?}");
    assert!(blocks.iter().any(|p| p.ends_with("meta.json")));
    assert!(blocks.iter().any(|p| p.ends_with("index.json")));
    // Nothing left to replay.
    let wal = walk(&dir.path().join("wal"));
    assert!(wal.iter().all(|p| std::fs::metadata(p).unwrap().len() < 4096 || !p.to_string_lossy().ends_with(".arrow")));
    server.restart();
    assert_eq!(server.span_names(&id).await, ["leaf", "root"]);
}

#[tokio::test]
async fn heads_are_cut_by_max_block_duration() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(
        dir.path(),
        Options { ingester_yaml: "max_block_duration: 300ms\ntrace_idle_period: 1ms\n".into(), ..Default::default() },
    );
    let id = random_trace_id();
    assert_eq!(post_otlp(&server, vec![trace(id, "svc", &[(1, None, "root")])], None).await.0, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !walk(&dir.path().join("blocks")).iter().any(|p| p.ends_with("meta.json")) {
        assert!(std::time::Instant::now() < deadline, "no block was cut");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(server.span_names(&id).await, ["root"]);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
