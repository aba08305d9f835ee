//! `GET /api/search`: TraceQL (`q`) or tag (`tags`, logfmt) search, shaped
//! exactly as Tempo answers so Grafana's Tempo data source parses it
//! strictly: most recent traces first, `spss` spans per spanset.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use spanlake_traceql::ast;
use spanlake_traceql::search::{SearchRequest, SearchResult, SpansetSummary, search};

use super::AppState;
use super::params::{go_duration, seconds_range};
use crate::error::{Error, Result};

/// Shown when a trace's root span has not been received (Tempo's text).
pub const ROOT_NOT_YET_RECEIVED: &str = "<root span not yet received>";

/// Query parameters of `/api/search`.
#[derive(Debug, Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    tags: Option<String>,
    #[serde(rename = "minDuration")]
    min_duration: Option<String>,
    #[serde(rename = "maxDuration")]
    max_duration: Option<String>,
    limit: Option<String>,
    spss: Option<String>,
    start: Option<String>,
    end: Option<String>,
}

/// Largest `limit` (traces) and `spss` (spans per spanset) a search accepts.
pub const MAX_LIMIT: usize = 100_000;
pub const MAX_SPANS_PER_SPANSET: usize = 100;

fn positive(name: &str, value: Option<&str>, default: usize, max: usize) -> Result<usize> {
    match value.filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > 0 && n <= max => Ok(n),
            _ => Err(Error::bad_request(format!("invalid {name} {s:?}: expected an integer from 1 to {max}"))),
        },
    }
}

/// Quotes a TraceQL string literal.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Parses logfmt `key=value key2="quoted value"` pairs.
fn logfmt(text: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        if chars.next() != Some('=') || key.is_empty() {
            return Err(Error::bad_request(format!("invalid tags {text:?}: expected key=value pairs (logfmt)")));
        }
        let value = if chars.peek() == Some(&'"') {
            chars.next();
            let mut v = String::new();
            loop {
                match chars.next() {
                    Some('\\') => v.extend(chars.next()),
                    Some('"') => break,
                    Some(c) => v.push(c),
                    None => return Err(Error::bad_request(format!("invalid tags {text:?}: unterminated quote"))),
                }
            }
            v
        } else {
            std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())).collect()
        };
        pairs.push((key, value));
    }
}

/// The TraceQL equivalent of a tag search: every pair must match one span.
fn tags_to_traceql(tags: &[(String, String)]) -> String {
    if tags.is_empty() {
        return "{}".to_owned();
    }
    let conditions: Vec<String> = tags
        .iter()
        .map(|(k, v)| match k.as_str() {
            "name" => format!("name = {}", quote(v)),
            "status.code" | "status" => format!("status = {}", if ["error", "ok", "unset"].contains(&v.as_str()) { v.as_str() } else { "error" }),
            "error" if v == "true" => "status = error".to_owned(),
            // Tag values are text; numbers and booleans also match typed attributes.
            _ if v.parse::<i64>().is_ok() || v.parse::<f64>().is_ok() || v == "true" || v == "false" => {
                format!("(.{k} = {v2} || .{k} = {v})", k = quote(k), v2 = quote(v))
            }
            _ => format!(".{} = {}", quote(k), quote(v)),
        })
        .collect();
    format!("{{ {} }}", conditions.join(" && "))
}

impl SearchParams {
    fn query(&self) -> Result<String> {
        match (self.q.as_deref().filter(|q| !q.trim().is_empty()), self.tags.as_deref()) {
            (Some(q), _) => Ok(q.to_owned()),
            (None, Some(tags)) => Ok(tags_to_traceql(&logfmt(tags)?)),
            (None, None) => Ok("{}".to_owned()),
        }
    }

    fn request(&self) -> Result<SearchRequest> {
        let range = seconds_range(self.start.as_deref(), self.end.as_deref())?;
        let duration = |name: &str, v: &Option<String>| -> Result<Option<i64>> {
            v.as_deref()
                .filter(|s| !s.is_empty())
                .map(|s| go_duration(s).map_err(|e| Error::bad_request(format!("invalid {name}: {e}"))))
                .transpose()
        };
        let min = duration("minDuration", &self.min_duration)?;
        let max = duration("maxDuration", &self.max_duration)?;
        if let (Some(min), Some(max)) = (min, max)
            && min > max
        {
            return Err(Error::bad_request("invalid maxDuration: must not be below minDuration"));
        }
        Ok(SearchRequest {
            limit: positive("limit", self.limit.as_deref(), 20, MAX_LIMIT)?,
            spans_per_spanset: positive("spss", self.spss.as_deref(), 3, MAX_SPANS_PER_SPANSET)?,
            start_unix_nano: range.map(|r| r.0),
            end_unix_nano: range.map(|r| r.1),
            min_trace_duration: min,
            max_trace_duration: max,
        })
    }
}

/// An OTLP/JSON string attribute, as Tempo writes by() and select() values.
#[derive(Serialize)]
struct StringAttribute<'a> {
    key: &'a str,
    value: StringValue<'a>,
}

