//! The fixed query set of sections 3 and 4: each question as TraceQL (run by
//! Spanlake over HTTP) and as hand-written SQL (run by DuckDB over the same
//! Parquet files), and the answers they are compared by.
//!
//! Search questions are compared by the set of matching trace ids; the
//! metrics question by the total per series (span count per service).
//! Enum values are OTLP's: kind server = 2, client = 3; status error = 2.

use std::collections::{BTreeMap, BTreeSet};

/// How a question is asked of Spanlake and what its answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `GET /api/search`; the answer is the set of trace ids.
    Search,
    /// `GET /api/metrics/query_range`; the answer is each series' total.
    Metrics,
}

/// One question of the set.
#[derive(Debug, Clone)]
pub struct BenchQuery {
    /// Short name used in tables and CSV.
    pub name: &'static str,
    /// The TraceQL query.
    pub traceql: &'static str,
    /// The same question as DuckDB SQL over the view `spans`: one column of
    /// lowercase hex trace ids (search), or (series label, count) (metrics).
    pub sql: String,
    /// Search or metrics.
    pub kind: Kind,
}

/// An answer, as compared between the engines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Matching trace ids, lowercase hex.
    Traces(BTreeSet<String>),
    /// A search answer that reached the API's limit: the most recent
    /// matching traces, not all of them (medium's broad queries match more
    /// traces than one answer may carry).
    CappedTraces(BTreeSet<String>),
    /// Total per series label.
    Counts(BTreeMap<String, u64>),
}

impl Answer {
    /// Number of traces or series total.
    pub fn size(&self) -> u64 {
        match self {
            Answer::Traces(t) | Answer::CappedTraces(t) => t.len() as u64,
            Answer::Counts(c) => c.values().sum(),
        }
    }

    /// A short description of how `self` differs from `other` (empty when equal).
    pub fn difference(&self, other: &Answer) -> String {
        match (self, other) {
            // A capped answer agrees when every trace it holds matched (DuckDB finds them all).
            (Answer::CappedTraces(a), Answer::Traces(b)) if a.is_subset(b) => String::new(),
            (Answer::Traces(a) | Answer::CappedTraces(a), Answer::Traces(b)) => {
                let only_a: Vec<_> = a.difference(b).take(3).collect();
                let only_b: Vec<_> = b.difference(a).take(3).collect();
                if only_a.is_empty() && only_b.is_empty() {
                    String::new()
                } else {
                    format!(
                        "{} vs {} traces; only in Spanlake: {} (e.g. {only_a:?}); only in DuckDB: {} (e.g. {only_b:?})",
                        a.len(),
                        b.len(),
                        a.difference(b).count(),
                        b.difference(a).count()
                    )
                }
            }
            (Answer::Counts(a), Answer::Counts(b)) if a == b => String::new(),
            (a, b) => format!("Spanlake {a:?} vs DuckDB {b:?}"),
        }
    }
}

/// `SELECT DISTINCT` hex trace ids of the spans matching `condition`.
fn traces_where(condition: &str) -> String {
    format!("SELECT DISTINCT lower(hex(trace_id)) FROM spans WHERE {condition}")
}

/// Trace ids having an `l` span and an `r` span related by `relation`
/// (nested-set columns; 0 means not reachable from a root).
fn structural(left: &str, right: &str, relation: &str) -> String {
    format!(
        "SELECT DISTINCT lower(hex(l.trace_id)) FROM spans l JOIN spans r ON l.trace_id = r.trace_id AND {relation} \
         WHERE {} AND {}",
        left.replace("{s}", "l"),
        right.replace("{s}", "r"),
    )
}

