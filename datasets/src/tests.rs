//! Properties of generated datasets: determinism, size, structure (one root
//! per trace, parents present and enclosing their children, unique non-zero
//! ids, links to existing spans), error rates, attribute cardinalities, and
//! the file writer and sender.

use std::collections::{HashMap, HashSet};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;

use crate::{Endpoint, GenConfig, Generator, MAX_TRACE_SPANS, OutputFormat, SendOptions, Size};

fn config(seed: u64, spans: u64) -> GenConfig {
    GenConfig { seed, spans, ..GenConfig::default() }
}

fn generate(config: GenConfig) -> Vec<ExportTraceServiceRequest> {
    Generator::new(config).unwrap().collect()
}

/// A span with its resource's attributes.
struct Flat<'r> {
    resource: &'r [KeyValue],
    span: &'r Span,
}

fn flatten(requests: &[ExportTraceServiceRequest]) -> Vec<Flat<'_>> {
    requests
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| {
            let resource = rs.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]);
            rs.scope_spans.iter().flat_map(|ss| &ss.spans).map(move |span| Flat { resource, span })
        })
        .collect()
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
}

fn attr_string(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attr(attributes, key)? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// Distinct values of a span (or, with `resource`, resource) attribute.
fn distinct(spans: &[Flat<'_>], key: &str, resource: bool) -> HashSet<String> {
    spans.iter().filter_map(|f| attr_string(if resource { f.resource } else { &f.span.attributes }, key)).collect()
}

fn encoded(requests: &[ExportTraceServiceRequest]) -> Vec<u8> {
    requests.iter().flat_map(|r| r.encode_to_vec()).collect()
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let a = encoded(&generate(config(1, 20_000)));
    let b = encoded(&generate(config(1, 20_000)));
    let c = encoded(&generate(config(2, 20_000)));
    assert!(a.len() > 1_000_000, "{} bytes", a.len());
    assert!(a == b, "same seed, different bytes");
    assert!(a != c, "different seeds, same bytes");
    let other_services = encoded(&generate(GenConfig { services: 40, ..config(1, 20_000) }));
    assert!(a != other_services);
}

#[test]
fn batching_does_not_change_the_spans() {
    let spans = |batch_spans: usize| {
        let requests = generate(GenConfig { batch_spans, ..config(5, 15_000) });
        for r in &requests {
            let n: usize = r.resource_spans.iter().flat_map(|rs| &rs.scope_spans).map(|ss| ss.spans.len()).sum();
            assert!(n < batch_spans + 2 * MAX_TRACE_SPANS, "{n} spans in a request of {batch_spans}");
        }
        let mut spans: Vec<Vec<u8>> = flatten(&requests).iter().map(|f| f.span.encode_to_vec()).collect();
        spans.sort();
        (requests.len(), spans)
    };
    let (small_batches, a) = spans(100);
    let (large_batches, b) = spans(5000);
    assert!(small_batches > 5 * large_batches, "{small_batches} vs {large_batches} requests");
    assert!(a == b, "the spans depend on the batch size");
}

#[test]
fn sizes_are_within_ten_percent() {
    for target in [Size::Tiny.spans(), 3_000, 60_000] {
        let mut generator = Generator::new(config(3, target)).unwrap();
        let spans: u64 = generator.by_ref().map(|r| flatten(std::slice::from_ref(&r)).len() as u64).sum();
        assert_eq!(spans, generator.stats().spans);
        let ratio = spans as f64 / target as f64;
        assert!((1.0..1.1).contains(&ratio), "{spans} spans for a target of {target}");
    }
    assert_eq!("medium".parse::<Size>().unwrap().spans(), 10_000_000);
    assert_eq!(Size::Large.spans(), 100_000_000);
    assert!("huge".parse::<Size>().is_err());
}

/// Every structural promise, over 100k spans.
#[test]
fn traces_are_structurally_valid() {
    let config = config(11, 100_000);
    let start = config.start_unix_nano;
    let requests = generate(config);
    let mut span_ids = HashSet::new();
    let mut seen_traces = HashSet::new();
    let mut all_spans: HashSet<(Vec<u8>, Vec<u8>)> = HashSet::new();
    let (mut roots, mut error_roots, mut errors, mut spans_total, mut links) = (0, 0, 0, 0, 0);
    let mut kinds = HashSet::new();
    for request in &requests {
        let flat = flatten(std::slice::from_ref(request));
        // Links point back in the stream: to this request or an earlier one.
        all_spans.extend(flat.iter().map(|f| (f.span.trace_id.clone(), f.span.span_id.clone())));
        let mut traces: HashMap<&[u8], Vec<&Span>> = HashMap::new();
        for f in &flat {
            traces.entry(&f.span.trace_id).or_default().push(f.span);
        }
        for (trace_id, spans) in traces {
            assert_eq!(trace_id.len(), 16);
            assert!(trace_id.iter().any(|b| *b != 0));
            assert!(seen_traces.insert(trace_id.to_vec()), "trace split across requests");
            let by_id: HashMap<&[u8], &Span> = spans.iter().map(|s| (s.span_id.as_slice(), *s)).collect();
            let trace_roots: Vec<&&Span> = spans.iter().filter(|s| s.parent_span_id.is_empty()).collect();
            assert_eq!(trace_roots.len(), 1, "trace {} has {} roots", hex(trace_id), trace_roots.len());
            roots += 1;
            let root = trace_roots[0];
            assert!(matches!(SpanKind::try_from(root.kind), Ok(SpanKind::Server) | Ok(SpanKind::Consumer)));
            if root.status.as_ref().is_some_and(|s| s.code == StatusCode::Error as i32) {
                error_roots += 1;
            }
            for span in &spans {
                spans_total += 1;
                assert_eq!(span.span_id.len(), 8);
                assert!(span.span_id.iter().any(|b| *b != 0), "zero span id");
                assert!(span_ids.insert(span.span_id.clone()), "duplicate span id");
                assert!(span.start_time_unix_nano >= start && span.end_time_unix_nano > span.start_time_unix_nano);
                assert!(!span.name.is_empty());
                kinds.insert(span.kind);
                if !span.parent_span_id.is_empty() {
                    let parent = by_id.get(span.parent_span_id.as_slice()).unwrap_or_else(|| panic!("{}: parent missing", span.name));
                    assert!(
                        parent.start_time_unix_nano <= span.start_time_unix_nano && span.end_time_unix_nano <= parent.end_time_unix_nano,
                        "{} [{}, {}] outside its parent {} [{}, {}]",
                        span.name,
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        parent.name,
                        parent.start_time_unix_nano,
                        parent.end_time_unix_nano
                    );
                    if span.kind == SpanKind::Server as i32 {
                        assert_eq!(parent.kind, SpanKind::Client as i32, "server spans are called by client spans");
                    }
                }
                let is_error = span.status.as_ref().is_some_and(|s| s.code == StatusCode::Error as i32);
                errors += is_error as u64;
                for event in &span.events {
                    assert!(is_error, "exception on a span without an error");
                    assert_eq!(event.name, "exception");
                    for key in ["exception.type", "exception.message", "exception.stacktrace"] {
                        assert!(attr_string(&event.attributes, key).is_some_and(|v| !v.is_empty()), "{key} missing");
                    }
                    assert!(span.start_time_unix_nano <= event.time_unix_nano && event.time_unix_nano <= span.end_time_unix_nano);
                }
                for link in &span.links {
                    links += 1;
                    assert!(all_spans.contains(&(link.trace_id.clone(), link.span_id.clone())), "link to an unknown span");
                    assert_eq!(span.kind, SpanKind::Consumer as i32);
                }
            }
        }
    }
    assert!(spans_total >= 100_000);
    for kind in [SpanKind::Server, SpanKind::Client, SpanKind::Producer, SpanKind::Consumer, SpanKind::Internal] {
        assert!(kinds.contains(&(kind as i32)), "no {kind:?} spans");
    }
    let root_error_rate = error_roots as f64 / roots as f64;
    assert!((0.01..=0.05).contains(&root_error_rate), "{error_roots} of {roots} traces failed");
    let span_error_rate = errors as f64 / spans_total as f64;
    assert!((0.001..=0.05).contains(&span_error_rate), "span error rate {span_error_rate}");
    assert!(links > 100, "{links} links");
    let mean = spans_total as f64 / roots as f64;
    assert!((8.0..200.0).contains(&mean), "{mean} spans per trace");
}

#[test]
fn attribute_cardinalities() {
    let services = 30;
    let requests = generate(GenConfig { services, ..config(21, 100_000) });
    let spans = flatten(&requests);
    let count = |key: &str, resource: bool| distinct(&spans, key, resource).len();

    assert_eq!(count("service.name", true), services);
    assert!((2 * services..=8 * services).contains(&count("k8s.pod.name", true)), "{} pods", count("k8s.pod.name", true));
    assert_eq!(count("k8s.pod.name", true), count("service.instance.id", true));
    assert_eq!(count("k8s.cluster.name", true), 1);
    assert!((3..=4).contains(&count("k8s.namespace.name", true)));
    assert!((2..=4).contains(&count("telemetry.sdk.language", true)));

    let methods: HashSet<String> = distinct(&spans, "http.request.method", false).union(&distinct(&spans, "http.method", false)).cloned().collect();
    assert!(methods.is_subset(&["GET", "POST", "PUT", "DELETE"].map(String::from).into()), "{methods:?}");
    assert!(methods.len() >= 3);
    let statuses: HashSet<String> =
        distinct(&spans, "http.response.status_code", false).union(&distinct(&spans, "http.status_code", false)).cloned().collect();
    let allowed = ["200", "201", "204", "400", "401", "404", "429", "500", "503", "504"].map(String::from).into();
    assert!(statuses.is_subset(&allowed), "{statuses:?}");
    assert!(statuses.contains("200") && statuses.iter().any(|s| s.starts_with('5')) && statuses.iter().any(|s| s.starts_with('4')));
    assert!((15..=400).contains(&count("http.route", false)), "{} routes", count("http.route", false));
    let db_systems = distinct(&spans, "db.system", false);
    assert!(db_systems.len() >= 3 && db_systems.is_subset(&["postgresql", "mysql", "mongodb", "redis", "memcached"].map(String::from).into()));
    assert!(count("db.statement", false) > 200, "high-cardinality statements (keys, literals)");
    assert!((10..=150).contains(&count("peer.service", false)), "{} peers", count("peer.service", false));
    assert!(distinct(&spans, "messaging.system", false).contains("kafka"));
    assert!(count("messaging.destination.name", false) >= 2);
    assert!(count("rpc.service", false) >= 1 || count("http.route", false) >= 1);

    // Users: many, skewed (the most active user is far above the mean).
    let mut per_user: HashMap<String, u64> = HashMap::new();
    for f in &spans {
        if let Some(user) = attr_string(&f.span.attributes, "enduser.id") {
            *per_user.entry(user).or_default() += 1;
        }
    }
    assert!(per_user.len() > 500, "{} users", per_user.len());
    let mean = per_user.values().sum::<u64>() as f64 / per_user.len() as f64;
    assert!(*per_user.values().max().unwrap() as f64 > 3.0 * mean, "power users");
    assert!(count("url.path", false) + count("http.target", false) > 500, "paths carry ids");
    for f in &spans {
        let attributes = &f.span.attributes;
        let (Some(route), Some(path)) = (attr_string(attributes, "http.route"), attr_string(attributes, "url.path").or(attr_string(attributes, "http.target")))
        else {
            continue;
        };
        match route.split_once('{') {
            None => assert_eq!(path, route),
            Some((prefix, rest)) => {
                let suffix = rest.split_once('}').map(|(_, s)| s).unwrap_or("");
                assert!(path.starts_with(prefix) && path.ends_with(suffix) && path.len() < route.len() + 40, "{path} for {route}");
            }
        }
    }
    assert!(count("exception.type", false) == 0, "exceptions are events, not span attributes");
    let exception_types: HashSet<String> =
        spans.iter().flat_map(|f| &f.span.events).filter_map(|e| attr_string(&e.attributes, "exception.type")).collect();
    assert!((5..=80).contains(&exception_types.len()), "{exception_types:?}");
}

#[test]
fn json_encoding_round_trips() {
    let requests = generate(config(4, 3_000));
    for request in &requests {
        let json = crate::encode(request, OutputFormat::OtlpJson).unwrap();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(text.contains("\"traceId\":\"") && text.contains("\"resourceSpans\""));
        let back: ExportTraceServiceRequest = serde_json::from_slice(&json).unwrap();
        assert!(&back == request);
    }
}

#[test]
fn write_dir_writes_requests_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let expected = generate(config(6, 5_000));
    for format in [OutputFormat::OtlpProto, OutputFormat::OtlpJson] {
        let out = dir.path().join(format.name());
        let report = crate::write_dir(Generator::new(config(6, 5_000)).unwrap(), &out, format).unwrap();
        assert_eq!(report.files, expected.len() as u64);
        assert_eq!(report.spans, flatten(&expected).len() as u64);
        let mut names: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names.len(), expected.len());
        for (i, name) in names.iter().enumerate() {
            assert_eq!(*name, crate::file_name(i as u64, format));
            let bytes = std::fs::read(out.join(name)).unwrap();
            let request: ExportTraceServiceRequest = match format {
                OutputFormat::OtlpProto => ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap(),
                OutputFormat::OtlpJson => serde_json::from_slice(&bytes).unwrap(),
            };
            assert!(request == expected[i], "file {name} differs");
        }
    }
}

