//! Fuzz-style robustness of every receiver port: random bytes, every
//! truncation of a valid payload and bit-flipped payloads go into the UDP
//! agent ports (compact and binary), Jaeger thrift HTTP, Jaeger gRPC and
//! Zipkin (v2 JSON, proto3, v1 JSON). The server must answer each HTTP/gRPC
//! request with a clean 4xx / gRPC error (never 5xx, never a dropped
//! connection), count the rejects in its malformed counters, stay ready and
//! still take a valid write on every port afterwards.

mod common;
mod jaeger_thrift_writer;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Options, TestServer};
use jaeger_thrift_writer::{Proto, batch, emit_batch, trace_id_bytes};

/// Seeded, reproducible randomness (the seed is printed so a failure can be
/// replayed), from rand_chacha like the dataset generator.
struct Rng(ChaCha8Rng);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// `data` with a few random bytes replaced.
    fn mutate(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = data.to_vec();
        for _ in 0..1 + self.below(4) {
            let i = self.below(out.len());
            out[i] = self.next() as u8;
        }
        out
    }
}

/// Values of counter `family` (a `{protocol=...}` family), by protocol.
async fn counts(server: &TestServer, family: &str) -> HashMap<String, u64> {
    let text = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    let prefix = format!("{family}{{protocol=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter_map(|rest| {
            let (protocol, value) = rest.split_once("\"} ")?;
            Some((protocol.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

async fn post_status(client: &reqwest::Client, url: &str, content_type: &str, body: Vec<u8>) -> u16 {
    let r = client.post(url).header("Content-Type", content_type).body(body).send().await;
    r.unwrap_or_else(|e| panic!("{url}: connection failed: {e}")).status().as_u16()
}

/// One gRPC call with a raw (possibly garbage) message over h2c; returns the
/// grpc-status (from headers, or 0 when the call went through).
async fn grpc_raw(client: &reqwest::Client, addr: std::net::SocketAddr, method: &str, message: &[u8]) -> String {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(message.len() as u32).to_be_bytes());
    framed.extend_from_slice(message);
    let r = client
        .post(format!("http://{addr}/{method}"))
        .header("Content-Type", "application/grpc")
        .header("TE", "trailers")
        .body(framed)
        .send()
        .await
        .unwrap_or_else(|e| panic!("gRPC call failed at the transport: {e}"));
    assert_eq!(r.status(), 200);
    let status = r.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_owned());
    status.unwrap_or_else(|| "0".into())
}

const JAEGER_POST_SPANS: &str = "jaeger.api_v2.CollectorService/PostSpans";
const OTLP_EXPORT: &str = "opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// A valid OTLP `ExportTraceServiceRequest`: one span named `name` in trace
/// `low`, with an attribute of each kind, an event and a link.
fn export_request(low: i64, name: &str) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
    let kv = |key: &str, value: Value| KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() };
    let attributes = vec![
        kv("s", Value::StringValue("v".into())),
        kv("i", Value::IntValue(-3)),
        kv("f", Value::DoubleValue(0.5)),
        kv("b", Value::BoolValue(true)),
        kv("a", Value::ArrayValue(ArrayValue { values: vec![AnyValue { value: Some(Value::IntValue(1)) }] })),
    ];
    let span = Span {
        trace_id: trace_id_bytes(low).to_vec(),
        span_id: vec![7; 8],
        name: name.into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_000_001_000,
        attributes: attributes.clone(),
        events: vec![span::Event { name: "e".into(), attributes: attributes.clone(), ..Default::default() }],
        links: vec![span::Link { trace_id: vec![3; 16], span_id: vec![4; 8], attributes, ..Default::default() }],
        ..Default::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource { attributes: vec![kv("service.name", Value::StringValue("fuzz".into()))], ..Default::default() }),
            scope_spans: vec![ScopeSpans { spans: vec![span], ..Default::default() }],
            ..Default::default()
        }],
    };
    prost::Message::encode_to_vec(&request)
}

/// A valid `PostSpansRequest`: one span named `name` in trace `low`.
fn post_spans_request(low: i64, name: &str) -> spanlake_ingest::proto::jaeger::PostSpansRequest {
    use spanlake_ingest::proto::jaeger as pb;
    pb::PostSpansRequest {
        batch: Some(pb::Batch {
            spans: vec![pb::Span {
                trace_id: trace_id_bytes(low).to_vec(),
                span_id: vec![9; 8],
                operation_name: name.into(),
                start_time: Some(spanlake_ingest::proto::prost_types::Timestamp { seconds: 1_700_000_000, nanos: 0 }),
                tags: vec![pb::KeyValue { key: "k".into(), v_type: pb::ValueType::Int64 as i32, v_int64: 5, ..Default::default() }],
                ..Default::default()
            }],
            process: Some(pb::Process { service_name: "fuzz".into(), tags: vec![] }),
        }),
    }
}

