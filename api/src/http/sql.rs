//! `POST /api/sql`: read-only SQL over the tenant's spans. The body is the
//! SQL text (or JSON `{"query": "..."}`); results are JSON rows, or an Arrow
//! IPC stream with `Accept: application/vnd.apache.arrow.stream`.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, header};

use super::AppState;
use crate::error::{Error, Result};
use crate::sql::{Format, encode, run_sql};

const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

#[derive(serde::Deserialize)]
struct SqlBody {
    query: String,
}

/// `POST /api/sql`.
pub async fn sql(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Result<Response> {
    let tenant = state.tenant(&headers)?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    let text = if is_json {
        serde_json::from_slice::<SqlBody>(&body).map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))?.query
    } else {
        String::from_utf8(body.to_vec()).map_err(|_| Error::bad_request("SQL must be UTF-8"))?
    };
    if text.trim().is_empty() {
        return Err(Error::bad_request("empty SQL"));
    }
    let batches = run_sql(&state.engine.query, &tenant, &text).await?;
    let arrow = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains(ARROW_STREAM));
    let (format, content_type) = if arrow { (Format::Arrow, ARROW_STREAM) } else { (Format::Json, "application/json") };
    Ok(([(header::CONTENT_TYPE, content_type)], encode(&batches, format)?).into_response())
}