#[test]
fn endpoints_and_values_parse() {
    assert_eq!("grpc://127.0.0.1:4317".parse::<Endpoint>().unwrap(), Endpoint::Grpc { uri: "http://127.0.0.1:4317".into() });
    assert_eq!("http://localhost:4318".parse::<Endpoint>().unwrap(), Endpoint::Http { url: "http://localhost:4318/v1/traces".into() });
    assert_eq!("http://localhost:4318/".parse::<Endpoint>().unwrap(), Endpoint::Http { url: "http://localhost:4318/v1/traces".into() });
    assert_eq!("http://h:1/otlp/v1/traces".parse::<Endpoint>().unwrap(), Endpoint::Http { url: "http://h:1/otlp/v1/traces".into() });
    for bad in ["localhost:4317", "grpc://", "grpc://h:1/x", "http://", "ftp://h"] {
        assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
    }
    assert_eq!("otlp-json".parse::<OutputFormat>().unwrap(), OutputFormat::OtlpJson);
    assert!("parquet".parse::<OutputFormat>().is_err());
    assert_eq!(crate::parse_start("1700000000").unwrap(), 1_700_000_000_000_000_000);
    assert!(crate::parse_start("yesterday").is_err());
    assert!(Generator::new(GenConfig { services: 2, ..GenConfig::default() }).is_err());
    assert!(Generator::new(GenConfig { batch_spans: 0, ..GenConfig::default() }).is_err());
}