#[tokio::test]
async fn garbage_into_every_port_is_counted_and_the_server_keeps_serving() {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    println!("fuzz seed {seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), Options::default());
    let http = reqwest::Client::new();
    let h2c = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let spans = [(1, 0, "root"), (2, 1, "child"), (3, 2, "leaf")];

    // UDP: truncations and random bytes (each one malformed), mutations
    // (mostly malformed), paced: the kernel drops loopback datagrams when
    // the socket buffer is full, and those the server cannot count.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut udp_sent = HashMap::new();
    for (proto, addr, name) in [
        (Proto::Compact, server.jaeger_thrift_compact, "jaeger_thrift_compact"),
        (Proto::Binary, server.jaeger_thrift_binary, "jaeger_thrift_binary"),
    ] {
        let valid = emit_batch(proto, "fuzz", 42, &spans, 8);
        let mut datagrams: Vec<Vec<u8>> = (0..valid.len()).map(|n| valid[..n].to_vec()).collect();
        datagrams.extend((0..300).map(|_| rng.bytes(3000)));
        let malformed = datagrams.len();
        datagrams.extend((0..100).map(|_| rng.mutate(&valid)));
        for (i, d) in datagrams.iter().enumerate() {
            socket.send_to(d, addr).unwrap();
            if i % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        udp_sent.insert(name, (malformed as u64, datagrams.len() as u64));
    }
    // Jaeger thrift HTTP: every truncation and random bodies are 400s.
    let jaeger_url = format!("http://{}/api/traces", server.jaeger_thrift_http);
    let valid = batch(Proto::Binary, "fuzz", 43, &spans, 8);
    let mut jaeger_http_rejects = 0;
    for n in (0..valid.len()).step_by(3) {
        assert_eq!(post_status(&http, &jaeger_url, "application/x-thrift", valid[..n].to_vec()).await, 400, "prefix {n}");
        jaeger_http_rejects += 1;
    }
    for _ in 0..100 {
        assert_eq!(post_status(&http, &jaeger_url, "application/x-thrift", rng.bytes(2000)).await, 400);
        jaeger_http_rejects += 1;
        let status = post_status(&http, &jaeger_url, "application/x-thrift", rng.mutate(&valid)).await;
        assert!(status == 202 || status == 400, "mutated batch: {status}");
    }

    // Zipkin: truncated JSON (v2, v1), random bytes as JSON and protobuf.
    let zipkin_v2 = format!("http://{}/api/v2/spans", server.zipkin);
    let zipkin_v1 = format!("http://{}/api/v1/spans", server.zipkin);
    let v2_json = br#"[{"traceId":"00000000000000000000000000000044","id":"0000000000000001","name":"root","kind":"CLIENT","timestamp":1700000000000000,"duration":5,"localEndpoint":{"serviceName":"fuzz","ipv4":"127.0.0.1","port":80},"annotations":[{"timestamp":1700000000000001,"value":"x"}],"tags":{"a":"b"}}]"#;
    let v1_json = br#"[{"traceId":"0000000000000045","id":"0000000000000001","name":"rpc","timestamp":1700000000000000,"duration":5,"annotations":[{"timestamp":1700000000000000,"value":"cs","endpoint":{"serviceName":"fuzz"}}],"binaryAnnotations":[{"key":"sa","value":true,"endpoint":{"serviceName":"db","ipv4":"10.0.0.1","port":5432}}]}]"#;
    let mut zipkin_rejects = 0;
    for (url, valid) in [(&zipkin_v2, &v2_json[..]), (&zipkin_v1, &v1_json[..])] {
        for n in 0..valid.len() {
            assert_eq!(post_status(&http, url, "application/json", valid[..n].to_vec()).await, 400, "{url} prefix {n}");
            zipkin_rejects += 1;
        }
        for _ in 0..50 {
            let status = post_status(&http, url, "application/json", rng.mutate(valid)).await;
            assert!(status == 202 || status == 400, "{url} mutated: {status}");
        }
    }
    for _ in 0..100 {
        let status = post_status(&http, &zipkin_v2, "application/x-protobuf", rng.bytes(2000)).await;
        assert!(status == 202 || status == 400, "random protobuf: {status}");
    }

    // Jaeger and OTLP gRPC: random messages and every truncation of a valid
    // one, for OTLP (read by our own protobuf reader) mutations of it too
    // (malformed protobuf or ids are INVALID_ARGUMENT, code 3).
    let valid_jaeger = prost::Message::encode_to_vec(&post_spans_request(0x46, "fuzz"));
    let valid_otlp = export_request(0x47, "fuzz");
    let mut grpc_statuses = HashMap::<(&str, String), u32>::new();
    for (method, addr, valid) in [(JAEGER_POST_SPANS, server.jaeger_grpc, &valid_jaeger), (OTLP_EXPORT, server.otlp_grpc, &valid_otlp)] {
        let mut messages: Vec<Vec<u8>> = (0..valid.len()).map(|n| valid[..n].to_vec()).collect();
        messages.extend((0..100).map(|_| rng.bytes(500)));
        if method == OTLP_EXPORT {
            messages.extend((0..300).map(|_| rng.mutate(valid)));
        }
        for message in &messages {
            let status = grpc_raw(&h2c, addr, method, message).await;
            assert!(status == "0" || status == "3", "{method} message: grpc-status {status}");
            *grpc_statuses.entry((method, status)).or_default() += 1;
        }
    }
    let rejected = |method| grpc_statuses.get(&(method, "3".to_owned())).copied().unwrap_or(0) as u64;
    assert!(rejected(OTLP_EXPORT) > valid_otlp.len() as u64 / 2, "most truncations are malformed: {grpc_statuses:?}");

    // Still serving, and the rejects were counted.
    assert!(server.ready().await, "not ready after the fuzzing");
    let mut received = counts(&server, "spanlake_receiver_udp_datagrams_total").await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = counts(&server, "spanlake_receiver_udp_datagrams_total").await;
        if now == received {
            break;
        }
        received = now;
    }
    let counts = counts(&server, "spanlake_receiver_malformed_payloads_total").await;
    println!("malformed {counts:?}; UDP received {received:?} of (malformed, all) sent {udp_sent:?}; gRPC statuses {grpc_statuses:?}");
    for (name, (malformed_sent, sent)) in &udp_sent {
        let got = received.get(*name).copied().unwrap_or(0);
        let malformed = counts.get(*name).copied().unwrap_or(0);
        assert!(got * 10 >= sent * 9, "{name}: only {got} of {sent} datagrams arrived");
        // Every datagram that arrived is counted, and every malformed one as such.
        assert!(malformed <= got && malformed + (sent - malformed_sent) >= got, "{name}: {malformed} malformed of {got} received");
    }
    assert!(counts.get("jaeger_thrift_http").copied().unwrap_or(0) >= jaeger_http_rejects);
    assert!(counts.get("zipkin").copied().unwrap_or(0) >= zipkin_rejects);
    assert_eq!(counts.get("jaeger_grpc").copied().unwrap_or(0), rejected(JAEGER_POST_SPANS));
    assert_eq!(counts.get("otlp_grpc").copied().unwrap_or(0), rejected(OTLP_EXPORT));

    // A valid write on every port still succeeds.
    for (proto, addr, low) in
        [(Proto::Compact, server.jaeger_thrift_compact, 1001), (Proto::Binary, server.jaeger_thrift_binary, 1002)]
    {
        socket.send_to(&emit_batch(proto, "after", low, &spans, 8), addr).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.span_names(&trace_id_bytes(low)).await.len() < 3 {
            assert!(Instant::now() < deadline, "valid datagram after fuzzing not ingested ({proto:?})");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(post_status(&http, &jaeger_url, "application/x-thrift", batch(Proto::Binary, "after", 1003, &spans, 8)).await, 202);
    assert_eq!(server.span_names(&trace_id_bytes(1003)).await, ["child", "leaf", "root"]);
    // A trace id the fuzzing never used: a mutated payload may have been
    // valid and accepted into trace 0x44 under another span id.
    let after_json = String::from_utf8_lossy(v2_json).replace("00000000000000000000000000000044", "0000000000000000000000000000004a");
    assert_eq!(post_status(&http, &zipkin_v2, "application/json", after_json.into_bytes()).await, 202);
    assert_eq!(server.span_names(&trace_id_bytes(0x4a)).await, ["root"]);
    let request = post_spans_request(1004, "grpc-after");
    assert_eq!(grpc_raw(&h2c, server.jaeger_grpc, JAEGER_POST_SPANS, &prost::Message::encode_to_vec(&request)).await, "0");
    assert_eq!(server.span_names(&trace_id_bytes(1004)).await, ["grpc-after"]);
    assert_eq!(grpc_raw(&h2c, server.otlp_grpc, OTLP_EXPORT, &export_request(1005, "otlp-after")).await, "0");
    assert_eq!(server.span_names(&trace_id_bytes(1005)).await, ["otlp-after"]);
}
