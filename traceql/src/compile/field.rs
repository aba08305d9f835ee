//! Field expressions (the conditions inside `{ ... }`) → DataFusion `Expr`s
//! over the span table.
//!
//! Attributes are typed maps, so the type of an attribute reference comes
//! from what it is compared with: `span.x = 200` reads the int (and float)
//! maps, `span.x = "a"` the string map. Well-known attributes read their
//! dedicated column. A comparison on an attribute a span does not have is
//! NULL, which a filter treats as false (Tempo: `!=` never matches a span
//! without the attribute).

use datafusion::common::{Column, ScalarValue};
use datafusion::functions::core::expr_fn::{coalesce, get_field};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, cast, lit};
use datafusion::arrow::datatypes::DataType;
use spanlake_engine::schema::{AttrScope as ColumnScope, DEDICATED_COLUMNS, DedicatedType, col as c};

use super::CompileError;
use crate::ast::{AttrScope, Attribute, BinaryOp, FieldExpr, Intrinsic, Kind, Static, Status, UnaryOp};

/// Column holding one event of a span while event conditions are evaluated
/// (the `events` list unnested).
pub const EVENT_COLUMN: &str = "__event";
/// Column holding one link of a span while link conditions are evaluated.
pub const LINK_COLUMN: &str = "__link";

/// Value types of TraceQL expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Bool,
    Int,
    Float,
    Str,
    Duration,
    Status,
    Kind,
    /// A 16-byte trace id.
    TraceId,
    /// An 8-byte span id.
    SpanId,
    Nil,
}

impl Ty {
    fn is_numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Float | Ty::Duration)
    }
}

/// Which typed attribute map holds values of a type.
fn map_suffix(ty: Ty) -> Option<&'static str> {
    match ty {
        Ty::Str => Some("str"),
        Ty::Int | Ty::Duration => Some("int"),
        Ty::Float => Some("float"),
        Ty::Bool => Some("bool"),
        _ => None,
    }
}

fn column(name: &str) -> Expr {
    Expr::Column(Column::from_name(name))
}

/// The value of `attr` read as type `ty` (NULL where the span has no such
/// attribute of that type).
fn attribute_as(attr: &Attribute, ty: Ty) -> Result<Expr, CompileError> {
    let suffix = map_suffix(ty).ok_or_else(|| CompileError::new(format!("attribute {} cannot be compared with a {ty:?}", attr.name)))?;
    let in_scope = |scope: ColumnScope, prefix: &str| -> Expr {
        let dedicated = DEDICATED_COLUMNS.iter().find(|d| {
            d.scope == scope
                && d.key == attr.name
                && matches!((d.data_type, suffix), (DedicatedType::Str, "str") | (DedicatedType::Int, "int"))
        });
        match dedicated {
            // Values of the column's type always go to the dedicated column.
            Some(d) => column(d.column),
            None => get_field(column(&format!("{prefix}_{suffix}")), attr.name.as_str()),
        }
    };
    Ok(match attr.scope {
        AttrScope::Span => in_scope(ColumnScope::Span, c::SPAN_ATTRS),
        AttrScope::Resource => in_scope(ColumnScope::Resource, c::RESOURCE_ATTRS),
        // Span attributes take precedence over resource attributes of the same name.
        AttrScope::Unscoped => coalesce(vec![
            in_scope(ColumnScope::Span, c::SPAN_ATTRS),
            in_scope(ColumnScope::Resource, c::RESOURCE_ATTRS),
        ]),
        AttrScope::Event => get_field(get_field(column(EVENT_COLUMN), format!("{}_{suffix}", c::ATTRS)), attr.name.as_str()),
        AttrScope::Link => get_field(get_field(column(LINK_COLUMN), format!("{}_{suffix}", c::ATTRS)), attr.name.as_str()),
        AttrScope::Instrumentation => get_field(column(&format!("{}_{suffix}", c::SCOPE_ATTRS)), attr.name.as_str()),
    })
}

/// The typed candidates an attribute compared with a `ty` value may be
/// stored as: numbers match both int and float attributes, as in Tempo.
fn candidates(attr: &Attribute, ty: Ty) -> Result<Vec<(Expr, Ty)>, CompileError> {
    Ok(match ty {
        Ty::Int | Ty::Duration => vec![(attribute_as(attr, Ty::Int)?, Ty::Int), (attribute_as(attr, Ty::Float)?, Ty::Float)],
        Ty::Float => vec![(attribute_as(attr, Ty::Float)?, Ty::Float), (attribute_as(attr, Ty::Int)?, Ty::Int)],
        Ty::Str | Ty::Bool => vec![(attribute_as(attr, ty)?, ty)],
        other => return Err(CompileError::new(format!("attribute {} cannot be compared with a {other:?}", attr.name))),
    })
}

