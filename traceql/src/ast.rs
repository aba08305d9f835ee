//! The TraceQL abstract syntax tree, as the parser produces it and the
//! compiler consumes it. It follows the structure of Tempo's grammar:
//! a query is a spanset expression followed by pipeline stages, optionally
//! ending in a metrics aggregate, plus `with(...)` hints.

use std::fmt;

/// Byte offsets `[start, end)` of a node in the query text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub start: usize,
    pub end: usize,
}

/// A whole query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub pipeline: Pipeline,
    /// `with(key = value, ...)` hints, in order. When a query has several
    /// `with(...)` clauses, only the last one counts (as in Tempo).
    pub hints: Vec<Hint>,
}

/// A spanset expression followed by `| stage` elements.
///
/// A query that starts with a stage (`count() > 1`, `by(.a)`, `select(.a)`)
/// gets the always-true source `{ }` (a `Filter(Static(Bool(true)))` with a
/// zero-width position), which is what Tempo evaluates it as.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    pub source: SpansetExpr,
    pub stages: Vec<Stage>,
    /// Addition: where the pipeline stands, including parentheses written
    /// around it.
    pub pos: Pos,
}

/// An expression producing spansets (one per trace).
#[derive(Debug, Clone, PartialEq)]
pub enum SpansetExpr {
    /// `{ condition }`; `{ }` is `Filter(Static(Bool(true)))`.
    Filter { condition: FieldExpr, pos: Pos },
    /// `lhs op rhs` between spansets: `&&`, `||` and the structural operators.
    Binary { op: SpansetOp, lhs: Box<SpansetExpr>, rhs: Box<SpansetExpr>, pos: Pos },
    /// A parenthesised pipeline used as a spanset, e.g.
    /// `({ .a } | count() > 1) && ({ .b })`. Only in combinations (a
    /// parenthesised pipeline alone is the query's pipeline itself); never
    /// contains a metrics stage.
    Pipeline(Box<Pipeline>),
}

/// Operators between two spansets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpansetOp {
    /// `&&`: traces where both sides match; spans of both sides.
    And,
    /// `||`: spans of either side.
    Or,
    /// `>>` descendant, `>` child, `<<` ancestor, `<` parent, `~` sibling.
    Structural(Structural),
    /// `!>>` etc.: right-hand spans with no such relation to a left-hand span.
    NotStructural(Structural),
    /// `&>>` etc.: spans of both sides that stand in the relation.
    UnionStructural(Structural),
}

/// Structural relations, read as "rhs is &lt;relation&gt; of lhs".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structural {
    /// `>>`: rhs is a descendant of lhs.
    Descendant,
    /// `>`: rhs is a child of lhs.
    Child,
    /// `<<`: rhs is an ancestor of lhs.
    Ancestor,
    /// `<`: rhs is the parent of lhs.
    Parent,
    /// `~`: rhs is a sibling of lhs.
    Sibling,
}

