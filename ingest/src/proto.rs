//! Generated protobuf types of the Jaeger and Zipkin wire schemas
//! (`ingest/proto/`, compiled by `build.rs`).

/// `jaeger.api_v2`: Jaeger's span model and `CollectorService`.
pub mod jaeger {
    #![allow(missing_docs, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/jaeger.api_v2.rs"));
}

/// `zipkin.proto3`: Zipkin v2 spans (`ListOfSpans`).
pub mod zipkin {
    #![allow(missing_docs, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/zipkin.proto3.rs"));
}

/// The well-known types the Jaeger schema uses (`Timestamp`, `Duration`).
pub use prost_types;
