//! Jaeger thrift over HTTP (:14268): `POST /api/traces` with a
//! `jaeger.thrift` `Batch` in the binary protocol, as Jaeger clients'
//! HTTP senders and the Jaeger collector take it. `202 Accepted` on success.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::HeaderMap;

use super::thrift::{ThriftProtocol, decode_batch};
use crate::body::{BodyLimits, read_body};
use crate::distributor::{Distributor, TENANT_HEADER};
use crate::error::{Error, Result};
use crate::response::{accepted, media_type, text_error};

const PROTOCOL: &str = "jaeger_thrift_http";
const THRIFT_TYPES: &str = "application/x-thrift or application/vnd.apache.thrift.binary";

#[derive(Clone)]
struct JaegerHttpState {
    distributor: Distributor,
    limits: BodyLimits,
}

/// The Jaeger collector's HTTP routes.
pub fn jaeger_http_router(distributor: Distributor, limits: BodyLimits) -> Router {
    Router::new().route("/api/traces", post(post_traces)).with_state(JaegerHttpState { distributor, limits })
}

async fn post_traces(State(state): State<JaegerHttpState>, headers: HeaderMap, body: Body) -> Response {
    match post_inner(&state, &headers, body).await {
        Ok(()) => accepted(),
        Err(e) => {
            if matches!(e, Error::Decode { .. }) {
                state.distributor.metrics().malformed(PROTOCOL);
            }
            text_error(&e)
        }
    }
}

async fn post_inner(state: &JaegerHttpState, headers: &HeaderMap, body: Body) -> Result<()> {
    let mime = media_type(headers);
    if !matches!(mime.as_str(), "application/x-thrift" | "application/vnd.apache.thrift.binary") {
        return Err(Error::UnsupportedMediaTypeOf { found: mime, expected: THRIFT_TYPES });
    }
    let tenant = state.distributor.tenant(headers.get(TENANT_HEADER).map(|v| v.as_bytes()))?;
    let bytes = read_body(headers, body, state.limits).await?;
    let batch = decode_batch(&bytes, ThriftProtocol::Binary).map_err(|e| Error::decode("Jaeger thrift Batch", e))?;
    state.distributor.push(&tenant, PROTOCOL, bytes.len(), &batch.into_otlp()).await?;
    Ok(())
}
