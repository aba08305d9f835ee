//! Runs the query corpus in `tests/corpus/`:
//! - every line of `valid.txt` parses, and its canonical text (`Display`)
//!   parses back to the same tree (positions aside) and prints the same;
//! - every line of `invalid.txt` is rejected with a position inside the
//!   query.
//!
//! Blank lines and lines starting with `#` are skipped.

use spanlake_traceql::{ast::Query, parse};

fn queries(file: &str) -> Vec<(usize, String)> {
    let path = format!("{}/tests/corpus/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect()
}

fn without_positions(mut q: Query) -> Query {
    q.zero_positions();
    q
}

#[test]
fn valid_queries_parse_and_round_trip() {
    let mut failures = Vec::new();
    let all = queries("valid.txt");
    assert!(all.len() >= 300, "the valid corpus has only {} queries", all.len());
    for (line, q) in &all {
        let parsed = match parse(q) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("valid.txt:{line}: `{q}` was rejected: {e}"));
                continue;
            }
        };
        let text = parsed.to_string();
        match parse(&text) {
            Ok(again) => {
                if without_positions(again.clone()) != without_positions(parsed.clone()) {
                    failures.push(format!(
                        "valid.txt:{line}: `{q}` prints as `{text}`, which parses to a different tree:\n  {:?}\nvs\n  {:?}",
                        without_positions(parsed),
                        without_positions(again)
                    ));
                } else if again.to_string() != text {
                    failures
                        .push(format!("valid.txt:{line}: `{text}` prints as `{again}` (not a fixed point)"));
                }
            }
            Err(e) => {
                failures.push(format!("valid.txt:{line}: `{q}` prints as `{text}`, which is rejected: {e}"))
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn invalid_queries_are_rejected_with_a_position() {
    let mut failures = Vec::new();
    let all = queries("invalid.txt");
    assert!(all.len() >= 300, "the invalid corpus has only {} queries", all.len());
    for (line, q) in &all {
        match parse(q) {
            Ok(p) => failures.push(format!("invalid.txt:{line}: `{q}` was accepted as `{p}`")),
            Err(e) => {
                if !(e.pos.start <= e.pos.end && e.pos.end <= q.len()) {
                    failures.push(format!(
                        "invalid.txt:{line}: `{q}`: error position {:?} outside the query: {e}",
                        e.pos
                    ));
                }
                if !q.is_char_boundary(e.pos.start) || !q.is_char_boundary(e.pos.end) {
                    failures.push(format!(
                        "invalid.txt:{line}: `{q}`: error position {:?} splits a character",
                        e.pos
                    ));
                }
                if e.line == 0
                    || e.column == 0
                    || !e.to_string().starts_with(&format!("{}:{}: ", e.line, e.column))
                {
                    failures.push(format!("invalid.txt:{line}: `{q}`: bad line/column in `{e}`"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// Prints each invalid query's error, to review the messages:
/// `cargo test -p spanlake-traceql --test corpus -- --ignored --nocapture`.
#[test]
#[ignore]
fn show_errors() {
    for (line, q) in queries("invalid.txt") {
        if let Err(e) = parse(&q) {
            let shown: String = q.chars().take(100).collect();
            println!("{line:4} {shown}\n       {e}");
        }
    }
}
