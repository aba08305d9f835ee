//! `/api/search` and the streaming gRPC search, against the real server:
//! Tempo's response shape (checked strictly, as Grafana parses it), most
//! recent traces first, spss, tag search, and clear 400s for bad TraceQL.

mod common;

use std::collections::HashSet;

use common::{Options, TestServer, post_otlp, random_trace_id, trace};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use serde_json::Value;
use spanlake::tempopb::SearchRequest;
use spanlake::tempopb::streaming_querier_client::StreamingQuerierClient;

/// Fails on any key Tempo's protobuf-JSON does not have (Grafana is strict).
fn assert_only_keys(value: &Value, allowed: &[&str], at: &str) {
    let object = value.as_object().unwrap_or_else(|| panic!("{at} is not an object: {value}"));
    for key in object.keys() {
        assert!(allowed.contains(&key.as_str()), "unexpected field {at}.{key} in {value}");
    }
}

fn assert_tempo_search_shape(body: &Value) {
    assert_only_keys(body, &["traces", "metrics"], "response");
    assert_only_keys(
        &body["metrics"],
        &["inspectedTraces", "inspectedBytes", "totalBlocks", "completedJobs", "totalJobs", "totalBlockBytes", "inspectedSpans"],
        "metrics",
    );
    for t in body["traces"].as_array().unwrap() {
        assert_only_keys(
            t,
            &["traceID", "rootServiceName", "rootTraceName", "startTimeUnixNano", "durationMs", "spanSet", "spanSets", "serviceStats"],
            "trace",
        );
        assert!(t["startTimeUnixNano"].is_string(), "uint64 as string");
        for set in t["spanSets"].as_array().unwrap() {
            assert_only_keys(set, &["spans", "matched", "attributes"], "spanSet");
            for s in set["spans"].as_array().unwrap() {
                assert_only_keys(s, &["spanID", "name", "startTimeUnixNano", "durationNanos", "attributes"], "span");
                assert!(s["durationNanos"].is_string());
            }
        }
        for (_, stats) in t["serviceStats"].as_object().unwrap() {
            assert_only_keys(stats, &["spanCount", "errorCount"], "serviceStats");
        }
    }
}

