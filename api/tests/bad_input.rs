//! Untrusted input: every malformed request gets a clear 4xx (or gRPC
//! status) with a message, and the server keeps serving.

mod common;

use common::{Options, TestServer, post_otlp, random_trace_id, trace};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;

async fn post(server: &TestServer, content_type: &str, encoding: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let mut req = reqwest::Client::new().post(server.otlp_http_url()).header("Content-Type", content_type).body(body);
    if let Some(e) = encoding {
        req = req.header("Content-Encoding", e);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), String::from_utf8_lossy(&r.bytes().await.unwrap()).into_owned())
}

#[tokio::test]
async fn malformed_otlp_http_bodies_get_clear_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    let good = ExportTraceServiceRequest { resource_spans: vec![trace(random_trace_id(), "s", &[(1, None, "a")])] }.encode_to_vec();

    let (status, body) = post(&server, "application/x-protobuf", None, good[..good.len() / 2].to_vec()).await;
    assert_eq!(status, 400, "truncated protobuf: {body}");
    assert!(body.contains("malformed OTLP protobuf"), "{body}");

    let (status, body) = post(&server, "application/json", None, b"{\"resourceSpans\": [".to_vec()).await;
    assert_eq!(status, 400, "invalid JSON: {body}");
    assert!(body.contains("malformed OTLP JSON"), "{body}");

    let (status, body) = post(&server, "text/plain", None, good.clone()).await;
    assert_eq!(status, 415, "wrong content type: {body}");
    assert!(body.contains("unsupported content type"), "{body}");

    let (status, body) = post(&server, "application/x-protobuf", None, vec![0u8; 11 * 1024 * 1024]).await;
    assert_eq!(status, 413, "10 MB+ body: {body}");

    let (status, body) = post(&server, "application/x-protobuf", Some("gzip"), b"not gzip at all".to_vec()).await;
    assert_eq!(status, 400, "bad gzip: {body}");

    let (status, body) = post(&server, "application/x-protobuf", Some("br"), good.clone()).await;
    assert_eq!(status, 400, "unknown encoding: {body}");

    // A gzip bomb: small on the wire, huge inflated.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &vec![0u8; 64 * 1024 * 1024]).unwrap();
    let (status, body) = post(&server, "application/x-protobuf", Some("gzip"), gz.finish().unwrap()).await;
    assert_eq!(status, 413, "gzip bomb: {body}");

    // Spans with ids of the wrong size are refused one by one (partial success).
    let id = random_trace_id();
    let mut rs = trace(id, "s", &[(1, None, "ok")]);
    rs.scope_spans[0].spans[0].span_id = vec![1, 2, 3];
    let (status, _) = post_otlp(&server, vec![rs], None).await;
    assert_eq!(status, 200);
    assert!(server.trace_json(&id, None).await.is_none());

    let (status, body) = {
        let r = reqwest::Client::new()
            .post(server.otlp_http_url())
            .header("Content-Type", "application/x-protobuf")
            .header("X-Scope-OrgID", "../../etc")
            .body(good.clone())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(status, 400, "invalid tenant: {body}");

    assert_eq!(post(&server, "application/x-protobuf", None, good).await.0, 200, "still serving");
    assert!(server.ready().await);
}

#[tokio::test]
async fn bad_query_requests_get_clear_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    let get = |path: &str| {
        let url = server.url(path);
        async move {
            let r = reqwest::get(url).await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) = get("/api/traces/not-a-trace-id").await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid trace id"), "{body}");
    assert_eq!(get("/api/traces/0123456789abcdef0123456789abcdef0").await.0, 400, "33 digits");
    assert_eq!(get("/api/v2/traces/zz").await.0, 400);
    let (status, body) = get("/api/traces/0123456789abcdef?start=abc").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(get("/api/traces/0123456789abcdef?start=20&end=10").await.0, 400);
    assert_eq!(get("/api/traces/0123456789abcdef").await.0, 404, "valid but absent");
    assert_eq!(get("/no/such/route").await.0, 404);
    assert!(server.ready().await);
}

#[tokio::test]
async fn grpc_errors_use_grpc_status_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    let mut client = TraceServiceClient::connect(format!("http://{}", server.otlp_grpc)).await.unwrap();

    // Larger than the 16 MiB message limit.
    let mut rs = trace(random_trace_id(), "s", &[(1, None, "big")]);
    rs.scope_spans[0].spans[0].name = "x".repeat(17 * 1024 * 1024);
    let err = client
        .clone()
        .max_encoding_message_size(64 * 1024 * 1024)
        .export(ExportTraceServiceRequest { resource_spans: vec![rs] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");

    let mut request = tonic::Request::new(ExportTraceServiceRequest::default());
    request.metadata_mut().insert("x-scope-orgid", "a/b".parse().unwrap());
    let err = client.export(request).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");

    // Raw garbage framed as a gRPC message.
    let raw = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let mut frame = vec![0u8, 0, 0, 0, 5];
    frame.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff]);
    let r = raw
        .post(format!("http://{}/opentelemetry.proto.collector.trace.v1.TraceService/Export", server.otlp_grpc))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(frame)
        .send()
        .await
        .unwrap();
    // A decode failure is a trailers-only response: the status is in the headers.
    let status = r.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_owned());
    let message = r.headers().get("grpc-message").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(status.as_deref(), Some("3"), "garbage is INVALID_ARGUMENT: {message:?}");

    let ok = client.export(ExportTraceServiceRequest { resource_spans: vec![trace(random_trace_id(), "s", &[(1, None, "a")])] }).await;
    assert!(ok.is_ok(), "still serving: {ok:?}");
}

#[tokio::test]
async fn overload_is_429_and_resource_exhausted_not_unbounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(
        dir.path(),
        Options { ingester_yaml: "max_unflushed_bytes: 1\nmax_block_duration: 1h\n".into(), ..Default::default() },
    );
    let id = random_trace_id();
    assert_eq!(post_otlp(&server, vec![trace(id, "s", &[(1, None, "first")])], None).await.0, 200);
    let (status, _) = post_otlp(&server, vec![trace(random_trace_id(), "s", &[(1, None, "second")])], None).await;
    assert_eq!(status, 429);
    let mut client = TraceServiceClient::connect(format!("http://{}", server.otlp_grpc)).await.unwrap();
    let err = client
        .export(ExportTraceServiceRequest { resource_spans: vec![trace(random_trace_id(), "s", &[(1, None, "a")])] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    // Once flushed, writes are accepted again; the acknowledged span is kept.
    server.flush().await;
    assert_eq!(post_otlp(&server, vec![trace(random_trace_id(), "s", &[(1, None, "third")])], None).await.0, 200);
    assert_eq!(server.span_names(&id).await, ["first"]);
}

#[tokio::test]
async fn multitenant_mode_refuses_requests_without_a_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options { extra_yaml: "multitenancy_enabled: true\n".into(), ..Default::default() });
    let rs = || vec![trace(random_trace_id(), "s", &[(1, None, "a")])];
    assert_eq!(post_otlp(&server, rs(), None).await.0, 401);
    assert_eq!(post_otlp(&server, rs(), Some("acme")).await.0, 200);
    let r = reqwest::get(server.url("/api/traces/0123456789abcdef")).await.unwrap();
    assert_eq!(r.status(), 401);
}
