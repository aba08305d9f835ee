//! The fixed query set of sections 3 and 4: each question as TraceQL (run by
//! Spanlake over HTTP) and as hand-written SQL (run by DuckDB over the same
//! Parquet files), and the answers they are compared by.
//!
//! A search question's SQL answers what Tempo's search answers: the
//! `limit` most recent matching traces, each with its root service and
//! name, start and duration, its spansets (matched span count and the most
//! recent `spss` spans with id, name, start, duration and selected values)
//! and per-service span and error counts. The same question's trace ids
//! alone are timed too (`ids_sql`). Answers are compared by the set of
//! trace ids; the metrics question by the total per series (span count per
//! service). Enum values are OTLP's: kind server = 2, client = 3; status
//! error = 2.

use std::collections::{BTreeMap, BTreeSet};

use crate::traceql::DataRange;

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
    /// The same question as DuckDB SQL over the view `spans`: Tempo's search
    /// answer, lowercase hex trace id first (search), or (series label,
    /// count, time bucket) for each point of each series (metrics).
    pub sql: String,
    /// Only the matching trace ids (search), for reference.
    pub ids_sql: Option<String>,
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

/// Most traces a search answer carries: the bench's `limit`.
pub const SEARCH_LIMIT: usize = 100_000;

/// Spans per spanset a search answer carries: the bench's `spss`.
pub const SPANS_PER_SPANSET: usize = 1;

/// The columns of a matched span that an answer is made of.
const MATCHED_COLUMNS: [&str; 11] = [
    "trace_id",
    "span_id",
    "name",
    "start_unix_nano",
    "duration_nano",
    "status_code",
    "service_name",
    "trace_root_service",
    "trace_root_name",
    "trace_start_unix_nano",
    "trace_duration_nano",
];

/// The matched-span columns of the table alias `alias`.
fn matched_columns(alias: &str) -> String {
    MATCHED_COLUMNS.map(|c| format!("{alias}.{c}")).join(", ")
}

/// A search question: the SQL selecting its matched spans (the
/// [`MATCHED_COLUMNS`] plus `select` values), the expression keying its
/// spansets (`by()`), and the values `select()`ed onto each span.
struct Matched {
    spans: String,
    spanset_key: &'static str,
    select: &'static [&'static str],
}

impl Matched {
    /// Spans of `spans` matching `condition`.
    fn filter(condition: &str) -> Self {
        Matched { spans: format!("SELECT {} FROM spans s WHERE {condition}", matched_columns("s")), spanset_key: "NULL", select: &[] }
    }

    /// `r` spans having an `l` span related to them by `relation` in their
    /// trace (nested-set columns; 0 means not reachable from a root).
    fn structural(left: &str, right: &str, relation: &str) -> Self {
        let spans = format!(
            "SELECT {} FROM spans r WHERE {} AND EXISTS (SELECT 1 FROM spans l WHERE l.trace_id = r.trace_id AND {relation} AND {})",
            matched_columns("r"),
            right.replace("{s}", "r"),
            left.replace("{s}", "l"),
        );
        Matched { spans, spanset_key: "NULL", select: &[] }
    }

    /// The trace ids alone.
    fn ids_sql(&self) -> String {
        format!("SELECT DISTINCT lower(hex(trace_id)) FROM ({})", self.spans)
    }

    /// Tempo's search answer, most recent trace first.
    fn answer_sql(&self) -> String {
        let Matched { spans, spanset_key, select } = self;
        let selected: String = select.iter().map(|c| format!(", {c} := {c}")).collect();
        // The matched spans of the chosen traces only, read once.
        format!(
            "WITH matched AS MATERIALIZED (SELECT *, {spanset_key} AS spanset_key FROM ({spans}) s), \
             chosen AS (SELECT trace_id, max(trace_start_unix_nano) AS rank FROM matched GROUP BY trace_id \
               ORDER BY rank DESC NULLS FIRST, trace_id LIMIT {SEARCH_LIMIT}), \
             m AS MATERIALIZED (SELECT * FROM matched SEMI JOIN chosen USING (trace_id)), \
             spansets AS (SELECT trace_id, list(struct_pack(key := spanset_key, matched := matched, spans := spans) ORDER BY spanset_key) AS spansets \
               FROM (SELECT trace_id, spanset_key, count(DISTINCT span_id) AS matched, \
                 list(struct_pack(span_id := lower(hex(span_id)), name := name, start := start_unix_nano, duration := duration_nano{selected}) \
                   ORDER BY start_unix_nano DESC, span_id)[1:{SPANS_PER_SPANSET}] AS spans \
                 FROM m GROUP BY trace_id, spanset_key) GROUP BY trace_id), \
             services AS (SELECT trace_id, list(struct_pack(service := service_name, spans := spans, errors := errors) ORDER BY service_name) AS services \
               FROM (SELECT trace_id, service_name, count(*) AS spans, count(*) FILTER (WHERE status_code = 2) AS errors \
                 FROM m GROUP BY trace_id, service_name) GROUP BY trace_id), \
             traces AS (SELECT trace_id, any_value(trace_root_service) AS root_service, any_value(trace_root_name) AS root_name, \
               min(trace_start_unix_nano) AS start, max(trace_start_unix_nano + trace_duration_nano) - min(trace_start_unix_nano) AS duration \
               FROM m GROUP BY trace_id) \
             SELECT lower(hex(t.trace_id)), t.root_service, t.root_name, t.start, t.duration, p.spansets, v.services \
             FROM traces t JOIN chosen c USING (trace_id) JOIN spansets p USING (trace_id) JOIN services v USING (trace_id) \
             ORDER BY c.rank DESC NULLS FIRST, t.trace_id"
        )
    }
}

