//! Jaeger gRPC (:14250): `jaeger.api_v2.CollectorService/PostSpans`, as the
//! Jaeger agent and OpenTelemetry's Jaeger gRPC exporters send it.

use std::task::{Context, Poll};

use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::proto::batch_from_proto;
use crate::body::BodyLimits;
use crate::distributor::{Distributor, TENANT_HEADER};
use crate::error::Error;
use crate::proto::jaeger::collector_service_server::{CollectorService, CollectorServiceServer};
use crate::proto::jaeger::{PostSpansRequest, PostSpansResponse};

const PROTOCOL: &str = "jaeger_grpc";

/// `jaeger.api_v2.CollectorService`.
#[derive(Debug, Clone)]
pub struct JaegerGrpc {
    distributor: Distributor,
}

#[tonic::async_trait]
impl CollectorService for JaegerGrpc {
    async fn post_spans(&self, request: Request<PostSpansRequest>) -> Result<Response<PostSpansResponse>, Status> {
        let tenant = self.distributor.tenant(request.metadata().get(TENANT_HEADER).map(|v| v.as_bytes()))?;
        let request = request.into_inner();
        let size = request.encoded_len();
        let batch = batch_from_proto(request.batch.unwrap_or_default()).inspect_err(|e| {
            if matches!(e, Error::Decode { .. }) {
                self.distributor.metrics().malformed(PROTOCOL);
            }
        })?;
        self.distributor.push(&tenant, PROTOCOL, size, &batch.into_otlp()).await?;
        Ok(Response::new(PostSpansResponse {}))
    }
}

/// The Jaeger collector service with gzip and the size limit applied;
/// undecodable requests are counted as malformed.
pub fn jaeger_grpc_service(distributor: Distributor, limits: BodyLimits) -> CountUndecodable<CollectorServiceServer<JaegerGrpc>> {
    let metrics = distributor.metrics().clone();
    let inner = CollectorServiceServer::new(JaegerGrpc { distributor })
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limits.max_decompressed_bytes);
    CountUndecodable { inner, metrics }
}

/// Counts requests tonic could not decode (which never reach the handler)
/// in `spanlake_receiver_malformed_payloads{protocol="jaeger_grpc"}`.
#[derive(Debug, Clone)]
pub struct CountUndecodable<S> {
    inner: S,
    metrics: crate::DistributorMetrics,
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for CountUndecodable<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B> tower::Service<http::Request<B>> for CountUndecodable<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let metrics = self.metrics.clone();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            let headers = response.headers();
            let status = headers.get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("");
            let message = headers.get("grpc-message").and_then(|v| v.to_str().ok()).unwrap_or("");
            if status == (tonic::Code::Internal as i32).to_string() && message.starts_with("failed%20to%20decode") {
                metrics.malformed(PROTOCOL);
            }
            Ok(response)
        })
    }
}
