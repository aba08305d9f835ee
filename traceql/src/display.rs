//! Canonical TraceQL text for the AST (`impl Display`), used in plan
//! snapshots and error messages. For every tree the parser produces, the
//! text parses back to the same tree (positions aside).
//!
//! The canonical form:
//! - spaces around binary operators and inside braces: `{ .a = 1 }`; the
//!   always-true filter is `{ }` (so `{ true }` prints as `{ }`, which is
//!   the same tree);
//! - the fewest parentheses that keep the tree (operators keep Tempo's
//!   precedence, see [`crate::parser`]); parenthesised pipelines, and
//!   operands combined with them, are always parenthesised;
//! - intrinsics in their scoped spelling (`span:duration`,
//!   `trace:rootService`), except `nestedSetLeft/Right/Parent`;
//! - durations in the largest unit that divides them exactly (`90m`,
//!   `1500ms`); floats in Rust's shortest round-trip form (`0.5`, `1e-7`);
//!   `i64::MIN` as `minInt`;
//! - strings in double quotes with Go escapes; attribute names quoted
//!   (`span."a b"`) only when they could not be read back unquoted;
//! - metrics `by` as `by (a, b)`, hints as `with(name=value, ...)`.

use std::fmt::{self, Display, Formatter, Write};

use crate::ast::*;
use crate::lexer::is_attribute_char;

/// The spelling of a binary operator.
pub fn binary_op_str(op: BinaryOp) -> &'static str {
    use BinaryOp as B;
    match op {
        B::And => "&&",
        B::Or => "||",
        B::Eq => "=",
        B::Neq => "!=",
        B::Gt => ">",
        B::Gte => ">=",
        B::Lt => "<",
        B::Lte => "<=",
        B::Regex => "=~",
        B::NotRegex => "!~",
        B::Add => "+",
        B::Sub => "-",
        B::Mul => "*",
        B::Div => "/",
        B::Mod => "%",
        B::Pow => "^",
    }
}

/// The spelling of a spanset operator.
pub fn spanset_op_str(op: SpansetOp) -> &'static str {
    use SpansetOp as O;
    use Structural as S;
    match op {
        O::And => "&&",
        O::Or => "||",
        O::Structural(S::Descendant) => ">>",
        O::Structural(S::Child) => ">",
        O::Structural(S::Ancestor) => "<<",
        O::Structural(S::Parent) => "<",
        O::Structural(S::Sibling) => "~",
        O::NotStructural(S::Descendant) => "!>>",
        O::NotStructural(S::Child) => "!>",
        O::NotStructural(S::Ancestor) => "!<<",
        O::NotStructural(S::Parent) => "!<",
        O::NotStructural(S::Sibling) => "!~",
        O::UnionStructural(S::Descendant) => "&>>",
        O::UnionStructural(S::Child) => "&>",
        O::UnionStructural(S::Ancestor) => "&<<",
        O::UnionStructural(S::Parent) => "&<",
        O::UnionStructural(S::Sibling) => "&~",
    }
}

/// The canonical spelling of an intrinsic.
pub fn intrinsic_str(i: Intrinsic) -> &'static str {
    use Intrinsic as I;
    match i {
        I::Duration => "span:duration",
        I::Name => "span:name",
        I::Status => "span:status",
        I::StatusMessage => "span:statusMessage",
        I::Kind => "span:kind",
        I::SpanId => "span:id",
        I::ParentId => "span:parentID",
        I::ChildCount => "span:childCount",
        I::RootName => "trace:rootName",
        I::RootServiceName => "trace:rootService",
        I::TraceDuration => "trace:duration",
        I::TraceId => "trace:id",
        I::EventName => "event:name",
        I::EventTimeSinceStart => "event:timeSinceStart",
        I::LinkTraceId => "link:traceID",
        I::LinkSpanId => "link:spanID",
        I::InstrumentationName => "instrumentation:name",
        I::InstrumentationVersion => "instrumentation:version",
        I::NestedSetLeft => "nestedSetLeft",
        I::NestedSetRight => "nestedSetRight",
        I::NestedSetParent => "nestedSetParent",
    }
}