async fn search(server: &TestServer, query: &str) -> (u16, Value) {
    let r = reqwest::Client::new().get(server.url("/api/search")).query(&[("q", query)]).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn search_params(server: &TestServer, params: &[(&str, &str)]) -> (u16, Value) {
    let r = reqwest::Client::new().get(server.url("/api/search")).query(params).send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn with_start(mut rs: ResourceSpans, start_nanos: u64, duration: u64) -> ResourceSpans {
    for span in &mut rs.scope_spans[0].spans {
        span.start_time_unix_nano = start_nanos;
        span.end_time_unix_nano = start_nanos + duration;
    }
    rs
}

#[tokio::test]
async fn search_returns_tempo_shapes_most_recent_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let ids: Vec<[u8; 16]> = (0..5).map(|_| random_trace_id()).collect();
    for (i, id) in ids.iter().enumerate() {
        let rs = trace(*id, "shop", &[(1, None, "GET /cart"), (2, Some(1), "SELECT"), (3, Some(1), "SELECT"), (4, Some(1), "SELECT"), (5, Some(1), "SELECT")]);
        let rs = with_start(rs, now - (10 - i as u64) * 1_000_000_000, 250_000_000);
        assert_eq!(post_otlp(&server, vec![rs], None).await.0, 200);
        if i == 2 {
            server.flush().await;
        }
    }
    // A trace whose root has not arrived.
    let orphan = random_trace_id();
    assert_eq!(post_otlp(&server, vec![trace(orphan, "worker", &[(7, Some(9), "consume")])], None).await.0, 200);

    let (status, body) = search_params(&server, &[("q", r#"{ name = "SELECT" }"#), ("limit", "3")]).await;
    assert_eq!(status, 200, "{body}");
    assert_tempo_search_shape(&body);
    let traces = body["traces"].as_array().unwrap();
    let got: Vec<&str> = traces.iter().map(|t| t["traceID"].as_str().unwrap()).collect();
    let want: Vec<String> = ids.iter().rev().take(3).map(hex::encode).collect();
    assert_eq!(got, want, "most recent first, limited");
    let first = &traces[0];
    assert_eq!(first["rootServiceName"], "shop");
    assert_eq!(first["rootTraceName"], "GET /cart");
    assert_eq!(first["durationMs"], 250);
    assert_eq!(first["spanSets"][0]["matched"], 4);
    assert_eq!(first["spanSets"][0]["spans"].as_array().unwrap().len(), 3, "spss defaults to 3");
    assert_eq!(first["spanSet"], first["spanSets"][0]);
    assert_eq!(first["serviceStats"]["shop"]["spanCount"], 4);

    let (_, body) = search_params(&server, &[("q", "{}"), ("spss", "1"), ("limit", "100")]).await;
    assert_tempo_search_shape(&body);
    let traces = body["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 6);
    assert!(traces.iter().all(|t| t["spanSets"][0]["spans"].as_array().unwrap().len() == 1));
    let orphan_trace = traces.iter().find(|t| t["traceID"] == hex::encode(orphan)).unwrap();
    assert_eq!(orphan_trace["rootServiceName"], "<root span not yet received>");

    // by() and select() show up as attributes.
    let (_, body) = search(&server, r#"{ name = "SELECT" } | by(resource.service.name) | select(span.http.method)"#).await;
    assert_tempo_search_shape(&body);
    let set = &body["traces"][0]["spanSets"][0];
    assert_eq!(set["attributes"][0]["key"], "resource.service.name");
    assert_eq!(set["attributes"][0]["value"]["stringValue"], "shop");
    assert_eq!(set["spans"][0]["attributes"][0]["key"], "span.http.method");

    // Tag search (logfmt) and duration bounds.
    let (_, body) = search_params(&server, &[("tags", "service.name=worker")]).await;
    let got: HashSet<&str> = body["traces"].as_array().unwrap().iter().map(|t| t["traceID"].as_str().unwrap()).collect();
    assert_eq!(got, HashSet::from([hex::encode(orphan).as_str()]));
    let (_, body) = search_params(&server, &[("q", "{}"), ("minDuration", "200ms"), ("limit", "100")]).await;
    assert_eq!(body["traces"].as_array().unwrap().len(), 5);
    let (_, body) = search_params(&server, &[("q", "{}"), ("maxDuration", "100ms"), ("limit", "100")]).await;
    assert_eq!(body["traces"].as_array().unwrap().len(), 1);
    // A time window before everything finds nothing.
    let (status, body) = search_params(&server, &[("q", "{}"), ("start", "1000"), ("end", "2000")]).await;
    assert_eq!(status, 200);
    assert_eq!(body["traces"], serde_json::json!([]));
}

#[tokio::test]
async fn bad_searches_are_400_with_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    for (query, needle) in [
        ("{ .a = ", "1:"),
        ("{ span:nope = 1 }", "span:nope"),
        (r#"{ name =~ "(" }"#, "regular expression"),
        ("{ duration > 1s } | rate()", "metrics"),
        ("{ kind = server", "1:"),
        ("{ status > ok }", "1:"),
        (r#"{ span.a + "x" = 1 }"#, "1:"),
        (&format!("{{ name =~ \"{}\" }}", "a{1000}".repeat(200)), ""),
    ] {
        let (status, body) = search(&server, query).await;
        assert_eq!(status, 400, "{query}: {body}");
        let text = body.as_str().unwrap_or_default().to_lowercase();
        assert!(text.contains(&needle.to_lowercase()), "{query}: {text}");
    }
    for (param, value) in [("limit", "0"), ("spss", "1000"), ("minDuration", "fast"), ("start", "10")] {
        let mut params = vec![("q", "{}"), (param, value)];
        if param == "start" {
            params.push(("end", "5"));
        }
        let (status, body) = search_params(&server, &params).await;
        assert_eq!(status, 400, "{param}={value}: {body}");
    }
    assert!(server.ready().await);
}

#[tokio::test]
async fn streaming_search_over_grpc_on_the_http_port() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    // One trace in a block, one still in memory: the stream answers from
    // memory first, then only what is new.
    let old = random_trace_id();
    assert_eq!(post_otlp(&server, vec![trace(old, "api", &[(1, None, "GET /"), (2, Some(1), "db")])], Some("acme")).await.0, 200);
    server.flush().await;
    let id = random_trace_id();
    assert_eq!(post_otlp(&server, vec![trace(id, "api", &[(1, None, "GET /"), (2, Some(1), "db")])], Some("acme")).await.0, 200);
    let mut client = StreamingQuerierClient::connect(format!("http://{}", server.http)).await.unwrap();
    let mut request = tonic::Request::new(SearchRequest { query: "{ name = \"db\" }".into(), limit: 5, spans_per_span_set: 3, ..Default::default() });
    request.metadata_mut().insert("x-scope-orgid", "acme".parse().unwrap());
    let mut stream = client.search(request).await.unwrap().into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        messages.push(message);
    }
    let ids: Vec<Vec<String>> = messages.iter().map(|m| m.traces.iter().map(|t| t.trace_id.clone()).collect()).collect();
    assert_eq!(ids, vec![vec![hex::encode(id)], vec![hex::encode(old)]], "memory first, then only new traces");
    assert_eq!(messages[0].traces[0].span_sets[0].spans[0].name, "db");
    assert!(messages[1].metrics.as_ref().unwrap().total_blocks >= 1);
    // Grafana's health check for streaming: `{}` with limit 1.
    let request = tonic::Request::new(SearchRequest { query: "{}".into(), limit: 1, ..Default::default() });
    assert!(client.search(request).await.is_ok());
    let request = tonic::Request::new(SearchRequest { query: "{ nope".into(), ..Default::default() });
    assert_eq!(client.search(request).await.unwrap_err().code(), tonic::Code::InvalidArgument);
    let request = tonic::Request::new(SearchRequest { query: "{}".into(), limit: u32::MAX, ..Default::default() });
    assert_eq!(client.search(request).await.unwrap_err().code(), tonic::Code::InvalidArgument, "limit capped as over HTTP");
    // HTTP/1.1 on the same port still works.
    assert!(server.ready().await);
}

#[tokio::test]
async fn explain_shows_the_first_pass_pruning_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    assert_eq!(post_otlp(&server, vec![trace(random_trace_id(), "api", &[(1, None, "GET /"), (2, Some(1), "db")])], None).await.0, 200);
    server.flush().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spanlake"))
        .args(["traceql", "--explain", "--config"])
        .arg(dir.path().join("spanlake.yaml"))
        .arg(r#"{ span.http.method = "GET" && duration > 1ms }"#)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let scan = text.lines().find(|l| l.contains("DataSourceExec") && l.contains("parquet")).unwrap_or_else(|| panic!("{text}"));
    // The first pass prunes row groups and pages with the filter inside the
    // Parquet scan, reads only the columns it needs, and evaluates the
    // filter on whole batches above the scan (no late materialisation: see
    // `first_pass_session`).
    let projection = scan.split("projection=[").nth(1).and_then(|p| p.split(']').next()).unwrap_or_else(|| panic!("{scan}"));
    let mut columns: Vec<&str> = projection.split(", ").collect();
    columns.sort();
    assert_eq!(columns, ["duration_nano", "http_method", "trace_id", "trace_start_unix_nano"], "{scan}");
    assert!(scan.contains("predicate=http_method@") && scan.contains("duration_nano@"), "{scan}");
    assert!(scan.contains("pruning_predicate="), "{scan}");
    assert!(text.lines().any(|l| l.contains("FilterExec: http_method@")), "{text}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spanlake"))
        .args(["traceql", "--config"])
        .arg(dir.path().join("spanlake.yaml"))
        .arg(r#"{ name = "db" }"#)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["traces"][0]["spanSets"][0]["spans"][0]["name"], "db");
}
