//! OTLP trace receivers: gRPC `TraceService/Export` and HTTP `POST /v1/traces`.

mod grpc;
mod http;

pub use grpc::{ExportRequestBytes, ExportRequestCodec, grpc_server, otlp_grpc_service};
pub use http::otlp_http_router;

use opentelemetry_proto::tonic::collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse};

use crate::distributor::PushOutcome;

/// The OTLP response for a push: partial success when spans were refused.
fn export_response(outcome: &PushOutcome) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (outcome.rejected_spans > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: outcome.rejected_spans as i64,
            error_message: outcome.rejection_message.clone(),
        }),
    }
}
