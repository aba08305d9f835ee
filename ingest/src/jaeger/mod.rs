//! Jaeger receivers: gRPC `CollectorService/PostSpans` (:14250), thrift
//! over HTTP `POST /api/traces` (:14268), and the agent's UDP `emitBatch`
//! in the compact (:6831) and binary (:6832) Thrift protocols.
//!
//! Both wire formats decode into one [`model::Batch`], which has the one
//! translation into OTLP.

mod grpc;
mod http;
pub mod model;
pub mod proto;
pub mod thrift;
mod udp;

pub use grpc::jaeger_grpc_service;
pub use http::jaeger_http_router;
pub use udp::{MAX_DATAGRAM_BYTES, serve_agent_udp};
