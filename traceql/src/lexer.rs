//! Turns query text into tokens, following the rules of Tempo's lexer
//! (`pkg/traceql/lexer.go`, built on Go's `text/scanner`):
//!
//! - whitespace is space, tab, CR and LF; `//` line and `/* */` block
//!   comments are skipped (Go's scanner does so by default);
//! - operators are read greedily: `!>>` before `!>` before `!`;
//! - `span.`, `resource.`, `event.`, `link.`, `instrumentation.` (and `.`
//!   alone) start an attribute name that runs until whitespace or one of
//!   `{ } ( ) = ~ ! < > & | ^ ,`, so `.http.status-code`, `span.a/b:c`
//!   and even `.a+b` are single names; `"quoted parts"` (escapes `\"` and
//!   `\\` only) may appear anywhere in a name: `span."a b".c`;
//! - `trace:`, `span:`, `event:`, `link:`, `instrumentation:` are scope
//!   tokens of the colon-scoped intrinsics (`span:duration`);
//! - a number immediately followed by duration characters is a duration
//!   if Prometheus' or Go's duration syntax accepts it (`1h30m`, `1.5s`,
//!   `2d`, `100us`, `5µs`), else a plain number;
//! - `.5` is a number (Go's scanner reads it as a float), so an unscoped
//!   attribute whose name starts with a digit must be quoted: `."5xx"`;
//! - strings are Go strings: `"..."` with Go escapes, or `` `raw` ``.
//!
//! The lexer never fails as a whole: a lexical error becomes the last token
//! ([`Tok::Error`]), so that a syntax error earlier in the query is reported
//! first, as Tempo's interleaved lexer/parser does.

use crate::ast::{AttrScope, Pos};

/// Scopes of the colon-scoped intrinsics, `trace:` ... `instrumentation:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColonScope {
    /// `trace:`
    Trace,
    /// `span:`
    Span,
    /// `event:`
    Event,
    /// `link:`
    Link,
    /// `instrumentation:`
    Instrumentation,
}

impl ColonScope {
    /// The spelling without the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            ColonScope::Trace => "trace",
            ColonScope::Span => "span",
            ColonScope::Event => "event",
            ColonScope::Link => "link",
            ColonScope::Instrumentation => "instrumentation",
        }
    }
}

/// A token kind, with its value for literals and names.
#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `,`
    Comma,
    /// `|`
    Pipe,
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `=~`
    Re,
    /// `!~` (negated regex in a field expression, not-sibling between spansets)
    Nre,
    /// `>` (greater than, or child between spansets)
    Gt,
    /// `>=`
    Gte,
    /// `<` (less than, or parent between spansets)
    Lt,
    /// `<=`
    Lte,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// `&&`
    And,
    /// `||`
    Or,
    /// `!`
    Not,
    /// `>>`
    Desc,
    /// `<<`
    Ance,
    /// `~`
    Tilde,
    /// `!>`
    NotChild,
    /// `!<`
    NotParent,
    /// `!>>`
    NotDesc,
    /// `!<<`
    NotAnce,
    /// `&>`
    UnionChild,
    /// `&<`
    UnionParent,
    /// `&>>`
    UnionDesc,
    /// `&<<`
    UnionAnce,
    /// `&~`
    UnionSibl,
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// A duration literal, in nanoseconds.
    Duration(i64),
    /// A string literal, unescaped.
    Str(String),
    /// Any identifier, keywords included (`count`, `status`, `minInt`...).
    Ident(String),
    /// `.name`, `span.name`, `resource.name`, ... with the name unquoted.
    Attr { scope: AttrScope, name: String },
    /// `parent.name` (Tempo parses it but does not support it).
    ParentAttr(String),
    /// `trace:`, `span:`, ... (the intrinsic name is the next token).
    ScopeColon(ColonScope),
    /// End of the query.
    Eof,
    /// A lexical error; always the last token.
    Error(String),
}

