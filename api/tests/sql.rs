//! SQL over spans: `POST /api/sql` (JSON rows, Arrow IPC) and `spanlake sql`,
//! read-only, over the same table TraceQL uses.

mod common;

use std::process::Command;

use common::{Options, TestServer, post_otlp, random_trace_id, trace};
use serde_json::{Value, json};

async fn sql(server: &TestServer, query: &str, accept: Option<&str>, tenant: Option<&str>) -> (u16, Vec<u8>) {
    let mut req = reqwest::Client::new().post(server.url("/api/sql")).body(query.to_owned());
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn sql_over_head_and_blocks_json_arrow_and_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    assert_eq!(post_otlp(&server, vec![trace(random_trace_id(), "web", &[(1, None, "GET /"), (2, Some(1), "db")])], None).await.0, 200);
    server.flush().await;
    assert_eq!(post_otlp(&server, vec![trace(random_trace_id(), "api", &[(1, None, "POST /")])], None).await.0, 200);
    assert_eq!(post_otlp(&server, vec![trace(random_trace_id(), "secret", &[(1, None, "x")])], Some("other")).await.0, 200);

    let q = "SELECT service_name, count(*) AS spans FROM spans GROUP BY service_name ORDER BY service_name";
    let (status, body) = sql(&server, q, None, None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let rows: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(rows, json!([{"service_name": "api", "spans": 1}, {"service_name": "web", "spans": 2}]));

    let (status, body) = sql(&server, q, Some("application/vnd.apache.arrow.stream"), None).await;
    assert_eq!(status, 200);
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(body), None).unwrap();
    let total: usize = reader.map(|b| b.unwrap().num_rows()).sum();
    assert_eq!(total, 2);

    // hex_id() renders ids as Tempo does; maps are read with ['key'].
    let (status, body) = sql(&server, "SELECT hex_id(span_id) AS id, span_attrs_str['http.method'] AS m FROM spans WHERE name = 'db'", None, None).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!([{"id": "0202020202020202"}]), "http.method is a dedicated column");
    let (_, body) = sql(&server, "SELECT http_method AS m FROM spans WHERE name = 'db'", None, None).await;
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), json!([{"m": "GET"}]));

    // Read-only: DDL, DML and statements are refused with 400; so is bad SQL.
    for bad in [
        "CREATE TABLE t AS SELECT * FROM spans",
        "INSERT INTO spans SELECT * FROM spans",
        "DROP TABLE spans",
        "SET datafusion.execution.batch_size = 1",
        "COPY spans TO '/tmp/x.parquet'",
        "SELEKT 1",
        "SELECT nope FROM spans",
    ] {
        let (status, body) = sql(&server, bad, None, None).await;
        assert_eq!(status, 400, "{bad}: {}", String::from_utf8_lossy(&body));
    }

    // The CLI reads the same blocks and WAL, beside the running server.
    let out = Command::new(env!("CARGO_BIN_EXE_spanlake"))
        .args(["sql", "--config"])
        .arg(dir.path().join("spanlake.yaml"))
        .args(["--format", "csv", "SELECT name FROM spans ORDER BY name"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "name\nGET /\nPOST /\ndb\n");
    let out = Command::new(env!("CARGO_BIN_EXE_spanlake"))
        .args(["sql", "--tenant", "other", "--config"])
        .arg(dir.path().join("spanlake.yaml"))
        .arg("SELECT count(*) AS n FROM spans")
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout).unwrap().contains("| 1 |"));
    let out = Command::new(env!("CARGO_BIN_EXE_spanlake")).args(["sql", "DROP TABLE spans"]).current_dir(dir.path()).output().unwrap();
    assert!(!out.status.success());
}
