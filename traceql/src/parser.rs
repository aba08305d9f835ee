//! A hand-written recursive-descent parser for TraceQL, with precedence
//! climbing for the three kinds of expressions (field, scalar, spanset).
//! It accepts the grammar of Tempo 3.0's `pkg/traceql/expr.y`; semantic
//! checks (types, regexes, limits) are in [`crate::validate`].
//!
//! # Shape of a query
//!
//! ```text
//! query     = content { "with" "(" hint { "," hint } ")" }     (the last with() wins)
//! content   = spanset-expr                                      (no stages)
//!           | head { "|" stage } [ "|" metrics { second } ]
//! head      = spanset-expr | scalar-filter | by | select
//! stage     = spanset-expr | scalar-filter | by | select | coalesce
//! second    = "|" ("topk" | "bottomk") "(" INT ")" | cmp ["-"] number
//! spanset-expr: operands "{ field-expr }" or "{ }" or "(" content ")"
//! ```
//!
//! # Precedence (lowest first; all left-associative except `^`)
//!
//! | level | spanset expressions | field expressions | scalar expressions |
//! |---|---|---|---|
//! | 0 | `\|` (pipeline) | | |
//! | 1 | `&&` `\|\|` | `&&` `\|\|` | |
//! | 2 | `>` `<` `>>` `<<` `~` `!>` `!<` `!>>` `!<<` `!~` `&>` `&<` `&>>` `&<<` `&~` | `=` `!=` `<` `<=` `>` `>=` `=~` `!~` | (comparison of a scalar filter) |
//! | 3 | | `+` `-`, prefix `-` | `+` `-` |
//! | 4 | | prefix `!` | |
//! | 5 | | `*` `/` `%` | `*` `/` `%` |
//! | 6 | | `^` (right-assoc.) | `^` (right-assoc.) |
//!
//! So, as in Tempo, `a || b && c` is `(a || b) && c`, `!.a = 1` is
//! `(!.a) = 1`, `!.a * 2` is `!(.a * 2)` and `-2 ^ 2` is `-(2 ^ 2)`.
//!
//! # Tempo's grammar quirks that are kept
//!
//! - A parenthesised pipeline (`({ .a } | count() > 1)`) can only be
//!   combined with other parenthesised operands, and only when it comes
//!   first: `(P) && ({ .b })` is valid, `(P) && { .b }` and
//!   `({ .b }) && (P)` are not (Tempo's LALR parser has already read
//!   `({ .b })` as a plain spanset expression there); such a combination
//!   cannot be followed by `|`.
//! - A pipeline may start with a scalar filter, `by()` or `select()`, but
//!   not with `coalesce()` or a metrics function.
//! - `by()` of a pipeline takes exactly one field expression; the `by` of a
//!   metrics function takes a list of attributes.
//! - Scalar filters only use `= != < <= > >=`, and their literals are
//!   numbers or durations, optionally negated (`count() > -1`).
//!
//! Recursion is bounded: nesting deeper than [`MAX_DEPTH`] (parentheses,
//! prefix operators, or the height of the resulting tree) is an error, so
//! no input can overflow the stack, here or in code walking the AST.

use crate::ast::*;
use crate::error::ParseError;
use crate::lexer::{ColonScope, Tok, Token, is_keyword, tokenize};

/// Maximum nesting depth of a query: parentheses, prefix operators and the
/// height of expression trees (a chain of 300 `||` is 300 deep). Tempo has
/// no such limit; this one keeps the parser and the recursive code that
/// walks the AST (validation, display, the compiler, drop) well within a
/// 2 MiB thread stack (tokio's default), even in debug builds, where one
/// level of parentheses costs about 3 KiB of stack.
pub const MAX_DEPTH: usize = 256;

/// Parses a query without the semantic checks of [`crate::validate`].
/// Use [`crate::parse`] unless you need a syntactically valid but
/// semantically wrong tree.
pub fn parse_unvalidated(src: &str) -> Result<Query, ParseError> {
    let mut p = Parser { src, toks: tokenize(src), i: 0, depth: 0 };
    p.query()
}

type PResult<T> = Result<T, ParseError>;

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
    depth: usize,
}

/// How a spanset expression may be combined (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// `{ ... }` or an unparenthesised combination of such.
    Bare,
    /// A parenthesised spanset expression without stages: combines with
    /// anything.
    Paren,
    /// A parenthesised pipeline or a combination containing one.
    Pipe,
}

/// A spanset expression with its combination kind and tree height.
struct Sp {
    e: SpansetExpr,
    kind: Level,
    h: usize,
}

/// What a parenthesised group turned out to be.
enum Operand {
    Sp(Sp),
    Scalar(ScalarExpr, usize),
}

/// What a query or a parenthesised group contains.
enum Content {
    Sp(Sp),
    Pipeline(Box<Pipeline>, usize),
    Scalar(ScalarExpr, usize),
}

