//! Pipeline stages over spansets: `| { cond }`, scalar filters such as
//! `| count() > 2` (window aggregates partitioned by trace and group),
//! `| by(...)`, `| select(...)` and `| coalesce()`.

use datafusion::logical_expr::{BinaryExpr, Expr, ExprFunctionExt, LogicalPlan, LogicalPlanBuilder, Operator, col, lit};
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::min_max::{max_udaf, min_udaf};
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::WindowFunctionDefinition;
use spanlake_engine::schema::col as c;

use super::field;
use super::spanset::{self, columns_except, span_columns};
use super::{CompileError, OutputColumn, Scan, SearchPlan};
use crate::ast::{AggregateOp, BinaryOp, FieldExpr, Pipeline, ScalarExpr, Stage};

fn df(e: datafusion::error::DataFusionError) -> CompileError {
    CompileError::new(e.to_string())
}

/// A pipeline used as a spanset inside a larger expression: its spans only.
pub fn spans_of_pipeline(scan: &Scan<'_>, pipeline: &Pipeline) -> Result<LogicalPlan, CompileError> {
    let plan = compile_pipeline(scan, pipeline)?;
    span_columns(plan.plan, None)
}

/// Compiles a pipeline into its matched spans plus group and select columns.
pub fn compile_pipeline(scan: &Scan<'_>, pipeline: &Pipeline) -> Result<SearchPlan, CompileError> {
    let mut plan = spanset::spanset(scan, &pipeline.source)?;
    let mut by: Vec<OutputColumn> = Vec::new();
    let mut select: Vec<OutputColumn> = Vec::new();
    for stage in &pipeline.stages {
        match stage {
            Stage::Filter { condition, .. } => plan = spanset::filter(plan, condition)?,
            Stage::ScalarFilter { lhs, op, rhs, .. } => plan = scalar_filter(plan, &by, lhs, *op, rhs)?,
            Stage::By { exprs, .. } => {
                let old: Vec<&str> = by.iter().map(|o| o.column.as_str()).collect();
                plan = columns_except(plan, &old)?;
                by = output_columns("__by", exprs)?;
                plan = add_columns(plan, &by, exprs)?;
            }
            Stage::Select { exprs, .. } => {
                let start = select.len();
                let more = output_columns(&format!("__select{start}"), exprs)?;
                plan = add_columns(plan, &more, exprs)?;
                select.extend(more);
            }
            Stage::Coalesce { .. } => {
                let old: Vec<&str> = by.iter().map(|o| o.column.as_str()).collect();
                plan = columns_except(plan, &old)?;
                by.clear();
            }
            Stage::Spanset { expr, .. } => {
                // The operation runs over the spans of the current spansets;
                // groups and selections do not survive it.
                let current = span_columns(plan, None)?;
                let scan_current = move || Ok(LogicalPlanBuilder::from(current.clone()));
                plan = spanset::spanset(&scan_current, expr)?;
                by.clear();
                select.clear();
            }
            Stage::Metrics(_) | Stage::TopK { .. } | Stage::MetricsFilter { .. } => {
                return Err(CompileError::new(
                    "metrics queries are answered by /api/metrics/query_range and /api/metrics/query, not by search",
                ));
            }
        }
    }
    Ok(SearchPlan { plan, by, select })
}

fn output_columns(prefix: &str, exprs: &[FieldExpr]) -> Result<Vec<OutputColumn>, CompileError> {
    Ok(exprs
        .iter()
        .enumerate()
        .map(|(i, e)| OutputColumn { column: format!("{prefix}_{i}"), label: super::label(e) })
        .collect())
}

fn add_columns(plan: LogicalPlan, outputs: &[OutputColumn], exprs: &[FieldExpr]) -> Result<LogicalPlan, CompileError> {
    // Unqualified names first, so the new expressions' columns resolve.
    let plan = columns_except(plan, &[])?;
    let mut projection: Vec<Expr> = plan.schema().columns().into_iter().map(Expr::Column).collect();
    for (out, e) in outputs.iter().zip(exprs) {
        projection.push(field::text(e)?.alias(&out.column));
    }
    LogicalPlanBuilder::from(plan).project(projection).and_then(|b| b.build()).map_err(df)
}

/// `| lhs op rhs` over per-spanset aggregates.
fn scalar_filter(plan: LogicalPlan, by: &[OutputColumn], lhs: &ScalarExpr, op: BinaryOp, rhs: &ScalarExpr) -> Result<LogicalPlan, CompileError> {
    let mut partition = vec![col(c::TRACE_ID)];
    partition.extend(by.iter().map(|o| col(&o.column)));
    let mut windows = Vec::new();
    let l = scalar(lhs, &partition, &mut windows)?;
    let r = scalar(rhs, &partition, &mut windows)?;
    let cmp = field::comparison(op)
        .filter(|o| !matches!(o, Operator::RegexMatch | Operator::RegexNotMatch))
        .ok_or_else(|| CompileError::new(format!("{op:?} is not a comparison of numbers")))?;
    let names: Vec<String> = (0..windows.len()).map(|i| format!("__agg_{i}")).collect();
    let filtered = LogicalPlanBuilder::from(plan)
        .window(windows)
        .and_then(|b| b.filter(Expr::BinaryExpr(BinaryExpr::new(Box::new(l), cmp, Box::new(r)))))
        .and_then(|b| b.build())
        .map_err(df)?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    columns_except(filtered, &names)
}

fn scalar(expr: &ScalarExpr, partition: &[Expr], windows: &mut Vec<Expr>) -> Result<Expr, CompileError> {
    match expr {
        ScalarExpr::Static { value, .. } => field::value(&FieldExpr::Static { value: value.clone(), pos: Default::default() }, None).map(|(e, _)| e),
        ScalarExpr::Binary { op, lhs, rhs, .. } => {
            let l = scalar(lhs, partition, windows)?;
            let r = scalar(rhs, partition, windows)?;
            let df_op = field::arithmetic(*op).ok_or_else(|| CompileError::new(format!("{op:?} is not arithmetic")))?;
            Ok(Expr::BinaryExpr(BinaryExpr::new(Box::new(l), df_op, Box::new(r))))
        }
        ScalarExpr::Aggregate { op, arg, pos } => {
            let value = || -> Result<Expr, CompileError> {
                let arg = arg.as_ref().ok_or_else(|| CompileError::new(format!("aggregate at {pos} needs an argument")))?;
                Ok(field::value(arg, Some(field::Ty::Float))?.0)
            };
            let (function, arg) = match op {
                AggregateOp::Count => (count_udaf(), lit(1)),
                AggregateOp::Avg => (avg_udaf(), value()?),
                AggregateOp::Min => (min_udaf(), value()?),
                AggregateOp::Max => (max_udaf(), value()?),
                AggregateOp::Sum => (sum_udaf(), value()?),
            };
            // The aggregate over each spanset, kept on every span of it.
            let window = Expr::from(WindowFunction::new(WindowFunctionDefinition::AggregateUDF(function), vec![arg]));
            let name = format!("__agg_{}", windows.len());
            windows.push(window.partition_by(partition.to_vec()).build().map_err(df)?.alias(&name));
            Ok(col(name))
        }
    }
}
