//! OTLP over HTTP (:4318): `POST /v1/traces` with protobuf or JSON bodies,
//! gzip, chunked transfer. Responses and errors use the request's encoding
//! (`ExportTraceServiceResponse` / `google.rpc.Status`), as the spec asks.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{HeaderMap, StatusCode, header};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use super::export_response;
use crate::body::{BodyLimits, read_body};
use crate::distributor::{Distributor, TENANT_HEADER};
use crate::error::{Error, Result};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// Payload encodings of OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn from_headers(headers: &HeaderMap) -> Result<Self> {
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match mime.as_str() {
            PROTOBUF | "application/protobuf" => Ok(Encoding::Protobuf),
            JSON => Ok(Encoding::Json),
            _ => Err(Error::UnsupportedMediaType(content_type.to_owned())),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Clone)]
struct OtlpHttpState {
    distributor: Distributor,
    limits: BodyLimits,
}

/// The OTLP/HTTP routes.
pub fn otlp_http_router(distributor: Distributor, limits: BodyLimits) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .with_state(OtlpHttpState { distributor, limits })
}

async fn export(State(state): State<OtlpHttpState>, headers: HeaderMap, body: Body) -> Response {
    let encoding = Encoding::from_headers(&headers);
    // Errors answer in the request's encoding; JSON when it has none we know.
    let reply_encoding = encoding.as_ref().copied().unwrap_or(Encoding::Json);
    let result = match encoding {
        Ok(encoding) => export_inner(&state, &headers, body, encoding).await,
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| {
        if e.is_malformed() {
            state.distributor.metrics().malformed("otlp_http");
        }
        error_response(&e, reply_encoding)
    })
}

async fn export_inner(state: &OtlpHttpState, headers: &HeaderMap, body: Body, encoding: Encoding) -> Result<Response> {
    let tenant = state.distributor.tenant(headers.get(TENANT_HEADER).map(|v| v.as_bytes()))?;
    let bytes = read_body(headers, body, state.limits).await?;
    let outcome = match encoding {
        Encoding::Protobuf => state.distributor.push_protobuf(&tenant, "otlp_http", &bytes).await?,
        Encoding::Json => {
            let request: ExportTraceServiceRequest =
                serde_json::from_slice(&bytes).map_err(|e| Error::decode("OTLP JSON", e))?;
            state.distributor.push(&tenant, "otlp_http", bytes.len(), &request.resource_spans).await?
        }
    };
    let response = export_response(&outcome);
    let body = match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        // `{}` when everything was accepted: OTLP/JSON omits absent fields.
        Encoding::Json => match &response.partial_success {
            None => b"{}".to_vec(),
            Some(_) => serde_json::to_vec(&response).map_err(spanlake_engine::Error::from)?,
        },
    };
    Ok(([(header::CONTENT_TYPE, encoding.content_type())], body).into_response())
}

fn error_response(error: &Error, encoding: Encoding) -> Response {
    let status = error.http_status();
    let rpc = RpcStatus { code: error.kind().grpc_code() as i32, message: error.to_string() };
    let body = match encoding {
        Encoding::Protobuf => rpc.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&rpc).unwrap_or_default(),
    };
    let mut response = (status, [(header::CONTENT_TYPE, encoding.content_type())], body).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    }
    response
}
