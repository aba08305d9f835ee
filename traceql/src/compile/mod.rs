//! TraceQL → DataFusion logical plans (DESIGN §4), built with the
//! `LogicalPlanBuilder` / `Expr` API over the `spans` table, never as SQL
//! text. A search query compiles to a plan whose rows are the matched spans
//! (all span columns), plus one column per `by()` and `select()` expression.

mod field;
mod pipeline;
mod spanset;

use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};

use crate::ast::{AttrScope, FieldExpr, Intrinsic, Query};

pub use field::{kind_code, status_code, typed_text};

/// Produces a fresh scan of the `spans` table (each side of a join needs its own).
pub type Scan<'a> = dyn Fn() -> Result<LogicalPlanBuilder, CompileError> + 'a;

/// A query that is valid TraceQL but cannot be planned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct CompileError {
    pub message: String,
}

impl CompileError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }
}

/// An extra output column and the TraceQL it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputColumn {
    /// Column name in the plan.
    pub column: String,
    /// The expression as written, e.g. `span.http.method`.
    pub label: String,
}

/// The plan of a search query.
#[derive(Debug, Clone)]
pub struct SearchPlan {
    /// Matched spans: the span table's columns plus `by` and `select` columns.
    pub plan: LogicalPlan,
    /// `by()` columns: spans of a trace with equal values form one spanset.
    pub by: Vec<OutputColumn>,
    /// `select()` columns: returned as attributes of each span.
    pub select: Vec<OutputColumn>,
}

/// Compiles a search (non-metrics) query.
pub fn compile_search(query: &Query, scan: &Scan<'_>) -> Result<SearchPlan, CompileError> {
    pipeline::compile_pipeline(scan, &query.pipeline)
}

/// A field expression's value as a number (attributes read from the int and
/// float maps), for metrics functions.
pub fn numeric_value(expr: &FieldExpr) -> Result<datafusion::logical_expr::Expr, CompileError> {
    Ok(field::value(expr, Some(field::Ty::Float))?.0)
}

/// A field expression's value as text, for labels and groups.
pub fn text_value(expr: &FieldExpr) -> Result<datafusion::logical_expr::Expr, CompileError> {
    field::text(expr)
}

/// How an output expression is labelled in results (Tempo's attribute key).
pub fn label(expr: &FieldExpr) -> String {
    match expr {
        FieldExpr::Attribute { attr, .. } => match attr.scope {
            AttrScope::Unscoped => format!(".{}", attr.name),
            AttrScope::Span => format!("span.{}", attr.name),
            AttrScope::Resource => format!("resource.{}", attr.name),
            AttrScope::Event => format!("event.{}", attr.name),
            AttrScope::Link => format!("link.{}", attr.name),
            AttrScope::Instrumentation => format!("instrumentation.{}", attr.name),
        },
        FieldExpr::Intrinsic { intrinsic, .. } => intrinsic_name(*intrinsic).to_owned(),
        other => format!("{other:?}"),
    }
}

/// Tempo's name of an intrinsic.
pub fn intrinsic_name(i: Intrinsic) -> &'static str {
    use Intrinsic::*;
    match i {
        Duration => "duration",
        Name => "name",
        Status => "status",
        StatusMessage => "statusMessage",
        Kind => "kind",
        SpanId => "span:id",
        ParentId => "span:parentID",
        RootName => "rootName",
        RootServiceName => "rootServiceName",
        TraceDuration => "traceDuration",
        TraceId => "trace:id",
        EventName => "event:name",
        EventTimeSinceStart => "event:timeSinceStart",
        LinkTraceId => "link:traceID",
        LinkSpanId => "link:spanID",
        InstrumentationName => "instrumentation:name",
        InstrumentationVersion => "instrumentation:version",
        NestedSetLeft => "nestedSetLeft",
        NestedSetRight => "nestedSetRight",
        NestedSetParent => "nestedSetParent",
        ChildCount => "span:childCount",
    }
}
