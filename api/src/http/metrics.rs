//! TraceQL metrics: `GET /api/metrics/query_range` (series of samples) and
//! `GET /api/metrics/query` (one value per series over the whole range), in
//! Tempo's JSON shapes.

use axum::Json;
use axum::extract::{Query, State};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use spanlake_traceql::metrics::{MetricsRequest, Series, query_range};

use super::AppState;
use super::params::go_duration;
use super::search::parse_query;
use crate::error::{Error, Result};

/// Query parameters of the metrics endpoints.
#[derive(Debug, Deserialize)]
pub struct MetricsParams {
    q: Option<String>,
    start: Option<String>,
    end: Option<String>,
    since: Option<String>,
    step: Option<String>,
    /// Accepted for compatibility; exemplars are not returned yet.
    #[allow(dead_code)]
    exemplars: Option<String>,
}

/// A time as unix seconds, unix nanoseconds or RFC 3339, in nanoseconds.
fn parse_time(name: &str, text: &str) -> Result<i64> {
    if let Ok(n) = text.parse::<i64>() {
        if n < 0 {
            return Err(Error::bad_request(format!("invalid {name} {text:?}: before 1970")));
        }
        // Up to 11 digits: seconds (until the year 5138); more: nanoseconds.
        // i64 nanoseconds end in 2262, so larger seconds are refused.
        if n >= 100_000_000_000 {
            return Ok(n);
        }
        return n
            .checked_mul(1_000_000_000)
            .ok_or_else(|| Error::bad_request(format!("invalid {name} {text:?}: beyond the year 2262")));
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| Error::bad_request(format!("invalid {name} {text:?}: expected unix seconds, nanoseconds or RFC 3339")))
}

/// The wall clock in unix nanoseconds: the end of a range that names none.
pub fn now_unix_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// The metrics request over `[start, end)` with `step`, by default about a
/// hundred points at least a second apart; validated (shared by HTTP and gRPC).
pub fn metrics_request(start: i64, end: i64, step: Option<i64>) -> Result<MetricsRequest> {
    let step = step.unwrap_or_else(|| (end.saturating_sub(start) / 100).max(1_000_000_000));
    let request = MetricsRequest { start, end, step };
    request.validate().map_err(|e| Error::bad_request(e.to_string()))?;
    Ok(request)
}

impl MetricsParams {
    fn query(&self) -> Result<spanlake_traceql::ast::Query> {
        let text = self.q.as_deref().filter(|q| !q.trim().is_empty()).ok_or_else(|| Error::bad_request("missing q"))?;
        parse_query(text)
    }

    /// The range; `instant` makes the step the whole range.
    fn request(&self, instant: bool) -> Result<MetricsRequest> {
        let end = match self.end.as_deref().filter(|s| !s.is_empty()) {
            Some(e) => parse_time("end", e)?,
            None => now_unix_nanos(),
        };
        let start = match (self.start.as_deref().filter(|s| !s.is_empty()), self.since.as_deref().filter(|s| !s.is_empty())) {
            (Some(s), _) => parse_time("start", s)?,
            (None, Some(since)) => end.saturating_sub(go_duration(since)?).max(0),
            (None, None) => end.saturating_sub(3_600_000_000_000).max(0),
        };
        if start >= end {
            return Err(Error::bad_request("invalid time range: start must be before end"));
        }
        let step = match self.step.as_deref().filter(|s| !s.is_empty()) {
            _ if instant => Some(end - start),
            Some(s) => Some(go_duration(s)?),
            None => None,
        };
        metrics_request(start, end, step)
    }
}

fn labels_json(series: &Series) -> Value {
    let labels: Vec<Value> = series
        .labels
        .iter()
        .map(|(k, v)| match (k.as_str(), v.parse::<f64>()) {
            ("p", Ok(p)) => json!({ "key": k, "value": { "doubleValue": p } }),
            _ => json!({ "key": k, "value": { "stringValue": v } }),
        })
        .collect();
    json!(labels)
}

/// Prometheus text of a series' labels, e.g. `{resource.service.name="web"}`.
pub fn prom_labels(series: &Series) -> String {
    let inner: Vec<String> = series.labels.iter().map(|(k, v)| format!("{k}=\"{}\"", v.replace('"', "\\\""))).collect();
    format!("{{{}}}", inner.join(", "))
}

async fn run(state: &AppState, headers: &HeaderMap, p: &MetricsParams, instant: bool) -> Result<Vec<Series>> {
    let tenant = state.tenant(headers)?;
    execute_metrics(state, &tenant, &p.query()?, &p.request(instant)?).await
}

/// Runs a metrics query for `tenant` (shared by HTTP and gRPC).
pub async fn execute_metrics(
    state: &AppState,
    tenant: &str,
    query: &spanlake_traceql::ast::Query,
    request: &MetricsRequest,
) -> Result<Vec<Series>> {
    let ctx = state.engine.query.session_in_range(tenant, Some((request.start, request.end)))?;
    query_range(&ctx, query, request).await.map_err(super::search::search_error)
}

/// `GET /api/metrics/query_range`.
pub async fn query_range_handler(State(state): State<AppState>, headers: HeaderMap, Query(p): Query<MetricsParams>) -> Result<Json<Value>> {
    let series = run(&state, &headers, &p, false).await?;
    let series: Vec<Value> = series
        .iter()
        .map(|s| {
            let samples: Vec<Value> =
                s.samples.iter().map(|(t, v)| json!({ "timestampMs": t.to_string(), "value": v })).collect();
            json!({ "labels": labels_json(s), "samples": samples, "promLabels": prom_labels(s) })
        })
        .collect();
    Ok(Json(json!({ "series": series, "metrics": { "completedJobs": 1, "totalJobs": 1 } })))
}

/// `GET /api/metrics/query`: one value per series over `[start, end)`.
pub async fn query_instant_handler(State(state): State<AppState>, headers: HeaderMap, Query(p): Query<MetricsParams>) -> Result<Json<Value>> {
    let series = run(&state, &headers, &p, true).await?;
    let series: Vec<Value> = series
        .iter()
        .map(|s| {
            let value = s.samples.first().map(|(_, v)| *v).unwrap_or(0.0);
            json!({ "labels": labels_json(s), "value": value, "promLabels": prom_labels(s) })
        })
        .collect();
    Ok(Json(json!({ "series": series, "metrics": { "completedJobs": 1, "totalJobs": 1 } })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_seconds_nanos_or_rfc3339() {
        assert_eq!(parse_time("start", "1700000000").unwrap(), 1_700_000_000_000_000_000);
        assert_eq!(parse_time("start", "1700000000000000000").unwrap(), 1_700_000_000_000_000_000);
        assert_eq!(parse_time("start", "2023-11-14T22:13:20Z").unwrap(), 1_700_000_000_000_000_000);
        assert!(parse_time("start", "yesterday").is_err());
        assert!(parse_time("start", "-9223372036854775808").is_err());
        assert!(parse_time("start", "10000000000").is_err(), "seconds beyond i64 nanoseconds: 400, not an overflow");
    }

    #[test]
    fn default_step_is_a_hundredth_of_the_range_at_least_a_second() {
        let hour = 3_600_000_000_000;
        assert_eq!(metrics_request(0, hour, None).unwrap().step, hour / 100);
        assert_eq!(metrics_request(0, 10_000_000_000, None).unwrap().step, 1_000_000_000);
        assert_eq!(metrics_request(0, hour, Some(60_000_000_000)).unwrap().step, 60_000_000_000);
        assert!(metrics_request(hour, 0, None).is_err());
    }
}
