//! Runs a search query: the compiled plan over a tenant's `spans` table,
//! restricted to a time range and trace-duration bounds, and returns the
//! most recent matching traces with up to `spans_per_spanset` spans per
//! spanset (Tempo's `/api/search` semantics).
//!
//! One streaming pass collects the matched traces with every result column
//! (see [`Passes`] for when): either keeping the `limit` most recent ones
//! (traces that fall behind the `limit`-th are dropped as the pass goes, so
//! memory does not grow with the number of matches), or giving up as soon
//! as more than `limit` traces match. Then, or should a dropped trace turn
//! out more recent later (its spans spread over blocks that disagree on its
//! start), two passes over the same plan take over: the first picks the
//! `limit` most recent matching traces (an aggregate + top-k over the
//! columns the query needs), the second fetches the matched spans of those
//! traces.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, FixedSizeBinaryArray, RecordBatch, StringArray};
use arrow::datatypes::{Int8Type, Int64Type};
use datafusion::catalog::TableProvider;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::provider_as_source;
use datafusion::functions_aggregate::expr_fn::max;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::prelude::SessionContext;
use foldhash::{HashMap, HashMapExt, HashSet};
use futures::StreamExt;
use spanlake_engine::schema::col as c;

use crate::ast::Query;
use crate::compile::{CompileError, SearchPlan, compile_search};

/// Errors of a search: the query could not be planned, or execution failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    Compile(#[from] CompileError),
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

/// What to search for.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub limit: usize,
    pub spans_per_spanset: usize,
    /// Span start bounds, unix nanos, inclusive.
    pub start_unix_nano: Option<i64>,
    pub end_unix_nano: Option<i64>,
    /// Trace duration bounds, nanos, inclusive.
    pub min_trace_duration: Option<i64>,
    pub max_trace_duration: Option<i64>,
}

/// One matched span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanSummary {
    pub span_id: [u8; 8],
    pub name: String,
    pub start_unix_nano: i64,
    pub duration_nano: i64,
    /// `select()`ed values (label, value); also the by() values.
    pub attributes: Vec<(String, String)>,
}

/// One spanset of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct SpansetSummary {
    pub spans: Vec<SpanSummary>,
    /// Spans matched before `spans_per_spanset` trimmed the list.
    pub matched: usize,
    /// `by()` labels and values of this spanset.
    pub attributes: Vec<(String, String)>,
}

/// Per-service counts of matched spans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStats {
    pub span_count: u32,
    pub error_count: u32,
}

/// One matched trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSummary {
    pub trace_id: [u8; 16],
    /// `None` when the root span has not arrived.
    pub root_service_name: Option<String>,
    pub root_trace_name: Option<String>,
    pub start_unix_nano: i64,
    pub duration_nano: i64,
    pub spansets: Vec<SpansetSummary>,
    pub service_stats: BTreeMap<String, ServiceStats>,
}

/// Totals about the work a search did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchMetrics {
    pub inspected_traces: u64,
    pub inspected_spans: u64,
}

/// Search results, most recent trace first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchResult {
    pub traces: Vec<TraceSummary>,
    pub metrics: SearchMetrics,
}

/// Compiles `query` against `spans` with the request's time filter on every scan.
pub fn plan_search(query: &Query, spans: Arc<dyn TableProvider>, request: &SearchRequest) -> Result<SearchPlan, SearchError> {
    let source = provider_as_source(spans);
    let time_filter = time_filter(request);
    let scan = move || -> Result<LogicalPlanBuilder, CompileError> {
        let builder = LogicalPlanBuilder::scan("spans", source.clone(), None).map_err(|e| CompileError { message: e.to_string() })?;
        match &time_filter {
            Some(f) => builder.filter(f.clone()).map_err(|e| CompileError { message: e.to_string() }),
            None => Ok(builder),
        }
    };
    let mut plan = compile_search(query, &scan)?;
    let mut durations = Vec::new();
    if let Some(min) = request.min_trace_duration {
        durations.push(col(c::TRACE_DURATION_NANO).gt_eq(lit(min)));
    }
    if let Some(max) = request.max_trace_duration {
        durations.push(col(c::TRACE_DURATION_NANO).lt_eq(lit(max)));
    }
    if let Some(filter) = durations.into_iter().reduce(Expr::and) {
        plan.plan = LogicalPlanBuilder::from(plan.plan).filter(filter)?.build()?;
    }
    Ok(plan)
}

