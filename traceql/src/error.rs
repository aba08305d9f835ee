//! The one error type of the crate: a message tied to a place in the query.
//!
//! Lexical, syntax and semantic (validation) errors all use [`ParseError`],
//! so the API can answer every rejected query the same way: a 400 whose
//! text starts with `line:column:`.

use crate::ast::Pos;

/// A rejected query: what is wrong and where.
///
/// Displayed as `line:column: message`, e.g.
/// `1:12: unexpected '}', expected a field expression`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct ParseError {
    /// What is wrong, without the position.
    pub message: String,
    /// Byte offsets of the offending text; always within the query
    /// (`start <= end <= query.len()`); zero-width at the end of the query
    /// for "unexpected end of query".
    pub pos: Pos,
    /// 1-based line of `pos.start`.
    pub line: usize,
    /// 1-based column of `pos.start`, counted in characters (not bytes).
    pub column: usize,
}

impl ParseError {
    /// An error at `pos` in `src`; computes line and column.
    pub fn new(src: &str, pos: Pos, message: impl Into<String>) -> Self {
        // Clamp defensively so a bad position can never panic on slicing.
        let start = floor_char_boundary(src, pos.start.min(src.len()));
        let end = pos.end.clamp(start, src.len());
        let before = &src[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = src[line_start..start].chars().count() + 1;
        ParseError { message: message.into(), pos: Pos { start, end }, line, column }
    }
}

/// The largest char boundary `<= i` (`str::floor_char_boundary` is unstable).
fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let e = ParseError::new("{ .a = 1\n  && }", Pos::new(14, 15), "boom");
        assert_eq!((e.line, e.column), (2, 6));
        assert_eq!(e.to_string(), "2:6: boom");
        // Columns count characters, not bytes.
        let e = ParseError::new("{ .é = µ }", Pos::new(8, 10), "x");
        assert_eq!(e.column, 8);
    }
}
