//! The semantic checks Tempo runs after parsing (`validate()` in its
//! `ast_validate.go` and `ast_metrics.go`), so that Spanlake rejects the
//! same queries. Every error points at the offending node.
//!
//! Field expressions are typed as in Tempo's `impliedType`:
//! - attributes have the "attribute" type, known only at query time, which
//!   matches every type and every operator;
//! - intrinsics have fixed types (`duration` a duration, `name` a string,
//!   `status` a status, `nestedSetLeft` and `span:childCount` ints...),
//!   except `instrumentation:name`/`version`, which Tempo types as
//!   attributes (so `{ instrumentation:name = duration }` is accepted, as
//!   in Tempo);
//! - a comparison or `&&`/`||` is boolean; arithmetic takes the type of its
//!   first non-attribute operand; a unary operator keeps its operand's type.
//!
//! The rules:
//! 1. both operands of a binary operator have matching types (the same,
//!    both numeric — int, float and duration mix freely — or one of them
//!    an attribute or `nil`);
//! 2. the operator is valid for both types: `&& ||` on booleans; arithmetic
//!    and ordering on numbers; `= !=` on everything; `=~ !~` and ordering on
//!    strings; statuses, kinds and `nil` only with `= !=`; `-x` on numbers
//!    and `!x` on booleans;
//! 3. `nil` is only an operand of `=` or `!=`, and `X = nil` is refused when
//!    X is an intrinsic or `resource.service.name` (never nil);
//! 4. the right-hand side of `=~`/`!~` is a string literal that compiles
//!    as a Go RE2 regular expression (checked with the `regex` crate after
//!    [`translate_regex`]; the compiled size is capped so huge patterns
//!    fail fast);
//! 5. a spanset filter's condition is boolean (or an attribute: `{ .a }`);
//! 6. aggregate arguments (`avg(x)`) are numeric or attributes and reference
//!    the span (`avg(1)` is refused), and so does a pipeline `by(x)`;
//! 7. scalar filters have the only shape Tempo executes:
//!    `aggregate <cmp> number`;
//! 8. metrics: at most 5 `by` attributes (4 for `quantile_over_time` and
//!    `histogram_over_time`), quantiles within `[0, 1]`, `compare()` with a
//!    positive top-N and either no timestamps or `0 < start < end`, and
//!    nothing after `compare()`; `topk`/`bottomk` limits are positive.

use crate::ast::*;
use crate::error::ParseError;

/// Maximum compiled size of a regular expression, in bytes of the regex
/// crate's internal program. Patterns beyond it are refused (quickly: the
/// compiler stops as soon as the limit is exceeded).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Checks a parsed query; `src` is the query text (for line and column).
pub fn validate(src: &str, q: &Query) -> Result<(), ParseError> {
    V { src }.pipeline(&q.pipeline, true)
}

/// Compiles a TraceQL (Go RE2) regular expression, unanchored, after
/// [`translate_regex`]. This is the check the validator applies.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    let translated = translate_regex(pattern)?;
    regex::RegexBuilder::new(&translated)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => "it is too big".to_string(),
            e => e.to_string().lines().last().unwrap_or("").trim().trim_start_matches("error: ").to_string(),
        })
}

/// The pattern to hand to the `regex` crate (or DataFusion's regex
/// functions) for `=~`/`!~`: translated and fully anchored, as Tempo
/// matches (`.a =~ "b.*"` means the whole value matches `b.*`).
pub fn anchored_regex(pattern: &str) -> Result<String, String> {
    Ok(format!("^(?:{})$", translate_regex(pattern)?))
}

