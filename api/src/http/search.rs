//! `GET /api/search`: TraceQL (`q`) or tag (`tags`, logfmt) search, shaped
//! exactly as Tempo answers so Grafana's Tempo data source parses it
//! strictly: most recent traces first, `spss` spans per spanset.

use axum::Json;
use axum::extract::{Query, State};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use spanlake_traceql::search::{SearchRequest, SearchResult, search};

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
            limit: positive("limit", self.limit.as_deref(), 20, 100_000)?,
            spans_per_spanset: positive("spss", self.spss.as_deref(), 3, 100)?,
            start_unix_nano: range.map(|r| r.0),
            end_unix_nano: range.map(|r| r.1),
            min_trace_duration: min,
            max_trace_duration: max,
        })
    }
}

fn string_kv(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

/// Tempo's JSON for a search result.
pub fn search_response_json(result: &SearchResult, total_blocks: usize, total_block_bytes: u64) -> Value {
    let traces: Vec<Value> = result
        .traces
        .iter()
        .map(|t| {
            let spansets: Vec<Value> = t
                .spansets
                .iter()
                .map(|set| {
                    let spans: Vec<Value> = set
                        .spans
                        .iter()
                        .map(|s| {
                            let mut span = Map::new();
                            span.insert("spanID".into(), json!(hex::encode(s.span_id)));
                            span.insert("name".into(), json!(s.name));
                            span.insert("startTimeUnixNano".into(), json!(s.start_unix_nano.to_string()));
                            span.insert("durationNanos".into(), json!(s.duration_nano.to_string()));
                            if !s.attributes.is_empty() {
                                let attrs: Vec<Value> = s.attributes.iter().map(|(k, v)| string_kv(k, v)).collect();
                                span.insert("attributes".into(), json!(attrs));
                            }
                            Value::Object(span)
                        })
                        .collect();
                    let mut o = Map::new();
                    o.insert("spans".into(), json!(spans));
                    o.insert("matched".into(), json!(set.matched));
                    if !set.attributes.is_empty() {
                        let attrs: Vec<Value> = set.attributes.iter().map(|(k, v)| string_kv(k, v)).collect();
                        o.insert("attributes".into(), json!(attrs));
                    }
                    Value::Object(o)
                })
                .collect();
            let mut o = Map::new();
            o.insert("traceID".into(), json!(hex::encode(t.trace_id)));
            o.insert(
                "rootServiceName".into(),
                json!(t.root_service_name.as_deref().unwrap_or(ROOT_NOT_YET_RECEIVED)),
            );
            if let Some(name) = &t.root_trace_name {
                o.insert("rootTraceName".into(), json!(name));
            }
            o.insert("startTimeUnixNano".into(), json!(t.start_unix_nano.to_string()));
            let duration_ms = (t.duration_nano / 1_000_000) as u64;
            if duration_ms > 0 {
                o.insert("durationMs".into(), json!(duration_ms));
            }
            if let Some(first) = spansets.first() {
                o.insert("spanSet".into(), first.clone());
            }
            o.insert("spanSets".into(), json!(spansets));
            let stats: Map<String, Value> = t
                .service_stats
                .iter()
                .map(|(svc, s)| {
                    let mut stat = Map::new();
                    stat.insert("spanCount".into(), json!(s.span_count));
                    if s.error_count > 0 {
                        stat.insert("errorCount".into(), json!(s.error_count));
                    }
                    (svc.clone(), Value::Object(stat))
                })
                .collect();
            o.insert("serviceStats".into(), Value::Object(stats));
            Value::Object(o)
        })
        .collect();
    let mut metrics = Map::new();
    let m = &result.metrics;
    if m.inspected_traces > 0 {
        metrics.insert("inspectedTraces".into(), json!(m.inspected_traces));
    }
    if total_block_bytes > 0 {
        metrics.insert("inspectedBytes".into(), json!(total_block_bytes.to_string()));
        metrics.insert("totalBlockBytes".into(), json!(total_block_bytes.to_string()));
    }
    if total_blocks > 0 {
        metrics.insert("totalBlocks".into(), json!(total_blocks));
    }
    metrics.insert("completedJobs".into(), json!(1));
    metrics.insert("totalJobs".into(), json!(1));
    if m.inspected_spans > 0 {
        metrics.insert("inspectedSpans".into(), json!(m.inspected_spans.to_string()));
    }
    json!({ "traces": traces, "metrics": metrics })
}

/// Which spans a search reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchScope {
    /// Unflushed spans and every block in range.
    All,
    /// Only the unflushed spans (answered from memory; a streaming first answer).
    Unflushed,
}

/// Parses and runs a search for `tenant`; also returns the number and total
/// size of the blocks in the searched range (for the response metrics).
pub async fn execute_search(
    state: &AppState,
    tenant: &str,
    text: &str,
    request: &SearchRequest,
    scope: SearchScope,
) -> Result<(SearchResult, usize, u64)> {
    let query = spanlake_traceql::parse(text).map_err(|e| Error::bad_request(format!("invalid TraceQL query: {e}")))?;
    let range = match (request.start_unix_nano, request.end_unix_nano) {
        (None, None) => None,
        (start, end) => Some((start.unwrap_or(0), end.unwrap_or(i64::MAX))),
    };
    let ctx = match scope {
        SearchScope::All => state.engine.query.session_in_range(tenant, range)?,
        SearchScope::Unflushed => state.engine.query.session_unflushed(tenant)?,
    };
    let result = search(&ctx, &query, request).await.map_err(search_error)?;
    if scope == SearchScope::Unflushed {
        return Ok((result, 0, 0));
    }
    let blocks = state.engine.catalog.blocks(tenant);
    let in_range: Vec<_> = blocks.iter().filter(|b| range.is_none_or(|(s, e)| b.meta.overlaps(s, e))).collect();
    let bytes: u64 = in_range.iter().map(|b| b.meta.size_bytes).sum();
    Ok((result, in_range.len(), bytes))
}

/// `GET /api/search`.
pub async fn search_handler(State(state): State<AppState>, headers: HeaderMap, Query(p): Query<SearchParams>) -> Result<Json<Value>> {
    let tenant = state.tenant(&headers)?;
    let request = p.request()?;
    let (result, blocks, bytes) = execute_search(&state, &tenant, &p.query()?, &request, SearchScope::All).await?;
    Ok(Json(search_response_json(&result, blocks, bytes)))
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
}
