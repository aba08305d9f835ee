//! Operational endpoints: readiness, Prometheus metrics, Grafana's health
//! check (`/api/echo`), build info, Tempo's `/flush`, and `/compact`.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};

use super::AppState;
use crate::error::Result;

/// `GET /ready`: 200 once serving, 503 before.
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// `GET /metrics`: Prometheus text (OpenMetrics).
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("encoding metrics: {e}\n")).into_response();
    }
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

/// `GET /api/echo`: Grafana's data source test.
pub async fn echo() -> &'static str {
    "echo"
}

/// Tempo's build info; Grafana enables features by `version`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    version: &'static str,
    revision: &'static str,
    branch: &'static str,
    build_date: &'static str,
    build_user: &'static str,
    go_version: &'static str,
}

/// `GET /api/status/buildinfo`. The version is the Tempo release whose API
/// we present, so Grafana enables the matching features.
pub async fn buildinfo() -> Json<BuildInfo> {
    Json(BuildInfo {
        version: "2.8.0",
        revision: env!("CARGO_PKG_VERSION"),
        branch: "main",
        build_date: "",
        build_user: "spanlake",
        go_version: "",
    })
}

/// `GET|POST /flush`: cut every head and write it as a block now.
pub async fn flush(State(state): State<AppState>) -> Result<StatusCode> {
    state.engine.ingester.flush(true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /compact`: expire, merge and delete blocks until nothing is left
/// to merge, now (the compactor also does this every `compaction_cycle`).
/// Answers what was done as JSON (`failures` counts merges that failed);
/// 503 when `compactor.disabled`.
pub async fn compact(State(state): State<AppState>) -> Result<Json<spanlake_engine::compactor::CompactionReport>> {
    if !state.compactor_enabled {
        return Err(spanlake_engine::Error::Unavailable("the compactor is disabled in this process (compactor.disabled)".into()).into());
    }
    Ok(Json(state.engine.compactor.run_until_idle().await?))
}

/// Unknown routes.
pub async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "404 page not found\n")
}
