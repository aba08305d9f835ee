//! Protocol receivers. Each hands OTLP trace protobuf to the
//! [`Distributor`], the single write path into the engine, so limits,
//! tenants, acknowledgement and errors are the same for every protocol:
//! OTLP's as received, the others decoded or translated into OTLP
//! `ResourceSpans` and encoded.

pub mod body;
pub mod config;
pub mod distributor;
pub mod error;
pub mod jaeger;
pub mod otlp;
pub mod proto;
pub mod response;
pub mod thrift;
pub mod translate;
pub mod zipkin;

pub use distributor::{DEFAULT_TENANT, Distributor, DistributorMetrics, TENANT_HEADER, Tenancy, tenant_from_header};
pub use error::{Error, Result};
