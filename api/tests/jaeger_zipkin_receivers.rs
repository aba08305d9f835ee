//! Jaeger and Zipkin receivers at the protocol level, against the real
//! server: status codes and messages (202, 400, 413, 415), gzip and chunked
//! bodies, tenants, UDP datagrams near the size limit in both Thrift
//! protocols, the Jaeger gRPC service's errors, Zipkin's
//! `parse_string_tags`, and switching receivers off in the config.

mod common;
mod jaeger_thrift_writer;

use std::io::Write;
use std::time::{Duration, Instant};

use common::{Options, TestServer};
use jaeger_thrift_writer::{Proto, batch, emit_batch, trace_id_bytes};
use spanlake_ingest::proto::jaeger as pb;
use spanlake_ingest::proto::jaeger::collector_service_client::CollectorServiceClient;

fn random_low() -> i64 {
    (uuid::Uuid::new_v4().as_u128() as i64) | 1
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Waits until trace `id` has `n` spans (UDP is acknowledged by nobody).
async fn wait_for_spans(server: &TestServer, id: &[u8], tenant: Option<&str>, n: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(json) = server.trace_json(id, tenant).await {
            let count: usize = json["batches"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|b| b["scopeSpans"].as_array().unwrap())
                .map(|s| s["spans"].as_array().unwrap().len())
                .sum();
            if count >= n {
                return json;
            }
        }
        assert!(Instant::now() < deadline, "trace {} did not arrive", hex::encode(id));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn post(url: String, content_type: &str, body: Vec<u8>, extra: &[(&str, &str)]) -> (u16, String) {
    let mut req = reqwest::Client::new().post(url).header("Content-Type", content_type).body(body);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn udp_datagrams_of_both_protocols_up_to_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for (proto, addr) in [(Proto::Compact, server.jaeger_thrift_compact), (Proto::Binary, server.jaeger_thrift_binary)] {
        // Four spans of ~16 000 bytes each: a datagram just under 65 000 bytes.
        let low = random_low();
        let spans = [(1, 0, "root"), (2, 1, "a"), (3, 1, "b"), (4, 2, "c")];
        let datagram = emit_batch(proto, "udp-svc", low, &spans, 16_100);
        assert!((64_000..=65_000).contains(&datagram.len()), "{}", datagram.len());
        socket.send_to(&datagram, addr).unwrap();
        let json = wait_for_spans(&server, &trace_id_bytes(low), None, 4).await;
        let resource = &json["batches"][0]["resource"]["attributes"][0];
        assert_eq!(resource["value"]["stringValue"], "udp-svc");
    }
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    for protocol in ["jaeger_thrift_compact", "jaeger_thrift_binary"] {
        let line = format!("spanlake_receiver_udp_datagrams_total{{protocol=\"{protocol}\"}} 1");
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }
}

#[tokio::test]
async fn jaeger_thrift_http_statuses_gzip_chunked_and_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    let url = format!("http://{}/api/traces", server.jaeger_thrift_http);
    let low = random_low();
    let body = batch(Proto::Binary, "http-svc", low, &[(1, 0, "root"), (2, 1, "child")], 10);

    let (status, text) = post(url.clone(), "application/json", body.clone(), &[]).await;
    assert_eq!(status, 415);
    assert!(text.contains("application/x-thrift"), "{text}");
    let (status, text) = post(url.clone(), "application/x-thrift", body[..body.len() / 2].to_vec(), &[]).await;
    assert_eq!(status, 400);
    assert!(text.contains("Jaeger thrift Batch") && text.contains("truncated"), "{text}");
    let (status, _) = post(url.clone(), "application/x-thrift", vec![0; 5 * 1024 * 1024], &[]).await;
    assert_eq!(status, 413);

    // gzip, then chunked, then a tenant.
    let (status, text) = post(url.clone(), "application/vnd.apache.thrift.binary", gzip(&body), &[("Content-Encoding", "gzip")]).await;
    assert_eq!((status, text.as_str()), (202, ""));
    assert_eq!(server.span_names(&trace_id_bytes(low)).await, ["child", "root"]);
    let low2 = random_low();
    let body2 = batch(Proto::Binary, "http-svc", low2, &[(1, 0, "chunked")], 10);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body2.chunks(7).map(|c| Ok(c.to_vec())).collect();
    let r = reqwest::Client::new()
        .post(url.clone())
        .header("Content-Type", "application/x-thrift")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(server.span_names(&trace_id_bytes(low2)).await, ["chunked"]);
    let low3 = random_low();
    let body3 = batch(Proto::Binary, "http-svc", low3, &[(1, 0, "tenant-a")], 10);
    assert_eq!(post(url.clone(), "application/x-thrift", body3, &[("X-Scope-OrgID", "team-a")]).await.0, 202);
    assert!(server.trace_json(&trace_id_bytes(low3), Some("team-a")).await.is_some());
    assert!(server.trace_json(&trace_id_bytes(low3), None).await.is_none());
}

#[tokio::test]
async fn zipkin_statuses_formats_gzip_chunked_and_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    let v2 = format!("http://{}/api/v2/spans", server.zipkin);
    let v1 = format!("http://{}/api/v1/spans", server.zipkin);
    let id = common::random_trace_id();
    let hex_id = hex::encode(id);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros();
    let span = |name: &str, sid: &str| {
        format!(
            r#"{{"traceId":"{hex_id}","id":"{sid}","name":"{name}","kind":"SERVER","timestamp":{now},"duration":10,"localEndpoint":{{"serviceName":"zk"}},"tags":{{"k":"v"}}}}"#
        )
    };
    let body = format!("[{}]", span("plain", "0000000000000001")).into_bytes();

    let (status, text) = post(v2.clone(), "text/plain", body.clone(), &[]).await;
    assert_eq!(status, 415);
    assert!(text.contains("application/json or application/x-protobuf"), "{text}");
    assert_eq!(post(v1.clone(), "application/x-thrift", vec![0x0c], &[]).await.0, 415);
    let (status, text) = post(v2.clone(), "application/json", body[..body.len() - 3].to_vec(), &[]).await;
    assert_eq!(status, 400);
    assert!(text.contains("Zipkin v2 JSON"), "{text}");
    let (status, text) = post(v2.clone(), "application/json", br#"[{"traceId":"zz","id":"1"}]"#.to_vec(), &[]).await;
    assert_eq!(status, 400);
    assert!(text.contains("traceId"), "{text}");
    assert_eq!(post(v2.clone(), "application/x-protobuf", vec![0xff; 10], &[]).await.0, 400);
    assert_eq!(post(v2.clone(), "application/json", vec![b' '; 5 * 1024 * 1024], &[]).await.0, 413);

    assert_eq!(post(v2.clone(), "application/json", body, &[]).await.0, 202);
    let gz = gzip(format!("[{}]", span("gzipped", "0000000000000002")).as_bytes());
    assert_eq!(post(v2.clone(), "application/json", gz, &[("Content-Encoding", "gzip")]).await.0, 202);
    let chunked = format!("[{}]", span("chunked", "0000000000000003")).into_bytes();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = chunked.chunks(5).map(|c| Ok(c.to_vec())).collect();
    let r = reqwest::Client::new()
        .post(v2.clone())
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "no content type is JSON, as in Zipkin");
    let v1_body = format!(
        r#"[{{"traceId":"{hex_id}","id":"0000000000000004","name":"v1","timestamp":{now},"duration":5,
            "binaryAnnotations":[{{"key":"lc","value":"batch","endpoint":{{"serviceName":"zk"}}}}]}}]"#
    );
    assert_eq!(post(v1.clone(), "application/json", v1_body.into_bytes(), &[]).await.0, 202);
    assert_eq!(server.span_names(&id).await, ["chunked", "gzipped", "plain", "v1"]);

    let tenant_body = format!("[{}]", span("tenant", "0000000000000005")).into_bytes();
    assert_eq!(post(v2.clone(), "application/json", tenant_body, &[("X-Scope-OrgID", "team-z")]).await.0, 202);
    let json = server.trace_json(&id, Some("team-z")).await.unwrap();
    assert_eq!(json["batches"].as_array().unwrap().len(), 1);
    assert_eq!(server.span_names(&id).await.len(), 4);
}