/// The query set; the metrics question covers `range`.
pub fn query_set(range: DataRange) -> Vec<BenchQuery> {
    let search = |name, traceql, matched: Matched| BenchQuery {
        name,
        traceql,
        sql: matched.answer_sql(),
        ids_sql: Some(matched.ids_sql()),
        kind: Kind::Search,
    };
    vec![
        search("attr match (map)", r#"{ span.db.operation = "INSERT" }"#, Matched::filter("span_attrs_str['db.operation'] = 'INSERT'")),
        search("attr no match", r#"{ span.db.operation = "NO-SUCH-OP" }"#, Matched::filter("span_attrs_str['db.operation'] = 'NO-SUCH-OP'")),
        search("attr match (dedicated)", r#"{ span.http.route = "/checkout" }"#, Matched::filter("http_route = '/checkout'")),
        search("resource filter", r#"{ resource.service.name = "checkout" }"#, Matched::filter("service_name = 'checkout'")),
        search("kind = client", "{ kind = client }", Matched::filter("kind = 3")),
        search(
            "duration range",
            "{ duration > 100ms && duration < 200ms }",
            Matched::filter("duration_nano > 100000000 AND duration_nano < 200000000"),
        ),
        search("regex", r#"{ name =~ "GET /products.*" }"#, Matched::filter("regexp_full_match(name, 'GET /products.*')")),
        search("status = error", "{ status = error }", Matched::filter("status_code = 2")),
        search(
            "descendant >>",
            "{ kind = server } >> { status = error }",
            Matched::structural(
                "{s}.kind = 2",
                "{s}.status_code = 2",
                "l.nested_set_left > 0 AND r.nested_set_left > l.nested_set_left AND r.nested_set_right < l.nested_set_right",
            ),
        ),
        search(
            "child >",
            "{ kind = server } > { kind = client }",
            Matched::structural("{s}.kind = 2", "{s}.kind = 3", "l.nested_set_left > 0 AND r.nested_set_parent = l.nested_set_left"),
        ),
        search(
            "sibling ~",
            r#"{ span.db.system = "redis" } ~ { span.db.system = "postgresql" }"#,
            Matched::structural(
                "{s}.db_system = 'redis'",
                "{s}.db_system = 'postgresql'",
                "l.nested_set_parent > 0 AND l.nested_set_parent = r.nested_set_parent AND l.span_id <> r.span_id",
            ),
        ),
        search(
            "&& across spansets",
            r#"{ span.db.system = "redis" } && { status = error }"#,
            Matched::filter(
                "(db_system = 'redis' OR status_code = 2) AND trace_id IN \
                 (SELECT trace_id FROM spans WHERE db_system = 'redis' INTERSECT SELECT trace_id FROM spans WHERE status_code = 2)",
            ),
        ),
        search(
            "count() > n",
            "{ kind = client } | count() > 20",
            Matched::filter("kind = 3 AND trace_id IN (SELECT trace_id FROM spans WHERE kind = 3 GROUP BY trace_id HAVING count(*) > 20)"),
        ),
        search("avg(duration) by", "{ kind = server } | by(resource.service.name) | avg(duration) > 500ms", {
            let groups = "SELECT trace_id, service_name FROM spans WHERE kind = 2 GROUP BY trace_id, service_name \
                          HAVING avg(duration_nano) > 500000000";
            let spans = format!("SELECT {} FROM spans s SEMI JOIN ({groups}) g USING (trace_id, service_name) WHERE s.kind = 2", matched_columns("s"));
            Matched { spans, spanset_key: "service_name", select: &[] }
        }),
        search("select", "{ status = error } | select(span.http.route, resource.service.name)", {
            let spans = format!("SELECT {}, s.http_route FROM spans s WHERE status_code = 2", matched_columns("s"));
            Matched { spans, spanset_key: "NULL", select: &["http_route", "service_name"] }
        }),
        BenchQuery {
            name: "metrics count_over_time by",
            traceql: "{ status = error } | count_over_time() by (resource.service.name)",
            // The same series as Tempo's answer: a count per service and
            // step over the range, not one total per service.
            sql: format!(
                "SELECT service_name, count(*), {start} + (start_unix_nano - {start}) // {step} * {step} AS bucket \
                 FROM spans WHERE status_code = 2 AND start_unix_nano >= {start} AND start_unix_nano < {end} \
                 GROUP BY service_name, bucket",
                start = range.start_unix_nano,
                end = range.end_unix_nano,
                step = range.step_seconds() * 1_000_000_000,
            ),
            ids_sql: None,
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
        let set = query_set(DataRange { start_unix_nano: 0, end_unix_nano: 100_000_000_000 });
        let names: BTreeSet<_> = set.iter().map(|q| q.name).collect();
        assert_eq!(names.len(), set.len());
    }
}
