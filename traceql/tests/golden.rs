//! Golden TraceQL tests, in the spirit of DataFusion's sqllogictest: each
//! file under `tests/golden/` holds a small dataset of traces, TraceQL
//! queries and SQL queries, and the spans each must return. Every query runs
//! twice — with all spans in the ingester's head, then after a flush from
//! Parquet blocks — and both runs must give the expected answer.
//!
//! Format (`#` starts a comment line):
//!
//! ```text
//! dataset
//! trace checkout                       # a trace; ids derive from the names
//!   root kind=server service=web dur=100ms span.http.method=GET
//!   db parent=root kind=client service=db at=10ms dur=20ms span.n=5 status=error
//! end
//!
//! query                                # TraceQL
//! { kind = client }
//! ----
//! checkout: db                         # trace: span names (sorted); spansets of by() as `[value] names`
//!
//! sql                                  # SQL over the same `spans` table
//! SELECT trace_id, span_id FROM spans WHERE kind = 3
//! ----
//! checkout: db
//!
//! error                                # a query that must be refused (parse or plan)
//! { span:nope = 1 }
//! ```
//!
//! Span attributes: `span.k=v`, `resource.k=v` and `scope.k=v` (resource
//! and instrumentation-scope attributes apply to the whole service in that trace), `event=<name>` adds an event, and
//! `link=<trace>/<span>` a link. Values: integers, floats (with a `.`),
//! `true`/`false`, `"quoted strings"`, bare words (strings).

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use datafusion::prelude::SessionContext;
use spanlake_engine::Engine;
use spanlake_engine::config::{CompactionConfig, IngesterConfig, StorageConfig};
use spanlake_engine::convert::convert_request;
use spanlake_engine::metrics::EngineMetrics;
use spanlake_traceql::ast::Query;
use spanlake_traceql::search::{SearchRequest, plan_search, search};

const TENANT: &str = "golden";
const BASE_NANOS: u64 = 1_700_000_000_000_000_000;

fn trace_id(trace: &str) -> [u8; 16] {
    let mut h = DefaultHasher::new();
    trace.hash(&mut h);
    let a = h.finish();
    "salt".hash(&mut h);
    let b = h.finish();
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&a.to_be_bytes());
    id[8..].copy_from_slice(&b.to_be_bytes());
    id
}

fn span_id(trace: &str, span: &str) -> [u8; 8] {
    let mut h = DefaultHasher::new();
    (trace, span).hash(&mut h);
    h.finish().to_be_bytes()
}

fn parse_duration(text: &str) -> u64 {
    let (num, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len()));
    let n: f64 = num.parse().unwrap_or_else(|_| panic!("bad duration {text}"));
    let scale = match unit {
        "ns" => 1.0,
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        other => panic!("bad duration unit {other}"),
    };
    (n * scale) as u64
}

fn parse_value(text: &str) -> Value {
    if let Some(s) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Value::StringValue(s.to_owned())
    } else if let Ok(i) = text.parse::<i64>() {
        Value::IntValue(i)
    } else if text.contains('.')
        && let Ok(f) = text.parse::<f64>()
    {
        Value::DoubleValue(f)
    } else if text == "true" || text == "false" {
        Value::BoolValue(text == "true")
    } else {
        Value::StringValue(text.to_owned())
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

/// Splits on spaces outside double quotes.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for ch in line.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                current.push(ch);
            }
            ' ' | '\t' if !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(ch),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Builds OTLP for the dataset lines; returns the request and the id → name map.
