//! Spanlake's storage and query engine: the span schema, OTLP conversion,
//! the write-ahead log, the in-memory head block, Parquet blocks on object
//! storage and the DataFusion tables over all of them.

pub mod block;
pub mod compactor;
pub mod config;
pub mod convert;
pub mod error;
pub mod ingester;
mod instance;
pub mod metrics;
pub mod query;
pub mod schema;
pub mod storage;
pub mod wal;

pub use error::{Error, ErrorKind, Result};
pub use instance::{Engine, open_read_only};
