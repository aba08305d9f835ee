//! TraceQL metrics (`{ ... } | rate() by (resource.service.name)` and the
//! other `*_over_time` functions) as DataFusion aggregates over time
//! buckets: the spanset part compiles like a search, then spans are grouped
//! by `start + floor((span start - start) / step) * step` and the `by()`
//! labels. Results are Prometheus-style series, as Tempo's
//! `/api/metrics/query_range` returns them.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::functions_aggregate::expr_fn::{approx_percentile_cont, avg, count, max, min, sum};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, cast, col, lit};
use datafusion::prelude::SessionContext;
use spanlake_engine::schema::col as c;

use crate::ast::{BinaryOp, FieldExpr, Intrinsic, MetricsAggregate, MetricsOp, Pipeline, Query, Stage, Static};
use crate::compile::{CompileError, label};
use crate::search::{SearchError, SearchRequest, plan_search};

/// The time range and resolution of a metrics query (unix nanos).
#[derive(Debug, Clone, Copy)]
pub struct MetricsRequest {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

/// Most points per series (Tempo's limit is of the same order).
pub const MAX_POINTS: i64 = 11_000;
/// Most series in one answer.
pub const MAX_SERIES: usize = 10_000;

impl MetricsRequest {
    /// Checks the range: non-negative times, start before end, a positive
    /// step and at most [`MAX_POINTS`] steps. Every transport calls this.
    pub fn validate(&self) -> Result<(), CompileError> {
        if self.start < 0 || self.end <= self.start {
            return Err(CompileError::new("metrics need 0 <= start < end"));
        }
        if self.step <= 0 {
            return Err(CompileError::new("metrics need a positive step"));
        }
        if (self.end - self.start) / self.step > MAX_POINTS {
            return Err(CompileError::new(format!("more than {MAX_POINTS} points: raise step or shorten the range")));
        }
        Ok(())
    }
}

/// One labelled series; samples are (timestamp ms, value), in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

const BUCKET: &str = "__bucket_start";

/// Splits a metrics query into its spanset pipeline, the aggregate, and the
/// stages after it.
fn split(query: &Query) -> Result<(Query, &MetricsAggregate, &[Stage]), CompileError> {
    let stages = &query.pipeline.stages;
    let at = stages
        .iter()
        .position(|s| matches!(s, Stage::Metrics(_)))
        .ok_or_else(|| CompileError::new("not a metrics query: add a metrics function such as | rate()"))?;
    let Stage::Metrics(aggregate) = &stages[at] else { unreachable!("found above") };
    let selection = Query {
        pipeline: Pipeline { source: query.pipeline.source.clone(), stages: stages[..at].to_vec(), pos: query.pipeline.pos },
        hints: query.hints.clone(),
    };
    Ok((selection, aggregate, &stages[at + 1..]))
}

/// Duration intrinsics are reported in seconds, as in Tempo.
fn measured(attr: &FieldExpr) -> Result<Expr, CompileError> {
    let is_duration = matches!(
        attr,
        FieldExpr::Intrinsic { intrinsic: Intrinsic::Duration | Intrinsic::TraceDuration | Intrinsic::EventTimeSinceStart, .. }
    );
    let value = crate::compile::numeric_value(attr)?;
    let value = cast(value, DataType::Float64);
    Ok(if is_duration { value / lit(1e9) } else { value })
}

/// Runs a metrics query over the `spans` table in `ctx`.
pub async fn query_range(ctx: &SessionContext, query: &Query, request: &MetricsRequest) -> Result<Vec<Series>, SearchError> {
    request.validate()?;
    let (selection, aggregate, after) = split(query)?;
    if aggregate.op == MetricsOp::Compare {
        return Err(CompileError::new("compare() is not supported yet").into());
    }
    let spans = ctx.table_provider("spans").await?;
    // Metrics count spans that start inside the range. That implies their
    // trace overlaps it, so search's whole-trace time filter (which reads
    // two more columns for every span and prunes nothing) is left out.
    let search = SearchRequest {
        limit: usize::MAX,
        spans_per_spanset: 0,
        start_unix_nano: None,
        end_unix_nano: None,
        min_trace_duration: None,
        max_trace_duration: None,
    };
    let in_range = col(c::START_UNIX_NANO).gt_eq(lit(request.start)).and(col(c::START_UNIX_NANO).lt(lit(request.end)));
    let matched = LogicalPlanBuilder::from(plan_search(&selection, spans, &search)?.plan).filter(in_range)?.build()?;

    let bucket = lit(request.start) + ((col(c::START_UNIX_NANO) - lit(request.start)) / lit(request.step)) * lit(request.step);
    let mut group = vec![bucket.alias(BUCKET)];
    let labels: Vec<String> = aggregate.by.iter().map(label).collect();
    for (i, e) in aggregate.by.iter().enumerate() {
        group.push(crate::compile::text_value(e)?.alias(format!("__label_{i}")));
    }
    let measured_value = || -> Result<Expr, CompileError> {
        aggregate.attr.as_ref().map(measured).transpose()?.ok_or_else(|| CompileError::new("this metrics function needs an attribute"))
    };
    // (extra label, aggregate expression) per output series family.
    let mut aggregates: Vec<(Option<(String, String)>, Expr)> = Vec::new();
    match aggregate.op {
        MetricsOp::Rate => aggregates.push((None, cast(count(lit(1)), DataType::Float64) / lit(request.step as f64 / 1e9))),
        MetricsOp::CountOverTime => aggregates.push((None, cast(count(lit(1)), DataType::Float64))),
        MetricsOp::MinOverTime => aggregates.push((None, min(measured_value()?))),
        MetricsOp::MaxOverTime => aggregates.push((None, max(measured_value()?))),
        MetricsOp::AvgOverTime => aggregates.push((None, avg(measured_value()?))),
        MetricsOp::SumOverTime => aggregates.push((None, sum(measured_value()?))),
        MetricsOp::QuantileOverTime => {
            for q in &aggregate.quantiles {
                let expr = approx_percentile_cont(measured_value()?.sort(true, false), lit(*q), None);
                aggregates.push((Some(("p".to_owned(), q.to_string())), expr));
            }
        }
        MetricsOp::HistogramOverTime => {
            // Power-of-two buckets of the measured value, as Tempo's histograms.
            let value = measured_value()?;
            let le = datafusion::functions::math::expr_fn::power(
                lit(2.0),
                datafusion::functions::math::expr_fn::ceil(datafusion::functions::math::expr_fn::log2(value)),
            );
            group.push(cast(le, DataType::Utf8).alias("__le"));
            aggregates.push((None, cast(count(lit(1)), DataType::Float64)));
        }
        MetricsOp::Compare => unreachable!("refused above"),
    }
    let histogram = aggregate.op == MetricsOp::HistogramOverTime;
    let aggregate_exprs: Vec<Expr> = aggregates.iter().enumerate().map(|(i, (_, e))| e.clone().alias(format!("__value_{i}"))).collect();
    let plan = LogicalPlanBuilder::from(matched).aggregate(group, aggregate_exprs)?.build()?;
    let batches = ctx.execute_logical_plan(plan).await?.collect().await?;

    let mut series: BTreeMap<Vec<(String, String)>, BTreeMap<i64, f64>> = BTreeMap::new();
    for batch in &batches {
        let buckets = batch.column(0).as_primitive::<Int64Type>();
        let label_columns: Vec<_> = (0..labels.len()).map(|i| batch.column(1 + i).as_string::<i32>()).collect();
        let le = histogram.then(|| batch.column(1 + labels.len()).as_string::<i32>());
        let first_value = 1 + labels.len() + usize::from(histogram);
        for row in 0..batch.num_rows() {
            let mut key: Vec<(String, String)> = labels
                .iter()
                .zip(&label_columns)
                .map(|(l, col)| (l.clone(), if col.is_null(row) { "nil".to_owned() } else { col.value(row).to_owned() }))
                .collect();
            if labels.is_empty() {
                key.push(("__name__".to_owned(), aggregate.op.to_string()));
            }
            if let Some(le) = le {
                key.push(("__bucket".to_owned(), if le.is_null(row) { "0".to_owned() } else { le.value(row).to_owned() }));
            }
            for (i, (extra, _)) in aggregates.iter().enumerate() {
                let values = batch.column(first_value + i).as_primitive::<Float64Type>();
                if values.is_null(row) {
                    continue;
                }
                let mut key = key.clone();
                key.extend(extra.clone());
                if !series.contains_key(&key) && series.len() >= MAX_SERIES {
                    return Err(CompileError::new(format!("more than {MAX_SERIES} series: group by fewer or coarser labels")).into());
                }
                series.entry(key).or_default().insert(buckets.value(row) / 1_000_000, values.value(row));
            }
        }
    }
    // Counting functions are 0 where nothing happened; the others have gaps.
    let fill_zeros = matches!(aggregate.op, MetricsOp::Rate | MetricsOp::CountOverTime | MetricsOp::HistogramOverTime);
    let mut out: Vec<Series> = series
        .into_iter()
        .map(|(labels, samples)| {
            let samples = if fill_zeros {
                (0..)
                    .map(|i| request.start + i * request.step)
                    .take_while(|t| *t < request.end)
                    .map(|t| (t / 1_000_000, samples.get(&(t / 1_000_000)).copied().unwrap_or(0.0)))
                    .collect()
            } else {
                samples.into_iter().collect()
            };
            Series { labels, samples }
        })
        .collect();
    apply_second_stages(&mut out, after)?;
    Ok(out)
}

/// `| topk(n)` / `| bottomk(n)` (by each series' largest / smallest value)
/// and threshold filters such as `| rate() > 5` (on samples).
fn apply_second_stages(series: &mut Vec<Series>, stages: &[Stage]) -> Result<(), CompileError> {
    for stage in stages {
        match stage {
            Stage::TopK { bottom, n, .. } => {
                let score = |s: &Series| {
                    let values = s.samples.iter().map(|(_, v)| *v);
                    if *bottom { values.fold(f64::INFINITY, f64::min) } else { values.fold(f64::NEG_INFINITY, f64::max) }
                };
                series.sort_by(|a, b| {
                    let (x, y) = (score(a), score(b));
                    if *bottom { x.total_cmp(&y) } else { y.total_cmp(&x) }
                });
                series.truncate((*n).max(0) as usize);
            }
            Stage::MetricsFilter { op, value, .. } => {
                let threshold = match value {
                    Static::Int(i) => *i as f64,
                    Static::Float(f) => *f,
                    Static::Duration(d) => *d as f64 / 1e9,
                    other => return Err(CompileError::new(format!("cannot compare series values with {other:?}"))),
                };
                let keep = |v: f64| match op {
                    BinaryOp::Eq => v == threshold,
                    BinaryOp::Neq => v != threshold,
                    BinaryOp::Gt => v > threshold,
                    BinaryOp::Gte => v >= threshold,
                    BinaryOp::Lt => v < threshold,
                    BinaryOp::Lte => v <= threshold,
                    _ => true,
                };
                for s in series.iter_mut() {
                    s.samples.retain(|(_, v)| keep(*v));
                }
                series.retain(|s| !s.samples.is_empty());
            }
            other => return Err(CompileError::new(format!("stage at {} cannot follow a metrics function", other.pos()))),
        }
    }
    Ok(())
}