/// Rewrites a Go (RE2) pattern into the `regex` crate's syntax where the
/// two read valid input differently:
/// - a `{` or `}` that is not part of a repetition (`{n}`, `{n,}`,
///   `{n,m}`) is a literal in Go (`/api/{id}`);
/// - `\Q...\E` quotes literal text;
/// - octal escapes (`\012`, `\12`) become `\x{..}`;
/// - inside a character class, `[` (except `[:name:]`), `&` and `~` are
///   literals in Go (the regex crate reads `[[`, `&&`, `~~` as nested
///   classes and set operations).
///
/// Repetition counts above 1000 are refused, as Go does.
pub fn translate_regex(go: &str) -> Result<String, String> {
    let c: Vec<char> = go.chars().collect();
    let n = c.len();
    let mut out = String::with_capacity(go.len() + 8);
    let mut i = 0;
    // Index of the first char of the current class body (after `[` and
    // `^`), while inside a class.
    let mut class: Option<usize> = None;
    while i < n {
        let ch = c[i];
        if ch == '\\' {
            let Some(&e) = c.get(i + 1) else {
                out.push('\\'); // trailing backslash: let the regex crate refuse it
                i += 1;
                continue;
            };
            if e == 'Q' && class.is_none() {
                // Literal text up to `\E` or the end.
                let mut j = i + 2;
                while j < n && !(c[j] == '\\' && c.get(j + 1) == Some(&'E')) {
                    let mut buf = [0u8; 4];
                    out.push_str(&regex::escape(c[j].encode_utf8(&mut buf)));
                    j += 1;
                }
                i = if j < n { j + 2 } else { n };
                continue;
            }
            if e.is_digit(8) && (e == '0' || c.get(i + 2).is_some_and(|d| d.is_digit(8))) {
                // Go: `\0` takes up to two more octal digits, `\1`..`\7` need
                // at least one more (a lone `\1` is a refused backreference).
                let mut j = i + 1;
                let mut v = 0u32;
                while j < n && j < i + 4 && c[j].is_digit(8) {
                    v = v * 8 + c[j].to_digit(8).unwrap_or(0);
                    j += 1;
                }
                out.push_str(&format!("\\x{{{v:x}}}"));
                i = j;
                continue;
            }
            out.push(ch);
            out.push(e);
            i += 2;
            continue;
        }
        if let Some(first) = class {
            match ch {
                ']' if i > first => class = None,
                '[' if c.get(i + 1) == Some(&':') => {
                    // `[:alpha:]`: copy through `:]`.
                    if let Some(k) =
                        (i + 2..n.saturating_sub(1).min(i + 24)).find(|&k| c[k] == ':' && c[k + 1] == ']')
                    {
                        let name: String = c[i + 2..k].iter().collect();
                        const POSIX: &[&str] = &[
                            "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print",
                            "punct", "space", "upper", "word", "xdigit",
                        ];
                        if !POSIX.contains(&name.strip_prefix('^').unwrap_or(&name)) {
                            return Err(format!("unknown character class [:{name}:]"));
                        }
                        out.extend(&c[i..k + 2]);
                        i = k + 2;
                        continue;
                    }
                    out.push_str("\\[");
                    i += 1;
                    continue;
                }
                '[' | '&' | '~' => {
                    out.push('\\');
                }
                _ => {}
            }
            out.push(ch);
            i += 1;
            continue;
        }
        match ch {
            '[' => {
                out.push('[');
                i += 1;
                if c.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class = Some(i);
                continue;
            }
            '{' => {
                if let Some((len, counts)) = repetition(&c[i..]) {
                    if counts.iter().any(|&k| k > 1000) {
                        return Err("invalid repeat count (the maximum is 1000)".into());
                    }
                    out.extend(&c[i..i + len]);
                    i += len;
                } else {
                    out.push_str("\\{");
                    i += 1;
                }
                continue;
            }
            '}' => {
                out.push_str("\\}");
                i += 1;
                continue;
            }
            _ => {}
        }
        out.push(ch);
        i += 1;
    }
    Ok(out)
}

/// `{n}`, `{n,}` or `{n,m}` at the start of `c`: its length and counts.
fn repetition(c: &[char]) -> Option<(usize, Vec<u64>)> {
    let mut i = 1;
    let mut counts = Vec::new();
    let digits = |i: &mut usize| {
        let start = *i;
        let mut v: u64 = 0;
        while *i < c.len() && c[*i].is_ascii_digit() {
            v = v.saturating_mul(10).saturating_add(u64::from(c[*i] as u8 - b'0'));
            *i += 1;
        }
        (*i > start).then_some(v)
    };
    counts.push(digits(&mut i)?);
    if c.get(i) == Some(&',') {
        i += 1;
        if let Some(v) = digits(&mut i) {
            counts.push(v);
        }
    }
    (c.get(i) == Some(&'}')).then_some((i + 1, counts))
}

/// Static types of field expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Known only at query time (attributes).
    Attribute,
    /// Integers (and `nestedSet*`, `span:childCount`).
    Int,
    /// Floats.
    Float,
    /// Durations (`duration`, `1s`).
    Duration,
    /// Strings (`name`, `"x"`).
    String,
    /// Booleans and conditions.
    Boolean,
    /// `ok`, `error`, `unset`.
    Status,
    /// `server`, `client`, ...
    Kind,
    /// `nil`.
    Nil,
}