/// A token and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What the token is.
    pub tok: Tok,
    /// Where it stands.
    pub pos: Pos,
}

/// Identifiers that are tokens of their own in Tempo's lexer, so they can
/// be neither hint names nor unknown identifiers.
pub const KEYWORDS: &[&str] = &[
    "true",
    "false",
    "nil",
    "ok",
    "error",
    "unset",
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
    "duration",
    "childCount",
    "name",
    "status",
    "statusMessage",
    "kind",
    "rootName",
    "rootServiceName",
    "rootService",
    "traceDuration",
    "nestedSetLeft",
    "nestedSetRight",
    "nestedSetParent",
    "id",
    "traceID",
    "spanID",
    "parentID",
    "timeSinceStart",
    "version",
    "parent",
    "count",
    "avg",
    "max",
    "min",
    "sum",
    "by",
    "coalesce",
    "select",
    "rate",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
    "sum_over_time",
    "quantile_over_time",
    "histogram_over_time",
    "compare",
    "topk",
    "bottomk",
    "with",
];

/// Whether `s` is one of [`KEYWORDS`].
pub fn is_keyword(s: &str) -> bool {
    KEYWORDS.contains(&s)
}

/// Whether `c` can be part of an unquoted attribute name (Tempo's
/// `isAttributeRune`). `"` is also accepted there, as the start of a quoted
/// part.
pub fn is_attribute_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(c, '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ',')
}

/// Splits `src` into tokens. The result always ends with [`Tok::Eof`] or
/// [`Tok::Error`].
pub fn tokenize(src: &str) -> Vec<Token> {
    let mut lx = Lexer { src, i: 0, out: Vec::new() };
    // Go's scanner reports NUL as an invalid character wherever it is; lex
    // the text before the first NUL and fail there.
    let end = src.find('\0').unwrap_or(src.len());
    if src.starts_with('\u{feff}') {
        lx.i = '\u{feff}'.len_utf8(); // Go's scanner skips a leading BOM
    }
    match lx.run(end) {
        Ok(()) if end == src.len() => lx.push(Tok::Eof, end, end),
        Ok(()) => lx.push(Tok::Error("invalid character NUL".into()), end, end + 1),
        Err((msg, pos)) => lx.out.push(Token { tok: Tok::Error(msg), pos }),
    }
    lx.out
}

struct Lexer<'a> {
    src: &'a str,
    i: usize,
    out: Vec<Token>,
}

type LexResult<T> = Result<T, (String, Pos)>;