/// The query set.
pub fn query_set() -> Vec<BenchQuery> {
    let search = |name, traceql, sql: String| BenchQuery { name, traceql, sql, kind: Kind::Search };
    vec![
        search("attr match (map)", r#"{ span.db.operation = "INSERT" }"#, traces_where("span_attrs_str['db.operation'] = 'INSERT'")),
        search("attr no match", r#"{ span.db.operation = "NO-SUCH-OP" }"#, traces_where("span_attrs_str['db.operation'] = 'NO-SUCH-OP'")),
        search("attr match (dedicated)", r#"{ span.http.route = "/checkout" }"#, traces_where("http_route = '/checkout'")),
        search("resource filter", r#"{ resource.service.name = "checkout" }"#, traces_where("service_name = 'checkout'")),
        search("kind = client", "{ kind = client }", traces_where("kind = 3")),
        search(
            "duration range",
            "{ duration > 100ms && duration < 200ms }",
            traces_where("duration_nano > 100000000 AND duration_nano < 200000000"),
        ),
        search("regex", r#"{ name =~ "GET /products.*" }"#, traces_where("regexp_full_match(name, 'GET /products.*')")),
        search("status = error", "{ status = error }", traces_where("status_code = 2")),
        search(
            "descendant >>",
            "{ kind = server } >> { status = error }",
            structural(
                "{s}.kind = 2",
                "{s}.status_code = 2",
                "l.nested_set_left > 0 AND r.nested_set_left > l.nested_set_left AND r.nested_set_right < l.nested_set_right",
            ),
        ),
        search(
            "child >",
            "{ kind = server } > { kind = client }",
            structural("{s}.kind = 2", "{s}.kind = 3", "l.nested_set_left > 0 AND r.nested_set_parent = l.nested_set_left"),
        ),
        search(
            "sibling ~",
            r#"{ span.db.system = "redis" } ~ { span.db.system = "postgresql" }"#,
            structural(
                "{s}.db_system = 'redis'",
                "{s}.db_system = 'postgresql'",
                "l.nested_set_parent > 0 AND l.nested_set_parent = r.nested_set_parent AND l.span_id <> r.span_id",
            ),
        ),
        search(
            "&& across spansets",
            r#"{ span.db.system = "redis" } && { status = error }"#,
            format!("{} INTERSECT {}", traces_where("db_system = 'redis'"), traces_where("status_code = 2")),
        ),
        search(
            "count() > n",
            "{ kind = client } | count() > 20",
            "SELECT lower(hex(trace_id)) FROM spans WHERE kind = 3 GROUP BY trace_id HAVING count(*) > 20".to_owned(),
        ),
        search(
            "avg(duration) by",
            "{ kind = server } | by(resource.service.name) | avg(duration) > 500ms",
            "SELECT DISTINCT lower(hex(trace_id)) FROM spans WHERE kind = 2 GROUP BY trace_id, service_name \
             HAVING avg(duration_nano) > 500000000"
                .to_owned(),
        ),
        search("select", "{ status = error } | select(span.http.route, resource.service.name)", traces_where("status_code = 2")),
        BenchQuery {
            name: "metrics count_over_time by",
            traceql: "{ status = error } | count_over_time() by (resource.service.name)",
            sql: "SELECT service_name, count(*) FROM spans WHERE status_code = 2 GROUP BY service_name".to_owned(),
            kind: Kind::Metrics,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traces(ids: &[&str]) -> Answer {
        Answer::Traces(ids.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn equal_answers_have_no_difference() {
        assert_eq!(traces(&["a", "b"]).difference(&traces(&["b", "a"])), "");
        let counts = Answer::Counts([("web".to_owned(), 3)].into());
        assert_eq!(counts.difference(&counts.clone()), "");
    }

    #[test]
    fn differences_name_both_sides() {
        let d = traces(&["a", "b"]).difference(&traces(&["b", "c"]));
        assert!(d.contains("only in Spanlake: 1") && d.contains("\"a\"") && d.contains("only in DuckDB: 1") && d.contains("\"c\""), "{d}");
        let d = Answer::Counts([("web".to_owned(), 3)].into()).difference(&Answer::Counts([("web".to_owned(), 4)].into()));
        assert!(d.contains('3') && d.contains('4'), "{d}");
    }

    #[test]
    fn a_capped_answer_agrees_only_when_all_its_traces_matched() {
        let capped = |ids: &[&str]| Answer::CappedTraces(ids.iter().map(|s| (*s).to_owned()).collect());
        assert_eq!(capped(&["a", "b"]).difference(&traces(&["a", "b", "c"])), "");
        let d = capped(&["a", "x"]).difference(&traces(&["a", "b", "c"]));
        assert!(d.contains("only in Spanlake: 1"), "{d}");
    }

    #[test]
    fn every_query_is_named_once() {
        let set = query_set();
        let names: BTreeSet<_> = set.iter().map(|q| q.name).collect();
        assert_eq!(names.len(), set.len());
    }
}
