//! Robustness: the parser never panics, never recurses without bound and
//! stays fast on any input; errors always point inside the query; accepted
//! queries print to text that parses back to the same tree.
//!
//! Inputs come from a small deterministic PRNG (no extra dependencies):
//! random bytes, random soups of TraceQL tokens, and random well-formed
//! queries from a generator that covers the grammar.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use spanlake_traceql::ast::Query;
use spanlake_traceql::parser::{MAX_DEPTH, parse_unvalidated};
use spanlake_traceql::{ParseError, parse};

/// Seeded, reproducible randomness (the seed is printed so a failure can be
/// replayed), from rand_chacha like the dataset generator.
struct Rng(ChaCha8Rng);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Multiplies the iteration counts and changes the seeds:
/// `FUZZ_SCALE=20 cargo test -p spanlake-traceql --release --test fuzz`
/// runs a longer campaign.
fn scale() -> usize {
    std::env::var("FUZZ_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

fn seed(base: u64) -> u64 {
    base.wrapping_add(scale() as u64 * 0x1000_0000_0001)
}

fn zeroed(mut q: Query) -> Query {
    q.zero_positions();
    q
}

fn check_error(q: &str, e: &ParseError) {
    assert!(
        e.pos.start <= e.pos.end && e.pos.end <= q.len(),
        "{q:?}: position {:?} out of range: {e}",
        e.pos
    );
    assert!(
        q.is_char_boundary(e.pos.start) && q.is_char_boundary(e.pos.end),
        "{q:?}: {:?} splits a char",
        e.pos
    );
    assert!(e.line >= 1 && e.column >= 1, "{q:?}: {e}");
}

/// Parses with and without validation; checks errors and round trips.
/// Returns whether `parse` accepted the query.
fn check(q: &str) -> bool {
    let result = catch_unwind(AssertUnwindSafe(|| (parse_unvalidated(q), parse(q))));
    let Ok((syntax, full)) = result else { panic!("the parser panicked on {q:?}") };
    match &syntax {
        Ok(ast) => {
            let text = ast.to_string();
            let again = parse_unvalidated(&text)
                .unwrap_or_else(|e| panic!("{q:?} prints as {text:?}, which does not parse: {e}"));
            assert_eq!(
                zeroed(again.clone()),
                zeroed(ast.clone()),
                "{q:?} prints as {text:?}, a different tree"
            );
            assert_eq!(again.to_string(), text, "{q:?}: printing is not a fixed point");
        }
        Err(e) => check_error(q, e),
    }
    match &full {
        Ok(ast) => {
            assert!(syntax.is_ok());
            let text = ast.to_string();
            assert!(parse(&text).is_ok(), "{q:?} is valid but its text {text:?} is not");
            true
        }
        Err(e) => {
            check_error(q, e);
            false
        }
    }
}

#[test]
fn random_bytes() {
    let mut rng = Rng::new(seed(0x9E37_79B9_7F4A_7C15));
    const ALPHABET: &[u8] = b" {}()|&=!~<>+-*/%^,.:\"`\\'\n\tabcdeklnrstuxy0123456789_@#[]";
    for _ in 0..20_000 * scale() {
        let len = rng.below(48);
        let bytes: Vec<u8> =
            (0..len).map(|_| if rng.chance(90) { *rng.pick(ALPHABET) } else { rng.next() as u8 }).collect();
        check(&String::from_utf8_lossy(&bytes));
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "{ }",
    "(",
    ")",
    "|",
    "&&",
    "||",
    ">>",
    ">",
    "<",
    "<<",
    "~",
    "!>",
    "!<",
    "!>>",
    "!<<",
    "!~",
    "&>",
    "&<",
    "&>>",
    "&<<",
    "&~",
    "=",
    "!=",
    "=~",
    ">=",
    "<=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "!",
    ",",
    ".a",
    ".b.c",
    "span.b",
    "resource.service.name",
    "event.e",
    "link.l",
    "instrumentation.i",
    "span.\"q x\"",
    "duration",
    "name",
    "status",
    "kind",
    "statusMessage",
    "rootName",
    "traceDuration",
    "nestedSetLeft",
    "span:duration",
    "span:childCount",
    "trace:id",
    "trace:rootService",
    "event:name",
    "link:spanID",
    "instrumentation:name",
    "span:",
    "span:foo",
    "1",
    "0",
    "1.5",
    ".5",
    "1s",
    "90m",
    "-1",
    "\"x\"",
    "\"[\"",
    "\"a{1}\"",
    "`y`",
    "true",
    "false",
    "nil",
    "ok",
    "error",
    "unset",
    "server",
    "unspecified",
    "minInt",
    "maxInt",
    "count()",
    "count",
    "avg(",
    "avg(duration)",
    "max(.a)",
    "by(",
    "by",
    "by(.a)",
    "select(",
    "select(.a, name)",
    "coalesce()",
    "rate()",
    "count_over_time()",
    "min_over_time(duration)",
    "quantile_over_time(",
    "quantile_over_time(duration, .5)",
    "histogram_over_time(duration)",
    "compare(",
    "compare({ .a })",
    "topk(5)",
    "bottomk(",
    "| topk(2)",
    "with(",
    "with(a=1)",
    "sample=0.1",
    "parent.x",
    "childCount",
    "//",
    "/*",
    "*/",
    "\n",
    "{ .a = 1 }",
    "| count() > 1",
    "foo",
];

#[test]
fn token_soup() {
    let mut rng = Rng::new(seed(42));
    let mut accepted = 0;
    for _ in 0..60_000 * scale() {
        let n = 1 + rng.below(20);
        let mut q = String::new();
        for _ in 0..n {
            let t = rng.pick::<&str>(TOKENS);
            q.push_str(t);
            if rng.chance(70) {
                q.push(' ');
            }
        }
        accepted += usize::from(check(&q));
    }
    // Sanity: the soup is not all garbage.
    assert!(accepted > 100, "only {accepted} soups were valid queries");
}

/// Generates well-formed (not always well-typed) queries.
struct Gen {
    rng: Rng,
}

impl Gen {
    fn leaf(&mut self) -> String {
        let r = &mut self.rng;
        r.pick(&[
            ".a",
            ".b",
            "span.c",
            "resource.service.name",
            "event.x",
            "link.y",
            "instrumentation.z",
            "span.\"a b\"",
            ".\"5xx\"",
            "duration",
            "name",
            "status",
            "kind",
            "statusMessage",
            "rootName",
            "rootServiceName",
            "traceDuration",
            "nestedSetLeft",
            "nestedSetParent",
            "span:duration",
            "span:id",
            "span:childCount",
            "trace:id",
            "trace:rootName",
            "event:timeSinceStart",
            "link:traceID",
            "instrumentation:version",
            "1",
            "42",
            "0",
            "1.5",
            ".25",
            "1e10",
            "1s",
            "1h30m",
            "250us",
            "7ns",
            "\"x\"",
            "\"a\\\"b\\n\"",
            "`raw`",
            "\"\"",
            "true",
            "false",
            "nil",
            "ok",
            "error",
            "unset",
            "server",
            "client",
            "unspecified",
            "minInt",
            "maxInt",
        ])
        .to_string()
    }

    fn field(&mut self, depth: u32) -> String {
        if depth == 0 || self.rng.chance(25) {
            return self.leaf();
        }
        let e = match self.rng.below(10) {
            0 => format!("-{}", self.field(depth - 1)),
            1 => format!("!{}", self.field(depth - 1)),
            2 => format!("({})", self.field(depth - 1)),
            _ => {
                let op = *self.rng.pick(&[
                    "&&", "||", "=", "!=", "<", "<=", ">", ">=", "=~", "!~", "+", "-", "*", "/", "%", "^",
                ]);
                format!("{} {op} {}", self.field(depth - 1), self.field(depth - 1))
            }
        };
        if self.rng.chance(20) { format!("({e})") } else { e }
    }

    fn filter(&mut self) -> String {
        if self.rng.chance(10) { "{ }".into() } else { format!("{{ {} }}", self.field(3)) }
    }

    /// A spanset expression and whether it contains a parenthesised pipeline.
    fn spanset(&mut self, depth: u32) -> (String, bool) {
        if depth == 0 || self.rng.chance(35) {
            return (self.filter(), false);
        }
        match self.rng.below(6) {
            0 => {
                let (e, pl) = self.spanset(depth - 1);
                (format!("({e})"), pl)
            }
            1 => {
                let head = if self.rng.chance(50) { self.filter() } else { self.pipeline(depth - 1, false) };
                let (head, _) = if head.starts_with('(') { (self.filter(), ()) } else { (head, ()) };
                (format!("({head} | {})", self.stage(depth.saturating_sub(1))), true)
            }
            _ => {
                let op = *self.rng.pick(&[
                    "&&", "||", ">>", ">", "<<", "<", "~", "!>>", "!>", "!<<", "!<", "!~", "&>>", "&>",
                    "&<<", "&<", "&~",
                ]);
                let (mut l, mut lp) = self.spanset(depth - 1);
                let (mut r, mut rp) = self.spanset(depth - 1);
                if rp && !lp {
                    // A chain with a pipeline must start with one.
                    std::mem::swap(&mut l, &mut r);
                    std::mem::swap(&mut lp, &mut rp);
                }
                if lp && !rp {
                    // ... and then takes parenthesised operands only.
                    r = format!("({r})");
                }
                (format!("{l} {op} {r}"), lp)
            }
        }
    }

    fn scalar(&mut self, depth: u32) -> String {
        if depth == 0 || self.rng.chance(50) {
            return match self.rng.below(6) {
                0 => "count()".into(),
                1 => format!("avg({})", self.field(2)),
                2 => format!("max({})", self.field(1)),
                3 => self.rng.pick(&["1", "-1", "2.5", "-1s", "10ms"]).to_string(),
                4 => format!("({})", self.scalar(depth.saturating_sub(1))),
                _ => format!("sum({})", self.leaf()),
            };
        }
        let op = *self.rng.pick(&["+", "-", "*", "/", "%", "^"]);
        format!("{} {op} {}", self.scalar(depth - 1), self.scalar(depth - 1))
    }

    fn attr(&mut self) -> String {
        self.rng.pick(&[".a", "span.b", "resource.service.name", "name", "span:kind", "trace:id"]).to_string()
    }

    fn attrs(&mut self) -> String {
        let n = 1 + self.rng.below(3);
        (0..n).map(|_| self.attr()).collect::<Vec<_>>().join(", ")
    }

    fn stage(&mut self, depth: u32) -> String {
        match self.rng.below(7) {
            0 => self.filter(),
            1 => {
                let (l, _) = (self.filter(), ());
                format!("{l} && {}", self.filter())
            }
            2 => format!(
                "{} {} {}",
                self.scalar(2),
                self.rng.pick(&["=", "!=", "<", "<=", ">", ">="]),
                self.scalar(1)
            ),
            3 => format!("by({})", self.field(2)),
            4 => format!("select({})", self.attrs()),
            5 => "coalesce()".into(),
            _ => {
                let (e, pl) = self.spanset(depth);
                if pl { self.filter() } else { e }
            }
        }
    }

    fn pipeline(&mut self, depth: u32, root: bool) -> String {
        let mut q = match self.rng.below(5) {
            0 => format!("count() > {}", self.rng.below(5)),
            1 => format!("by({})", self.field(1)),
            2 => format!("select({})", self.attrs()),
            _ => {
                let (e, pl) = self.spanset(depth);
                if pl {
                    return e; // cannot be followed by stages
                }
                e
            }
        };
        for _ in 0..self.rng.below(4) {
            q.push_str(" | ");
            q.push_str(&self.stage(depth.saturating_sub(1)));
        }
        if root && self.rng.chance(40) {
            q.push_str(" | ");
            q.push_str(&match self.rng.below(6) {
                0 => "rate()".to_string(),
                1 => format!("count_over_time() by ({})", self.attrs()),
                2 => format!("quantile_over_time({}, 0.5, .99)", self.attr()),
                3 => format!("histogram_over_time({})", self.attr()),
                4 => format!("compare({}, 5)", self.filter()),
                _ => format!("sum_over_time({}) by ({})", self.attr(), self.attrs()),
            });
            for _ in 0..self.rng.below(3) {
                if self.rng.chance(50) {
                    q.push_str(&format!(" | topk({})", self.rng.below(4)));
                } else {
                    q.push_str(&format!(" > {}", self.rng.pick(&["1", "-2.5", "1s"])));
                }
            }
        }
        q
    }

    fn query(&mut self) -> String {
        let mut q = self.pipeline(3, true);
        if self.rng.chance(20) {
            q.push_str(" with(sample=0.1, most_recent=true)");
        }
        q
    }
}

#[test]
fn generated_queries_round_trip() {
    let mut g = Gen { rng: Rng::new(seed(7)) };
    let (mut syntax_ok, mut valid) = (0, 0);
    let total = 20_000 * scale();
    for _ in 0..total {
        let q = g.query();
        valid += usize::from(check(&q));
        match parse_unvalidated(&q) {
            Ok(_) => syntax_ok += 1,
            Err(e) => {
                // The generator only writes well-formed queries, except for a
                // parenthesised `nil` and for trees nested too deeply.
                assert!(
                    e.message.contains("nil cannot be parenthesised") || e.message.contains("too deeply"),
                    "generated query rejected: {q:?}: {e}"
                );
            }
        }
    }
    assert!(syntax_ok > total * 9 / 10, "{syntax_ok} of {total} parsed");
    assert!(valid > total / 20, "{valid} of {total} validated");
}

/// Runs `f` on a thread with a 1 MiB stack: half of tokio's default, so
/// the limits keep a margin even in debug builds.
fn on_small_stack<F: FnOnce() + Send + 'static>(f: F) {
    std::thread::Builder::new().stack_size(1 << 20).spawn(f).unwrap().join().unwrap();
}

#[test]
fn deep_and_long_inputs_are_refused_quickly() {
    on_small_stack(|| {
        let n = 10_000;
        let inputs = [
            format!("{}{{ }}{}", "(".repeat(n), ")".repeat(n)),
            "(".repeat(n),
            "{".repeat(n),
            format!("{{ {}.a = 1{} }}", "(".repeat(n), ")".repeat(n)),
            format!("{{ {}.a }}", "!".repeat(n)),
            format!("{{ {}1 = .a }}", "-".repeat(n)),
            format!("{{ .a = 2{} }}", " ^ 2".repeat(n)),
            format!("{{ nestedSetLeft{} }}", "+1".repeat(20_000)),
            format!("{{ .a = 1{} }}", " || .a = 1".repeat(n)),
            format!("{{ }}{}", " && { }".repeat(n)),
            format!("{{ }} | count(){} > 1", " + count()".repeat(n)),
            format!("{{ }} | {}count(){} > 1", "(".repeat(n), ")".repeat(n)),
            format!("{{ .a = \"x{} }}", "y".repeat(1_000_000)),
        ];
        for q in &inputs {
            let t0 = Instant::now();
            let r = parse(q);
            assert!(t0.elapsed() < Duration::from_secs(2), "took {:?}", t0.elapsed());
            let e = r.unwrap_err();
            check_error(q, &e);
        }
    });
}

#[test]
fn queries_at_the_depth_limit_work_on_a_small_stack() {
    on_small_stack(|| {
        let d = MAX_DEPTH - 8;
        for q in [
            format!("{}{{ .a }}{}", "(".repeat(d), ")".repeat(d)),
            format!("{{ {}.a = 1{} }}", "(".repeat(d), ")".repeat(d)),
            format!("{{ {}.a }}", "!".repeat(d)),
            format!("{{ .a = 2{} }}", " ^ 2".repeat(d)),
            format!("{{ .a = 1{} }}", " || .a = 1".repeat(d)),
            format!("{{ }}{}", " && { }".repeat(d)),
            format!("{{ }} | {}count(){} > 1", "(".repeat(d), ")".repeat(d)),
        ] {
            let ast = parse(&q).unwrap_or_else(|e| panic!("{}...: {e}", &q[..40]));
            let text = ast.to_string();
            let again = parse(&text).unwrap();
            assert_eq!(zeroed(again), zeroed(ast));
        }
    });
}

#[test]
fn long_flat_queries_are_fine() {
    // Flat structures (pipeline stages, select lists, hints) have no depth.
    let t0 = Instant::now();
    let q = format!("{{ }}{}", " | { .a = 1 }".repeat(20_000));
    assert_eq!(parse(&q).unwrap().pipeline.stages.len(), 20_000);
    let q = format!("{{ }} | select(.a{})", ", .b".repeat(20_000));
    assert!(parse(&q).is_ok());
    let q = format!("{{ }} with(a=1{})", ", b=2".repeat(20_000));
    assert_eq!(parse(&q).unwrap().hints.len(), 20_001);
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
}
