//! `tempopb.StreamingQuerier` over gRPC on the HTTP port (h2c beside
//! HTTP/1.1, as Tempo's `stream_over_http_enabled`), which Grafana's Tempo
//! data source uses for streaming search. The tenant comes from the
//! `x-scope-orgid` metadata.

use std::collections::HashMap;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use spanlake_ingest::TENANT_HEADER;
use spanlake_traceql::search::{SearchRequest as EngineRequest, SearchResult, TraceSummary};
use tonic::{Request, Response, Status};

use crate::http::AppState;
use crate::http::search::{MAX_LIMIT, MAX_SPANS_PER_SPANSET, ROOT_NOT_YET_RECEIVED, SearchScope, execute_search, parse_query};
use crate::tempopb::streaming_querier_server::{StreamingQuerier, StreamingQuerierServer};
use crate::http::metrics::{execute_metrics, metrics_request, now_unix_nanos, prom_labels};
use crate::tempopb::{
    QueryRangeRequest, QueryRangeResponse, Sample, SearchMetrics, SearchRequest, SearchResponse, ServiceStats, Span, SpanSet,
    TimeSeries, TraceSearchMetadata,
};

/// The streaming querier service.
#[derive(Clone)]
pub struct Streaming {
    state: AppState,
}

/// The gRPC service to mount beside the HTTP routes.
pub fn streaming_querier(state: AppState) -> StreamingQuerierServer<Streaming> {
    StreamingQuerierServer::new(Streaming { state })
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(Value::StringValue(value.to_owned())) }), ..Default::default() }
}

/// A search result as `tempopb.SearchResponse`.
pub fn search_response(result: &SearchResult, total_blocks: usize, total_block_bytes: u64) -> SearchResponse {
    let traces = result
        .traces
        .iter()
        .map(|t| {
            let span_sets: Vec<SpanSet> = t
                .spansets
                .iter()
                .map(|set| SpanSet {
                    spans: set
                        .spans
                        .iter()
                        .map(|s| Span {
                            span_id: hex::encode(s.span_id),
                            name: s.name.clone(),
                            start_time_unix_nano: s.start_unix_nano as u64,
                            duration_nanos: s.duration_nano as u64,
                            attributes: s.attributes.iter().map(|(k, v)| kv(k, v)).collect(),
                        })
                        .collect(),
                    matched: set.matched as u32,
                    attributes: set.attributes.iter().map(|(k, v)| kv(k, v)).collect(),
                })
                .collect();
            TraceSearchMetadata {
                trace_id: hex::encode(t.trace_id),
                root_service_name: t.root_service_name.clone().unwrap_or_else(|| ROOT_NOT_YET_RECEIVED.to_owned()),
                root_trace_name: t.root_trace_name.clone().unwrap_or_default(),
                start_time_unix_nano: t.start_unix_nano as u64,
                duration_ms: (t.duration_nano / 1_000_000) as u32,
                span_set: span_sets.first().cloned(),
                span_sets,
                service_stats: t
                    .service_stats
                    .iter()
                    .map(|(svc, s)| (svc.clone(), ServiceStats { span_count: s.span_count, error_count: s.error_count }))
                    .collect(),
            }
        })
        .collect();
    SearchResponse {
        traces,
        metrics: Some(SearchMetrics {
            inspected_traces: result.metrics.inspected_traces as u32,
            inspected_bytes: total_block_bytes,
            total_blocks: total_blocks as u32,
            completed_jobs: 1,
            total_jobs: 1,
            total_block_bytes,
            inspected_spans: result.metrics.inspected_spans,
        }),
    }
}

type SearchStream = Pin<Box<dyn Stream<Item = Result<SearchResponse, Status>> + Send>>;

/// A stream of the early (unflushed-only) answer, then the traces of the full
/// answer that the early one did not already show as they are.
fn async_stream_two(
    early: SearchResult,
    full: impl std::future::Future<Output = Result<(SearchResult, usize, u64), Status>> + Send + 'static,
) -> SearchStream {
    let first = (!early.traces.is_empty()).then(|| Ok(search_response(&early, 0, 0)));
    let second = futures::stream::once(async move {
        let (mut full, blocks, bytes) = full.await?;
        retain_new_or_changed(&mut full.traces, &early.traces);
        Ok(search_response(&full, blocks, bytes))
    });
    Box::pin(futures::stream::iter(first).chain(second))
}

/// Keeps the traces of `full` that `early` does not hold as they are: new
/// ones, and those that gained spans since (sent again, whole).
fn retain_new_or_changed(full: &mut Vec<TraceSummary>, early: &[TraceSummary]) {
    // By trace id: answers can hold 100k traces.
    let shown: HashMap<[u8; 16], &TraceSummary> = early.iter().map(|t| (t.trace_id, t)).collect();
    full.retain(|t| shown.get(&t.trace_id).is_none_or(|e| *e != t));
}
type MetricsStream = Pin<Box<dyn Stream<Item = Result<QueryRangeResponse, Status>> + Send>>;