impl Type {
    fn numeric(self) -> bool {
        matches!(self, Type::Int | Type::Float | Type::Duration)
    }

    fn name(self) -> &'static str {
        match self {
            Type::Attribute => "an attribute",
            Type::Int => "an int",
            Type::Float => "a float",
            Type::Duration => "a duration",
            Type::String => "a string",
            Type::Boolean => "a boolean",
            Type::Status => "a status",
            Type::Kind => "a kind",
            Type::Nil => "nil",
        }
    }
}

/// The type of an intrinsic, as Tempo declares it.
pub fn intrinsic_type(i: Intrinsic) -> Type {
    use Intrinsic as I;
    match i {
        I::Duration | I::TraceDuration | I::EventTimeSinceStart => Type::Duration,
        I::Name
        | I::StatusMessage
        | I::RootName
        | I::RootServiceName
        | I::TraceId
        | I::SpanId
        | I::ParentId
        | I::EventName
        | I::LinkTraceId
        | I::LinkSpanId => Type::String,
        I::Status => Type::Status,
        I::Kind => Type::Kind,
        I::NestedSetLeft | I::NestedSetRight | I::NestedSetParent | I::ChildCount => Type::Int,
        // Tempo's impliedType has no case for these: they type as attributes.
        I::InstrumentationName | I::InstrumentationVersion => Type::Attribute,
    }
}

fn static_type(s: &Static) -> Type {
    match s {
        Static::Nil => Type::Nil,
        Static::Int(_) => Type::Int,
        Static::Float(_) => Type::Float,
        Static::Str(_) => Type::String,
        Static::Bool(_) => Type::Boolean,
        Static::Duration(_) => Type::Duration,
        Static::Status(_) => Type::Status,
        Static::Kind(_) => Type::Kind,
    }
}

fn types_match(a: Type, b: Type) -> bool {
    a == Type::Attribute
        || b == Type::Attribute
        || a == b
        || (a.numeric() && b.numeric())
        || a == Type::Nil
        || b == Type::Nil
}

fn op_valid(op: BinaryOp, t: Type) -> bool {
    use BinaryOp as B;
    match t {
        Type::Attribute => true,
        Type::Boolean => matches!(op, B::And | B::Or | B::Eq | B::Neq),
        Type::Int | Type::Float | Type::Duration => matches!(
            op,
            B::Add
                | B::Sub
                | B::Mul
                | B::Div
                | B::Mod
                | B::Pow
                | B::Eq
                | B::Neq
                | B::Gt
                | B::Gte
                | B::Lt
                | B::Lte
        ),
        Type::String => {
            matches!(op, B::Eq | B::Neq | B::Regex | B::NotRegex | B::Gt | B::Gte | B::Lt | B::Lte)
        }
        Type::Nil | Type::Status | Type::Kind => matches!(op, B::Eq | B::Neq),
    }
}

fn is_boolean_op(op: BinaryOp) -> bool {
    use BinaryOp as B;
    matches!(op, B::And | B::Or | B::Eq | B::Neq | B::Gt | B::Gte | B::Lt | B::Lte | B::Regex | B::NotRegex)
}

/// Whether an expression reads anything from the span (Tempo's
/// `referencesSpan`): any attribute or intrinsic does, literals do not.
pub fn references_span(e: &FieldExpr) -> bool {
    match e {
        FieldExpr::Static { .. } => false,
        FieldExpr::Attribute { .. } | FieldExpr::Intrinsic { .. } => true,
        FieldExpr::Unary { expr, .. } => references_span(expr),
        FieldExpr::Binary { lhs, rhs, .. } => references_span(lhs) || references_span(rhs),
    }
}

/// Fields that Tempo refuses to compare with `= nil`.
fn never_nil(e: &FieldExpr) -> bool {
    match e {
        FieldExpr::Intrinsic { .. } => true,
        FieldExpr::Attribute { attr, .. } => attr.scope == AttrScope::Resource && attr.name == "service.name",
        _ => false,
    }
}

fn op_str(op: BinaryOp) -> &'static str {
    crate::display::binary_op_str(op)
}

struct V<'a> {
    src: &'a str,
}

