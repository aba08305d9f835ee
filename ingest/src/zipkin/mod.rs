//! Zipkin receiver (:9411): `POST /api/v2/spans` (JSON or protobuf) and
//! `POST /api/v1/spans` (JSON). Every format decodes into one
//! [`model::Span`] list, which has the one translation into OTLP.

mod http;
pub mod json;
pub mod model;
pub mod proto;

pub use http::zipkin_http_router;
pub use model::TranslateOptions;