/// The first element of a pipeline.
enum Head {
    Sp(Sp),
    Stage(Box<Stage>, usize),
    Scalar(ScalarExpr, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Root,
    Group,
}

const AGGREGATES: &[&str] = &["count", "avg", "min", "max", "sum"];
const METRICS: &[(&str, MetricsOp)] = &[
    ("rate", MetricsOp::Rate),
    ("count_over_time", MetricsOp::CountOverTime),
    ("min_over_time", MetricsOp::MinOverTime),
    ("max_over_time", MetricsOp::MaxOverTime),
    ("avg_over_time", MetricsOp::AvgOverTime),
    ("sum_over_time", MetricsOp::SumOverTime),
    ("quantile_over_time", MetricsOp::QuantileOverTime),
    ("histogram_over_time", MetricsOp::HistogramOverTime),
    ("compare", MetricsOp::Compare),
];

/// Unscoped intrinsics (Tempo's `intrinsicField`, minus `parent`).
pub(crate) fn bare_intrinsic(name: &str) -> Option<Intrinsic> {
    Some(match name {
        "duration" => Intrinsic::Duration,
        "name" => Intrinsic::Name,
        "status" => Intrinsic::Status,
        "statusMessage" => Intrinsic::StatusMessage,
        "kind" => Intrinsic::Kind,
        "rootName" => Intrinsic::RootName,
        "rootServiceName" => Intrinsic::RootServiceName,
        "traceDuration" => Intrinsic::TraceDuration,
        "nestedSetLeft" => Intrinsic::NestedSetLeft,
        "nestedSetRight" => Intrinsic::NestedSetRight,
        "nestedSetParent" => Intrinsic::NestedSetParent,
        _ => return None,
    })
}

/// Colon-scoped intrinsics (Tempo's `scopedIntrinsicField`).
pub(crate) fn scoped_intrinsic(scope: ColonScope, name: &str) -> Option<Intrinsic> {
    use ColonScope as S;
    Some(match (scope, name) {
        (S::Trace, "duration") => Intrinsic::TraceDuration,
        (S::Trace, "rootName") => Intrinsic::RootName,
        (S::Trace, "rootService") => Intrinsic::RootServiceName,
        (S::Trace, "id") => Intrinsic::TraceId,
        (S::Span, "duration") => Intrinsic::Duration,
        (S::Span, "name") => Intrinsic::Name,
        (S::Span, "kind") => Intrinsic::Kind,
        (S::Span, "status") => Intrinsic::Status,
        (S::Span, "statusMessage") => Intrinsic::StatusMessage,
        (S::Span, "id") => Intrinsic::SpanId,
        (S::Span, "parentID") => Intrinsic::ParentId,
        (S::Span, "childCount") => Intrinsic::ChildCount,
        (S::Event, "name") => Intrinsic::EventName,
        (S::Event, "timeSinceStart") => Intrinsic::EventTimeSinceStart,
        (S::Link, "traceID") => Intrinsic::LinkTraceId,
        (S::Link, "spanID") => Intrinsic::LinkSpanId,
        (S::Instrumentation, "name") => Intrinsic::InstrumentationName,
        (S::Instrumentation, "version") => Intrinsic::InstrumentationVersion,
        _ => return None,
    })
}

/// Binary operators of field expressions: (op, level, right-associative).
fn field_binop(t: &Tok) -> Option<(BinaryOp, u8, bool)> {
    Some(match t {
        Tok::And => (BinaryOp::And, 1, false),
        Tok::Or => (BinaryOp::Or, 1, false),
        Tok::Eq => (BinaryOp::Eq, 2, false),
        Tok::Neq => (BinaryOp::Neq, 2, false),
        Tok::Lt => (BinaryOp::Lt, 2, false),
        Tok::Lte => (BinaryOp::Lte, 2, false),
        Tok::Gt => (BinaryOp::Gt, 2, false),
        Tok::Gte => (BinaryOp::Gte, 2, false),
        Tok::Re => (BinaryOp::Regex, 2, false),
        Tok::Nre => (BinaryOp::NotRegex, 2, false),
        Tok::Add => (BinaryOp::Add, 3, false),
        Tok::Sub => (BinaryOp::Sub, 3, false),
        Tok::Mul => (BinaryOp::Mul, 5, false),
        Tok::Div => (BinaryOp::Div, 5, false),
        Tok::Mod => (BinaryOp::Mod, 5, false),
        Tok::Pow => (BinaryOp::Pow, 6, true),
        _ => return None,
    })
}

/// Arithmetic operators of scalar expressions.
fn scalar_binop(t: &Tok) -> Option<(BinaryOp, u8, bool)> {
    match t {
        Tok::Add | Tok::Sub | Tok::Mul | Tok::Div | Tok::Mod | Tok::Pow => field_binop(t),
        _ => None,
    }
}

/// The comparisons of scalar and metrics filters.
fn comparison(t: &Tok) -> Option<BinaryOp> {
    Some(match t {
        Tok::Eq => BinaryOp::Eq,
        Tok::Neq => BinaryOp::Neq,
        Tok::Lt => BinaryOp::Lt,
        Tok::Lte => BinaryOp::Lte,
        Tok::Gt => BinaryOp::Gt,
        Tok::Gte => BinaryOp::Gte,
        _ => return None,
    })
}

/// Spanset operators: (op, level).
fn spanset_binop(t: &Tok) -> Option<(SpansetOp, u8)> {
    use SpansetOp as O;
    use Structural as S;
    Some(match t {
        Tok::And => (O::And, 1),
        Tok::Or => (O::Or, 1),
        Tok::Gt => (O::Structural(S::Child), 2),
        Tok::Lt => (O::Structural(S::Parent), 2),
        Tok::Desc => (O::Structural(S::Descendant), 2),
        Tok::Ance => (O::Structural(S::Ancestor), 2),
        Tok::Tilde => (O::Structural(S::Sibling), 2),
        Tok::NotChild => (O::NotStructural(S::Child), 2),
        Tok::NotParent => (O::NotStructural(S::Parent), 2),
        Tok::NotDesc => (O::NotStructural(S::Descendant), 2),
        Tok::NotAnce => (O::NotStructural(S::Ancestor), 2),
        Tok::Nre => (O::NotStructural(S::Sibling), 2),
        Tok::UnionChild => (O::UnionStructural(S::Child), 2),
        Tok::UnionParent => (O::UnionStructural(S::Parent), 2),
        Tok::UnionDesc => (O::UnionStructural(S::Descendant), 2),
        Tok::UnionAnce => (O::UnionStructural(S::Ancestor), 2),
        Tok::UnionSibl => (O::UnionStructural(S::Sibling), 2),
        _ => return None,
    })
}

fn set_field_pos(e: &mut FieldExpr, p: Pos) {
    match e {
        FieldExpr::Static { pos, .. }
        | FieldExpr::Attribute { pos, .. }
        | FieldExpr::Intrinsic { pos, .. }
        | FieldExpr::Binary { pos, .. }
        | FieldExpr::Unary { pos, .. } => *pos = p,
    }
}

fn set_scalar_pos(e: &mut ScalarExpr, p: Pos) {
    match e {
        ScalarExpr::Aggregate { pos, .. }
        | ScalarExpr::Static { pos, .. }
        | ScalarExpr::Binary { pos, .. } => *pos = p,
    }
}

fn set_spanset_pos(e: &mut SpansetExpr, p: Pos) {
    match e {
        SpansetExpr::Filter { pos, .. } | SpansetExpr::Binary { pos, .. } => *pos = p,
        SpansetExpr::Pipeline(pl) => pl.pos = p,
    }
}

/// The always-true filter `{ }`, here written nowhere (zero width at `at`).
fn always_true(at: usize) -> SpansetExpr {
    let pos = Pos::new(at, at);
    SpansetExpr::Filter { condition: FieldExpr::Static { value: Static::Bool(true), pos }, pos }
}

impl Parser<'_> {
    // ---- token helpers ----------------------------------------------------

    fn peek(&self) -> &Tok {
        &self.toks[self.i].tok
    }

    fn peek_nth(&self, n: usize) -> &Tok {
        &self.toks[(self.i + n).min(self.toks.len() - 1)].tok
    }