#[tokio::test]
async fn jaeger_grpc_tenants_and_invalid_ids() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.jaeger_grpc)).unwrap().connect().await.unwrap();
    let mut client = CollectorServiceClient::new(channel);
    let id = common::random_trace_id();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let span = |span_id: u8, trace_id: Vec<u8>| pb::Span {
        trace_id,
        span_id: vec![span_id; 8],
        operation_name: format!("op{span_id}"),
        start_time: Some(spanlake_ingest::proto::prost_types::Timestamp { seconds: now.as_secs() as i64, nanos: 7 }),
        duration: Some(spanlake_ingest::proto::prost_types::Duration { seconds: 0, nanos: 1_000 }),
        process: Some(pb::Process { service_name: "grpc-svc".into(), tags: vec![] }),
        ..Default::default()
    };
    let request = |spans: Vec<pb::Span>, tenant: Option<&str>| {
        let mut r = tonic::Request::new(pb::PostSpansRequest { batch: Some(pb::Batch { spans, process: None }) });
        if let Some(t) = tenant {
            r.metadata_mut().insert("x-scope-orgid", t.parse().unwrap());
        }
        r
    };
    client.post_spans(request(vec![span(1, id.to_vec())], Some("team-g"))).await.unwrap();
    let json = server.trace_json(&id, Some("team-g")).await.unwrap();
    let s = &json["batches"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(s["startTimeUnixNano"], (now.as_secs() * 1_000_000_000 + 7).to_string());
    assert!(server.trace_json(&id, None).await.is_none());

    let status = client.post_spans(request(vec![span(2, vec![1, 2, 3])], None)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("trace id of 3 bytes"), "{}", status.message());
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("spanlake_receiver_malformed_payloads_total{protocol=\"jaeger_grpc\"} 1"), "{metrics}");
}