fn build_dataset(lines: &[String]) -> (Vec<ResourceSpans>, HashMap<(Vec<u8>, Vec<u8>), (String, String)>) {
    let mut names = HashMap::new();
    // (trace, service) → (resource attributes, scope attributes, spans)
    let mut resources: BTreeMap<(String, String), (Vec<KeyValue>, Vec<KeyValue>, Vec<Span>)> = BTreeMap::new();
    let mut trace = String::new();
    let mut trace_index = 0u64;
    let mut starts: HashMap<String, u64> = HashMap::new();
    for line in lines {
        let w = words(line);
        if w.is_empty() {
            continue;
        }
        if w[0] == "trace" {
            trace = w[1].clone();
            trace_index += 1;
            starts.clear();
            continue;
        }
        let span_name = w[0].clone();
        let trace_start = BASE_NANOS + trace_index * 1_000_000_000;
        let mut span = Span {
            trace_id: trace_id(&trace).to_vec(),
            span_id: span_id(&trace, &span_name).to_vec(),
            name: span_name.clone(),
            start_time_unix_nano: trace_start,
            end_time_unix_nano: trace_start + 1_000_000,
            ..Default::default()
        };
        let mut service = "svc".to_owned();
        let mut resource_attrs = Vec::new();
        let mut scope_attrs = Vec::new();
        let mut dur = 1_000_000u64;
        for field in &w[1..] {
            let (k, v) = field.split_once('=').unwrap_or_else(|| panic!("bad field {field} in {line}"));
            match k {
                "parent" => {
                    span.parent_span_id = span_id(&trace, v).to_vec();
                    span.start_time_unix_nano = starts.get(v).copied().unwrap_or(trace_start);
                }
                "service" => service = v.to_owned(),
                "kind" => {
                    span.kind = ["unspecified", "internal", "server", "client", "producer", "consumer"]
                        .iter()
                        .position(|x| *x == v)
                        .unwrap_or_else(|| panic!("bad kind {v}")) as i32
                }
                "status" => {
                    let code = ["unset", "ok", "error"].iter().position(|x| *x == v).expect("status") as i32;
                    span.status = Some(Status { code, message: String::new() });
                }
                "message" => span.status.get_or_insert_with(Default::default).message = v.trim_matches('"').to_owned(),
                "at" => span.start_time_unix_nano = trace_start + parse_duration(v),
                "dur" => dur = parse_duration(v),
                "event" => span.events.push(Event {
                    time_unix_nano: span.start_time_unix_nano,
                    name: v.to_owned(),
                    ..Default::default()
                }),
                "link" => {
                    let (t, s) = v.split_once('/').expect("link=<trace>/<span>");
                    span.links.push(Link { trace_id: trace_id(t).to_vec(), span_id: span_id(t, s).to_vec(), ..Default::default() });
                }
                _ if k.starts_with("span.") => span.attributes.push(kv(&k["span.".len()..], parse_value(v))),
                _ if k.starts_with("event.") => {
                    let event = span.events.last_mut().expect("event.x= after event=");
                    event.attributes.push(kv(&k["event.".len()..], parse_value(v)));
                }
                _ if k.starts_with("resource.") => resource_attrs.push(kv(&k["resource.".len()..], parse_value(v))),
                _ if k.starts_with("scope.") => scope_attrs.push(kv(&k["scope.".len()..], parse_value(v))),
                other => panic!("unknown field {other} in {line}"),
            }
        }
        span.end_time_unix_nano = span.start_time_unix_nano + dur;
        starts.insert(span_name.clone(), span.start_time_unix_nano);
        names.insert((span.trace_id.clone(), span.span_id.clone()), (trace.clone(), span_name));
        let entry = resources.entry((trace.clone(), service.clone())).or_default();
        entry.0.extend(resource_attrs);
        entry.1.extend(scope_attrs);
        entry.2.push(span);
    }
    let request = resources
        .into_iter()
        .map(|((_, service), (mut attrs, scope_attrs, spans))| {
            attrs.insert(0, kv("service.name", Value::StringValue(service)));
            ResourceSpans {
                resource: Some(Resource { attributes: attrs, ..Default::default() }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope { name: "golden".into(), attributes: scope_attrs, ..Default::default() }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect();
    (request, names)
}

#[derive(Debug)]
enum Case {
    TraceQl { query: String, expected: Vec<String>, line: usize },
    Sql { query: String, expected: Vec<String>, line: usize },
    Error { query: String, line: usize },
}

fn parse_file(path: &Path) -> (Vec<String>, Vec<Case>) {
    let text = std::fs::read_to_string(path).unwrap();
    let lines: Vec<(usize, &str)> =
        text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim_start().starts_with('#')).collect();
    let mut dataset = Vec::new();
    let mut cases = Vec::new();
    let mut i = 0;
    let block = |i: &mut usize, stop: &dyn Fn(&str) -> bool| -> Vec<String> {
        let mut out = Vec::new();
        while *i < lines.len() && !stop(lines[*i].1.trim()) {
            if !lines[*i].1.trim().is_empty() {
                out.push(lines[*i].1.trim_end().to_owned());
            }
            *i += 1;
        }
        out
    };
    while i < lines.len() {
        let (line_no, line) = lines[i];
        i += 1;
        match line.trim() {
            "" => {}
            "dataset" => {
                dataset = block(&mut i, &|l| l == "end");
                i += 1;
            }
            kind @ ("query" | "sql") => {
                let query = block(&mut i, &|l| l == "----").join("\n");
                i += 1;
                let expected = block(&mut i, &|l| l.is_empty() || ["query", "sql", "error"].contains(&l));
                cases.push(if kind == "query" {
                    Case::TraceQl { query, expected, line: line_no }
                } else {
                    Case::Sql { query, expected, line: line_no }
                });
            }
            "error" => {
                let query = block(&mut i, &|l| l.is_empty()).join("\n");
                cases.push(Case::Error { query, line: line_no });
            }
            other => panic!("{}:{line_no}: unexpected line {other:?}", path.display()),
        }
    }
    (dataset, cases)
}

type Names = HashMap<(Vec<u8>, Vec<u8>), (String, String)>;

/// `trace: names` lines from rows whose first two columns are trace_id and
/// span_id, with further (group) columns shown as `[v1,v2]` spansets.
fn render(batches: &[RecordBatch], names: &Names, group_columns: usize) -> Vec<String> {
    let mut traces: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for batch in batches {
        let trace_ids = batch.column(0).as_fixed_size_binary();
        let span_ids = batch.column(1).as_fixed_size_binary();
        for row in 0..batch.num_rows() {
            let key = (trace_ids.value(row).to_vec(), span_ids.value(row).to_vec());
            let (trace, span) = names.get(&key).cloned().unwrap_or_else(|| ("?".into(), "?".into()));
            let group: Vec<String> = (0..group_columns)
                .map(|g| {
                    let column = batch.column(2 + g).as_string::<i32>();
                    if column.is_null(row) { "nil".to_owned() } else { column.value(row).to_owned() }
                })
                .collect();
            traces.entry(trace).or_default().entry(group.join(",")).or_default().push(span);
        }
    }
    traces
        .into_iter()
        .map(|(trace, groups)| {
            let sets: Vec<String> = groups
                .into_iter()
                .map(|(group, mut spans)| {
                    spans.sort();
                    if group_columns == 0 { spans.join(" ") } else { format!("[{group}] {}", spans.join(" ")) }
                })
                .collect();
            format!("{trace}: {}", sets.join(" | "))
        })
        .collect()
}

async fn run_traceql(engine: &Engine, query: &str, names: &Names) -> Result<Vec<String>, String> {
    let ast = spanlake_traceql::parse(query).map_err(|e| e.to_string())?;
    let ctx = engine.query.session(TENANT).map_err(|e| e.to_string())?;
    let spans = ctx.table_provider("spans").await.map_err(|e| e.to_string())?;
    let request = SearchRequest {
        limit: 1000,
        spans_per_spanset: 1000,
        start_unix_nano: None,
        end_unix_nano: None,
        min_trace_duration: None,
        max_trace_duration: None,
    };
    let plan = plan_search(&ast, spans, &request).map_err(|e| e.to_string())?;
    let mut columns = vec![datafusion::prelude::col("trace_id"), datafusion::prelude::col("span_id")];
    columns.extend(plan.by.iter().map(|o| datafusion::prelude::col(&o.column)));
    let df = ctx.execute_logical_plan(plan.plan).await.map_err(|e| e.to_string())?;
    let batches = df.select(columns).map_err(|e| e.to_string())?.collect().await.map_err(|e| e.to_string())?;
    let rendered = render(&batches, names, plan.by.len());
    check_search_paths(&ctx, &ast, request, rendered.len()).await?;
    Ok(rendered)
}

/// `search` answers in one pass when at most `limit` traces match and in
/// two otherwise: both must agree, the limited answer being the first
/// traces of the full one, with the same spansets.
async fn check_search_paths(ctx: &SessionContext, ast: &Query, request: SearchRequest, traces: usize) -> Result<(), String> {
    let full = search(ctx, ast, &request).await.map_err(|e| e.to_string())?;
    if full.traces.len() != traces {
        return Err(format!("search found {} traces, the plan {traces}", full.traces.len()));
    }
    if traces < 2 {
        return Ok(());
    }
    let limited = search(ctx, ast, &SearchRequest { limit: traces - 1, ..request }).await.map_err(|e| e.to_string())?;
    if limited.traces[..] != full.traces[..traces - 1] {
        return Err(format!("search with limit {} (two passes) differs from the first traces of the full answer", traces - 1));
    }
    Ok(())
}

async fn run_sql(engine: &Engine, query: &str, names: &Names) -> Result<Vec<String>, String> {
    let ctx = engine.query.session(TENANT).map_err(|e| e.to_string())?;
    let batches = ctx.sql(query).await.map_err(|e| e.to_string())?.collect().await.map_err(|e| e.to_string())?;
    let groups = batches.first().map_or(0, |b| b.num_columns().saturating_sub(2));
    Ok(render(&batches, names, groups))
}

async fn run_file(path: PathBuf) -> Vec<String> {
    let (dataset, cases) = parse_file(&path);
    let (request, names) = build_dataset(&dataset);
    let dir = tempfile::tempdir().unwrap();
    let mut storage = StorageConfig::default();
    storage.trace.local.path = dir.path().join("blocks");
    storage.trace.wal.path = dir.path().join("wal");
    let ingester = IngesterConfig { max_block_duration: Duration::from_secs(3600), ..Default::default() };
    let engine = Engine::open(&storage, &ingester, &CompactionConfig::default(), EngineMetrics::default()).await.unwrap();
    let (spans, rejected) = convert_request(&request).unwrap();
    assert!(rejected.is_empty(), "{rejected:?}");
    engine.ingester.append(TENANT, spans).await.unwrap();

    let mut failures = Vec::new();
    for phase in ["head", "blocks"] {
        if phase == "blocks" {
            engine.ingester.flush(true).await.unwrap();
            assert!(engine.ingester.unflushed_batches(TENANT).is_empty());
        }
        for case in &cases {
            let (query, line, expected, result) = match case {
                Case::TraceQl { query, expected, line } => (query, line, Some(expected), run_traceql(&engine, query, &names).await),
                Case::Sql { query, expected, line } => (query, line, Some(expected), run_sql(&engine, query, &names).await),
                Case::Error { query, line } => (query, line, None, run_traceql(&engine, query, &names).await),
            };
            let at = format!("{}:{line} ({phase})", path.display());
            match (expected, result) {
                (Some(expected), Ok(actual)) if &actual == expected => {}
                (Some(expected), Ok(actual)) => failures.push(format!(
                    "{at}: {query}\n  expected:\n    {}\n  actual:\n    {}",
                    expected.join("\n    "),
                    actual.join("\n    ")
                )),
                (Some(_), Err(e)) => failures.push(format!("{at}: {query}\n  failed: {e}")),
                (None, Ok(actual)) => failures.push(format!("{at}: {query}\n  should be refused, returned {actual:?}")),
                (None, Err(_)) => {}
            }
        }
    }
    failures
}

#[tokio::test]
async fn golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "test"));
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for file in files {
        failures.extend(run_file(file).await);
    }
    assert!(failures.is_empty(), "{} golden cases failed:\n\n{}", failures.len(), failures.join("\n\n"));
}