type R<T = ()> = Result<T, ParseError>;

impl V<'_> {
    fn err(&self, pos: Pos, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.src, pos, msg)
    }

    fn pipeline(&self, p: &Pipeline, root: bool) -> R {
        self.spanset(&p.source)?;
        let mut metrics: Option<&MetricsAggregate> = None;
        for stage in &p.stages {
            let second = matches!(stage, Stage::TopK { .. } | Stage::MetricsFilter { .. });
            match metrics {
                Some(m) if m.op == MetricsOp::Compare => {
                    return Err(self.err(
                        stage.pos(),
                        "compare() cannot be followed by topk(), bottomk() or a comparison",
                    ));
                }
                Some(_) if !second => {
                    return Err(self.err(stage.pos(), "a metrics function must be the last pipeline stage"));
                }
                None if second => {
                    return Err(self.err(
                        stage.pos(),
                        "topk(), bottomk() and thresholds must follow a metrics function",
                    ));
                }
                _ => {}
            }
            match stage {
                Stage::Filter { condition, .. } => self.condition(condition)?,
                Stage::Spanset { expr, .. } => self.spanset(expr)?,
                Stage::ScalarFilter { lhs, rhs, .. } => self.scalar_filter(lhs, rhs)?,
                Stage::By { exprs, pos } => {
                    if exprs.is_empty() {
                        return Err(self.err(*pos, "by() needs a field expression"));
                    }
                    for e in exprs {
                        self.field(e, false)?;
                        if !references_span(e) {
                            return Err(self.err(
                                e.pos(),
                                "by() must reference the span (an attribute or an intrinsic)",
                            ));
                        }
                    }
                }
                Stage::Select { exprs, pos } => {
                    if exprs.is_empty() {
                        return Err(self.err(*pos, "select() needs at least one attribute"));
                    }
                    self.attributes_only(exprs, "select()")?;
                }
                Stage::Coalesce { .. } => {}
                Stage::Metrics(m) => {
                    if !root {
                        return Err(self.err(m.pos, "metrics functions cannot be used inside parentheses"));
                    }
                    self.metrics(m)?;
                    metrics = Some(m);
                }
                Stage::TopK { n, pos, .. } => {
                    if *n <= 0 {
                        return Err(self.err(*pos, "the limit of topk()/bottomk() must be greater than 0"));
                    }
                }
                Stage::MetricsFilter { value, pos, .. } => {
                    if !matches!(value, Static::Int(_) | Static::Float(_) | Static::Duration(_)) {
                        return Err(self.err(*pos, "a metrics threshold must be a number or a duration"));
                    }
                }
            }
        }
        Ok(())
    }

    fn spanset(&self, e: &SpansetExpr) -> R {
        match e {
            SpansetExpr::Filter { condition, .. } => self.condition(condition),
            SpansetExpr::Binary { lhs, rhs, .. } => {
                self.spanset(lhs)?;
                self.spanset(rhs)
            }
            SpansetExpr::Pipeline(p) => self.pipeline(p, false),
        }
    }

    /// The condition of a `{ ... }` filter.
    fn condition(&self, c: &FieldExpr) -> R {
        let t = self.field(c, false)?;
        if t != Type::Boolean && t != Type::Attribute {
            return Err(
                self.err(c.pos(), format!("a spanset filter condition must be boolean, not {}", t.name()))
            );
        }
        Ok(())
    }

    fn attributes_only(&self, exprs: &[FieldExpr], what: &str) -> R {
        for e in exprs {
            if !matches!(e, FieldExpr::Attribute { .. } | FieldExpr::Intrinsic { .. }) {
                return Err(self.err(e.pos(), format!("{what} takes attributes and intrinsics only")));
            }
        }
        Ok(())
    }

    /// Types a field expression, checking rules 1 to 4 on the way.
    /// `nil_ok`: whether this node is a direct operand of `=` or `!=`.
    fn field(&self, e: &FieldExpr, nil_ok: bool) -> R<Type> {
        match e {
            FieldExpr::Static { value: Static::Nil, pos } if !nil_ok => {
                Err(self.err(*pos, "nil can only be compared with = or !="))
            }
            FieldExpr::Static { value, .. } => Ok(static_type(value)),
            FieldExpr::Attribute { .. } => Ok(Type::Attribute),
            FieldExpr::Intrinsic { intrinsic, .. } => Ok(intrinsic_type(*intrinsic)),
            FieldExpr::Unary { op, expr, pos } => {
                let t = self.field(expr, false)?;
                let ok = match op {
                    UnaryOp::Neg => t.numeric(),
                    UnaryOp::Not => t == Type::Boolean,
                };
                if !ok && t != Type::Attribute {
                    let sym = if *op == UnaryOp::Neg { "-" } else { "!" };
                    return Err(self.err(*pos, format!("operator '{sym}' cannot be applied to {}", t.name())));
                }
                Ok(t)
            }
            FieldExpr::Binary { op, lhs, rhs, pos } => {
                let nil_ok = matches!(op, BinaryOp::Eq | BinaryOp::Neq);
                let lt = self.field(lhs, nil_ok)?;
                let rt = self.field(rhs, nil_ok)?;
                let sym = op_str(*op);
                if !types_match(lt, rt) {
                    return Err(self.err(
                        *pos,
                        format!(
                            "operands of '{sym}' must have the same type, found {} and {}",
                            lt.name(),
                            rt.name()
                        ),
                    ));
                }
                if *op == BinaryOp::Eq {
                    for (nil, other) in [(lt, &**rhs), (rt, &**lhs)] {
                        if nil == Type::Nil && never_nil(other) {
                            return Err(self.err(
                                *pos,
                                "`= nil` is not valid on intrinsics and resource.service.name, which are never nil",
                            ));
                        }
                    }
                }
                for t in [lt, rt] {
                    if !op_valid(*op, t) {
                        return Err(self.err(*pos, format!("operator '{sym}' is not valid for {}", t.name())));
                    }
                }
                if matches!(op, BinaryOp::Regex | BinaryOp::NotRegex) {
                    match &**rhs {
                        FieldExpr::Static { value: Static::Str(p), pos } => {
                            if let Err(reason) = compile_regex(p) {
                                return Err(self.err(*pos, format!("invalid regular expression: {reason}")));
                            }
                        }
                        other => {
                            return Err(self.err(
                                other.pos(),
                                format!("the right-hand side of '{sym}' must be a string literal"),
                            ));
                        }
                    }
                }
                Ok(if is_boolean_op(*op) {
                    Type::Boolean
                } else if lt != Type::Attribute {
                    lt
                } else {
                    rt
                })
            }
        }
    }

    fn scalar_filter(&self, lhs: &ScalarExpr, rhs: &ScalarExpr) -> R {
        self.scalar(lhs)?;
        self.scalar(rhs)?;
        // Tempo parses arithmetic here but refuses anything but this shape.
        const SHAPE: &str =
            "only `aggregate <comparison> number` scalar filters are supported, e.g. `count() > 2`";
        if !matches!(lhs, ScalarExpr::Aggregate { .. }) {
            return Err(self.err(lhs.pos(), SHAPE));
        }
        if !matches!(rhs, ScalarExpr::Static { .. }) {
            return Err(self.err(rhs.pos(), SHAPE));
        }
        Ok(())
    }

    fn scalar(&self, e: &ScalarExpr) -> R {
        match e {
            ScalarExpr::Aggregate { op, arg, pos } => match (op, arg) {
                (AggregateOp::Count, None) => Ok(()),
                (AggregateOp::Count, Some(a)) => Err(self.err(a.pos(), "count() takes no argument")),
                (_, None) => Err(self.err(*pos, "this aggregate needs a field expression")),
                (_, Some(a)) => {
                    let t = self.field(a, false)?;
                    if !t.numeric() && t != Type::Attribute {
                        return Err(self.err(a.pos(), format!("aggregates need a number, not {}", t.name())));
                    }
                    if !references_span(a) {
                        return Err(self.err(
                            a.pos(),
                            "aggregates must reference the span (an attribute or an intrinsic)",
                        ));
                    }
                    Ok(())
                }
            },
            ScalarExpr::Static { value, pos } => {
                if !matches!(value, Static::Int(_) | Static::Float(_) | Static::Duration(_)) {
                    return Err(self.err(*pos, "scalar expressions only take numbers and durations"));
                }
                Ok(())
            }
            ScalarExpr::Binary { lhs, rhs, .. } => {
                self.scalar(lhs)?;
                self.scalar(rhs)
            }
        }
    }

    fn metrics(&self, m: &MetricsAggregate) -> R {
        use MetricsOp as M;
        let needs_attr = matches!(
            m.op,
            M::MinOverTime
                | M::MaxOverTime
                | M::AvgOverTime
                | M::SumOverTime
                | M::QuantileOverTime
                | M::HistogramOverTime
        );
        match (&m.attr, needs_attr) {
            (None, true) => return Err(self.err(m.pos, "this metrics function needs an attribute")),
            (Some(a), false) => return Err(self.err(a.pos(), "this metrics function takes no attribute")),
            (Some(a), true) => self.attributes_only(std::slice::from_ref(a), "metrics functions")?,
            (None, false) => {}
        }
        self.attributes_only(&m.by, "the by() of metrics functions")?;
        let max_by = if matches!(m.op, M::QuantileOverTime | M::HistogramOverTime) { 4 } else { 5 };
        if m.by.len() > max_by {
            let pos = m.by[max_by].pos();
            return Err(self.err(pos, format!("at most {max_by} by() attributes are supported here")));
        }
        if m.op == M::QuantileOverTime {
            if m.quantiles.is_empty() {
                return Err(self.err(m.pos, "quantile_over_time() needs at least one quantile"));
            }
            for q in &m.quantiles {
                if !(0.0..=1.0).contains(q) {
                    return Err(self.err(m.pos, format!("quantiles must be between 0 and 1, not {q}")));
                }
            }
        } else if !m.quantiles.is_empty() {
            return Err(self.err(m.pos, "only quantile_over_time() takes quantiles"));
        }
        match (&m.compare, m.op == M::Compare) {
            (None, true) => return Err(self.err(m.pos, "compare() needs a spanset filter")),
            (Some(_), false) => return Err(self.err(m.pos, "only compare() takes compare arguments")),
            (None, false) => {}
            (Some(c), true) => {
                match &*c.selection {
                    SpansetExpr::Filter { condition, .. } => self.condition(condition)?,
                    other => return Err(self.err(other.pos(), "compare() takes a single spanset filter")),
                }
                if c.top_n.is_some_and(|n| n <= 0) {
                    return Err(self.err(m.pos, "the top-N of compare() must be greater than 0"));
                }
                match (c.start, c.end) {
                    (None, None) | (Some(0), Some(0)) => {}
                    (Some(s), Some(e)) if s > 0 && e > 0 => {
                        if e <= s {
                            return Err(self.err(
                                m.pos,
                                "the end timestamp of compare() must be greater than the start",
                            ));
                        }
                    }
                    (Some(_), Some(_)) => {
                        return Err(self.err(m.pos, "compare() timestamps must be positive unix nanoseconds"));
                    }
                    _ => {
                        return Err(
                            self.err(m.pos, "compare() takes both start and end timestamps, or neither")
                        );
                    }
                }
                if (c.start.is_some() || c.end.is_some()) && c.top_n.is_none() {
                    return Err(self.err(m.pos, "compare() timestamps need a top-N before them"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    fn rejects(q: &str, needle: &str) {
        match parse(q) {
            Ok(_) => panic!("{q} was accepted"),
            Err(e) => assert!(e.message.contains(needle), "{q}: {e}"),
        }
    }

    #[test]
    fn types() {
        for q in [
            "{ .a }",
            "{ -.a }",
            "{ .a - .b }",
            "{ name > \"x\" }",
            "{ duration > 1 }",
            "{ duration = 1.5 }",
            "{ 1 < 1h }",
            "{ instrumentation:name = duration }", // Tempo types it as an attribute
            "{ .a = status }",
            "{ (.a = 1) = true }",
        ] {
            assert!(parse(q).is_ok(), "{q}: {:?}", parse(q).err());
        }
        rejects("{ name = 1 }", "same type");
        rejects("{ status > ok }", "not valid for a status");
        rejects("{ .a + 1 }", "must be boolean");
        rejects("{ !name }", "cannot be applied to a string");
        rejects("{ .a && 1 }", "not valid for an int");
        rejects("{ event:name = duration }", "same type");
    }

    #[test]
    fn nil() {
        for q in ["{ .a = nil }", "{ nil != .a }", "{ nil = nil }", "{ name != nil }", "{ (.a + 1) = nil }"] {
            assert!(parse(q).is_ok(), "{q}");
        }
        rejects("{ name = nil }", "never nil");
        rejects("{ nil = span:id }", "never nil");
        rejects("{ resource.service.name = nil }", "never nil");
        rejects("{ .a > nil }", "= or !=");
        rejects("{ nil }", "= or !=");
        rejects("{ !nil = .a }", "= or !=");
    }

    #[test]
    fn regexes() {
        let t = |p: &str| translate_regex(p).unwrap();
        assert_eq!(t("GET /api/{id}"), r"GET /api/\{id\}");
        assert_eq!(t("a{2}b{1,}c{1,3}"), "a{2}b{1,}c{1,3}");
        assert_eq!(t("a{,3}"), r"a\{,3\}");
        assert_eq!(t(r"\Qa.b*\E+"), r"a\.b\*+");
        assert_eq!(t(r"\Qa.b"), r"a\.b");
        assert_eq!(t(r"\012\101"), r"\x{a}\x{41}");
        assert_eq!(t(r"[[a&&b~~]]"), r"[\[a\&\&b\~\~]]");
        assert_eq!(t("[[:alpha:]x]"), "[[:alpha:]x]");
        assert_eq!(t(r"[]a]\{"), r"[]a]\{");
        assert!(translate_regex("a{1001}").is_err());
        assert!(translate_regex("[[:foo:]]").is_err());
        assert_eq!(anchored_regex("a|b").unwrap(), "^(?:a|b)$");
        for p in ["GET /api/{id}", "[]a]", r"\Q(\E", r"\d+", "(?i)x", r"\12"] {
            assert!(compile_regex(p).is_ok(), "{p}");
        }
        for p in ["[", "(", "x)(y", "a{2,1}", r"\1", "a{1001}"] {
            assert!(compile_regex(p).is_err(), "{p}");
        }
        rejects(r#"{ .a =~ "[" }"#, "invalid regular expression");
        rejects(r#"{ .a =~ .b }"#, "string literal");
        // Huge compiled programs are refused, quickly.
        let t0 = std::time::Instant::now();
        rejects(r#"{ .a =~ "(?:(?:(?:\\w{1000}){1000}){1000}){1000}" }"#, "too big");
        assert!(t0.elapsed() < std::time::Duration::from_secs(2), "{:?}", t0.elapsed());
    }

    #[test]
    fn aggregates_and_scalar_filters() {
        assert!(parse("{ } | avg(.a + 1) > 1").is_ok());
        assert!(parse("{ } | count() > -1").is_ok());
        rejects("{ } | avg(1) > 1", "reference the span");
        rejects("{ } | avg(name) > 1", "need a number");
        rejects("{ } | count() + 1 > 1", "only `aggregate <comparison> number`");
        rejects("{ } | 1 < count()", "only `aggregate <comparison> number`");
        rejects("{ } | by(1)", "reference the span");
    }

    #[test]
    fn metrics() {
        assert!(parse("{ } | rate() by (.a, .b, .c, .d, .e)").is_ok());
        rejects("{ } | rate() by (.a, .b, .c, .d, .e, .f)", "at most 5");
        rejects("{ } | histogram_over_time(duration) by (.a, .b, .c, .d, .e)", "at most 4");
        rejects("{ } | quantile_over_time(duration, 1.01)", "between 0 and 1");
        rejects("{ } | rate() | topk(0)", "greater than 0");
        rejects("{ } | compare({ .a }, 0)", "greater than 0");
        rejects("{ } | compare({ .a }, 5, 10, 1)", "greater than the start");
        rejects("{ } | compare({ .a }) | topk(1)", "cannot be followed");
        assert!(parse("{ } | compare({ .a }, 5, 0, 0)").is_ok());
    }

    #[test]
    fn hand_built_trees_are_checked_too() {
        // The compiler may rely on these shapes; trees built by code, not by
        // the parser, are held to them as well.
        let mut q = parse("{ } | rate()").unwrap();
        q.pipeline.stages.insert(0, Stage::TopK { bottom: false, n: 1, pos: Pos::default() });
        assert!(validate("", &q).is_err());
        let mut q = parse("{ } | rate()").unwrap();
        q.pipeline.stages.push(Stage::Coalesce { pos: Pos::default() });
        assert!(validate("", &q).is_err());
        let mut q = parse("{ } | select(.a)").unwrap();
        if let Stage::Select { exprs, .. } = &mut q.pipeline.stages[0] {
            exprs.push(FieldExpr::Static { value: Static::Int(1), pos: Pos::default() });
        }
        assert!(validate("", &q).is_err());
    }
}