/// Any value of the attribute, rendered as text (for `by()` and `select()`).
pub fn attribute_text(attr: &Attribute) -> Result<Expr, CompileError> {
    let mut parts = Vec::new();
    for ty in [Ty::Str, Ty::Int, Ty::Float, Ty::Bool] {
        let value = attribute_as(attr, ty)?;
        parts.push(if ty == Ty::Str { value } else { cast(value, DataType::Utf8) });
    }
    Ok(coalesce(parts))
}

/// Whether the span has the attribute at all (any type).
fn attribute_exists(attr: &Attribute) -> Result<Expr, CompileError> {
    let mut exists = attribute_text(attr)?.is_not_null();
    // Arrays, kvlists and bytes live in the `other` map.
    let other = |prefix: &str| get_field(column(&format!("{prefix}_other")), attr.name.as_str()).is_not_null();
    exists = match attr.scope {
        AttrScope::Span => exists.or(other(c::SPAN_ATTRS)),
        AttrScope::Resource => exists.or(other(c::RESOURCE_ATTRS)),
        AttrScope::Instrumentation => exists.or(other(c::SCOPE_ATTRS)),
        AttrScope::Unscoped => exists.or(other(c::SPAN_ATTRS)).or(other(c::RESOURCE_ATTRS)),
        AttrScope::Event | AttrScope::Link => exists,
    };
    Ok(exists)
}

fn intrinsic(i: Intrinsic) -> Result<(Expr, Ty), CompileError> {
    use Intrinsic::*;
    Ok(match i {
        Duration => (column(c::DURATION_NANO), Ty::Duration),
        Name => (column(c::NAME), Ty::Str),
        Status => (column(c::STATUS_CODE), Ty::Status),
        StatusMessage => (column(c::STATUS_MESSAGE), Ty::Str),
        Kind => (column(c::KIND), Ty::Kind),
        SpanId => (column(c::SPAN_ID), Ty::SpanId),
        ParentId => (column(c::PARENT_SPAN_ID), Ty::SpanId),
        RootName => (column(c::TRACE_ROOT_NAME), Ty::Str),
        RootServiceName => (column(c::TRACE_ROOT_SERVICE), Ty::Str),
        TraceDuration => (column(c::TRACE_DURATION_NANO), Ty::Duration),
        TraceId => (column(c::TRACE_ID), Ty::TraceId),
        EventName => (get_field(column(EVENT_COLUMN), c::NAME), Ty::Str),
        EventTimeSinceStart => (
            Expr::BinaryExpr(BinaryExpr::new(
                Box::new(get_field(column(EVENT_COLUMN), c::TIME_UNIX_NANO)),
                Operator::Minus,
                Box::new(column(c::START_UNIX_NANO)),
            )),
            Ty::Duration,
        ),
        LinkTraceId => (get_field(column(LINK_COLUMN), c::TRACE_ID), Ty::TraceId),
        LinkSpanId => (get_field(column(LINK_COLUMN), c::SPAN_ID), Ty::SpanId),
        InstrumentationName => (column(c::SCOPE_NAME), Ty::Str),
        InstrumentationVersion => (column(c::SCOPE_VERSION), Ty::Str),
        NestedSetLeft => (column(c::NESTED_SET_LEFT), Ty::Int),
        NestedSetRight => (column(c::NESTED_SET_RIGHT), Ty::Int),
        NestedSetParent => (column(c::NESTED_SET_PARENT), Ty::Int),
        ChildCount => (column(c::CHILD_COUNT), Ty::Int),
    })
}

/// OTLP enum value of a status literal.
pub fn status_code(s: Status) -> i8 {
    match s {
        Status::Unset => 0,
        Status::Ok => 1,
        Status::Error => 2,
    }
}

/// OTLP enum value of a kind literal.
pub fn kind_code(k: Kind) -> i8 {
    match k {
        Kind::Unspecified => 0,
        Kind::Internal => 1,
        Kind::Server => 2,
        Kind::Client => 3,
        Kind::Producer => 4,
        Kind::Consumer => 5,
    }
}

fn static_type(s: &Static) -> Ty {
    match s {
        Static::Nil => Ty::Nil,
        Static::Int(_) => Ty::Int,
        Static::Float(_) => Ty::Float,
        Static::Str(_) => Ty::Str,
        Static::Bool(_) => Ty::Bool,
        Static::Duration(_) => Ty::Duration,
        Static::Status(_) => Ty::Status,
        Static::Kind(_) => Ty::Kind,
    }
}

