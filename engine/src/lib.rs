//! Spanlake's storage and query engine: the span schema, OTLP conversion,
//! the write-ahead log, the in-memory head block, Parquet blocks on object
//! storage and the DataFusion tables over all of them.

pub mod convert;
pub mod error;
pub mod schema;

pub use error::{Error, ErrorKind, Result};