/// Keeps whole traces overlapping the range (as Tempo does), so a query
/// sees every span of a trace that started just before the window.
fn time_filter(request: &SearchRequest) -> Option<Expr> {
    let mut parts = Vec::new();
    if let Some(start) = request.start_unix_nano {
        parts.push((col(c::TRACE_START_UNIX_NANO) + col(c::TRACE_DURATION_NANO)).gt_eq(lit(start)));
    }
    if let Some(end) = request.end_unix_nano {
        parts.push(col(c::TRACE_START_UNIX_NANO).lt_eq(lit(end)));
    }
    parts.into_iter().reduce(Expr::and)
}

/// Runs a search over the `spans` table registered in `ctx`.
pub async fn search(ctx: &SessionContext, query: &Query, request: &SearchRequest) -> Result<SearchResult, SearchError> {
    let spans = ctx.table_provider("spans").await?;
    let plan = plan_search(query, spans, request)?;
    let passes = Passes::for_plan(&plan.plan, request.limit)?;
    if passes != Passes::Two {
        let bound = Bound::new(request.limit, passes == Passes::OneWhileFew);
        let mut collector = TraceCollector::new(&plan, request.spans_per_spanset, Some(bound));
        if collector.collect(ctx, matched_spans_plan(&plan, None)?).await? {
            return Ok(collector.finish());
        }
    }
    // Pick the most recent traces, then fetch their spans.
    let trace_ids = most_recent_traces(ctx, &plan.plan, request.limit).await?;
    if trace_ids.is_empty() {
        return Ok(SearchResult::default());
    }
    let mut collector = TraceCollector::new(&plan, request.spans_per_spanset, None);
    collector.collect(ctx, matched_spans_plan(&plan, Some(&trace_ids))?).await?;
    Ok(collector.finish())
}

/// Below this `limit` a narrow first pass plus a fetch of the chosen
/// traces by id is cheap; from it on, the fetch by ids costs more than a
/// whole wide pass (measured on `small`: 11.7k ids, ~600 CPU-ms, one pass ~330).
const SMALL_LIMIT: usize = 500;

/// How a search runs its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Passes {
    /// One wide pass keeping the `limit` most recent traces: large limits.
    One,
    /// One wide pass, given up for two passes as soon as more than `limit`
    /// traces match: plain filters under small limits. Most match fewer
    /// traces; those that match many give up after reading a little
    /// (on `medium`, `{ kind = client }` with limit 20: 0.35 s against
    /// 0.66 s for a whole wide pass).
    OneWhileFew,
    /// A narrow pass picking the traces, then a fetch of their spans:
    /// windows, aggregates (`count()`, `avg()`, events) and joins
    /// (structural operators) under small limits. They consume all their
    /// input (a join its whole left side) before the first row, so a wide
    /// attempt would carry every result column through it, or give up
    /// after the most expensive part (on `medium`, `>` with limit 20: 1.6
    /// CPU-s in two passes, 2.6 in one wide pass). (Filters on attribute maps,
    /// which the Parquet reader cannot evaluate while decoding, still cost
    /// less in one wide pass than in a narrow pass plus a fetch by ids: 220
    /// against ~450 CPU-ms for `{ span.db.operation = "INSERT" }` on `small`.)
    Two,
}