/// A literal as the type it is compared with (`want`).
fn static_value(s: &Static, want: Option<Ty>) -> Result<Expr, CompileError> {
    Ok(match (s, want) {
        (Static::Str(hex), Some(Ty::TraceId)) => lit(ScalarValue::FixedSizeBinary(16, parse_id::<16>(hex))),
        (Static::Str(hex), Some(Ty::SpanId)) => lit(ScalarValue::FixedSizeBinary(8, parse_id::<8>(hex))),
        (Static::Int(i), Some(Ty::Float)) => lit(*i as f64),
        (Static::Int(i), _) => lit(*i),
        (Static::Float(f), _) => lit(*f),
        (Static::Str(s), _) => lit(s.as_str()),
        (Static::Bool(b), _) => lit(*b),
        (Static::Duration(d), Some(Ty::Float)) => lit(*d as f64),
        (Static::Duration(d), _) => lit(*d),
        (Static::Status(s), _) => lit(ScalarValue::Int8(Some(status_code(*s)))),
        (Static::Kind(k), _) => lit(ScalarValue::Int8(Some(kind_code(*k)))),
        (Static::Nil, _) => lit(ScalarValue::Null),
    })
}

/// A hex id, left-padded to `N` bytes; `None` (matches nothing) when not hex.
fn parse_id<const N: usize>(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || text.len() > N * 2 {
        return None;
    }
    let padded = format!("{text:0>width$}", width = N * 2);
    hex::decode(padded).ok()
}

/// DataFusion's operator for a TraceQL comparison.
pub(super) fn comparison(op: BinaryOp) -> Option<Operator> {
    Some(match op {
        BinaryOp::Eq => Operator::Eq,
        BinaryOp::Neq => Operator::NotEq,
        BinaryOp::Gt => Operator::Gt,
        BinaryOp::Gte => Operator::GtEq,
        BinaryOp::Lt => Operator::Lt,
        BinaryOp::Lte => Operator::LtEq,
        BinaryOp::Regex => Operator::RegexMatch,
        BinaryOp::NotRegex => Operator::RegexNotMatch,
        _ => return None,
    })
}

/// `a op b` for `a` on the right: `x > attr` is `attr < x`.
fn mirror(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Gte => BinaryOp::Lte,
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Lte => BinaryOp::Gte,
        other => other,
    }
}

fn binary(l: Expr, op: Operator, r: Expr) -> Expr {
    Expr::BinaryExpr(BinaryExpr::new(Box::new(l), op, Box::new(r)))
}

/// Compiles a condition to a boolean expression.
pub fn condition(expr: &FieldExpr) -> Result<Expr, CompileError> {
    match expr {
        FieldExpr::Binary { op: BinaryOp::And, lhs, rhs, .. } => Ok(condition(lhs)?.and(condition(rhs)?)),
        FieldExpr::Binary { op: BinaryOp::Or, lhs, rhs, .. } => Ok(condition(lhs)?.or(condition(rhs)?)),
        FieldExpr::Binary { op, lhs, rhs, .. } if comparison(*op).is_some() => compare(*op, lhs, rhs),
        FieldExpr::Unary { op: UnaryOp::Not, expr, .. } => Ok(Expr::Not(Box::new(condition(expr)?))),
        FieldExpr::Static { value: Static::Bool(b), .. } => Ok(lit(*b)),
        FieldExpr::Attribute { attr, .. } => Ok(attribute_as(attr, Ty::Bool)?.is_true()),
        other => Err(CompileError::new(format!("expression at {} is not a condition", other.pos()))),
    }
}

/// Compiles `lhs op rhs` for a comparison operator.
fn compare(op: BinaryOp, lhs: &FieldExpr, rhs: &FieldExpr) -> Result<Expr, CompileError> {
    let df_op = comparison(op).expect("caller checked");
    let is_nil = |e: &FieldExpr| matches!(e, FieldExpr::Static { value: Static::Nil, .. });
    if is_nil(lhs) && is_nil(rhs) {
        // Tempo: nil compared with nil never matches.
        return Ok(lit(false));
    }
    if let FieldExpr::Static { value: Static::Nil, .. } = rhs {
        return nil_check(op, lhs);
    }
    if let FieldExpr::Static { value: Static::Nil, .. } = lhs {
        return nil_check(op, rhs);
    }
    match (lhs, rhs) {
        (FieldExpr::Attribute { attr, .. }, other) if !matches!(other, FieldExpr::Attribute { .. }) => {
            attribute_compare(attr, op, other)
        }
        (other, FieldExpr::Attribute { attr, .. }) if !matches!(other, FieldExpr::Attribute { .. }) => {
            attribute_compare(attr, mirror(op), other)
        }
        (FieldExpr::Attribute { attr: a, .. }, FieldExpr::Attribute { attr: b, .. }) => {
            Ok(binary(attribute_text(a)?, df_op, attribute_text(b)?))
        }
        _ => {
            let (l, lt) = value(lhs, None)?;
            let (r, _) = value(rhs, Some(lt))?;
            let r = if matches!(op, BinaryOp::Regex | BinaryOp::NotRegex) { anchored(rhs)? } else { r };
            Ok(binary(l, df_op, r))
        }
    }
}

