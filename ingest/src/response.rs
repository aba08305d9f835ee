//! Plain-text HTTP answers of the Jaeger and Zipkin receivers (as their
//! own collectors answer): `202 Accepted` on success, and the error's
//! status with its message otherwise.

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};

use crate::error::Error;

/// `202 Accepted`, empty body.
pub fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

/// The error's status and message as text; 429/503 carry `Retry-After`.
pub fn text_error(error: &Error) -> Response {
    let status = error.http_status();
    let mut response = (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{error}\n")).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    }
    response
}

/// The media type of a request (`type/subtype`, lower case, no parameters).
pub fn media_type(headers: &http::HeaderMap) -> String {
    let value = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    value.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}