impl Lexer<'_> {
    fn push(&mut self, tok: Tok, start: usize, end: usize) {
        self.out.push(Token { tok, pos: Pos { start, end } });
    }

    fn peek_at(&self, i: usize, end: usize) -> Option<char> {
        if i < end { self.src[i..end].chars().next() } else { None }
    }

    fn run(&mut self, end: usize) -> LexResult<()> {
        loop {
            self.skip_space_and_comments(end)?;
            let start = self.i;
            let Some(c) = self.peek_at(start, end) else { return Ok(()) };
            let rest = &self.src[start..end];
            // Greedy operators, longest first.
            const OPS: &[(&str, Tok)] = &[
                ("!>>", Tok::NotDesc),
                ("!<<", Tok::NotAnce),
                ("&>>", Tok::UnionDesc),
                ("&<<", Tok::UnionAnce),
                ("!=", Tok::Neq),
                ("!~", Tok::Nre),
                ("!>", Tok::NotChild),
                ("!<", Tok::NotParent),
                ("=~", Tok::Re),
                (">=", Tok::Gte),
                (">>", Tok::Desc),
                ("<=", Tok::Lte),
                ("<<", Tok::Ance),
                ("&&", Tok::And),
                ("&>", Tok::UnionChild),
                ("&<", Tok::UnionParent),
                ("&~", Tok::UnionSibl),
                ("||", Tok::Or),
                ("{", Tok::LBrace),
                ("}", Tok::RBrace),
                ("(", Tok::LParen),
                (")", Tok::RParen),
                (",", Tok::Comma),
                ("|", Tok::Pipe),
                ("=", Tok::Eq),
                ("!", Tok::Not),
                (">", Tok::Gt),
                ("<", Tok::Lt),
                ("~", Tok::Tilde),
                ("+", Tok::Add),
                ("-", Tok::Sub),
                ("*", Tok::Mul),
                ("/", Tok::Div),
                ("%", Tok::Mod),
                ("^", Tok::Pow),
            ];
            if let Some((text, tok)) = OPS.iter().find(|(t, _)| rest.starts_with(t)) {
                self.i += text.len();
                self.push(tok.clone(), start, self.i);
                continue;
            }
            let next_is_digit = rest[c.len_utf8()..].starts_with(|d: char| d.is_ascii_digit());
            if c.is_ascii_digit() || (c == '.' && next_is_digit) {
                self.number(end)?;
            } else if c == '.' {
                self.i += 1;
                let name = self.attribute_name(start, end)?;
                self.push(Tok::Attr { scope: AttrScope::Unscoped, name }, start, self.i);
            } else if c == '"' {
                self.string(end)?;
            } else if c == '`' {
                self.raw_string(end)?;
            } else if c == '_' || c.is_alphabetic() {
                self.ident(end)?;
            } else {
                let pos = Pos { start, end: start + c.len_utf8() };
                return Err((format!("unexpected character {c:?}"), pos));
            }
        }
    }

    fn skip_space_and_comments(&mut self, end: usize) -> LexResult<()> {
        loop {
            let rest = &self.src[self.i..end];
            if rest.starts_with([' ', '\t', '\n', '\r']) {
                self.i += 1;
            } else if rest.starts_with("//") {
                self.i += rest.find('\n').unwrap_or(rest.len());
            } else if let Some(body) = rest.strip_prefix("/*") {
                match body.find("*/") {
                    Some(j) => self.i += j + 4,
                    None => {
                        let pos = Pos { start: self.i, end };
                        return Err(("comment not terminated".into(), pos));
                    }
                }
            } else {
                return Ok(());
            }
        }
    }

    fn ident(&mut self, end: usize) -> LexResult<()> {
        let start = self.i;
        let rest = &self.src[start..end];
        let len = rest
            .char_indices()
            .find(|&(_, c)| !(c == '_' || c.is_alphanumeric()))
            .map_or(rest.len(), |(j, _)| j);
        let text = &rest[..len];
        self.i += len;
        let after = &self.src[self.i..end];
        // `span.` etc. must be written without a space, as in Tempo, where
        // they are single tokens.
        if after.starts_with('.') {
            let scope = match text {
                "span" => Some(AttrScope::Span),
                "resource" => Some(AttrScope::Resource),
                "event" => Some(AttrScope::Event),
                "link" => Some(AttrScope::Link),
                "instrumentation" => Some(AttrScope::Instrumentation),
                _ => None,
            };
            if let Some(scope) = scope {
                self.i += 1;
                let name = self.attribute_name(start, end)?;
                self.push(Tok::Attr { scope, name }, start, self.i);
                return Ok(());
            }
            if text == "parent" {
                self.i += 1;
                let name = self.attribute_name(start, end)?;
                self.push(Tok::ParentAttr(name), start, self.i);
                return Ok(());
            }
        }
        if after.starts_with(':') {
            let scope = match text {
                "trace" => Some(ColonScope::Trace),
                "span" => Some(ColonScope::Span),
                "event" => Some(ColonScope::Event),
                "link" => Some(ColonScope::Link),
                "instrumentation" => Some(ColonScope::Instrumentation),
                _ => None,
            };
            if let Some(scope) = scope {
                self.i += 1;
                self.push(Tok::ScopeColon(scope), start, self.i);
                return Ok(());
            }
            let pos = Pos { start, end: self.i + 1 };
            return Err((
                format!(
                    "unknown intrinsic scope '{text}:' (scopes are trace:, span:, event:, link: and \
                     instrumentation:)"
                ),
                pos,
            ));
        }
        self.push(Tok::Ident(text.to_string()), start, self.i);
        Ok(())
    }

    /// Reads an attribute name after its scope prefix (`self.i` is just past
    /// the dot). `start` is where the whole attribute token starts.
    fn attribute_name(&mut self, start: usize, end: usize) -> LexResult<String> {
        let mut name = String::new();
        let mut any = false;
        while let Some(c) = self.peek_at(self.i, end) {
            if c == '"' {
                let qstart = self.i;
                self.i += 1;
                loop {
                    let Some(c) = self.peek_at(self.i, end) else {
                        let pos = Pos { start: qstart, end };
                        return Err(("quoted attribute name not terminated".into(), pos));
                    };
                    self.i += c.len_utf8();
                    match c {
                        '"' => break,
                        '\\' => match self.peek_at(self.i, end) {
                            Some(e @ ('"' | '\\')) => {
                                name.push(e);
                                self.i += 1;
                            }
                            _ => {
                                let pos = Pos { start: self.i - 1, end: (self.i + 1).min(end) };
                                let pos = Pos { end: floor_boundary(self.src, pos.end), ..pos };
                                return Err((
                                    "invalid escape sequence in quoted attribute name \
                                     (only \\\" and \\\\ are allowed)"
                                        .into(),
                                    pos,
                                ));
                            }
                        },
                        c => name.push(c),
                    }
                }
                any = true;
            } else if is_attribute_char(c) {
                name.push(c);
                self.i += c.len_utf8();
                any = true;
            } else {
                break;
            }
        }
        if !any {
            let pos = Pos { start, end: self.i };
            let scope = &self.src[start..self.i];
            return Err((format!("expected an attribute name after '{scope}'"), pos));
        }
        Ok(name)
    }

    fn number(&mut self, end: usize) -> LexResult<()> {
        let start = self.i;
        let b = self.src.as_bytes();
        let at = |i: usize| if i < end { b[i] } else { 0 };
        let mut i = start;
        let mut is_float = false;
        let mut bad = false;
        if at(i) == b'0' && matches!(at(i + 1), b'x' | b'X' | b'b' | b'B' | b'o' | b'O') {
            i += 2;
            while at(i).is_ascii_alphanumeric() || at(i) == b'_' || at(i) == b'.' {
                i += 1;
            }
            let pos = Pos { start, end: i };
            let text = &self.src[start..i];
            return Err((format!("unsupported number '{text}': only decimal numbers are allowed"), pos));
        }
        if at(i) == b'.' {
            // `.5`
            i += 1;
            is_float = true;
        }
        while at(i).is_ascii_digit() || at(i) == b'_' {
            bad |= at(i) == b'_';
            i += 1;
        }
        if !is_float && at(i) == b'.' {
            i += 1;
            is_float = true;
            while at(i).is_ascii_digit() || at(i) == b'_' {
                bad |= at(i) == b'_';
                i += 1;
            }
        }
        if matches!(at(i), b'e' | b'E') {
            i += 1;
            is_float = true;
            if matches!(at(i), b'+' | b'-') {
                i += 1;
            }
            if !at(i).is_ascii_digit() {
                return Err(("exponent has no digits".into(), Pos { start, end: i }));
            }
            while at(i).is_ascii_digit() || at(i) == b'_' {
                bad |= at(i) == b'_';
                i += 1;
            }
        }
        let text = &self.src[start..i];
        if bad {
            return Err((format!("invalid number '{text}'"), Pos { start, end: i }));
        }
        // Like Tempo's tryScanDuration: take the following non-space run of
        // digits, duration unit letters and dots, and see whether the whole
        // thing is a duration.
        let mut j = i;
        for c in self.src[i..end].chars() {
            if c.is_whitespace() || !(c.is_numeric() || c == '.' || is_duration_char(c)) {
                break;
            }
            j += c.len_utf8();
        }
        if j > i
            && let Some(ns) = parse_duration(&self.src[start..j])
        {
            self.i = j;
            self.push(Tok::Duration(ns), start, j);
            return Ok(());
        }
        self.i = i;
        let pos = Pos { start, end: i };
        let tok = if is_float {
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Tok::Float(f),
                _ => return Err((format!("number '{text}' is out of range"), pos)),
            }
        } else {
            match text.parse::<i64>() {
                Ok(n) => Tok::Int(n),
                Err(_) => return Err((format!("integer '{text}' is out of range"), pos)),
            }
        };
        self.push(tok, start, i);
        Ok(())
    }

    fn string(&mut self, end: usize) -> LexResult<()> {
        let start = self.i;
        let mut bytes: Vec<u8> = Vec::new();
        let mut i = start + 1;
        let unterminated = |i: usize| ("string literal not terminated".to_string(), Pos { start, end: i });
        loop {
            let Some(c) = self.peek_at(i, end) else { return Err(unterminated(end)) };
            match c {
                '"' => {
                    i += 1;
                    break;
                }
                '\n' => return Err(unterminated(i)),
                '\\' => {
                    let esc_start = i;
                    i += 1;
                    let Some(e) = self.peek_at(i, end) else { return Err(unterminated(end)) };
                    i += e.len_utf8();
                    let simple = match e {
                        'a' => Some(0x07),
                        'b' => Some(0x08),
                        'f' => Some(0x0c),
                        'n' => Some(b'\n'),
                        'r' => Some(b'\r'),
                        't' => Some(b'\t'),
                        'v' => Some(0x0b),
                        '\\' => Some(b'\\'),
                        '"' => Some(b'"'),
                        _ => None,
                    };
                    if let Some(b) = simple {
                        bytes.push(b);
                        continue;
                    }
                    let bad = |i: usize| {
                        let end = floor_boundary(self.src, i.min(end));
                        ("invalid escape sequence in string".to_string(), Pos { start: esc_start, end })
                    };
                    let (radix, n) = match e {
                        '0'..='7' => (8, 3),
                        'x' => (16, 2),
                        'u' => (16, 4),
                        'U' => (16, 8),
                        _ => return Err(bad(i)),
                    };
                    // Exactly n digits; for octal the first one is `e`.
                    let digits_start = if radix == 8 { i - 1 } else { i };
                    let digits = &self.src.as_bytes()[digits_start..end];
                    if digits.len() < n || !digits[..n].iter().all(|d| (*d as char).is_digit(radix)) {
                        return Err(bad(digits_start + n));
                    }
                    let v = u32::from_str_radix(&self.src[digits_start..digits_start + n], radix)
                        .map_err(|_| bad(digits_start + n))?;
                    i = digits_start + n;
                    match e {
                        'u' | 'U' => match char::from_u32(v) {
                            Some(ch) => bytes.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes()),
                            None => return Err(bad(i)),
                        },
                        _ if v > 255 => return Err(bad(i)),
                        _ => bytes.push(v as u8),
                    }
                }
                c => {
                    bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    i += c.len_utf8();
                }
            }
        }
        let pos = Pos { start, end: i };
        let s = String::from_utf8(bytes)
            .map_err(|_| ("string literal is not valid UTF-8 after unescaping".to_string(), pos))?;
        self.i = i;
        self.push(Tok::Str(s), start, i);
        Ok(())
    }

    fn raw_string(&mut self, end: usize) -> LexResult<()> {
        let start = self.i;
        let rest = &self.src[start + 1..end];
        let Some(j) = rest.find('`') else {
            return Err(("raw string literal not terminated".into(), Pos { start, end }));
        };
        // Go's strconv.Unquote drops carriage returns from raw strings.
        let s: String = rest[..j].chars().filter(|&c| c != '\r').collect();
        self.i = start + 1 + j + 1;
        self.push(Tok::Str(s), start, self.i);
        Ok(())
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn is_duration_char(c: char) -> bool {
    matches!(c, 'n' | 's' | 'u' | 'm' | 'h' | 'µ' | 'd' | 'w' | 'y')
}

/// Parses a duration the way Tempo does: first as a Prometheus duration
/// (`1y2w3d4h5m6s7ms`, integer counts, units in that order, each once),
/// then as a Go duration (`1.5h`, `300ms`, `1h30m`, units `ns us µs μs ms
/// s m h` in any order, fractions allowed). Returns nanoseconds, or `None`
/// when neither accepts it or it overflows an `i64`.
pub fn parse_duration(s: &str) -> Option<i64> {
    parse_prometheus_duration(s).or_else(|| parse_go_duration(s))
}

fn parse_prometheus_duration(s: &str) -> Option<i64> {
    const UNITS: &[(&str, u64)] = &[
        ("y", 365 * 24 * 3600 * 1_000_000_000),
        ("w", 7 * 24 * 3600 * 1_000_000_000),
        ("d", 24 * 3600 * 1_000_000_000),
        ("h", 3600 * 1_000_000_000),
        ("m", 60 * 1_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
    ];
    if s == "0" {
        return Some(0);
    }
    let mut rest = s;
    let mut total: u64 = 0;
    let mut last_unit: Option<usize> = None;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let nd = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if nd == 0 {
            return None;
        }
        let v: u64 = rest[..nd].parse().ok()?;
        rest = &rest[nd..];
        let nu = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        if nu == 0 {
            return None;
        }
        let unit = &rest[..nu];
        rest = &rest[nu..];
        let idx = UNITS.iter().position(|(u, _)| *u == unit)?;
        if last_unit.is_some_and(|l| idx <= l) {
            return None; // units must go from biggest to smallest, once each
        }
        last_unit = Some(idx);
        let add = v.checked_mul(UNITS[idx].1)?;
        total = total.checked_add(add)?;
    }
    i64::try_from(total).ok()
}

fn parse_go_duration(s: &str) -> Option<i64> {
    const UNITS: &[(&str, u64)] = &[
        ("ns", 1),
        ("us", 1_000),
        ("µs", 1_000),
        ("μs", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60 * 1_000_000_000),
        ("h", 3600 * 1_000_000_000),
    ];
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    const LIMIT: u64 = 1 << 63;
    let mut rest = s;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return None;
        }
        // Integer part.
        let ni = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let mut v: u64 = 0;
        for d in rest[..ni].bytes() {
            v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            if v > LIMIT {
                return None;
            }
        }
        let pre = ni > 0;
        rest = &rest[ni..];
        // Fraction: keep as many digits as fit, like Go's leadingFraction.
        let (mut f, mut scale, mut post) = (0u64, 1f64, false);
        if let Some(r) = rest.strip_prefix('.') {
            let nf = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            post = nf > 0;
            let mut overflow = false;
            for d in r[..nf].bytes() {
                if overflow {
                    continue;
                }
                if f > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = f * 10 + u64::from(d - b'0');
                if y > LIMIT {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10.0;
            }
            rest = &r[nf..];
        }
        if !pre && !post {
            return None;
        }
        let nu = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
        if nu == 0 {
            return None;
        }
        let unit = UNITS.iter().find(|(u, _)| *u == &rest[..nu])?.1;
        rest = &rest[nu..];
        if v > LIMIT / unit {
            return None;
        }
        v *= unit;
        if f > 0 {
            v = v.checked_add((f as f64 * (unit as f64 / scale)) as u64)?;
            if v > LIMIT {
                return None;
            }
        }
        total = total.checked_add(v)?;
        if total > LIMIT {
            return None;
        }
    }
    i64::try_from(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn durations() {
        let d = |s| parse_duration(s);
        assert_eq!(d("1s"), Some(1_000_000_000));
        assert_eq!(d("1h30m"), Some(5_400_000_000_000));
        assert_eq!(d("1.5h"), Some(5_400_000_000_000));
        assert_eq!(d("500ms1s"), Some(1_500_000_000)); // Go accepts any order
        assert_eq!(d("1h1h"), Some(7_200_000_000_000));
        assert_eq!(d("2d"), Some(172_800_000_000_000));
        assert_eq!(d("1w"), Some(604_800_000_000_000));
        assert_eq!(d("1y"), Some(365 * 86_400_000_000_000));
        assert_eq!(d("1d12h"), Some(129_600_000_000_000));
        assert_eq!(d("100us"), Some(100_000));
        assert_eq!(d("100µs"), Some(100_000));
        assert_eq!(d("7ns"), Some(7));
        assert_eq!(d("1.s"), Some(1_000_000_000));
        assert_eq!(d("1.5d"), None);
        assert_eq!(d("1x"), None);
        assert_eq!(d("1e5s"), None);
        assert_eq!(d("9223372036854775807ns"), Some(i64::MAX));
        assert_eq!(d("9223372036854775808ns"), None);
        assert_eq!(d("300y"), None); // overflows
        assert_eq!(d("1.5.5s"), None);
    }

    #[test]
    fn operators_are_greedy() {
        assert_eq!(
            toks("!>> !> ! != !~ !<< !< &>> &> && &<< &< &~ >> >= > << <= < =~ = ||  |"),
            vec![
                Tok::NotDesc,
                Tok::NotChild,
                Tok::Not,
                Tok::Neq,
                Tok::Nre,
                Tok::NotAnce,
                Tok::NotParent,
                Tok::UnionDesc,
                Tok::UnionChild,
                Tok::And,
                Tok::UnionAnce,
                Tok::UnionParent,
                Tok::UnionSibl,
                Tok::Desc,
                Tok::Gte,
                Tok::Gt,
                Tok::Ance,
                Tok::Lte,
                Tok::Lt,
                Tok::Re,
                Tok::Eq,
                Tok::Or,
                Tok::Pipe,
                Tok::Eof
            ]
        );
        // `==` is two tokens, so `{ .a == 1 }` is a syntax error later.
        assert_eq!(toks("=="), vec![Tok::Eq, Tok::Eq, Tok::Eof]);
    }

    #[test]
    fn attributes() {
        let a = |scope, name: &str| Tok::Attr { scope, name: name.into() };
        assert_eq!(toks(".a"), vec![a(AttrScope::Unscoped, "a"), Tok::Eof]);
        assert_eq!(
            toks("resource.service.name=\"x\""),
            vec![a(AttrScope::Resource, "service.name"), Tok::Eq, Tok::Str("x".into()), Tok::Eof]
        );
        assert_eq!(toks("span.a-b/c:d+1"), vec![a(AttrScope::Span, "a-b/c:d+1"), Tok::Eof]);
        assert_eq!(toks(r#"span."a b".c"#), vec![a(AttrScope::Span, "a b.c"), Tok::Eof]);
        assert_eq!(toks(r#"."x\"y\\""#), vec![a(AttrScope::Unscoped, "x\"y\\"), Tok::Eof]);
        assert_eq!(toks(r#".""#)[0], Tok::Error("quoted attribute name not terminated".into()));
        assert!(matches!(toks(r#"."a\n""#)[0], Tok::Error(_)));
        assert_eq!(toks("event.x!=nil")[0], a(AttrScope::Event, "x"));
        assert_eq!(toks("link.x")[0], a(AttrScope::Link, "x"));
        assert_eq!(toks("instrumentation.x")[0], a(AttrScope::Instrumentation, "x"));
        assert_eq!(toks("parent.x")[0], Tok::ParentAttr("x".into()));
        assert!(matches!(toks("span. ")[0], Tok::Error(_)));
        assert!(matches!(toks(". ")[0], Tok::Error(_)));
        // Without the dot right after it, `span` is just an identifier.
        assert_eq!(toks("span .a")[0], Tok::Ident("span".into()));
        assert_eq!(
            toks("span:duration"),
            vec![Tok::ScopeColon(ColonScope::Span), Tok::Ident("duration".into()), Tok::Eof]
        );
        // `.5` is a number, as in Go's scanner.
        assert_eq!(toks(".5"), vec![Tok::Float(0.5), Tok::Eof]);
    }

    #[test]
    fn numbers() {
        assert_eq!(
            toks("1 1.5 1. 1e3 2.5E-1 007"),
            vec![
                Tok::Int(1),
                Tok::Float(1.5),
                Tok::Float(1.0),
                Tok::Float(1000.0),
                Tok::Float(0.25),
                Tok::Int(7),
                Tok::Eof
            ]
        );
        assert_eq!(toks("1h30m}"), vec![Tok::Duration(5_400_000_000_000), Tok::RBrace, Tok::Eof]);
        assert_eq!(toks("5m)"), vec![Tok::Duration(300_000_000_000), Tok::RParen, Tok::Eof]);
        assert_eq!(toks("1.5d"), vec![Tok::Float(1.5), Tok::Ident("d".into()), Tok::Eof]);
        assert_eq!(toks("3x"), vec![Tok::Int(3), Tok::Ident("x".into()), Tok::Eof]);
        assert!(matches!(toks("9223372036854775808")[0], Tok::Error(_)));
        assert_eq!(toks("9223372036854775807")[0], Tok::Int(i64::MAX));
        assert!(matches!(toks("0x10")[0], Tok::Error(_)));
        assert!(matches!(toks("1_000")[0], Tok::Error(_)));
        assert!(matches!(toks("1e")[0], Tok::Error(_)));
        assert!(matches!(toks("1e999")[0], Tok::Error(_)));
    }

    #[test]
    fn strings() {
        assert_eq!(toks(r#""a\tb\n\"\\\x41\101\u00e9\U0001F600""#)[0], Tok::Str("a\tb\n\"\\AAé😀".into()));
        assert_eq!(toks("`a\\n\r\nb`")[0], Tok::Str("a\\n\nb".into()));
        assert!(matches!(toks(r#""abc"#)[0], Tok::Error(_)));
        assert!(matches!(toks("\"a\nb\"")[0], Tok::Error(_)));
        assert!(matches!(toks(r#""\q""#)[0], Tok::Error(_)));
        assert!(matches!(toks(r#""\'""#)[0], Tok::Error(_)));
        assert!(matches!(toks(r#""\400""#)[0], Tok::Error(_)));
        assert!(matches!(toks(r#""\xff""#)[0], Tok::Error(_))); // not UTF-8
        assert!(matches!(toks(r#""\ud800""#)[0], Tok::Error(_))); // surrogate
        assert_eq!(toks(r#""\xc3\xa9""#)[0], Tok::Str("é".into()));
        assert!(matches!(toks("`abc")[0], Tok::Error(_)));
    }

    #[test]
    fn comments_and_errors() {
        assert_eq!(toks("{ // c\n } /* x */"), vec![Tok::LBrace, Tok::RBrace, Tok::Eof]);
        assert!(matches!(toks("/* x")[0], Tok::Error(_)));
        assert!(matches!(toks("{ @ }")[1], Tok::Error(_)));
        assert!(matches!(toks("{ & }")[1], Tok::Error(_)));
        let t = tokenize("{ }\0");
        assert_eq!(t.last().unwrap().tok, Tok::Error("invalid character NUL".into()));
        assert_eq!(t.last().unwrap().pos, Pos::new(3, 4));
    }
}