fn status(e: crate::error::Error) -> Status {
    Status::new(e.kind().grpc_code(), e.to_string())
}

impl Streaming {
    fn tenant<T>(&self, request: &Request<T>) -> Result<String, Status> {
        self.state
            .tenancy
            .resolve(request.metadata().get(TENANT_HEADER).map(|v| v.as_bytes()))
            .map_err(|e| Status::new(e.kind().grpc_code(), e.to_string()))
    }
}

#[tonic::async_trait]
impl StreamingQuerier for Streaming {
    type SearchStream = SearchStream;
    type MetricsQueryRangeStream = MetricsStream;

    async fn metrics_query_range(&self, request: Request<QueryRangeRequest>) -> Result<Response<MetricsStream>, Status> {
        let tenant = self.tenant(&request)?;
        let r = request.into_inner();
        let query = parse_query(&r.query).map_err(status)?;
        let nanos = |v: u64| i64::try_from(v).map_err(|_| Status::invalid_argument("time out of range"));
        let (start, end) = (nanos(r.start)?, if r.end == 0 { now_unix_nanos() } else { nanos(r.end)? });
        let step = if r.step == 0 { None } else { Some(nanos(r.step)?) };
        let request = metrics_request(start, end, step).map_err(status)?;
        let series = execute_metrics(&self.state, &tenant, &query, &request).await.map_err(status)?;
        let message = QueryRangeResponse {
            series: series
                .iter()
                .map(|s| TimeSeries {
                    labels: s.labels.iter().map(|(k, v)| kv(k, v)).collect(),
                    samples: s.samples.iter().map(|(t, v)| Sample { timestamp_ms: *t, value: *v }).collect(),
                    prom_labels: prom_labels(s),
                })
                .collect(),
            metrics: Some(SearchMetrics { completed_jobs: 1, total_jobs: 1, ..Default::default() }),
        };
        Ok(Response::new(Box::pin(futures::stream::once(async move { Ok(message) }))))
    }

    async fn search(&self, request: Request<SearchRequest>) -> Result<Response<SearchStream>, Status> {
        let tenant = self.tenant(&request)?;
        let r = request.into_inner();
        let query = parse_query(if r.query.trim().is_empty() { "{}" } else { &r.query }).map_err(status)?;
        let seconds = |s: u32| (s > 0).then_some(s as i64 * 1_000_000_000);
        let (start, end) = (seconds(r.start), seconds(r.end).map(|e| e + 999_999_999));
        if let (Some(s), Some(e)) = (start, end)
            && s > e
        {
            return Err(Status::invalid_argument("start must not be after end"));
        }
        let (limit, spss) = (r.limit as usize, r.spans_per_span_set as usize);
        if limit > MAX_LIMIT || spss > MAX_SPANS_PER_SPANSET {
            return Err(Status::invalid_argument(format!(
                "limit must be at most {MAX_LIMIT} and spans_per_span_set at most {MAX_SPANS_PER_SPANSET}"
            )));
        }
        let request = EngineRequest {
            limit: if limit == 0 { 20 } else { limit },
            spans_per_spanset: if spss == 0 { 3 } else { spss },
            start_unix_nano: start,
            end_unix_nano: end,
            min_trace_duration: (r.min_duration_ms > 0).then_some(r.min_duration_ms as i64 * 1_000_000),
            max_trace_duration: (r.max_duration_ms > 0).then_some(r.max_duration_ms as i64 * 1_000_000),
        };
        // First what memory holds (fast), then the full answer's traces that
        // are new or changed since: each message carries only those, as Tempo
        // streams, and the metrics are cumulative. The full answer reads the
        // unflushed spans again: a trace can be partly in memory and partly
        // in blocks, and only one search over both sees it whole.
        let (early, _, _) =
            execute_search(&self.state, &tenant, &query, &request, SearchScope::Unflushed).await.map_err(status)?;
        let state = self.state.clone();
        let stream = async_stream_two(early, async move {
            execute_search(&state, &tenant, &query, &request, SearchScope::All).await.map_err(status)
        });
        Ok(Response::new(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(id: u8, duration_nano: i64) -> TraceSummary {
        TraceSummary {
            trace_id: [id; 16],
            root_service_name: None,
            root_trace_name: None,
            start_unix_nano: 0,
            duration_nano,
            spansets: Vec::new(),
            service_stats: Default::default(),
        }
    }

    #[test]
    fn the_second_message_holds_only_new_or_changed_traces() {
        let early = vec![trace(1, 10), trace(2, 10)];
        // 1 unchanged, 2 grew, 3 is new (from the blocks).
        let mut full = vec![trace(3, 10), trace(2, 20), trace(1, 10)];
        retain_new_or_changed(&mut full, &early);
        assert_eq!(full, vec![trace(3, 10), trace(2, 20)]);
    }
}
