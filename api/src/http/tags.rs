//! Tag autocomplete: `GET /api/search/tags`, `/api/v2/search/tags`,
//! `/api/search/tag/{name}/values`, `/api/v2/search/tag/{scoped}/values`.
//! Answered from the per-block tag summaries held in memory plus the
//! unflushed spans, never by scanning blocks.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{Path, Query, State};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use spanlake_engine::block::TagSummary;
use spanlake_engine::block::tags::{SCOPE_EVENT, SCOPE_INTRINSIC, SCOPE_LINK, SCOPE_RESOURCE, SCOPE_SPAN};

use super::AppState;
use super::params::seconds_range;
use crate::error::{Error, Result};

/// Intrinsics listed by the v2 tag API (Tempo's list).
const INTRINSICS: &[&str] = &[
    "duration",
    "event:name",
    "event:timeSinceStart",
    "instrumentation:name",
    "instrumentation:version",
    "kind",
    "link:spanID",
    "link:traceID",
    "name",
    "rootName",
    "rootServiceName",
    "span:duration",
    "span:id",
    "span:kind",
    "span:name",
    "span:parentID",
    "span:status",
    "span:statusMessage",
    "status",
    "statusMessage",
    "trace:duration",
    "trace:id",
    "trace:rootName",
    "trace:rootService",
    "traceDuration",
];

/// Query parameters of the tag endpoints.
#[derive(Debug, Deserialize)]
pub struct TagParams {
    scope: Option<String>,
    start: Option<String>,
    end: Option<String>,
    limit: Option<String>,
    /// TraceQL restricting the spans considered (`values_v2`).
    q: Option<String>,
}

impl TagParams {
    fn limit(&self) -> Result<usize> {
        match self.limit.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(usize::MAX),
            Some(s) => match s.parse::<usize>() {
                Ok(0) | Err(_) => Err(Error::bad_request(format!("invalid limit {s:?}: expected a positive integer"))),
                Ok(n) => Ok(n),
            },
        }
    }

    fn scope(&self) -> Result<Option<&str>> {
        match self.scope.as_deref().filter(|s| !s.is_empty() && *s != "all") {
            None => Ok(None),
            Some(s @ (SCOPE_SPAN | SCOPE_RESOURCE | SCOPE_INTRINSIC | SCOPE_EVENT | SCOPE_LINK | "instrumentation")) => Ok(Some(s)),
            Some(other) => Err(Error::bad_request(format!(
                "invalid scope {other:?}: expected resource, span, intrinsic, event, link or instrumentation"
            ))),
        }
    }

    fn summary(&self, state: &AppState, headers: &HeaderMap) -> Result<TagSummary> {
        let tenant = state.tenant(headers)?;
        let range = seconds_range(self.start.as_deref(), self.end.as_deref())?;
        Ok(state.engine.query.tag_summary(&tenant, range)?)
    }
}

fn names(summary: &TagSummary, scope: &str, limit: usize) -> Vec<String> {
    if scope == SCOPE_INTRINSIC {
        return INTRINSICS.iter().take(limit).map(|s| (*s).to_owned()).collect();
    }
    summary.scopes.get(scope).map(|tags| tags.keys().take(limit).cloned().collect()).unwrap_or_default()
}

/// `GET /api/search/tags`: attribute names (span and resource unless `scope` says otherwise).
pub async fn tags_v1(State(state): State<AppState>, headers: HeaderMap, Query(p): Query<TagParams>) -> Result<Json<Value>> {
    let limit = p.limit()?;
    let scope = p.scope()?;
    let summary = p.summary(&state, &headers)?;
    let scopes = match scope {
        Some(s) => vec![s],
        None => vec![SCOPE_SPAN, SCOPE_RESOURCE],
    };
    let all: BTreeSet<String> = scopes.into_iter().flat_map(|s| names(&summary, s, usize::MAX)).collect();
    let tag_names: Vec<String> = all.into_iter().take(limit).collect();
    Ok(Json(json!({ "tagNames": tag_names, "metrics": {} })))
}

/// `GET /api/v2/search/tags`: names grouped by scope, intrinsics included.
pub async fn tags_v2(State(state): State<AppState>, headers: HeaderMap, Query(p): Query<TagParams>) -> Result<Json<Value>> {
    let limit = p.limit()?;
    let summary = p.summary(&state, &headers)?;
    let scopes: Vec<&str> = match p.scope()? {
        Some(s) => vec![s],
        None => vec![SCOPE_RESOURCE, SCOPE_SPAN, SCOPE_EVENT, SCOPE_LINK, SCOPE_INTRINSIC],
    };
    let scopes: Vec<Value> = scopes
        .into_iter()
        .map(|s| (s, names(&summary, s, limit)))
        .filter(|(s, tags)| !tags.is_empty() || p.scope.as_deref() == Some(*s))
        .map(|(s, tags)| json!({ "name": s, "tags": tags }))
        .collect();
    Ok(Json(json!({ "scopes": scopes, "metrics": {} })))
}

/// Typed values of a tag, merged over the scopes it may live in.
fn values(summary: &TagSummary, scopes: &[&str], name: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for scope in scopes {
        if let Some(tag) = summary.scopes.get(*scope).and_then(|t| t.get(name)) {
            for (ty, set) in &tag.values {
                out.entry(ty.clone()).or_default().extend(set.iter().map(str::to_owned));
            }
        }
    }
    out
}

