//! OTLP over gRPC (:4317), gzip accepted.

use std::net::SocketAddr;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::export_response;
use crate::body::BodyLimits;
use crate::distributor::{Distributor, TENANT_HEADER};

/// `opentelemetry.proto.collector.trace.v1.TraceService`.
#[derive(Debug, Clone)]
pub struct OtlpGrpc {
    distributor: Distributor,
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(&self, request: Request<ExportTraceServiceRequest>) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let tenant = self.distributor.tenant(request.metadata().get(TENANT_HEADER).map(|v| v.as_bytes()))?;
        let request = request.into_inner();
        let outcome =
            self.distributor.push(&tenant, "otlp_grpc", request.encoded_len(), &request.resource_spans).await?;
        Ok(Response::new(export_response(&outcome)))
    }
}

/// The OTLP trace service with gzip and the size limit applied.
pub fn otlp_grpc_service(distributor: Distributor, limits: BodyLimits) -> TraceServiceServer<OtlpGrpc> {
    TraceServiceServer::new(OtlpGrpc { distributor })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limits.max_decompressed_bytes)
}

/// Brings tonic's codes for undecodable requests in line with gRPC's
/// conventions (and OTLP exporters' retry logic): an oversized message is
/// RESOURCE_EXHAUSTED (tonic: OUT_OF_RANGE) and malformed protobuf is
/// INVALID_ARGUMENT (tonic: INTERNAL, which clients would retry).
fn normalize_decode_errors(mut response: http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body> {
    let code = |c: tonic::Code| (c as i32).to_string();
    let headers = response.headers();
    let status = headers.get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("");
    let message = headers.get("grpc-message").and_then(|v| v.to_str().ok()).unwrap_or("");
    let replacement = if status == code(tonic::Code::OutOfRange) {
        Some(code(tonic::Code::ResourceExhausted))
    } else if status == code(tonic::Code::Internal) && message.starts_with("failed%20to%20decode%20Protobuf") {
        Some(code(tonic::Code::InvalidArgument))
    } else {
        None
    };
    if let Some(replacement) = replacement {
        response.headers_mut().insert("grpc-status", http::HeaderValue::from_str(&replacement).expect("digits"));
    }
    response
}

/// Serves `service` on an already-bound listener until `shutdown` resolves.
pub async fn grpc_server<S>(
    listener: tokio::net::TcpListener,
    service: S,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error>
where
    S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>, Error = std::convert::Infallible>
        + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::debug!(?addr, "gRPC server starting");
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(normalize_decode_errors as fn(_) -> _))
        .add_service(service)
        .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), shutdown)
        .await
}