/// Precedence level of a field/scalar binary operator (see the parser).
fn binary_level(op: BinaryOp) -> u8 {
    use BinaryOp as B;
    match op {
        B::And | B::Or => 1,
        B::Eq | B::Neq | B::Gt | B::Gte | B::Lt | B::Lte | B::Regex | B::NotRegex => 2,
        B::Add | B::Sub => 3,
        B::Mul | B::Div | B::Mod => 5,
        B::Pow => 6,
    }
}

const ATOM: u8 = 7;

fn field_level(e: &FieldExpr) -> u8 {
    match e {
        FieldExpr::Binary { op, .. } => binary_level(*op),
        FieldExpr::Unary { op: UnaryOp::Neg, .. } => 3,
        FieldExpr::Unary { op: UnaryOp::Not, .. } => 4,
        _ => ATOM,
    }
}

/// Writes `inner` in parentheses when `paren`.
fn wrap(f: &mut Formatter<'_>, paren: bool, inner: &dyn Display) -> fmt::Result {
    if paren { write!(f, "({inner})") } else { write!(f, "{inner}") }
}

/// Whether an operand at `level` needs parentheses under an operator at
/// `op_level` (`right_side`: it is the right operand; `right_assoc`: the
/// operator is `^`).
fn needs_paren(level: u8, op_level: u8, right_side: bool, right_assoc: bool) -> bool {
    level < op_level || (level == op_level && right_side != right_assoc)
}

impl Display for FieldExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FieldExpr::Static { value, .. } => write!(f, "{value}"),
            FieldExpr::Attribute { attr, .. } => write!(f, "{attr}"),
            FieldExpr::Intrinsic { intrinsic, .. } => f.write_str(intrinsic_str(*intrinsic)),
            FieldExpr::Unary { op, expr, .. } => {
                let (sym, level) = match op {
                    UnaryOp::Neg => ("-", 3),
                    UnaryOp::Not => ("!", 4),
                };
                f.write_str(sym)?;
                // The operand of a prefix operator takes the binary operators
                // binding tighter than it; anything looser is parenthesised.
                let paren = matches!(**expr, FieldExpr::Binary { .. }) && field_level(expr) <= level;
                wrap(f, paren, expr)
            }
            FieldExpr::Binary { op, lhs, rhs, .. } => {
                let level = binary_level(*op);
                let right_assoc = *op == BinaryOp::Pow;
                wrap(f, needs_paren(field_level(lhs), level, false, right_assoc), lhs)?;
                write!(f, " {} ", binary_op_str(*op))?;
                wrap(f, needs_paren(field_level(rhs), level, true, right_assoc), rhs)
            }
        }
    }
}

fn scalar_level(e: &ScalarExpr) -> u8 {
    match e {
        ScalarExpr::Binary { op, .. } => binary_level(*op),
        _ => ATOM,
    }
}

impl Display for ScalarExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ScalarExpr::Static { value, .. } => write!(f, "{value}"),
            ScalarExpr::Aggregate { op, arg, .. } => {
                write!(f, "{op}(")?;
                if let Some(a) = arg {
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            ScalarExpr::Binary { op, lhs, rhs, .. } => {
                let level = binary_level(*op);
                let right_assoc = *op == BinaryOp::Pow;
                wrap(f, needs_paren(scalar_level(lhs), level, false, right_assoc), lhs)?;
                write!(f, " {} ", binary_op_str(*op))?;
                wrap(f, needs_paren(scalar_level(rhs), level, true, right_assoc), rhs)
            }
        }
    }
}

/// Whether a spanset expression contains a parenthesised pipeline outside
/// of nested filters (Tempo's `spansetPipelineExpression`).
fn pipe_level(e: &SpansetExpr) -> bool {
    match e {
        SpansetExpr::Filter { .. } => false,
        SpansetExpr::Pipeline(_) => true,
        SpansetExpr::Binary { lhs, rhs, .. } => pipe_level(lhs) || pipe_level(rhs),
    }
}

fn spanset_level(e: &SpansetExpr) -> u8 {
    match e {
        SpansetExpr::Binary { op: SpansetOp::And | SpansetOp::Or, .. } => 1,
        SpansetExpr::Binary { .. } => 2,
        _ => ATOM,
    }
}