/// `attr op other`, trying each type the attribute may be stored as.
fn attribute_compare(attr: &Attribute, op: BinaryOp, other: &FieldExpr) -> Result<Expr, CompileError> {
    let df_op = comparison(op).expect("caller checked");
    let (_, other_ty) = value(other, None)?;
    if matches!(op, BinaryOp::Regex | BinaryOp::NotRegex) {
        return Ok(binary(attribute_as(attr, Ty::Str)?, df_op, anchored(other)?));
    }
    // The first stored type that has the attribute decides (NULL when the
    // span has none), so `!(...)` of the comparison stays meaningful.
    let mut comparisons = Vec::new();
    for (candidate, ty) in candidates(attr, other_ty)? {
        let (other_expr, _) = value(other, Some(ty))?;
        comparisons.push(binary(candidate, df_op, other_expr));
    }
    let result = match comparisons.len() {
        0 => None,
        1 => comparisons.pop(),
        _ => Some(coalesce(comparisons)),
    };
    result.ok_or_else(|| CompileError::new("no comparable attribute type"))
}

/// The right-hand side of `=~`/`!~`: a string literal, fully anchored as in
/// Tempo, with Go (RE2) syntax translated for Rust's regex engine.
fn anchored(pattern: &FieldExpr) -> Result<Expr, CompileError> {
    match pattern {
        FieldExpr::Static { value: Static::Str(p), .. } => {
            crate::validate::anchored_regex(p).map(lit).map_err(CompileError::new)
        }
        other => Err(CompileError::new(format!("regular expression at {} must be a string literal", other.pos()))),
    }
}

/// `x = nil` (absent) or `x != nil` (present).
fn nil_check(op: BinaryOp, expr: &FieldExpr) -> Result<Expr, CompileError> {
    let present = match expr {
        FieldExpr::Attribute { attr, .. } => attribute_exists(attr)?,
        other => value(other, None)?.0.is_not_null(),
    };
    match op {
        BinaryOp::Eq => Ok(Expr::Not(Box::new(present))),
        BinaryOp::Neq => Ok(present),
        other => Err(CompileError::new(format!("nil can only be compared with = or !=, not {other:?}"))),
    }
}

/// DataFusion's operator for TraceQL arithmetic (`^` is a function).
pub(super) fn arithmetic(op: BinaryOp) -> Option<Operator> {
    Some(match op {
        BinaryOp::Add => Operator::Plus,
        BinaryOp::Sub => Operator::Minus,
        BinaryOp::Mul => Operator::Multiply,
        BinaryOp::Div => Operator::Divide,
        BinaryOp::Mod => Operator::Modulo,
        _ => return None,
    })
}

