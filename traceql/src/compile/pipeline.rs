//! Pipeline stages over spansets: `| { cond }`, scalar filters such as
//! `| count() > 2` (aggregates per trace and group, semi-joined back),
//! `| by(...)`, `| select(...)` and `| coalesce()`.

use datafusion::common::{Column, JoinType, NullEquality};
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, LogicalPlanBuilder, Operator, col, lit};
use datafusion::functions_aggregate::average::avg_udaf;
use datafusion::functions_aggregate::count::count_udaf;
use datafusion::functions_aggregate::min_max::{max_udaf, min_udaf};
use datafusion::functions_aggregate::sum::sum_udaf;
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

/// `| lhs op rhs` over per-spanset aggregates: the spansets (trace and by()
/// values) whose aggregates pass, found by a grouped aggregate, then their
/// spans by a semi-join (NULL by() values form a group of their own, as in
/// Tempo). Cheaper than window aggregates, which sort every span.
fn scalar_filter(plan: LogicalPlan, by: &[OutputColumn], lhs: &ScalarExpr, op: BinaryOp, rhs: &ScalarExpr) -> Result<LogicalPlan, CompileError> {
    let mut keys = vec![c::TRACE_ID.to_owned()];
    keys.extend(by.iter().map(|o| o.column.clone()));
    let mut aggregates = Vec::new();
    let l = scalar(lhs, &mut aggregates)?;
    let r = scalar(rhs, &mut aggregates)?;
    let cmp = field::comparison(op)
        .filter(|o| !matches!(o, Operator::RegexMatch | Operator::RegexNotMatch))
        .ok_or_else(|| CompileError::new(format!("{op:?} is not a comparison of numbers")))?;
    let group_names: Vec<String> = (0..keys.len()).map(|i| format!("__group_{i}")).collect();
    let groups = LogicalPlanBuilder::from(plan.clone())
        .aggregate(keys.iter().zip(&group_names).map(|(k, name)| col(k.as_str()).alias(name)), aggregates)
        .and_then(|b| b.filter(Expr::BinaryExpr(BinaryExpr::new(Box::new(l), cmp, Box::new(r)))))
        .and_then(|b| b.project(group_names.iter().map(|name| col(name.as_str()))))
        .and_then(|b| b.alias("__groups"))
        .and_then(|b| b.build())
        .map_err(df)?;
    let left_keys = keys
        .iter()
        .map(|k| plan.schema().qualified_field_with_unqualified_name(k).map(Column::from))
        .collect::<Result<Vec<_>, _>>()
        .map_err(df)?;
    let right_keys: Vec<Column> = group_names.iter().map(|name| Column::new(Some("__groups"), name)).collect();
    // The groups, few, are the hash join's build side; the spans stream
    // through it (with the spans on the left, all of them would be collected).
    LogicalPlanBuilder::from(groups)
        .join_detailed(plan, JoinType::RightSemi, (right_keys, left_keys), None, NullEquality::NullEqualsNull)
        .and_then(|b| b.build())
        .map_err(df)
}

fn scalar(expr: &ScalarExpr, aggregates: &mut Vec<Expr>) -> Result<Expr, CompileError> {
    match expr {
        ScalarExpr::Static { value, .. } => field::value(&FieldExpr::Static { value: value.clone(), pos: Default::default() }, None).map(|(e, _)| e),
        ScalarExpr::Binary { op, lhs, rhs, .. } => {
            let l = scalar(lhs, aggregates)?;
            let r = scalar(rhs, aggregates)?;
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
            let name = format!("__agg_{}", aggregates.len());
            aggregates.push(function.call(vec![arg]).alias(&name));
            Ok(col(name))
        }
    }
}