    fn pos(&self) -> Pos {
        self.toks[self.i].pos
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.i].clone();
        if self.i + 1 < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn is_ident(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == kw)
    }

    fn err(&self, pos: Pos, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.src, pos, msg)
    }

    /// "unexpected X, expected Y" at the current token (or the lexical
    /// error that stopped the lexer there).
    fn unexpected(&self, expected: &str) -> ParseError {
        let t = &self.toks[self.i];
        match &t.tok {
            Tok::Error(msg) => self.err(t.pos, msg.clone()),
            Tok::Eof => self.err(t.pos, format!("unexpected end of query, expected {expected}")),
            _ => {
                let text = &self.src[t.pos.start..t.pos.end];
                let shown: String = text.chars().take(40).collect();
                let ell = if shown.len() < text.len() { "..." } else { "" };
                self.err(t.pos, format!("unexpected token '{shown}{ell}', expected {expected}"))
            }
        }
    }

    fn expect(&mut self, tok: Tok, expected: &str) -> PResult<Pos> {
        if *self.peek() == tok { Ok(self.bump().pos) } else { Err(self.unexpected(expected)) }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(
                self.err(self.pos(), format!("query is nested too deeply (more than {MAX_DEPTH} levels)"))
            );
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn check_height(&self, h: usize, pos: Pos) -> PResult<()> {
        if h > MAX_DEPTH {
            return Err(
                self.err(pos, format!("expression is nested too deeply (more than {MAX_DEPTH} levels)"))
            );
        }
        Ok(())
    }

    // ---- query ------------------------------------------------------------

    fn query(&mut self) -> PResult<Query> {
        let content = self.content(Ctx::Root)?;
        let pipeline = match content {
            Content::Sp(sp) => match sp.e {
                // `( pipeline )` alone is the pipeline itself.
                SpansetExpr::Pipeline(p) => *p,
                e => Pipeline { pos: e.pos(), source: e, stages: Vec::new() },
            },
            Content::Pipeline(p, _) => *p,
            Content::Scalar(s, _) => {
                return Err(self
                    .err(s.pos(), "a scalar expression must be compared with a number, e.g. `count() > 1`"));
            }
        };
        let mut hints = Vec::new();
        let mut with = false;
        while self.is_ident("with") {
            // Tempo's `root: root hints` assigns: the last with() wins.
            hints = self.hints()?;
            with = true;
        }
        if *self.peek() != Tok::Eof {
            return Err(self.unexpected(if with {
                "'with(...)' or the end of the query"
            } else {
                "'|', 'with(...)' or the end of the query"
            }));
        }
        Ok(Query { pipeline, hints })
    }

    fn hints(&mut self) -> PResult<Vec<Hint>> {
        self.bump(); // with
        self.expect(Tok::LParen, "'(' after 'with'")?;
        let mut hints = Vec::new();
        loop {
            let start = self.pos();
            let name = match self.peek() {
                Tok::Ident(s) if !is_keyword(s) => s.clone(),
                _ => return Err(self.unexpected("a hint name")),
            };
            self.bump();
            self.expect(Tok::Eq, "'=' after the hint name")?;
            let (value, vpos) = self.hint_value()?;
            hints.push(Hint { name, value, pos: start.join(vpos) });
            if *self.peek() == Tok::Comma {
                self.bump();
            } else {
                break;
            }
        }
        self.expect(Tok::RParen, "',' or ')'")?;
        Ok(hints)
    }

    /// Tempo's `static`, without `nil` and without a sign.
    fn hint_value(&mut self) -> PResult<(Static, Pos)> {
        let pos = self.pos();
        let v = match self.peek() {
            Tok::Str(s) => Static::Str(s.clone()),
            Tok::Int(n) => Static::Int(*n),
            Tok::Float(f) => Static::Float(*f),
            Tok::Duration(d) => Static::Duration(*d),
            Tok::Ident(s) => match keyword_static(s) {
                Some(Static::Nil) | None => {
                    return Err(
                        self.unexpected("a hint value (a string, number, duration, boolean, status or kind)")
                    );
                }
                Some(v) => v,
            },
            _ => {
                return Err(
                    self.unexpected("a hint value (a string, number, duration, boolean, status or kind)")
                );
            }
        };
        self.bump();
        Ok((v, pos))
    }

    // ---- pipelines ----------------------------------------------------------

    /// The inside of a query or of parentheses at the spanset level.
    ///
    /// `content -> head -> head_operand -> operand -> content` is the
    /// recursion of nested parentheses; those functions are kept small (the
    /// other work is in separate functions) so that each level costs little
    /// stack, even in debug builds.
    fn content(&mut self, ctx: Ctx) -> PResult<Content> {
        self.enter()?;
        let head = self.head()?;
        let out = self.finish_content(head, ctx);
        self.leave();
        out
    }

    #[inline(never)]
    fn finish_content(&mut self, head: Head, ctx: Ctx) -> PResult<Content> {
        Ok(match head {
            Head::Sp(sp) if *self.peek() == Tok::Pipe => {
                if sp.kind == Level::Pipe {
                    return Err(self.err(
                        self.pos(),
                        "'|' cannot follow a parenthesised pipeline or a combination of them",
                    ));
                }
                let mut p = Pipeline { pos: sp.e.pos(), source: sp.e, stages: Vec::new() };
                let h = self.stages(&mut p, sp.h, ctx)?;
                Content::Pipeline(Box::new(p), h)
            }
            Head::Sp(sp) => Content::Sp(sp),
            Head::Stage(stage, h) => {
                let start = stage.pos().start;
                let mut p = Pipeline { pos: stage.pos(), source: always_true(start), stages: vec![*stage] };
                let h = self.stages(&mut p, h, ctx)?;
                Content::Pipeline(Box::new(p), h)
            }
            Head::Scalar(s, h) => Content::Scalar(s, h),
        })
    }

    fn head(&mut self) -> PResult<Head> {
        match self.peek() {
            Tok::LBrace | Tok::LParen => self.head_operand(),
            _ => self.head_other(),
        }
    }

    fn head_operand(&mut self) -> PResult<Head> {
        match self.operand()? {
            Operand::Sp(sp) => Ok(Head::Sp(self.climb_spanset(sp, 1)?)),
            Operand::Scalar(s, h) => self.scalar_filter_tail(s, h, false),
        }
    }

    #[inline(never)]
    fn head_other(&mut self) -> PResult<Head> {
        match self.peek() {
            Tok::Int(_) | Tok::Float(_) | Tok::Duration(_) | Tok::Sub => {
                let (s, h) = self.scalar_expr(0)?;
                self.scalar_filter_tail(s, h, false)
            }
            Tok::Ident(s) if AGGREGATES.contains(&s.as_str()) => {
                let (s, h) = self.scalar_expr(0)?;
                self.scalar_filter_tail(s, h, false)
            }
            Tok::Ident(s) if s == "by" => {
                let (st, h) = self.by()?;
                Ok(Head::Stage(Box::new(st), h))
            }
            Tok::Ident(s) if s == "select" => {
                let (st, h) = self.select()?;
                Ok(Head::Stage(Box::new(st), h))
            }
            Tok::Ident(s) if s == "coalesce" => {
                Err(self.err(self.pos(), "a pipeline cannot start with coalesce(); write `{ } | coalesce()`"))
            }
            Tok::Ident(s) if METRICS.iter().any(|(n, _)| n == s) || s == "topk" || s == "bottomk" => {
                Err(self.err(self.pos(), format!("{s}() needs a spanset before it, e.g. `{{ }} | {s}(...)`")))
            }
            _ => Err(self.unexpected("a spanset filter '{ ... }'")),
        }
    }

    /// `{ ... }` or a parenthesised group.
    fn operand(&mut self) -> PResult<Operand> {
        if *self.peek() == Tok::LBrace {
            return Ok(Operand::Sp(self.filter()?));
        }
        let lp = self.expect(Tok::LParen, "'{' or '('")?;
        let content = self.content(Ctx::Group)?;
        self.close_group(lp, content)
    }

    #[inline(never)]
    fn close_group(&mut self, lp: Pos, content: Content) -> PResult<Operand> {
        let rp = self.expect(Tok::RParen, "')'")?;
        let pos = lp.join(rp);
        Ok(match content {
            Content::Sp(mut sp) => {
                set_spanset_pos(&mut sp.e, pos);
                if sp.kind != Level::Pipe {
                    sp.kind = Level::Paren;
                }
                Operand::Sp(sp)
            }
            Content::Pipeline(mut p, h) => {
                p.pos = pos;
                let h = h + 1;
                self.check_height(h, pos)?;
                Operand::Sp(Sp { e: SpansetExpr::Pipeline(p), kind: Level::Pipe, h })
            }
            Content::Scalar(mut s, h) => {
                set_scalar_pos(&mut s, pos);
                Operand::Scalar(s, h)
            }
        })
    }

    fn spanset_operand(&mut self) -> PResult<Sp> {
        if !matches!(self.peek(), Tok::LBrace | Tok::LParen) {
            return Err(self.unexpected("a spanset filter '{ ... }' or '('"));
        }
        match self.operand()? {
            Operand::Sp(sp) => Ok(sp),
            Operand::Scalar(s, _) => {
                Err(self.err(s.pos(), "expected a spanset expression, found a scalar expression"))
            }
        }
    }

    /// Precedence climbing over spanset operators.
    ///
    /// As in Tempo's grammar, the first operand of a chain decides what the
    /// others may be: after a parenthesised pipeline (`(P) && ...`) every
    /// operand must be parenthesised (`({ .b })` or another `(P2)`); after
    /// anything else, no operand may be a parenthesised pipeline (Tempo
    /// reads `({ .a })` there as a plain spanset expression, after which a
    /// pipeline is a syntax error).
    fn climb_spanset(&mut self, lhs: Sp, min: u8) -> PResult<Sp> {
        let pipe_ctx = lhs.kind == Level::Pipe;
        self.climb_spanset_in(lhs, min, pipe_ctx)
    }

    fn climb_spanset_in(&mut self, mut lhs: Sp, min: u8, pipe_ctx: bool) -> PResult<Sp> {
        while let Some((op, level)) = spanset_binop(self.peek()) {
            if level < min {
                break;
            }
            self.bump();
            let rhs = self.spanset_operand()?;
            match (pipe_ctx, rhs.kind) {
                (true, Level::Bare) => {
                    return Err(self.err(
                        rhs.e.pos(),
                        "next to a parenthesised pipeline, spanset expressions must be parenthesised \
                         too, e.g. `({ .a } | count() > 1) && ({ .b })`",
                    ));
                }
                (false, Level::Pipe) => {
                    return Err(self.err(
                        rhs.e.pos(),
                        "a parenthesised pipeline can only be combined with spanset operators when \
                         the first operand is one too, e.g. `({ .a } | count() > 1) && ({ .b })`",
                    ));
                }
                _ => {}
            }
            let rhs = self.climb_spanset_in(rhs, level + 1, pipe_ctx)?;
            let pos = lhs.e.pos().join(rhs.e.pos());
            let h = 1 + lhs.h.max(rhs.h);
            self.check_height(h, pos)?;
            let kind = if pipe_ctx { Level::Pipe } else { Level::Bare };
            lhs = Sp {
                e: SpansetExpr::Binary { op, lhs: Box::new(lhs.e), rhs: Box::new(rhs.e), pos },
                kind,
                h,
            };
        }
        Ok(lhs)
    }

    fn filter(&mut self) -> PResult<Sp> {
        let lb = self.expect(Tok::LBrace, "'{'")?;
        if *self.peek() == Tok::RBrace {
            let pos = lb.join(self.bump().pos);
            let condition = FieldExpr::Static { value: Static::Bool(true), pos };
            return Ok(Sp { e: SpansetExpr::Filter { condition, pos }, kind: Level::Bare, h: 1 });
        }
        if *self.peek() == Tok::Eof {
            return Err(self.unexpected("a field expression or '}'"));
        }
        let (condition, h) = self.field_expr(0)?;
        let rb = self.expect(Tok::RBrace, "an operator or '}'")?;
        Ok(Sp { e: SpansetExpr::Filter { condition, pos: lb.join(rb) }, kind: Level::Bare, h: h + 1 })
    }

    /// Parses `| stage` elements until something else follows. Returns the
    /// height of the pipeline.
    fn stages(&mut self, p: &mut Pipeline, mut h: usize, ctx: Ctx) -> PResult<usize> {
        while *self.peek() == Tok::Pipe {
            self.bump();
            let (stage, sh) = match self.peek() {
                Tok::LBrace | Tok::LParen => match self.operand()? {
                    Operand::Sp(sp) => {
                        let sp = if sp.kind == Level::Pipe { sp } else { self.climb_spanset(sp, 1)? };
                        if sp.kind == Level::Pipe {
                            return Err(self.err(
                                sp.e.pos(),
                                "a parenthesised pipeline cannot be a pipeline stage; only spanset \
                                 expressions can follow '|'",
                            ));
                        }
                        let stage = match sp.e {
                            SpansetExpr::Filter { condition, pos } => Stage::Filter { condition, pos },
                            e => Stage::Spanset { pos: e.pos(), expr: e },
                        };
                        (stage, sp.h)
                    }
                    Operand::Scalar(s, sh) => match self.scalar_filter_tail(s, sh, true)? {
                        Head::Stage(st, sh) => (*st, sh),
                        _ => unreachable!("scalar_filter_tail(required) returns a stage"),
                    },
                },
                Tok::Int(_) | Tok::Float(_) | Tok::Duration(_) | Tok::Sub => {
                    let (s, sh) = self.scalar_expr(0)?;
                    match self.scalar_filter_tail(s, sh, true)? {
                        Head::Stage(st, sh) => (*st, sh),
                        _ => unreachable!(),
                    }
                }
                Tok::Ident(s) if AGGREGATES.contains(&s.as_str()) => {
                    let (s, sh) = self.scalar_expr(0)?;
                    match self.scalar_filter_tail(s, sh, true)? {
                        Head::Stage(st, sh) => (*st, sh),
                        _ => unreachable!(),
                    }
                }
                Tok::Ident(s) if s == "by" => self.by()?,
                Tok::Ident(s) if s == "select" => self.select()?,
                Tok::Ident(s) if s == "coalesce" => {
                    let start = self.bump().pos;
                    self.expect(Tok::LParen, "'(' after 'coalesce'")?;
                    let end = self.expect(Tok::RParen, "')' (coalesce() takes no argument)")?;
                    (Stage::Coalesce { pos: start.join(end) }, 1)
                }
                Tok::Ident(s) if METRICS.iter().any(|(n, _)| n == s) => {
                    if ctx == Ctx::Group {
                        return Err(
                            self.err(self.pos(), "metrics functions cannot be used inside parentheses")
                        );
                    }
                    let (m, mh) = self.metrics()?;
                    p.stages.push(Stage::Metrics(m));
                    h = h.max(mh);
                    self.second_stage(p)?;
                    break;
                }
                Tok::Ident(s) if s == "topk" || s == "bottomk" => {
                    return Err(self.err(
                        self.pos(),
                        format!("{s}() can only follow a metrics function such as rate()"),
                    ));
                }
                _ => return Err(self.unexpected("a pipeline stage")),
            };
            h = h.max(sh + 1);
            self.check_height(h, stage.pos())?;
            p.stages.push(stage);
        }
        if let Some(last) = p.stages.last() {
            p.pos = p.pos.join(last.pos());
        }
        Ok(h)
    }

    /// After a scalar expression: the comparison that makes it a scalar
    /// filter. Without one, a bare scalar is returned unless `required`.
    fn scalar_filter_tail(&mut self, lhs: ScalarExpr, h: usize, required: bool) -> PResult<Head> {
        let (lhs, h) = self.climb_scalar(lhs, h, 0)?;
        let Some(op) = comparison(self.peek()) else {
            if required {
                return Err(self.unexpected(
                    "a comparison (= != < <= > >=) after the scalar expression \
                     (scalar pipelines such as `({ } | count())` are not supported)",
                ));
            }
            return Ok(Head::Scalar(lhs, h));
        };
        self.bump();
        let (rhs, rh) = self.scalar_expr(0)?;
        let pos = lhs.pos().join(rhs.pos());
        let h = 1 + h.max(rh);
        self.check_height(h, pos)?;
        Ok(Head::Stage(Box::new(Stage::ScalarFilter { lhs, op, rhs, pos }), h))
    }

    fn by(&mut self) -> PResult<(Stage, usize)> {
        let start = self.bump().pos;
        self.expect(Tok::LParen, "'(' after 'by'")?;
        if *self.peek() == Tok::RParen {
            return Err(self.err(self.pos(), "by() needs a field expression"));
        }
        let (e, h) = self.field_expr(0)?;
        if *self.peek() == Tok::Comma {
            return Err(self.err(self.pos(), "by() takes exactly one field expression"));
        }
        let end = self.expect(Tok::RParen, "an operator or ')'")?;
        Ok((Stage::By { exprs: vec![e], pos: start.join(end) }, h + 1))
    }

    fn select(&mut self) -> PResult<(Stage, usize)> {
        let start = self.bump().pos;
        self.expect(Tok::LParen, "'(' after 'select'")?;
        if *self.peek() == Tok::RParen {
            return Err(self.err(self.pos(), "select() needs at least one attribute"));
        }
        let exprs = self.attribute_list()?;
        let end = self.expect(Tok::RParen, "',' or ')'")?;
        Ok((Stage::Select { exprs, pos: start.join(end) }, 2))
    }

    fn attribute_list(&mut self) -> PResult<Vec<FieldExpr>> {
        let mut v = vec![self.attribute_ref()?];
        while *self.peek() == Tok::Comma {
            self.bump();
            v.push(self.attribute_ref()?);
        }
        Ok(v)
    }

    // ---- metrics ------------------------------------------------------------

    fn metrics(&mut self) -> PResult<(MetricsAggregate, usize)> {
        let t = self.bump();
        let Tok::Ident(name) = &t.tok else { unreachable!() };
        let op = METRICS.iter().find(|(n, _)| n == name).map(|(_, op)| *op).expect("checked by caller");
        self.expect(Tok::LParen, &format!("'(' after '{name}'"))?;
        let (mut attr, mut quantiles, mut compare) = (None, Vec::new(), None);
        let mut h = 1;
        match op {
            MetricsOp::Rate | MetricsOp::CountOverTime => {}
            MetricsOp::MinOverTime
            | MetricsOp::MaxOverTime
            | MetricsOp::AvgOverTime
            | MetricsOp::SumOverTime
            | MetricsOp::HistogramOverTime => {
                if *self.peek() == Tok::RParen {
                    return Err(
                        self.err(self.pos(), format!("{name}() needs an attribute, e.g. {name}(duration)"))
                    );
                }
                attr = Some(self.attribute_ref()?);
            }
            MetricsOp::QuantileOverTime => {
                if *self.peek() == Tok::RParen {
                    return Err(self.err(self.pos(), "quantile_over_time() needs an attribute and quantiles, e.g. quantile_over_time(duration, .99)"));
                }
                attr = Some(self.attribute_ref()?);
                if *self.peek() != Tok::Comma {
                    return Err(self.unexpected("',' and at least one quantile"));
                }
                while *self.peek() == Tok::Comma {
                    self.bump();
                    match *self.peek() {
                        Tok::Int(n) => quantiles.push(n as f64),
                        Tok::Float(f) => quantiles.push(f),
                        _ => return Err(self.unexpected("a quantile (a number between 0 and 1)")),
                    }
                    self.bump();
                }
            }
            MetricsOp::Compare => {
                if *self.peek() != Tok::LBrace {
                    return Err(self.unexpected("a spanset filter '{ ... }'"));
                }
                let sp = self.filter()?;
                h = sp.h + 1;
                let mut ints = Vec::new();
                while *self.peek() == Tok::Comma && ints.len() < 3 {
                    self.bump();
                    match *self.peek() {
                        Tok::Int(n) => ints.push(n),
                        _ => return Err(self.unexpected("an integer")),
                    }
                    self.bump();
                }
                if ints.len() == 2 {
                    return Err(self.unexpected(
                        "',' and the end timestamp (compare() takes both start and end, or neither)",
                    ));
                }
                compare = Some(CompareArgs {
                    selection: Box::new(sp.e),
                    top_n: ints.first().copied(),
                    start: ints.get(1).copied(),
                    end: ints.get(2).copied(),
                });
            }
        }
        let mut end = self.expect(Tok::RParen, "')'")?;
        let mut by = Vec::new();
        if self.is_ident("by") {
            if op == MetricsOp::Compare {
                return Err(self.err(self.pos(), "compare() does not take by()"));
            }
            self.bump();
            self.expect(Tok::LParen, "'(' after 'by'")?;
            if *self.peek() == Tok::RParen {
                return Err(self.err(self.pos(), "by() needs at least one attribute"));
            }
            by = self.attribute_list()?;
            end = self.expect(Tok::RParen, "',' or ')'")?;
        }
        let m = MetricsAggregate { op, attr, quantiles, compare, by, pos: t.pos.join(end) };
        Ok((m, h + 1))
    }

    /// `| topk(n)`, `| bottomk(n)` and `<cmp> number` after a metrics function.
    fn second_stage(&mut self, p: &mut Pipeline) -> PResult<()> {
        loop {
            if let Some(op) = comparison(self.peek()) {
                let start = self.bump().pos;
                let (value, vpos) = self.signed_number()?;
                p.stages.push(Stage::MetricsFilter { op, value, pos: start.join(vpos) });
            } else if *self.peek() == Tok::Pipe {
                let bottom = match self.peek_nth(1) {
                    Tok::Ident(s) if s == "topk" => false,
                    Tok::Ident(s) if s == "bottomk" => true,
                    _ => {
                        self.bump();
                        return Err(self.unexpected(
                            "topk() or bottomk(): only they or a comparison can follow a metrics function",
                        ));
                    }
                };
                self.bump();
                let start = self.bump().pos;
                self.expect(Tok::LParen, "'('")?;
                let n = match *self.peek() {
                    Tok::Int(n) => n,
                    _ => return Err(self.unexpected("an integer")),
                };
                self.bump();
                let end = self.expect(Tok::RParen, "')'")?;
                p.stages.push(Stage::TopK { bottom, n, pos: start.join(end) });
            } else {
                return Ok(());
            }
        }
    }

    /// `[-] (INT | FLOAT | DURATION)`, as a (possibly negative) static.
    fn signed_number(&mut self) -> PResult<(Static, Pos)> {
        let start = self.pos();
        let neg = *self.peek() == Tok::Sub;
        if neg {
            self.bump();
        }
        let v = match *self.peek() {
            Tok::Int(n) => Static::Int(if neg { -n } else { n }),
            Tok::Float(f) => Static::Float(if neg { -f } else { f }),
            Tok::Duration(d) => Static::Duration(if neg { -d } else { d }),
            _ => return Err(self.unexpected("a number or a duration")),
        };
        let end = self.bump().pos;
        Ok((v, start.join(end)))
    }

    // ---- scalar expressions -------------------------------------------------

    fn scalar_expr(&mut self, min: u8) -> PResult<(ScalarExpr, usize)> {
        self.enter()?;
        let (lhs, h) = self.scalar_operand()?;
        let out = self.climb_scalar(lhs, h, min)?;
        self.leave();
        Ok(out)
    }

    fn climb_scalar(&mut self, mut lhs: ScalarExpr, mut h: usize, min: u8) -> PResult<(ScalarExpr, usize)> {
        while let Some((op, level, right)) = scalar_binop(self.peek()) {
            if level < min {
                break;
            }
            self.bump();
            let (rhs, rh) = self.scalar_expr(if right { level } else { level + 1 })?;
            let pos = lhs.pos().join(rhs.pos());
            h = 1 + h.max(rh);
            self.check_height(h, pos)?;
            lhs = ScalarExpr::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs), pos };
        }
        Ok((lhs, h))
    }

    fn scalar_operand(&mut self) -> PResult<(ScalarExpr, usize)> {
        match self.peek() {
            Tok::Ident(s) if AGGREGATES.contains(&s.as_str()) => self.aggregate(),
            Tok::Int(_) | Tok::Float(_) | Tok::Duration(_) | Tok::Sub => {
                let (value, pos) = self.signed_number()?;
                Ok((ScalarExpr::Static { value, pos }, 1))
            }
            Tok::LParen => match self.operand()? {
                Operand::Scalar(s, h) => Ok((s, h)),
                Operand::Sp(sp) => {
                    Err(self.err(sp.e.pos(), "expected a scalar expression (an aggregate or a number)"))
                }
            },
            _ => Err(self.unexpected("an aggregate such as count() or avg(duration), or a number")),
        }
    }

    fn aggregate(&mut self) -> PResult<(ScalarExpr, usize)> {
        let t = self.bump();
        let Tok::Ident(name) = &t.tok else { unreachable!() };
        let op = match name.as_str() {
            "count" => AggregateOp::Count,
            "avg" => AggregateOp::Avg,
            "min" => AggregateOp::Min,
            "max" => AggregateOp::Max,
            _ => AggregateOp::Sum,
        };
        self.expect(Tok::LParen, &format!("'(' after '{name}'"))?;
        if op == AggregateOp::Count {
            if *self.peek() != Tok::RParen {
                return Err(self.err(self.pos(), "count() takes no argument"));
            }
            let end = self.bump().pos;
            return Ok((ScalarExpr::Aggregate { op, arg: None, pos: t.pos.join(end) }, 1));
        }
        if *self.peek() == Tok::RParen {
            return Err(
                self.err(self.pos(), format!("{name}() needs a field expression, e.g. {name}(duration)"))
            );
        }
        let (arg, h) = self.field_expr(0)?;
        if *self.peek() == Tok::Comma {
            return Err(self.err(self.pos(), format!("{name}() takes exactly one field expression")));
        }
        let end = self.expect(Tok::RParen, "an operator or ')'")?;
        Ok((ScalarExpr::Aggregate { op, arg: Some(arg), pos: t.pos.join(end) }, h + 1))
    }

    // ---- field expressions --------------------------------------------------

    fn field_expr(&mut self, min: u8) -> PResult<(FieldExpr, usize)> {
        self.enter()?;
        let (mut lhs, mut h) = self.field_prefix()?;
        while let Some((op, level, right)) = field_binop(self.peek()) {
            if level < min {
                break;
            }
            self.bump();
            let (rhs, rh) = self.field_expr(if right { level } else { level + 1 })?;
            let pos = lhs.pos().join(rhs.pos());
            h = 1 + h.max(rh);
            self.check_height(h, pos)?;
            lhs = FieldExpr::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs), pos };
        }
        self.leave();
        Ok((lhs, h))
    }

    fn field_prefix(&mut self) -> PResult<(FieldExpr, usize)> {
        let start = self.pos();
        let (op, min) = match self.peek() {
            // Prefix `-` has the precedence of binary `-`: it takes `* / % ^`
            // with it (`-a * b` is `-(a * b)`); prefix `!` sits between `+ -`
            // and `* / %`.
            Tok::Sub => (UnaryOp::Neg, 4),
            Tok::Not => (UnaryOp::Not, 5),
            Tok::LParen => {
                self.bump();
                let (mut e, h) = self.field_expr(0)?;
                let end = self.expect(Tok::RParen, "an operator or ')'")?;
                if matches!(e, FieldExpr::Static { value: Static::Nil, .. }) {
                    return Err(self.err(e.pos(), "nil cannot be parenthesised"));
                }
                set_field_pos(&mut e, start.join(end));
                return Ok((e, h));
            }
            _ => return Ok((self.field_primary()?, 1)),
        };
        self.bump();
        let (e, h) = self.field_expr(min)?;
        let pos = start.join(e.pos());
        let h = h + 1;
        self.check_height(h, pos)?;
        Ok((FieldExpr::Unary { op, expr: Box::new(e), pos }, h))
    }

    fn field_primary(&mut self) -> PResult<FieldExpr> {
        let pos = self.pos();
        let e = match self.peek() {
            Tok::Str(s) => FieldExpr::Static { value: Static::Str(s.clone()), pos },
            Tok::Int(n) => FieldExpr::Static { value: Static::Int(*n), pos },
            Tok::Float(f) => FieldExpr::Static { value: Static::Float(*f), pos },
            Tok::Duration(d) => FieldExpr::Static { value: Static::Duration(*d), pos },
            Tok::Attr { scope, name } => {
                FieldExpr::Attribute { attr: Attribute { scope: *scope, name: name.clone() }, pos }
            }
            Tok::ScopeColon(_) => return self.scoped_intrinsic(),
            Tok::ParentAttr(_) => return Err(self.err(pos, "the parent. scope is not supported")),
            Tok::Ident(s) => {
                if let Some(value) = keyword_static(s) {
                    FieldExpr::Static { value, pos }
                } else if let Some(intrinsic) = bare_intrinsic(s) {
                    FieldExpr::Intrinsic { intrinsic, pos }
                } else {
                    return Err(self.ident_error(s, "a field expression"));
                }
            }
            _ => return Err(self.unexpected("a field expression")),
        };
        self.bump();
        Ok(e)
    }

    fn ident_error(&self, s: &str, expected: &str) -> ParseError {
        let pos = self.pos();
        match s {
            "parent" => self.err(pos, "the parent intrinsic is not supported"),
            "childCount" => self.err(pos, "childCount must be written span:childCount"),
            "rootService" | "id" | "traceID" | "spanID" | "parentID" | "timeSinceStart" | "version" => {
                self.err(pos, format!("'{s}' is an intrinsic only with a scope, e.g. span:id or trace:rootService"))
            }
            "span" | "resource" | "event" | "link" | "instrumentation" | "trace" => self.err(
                pos,
                format!("'{s}' must be followed directly by '.' (an attribute) or ':' (an intrinsic), e.g. {s}.name"),
            ),
            _ if is_keyword(s) => self.unexpected(expected),
            // `foo.bar`: an attribute with an unknown scope.
            _ if matches!(&self.peek_nth(1), Tok::Attr { scope: AttrScope::Unscoped, .. })
                && self.toks[self.i + 1].pos.start == pos.end =>
            {
                self.err(
                    pos.join(self.toks[self.i + 1].pos),
                    format!(
                        "unknown attribute scope '{s}.' (scopes are span., resource., event., link., \
                         instrumentation. and . for span or resource)"
                    ),
                )
            }
            _ => self.err(pos, format!("unknown identifier '{s}' (attributes are written .{s}, span.{s} or resource.{s})")),
        }
    }

    /// `span:duration` and friends (a space after the colon is allowed, as
    /// in Tempo).
    fn scoped_intrinsic(&mut self) -> PResult<FieldExpr> {
        let t = self.bump();
        let Tok::ScopeColon(scope) = t.tok else { unreachable!() };
        let name_pos = self.pos();
        let Tok::Ident(name) = self.peek() else {
            return Err(self.unexpected(&format!("an intrinsic name after '{}:'", scope.as_str())));
        };
        let pos = t.pos.join(name_pos);
        let Some(intrinsic) = scoped_intrinsic(scope, name) else {
            return Err(self.err(pos, format!("unknown intrinsic '{}:{name}'", scope.as_str())));
        };
        self.bump();
        Ok(FieldExpr::Intrinsic { intrinsic, pos })
    }

    /// An attribute or intrinsic, nothing else (`select`, metrics arguments
    /// and metrics `by`).
    fn attribute_ref(&mut self) -> PResult<FieldExpr> {
        let pos = self.pos();
        match self.peek() {
            Tok::Attr { scope, name } => {
                let e = FieldExpr::Attribute { attr: Attribute { scope: *scope, name: name.clone() }, pos };
                self.bump();
                Ok(e)
            }
            Tok::ScopeColon(_) => self.scoped_intrinsic(),
            Tok::ParentAttr(_) => Err(self.err(pos, "the parent. scope is not supported")),
            Tok::Ident(s) => match bare_intrinsic(s) {
                Some(intrinsic) => {
                    self.bump();
                    Ok(FieldExpr::Intrinsic { intrinsic, pos })
                }
                None => Err(self.ident_error(&s.clone(), "an attribute or an intrinsic")),
            },
            _ => Err(self.unexpected("an attribute or an intrinsic")),
        }
    }
}