impl Passes {
    fn for_plan(plan: &LogicalPlan, limit: usize) -> Result<Self, SearchError> {
        if limit >= SMALL_LIMIT {
            return Ok(Passes::One);
        }
        let mut passes = Passes::OneWhileFew;
        plan.apply(|node| {
            if matches!(node, LogicalPlan::Window(_) | LogicalPlan::Aggregate(_) | LogicalPlan::Join(_)) {
                passes = Passes::Two;
            }
            Ok(if passes == Passes::Two { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
        })?;
        Ok(passes)
    }
}

/// The first pass of a search: the ids of the `limit` most recent matching
/// traces, newest first. Reads only the columns the query touches plus
/// trace_id and trace_start_unix_nano.
pub fn most_recent_traces_plan(matched: &LogicalPlan, limit: usize) -> Result<LogicalPlan, SearchError> {
    Ok(LogicalPlanBuilder::from(matched.clone())
        .aggregate(vec![col(c::TRACE_ID)], vec![max(col(c::TRACE_START_UNIX_NANO)).alias("__start")])?
        .sort(vec![col("__start").sort(false, true), col(c::TRACE_ID).sort(true, true)])?
        .limit(0, Some(limit))?
        .build()?)
}

/// The session a first pass runs in: `ctx` without Parquet filter pushdown.
/// A first pass reads a few narrow columns, so decoding the filter columns
/// first and the others only for the selected rows saves little, while the
/// selection (spans of one kind or status are scattered over the pages)
/// and the join's dynamic filter evaluated at the scan cost much. On
/// `medium` with limit 20, server CPU: `>` 1.78 → 1.08 s, `>>` 0.91 →
/// 0.61 s, `~` 1.09 → 0.86 s, `count() > 20` 1.07 → 0.72 s. (Wide passes
/// keep it: there it skips decoding every result column of the spans
/// that do not match, which `status = error` or a resource filter make
/// twice as fast.)
pub fn first_pass_session(ctx: &SessionContext) -> SessionContext {
    let mut state = ctx.state();
    state.config_mut().options_mut().execution.parquet.pushdown_filters = false;
    state.table_options_mut().parquet.global.pushdown_filters = false;
    SessionContext::new_with_state(state)
}

async fn most_recent_traces(ctx: &SessionContext, matched: &LogicalPlan, limit: usize) -> Result<Vec<[u8; 16]>, SearchError> {
    let top = most_recent_traces_plan(matched, limit)?;
    let batches = first_pass_session(ctx).execute_logical_plan(top).await?.collect().await?;
    let mut ids = Vec::new();
    for batch in &batches {
        let column = batch.column(0).as_fixed_size_binary();
        for i in 0..column.len() {
            if let Ok(id) = <[u8; 16]>::try_from(column.value(i)) {
                ids.push(id);
            }
        }
    }
    Ok(ids)
}

/// The matched spans (of the chosen traces only, when given) with the
/// columns results need, in the order [`TraceCollector::add`] reads them.
pub fn matched_spans_plan(plan: &SearchPlan, trace_ids: Option<&[[u8; 16]]>) -> Result<LogicalPlan, SearchError> {
    let mut columns: Vec<Expr> = [
        c::TRACE_ID,
        c::SPAN_ID,
        c::NAME,
        c::START_UNIX_NANO,
        c::DURATION_NANO,
        c::STATUS_CODE,
        c::SERVICE_NAME,
        c::TRACE_ROOT_SERVICE,
        c::TRACE_ROOT_NAME,
        c::TRACE_START_UNIX_NANO,
        c::TRACE_DURATION_NANO,
    ]
    .iter()
    .map(|name| col(*name))
    .collect();
    columns.extend(plan.by.iter().chain(&plan.select).map(|o| col(&o.column)));
    let mut builder = LogicalPlanBuilder::from(plan.plan.clone());
    if let Some(trace_ids) = trace_ids {
        let ids: Vec<Expr> = trace_ids.iter().map(|id| lit(ScalarValue::FixedSizeBinary(16, Some(id.to_vec())))).collect();
        builder = builder.filter(col(c::TRACE_ID).in_list(ids, false))?;
    }
    Ok(builder.project(columns)?.build()?)
}

/// The spans kept for one spanset: the `spss` most recent, and the ids of
/// all matched spans (a stored duplicate of a span counts once).
#[derive(Default)]
struct SpansetBuilder {
    matched: HashSet<[u8; 8]>,
    kept: Vec<SpanSummary>,
}

/// Most recent span first; span id breaks ties.
fn more_recent(a: &SpanSummary, b: &SpanSummary) -> std::cmp::Ordering {
    b.start_unix_nano.cmp(&a.start_unix_nano).then(a.span_id.cmp(&b.span_id))
}

struct TraceBuilder {
    trace_id: [u8; 16],
    /// Largest `trace_start_unix_nano` among the matched spans: the order of results.
    rank: Option<i64>,
    root_service_name: Option<String>,
    root_trace_name: Option<String>,
    start: i64,
    end: i64,
    /// by() values and their spans.
    spansets: Vec<(Vec<Option<String>>, SpansetBuilder)>,
    service_stats: BTreeMap<String, ServiceStats>,
}

/// Where a trace stands in the results: `rank` (its largest trace start;
/// none first, then most recent), then trace id.
fn result_order(a: (Option<i64>, &[u8; 16]), b: (Option<i64>, &[u8; 16])) -> std::cmp::Ordering {
    match (a.0, b.0) {
        (None, None) => a.1.cmp(b.1),
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(&x).then(a.1.cmp(b.1)),
    }
}

/// Traces passed over before the one-pass search gives up for two passes
/// (their ids are remembered: about 40 bytes each).
const MAX_PASSED_OVER: usize = 4_000_000;

/// The `limit` of a one-pass search: which traces it no longer collects.
struct Bound {
    limit: usize,
    /// Give up once `limit` traces are collected and another one matches.
    give_up_when_full: bool,
    /// Rank and id of the last trace kept by the latest pruning: a trace
    /// that comes after it is not collected.
    last_kept: Option<(Option<i64>, [u8; 16])>,
    /// Traces pruned or never collected. One of them ranking before
    /// `last_kept` later makes the pass inexact.
    passed_over: HashSet<[u8; 16]>,
    inexact: bool,
}

impl Bound {
    fn new(limit: usize, give_up_when_full: bool) -> Self {
        Bound { limit, give_up_when_full, last_kept: None, passed_over: HashSet::default(), inexact: false }
    }
}

/// Folds matched spans into per-trace summaries as they stream in, keeping
/// only `spss` spans per spanset, so memory grows with the number of
/// traces, not of matched spans. With a limit, only the `limit` most
/// recent traces are kept (pruned from time to time), so memory does not
/// grow with the number of matched traces either.
struct TraceCollector<'a> {
    plan: &'a SearchPlan,
    spss: usize,
    traces: Vec<TraceBuilder>,
    index: HashMap<[u8; 16], usize>,
    inspected_spans: u64,
    bound: Option<Bound>,
}

fn str_at(a: &StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}

fn opt_str(a: &StringArray, i: usize) -> Option<String> {
    str_at(a, i).map(str::to_owned)
}

impl<'a> TraceCollector<'a> {
    /// A collector of every trace, or of those `bound` keeps.
    fn new(plan: &'a SearchPlan, spss: usize, bound: Option<Bound>) -> Self {
        Self { plan, spss, traces: Vec::new(), index: HashMap::new(), inspected_spans: 0, bound }
    }