/// One `| ...` element of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// `| { condition }`: filter the spans of each spanset.
    Filter { condition: FieldExpr, pos: Pos },
    /// `| <scalar> <cmp> <scalar>`, e.g. `| count() > 2`, `| avg(duration) > 1s`.
    ScalarFilter { lhs: ScalarExpr, op: BinaryOp, rhs: ScalarExpr, pos: Pos },
    /// `| by(expr)`: regroup spansets by the value of the expression.
    /// Tempo's grammar takes exactly one field expression, so `exprs` always
    /// has one element when produced by the parser.
    By { exprs: Vec<FieldExpr>, pos: Pos },
    /// `| select(expr, ...)`: add attributes to the returned spans. The
    /// expressions are `FieldExpr::Attribute` or `FieldExpr::Intrinsic` only.
    Select { exprs: Vec<FieldExpr>, pos: Pos },
    /// `| coalesce()`: merge the spansets of a trace into one.
    Coalesce { pos: Pos },
    /// `| rate() by (...)` and the other metrics functions (must be last,
    /// save for one `topk`/`bottomk` after it).
    Metrics(MetricsAggregate),
    /// `| topk(n)` / `| bottomk(n)` after a metrics aggregate.
    TopK { bottom: bool, n: i64, pos: Pos },
    /// Addition: `| {a} && {b}`, `| {a} >> {b}`: a pipeline stage that is a
    /// spanset *operation* rather than a single filter (Tempo's
    /// `spansetPipeline PIPE spansetExpression`). A stage that is one
    /// `{ ... }` is always [`Stage::Filter`]. Never contains
    /// [`SpansetExpr::Pipeline`].
    Spanset { expr: SpansetExpr, pos: Pos },
    /// Addition: `| rate() > 10`, a threshold on the metrics series values
    /// (Tempo's `metricsFilter`). Written without a `|` in front; only after
    /// a metrics aggregate, interleaving freely with `topk`/`bottomk`.
    /// `op` is one of `Eq Neq Lt Lte Gt Gte`; `value` is an `Int`, `Float`
    /// or `Duration` static and may be negative.
    MetricsFilter { op: BinaryOp, value: Static, pos: Pos },
}

/// Aggregates usable in scalar filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateOp {
    Count,
    Avg,
    Min,
    Max,
    Sum,
}

/// An expression evaluating to one value per spanset.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalarExpr {
    /// `count()`, `avg(expr)`, ...; `arg` is `None` only for `count()`.
    Aggregate { op: AggregateOp, arg: Option<FieldExpr>, pos: Pos },
    Static { value: Static, pos: Pos },
    /// Arithmetic between scalars.
    Binary { op: BinaryOp, lhs: Box<ScalarExpr>, rhs: Box<ScalarExpr>, pos: Pos },
}

/// Metrics functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsOp {
    Rate,
    CountOverTime,
    MinOverTime,
    MaxOverTime,
    AvgOverTime,
    SumOverTime,
    QuantileOverTime,
    HistogramOverTime,
    Compare,
}

/// `| rate() by (resource.service.name)` and friends.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsAggregate {
    pub op: MetricsOp,
    /// The measured attribute (`quantile_over_time(duration, ...)`): a
    /// `FieldExpr::Attribute` or `FieldExpr::Intrinsic`; `None` for `rate`,
    /// `count_over_time` and `compare`.
    pub attr: Option<FieldExpr>,
    /// Quantiles for `quantile_over_time`.
    pub quantiles: Vec<f64>,
    /// `compare({selection}, topN, start, end)` arguments.
    pub compare: Option<CompareArgs>,
    /// `by (a, b)`: attributes and intrinsics only (at most 5; 4 for
    /// `quantile_over_time` and `histogram_over_time`).
    pub by: Vec<FieldExpr>,
    pub pos: Pos,
}

/// Arguments of `compare()`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareArgs {
    /// Always a `SpansetExpr::Filter`.
    pub selection: Box<SpansetExpr>,
    /// Values kept per attribute; `None` when not written (Tempo's default
    /// is 10). Positive.
    pub top_n: Option<i64>,
    /// Selection window in unix nanoseconds: both `None`, both `Some(0)`
    /// (no window), or `0 < start < end`.
    pub start: Option<i64>,
    /// See `start`.
    pub end: Option<i64>,
}

/// An expression over one span (and its trace, event, link...).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldExpr {
    Static { value: Static, pos: Pos },
    Attribute { attr: Attribute, pos: Pos },
    Intrinsic { intrinsic: Intrinsic, pos: Pos },
    Binary { op: BinaryOp, lhs: Box<FieldExpr>, rhs: Box<FieldExpr>, pos: Pos },
    Unary { op: UnaryOp, expr: Box<FieldExpr>, pos: Pos },
}