/// Keyword literals: booleans, nil, statuses, kinds, minInt, maxInt.
fn keyword_static(s: &str) -> Option<Static> {
    Some(match s {
        "true" => Static::Bool(true),
        "false" => Static::Bool(false),
        "nil" => Static::Nil,
        "ok" => Static::Status(Status::Ok),
        "error" => Static::Status(Status::Error),
        "unset" => Static::Status(Status::Unset),
        "unspecified" => Static::Kind(Kind::Unspecified),
        "internal" => Static::Kind(Kind::Internal),
        "server" => Static::Kind(Kind::Server),
        "client" => Static::Kind(Kind::Client),
        "producer" => Static::Kind(Kind::Producer),
        "consumer" => Static::Kind(Kind::Consumer),
        "minInt" => Static::Int(i64::MIN),
        "maxInt" => Static::Int(i64::MAX),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    /// The condition of the first filter, fully parenthesised (not
    /// validated: some of these are type errors).
    fn cond(q: &str) -> String {
        let q = parse_unvalidated(q).unwrap_or_else(|e| panic!("{q}: {e}"));
        match q.pipeline.source {
            SpansetExpr::Filter { condition, .. } => full(&condition),
            other => panic!("not a filter: {other:?}"),
        }
    }

    fn full(e: &FieldExpr) -> String {
        match e {
            FieldExpr::Binary { op, lhs, rhs, .. } => format!("({} {op} {})", full(lhs), full(rhs)),
            FieldExpr::Unary { op: UnaryOp::Neg, expr, .. } => format!("(-{})", full(expr)),
            FieldExpr::Unary { op: UnaryOp::Not, expr, .. } => format!("(!{})", full(expr)),
            other => other.to_string(),
        }
    }

    fn spanset(e: &SpansetExpr) -> String {
        match e {
            SpansetExpr::Binary { op, lhs, rhs, .. } => format!("({} {op} {})", spanset(lhs), spanset(rhs)),
            SpansetExpr::Filter { condition, .. } => format!("{{{}}}", full(condition)),
            SpansetExpr::Pipeline(p) => format!("[{p}]"),
        }
    }

    fn source(q: &str) -> String {
        spanset(&parse(q).unwrap_or_else(|e| panic!("{q}: {e}")).pipeline.source)
    }

    #[test]
    fn field_precedence() {
        // `&&` and `||` share one level, left-associative, as in Tempo.
        assert_eq!(cond("{ .a || .b && .c }"), "((.a || .b) && .c)");
        assert_eq!(cond("{ .a && .b || .c }"), "((.a && .b) || .c)");
        assert_eq!(cond("{ .a = 1 || .b = 2 && .c = 3 }"), "(((.a = 1) || (.b = 2)) && (.c = 3))");
        // Comparisons chain left to right.
        assert_eq!(cond("{ .a = .b = .c }"), "((.a = .b) = .c)");
        assert_eq!(cond("{ .a < .b != .c }"), "((.a < .b) != .c)");
        // Arithmetic.
        assert_eq!(cond("{ .a + .b * .c = 1 }"), "((.a + (.b * .c)) = 1)");
        assert_eq!(cond("{ 1 - 2 - 3 = .a }"), "(((1 - 2) - 3) = .a)");
        assert_eq!(cond("{ 8 / 4 % 3 = .a }"), "(((8 / 4) % 3) = .a)");
        assert_eq!(cond("{ 2 ^ 3 ^ 2 = .a }"), "((2 ^ (3 ^ 2)) = .a)");
        assert_eq!(cond("{ 2 * 3 ^ 2 = .a }"), "((2 * (3 ^ 2)) = .a)");
        // Prefix `-`: looser than `* / % ^`, as loose as binary `-`.
        assert_eq!(cond("{ -2 ^ 2 = .a }"), "((-(2 ^ 2)) = .a)");
        assert_eq!(cond("{ -.a * 2 = 1 }"), "((-(.a * 2)) = 1)");
        assert_eq!(cond("{ -.a + 2 = 1 }"), "(((-.a) + 2) = 1)");
        assert_eq!(cond("{ .a = -1 }"), "(.a = (-1))");
        assert_eq!(cond("{ 1 - -1 = .a }"), "((1 - (-1)) = .a)");
        // Prefix `!`: tighter than comparisons and `+ -`, looser than `* / % ^`.
        assert_eq!(cond("{ !.a = 1 }"), "((!.a) = 1)");
        assert_eq!(cond("{ !.a + 2 = 1 }"), "(((!.a) + 2) = 1)");
        assert_eq!(cond("{ !.a * 2 = 1 }"), "((!(.a * 2)) = 1)");
        assert_eq!(cond("{ !.a ^ 2 = 1 }"), "((!(.a ^ 2)) = 1)");
        assert_eq!(cond("{ !.a && .b }"), "((!.a) && .b)");
        assert_eq!(cond("{ !!.a }"), "(!(!.a))");
        assert_eq!(cond("{ -!.a }"), "(-(!.a))");
        assert_eq!(cond("{ !(.a = 1) }"), "(!(.a = 1))");
        // nil is an ordinary operand of = and != on either side.
        assert_eq!(cond("{ nil = .a + 1 }"), "(nil = (.a + 1))");
        assert_eq!(cond("{ .a + 1 != nil }"), "((.a + 1) != nil)");
        // Parentheses only group.
        assert_eq!(cond("{ ((.a)) = (1) }"), "(.a = 1)");
    }

    #[test]
    fn spanset_precedence_and_operators() {
        assert_eq!(source("{ .a } || { .b } && { .c }"), "(({.a} || {.b}) && {.c})");
        assert_eq!(source("{ .a } && { .b } >> { .c }"), "({.a} && ({.b} >> {.c}))");
        assert_eq!(source("{ .a } >> { .b } && { .c }"), "(({.a} >> {.b}) && {.c})");
        assert_eq!(source("{ .a } > { .b } < { .c }"), "(({.a} > {.b}) < {.c})");
        assert_eq!(source("{ .a } && ({ .b } || { .c })"), "({.a} && ({.b} || {.c}))");
        use SpansetOp as O;
        use Structural as S;
        for (text, op) in [
            ("&&", O::And),
            ("||", O::Or),
            (">>", O::Structural(S::Descendant)),
            (">", O::Structural(S::Child)),
            ("<<", O::Structural(S::Ancestor)),
            ("<", O::Structural(S::Parent)),
            ("~", O::Structural(S::Sibling)),
            ("!>>", O::NotStructural(S::Descendant)),
            ("!>", O::NotStructural(S::Child)),
            ("!<<", O::NotStructural(S::Ancestor)),
            ("!<", O::NotStructural(S::Parent)),
            ("!~", O::NotStructural(S::Sibling)),
            ("&>>", O::UnionStructural(S::Descendant)),
            ("&>", O::UnionStructural(S::Child)),
            ("&<<", O::UnionStructural(S::Ancestor)),
            ("&<", O::UnionStructural(S::Parent)),
            ("&~", O::UnionStructural(S::Sibling)),
        ] {
            let q = parse(&format!("{{ .a }} {text} {{ .b }}")).unwrap();
            match q.pipeline.source {
                SpansetExpr::Binary { op: got, .. } => assert_eq!(got, op, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
            // Without spaces too.
            assert!(parse(&format!("{{.a}}{text}{{.b}}")).is_ok(), "{text}");
        }
    }

    #[test]
    fn parenthesised_pipelines() {
        assert_eq!(source("({ .a } | count() > 1) && ({ .b })"), "([{ .a } | count() > 1] && {.b})");
        // A root `( pipeline )` is the pipeline itself.
        let q = parse("({ .a } | count() > 1)").unwrap();
        assert_eq!(q.pipeline.stages.len(), 1);
        assert_eq!(q.to_string(), "{ .a } | count() > 1");
        // Mixing with a bare filter or piping after it is refused, as in Tempo.
        assert!(parse("({ .a } | count() > 1) && { .b }").is_err());
        assert!(parse("({ .b }) && ({ .a } | count() > 1)").is_err());
        assert!(parse("({ .a } | count() > 1) && ({ .b }) >> ({ .c } | count() > 1)").is_ok());
        assert!(parse("({ .a } | count() > 1) | by(.b)").is_err());
        // Parenthesised spanset expressions are fine everywhere.
        assert!(parse("({ .a } && { .b }) | count() > 1").is_ok());
    }

    #[test]
    fn empty_filter_and_stage_heads() {
        let q = parse("{ }").unwrap();
        let SpansetExpr::Filter { condition, pos } = &q.pipeline.source else { panic!() };
        assert_eq!(*pos, Pos::new(0, 3));
        assert!(matches!(condition, FieldExpr::Static { value: Static::Bool(true), .. }));
        // A query starting with a stage gets a zero-width `{ }` source.
        let q = parse("count() > 1 | by(.a)").unwrap();
        assert_eq!(q.pipeline.source, always_true(0));
        assert!(matches!(q.pipeline.stages[0], Stage::ScalarFilter { op: BinaryOp::Gt, .. }));
        assert!(matches!(&q.pipeline.stages[1], Stage::By { exprs, .. } if exprs.len() == 1));
        assert_eq!(q.pipeline.pos, Pos::new(0, 20));
        let q = parse("  select(.a, span:id)").unwrap();
        assert_eq!(q.pipeline.source, always_true(2));
        assert_eq!(q.to_string(), "{ } | select(.a, span:id)");
    }

    #[test]
    fn positions() {
        let src = "{ .a = 1 } | count() > 2 | { (span.b) } with(sample=0.5)";
        let q = parse(src).unwrap();
        let SpansetExpr::Filter { condition, pos } = &q.pipeline.source else { panic!() };
        assert_eq!(&src[pos.start..pos.end], "{ .a = 1 }");
        let FieldExpr::Binary { lhs, rhs, pos, .. } = condition else { panic!() };
        assert_eq!(&src[pos.start..pos.end], ".a = 1");
        assert_eq!(&src[lhs.pos().start..lhs.pos().end], ".a");
        assert_eq!(&src[rhs.pos().start..rhs.pos().end], "1");
        let Stage::ScalarFilter { lhs, rhs, pos, .. } = &q.pipeline.stages[0] else { panic!() };
        assert_eq!(&src[pos.start..pos.end], "count() > 2");
        assert_eq!(&src[lhs.pos().start..lhs.pos().end], "count()");
        assert_eq!(&src[rhs.pos().start..rhs.pos().end], "2");
        let Stage::Filter { condition, pos } = &q.pipeline.stages[1] else { panic!() };
        assert_eq!(&src[pos.start..pos.end], "{ (span.b) }");
        // Parentheses belong to the node they wrap.
        assert_eq!(&src[condition.pos().start..condition.pos().end], "(span.b)");
        assert_eq!(&src[q.pipeline.pos.start..q.pipeline.pos.end], "{ .a = 1 } | count() > 2 | { (span.b) }");
        let h = &q.hints[0];
        assert_eq!(&src[h.pos.start..h.pos.end], "sample=0.5");

        let src = "{ span:duration > 1s } | rate() by (resource.service.name) | topk(3) > 1";
        let q = parse(src).unwrap();
        let SpansetExpr::Filter { condition: FieldExpr::Binary { lhs, .. }, .. } = &q.pipeline.source else {
            panic!()
        };
        assert_eq!(&src[lhs.pos().start..lhs.pos().end], "span:duration");
        let texts: Vec<&str> = q.pipeline.stages.iter().map(|s| &src[s.pos().start..s.pos().end]).collect();
        assert_eq!(texts, ["rate() by (resource.service.name)", "topk(3)", "> 1"]);
    }

    #[test]
    fn error_positions() {
        let e = parse("{ .a = }").unwrap_err();
        assert_eq!((e.pos, e.line, e.column), (Pos::new(7, 8), 1, 8));
        assert_eq!(e.to_string(), "1:8: unexpected token '}', expected a field expression");
        let e = parse("{ .a = 1 &&\n  status > ok }").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        let e = parse("{ span:foo = 1 }").unwrap_err();
        assert_eq!(e.pos, Pos::new(2, 10));
        let e = parse("{ .a = 1 ").unwrap_err();
        assert_eq!(e.pos, Pos::new(9, 9));
        assert!(e.message.starts_with("unexpected end of query"));
        // A syntax error before a lexical error is reported first.
        let e = parse("{ .a = } \"unterminated").unwrap_err();
        assert_eq!(e.pos.start, 7);
    }

    #[test]
    fn literals() {
        let lit = |q: &str| match parse(q).unwrap().pipeline.source {
            SpansetExpr::Filter { condition: FieldExpr::Binary { rhs, .. }, .. } => match *rhs {
                FieldExpr::Static { value, .. } => value,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        };
        assert_eq!(lit(r#"{ .a = "a\"b\\c\n" }"#), Static::Str("a\"b\\c\n".into()));
        assert_eq!(lit(r#"{ .a = `a\"b` }"#), Static::Str("a\\\"b".into()));
        assert_eq!(lit("{ .a = 1h30m }"), Static::Duration(5_400_000_000_000));
        assert_eq!(lit("{ .a = 1.5s }"), Static::Duration(1_500_000_000));
        assert_eq!(lit("{ .a = 250us }"), Static::Duration(250_000));
        assert_eq!(lit("{ .a = 2d }"), Static::Duration(2 * 86_400_000_000_000));
        assert_eq!(lit("{ .a = 42 }"), Static::Int(42));
        assert_eq!(lit("{ .a = .25 }"), Static::Float(0.25));
        assert_eq!(lit("{ .a = minInt }"), Static::Int(i64::MIN));
        assert_eq!(lit("{ .a = maxInt }"), Static::Int(i64::MAX));
        assert_eq!(lit("{ .a = nil }"), Static::Nil);
        assert_eq!(lit("{ .a = unspecified }"), Static::Kind(Kind::Unspecified));
        assert_eq!(lit("{ .a = unset }"), Static::Status(Status::Unset));
        // Negative numbers in field expressions are `-` applied to a literal.
        assert_eq!(cond("{ .a = -5s }"), "(.a = (-5s))");
    }

    #[test]
    fn attributes_and_intrinsics() {
        let lhs = |q: &str| match parse(q).unwrap().pipeline.source {
            SpansetExpr::Filter { condition: FieldExpr::Binary { lhs, .. }, .. } => *lhs,
            other => panic!("{other:?}"),
        };
        let attr = |scope, name: &str| Attribute { scope, name: name.into() };
        assert!(
            matches!(lhs("{ .a = 1 }"), FieldExpr::Attribute { attr: a, .. } if a == attr(AttrScope::Unscoped, "a"))
        );
        assert!(
            matches!(lhs("{ resource.service.name = 1 }"), FieldExpr::Attribute { attr: a, .. } if a == attr(AttrScope::Resource, "service.name"))
        );
        assert!(
            matches!(lhs(r#"{ span."a b".c = 1 }"#), FieldExpr::Attribute { attr: a, .. } if a == attr(AttrScope::Span, "a b.c"))
        );
        // `.duration` is an attribute named duration, `duration` the intrinsic.
        assert!(
            matches!(lhs("{ .duration = 1 }"), FieldExpr::Attribute { attr: a, .. } if a == attr(AttrScope::Unscoped, "duration"))
        );
        assert!(
            matches!(lhs("{ span.duration = 1 }"), FieldExpr::Attribute { attr: a, .. } if a == attr(AttrScope::Span, "duration"))
        );
        for (q, i) in [
            ("duration", Intrinsic::Duration),
            ("span:duration", Intrinsic::Duration),
            ("name", Intrinsic::Name),
            ("statusMessage", Intrinsic::StatusMessage),
            ("rootServiceName", Intrinsic::RootServiceName),
            ("trace:rootService", Intrinsic::RootServiceName),
            ("traceDuration", Intrinsic::TraceDuration),
            ("trace:duration", Intrinsic::TraceDuration),
            ("trace:id", Intrinsic::TraceId),
            ("span:parentID", Intrinsic::ParentId),
            ("span:childCount", Intrinsic::ChildCount),
            ("event:timeSinceStart", Intrinsic::EventTimeSinceStart),
            ("link:spanID", Intrinsic::LinkSpanId),
            ("instrumentation:version", Intrinsic::InstrumentationVersion),
            ("nestedSetParent", Intrinsic::NestedSetParent),
            ("span: name", Intrinsic::Name),
        ] {
            let got = lhs(&format!("{{ {q} != nil }}"));
            assert!(matches!(got, FieldExpr::Intrinsic { intrinsic, .. } if intrinsic == i), "{q}: {got:?}");
        }
    }

    #[test]
    fn pipelines_and_metrics() {
        let q = parse(
            "{ } | quantile_over_time(duration, .99, 0.5, 1) by (resource.service.name, span:kind) \
             | topk(5) > 1.5 | bottomk(2) <= -1s with(sample=0.1)",
        )
        .unwrap();
        let Stage::Metrics(m) = &q.pipeline.stages[0] else { panic!() };
        assert_eq!(m.op, MetricsOp::QuantileOverTime);
        assert_eq!(m.quantiles, vec![0.99, 0.5, 1.0]);
        assert_eq!(m.by.len(), 2);
        assert!(matches!(q.pipeline.stages[1], Stage::TopK { bottom: false, n: 5, .. }));
        assert!(
            matches!(q.pipeline.stages[2], Stage::MetricsFilter { op: BinaryOp::Gt, value: Static::Float(v), .. } if v == 1.5)
        );
        assert!(matches!(q.pipeline.stages[3], Stage::TopK { bottom: true, n: 2, .. }));
        assert!(matches!(
            q.pipeline.stages[4],
            Stage::MetricsFilter { op: BinaryOp::Lte, value: Static::Duration(-1_000_000_000), .. }
        ));

        let q = parse("{ } | compare({ status = error }, 5, 10, 20)").unwrap();
        let Stage::Metrics(m) = &q.pipeline.stages[0] else { panic!() };
        let c = m.compare.as_ref().unwrap();
        assert_eq!((c.top_n, c.start, c.end), (Some(5), Some(10), Some(20)));
        let q = parse("{ } | compare({ status = error })").unwrap();
        let Stage::Metrics(m) = &q.pipeline.stages[0] else { panic!() };
        assert_eq!(m.compare.as_ref().unwrap().top_n, None); // Tempo's default is 10

        let q = parse("{ .a } | { .b } && { .c } | (count()) > -2").unwrap();
        assert!(matches!(
            &q.pipeline.stages[0],
            Stage::Spanset { expr: SpansetExpr::Binary { op: SpansetOp::And, .. }, .. }
        ));
        assert!(matches!(
            &q.pipeline.stages[1],
            Stage::ScalarFilter {
                lhs: ScalarExpr::Aggregate { op: AggregateOp::Count, arg: None, .. },
                rhs: ScalarExpr::Static { value: Static::Int(-2), .. },
                ..
            }
        ));
    }

    #[test]
    fn hints() {
        let q = parse(r#"{ } with(most_recent=true, sample=0.1, exemplars=false, n=10, d=5m, s="x", k=server, st=error, m=maxInt)"#).unwrap();
        let got: Vec<(&str, &Static)> = q.hints.iter().map(|h| (h.name.as_str(), &h.value)).collect();
        assert_eq!(
            got,
            vec![
                ("most_recent", &Static::Bool(true)),
                ("sample", &Static::Float(0.1)),
                ("exemplars", &Static::Bool(false)),
                ("n", &Static::Int(10)),
                ("d", &Static::Duration(300_000_000_000)),
                ("s", &Static::Str("x".into())),
                ("k", &Static::Kind(Kind::Server)),
                ("st", &Static::Status(Status::Error)),
                ("m", &Static::Int(i64::MAX)),
            ]
        );
        // Several with() clauses: the last one wins, as in Tempo.
        let q = parse("{ } | rate() with(a=1) with(b=2, c=3)").unwrap();
        let names: Vec<&str> = q.hints.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(q.to_string(), "{ } | rate() with(b=2, c=3)");
        assert!(parse("{ } with()").is_err());
        assert!(parse("{ } with(count=1)").is_err());
        assert!(parse("{ } with(a=nil)").is_err());
    }

    #[test]
    fn depth_is_bounded() {
        for q in [
            format!("{}{{ }}{}", "(".repeat(10_000), ")".repeat(10_000)),
            format!("{{ {}.a = 1{} }}", "(".repeat(10_000), ")".repeat(10_000)),
            format!("{{ {}.a }}", "!".repeat(10_000)),
            format!("{{ {}1 = .a }}", "-".repeat(10_000)),
            format!("{{ .a = 2{} }}", " ^ 2".repeat(10_000)),
            format!("{{ .a = 1{} }}", " + 1".repeat(10_000)),
            format!("{{ .a = 1{} }}", " || .a = 1".repeat(10_000)),
            format!("{{ }}{}", " && { }".repeat(10_000)),
            format!("{{ }} | count(){} > 1", " + count()".repeat(10_000)),
            format!("{{ }} | {}count(){} > 1", "(".repeat(10_000), ")".repeat(10_000)),
            "(".repeat(100_000),
            "{".repeat(100_000),
        ] {
            let e = parse(&q).unwrap_err();
            assert!(e.message.contains("too deeply") || e.message.starts_with("unexpected"), "{e}");
        }
        // Just under the limit is fine.
        let q = format!("{{ .a = 1{} }}", " || .a = 1".repeat(MAX_DEPTH - 10));
        assert!(parse(&q).is_ok());
    }
}