#[derive(Serialize)]
struct StringValue<'a> {
    #[serde(rename = "stringValue")]
    string_value: &'a str,
}

fn string_attributes(pairs: &[(String, String)]) -> Vec<StringAttribute<'_>> {
    pairs.iter().map(|(k, v)| StringAttribute { key: k, value: StringValue { string_value: v } }).collect()
}

/// Serialises as a JSON string: Tempo writes 64-bit numbers as strings.
struct Decimal(u64);

impl Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpanJson<'a> {
    #[serde(rename = "spanID")]
    span_id: String,
    name: &'a str,
    start_time_unix_nano: Decimal,
    duration_nanos: Decimal,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attributes: Vec<StringAttribute<'a>>,
}

#[derive(Serialize)]
struct SpansetJson<'a> {
    spans: Vec<SpanJson<'a>>,
    matched: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attributes: Vec<StringAttribute<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceStatsJson {
    span_count: u32,
    #[serde(skip_serializing_if = "is_zero")]
    error_count: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TraceJson<'a> {
    #[serde(rename = "traceID")]
    trace_id: String,
    root_service_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    root_trace_name: Option<&'a str>,
    start_time_unix_nano: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    /// The first spanset again (older clients read only this one).
    #[serde(skip_serializing_if = "Option::is_none")]
    span_set: Option<&'a SpansetJson<'a>>,
    span_sets: &'a [SpansetJson<'a>],
    service_stats: BTreeMap<&'a str, ServiceStatsJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MetricsJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    inspected_traces: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inspected_bytes: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_block_bytes: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_blocks: Option<usize>,
    completed_jobs: u32,
    total_jobs: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    inspected_spans: Option<Decimal>,
}

#[derive(Serialize)]
struct SearchResponseJson<'a> {
    traces: Vec<TraceJson<'a>>,
    metrics: MetricsJson,
}

fn spanset_json(set: &SpansetSummary) -> SpansetJson<'_> {
    SpansetJson {
        spans: set
            .spans
            .iter()
            .map(|s| SpanJson {
                span_id: hex::encode(s.span_id),
                name: &s.name,
                start_time_unix_nano: Decimal(s.start_unix_nano as u64),
                duration_nanos: Decimal(s.duration_nano as u64),
                attributes: string_attributes(&s.attributes),
            })
            .collect(),
        matched: set.matched,
        attributes: string_attributes(&set.attributes),
    }
}

/// Tempo's JSON for a search result, written straight from the result
/// (no intermediate JSON tree: answers can hold 100k traces).
pub fn search_response_json(result: &SearchResult, total_blocks: usize, total_block_bytes: u64) -> Vec<u8> {
    with_search_response(result, total_blocks, total_block_bytes, |response| serde_json::to_vec(response))
}

/// [`search_response_json`] indented for people (`spanlake traceql`).
pub fn search_response_json_pretty(result: &SearchResult, total_blocks: usize, total_block_bytes: u64) -> Vec<u8> {
    with_search_response(result, total_blocks, total_block_bytes, |response| serde_json::to_vec_pretty(response))
}

/// Builds the borrowed response structs and serialises them with `write`.
fn with_search_response(
    result: &SearchResult,
    total_blocks: usize,
    total_block_bytes: u64,
    write: impl FnOnce(&SearchResponseJson) -> serde_json::Result<Vec<u8>>,
) -> Vec<u8> {
    let spansets: Vec<Vec<SpansetJson>> = result.traces.iter().map(|t| t.spansets.iter().map(spanset_json).collect()).collect();
    let traces: Vec<TraceJson> = result
        .traces
        .iter()
        .zip(&spansets)
        .map(|(t, sets)| TraceJson {
            trace_id: hex::encode(t.trace_id),
            root_service_name: t.root_service_name.as_deref().unwrap_or(ROOT_NOT_YET_RECEIVED),
            root_trace_name: t.root_trace_name.as_deref(),
            start_time_unix_nano: Decimal(t.start_unix_nano as u64),
            duration_ms: Some((t.duration_nano / 1_000_000) as u64).filter(|ms| *ms > 0),
            span_set: sets.first(),
            span_sets: sets,
            service_stats: t
                .service_stats
                .iter()
                .map(|(svc, s)| (svc.as_str(), ServiceStatsJson { span_count: s.span_count, error_count: s.error_count }))
                .collect(),
        })
        .collect();
    let m = &result.metrics;
    let bytes = (total_block_bytes > 0).then_some(total_block_bytes);
    let metrics = MetricsJson {
        inspected_traces: Some(m.inspected_traces).filter(|n| *n > 0),
        inspected_bytes: bytes.map(Decimal),
        total_block_bytes: bytes.map(Decimal),
        total_blocks: Some(total_blocks).filter(|n| *n > 0),
        completed_jobs: 1,
        total_jobs: 1,
        inspected_spans: Some(m.inspected_spans).filter(|n| *n > 0).map(Decimal),
    };
    write(&SearchResponseJson { traces, metrics }).expect("search JSON serialises: plain structs and strings")
}