#[tokio::test]
async fn zipkin_parse_string_tags_types_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options { zipkin_yaml: "parse_string_tags: true\n".into(), ..Default::default() });
    let id = common::random_trace_id();
    let body = format!(
        r#"[{{"traceId":"{}","id":"0000000000000001","name":"typed","timestamp":1700000000000000,"duration":1,
            "localEndpoint":{{"serviceName":"zk"}},"tags":{{"n":"42","f":"1.5","b":"true","s":"text"}}}}]"#,
        hex::encode(id)
    );
    assert_eq!(post(format!("http://{}/api/v2/spans", server.zipkin), "application/json", body.into_bytes(), &[]).await.0, 202);
    let json = server.trace_json(&id, None).await.unwrap();
    let mut attrs: Vec<String> = json["batches"][0]["scopeSpans"][0]["spans"][0]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}={}", a["key"].as_str().unwrap(), a["value"]))
        .collect();
    attrs.sort();
    assert_eq!(attrs, [r#"b={"boolValue":true}"#, r#"f={"doubleValue":1.5}"#, r#"n={"intValue":"42"}"#, r#"s={"stringValue":"text"}"#]);
}

#[test]
fn receivers_can_be_switched_off() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "server:\n  http_listen_port: 0\n\
         distributor:\n  receivers:\n    otlp:\n      protocols:\n        grpc: {{endpoint: 127.0.0.1:0}}\n        http: {{enabled: false, endpoint: 127.0.0.1:0}}\n\
         \x20   jaeger:\n      protocols:\n        grpc: {{enabled: false}}\n        thrift_http: {{enabled: false}}\n\
         \x20       thrift_compact: {{endpoint: 127.0.0.1:0}}\n        thrift_binary: {{enabled: false}}\n\
         \x20   zipkin: {{enabled: false}}\n\
         storage:\n  trace:\n    local: {{path: {0}/blocks}}\n    wal: {{path: {0}/wal}}\n",
        dir.path().display()
    );
    let path = dir.path().join("spanlake.yaml");
    std::fs::write(&path, config).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_spanlake"))
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut names = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "spanlake ready" {
            break;
        }
        if let Some(rest) = line.strip_prefix("spanlake listening ") {
            names.push(rest.split(' ').next().unwrap().to_owned());
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    names.sort();
    assert_eq!(names, ["http", "jaeger_thrift_compact", "otlp_grpc"]);
}
