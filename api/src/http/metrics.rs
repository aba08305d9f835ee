//! TraceQL metrics: `GET /api/metrics/query_range` (series of samples) and
//! `GET /api/metrics/query` (one value per series over the whole range), in
//! Tempo's JSON shapes.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
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

/// A label as Tempo's JSON spells it: `{"key": k, "value": {"stringValue": v}}`
/// (`doubleValue` for a quantile's `p`).
#[derive(Serialize)]
struct Label<'a> {
    key: &'a str,
    value: LabelValue<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum LabelValue<'a> {
    StringValue(&'a str),
    DoubleValue(f64),
}

fn labels(series: &Series) -> Vec<Label<'_>> {
    series
        .labels
        .iter()
        .map(|(k, v)| Label {
            key: k,
            value: match (k.as_str(), v.parse::<f64>()) {
                ("p", Ok(p)) => LabelValue::DoubleValue(p),
                _ => LabelValue::StringValue(v),
            },
        })
        .collect()
}

/// One point of a range series; the timestamp is a string, as Tempo's.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Sample {
    #[serde(serialize_with = "serialize_display")]
    timestamp_ms: i64,
    value: f64,
}

fn serialize_display<S: serde::Serializer>(value: &i64, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// A series of either endpoint: samples (range) or one value (instant).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SeriesJson<'a> {
    labels: Vec<Label<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    samples: Option<Vec<Sample>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
    prom_labels: String,
}

/// The answer of both endpoints. Typed rather than a `serde_json::Value`
/// tree: building and dropping that tree was a twentieth of a small
/// metrics query's CPU.
#[derive(Serialize)]
struct MetricsAnswer<'a> {
    series: Vec<SeriesJson<'a>>,
    metrics: Jobs,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Jobs {
    completed_jobs: u32,
    total_jobs: u32,
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

/// Tempo's JSON answer of `series`: each with its samples, or with the
/// value of its first sample (0 without one) when `instant`.
fn answer(series: &[Series], instant: bool) -> Response {
    let series = series
        .iter()
        .map(|s| SeriesJson {
            labels: labels(s),
            samples: (!instant).then(|| s.samples.iter().map(|&(timestamp_ms, value)| Sample { timestamp_ms, value }).collect()),
            value: instant.then(|| s.samples.first().map(|(_, v)| *v).unwrap_or(0.0)),
            prom_labels: prom_labels(s),
        })
        .collect();
    // Serialised here, while `series` is borrowed.
    Json(MetricsAnswer { series, metrics: Jobs { completed_jobs: 1, total_jobs: 1 } }).into_response()
}

/// `GET /api/metrics/query_range`.
pub async fn query_range_handler(State(state): State<AppState>, headers: HeaderMap, Query(p): Query<MetricsParams>) -> Result<Response> {
    Ok(answer(&run(&state, &headers, &p, false).await?, false))
}

/// `GET /api/metrics/query`: one value per series over `[start, end)`.
pub async fn query_instant_handler(State(state): State<AppState>, headers: HeaderMap, Query(p): Query<MetricsParams>) -> Result<Response> {
    Ok(answer(&run(&state, &headers, &p, true).await?, true))
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
