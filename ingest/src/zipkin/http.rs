//! Zipkin's HTTP API: `POST /api/v2/spans` (`application/json`, or
//! `application/x-protobuf` for `zipkin.proto3.ListOfSpans`) and
//! `POST /api/v1/spans` (`application/json`), gzip and chunked bodies;
//! `202 Accepted` on success, as the Zipkin server answers.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::HeaderMap;

use super::json::{decode_v1, decode_v2};
use super::model::{TranslateOptions, spans_to_otlp};
use super::proto::decode_proto;
use crate::body::{BodyLimits, read_body};
use crate::distributor::{Distributor, TENANT_HEADER};
use crate::error::{Error, Result};
use crate::response::{accepted, media_type, text_error};

const PROTOCOL: &str = "zipkin";

#[derive(Clone)]
struct ZipkinState {
    distributor: Distributor,
    limits: BodyLimits,
    options: TranslateOptions,
}

/// Zipkin API versions.
#[derive(Debug, Clone, Copy)]
enum Version {
    V1,
    V2,
}

/// The Zipkin routes.
pub fn zipkin_http_router(distributor: Distributor, limits: BodyLimits, options: TranslateOptions) -> Router {
    Router::new()
        .route("/api/v2/spans", post(|s: State<ZipkinState>, h: HeaderMap, b: Body| post_spans(s, h, b, Version::V2)))
        .route("/api/v1/spans", post(|s: State<ZipkinState>, h: HeaderMap, b: Body| post_spans(s, h, b, Version::V1)))
        .with_state(ZipkinState { distributor, limits, options })
}

async fn post_spans(State(state): State<ZipkinState>, headers: HeaderMap, body: Body, version: Version) -> Response {
    match post_inner(&state, &headers, body, version).await {
        Ok(()) => accepted(),
        Err(e) => {
            if matches!(e, Error::Decode { .. }) {
                state.distributor.metrics().malformed(PROTOCOL);
            }
            text_error(&e)
        }
    }
}

async fn post_inner(state: &ZipkinState, headers: &HeaderMap, body: Body, version: Version) -> Result<()> {
    let mime = media_type(headers);
    // Zipkin takes a body without a content type as JSON.
    let decode: fn(&[u8]) -> Result<Vec<super::model::Span>> = match (version, mime.as_str()) {
        (_, "" | "application/json") => match version {
            Version::V1 => decode_v1,
            Version::V2 => decode_v2,
        },
        (Version::V2, "application/x-protobuf" | "application/protobuf") => decode_proto,
        (Version::V1, _) => {
            return Err(Error::UnsupportedMediaTypeOf { found: mime, expected: "application/json (v1 thrift is not supported)" });
        }
        (Version::V2, _) => return Err(Error::UnsupportedMediaTypeOf { found: mime, expected: "application/json or application/x-protobuf" }),
    };
    let tenant = state.distributor.tenant(headers.get(TENANT_HEADER).map(|v| v.as_bytes()))?;
    let bytes = read_body(headers, body, state.limits).await?;
    let spans = decode(&bytes)?;
    state.distributor.push(&tenant, PROTOCOL, bytes.len(), &spans_to_otlp(spans, state.options)).await?;
    Ok(())
}
