//! Tempo's HTTP API on :3200: trace by id and operational endpoints.

pub mod metrics;
mod ops;
mod params;
pub mod search;
mod sql;
mod tags;
mod traces;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::routing::{get, post};
use http::HeaderMap;
use prometheus_client::registry::Registry;
use spanlake_engine::Engine;
use spanlake_ingest::{TENANT_HEADER, Tenancy};

use crate::error::Result;
use traces::ApiVersion;

/// Shared state of the query API.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub registry: Arc<Registry>,
    pub tenancy: Tenancy,
    /// Set once every listener is up and the WAL is replayed.
    pub ready: Arc<AtomicBool>,
    /// `compactor.disabled` is false: `/compact` may run.
    pub compactor_enabled: bool,
}

impl AppState {
    /// The tenant named by a request's headers.
    pub fn tenant(&self, headers: &HeaderMap) -> Result<String> {
        Ok(self.tenancy.resolve(headers.get(TENANT_HEADER).map(|v| v.as_bytes()))?)
    }
}

/// All routes of the query API, with Tempo's streaming gRPC services on
/// the same port (HTTP/2 without TLS, next to HTTP/1.1).
pub fn router(state: AppState) -> Router {
    let streaming = crate::grpc::streaming_querier(state.clone());
    Router::new()
        .route_service("/tempopb.StreamingQuerier/{*method}", streaming)
        .route("/api/traces/{id}", get(|s, h, p, q| traces::trace_by_id(ApiVersion::V1, s, h, p, q)))
        .route("/api/v2/traces/{id}", get(|s, h, p, q| traces::trace_by_id(ApiVersion::V2, s, h, p, q)))
        .route("/api/search", get(search::search_handler))
        .route("/api/metrics/query_range", get(metrics::query_range_handler))
        .route("/api/metrics/query", get(metrics::query_instant_handler))
        .route("/api/search/tags", get(tags::tags_v1))
        .route("/api/v2/search/tags", get(tags::tags_v2))
        .route("/api/search/tag/{name}/values", get(tags::values_v1))
        .route("/api/v2/search/tag/{name}/values", get(tags::values_v2))
        .route("/api/sql", axum::routing::post(sql::sql).layer(axum::extract::DefaultBodyLimit::max(1024 * 1024)))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/api/echo", get(ops::echo))
        .route("/api/status/buildinfo", get(ops::buildinfo))
        .route("/flush", get(ops::flush).post(ops::flush))
        .route("/compact", post(ops::compact))
        .fallback(ops::not_found)
        .with_state(state)
}

