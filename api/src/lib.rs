//! Spanlake's query API and server wiring; the `spanlake` binary is a thin
//! command line over [`server::serve`].

pub mod config;
pub mod error;
pub mod grpc;
pub mod harness;
pub mod http;
pub mod server;
pub mod sql;
pub mod tempopb;
pub mod trace_json;
