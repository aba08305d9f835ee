//! OTLP in over every encoding, trace by id out in every format, against
//! the real server on loopback.

mod common;

use std::io::Write;

use common::{Options, TestServer, post_otlp, random_trace_id, trace};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use spanlake::tempopb::{Trace, TraceByIdResponse};

#[tokio::test]
async fn otlp_http_protobuf_json_and_gzip_then_read_back_as_json_and_protobuf() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    let client = reqwest::Client::new();

    // Protobuf.
    let id1 = random_trace_id();
    let (status, body) = post_otlp(&server, vec![trace(id1, "cart", &[(1, None, "root"), (2, Some(1), "child")])], None).await;
    assert_eq!(status, 200);
    assert_eq!(ExportTraceServiceResponse::decode(body.as_slice()).unwrap().partial_success, None);

    // OTLP/JSON: hex ids, int64 as strings, enum ints; gzip, chunked.
    let id2 = random_trace_id();
    let json = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"web"}}}}]}},
        "scopeSpans":[{{"spans":[{{"traceId":"{}","spanId":"0102030405060708","name":"GET /","kind":2,
        "startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000500000000",
        "attributes":[{{"key":"http.status_code","value":{{"intValue":"503"}}}}],"status":{{"code":2}}}}]}}]}}]}}"#,
        hex::encode(id2)
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json.as_bytes()).unwrap();
    let gzipped = gz.finish().unwrap();
    let stream = futures::stream::iter(gzipped.chunks(64).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
    let r = client
        .post(server.otlp_http_url())
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "gzip")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(r.text().await.unwrap(), "{}");

    assert_eq!(server.span_names(&id1).await, ["child", "root"]);
    let v1 = server.trace_json(&id2, None).await.unwrap();
    let span = &v1["batches"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["spanId"], "AQIDBAUGBwg=", "ids are base64 in Tempo's JSON");
    assert_eq!(span["kind"], "SPAN_KIND_SERVER");
    assert_eq!(span["status"]["code"], "STATUS_CODE_ERROR");
    assert_eq!(span["endTimeUnixNano"], "1700000000500000000");
    assert_eq!(span["attributes"][0], serde_json::json!({"key": "http.status_code", "value": {"intValue": "503"}}));
    assert_eq!(v1["batches"][0]["resource"]["attributes"][0]["value"]["stringValue"], "web");

    // Protobuf out: v1 `tempopb.Trace`, v2 `TraceByIDResponse`; v2 JSON.
    let get_protobuf = |path: String| client.get(server.url(&path)).header("Accept", "application/protobuf").send();
    for flushed in [false, true] {
        if flushed {
            server.flush().await;
        }
        let r = get_protobuf(format!("/api/traces/{}", hex::encode(id1))).await.unwrap();
        assert_eq!(r.headers()["content-type"], "application/protobuf");
        let t = Trace::decode(r.bytes().await.unwrap()).unwrap();
        assert_eq!(t.resource_spans[0].scope_spans[0].spans.len(), 2);
        let r = get_protobuf(format!("/api/v2/traces/{}", hex::encode(id1))).await.unwrap();
        let v2 = TraceByIdResponse::decode(r.bytes().await.unwrap()).unwrap();
        assert_eq!(v2.trace.unwrap().resource_spans[0].scope_spans[0].spans[0].trace_id, id1);
        let v2: serde_json::Value =
            client.get(server.url(&format!("/api/v2/traces/{}", hex::encode(id2)))).send().await.unwrap().json().await.unwrap();
        assert_eq!(v2["trace"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"], "GET /");
    }

    // start/end restrict the blocks searched: a range before the trace finds nothing.
    let r = client.get(server.url(&format!("/api/traces/{}?start=1000&end=2000", hex::encode(id1)))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = client.get(server.url(&format!("/api/traces/{}?start=1690000000&end=4000000000", hex::encode(id1)))).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn otlp_grpc_with_gzip_partial_success_and_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    let mut client = TraceServiceClient::connect(format!("http://{}", server.otlp_grpc))
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);

    let id = random_trace_id();
    let mut rs = trace(id, "billing", &[(1, None, "charge"), (2, Some(1), "db")]);
    // One invalid span (zero trace id): refused, the rest accepted.
    rs.scope_spans[0].spans.push(Span { trace_id: vec![0; 16], span_id: vec![9; 8], name: "bad".into(), ..Default::default() });
    let mut request = tonic::Request::new(ExportTraceServiceRequest { resource_spans: vec![rs] });
    request.metadata_mut().insert("x-scope-orgid", "team-a".parse().unwrap());
    let response = client.export(request).await.unwrap().into_inner();
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("trace id"), "{}", partial.error_message);

    // Readable by its tenant only.
    let json = server.trace_json(&id, Some("team-a")).await.expect("visible to its tenant");
    assert_eq!(json["batches"][0]["scopeSpans"][0]["spans"].as_array().unwrap().len(), 2);
    assert!(server.trace_json(&id, None).await.is_none(), "not visible to the default tenant");
    assert!(server.trace_json(&id, Some("team-b")).await.is_none(), "not visible to another tenant");

    // Metrics name the ingest and flush counters.
    server.flush().await;
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    for name in [
        "tempo_distributor_ingestion_requests_total",
        "tempo_ingester_blocks_flushed_total",
        "tempo_distributor_spans_received_total",
        "tempo_discarded_spans_total",
        "spanlake_wal_append_duration_seconds",
        "tempo_ingester_flush_duration_seconds",
    ] {
        assert!(metrics.contains(name), "missing {name} in:\n{metrics}");
    }
    assert!(metrics.contains(r#"tempo_discarded_spans_total{tenant="team-a",reason="invalid_span"} 1"#), "{metrics}");
}

#[tokio::test]
async fn ops_endpoints_answer_like_tempo() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    assert!(server.ready().await);
    assert_eq!(reqwest::get(server.url("/api/echo")).await.unwrap().text().await.unwrap(), "echo");
    let info: serde_json::Value = reqwest::get(server.url("/api/status/buildinfo")).await.unwrap().json().await.unwrap();
    assert!(info["version"].as_str().unwrap().starts_with('2'));
    assert!(info.get("goVersion").is_some());
    // The server turns transparent huge pages off for itself (memory kept by the allocator).
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    if let Some(line) = status.lines().find(|l| l.starts_with("THP_enabled:")) {
        assert_eq!(line.split_whitespace().nth(1), Some("0"), "{line}");
    }
}
