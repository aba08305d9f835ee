//! TraceQL, the query language of Grafana Tempo: parser, semantic checks
//! and canonical printing.
//!
//! [`parse`] turns query text into an [`ast::Query`], rejecting what Tempo
//! (3.0) rejects, with the position of the problem:
//!
//! ```
//! let q = spanlake_traceql::parse(r#"{ resource.service.name = "api" && duration > 1s } | count() > 2"#).unwrap();
//! assert_eq!(q.to_string(), r#"{ resource.service.name = "api" && span:duration > 1s } | count() > 2"#);
//!
//! let err = spanlake_traceql::parse("{ .a = }").unwrap_err();
//! assert_eq!(err.to_string(), "1:8: unexpected token '}', expected a field expression");
//! ```
//!
//! [`compile`] turns a parsed query into a DataFusion logical plan over the
//! `spans` table, and [`search`] runs it the way Tempo's search API does.
//!
//! Modules: [`lexer`] (tokens), [`parser`] (syntax, precedence),
//! [`validate`] (types and other semantic rules), [`display`] (canonical
//! text), [`error`] (the error type), [`ast`] (the tree).

pub mod ast;
pub mod compile;
pub mod display;
pub mod error;
pub mod lexer;
pub mod metrics;
pub mod parser;
pub mod search;
pub mod validate;

pub use error::ParseError;

/// Parses and validates a TraceQL query.
pub fn parse(query: &str) -> Result<ast::Query, ParseError> {
    let q = parser::parse_unvalidated(query)?;
    validate::validate(query, &q)?;
    Ok(q)
}
