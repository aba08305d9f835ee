//! `spanlake gen` against the real server: the `tiny` dataset sent over OTLP
//! gRPC (and, as another tenant, OTLP/HTTP) arrives whole — every span,
//! service, trace, kind and error — and its traces read back by id.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;

use common::{Options, TestServer};
use serde_json::Value;
use spanlake_datasets::{GenConfig, Generator};

/// `POST /api/sql` as `tenant`; the JSON rows.
async fn sql(server: &TestServer, query: &str, tenant: Option<&str>) -> Vec<Value> {
    let mut request = reqwest::Client::new().post(server.url("/api/sql")).body(query.to_owned());
    if let Some(t) = tenant {
        request = request.header("X-Scope-OrgID", t);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "{query}: {body}");
    serde_json::from_str::<Value>(&body).unwrap().as_array().unwrap().clone()
}

fn run_gen(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_spanlake")).arg("gen").args(args).output().expect("run spanlake gen");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "spanlake gen {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// What the server should hold: computed from the library with the CLI's defaults.
struct Expected {
    spans: u64,
    services: usize,
    traces: usize,
    /// Spans per OTLP kind.
    kinds: BTreeMap<i64, u64>,
    /// Spans with status ERROR.
    errors: u64,
    /// The largest trace: id and sorted span names.
    sample: (Vec<u8>, Vec<String>),
}

fn expected() -> Expected {
    let mut services = HashSet::new();
    let mut traces: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    let mut kinds = BTreeMap::new();
    let (mut spans, mut errors) = (0, 0);
    for request in Generator::new(GenConfig::default()).unwrap() {
        for rs in &request.resource_spans {
            let resource = rs.resource.as_ref().unwrap();
            let name = resource.attributes.iter().find(|kv| kv.key == "service.name").unwrap();
            services.insert(format!("{:?}", name.value));
            for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                spans += 1;
                *kinds.entry(span.kind as i64).or_default() += 1;
                errors += span.status.as_ref().is_some_and(|s| s.code == 2) as u64;
                traces.entry(span.trace_id.clone()).or_default().push(span.name.clone());
            }
        }
    }
    let (id, mut names) = traces.iter().max_by_key(|(_, names)| names.len()).map(|(id, names)| (id.clone(), names.clone())).unwrap();
    names.sort();
    Expected { spans, services: services.len(), traces: traces.len(), kinds, errors, sample: (id, names) }
}

async fn assert_arrived(server: &TestServer, tenant: Option<&str>, expected: &Expected) {
    let totals = sql(
        server,
        "SELECT count(*) AS spans, count(DISTINCT service_name) AS services, count(DISTINCT trace_id) AS traces, \
         sum(CASE WHEN status_code = 2 THEN 1 ELSE 0 END) AS errors, \
         sum(CASE WHEN parent_span_id IS NULL THEN 1 ELSE 0 END) AS roots FROM spans",
        tenant,
    )
    .await;
    let row = &totals[0];
    assert_eq!(row["spans"].as_u64(), Some(expected.spans), "{row}");
    assert_eq!(row["services"].as_u64(), Some(expected.services as u64), "{row}");
    assert_eq!(row["traces"].as_u64(), Some(expected.traces as u64), "{row}");
    assert_eq!(row["errors"].as_u64(), Some(expected.errors), "{row}");
    assert_eq!(row["roots"].as_u64(), Some(expected.traces as u64), "one root per trace: {row}");

    let kinds: BTreeMap<i64, u64> = sql(server, "SELECT kind, count(*) AS n FROM spans GROUP BY kind", tenant)
        .await
        .iter()
        .map(|r| (r["kind"].as_i64().unwrap(), r["n"].as_u64().unwrap()))
        .collect();
    assert_eq!(kinds, expected.kinds);

    let (id, names) = &expected.sample;
    let mut request = reqwest::Client::new().get(server.url(&format!("/api/traces/{}", hex::encode(id))));
    if let Some(t) = tenant {
        request = request.header("X-Scope-OrgID", t);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let trace: Value = response.json().await.unwrap();
    let got = common::span_names_in(&trace);
    assert_eq!(&got, names, "trace {} reads back whole", hex::encode(id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_tiny_sent_over_grpc_and_http_arrives_whole() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    let expected = expected();
    assert!((9_000..11_000).contains(&expected.spans), "tiny is ~10k spans: {}", expected.spans);
    assert!(expected.services >= 25, "{} services", expected.services);

    let grpc = format!("grpc://{}", server.otlp_grpc);
    let report = run_gen(&["--size", "tiny", "--send", &grpc, "--connections", "3"]);
    assert!(report.contains(&format!("sent {} spans", expected.spans)) && report.contains(" 0 failed requests"), "{report}");
    assert_arrived(&server, None, &expected).await;

    // OTLP/HTTP, as another tenant, rate-limited: the same dataset, isolated.
    let http = format!("http://{}", server.otlp_http);
    let report = run_gen(&["--send", &http, "--tenant", "other", "--rate", "50000"]);
    assert!(report.contains(&format!("sent {} spans", expected.spans)), "{report}");
    assert_arrived(&server, Some("other"), &expected).await;

    // Flushed to blocks, the data is the same.
    server.flush().await;
    assert_arrived(&server, None, &expected).await;
}