fn write_filter(f: &mut Formatter<'_>, condition: &FieldExpr) -> fmt::Result {
    if matches!(condition, FieldExpr::Static { value: Static::Bool(true), .. }) {
        f.write_str("{ }")
    } else {
        write!(f, "{{ {condition} }}")
    }
}

impl Display for SpansetExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SpansetExpr::Filter { condition, .. } => write_filter(f, condition),
            SpansetExpr::Pipeline(p) => write!(f, "({p})"),
            SpansetExpr::Binary { op, lhs, rhs, .. } => {
                let level = spanset_level(self);
                let pl = pipe_level(self);
                for (side, right) in [(lhs, false), (rhs, true)] {
                    // Next to a parenthesised pipeline, Tempo only accepts
                    // parenthesised operands.
                    let paren =
                        needs_paren(spanset_level(side), level, right, false) || (pl && !pipe_level(side));
                    if right {
                        write!(f, " {} ", spanset_op_str(*op))?;
                    }
                    wrap(f, paren, &**side)?;
                }
                Ok(())
            }
        }
    }
}

impl Display for Pipeline {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        for stage in &self.stages {
            match stage {
                Stage::MetricsFilter { .. } => write!(f, " {stage}")?,
                _ => write!(f, " | {stage}")?,
            }
        }
        Ok(())
    }
}

fn write_list(f: &mut Formatter<'_>, items: &[FieldExpr]) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Filter { condition, .. } => write_filter(f, condition),
            Stage::Spanset { expr, .. } => write!(f, "{expr}"),
            Stage::ScalarFilter { lhs, op, rhs, .. } => write!(f, "{lhs} {} {rhs}", binary_op_str(*op)),
            Stage::By { exprs, .. } => {
                f.write_str("by(")?;
                write_list(f, exprs)?;
                f.write_str(")")
            }
            Stage::Select { exprs, .. } => {
                f.write_str("select(")?;
                write_list(f, exprs)?;
                f.write_str(")")
            }
            Stage::Coalesce { .. } => f.write_str("coalesce()"),
            Stage::Metrics(m) => write!(f, "{m}"),
            Stage::TopK { bottom, n, .. } => write!(f, "{}({n})", if *bottom { "bottomk" } else { "topk" }),
            Stage::MetricsFilter { op, value, .. } => write!(f, "{} {value}", binary_op_str(*op)),
        }
    }
}

impl Display for MetricsAggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.op)?;
        if let Some(a) = &self.attr {
            write!(f, "{a}")?;
        }
        for q in &self.quantiles {
            write!(f, ", {}", Static::Float(*q))?;
        }
        if let Some(c) = &self.compare {
            write!(f, "{}", c.selection)?;
            for n in [c.top_n, c.start, c.end].into_iter().flatten() {
                write!(f, ", {n}")?;
            }
        }
        f.write_str(")")?;
        if !self.by.is_empty() {
            f.write_str(" by (")?;
            write_list(f, &self.by)?;
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl Display for Query {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.pipeline)?;
        if !self.hints.is_empty() {
            f.write_str(" with(")?;
            for (i, h) in self.hints.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{h}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl Display for Hint {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

impl Display for Attribute {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self.scope {
            AttrScope::Unscoped => ".",
            AttrScope::Span => "span.",
            AttrScope::Resource => "resource.",
            AttrScope::Event => "event.",
            AttrScope::Link => "link.",
            AttrScope::Instrumentation => "instrumentation.",
        })?;
        let plain = !self.name.is_empty()
            && self.name.chars().all(|c| c != '"' && is_attribute_char(c))
            // `.5xx` would read as the number .5
            && !(self.scope == AttrScope::Unscoped && self.name.starts_with(|c: char| c.is_ascii_digit()));
        if plain {
            return f.write_str(&self.name);
        }
        f.write_char('"')?;
        for c in self.name.chars() {
            if c == '"' || c == '\\' {
                f.write_char('\\')?;
            }
            f.write_char(c)?;
        }
        f.write_char('"')
    }
}

/// Formats nanoseconds in the largest unit that divides them.
pub fn format_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    const UNITS: &[(&str, u64)] = &[
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let sign = if ns < 0 { "-" } else { "" };
    let a = ns.unsigned_abs();
    let (unit, div) = UNITS.iter().find(|(_, d)| a.is_multiple_of(*d)).expect("ns divides everything");
    format!("{sign}{}{unit}", a / div)
}

/// Quotes a string as a Go double-quoted string literal.
pub fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let v = c as u32;
                if v < 0x80 {
                    let _ = write!(out, "\\x{v:02x}");
                } else {
                    let _ = write!(out, "\\u{v:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Display for Static {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Static::Nil => f.write_str("nil"),
            Static::Int(i64::MIN) => f.write_str("minInt"),
            Static::Int(n) => write!(f, "{n}"),
            // Debug is the shortest text that reads back as the same f64,
            // always with a '.' or an exponent.
            Static::Float(x) => write!(f, "{x:?}"),
            Static::Str(s) => f.write_str(&quote_string(s)),
            Static::Bool(b) => write!(f, "{b}"),
            Static::Duration(d) => f.write_str(&format_duration(*d)),
            Static::Status(s) => write!(f, "{s}"),
            Static::Kind(k) => write!(f, "{k}"),
        }
    }
}