/// An OTLP/HTTP server on a raw socket that answers 429 to every
/// `push_back`th request's first attempt; records the spans it accepted.
async fn fake_otlp_http(push_back: usize) -> (std::net::SocketAddr, std::sync::Arc<std::sync::Mutex<(u64, u64)>>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new((0u64, 0u64))); // (accepted spans, 429s)
    let state = seen.clone();
    tokio::spawn(async move {
        let mut served = 0usize;
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let mut reader = BufReader::new(socket);
            loop {
                // Request line and headers, up to the blank line.
                let (mut length, mut lines) = (0usize, 0);
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        break;
                    }
                    lines += 1;
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                if lines == 0 {
                    break; // connection closed
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).await.unwrap();
                served += 1;
                let response: &[u8] = if served.is_multiple_of(push_back) {
                    state.lock().unwrap().1 += 1;
                    b"HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\n\r\n"
                } else {
                    let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
                    state.lock().unwrap().0 += flatten(std::slice::from_ref(&request)).len() as u64;
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
                };
                reader.get_mut().write_all(response).await.unwrap();
            }
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_over_http_retries_push_back_and_paces() {
    let (addr, seen) = fake_otlp_http(3).await;
    let endpoint: Endpoint = format!("http://{addr}").parse().unwrap();
    let generator = Generator::new(GenConfig { batch_spans: 500, ..config(8, 5_000) }).unwrap();
    let options = SendOptions { rate: Some(20_000.0), connections: 3, ..SendOptions::new(endpoint) };
    let report = crate::send(generator, options).await.unwrap();
    let expected = flatten(&generate(GenConfig { batch_spans: 500, ..config(8, 5_000) })).len() as u64;
    assert_eq!(report.spans, expected, "{report}");
    assert_eq!(report.failed_requests, 0, "{report}");
    let (accepted, pushed_back) = *seen.lock().unwrap();
    assert_eq!(accepted, expected);
    assert!(pushed_back >= 2 && report.retries == pushed_back, "{report}, {pushed_back} pushed back");
    // 5000+ spans at 20k spans/s take at least ~0.25 s.
    assert!(report.elapsed.as_secs_f64() > 0.2, "{report}");
}

#[tokio::test]
async fn send_reports_refused_requests_and_unreachable_servers() {
    let (addr, _) = fake_otlp_http(1).await; // every request pushed back
    let endpoint: Endpoint = format!("http://{addr}").parse().unwrap();
    let options = SendOptions { connections: 1, max_retries: 1, ..SendOptions::new(endpoint) };
    let report = crate::send(Generator::new(config(9, 2_000)).unwrap(), options).await.unwrap();
    assert_eq!(report.spans, 0);
    assert!(report.failed_requests >= 2 && report.failed_spans >= 2_000, "{report}");
    assert!(report.first_error.as_deref().unwrap_or("").contains("429"), "{report}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    for unreachable in [format!("grpc://{closed}"), format!("http://{closed}")] {
        let endpoint: Endpoint = unreachable.parse().unwrap();
        let started = std::time::Instant::now();
        let result = crate::send(Generator::new(config(9, 2_000)).unwrap(), SendOptions::new(endpoint)).await;
        assert!(matches!(result, Err(crate::Error::Connect { .. })), "{unreachable}: {result:?}");
        assert!(started.elapsed().as_secs() < 5, "fails fast");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}