impl FieldExpr {
    /// Where the expression stands in the query text.
    pub fn pos(&self) -> Pos {
        match self {
            FieldExpr::Static { pos, .. }
            | FieldExpr::Attribute { pos, .. }
            | FieldExpr::Intrinsic { pos, .. }
            | FieldExpr::Binary { pos, .. }
            | FieldExpr::Unary { pos, .. } => *pos,
        }
    }
}

/// Binary operators of field and scalar expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    And,
    Or,
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    /// `=~`: fully anchored regular expression match. The right-hand side
    /// is always a string literal in Go RE2 syntax; build the matcher with
    /// `validate::anchored_regex` (translation to the `regex` crate's
    /// syntax, plus anchoring).
    Regex,
    /// `!~`
    NotRegex,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Not,
    Neg,
}

/// Literal values.
#[derive(Debug, Clone, PartialEq)]
pub enum Static {
    Nil,
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
    Status(Status),
    Kind(Kind),
}

/// Span status literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Unset,
    Ok,
    Error,
}

/// Span kind literals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrScope {
    /// `.name`: span or resource attribute.
    Unscoped,
    Span,
    Resource,
    Event,
    Link,
    Instrumentation,
}

/// A named attribute, e.g. `resource.service.name` or `span."a b"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub scope: AttrScope,
    pub name: String,
}

/// Intrinsic fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intrinsic {
    /// `duration`, `span:duration`
    Duration,
    /// `name`, `span:name`
    Name,
    /// `status`, `span:status`
    Status,
    /// `statusMessage`, `span:statusMessage`
    StatusMessage,
    /// `kind`, `span:kind`
    Kind,
    /// `span:id`
    SpanId,
    /// `span:parentID`
    ParentId,
    /// `rootName`, `trace:rootName`
    RootName,
    /// `rootServiceName`, `trace:rootService`
    RootServiceName,
    /// `traceDuration`, `trace:duration`
    TraceDuration,
    /// `trace:id`
    TraceId,
    /// `event:name`
    EventName,
    /// `event:timeSinceStart`
    EventTimeSinceStart,
    /// `link:traceID`
    LinkTraceId,
    /// `link:spanID`
    LinkSpanId,
    /// `instrumentation:name`
    InstrumentationName,
    /// `instrumentation:version`
    InstrumentationVersion,
    /// `nestedSetLeft` / `nestedSetRight` / `nestedSetParent` (Tempo exposes these too)
    NestedSetLeft,
    NestedSetRight,
    NestedSetParent,
    /// Addition: `span:childCount`, the number of direct children (Tempo 3).
    ChildCount,
}

/// A `with(...)` hint.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    pub name: String,
    pub value: Static,
    /// Addition: where `name = value` stands.
    pub pos: Pos,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

// ---------------------------------------------------------------------------
// Additions: position accessors and a position eraser (for comparing ASTs of
// different spellings of the same query, e.g. in snapshot tests).
// ---------------------------------------------------------------------------

impl Pos {
    /// A position from byte offsets.
    pub fn new(start: usize, end: usize) -> Self {
        Pos { start, end }
    }

    /// The smallest position covering both.
    pub fn join(self, other: Pos) -> Pos {
        Pos { start: self.start.min(other.start), end: self.end.max(other.end) }
    }
}

impl SpansetExpr {
    /// Where the expression stands in the query text.
    pub fn pos(&self) -> Pos {
        match self {
            SpansetExpr::Filter { pos, .. } | SpansetExpr::Binary { pos, .. } => *pos,
            SpansetExpr::Pipeline(p) => p.pos,
        }
    }
}

impl Stage {
    /// Where the stage stands in the query text.
    pub fn pos(&self) -> Pos {
        match self {
            Stage::Filter { pos, .. }
            | Stage::ScalarFilter { pos, .. }
            | Stage::By { pos, .. }
            | Stage::Select { pos, .. }
            | Stage::Coalesce { pos }
            | Stage::TopK { pos, .. }
            | Stage::Spanset { pos, .. }
            | Stage::MetricsFilter { pos, .. } => *pos,
            Stage::Metrics(m) => m.pos,
        }
    }
}