/// `GET /api/search/tag/{name}/values`: values of a span or resource attribute.
pub async fn values_v1(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(p): Query<TagParams>,
) -> Result<Json<Value>> {
    let limit = p.limit()?;
    let summary = p.summary(&state, &headers)?;
    let all: BTreeSet<String> = values(&summary, &[SCOPE_SPAN, SCOPE_RESOURCE], &name).into_values().flatten().collect();
    let tag_values: Vec<String> = all.into_iter().take(limit).collect();
    Ok(Json(json!({ "tagValues": tag_values, "metrics": {} })))
}

/// Splits `resource.service.name` / `.http.method` / `name` into the scopes
/// to search and the attribute or intrinsic name.
fn scoped_name(scoped: &str) -> Result<(Vec<&'static str>, String)> {
    let intrinsic_alias = |n: &str| -> Option<&'static str> {
        Some(match n {
            "name" | "span:name" => "name",
            "status" | "span:status" => "status",
            "kind" | "span:kind" => "kind",
            "statusMessage" | "span:statusMessage" => "statusMessage",
            "rootName" | "trace:rootName" => "rootName",
            "rootServiceName" | "trace:rootService" => "rootServiceName",
            "event:name" => "event:name",
            "instrumentation:name" => "instrumentation:name",
            _ => return None,
        })
    };
    if let Some(rest) = scoped.strip_prefix('.') {
        return Ok((vec![SCOPE_SPAN, SCOPE_RESOURCE], rest.to_owned()));
    }
    for (prefix, scope) in [
        ("span.", SCOPE_SPAN),
        ("resource.", SCOPE_RESOURCE),
        ("event.", SCOPE_EVENT),
        ("link.", SCOPE_LINK),
    ] {
        if let Some(rest) = scoped.strip_prefix(prefix) {
            return Ok((vec![scope], rest.to_owned()));
        }
    }
    if let Some(intrinsic) = intrinsic_alias(scoped) {
        return Ok((vec![SCOPE_INTRINSIC], intrinsic.to_owned()));
    }
    if INTRINSICS.contains(&scoped) {
        // Durations and ids have no useful value list.
        return Ok((Vec::new(), scoped.to_owned()));
    }
    Err(Error::bad_request(format!(
        "invalid tag {scoped:?}: use a scoped attribute (span.x, resource.x, .x) or an intrinsic"
    )))
}

/// `GET /api/v2/search/tag/{scoped}/values`: typed values `{type, value}`.
pub async fn values_v2(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(scoped): Path<String>,
    Query(p): Query<TagParams>,
) -> Result<Json<Value>> {
    let limit = p.limit()?;
    let (scopes, name) = scoped_name(&scoped)?;
    if let Some(values) = filtered_values(&state, &headers, &p, &scoped, limit).await? {
        let tag_values: Vec<Value> = values.into_iter().map(|(ty, v)| json!({ "type": ty, "value": v })).collect();
        return Ok(Json(json!({ "tagValues": tag_values, "metrics": {} })));
    }
    let summary = p.summary(&state, &headers)?;
    let tag_values: Vec<Value> = values(&summary, &scopes, &name)
        .into_iter()
        .flat_map(|(ty, set)| set.into_iter().map(move |v| json!({ "type": ty, "value": v })))
        .take(limit)
        .collect();
    Ok(Json(json!({ "tagValues": tag_values, "metrics": {} })))
}

/// Values of `scoped` among the spans matching `q`, when `q` is a complete
/// query that narrows anything. Incomplete queries (Grafana sends what the
/// user has typed so far) fall back to the unfiltered summary, as in Tempo.
async fn filtered_values(
    state: &AppState,
    headers: &HeaderMap,
    p: &TagParams,
    scoped: &str,
    limit: usize,
) -> Result<Option<Vec<(String, String)>>> {
    let Some(q) = p.q.as_deref().map(str::trim).filter(|q| !q.is_empty() && *q != "{}" && *q != "{ }") else {
        return Ok(None);
    };
    let Ok(query) = spanlake_traceql::parse(q) else { return Ok(None) };
    // The tag as a field expression, parsed the way TraceQL spells it.
    let tag = match spanlake_traceql::parse(&format!("{{ }} | by({scoped})")).map(|t| t.pipeline.stages) {
        Ok(stages) => match stages.into_iter().next() {
            Some(spanlake_traceql::ast::Stage::By { mut exprs, .. }) if exprs.len() == 1 => exprs.remove(0),
            _ => return Ok(None),
        },
        Err(_) => return Ok(None),
    };
    let tenant = state.tenant(headers)?;
    let range = seconds_range(p.start.as_deref(), p.end.as_deref())?;
    let ctx = state.engine.query.session_in_range(&tenant, range)?;
    let request = spanlake_traceql::search::SearchRequest {
        limit: usize::MAX,
        spans_per_spanset: 0,
        start_unix_nano: range.map(|r| r.0),
        end_unix_nano: range.map(|r| r.1),
        min_trace_duration: None,
        max_trace_duration: None,
    };
    let values = spanlake_traceql::search::tag_values(&ctx, &query, &tag, &request, limit.min(10_000))
        .await
        .map_err(super::search::search_error)?;
    Ok(Some(values))
}