impl Display for Status {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Unset => "unset",
            Status::Ok => "ok",
            Status::Error => "error",
        })
    }
}

impl Display for Kind {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Unspecified => "unspecified",
            Kind::Internal => "internal",
            Kind::Server => "server",
            Kind::Client => "client",
            Kind::Producer => "producer",
            Kind::Consumer => "consumer",
        })
    }
}

impl Display for Intrinsic {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(intrinsic_str(*self))
    }
}

impl Display for BinaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(binary_op_str(*self))
    }
}

impl Display for SpansetOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(spanset_op_str(*self))
    }
}

impl Display for AggregateOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AggregateOp::Count => "count",
            AggregateOp::Avg => "avg",
            AggregateOp::Min => "min",
            AggregateOp::Max => "max",
            AggregateOp::Sum => "sum",
        })
    }
}

impl Display for MetricsOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricsOp::Rate => "rate",
            MetricsOp::CountOverTime => "count_over_time",
            MetricsOp::MinOverTime => "min_over_time",
            MetricsOp::MaxOverTime => "max_over_time",
            MetricsOp::AvgOverTime => "avg_over_time",
            MetricsOp::SumOverTime => "sum_over_time",
            MetricsOp::QuantileOverTime => "quantile_over_time",
            MetricsOp::HistogramOverTime => "histogram_over_time",
            MetricsOp::Compare => "compare",
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::parse;

    fn canon(q: &str) -> String {
        parse(q).unwrap_or_else(|e| panic!("{q}: {e}")).to_string()
    }

    #[test]
    fn canonical_text() {
        for (q, want) in [
            ("{}", "{ }"),
            ("{ true }", "{ }"),
            ("{.a=1&&.b!=\"x\"}", r#"{ .a = 1 && .b != "x" }"#),
            ("{ duration > 1h30m }", "{ span:duration > 90m }"),
            ("{ duration > 1.5s }", "{ span:duration > 1500ms }"),
            ("{ duration > 1d }", "{ span:duration > 24h }"),
            ("{ duration > 0s }", "{ span:duration > 0s }"),
            ("{ duration > 100ns }", "{ span:duration > 100ns }"),
            ("{ duration > 7µs }", "{ span:duration > 7us }"),
            ("{ .a = 1.0 }", "{ .a = 1.0 }"),
            ("{ .a = .5 }", "{ .a = 0.5 }"),
            ("{ .a = 1e30 }", "{ .a = 1e30 }"),
            ("{ .a = minInt }", "{ .a = minInt }"),
            ("{ .a = maxInt }", "{ .a = 9223372036854775807 }"),
            ("{ .a = `x\"\\y` }", r#"{ .a = "x\"\\y" }"#),
            ("{ .a = \"\\x01\\u0085é\" }", r#"{ .a = "\x01\u0085é" }"#),
            ("{ span.\"a b\" = 1 }", r#"{ span."a b" = 1 }"#),
            ("{ .\"5xx\" = 1 }", r#"{ ."5xx" = 1 }"#),
            ("{ span.5xx = 1 }", "{ span.5xx = 1 }"),
            ("{ .\"\" = 1 }", r#"{ ."" = 1 }"#),
            ("{ .\"a\\\"b\" = 1 }", r#"{ ."a\"b" = 1 }"#),
            ("{ .a-b/c:d = 1 }", "{ .a-b/c:d = 1 }"),
            (
                "{ rootServiceName = \"x\" && traceDuration > 1s }",
                r#"{ trace:rootService = "x" && trace:duration > 1s }"#,
            ),
            ("{ (.a || .b) && .c }", "{ .a || .b && .c }"),
            ("{ .a || (.b && .c) }", "{ .a || (.b && .c) }"),
            ("{ (.a + .b) * .c = 1 }", "{ (.a + .b) * .c = 1 }"),
            ("{ .a - (.b - .c) = 1 }", "{ .a - (.b - .c) = 1 }"),
            ("{ (2 ^ 3) ^ 2 = .a }", "{ (2 ^ 3) ^ 2 = .a }"),
            ("{ 2 ^ (3 ^ 2) = .a }", "{ 2 ^ 3 ^ 2 = .a }"),
            ("{ (-2) ^ 2 = .a }", "{ (-2) ^ 2 = .a }"),
            ("{ -(2 ^ 2) = .a }", "{ -2 ^ 2 = .a }"),
            ("{ -(.a + 1) = 2 }", "{ -(.a + 1) = 2 }"),
            ("{ (!.a) = true }", "{ !.a = true }"),
            ("{ !(.a = true) }", "{ !(.a = true) }"),
            ("{ .a = (.b = .c) }", "{ .a = (.b = .c) }"),
            ("{ .a + -1 = 2 }", "{ .a + (-1) = 2 }"),
            ("{ .a = - - 1 }", "{ .a = --1 }"),
            ("{ .a } && ({ .b } || { .c })", "{ .a } && ({ .b } || { .c })"),
            ("({ .a } && { .b }) >> { .c }", "({ .a } && { .b }) >> { .c }"),
            ("{ .a } >> ({ .b } >> { .c })", "{ .a } >> ({ .b } >> { .c })"),
            ("(({ .a }))", "{ .a }"),
            ("({ .a } | count() > 1) && ({ .b })", "({ .a } | count() > 1) && ({ .b })"),
            ("({ .a } | count() > 1) && ({ .b } && { .c })", "({ .a } | count() > 1) && ({ .b } && { .c })"),
            ("count() > 1", "{ } | count() > 1"),
            ("{ } | (count()) > -1s", "{ } | count() > -1s"),
            ("{ } | avg(duration) > 1s", "{ } | avg(span:duration) > 1s"),
            ("{ } | min((.a + 1) * 2) > 1", "{ } | min((.a + 1) * 2) > 1"),
            (
                "{ .a } | { .b } && { .c } | by(.d) | select(.e, name) | coalesce()",
                "{ .a } | { .b } && { .c } | by(.d) | select(.e, span:name) | coalesce()",
            ),
            (
                "{ } | rate() by(resource.service.name,name)",
                "{ } | rate() by (resource.service.name, span:name)",
            ),
            (
                "{ } | quantile_over_time(duration, .99, 1)",
                "{ } | quantile_over_time(span:duration, 0.99, 1.0)",
            ),
            ("{ } | compare({status=error},10,1,2)", "{ } | compare({ span:status = error }, 10, 1, 2)"),
            ("{ } | rate() > 1 | topk(2) <= -1.5", "{ } | rate() > 1 | topk(2) <= -1.5"),
            ("{ } with(most_recent=true,sample=0.1)", "{ } with(most_recent=true, sample=0.1)"),
            (
                "{ span:childCount = 0 && kind = unspecified }",
                "{ span:childCount = 0 && span:kind = unspecified }",
            ),
        ] {
            assert_eq!(canon(q), want, "{q}");
            assert_eq!(canon(want), want, "{want} is not a fixed point");
        }
    }
}
