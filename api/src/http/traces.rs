//! Trace by id: `GET /api/traces/{id}` (Tempo v1: `tempopb.Trace`, JSON key
//! `batches`) and `GET /api/v2/traces/{id}` (`TraceByIDResponse`), in JSON or
//! protobuf by the `Accept` header.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::params::seconds_range;
use crate::error::{Error, Result};
use crate::tempopb::{PartialStatus, Trace, TraceByIdMetrics, TraceByIdResponse};
use crate::trace_json;

const PROTOBUF: &str = "application/protobuf";

/// `start` / `end` query parameters (unix seconds) restricting the blocks searched.
#[derive(Debug, Deserialize)]
pub struct TimeRange {
    start: Option<String>,
    end: Option<String>,
}

/// Parses a trace id as Tempo does: up to 32 hex digits, shorter ids
/// (64-bit Jaeger/Zipkin ids) left-padded with zeros.
pub fn parse_trace_id(text: &str) -> Result<[u8; 16]> {
    let invalid = || Error::bad_request(format!("invalid trace id {text:?}: expected up to 32 hex digits"));
    if text.is_empty() || text.len() > 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid());
    }
    let padded = format!("{text:0>32}");
    let mut id = [0u8; 16];
    hex::decode_to_slice(&padded, &mut id).map_err(|_| invalid())?;
    if id == [0; 16] {
        return Err(invalid());
    }
    Ok(id)
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(PROTOBUF) || a.contains("application/x-protobuf"))
}

async fn find(state: &AppState, headers: &HeaderMap, id: &str, range: &TimeRange) -> Result<Option<Vec<ResourceSpans>>> {
    let tenant = state.tenant(headers)?;
    let trace_id = parse_trace_id(id)?;
    let range = seconds_range(range.start.as_deref(), range.end.as_deref())?;
    Ok(state.engine.query.trace_by_id(&tenant, trace_id, range).await?)
}

fn protobuf_response(message: impl Message) -> Response {
    ([(header::CONTENT_TYPE, PROTOBUF)], message.encode_to_vec()).into_response()
}

/// Which trace-by-id API a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `/api/traces/{id}`: `tempopb.Trace`, JSON key `batches`.
    V1,
    /// `/api/v2/traces/{id}`: `TraceByIDResponse`.
    V2,
}

/// `GET /api/traces/{id}` and `GET /api/v2/traces/{id}`.
pub async fn trace_by_id(
    version: ApiVersion,
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(range): Query<TimeRange>,
) -> Result<Response> {
    let Some(batches) = find(&state, &headers, &id, &range).await? else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    let protobuf = wants_protobuf(&headers);
    Ok(match (version, protobuf) {
        (ApiVersion::V1, true) => protobuf_response(Trace { resource_spans: batches }),
        (ApiVersion::V2, true) => protobuf_response(TraceByIdResponse {
            trace: Some(Trace { resource_spans: batches }),
            metrics: Some(TraceByIdMetrics::default()),
            status: PartialStatus::Complete as i32,
            message: String::new(),
        }),
        (version, false) => {
            let resource_spans: Vec<_> = batches.iter().map(trace_json::resource_spans).collect();
            let body = match version {
                ApiVersion::V1 => json!({ "batches": resource_spans }),
                ApiVersion::V2 => json!({ "trace": { "resourceSpans": resource_spans }, "metrics": {} }),
            };
            axum::Json(body).into_response()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_parse_like_tempo() {
        assert_eq!(parse_trace_id("1").unwrap()[15], 1);
        assert_eq!(parse_trace_id("0102030405060708090a0b0c0d0e0f10").unwrap()[0], 1);
        for bad in ["", "xyz", "000000000000000000000000000000000", "0", "0102030405060708090a0b0c0d0e0f1g"] {
            assert!(parse_trace_id(bad).is_err(), "{bad}");
        }
    }
}