/// Compiles a value expression; `hint` is the type it meets (picks the
/// typed map for attributes and the representation of literals).
pub fn value(expr: &FieldExpr, hint: Option<Ty>) -> Result<(Expr, Ty), CompileError> {
    match expr {
        FieldExpr::Static { value: s, .. } => Ok((static_value(s, hint)?, hint.filter(|h| *h == Ty::TraceId || *h == Ty::SpanId).unwrap_or(static_type(s)))),
        FieldExpr::Intrinsic { intrinsic: i, .. } => intrinsic(*i),
        FieldExpr::Attribute { attr, .. } => {
            let ty = hint.unwrap_or(Ty::Str);
            if ty.is_numeric() {
                // Numbers of either stored type, as a float.
                let int = cast(attribute_as(attr, Ty::Int)?, DataType::Float64);
                Ok((coalesce(vec![attribute_as(attr, Ty::Float)?, int]), Ty::Float))
            } else {
                Ok((attribute_as(attr, ty)?, ty))
            }
        }
        FieldExpr::Binary { op: BinaryOp::Pow, lhs, rhs, .. } => {
            let (l, _) = value(lhs, Some(Ty::Float))?;
            let (r, _) = value(rhs, Some(Ty::Float))?;
            Ok((datafusion::functions::math::expr_fn::power(cast(l, DataType::Float64), cast(r, DataType::Float64)), Ty::Float))
        }
        FieldExpr::Binary { op, lhs, rhs, pos } => {
            let df_op = arithmetic(*op).ok_or_else(|| CompileError::new(format!("expression at {pos} is a condition, not a value")))?;
            let (l, lt) = value(lhs, hint.filter(|h| h.is_numeric()).or(Some(Ty::Float)))?;
            let (r, rt) = value(rhs, Some(lt))?;
            let ty = if lt == Ty::Int && rt == Ty::Int { Ty::Int } else if lt == Ty::Duration || rt == Ty::Duration { Ty::Duration } else { Ty::Float };
            Ok((binary(l, df_op, r), ty))
        }
        FieldExpr::Unary { op: UnaryOp::Neg, expr, .. } => {
            let (e, ty) = value(expr, hint)?;
            Ok((Expr::Negative(Box::new(e)), ty))
        }
        FieldExpr::Unary { op: UnaryOp::Not, .. } => Ok((condition(expr)?, Ty::Bool)),
    }
}

/// Any field expression as text, for `by()` and `select()` output.
pub fn text(expr: &FieldExpr) -> Result<Expr, CompileError> {
    match expr {
        FieldExpr::Attribute { attr, .. } => attribute_text(attr),
        other => {
            let (e, _) = value(other, None)?;
            Ok(cast(e, DataType::Utf8))
        }
    }
}

/// The value of a tag (an attribute or intrinsic) as text columns by Tempo's
/// value type (`string`, `int`, `float`, `bool`, `keyword`), for tag-value
/// autocomplete.
pub fn typed_text(expr: &FieldExpr) -> Result<Vec<(&'static str, Expr)>, CompileError> {
    match expr {
        FieldExpr::Attribute { attr, .. } => Ok(vec![
            ("string", attribute_as(attr, Ty::Str)?),
            ("int", cast(attribute_as(attr, Ty::Int)?, DataType::Utf8)),
            ("float", cast(attribute_as(attr, Ty::Float)?, DataType::Utf8)),
            ("bool", cast(attribute_as(attr, Ty::Bool)?, DataType::Utf8)),
        ]),
        FieldExpr::Intrinsic { intrinsic: Intrinsic::Status, .. } => Ok(vec![("keyword", keyword(c::STATUS_CODE, &["unset", "ok", "error"]))]),
        FieldExpr::Intrinsic { intrinsic: Intrinsic::Kind, .. } => Ok(vec![(
            "keyword",
            keyword(c::KIND, &["unspecified", "internal", "server", "client", "producer", "consumer"]),
        )]),
        FieldExpr::Intrinsic { intrinsic: i, .. } => match intrinsic(*i)? {
            (e, Ty::Str) => Ok(vec![("string", e)]),
            (_, ty) => Err(CompileError::new(format!("{ty:?} intrinsics have no value list"))),
        },
        other => Err(CompileError::new(format!("expression at {} is not a tag", other.pos()))),
    }
}

/// `CASE column WHEN 0 THEN names[0] ... END` for small OTLP enums.
fn keyword(column_name: &str, names: &[&str]) -> Expr {
    let mut case = datafusion::logical_expr::case(column(column_name));
    for (code, name) in names.iter().enumerate() {
        case = case.when(lit(ScalarValue::Int8(Some(code as i8))), lit(*name));
    }
    case.end().unwrap_or_else(|_| lit(ScalarValue::Utf8(None)))
}

/// Does the expression read event or link fields (which needs the lists unnested)?
pub fn uses_scope(expr: &FieldExpr, scope: AttrScope) -> bool {
    match expr {
        FieldExpr::Attribute { attr, .. } => attr.scope == scope,
        FieldExpr::Intrinsic { intrinsic, .. } => match scope {
            AttrScope::Event => matches!(intrinsic, Intrinsic::EventName | Intrinsic::EventTimeSinceStart),
            AttrScope::Link => matches!(intrinsic, Intrinsic::LinkTraceId | Intrinsic::LinkSpanId),
            _ => false,
        },
        FieldExpr::Binary { lhs, rhs, .. } => uses_scope(lhs, scope) || uses_scope(rhs, scope),
        FieldExpr::Unary { expr, .. } => uses_scope(expr, scope),
        FieldExpr::Static { .. } => false,
    }
}