/// Which spans a search reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchScope {
    /// Unflushed spans and every block in range.
    All,
    /// Only the unflushed spans (answered from memory; a streaming first answer).
    Unflushed,
}

/// Parses a TraceQL query; a syntax error is the client's (400).
pub fn parse_query(text: &str) -> Result<ast::Query> {
    spanlake_traceql::parse(text).map_err(|e| Error::bad_request(format!("invalid TraceQL query: {e}")))
}

/// Runs a search for `tenant`; also returns the number and total size of
/// the blocks in the searched range (for the response metrics).
pub async fn execute_search(
    state: &AppState,
    tenant: &str,
    query: &ast::Query,
    request: &SearchRequest,
    scope: SearchScope,
) -> Result<(SearchResult, usize, u64)> {
    let range = match (request.start_unix_nano, request.end_unix_nano) {
        (None, None) => None,
        (start, end) => Some((start.unwrap_or(0), end.unwrap_or(i64::MAX))),
    };
    let ctx = match scope {
        SearchScope::All => state.engine.query.session_in_range(tenant, range)?,
        SearchScope::Unflushed => state.engine.query.session_unflushed(tenant)?,
    };
    let result = search(&ctx, query, request).await.map_err(search_error)?;
    if scope == SearchScope::Unflushed {
        return Ok((result, 0, 0));
    }
    let blocks = state.engine.catalog.blocks(tenant);
    let in_range: Vec<_> = blocks.iter().filter(|b| range.is_none_or(|(s, e)| b.meta.overlaps(s, e))).collect();
    let bytes: u64 = in_range.iter().map(|b| b.meta.size_bytes).sum();
    Ok((result, in_range.len(), bytes))
}

/// `GET /api/search`.
pub async fn search_handler(State(state): State<AppState>, headers: HeaderMap, Query(p): Query<SearchParams>) -> Result<Response> {
    let tenant = state.tenant(&headers)?;
    let request = p.request()?;
    let started = std::time::Instant::now();
    let (result, blocks, bytes) = execute_search(&state, &tenant, &parse_query(&p.query()?)?, &request, SearchScope::All).await?;
    let searched = started.elapsed();
    let body = search_response_json(&result, blocks, bytes);
    tracing::debug!(
        traces = result.traces.len(),
        search_ms = searched.as_secs_f64() * 1e3,
        encode_ms = (started.elapsed() - searched).as_secs_f64() * 1e3,
        bytes = body.len(),
        "search answered"
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Planning errors are the query's fault (400); execution errors are ours.
pub fn search_error(e: spanlake_traceql::search::SearchError) -> Error {
    use spanlake_traceql::search::SearchError;
    match e {
        SearchError::Compile(c) => Error::bad_request(format!("invalid TraceQL query: {c}")),
        SearchError::DataFusion(d) => Error::Engine(spanlake_engine::Error::from(d)),
        SearchError::Arrow(a) => Error::Engine(spanlake_engine::Error::from(a)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_become_traceql() {
        let pairs = logfmt(r#"service.name=cart name="GET /x" error=true http.status_code=500"#).unwrap();
        assert_eq!(
            tags_to_traceql(&pairs),
            r#"{ ."service.name" = "cart" && name = "GET /x" && status = error && (."http.status_code" = "500" || ."http.status_code" = 500) }"#
        );
        assert!(logfmt("novalue").is_err());
        assert!(logfmt(r#"a="unterminated"#).is_err());
    }

    #[test]
    fn pretty_json_is_the_compact_json_indented() {
        use spanlake_traceql::search::{SpanSummary, TraceSummary};
        let span = SpanSummary { span_id: [1; 8], name: "GET /".into(), start_unix_nano: 5, duration_nano: 2_000_000, attributes: vec![] };
        let trace = TraceSummary {
            trace_id: [2; 16],
            root_service_name: Some("web".into()),
            root_trace_name: Some("GET /".into()),
            start_unix_nano: 5,
            duration_nano: 2_000_000,
            spansets: vec![SpansetSummary { spans: vec![span], matched: 1, attributes: vec![] }],
            service_stats: Default::default(),
        };
        let result = SearchResult { traces: vec![trace], ..Default::default() };
        let compact = search_response_json(&result, 1, 10);
        let pretty = search_response_json_pretty(&result, 1, 10);
        assert!(!compact.contains(&b'\n'));
        let pretty_text = String::from_utf8(pretty.clone()).unwrap();
        assert!(pretty_text.starts_with("{\n  \"traces\": ["), "{pretty_text}");
        // The same fields in the same order: only white space differs.
        let squeezed: Vec<u8> = pretty_text.lines().map(str::trim).collect::<String>().replace("\": ", "\":").into_bytes();
        assert_eq!(String::from_utf8(squeezed).unwrap(), String::from_utf8(compact).unwrap());
    }
}
