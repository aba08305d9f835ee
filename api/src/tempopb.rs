//! Tempo's `tempopb` messages used by the query API, written from Tempo's
//! documented field numbers. Span data reuses the OTLP types: Tempo's copy of
//! the OTLP protos has the same wire format. The streaming search service is
//! generated from `proto/tempo.proto` by build.rs; the trace-by-id messages
//! are declared here.

#[allow(clippy::all, missing_docs)]
mod generated {
    tonic::include_proto!("tempopb");
}

pub use generated::*;

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

/// `tempopb.Trace`: the spans of one trace.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Trace {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `tempopb.TraceByIDMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdMetrics {
    #[prost(uint64, tag = "1")]
    pub inspected_bytes: u64,
}

/// `tempopb.TraceByIDResponse.PartialStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum PartialStatus {
    Complete = 0,
    Partial = 1,
}

/// `tempopb.TraceByIDResponse` (v2 trace-by-id API).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    pub trace: Option<Trace>,
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<TraceByIdMetrics>,
    #[prost(enumeration = "PartialStatus", tag = "3")]
    pub status: i32,
    #[prost(string, tag = "4")]
    pub message: String,
}