    /// Runs `matched` and adds its spans. Returns false, and stops, when a
    /// trace passed over turns out to rank among the `limit` most recent,
    /// or when giving up once full.
    async fn collect(&mut self, ctx: &SessionContext, matched: LogicalPlan) -> Result<bool, SearchError> {
        let mut stream = ctx.execute_logical_plan(matched).await?.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            self.add(&batch?)?;
            if self.bound.as_ref().is_some_and(|b| b.inexact) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// With a limit, drops the traces behind the `limit` most recent once
    /// half as many again have been collected (so pruning costs O(1) per
    /// trace). Returns whether it did: trace indexes change.
    fn prune(&mut self) -> bool {
        let Some(bound) = &mut self.bound else { return false };
        if bound.give_up_when_full {
            bound.inexact |= self.traces.len() >= bound.limit;
            return false;
        }
        if self.traces.len() < bound.limit + bound.limit / 2 + 64 {
            return false;
        }
        self.traces.sort_unstable_by(|a, b| result_order((a.rank, &a.trace_id), (b.rank, &b.trace_id)));
        for dropped in self.traces.drain(bound.limit..) {
            bound.passed_over.insert(dropped.trace_id);
        }
        bound.last_kept = self.traces.last().map(|t| (t.rank, t.trace_id));
        self.index = self.traces.iter().enumerate().map(|(i, t)| (t.trace_id, i)).collect();
        bound.inexact |= bound.passed_over.len() > MAX_PASSED_OVER;
        true
    }

    /// Whether a row of trace `id` (not collected) with trace start `rank`
    /// is passed over. Marks the pass inexact when the trace was passed
    /// over before but now ranks among those kept.
    fn passes_over(&mut self, id: &[u8; 16], rank: Option<i64>) -> bool {
        let Some(bound) = &mut self.bound else { return false };
        if bound.inexact {
            return true;
        }
        let Some((last_rank, last_id)) = &bound.last_kept else { return false };
        if result_order((rank, id), (*last_rank, last_id)).is_gt() {
            bound.passed_over.insert(*id);
            return true;
        }
        if bound.passed_over.contains(id) {
            bound.inexact = true;
            return true;
        }
        false
    }

    /// Index of the builder of `id`, created on first sight. Rows of a trace
    /// mostly arrive together, so the previous row's trace is tried first.
    fn trace_index(&mut self, id: [u8; 16], previous: Option<usize>, t_start: i64, t_end: i64) -> usize {
        if let Some(i) = previous.filter(|&i| self.traces[i].trace_id == id) {
            return i;
        }
        *self.index.entry(id).or_insert_with(|| {
            self.traces.push(TraceBuilder {
                trace_id: id,
                rank: None,
                root_service_name: None,
                root_trace_name: None,
                start: t_start,
                end: t_end,
                spansets: Vec::new(),
                service_stats: BTreeMap::new(),
            });
            self.traces.len() - 1
        })
    }

    fn add(&mut self, batch: &RecordBatch) -> Result<(), SearchError> {
        let trace_id: &FixedSizeBinaryArray = batch.column(0).as_fixed_size_binary();
        let span_id: &FixedSizeBinaryArray = batch.column(1).as_fixed_size_binary();
        let name = batch.column(2).as_string::<i32>();
        let start = batch.column(3).as_primitive::<Int64Type>();
        let duration = batch.column(4).as_primitive::<Int64Type>();
        let status = batch.column(5).as_primitive::<Int8Type>();
        let service = batch.column(6).as_string::<i32>();
        let root_service = batch.column(7).as_string::<i32>();
        let root_name = batch.column(8).as_string::<i32>();
        let trace_start = batch.column(9).as_primitive::<Int64Type>();
        let trace_duration = batch.column(10).as_primitive::<Int64Type>();
        let extra: Vec<&StringArray> = (11..batch.num_columns()).map(|i| batch.column(i).as_string::<i32>()).collect();
        let (by_columns, select_columns) = extra.split_at(self.plan.by.len());
        let mut previous = None;
        for row in 0..batch.num_rows() {
            self.inspected_spans += 1;
            let Ok(id) = <[u8; 16]>::try_from(trace_id.value(row)) else { continue };
            let rank = (!trace_start.is_null(row)).then(|| trace_start.value(row));
            let collected = previous.is_some_and(|i: usize| self.traces[i].trace_id == id) || self.index.contains_key(&id);
            if !collected {
                if self.prune() {
                    previous = None;
                }
                if self.passes_over(&id, rank) {
                    continue;
                }
            }
            // Client clocks can be anything: never overflow, never go negative.
            let t_start = if trace_start.is_null(row) { start.value(row) } else { trace_start.value(row) }.max(0);
            let t_duration = if trace_duration.is_null(row) { duration.value(row) } else { trace_duration.value(row) };
            let t_end = t_start.saturating_add(t_duration.max(0));
            let index = self.trace_index(id, previous, t_start, t_end);
            previous = Some(index);
            let trace = &mut self.traces[index];
            if rank.is_some() {
                // A trace without a start so far ranks first; one that gets a
                // start now falls behind, possibly behind traces passed over.
                if collected && trace.rank.is_none() && self.bound.as_ref().is_some_and(|b| b.last_kept.is_some()) {
                    self.bound.as_mut().expect("checked").inexact = true;
                }
                trace.rank = trace.rank.max(rank);
            }
            trace.start = trace.start.min(t_start);
            trace.end = trace.end.max(t_end);
            if trace.root_service_name.is_none() {
                trace.root_service_name = opt_str(root_service, row);
            }
            if trace.root_trace_name.is_none() {
                trace.root_trace_name = opt_str(root_name, row);
            }
            let service_name = str_at(service, row).unwrap_or_default();
            let stats = match trace.service_stats.get_mut(service_name) {
                Some(stats) => stats,
                None => trace.service_stats.entry(service_name.to_owned()).or_default(),
            };
            stats.span_count += 1;
            if status.value(row) == 2 {
                stats.error_count += 1;
            }
            // A trace has few spansets: find this row's by borrowed values and
            // copy the values only for a new one.
            let same_key = |key: &[Option<String>]| key.iter().zip(by_columns.iter()).all(|(k, a)| k.as_deref() == str_at(a, row));
            let spanset = match trace.spansets.iter().position(|(key, _)| same_key(key)) {
                Some(existing) => &mut trace.spansets[existing].1,
                None => {
                    trace.spansets.push((by_columns.iter().map(|a| opt_str(a, row)).collect(), SpansetBuilder::default()));
                    &mut trace.spansets.last_mut().expect("just pushed").1
                }
            };
            let span_id: [u8; 8] = span_id.value(row).try_into().unwrap_or_default();
            if !spanset.matched.insert(span_id) {
                continue;
            }
            let candidate = SpanSummary {
                span_id,
                name: String::new(),
                start_unix_nano: start.value(row).max(0),
                duration_nano: duration.value(row).max(0),
                attributes: Vec::new(),
            };
            let slot = if spanset.kept.len() < self.spss {
                spanset.kept.push(candidate);
                spanset.kept.len() - 1
            } else {
                // Replace the least recent kept span if this one is more recent.
                let Some((oldest, _)) = spanset.kept.iter().enumerate().max_by(|(_, a), (_, b)| more_recent(a, b)) else {
                    continue;
                };
                if more_recent(&candidate, &spanset.kept[oldest]).is_ge() {
                    continue;
                }
                spanset.kept[oldest] = candidate;
                oldest
            };
            // Text is copied only for the spans kept.
            let kept = &mut spanset.kept[slot];
            kept.name = name.value(row).to_owned();
            kept.attributes = self
                .plan
                .select
                .iter()
                .zip(select_columns)
                .filter_map(|(o, a)| opt_str(a, row).map(|v| (o.label.clone(), v)))
                .collect();
        }
        Ok(())
    }

    /// The collected traces (at most `limit`), most recent first (by their
    /// largest trace start, then trace id: the order of [`most_recent_traces_plan`]).
    fn finish(self) -> SearchResult {
        let mut traces = self.traces;
        traces.sort_by(|a, b| result_order((a.rank, &a.trace_id), (b.rank, &b.trace_id)));
        if let Some(bound) = &self.bound {
            traces.truncate(bound.limit);
        }
        let plan = self.plan;
        let traces: Vec<TraceSummary> = traces
            .into_iter()
            .map(|mut trace| {
                // Spansets in the order of their by() values, whatever order rows came in.
                trace.spansets.sort_by(|a, b| a.0.cmp(&b.0));
                trace
            })
            .map(|trace| TraceSummary {
                trace_id: trace.trace_id,
                root_service_name: trace.root_service_name,
                root_trace_name: trace.root_trace_name,
                start_unix_nano: trace.start,
                duration_nano: trace.end.saturating_sub(trace.start),
                spansets: trace
                    .spansets
                    .into_iter()
                    .map(|(key, set)| {
                        let mut spans = set.kept;
                        spans.sort_by(more_recent);
                        let attributes = plan.by.iter().zip(key).filter_map(|(o, v)| v.map(|v| (o.label.clone(), v))).collect();
                        SpansetSummary { spans, matched: set.matched.len(), attributes }
                    })
                    .collect(),
                service_stats: trace.service_stats,
            })
            .collect();
        let metrics = SearchMetrics { inspected_traces: traces.len() as u64, inspected_spans: self.inspected_spans };
        SearchResult { traces, metrics }
    }
}

/// Distinct values of `tag` among the spans matching `query`, as (type,
/// value) pairs, at most `limit` (tag-value autocomplete with a filter).
pub async fn tag_values(
    ctx: &SessionContext,
    query: &Query,
    tag: &crate::ast::FieldExpr,
    request: &SearchRequest,
    limit: usize,
) -> Result<Vec<(String, String)>, SearchError> {
    let spans = ctx.table_provider("spans").await?;
    let plan = plan_search(query, spans, request)?;
    let mut out = Vec::new();
    for (ty, value) in crate::compile::typed_text(tag)? {
        if out.len() >= limit {
            break;
        }
        let distinct = LogicalPlanBuilder::from(plan.plan.clone())
            .project(vec![value.alias("value")])?
            .filter(col("value").is_not_null())?
            .distinct()?
            .sort(vec![col("value").sort(true, true)])?
            .limit(0, Some(limit - out.len()))?
            .build()?;
        for batch in ctx.execute_logical_plan(distinct).await?.collect().await? {
            let values = batch.column(0).as_string::<i32>();
            out.extend((0..values.len()).map(|i| (ty.to_owned(), values.value(i).to_owned())));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use datafusion::datasource::MemTable;
    use datafusion::logical_expr::table_scan;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use spanlake_engine::block::prepare_block;
    use spanlake_engine::convert::resource_spans_to_batch;
    use spanlake_engine::schema::span_schema;

    use super::*;

    /// A prepared batch of two-span traces: (trace number, start second) each.
    fn traces(traces: &[(u32, u64)]) -> RecordBatch {
        let spans = traces
            .iter()
            .flat_map(|&(trace, second)| {
                let mut trace_id = [0u8; 16];
                trace_id[12..].copy_from_slice(&trace.to_be_bytes());
                let start = 1_700_000_000_000_000_000 + second * 1_000_000_000;
                [(1u8, 0u8), (2, 1)].map(|(span, parent)| Span {
                    trace_id: trace_id.to_vec(),
                    span_id: [span; 8].to_vec(),
                    parent_span_id: if parent == 0 { Vec::new() } else { [parent; 8].to_vec() },
                    name: format!("op{span}"),
                    start_time_unix_nano: start + u64::from(span),
                    end_time_unix_nano: start + 1_000,
                    ..Default::default()
                })
            })
            .collect();
        let rs = ResourceSpans { scope_spans: vec![ScopeSpans { spans, ..Default::default() }], ..Default::default() };
        prepare_block(&[resource_spans_to_batch(&[rs]).unwrap().0]).unwrap()
    }

    /// A session whose `spans` are `batches`, read in this order, 50 rows at a time.
    fn session(batches: &[RecordBatch]) -> SessionContext {
        let slices = batches.iter().flat_map(|b| (0..b.num_rows()).step_by(50).map(|at| b.slice(at, 50.min(b.num_rows() - at)))).collect();
        let ctx = SessionContext::new_with_config(datafusion::prelude::SessionConfig::new().with_batch_size(50));
        ctx.register_table("spans", Arc::new(MemTable::try_new(span_schema(), vec![slices]).unwrap())).unwrap();
        ctx
    }

    fn request(limit: usize) -> SearchRequest {
        SearchRequest {
            limit,
            spans_per_spanset: 3,
            start_unix_nano: None,
            end_unix_nano: None,
            min_trace_duration: None,
            max_trace_duration: None,
        }
    }

    async fn collector_run(ctx: &SessionContext, plan: &SearchPlan, limit: usize) -> (bool, usize, SearchResult) {
        let mut collector = TraceCollector::new(plan, 3, Some(Bound::new(limit, false)));
        let exact = collector.collect(ctx, matched_spans_plan(plan, None).unwrap()).await.unwrap();
        let passed_over = collector.bound.as_ref().unwrap().passed_over.len();
        (exact, passed_over, collector.finish())
    }

    #[tokio::test]
    async fn a_limited_pass_keeps_the_most_recent_traces_and_passes_over_the_rest() {
        // 400 traces in trace-id order with shuffled start times.
        let ctx = session(&[traces(&(1..=400).map(|t| (t, u64::from(t * 7919 % 400))).collect::<Vec<_>>())]);
        let query = crate::parse("{ }").unwrap();
        let full = search(&ctx, &query, &request(1000)).await.unwrap();
        assert_eq!(full.traces.len(), 400);
        let plan = plan_search(&query, ctx.table_provider("spans").await.unwrap(), &request(7)).unwrap();
        let (exact, passed_over, limited) = collector_run(&ctx, &plan, 7).await;
        assert!(exact);
        assert!(passed_over > 300, "pruned along the way: {passed_over} passed over");
        assert_eq!(limited.traces[..], full.traces[..7]);
        assert_eq!(search(&ctx, &query, &request(7)).await.unwrap().traces[..], full.traces[..7]);
    }

    #[tokio::test]
    async fn a_trace_passed_over_that_turns_out_recent_makes_the_pass_fall_back_to_two() {
        // Trace 5 starts early in the first block, late in the second (its
        // spans there are later ones): the first block passes it over.
        let first = traces(&(1..=100).map(|t| (t, 100 + u64::from(t))).collect::<Vec<_>>());
        let second = traces(&[(5, 1_000)]);
        let ctx = session(&[first, second]);
        let query = crate::parse("{ }").unwrap();
        let plan = plan_search(&query, ctx.table_provider("spans").await.unwrap(), &request(2)).unwrap();
        let (exact, _, _) = collector_run(&ctx, &plan, 2).await;
        assert!(!exact, "the pass notices that it dropped trace 5's first spans");
        let answer = search(&ctx, &query, &request(2)).await.unwrap();
        let full = search(&ctx, &query, &request(1000)).await.unwrap();
        assert_eq!(answer.traces[..], full.traces[..2]);
        assert_eq!(answer.traces[0].trace_id[15], 5);
        assert_eq!(answer.traces[0].spansets[0].matched, 2, "both copies of its two spans count once each");
    }

    #[test]
    fn passes_follow_the_plan_and_the_limit() {
        let scan = || table_scan(Some("spans"), &span_schema(), None).unwrap();
        let on_kind = scan().filter(col(c::KIND).eq(lit(3i8))).unwrap().build().unwrap();
        assert_eq!(Passes::for_plan(&on_kind, 20).unwrap(), Passes::OneWhileFew);
        let on_map = scan().filter(col("span_attrs_str").is_not_null()).unwrap().build().unwrap();
        assert_eq!(Passes::for_plan(&on_map, 20).unwrap(), Passes::OneWhileFew);
        // Found below other operators too.
        let aggregate = most_recent_traces_plan(&on_kind, 10).unwrap();
        let above = LogicalPlanBuilder::from(aggregate.clone()).project(vec![col(c::TRACE_ID)]).unwrap().build().unwrap();
        assert_eq!(Passes::for_plan(&aggregate, 20).unwrap(), Passes::Two);
        assert_eq!(Passes::for_plan(&above, 20).unwrap(), Passes::Two);
        let join = scan().join_on(scan().alias("r").unwrap().build().unwrap(), datafusion::logical_expr::JoinType::LeftSemi, [lit(true)]).unwrap().build().unwrap();
        assert_eq!(Passes::for_plan(&join, 20).unwrap(), Passes::Two);
        for plan in [&on_kind, &aggregate, &join] {
            assert_eq!(Passes::for_plan(plan, SMALL_LIMIT).unwrap(), Passes::One);
        }
    }

    #[tokio::test]
    async fn a_first_pass_runs_without_filter_pushdown_over_the_same_tables() {
        let mut config = datafusion::prelude::SessionConfig::new();
        config.options_mut().execution.parquet.pushdown_filters = true;
        let ctx = SessionContext::new_with_config(config);
        ctx.register_table("spans", Arc::new(MemTable::try_new(span_schema(), vec![vec![]]).unwrap())).unwrap();
        let first = first_pass_session(&ctx);
        assert!(!first.state().config().options().execution.parquet.pushdown_filters);
        assert!(!first.state().table_options().parquet.global.pushdown_filters, "scans read the table options");
        assert!(ctx.state().table_options().parquet.global.pushdown_filters, "the search's own session keeps it");
        assert!(first.table_provider("spans").await.is_ok());
    }

    #[tokio::test]
    async fn two_passes_answer_the_most_recent_traces_of_one_wide_pass() {
        let ctx = session(&[traces(&(1..=60).map(|t| (t, u64::from(t * 37 % 60))).collect::<Vec<_>>())]);
        let query = crate::parse("{ } | count() > 1").unwrap();
        let plan = plan_search(&query, ctx.table_provider("spans").await.unwrap(), &request(5)).unwrap();
        assert_eq!(Passes::for_plan(&plan.plan, 5).unwrap(), Passes::Two);
        let full = search(&ctx, &query, &request(1000)).await.unwrap();
        assert_eq!(search(&ctx, &query, &request(5)).await.unwrap().traces[..], full.traces[..5]);
    }

    #[tokio::test]
    async fn a_pass_that_gives_up_when_full_collects_while_few_match() {
        let ctx = session(&[traces(&(1..=10).map(|t| (t, u64::from(t))).collect::<Vec<_>>())]);
        let query = crate::parse("{ }").unwrap();
        let plan = plan_search(&query, ctx.table_provider("spans").await.unwrap(), &request(10)).unwrap();
        for (limit, exact) in [(10, true), (9, false)] {
            let mut collector = TraceCollector::new(&plan, 3, Some(Bound::new(limit, true)));
            assert_eq!(collector.collect(&ctx, matched_spans_plan(&plan, None).unwrap()).await.unwrap(), exact, "limit {limit}");
        }
        assert_eq!(search(&ctx, &query, &request(9)).await.unwrap().traces[..], search(&ctx, &query, &request(10)).await.unwrap().traces[..9]);
    }
}