impl ScalarExpr {
    /// Where the expression stands in the query text.
    pub fn pos(&self) -> Pos {
        match self {
            ScalarExpr::Aggregate { pos, .. }
            | ScalarExpr::Static { pos, .. }
            | ScalarExpr::Binary { pos, .. } => *pos,
        }
    }
}

impl Query {
    /// Sets every position in the tree to `Pos::default()`, so that two
    /// spellings of one query compare equal with `==`.
    pub fn zero_positions(&mut self) {
        self.pipeline.zero_positions();
        for h in &mut self.hints {
            h.pos = Pos::default();
        }
    }
}

impl Pipeline {
    /// See [`Query::zero_positions`].
    pub fn zero_positions(&mut self) {
        self.pos = Pos::default();
        self.source.zero_positions();
        for s in &mut self.stages {
            s.zero_positions();
        }
    }
}

impl SpansetExpr {
    /// See [`Query::zero_positions`].
    pub fn zero_positions(&mut self) {
        match self {
            SpansetExpr::Filter { condition, pos } => {
                *pos = Pos::default();
                condition.zero_positions();
            }
            SpansetExpr::Binary { lhs, rhs, pos, .. } => {
                *pos = Pos::default();
                lhs.zero_positions();
                rhs.zero_positions();
            }
            SpansetExpr::Pipeline(p) => p.zero_positions(),
        }
    }
}

impl Stage {
    /// See [`Query::zero_positions`].
    pub fn zero_positions(&mut self) {
        match self {
            Stage::Filter { condition, pos } => {
                *pos = Pos::default();
                condition.zero_positions();
            }
            Stage::ScalarFilter { lhs, rhs, pos, .. } => {
                *pos = Pos::default();
                lhs.zero_positions();
                rhs.zero_positions();
            }
            Stage::By { exprs, pos } | Stage::Select { exprs, pos } => {
                *pos = Pos::default();
                exprs.iter_mut().for_each(FieldExpr::zero_positions);
            }
            Stage::Coalesce { pos } | Stage::TopK { pos, .. } | Stage::MetricsFilter { pos, .. } => {
                *pos = Pos::default();
            }
            Stage::Spanset { expr, pos } => {
                *pos = Pos::default();
                expr.zero_positions();
            }
            Stage::Metrics(m) => {
                m.pos = Pos::default();
                if let Some(a) = &mut m.attr {
                    a.zero_positions();
                }
                if let Some(c) = &mut m.compare {
                    c.selection.zero_positions();
                }
                m.by.iter_mut().for_each(FieldExpr::zero_positions);
            }
        }
    }
}

impl ScalarExpr {
    /// See [`Query::zero_positions`].
    pub fn zero_positions(&mut self) {
        match self {
            ScalarExpr::Aggregate { arg, pos, .. } => {
                *pos = Pos::default();
                if let Some(a) = arg {
                    a.zero_positions();
                }
            }
            ScalarExpr::Static { pos, .. } => *pos = Pos::default(),
            ScalarExpr::Binary { lhs, rhs, pos, .. } => {
                *pos = Pos::default();
                lhs.zero_positions();
                rhs.zero_positions();
            }
        }
    }
}

impl FieldExpr {
    /// See [`Query::zero_positions`].
    pub fn zero_positions(&mut self) {
        match self {
            FieldExpr::Static { pos, .. }
            | FieldExpr::Attribute { pos, .. }
            | FieldExpr::Intrinsic { pos, .. } => *pos = Pos::default(),
            FieldExpr::Binary { lhs, rhs, pos, .. } => {
                *pos = Pos::default();
                lhs.zero_positions();
                rhs.zero_positions();
            }
            FieldExpr::Unary { expr, pos, .. } => {
                *pos = Pos::default();
                expr.zero_positions();
            }
        }
    }
}
