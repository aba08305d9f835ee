//! Plan snapshots: what the TraceQL compiler emits for representative
//! queries, pinned with insta (as InfluxDB IOx pins its plans). A change in
//! the compiler shows up as a readable diff of the logical plan here; the
//! golden files next to this test check that the results stay right.

use std::sync::Arc;

use datafusion::datasource::MemTable;
use spanlake_engine::schema::span_schema;
use spanlake_traceql::search::{SearchRequest, plan_search};

fn plan(query: &str) -> String {
    let ast = spanlake_traceql::parse(query).unwrap();
    let table = Arc::new(MemTable::try_new(span_schema(), vec![vec![]]).unwrap());
    let request = SearchRequest {
        limit: 20,
        spans_per_spanset: 3,
        start_unix_nano: None,
        end_unix_nano: None,
        min_trace_duration: None,
        max_trace_duration: None,
    };
    let plan = plan_search(&ast, table, &request).unwrap();
    // Column lists of the span table are long and identical everywhere: elide them.
    let text = plan.plan.display_indent().to_string();
    text.lines().map(elide_projection).collect::<Vec<_>>().join("\n")
}

fn elide_projection(line: &str) -> String {
    match line.find("Projection: ") {
        Some(at) if line.len() > at + 200 => format!("{}Projection: <{} columns>", &line[..at], line[at..].matches(", ").count() + 1),
        _ => line.to_owned(),
    }
}


#[test]
fn filter_on_intrinsic_and_dedicated_attribute() {
    insta::assert_snapshot!(plan(r#"{ duration > 100ms && span.http.method = "GET" }"#));
}

#[test]
fn numeric_attribute_matches_int_and_float_maps() {
    insta::assert_snapshot!(plan("{ span.retries > 2 }"));
}

#[test]
fn unscoped_attribute_prefers_span_over_resource() {
    insta::assert_snapshot!(plan(r#"{ .env = "prod" }"#));
}

#[test]
fn descendant_is_a_semi_join_on_nested_sets() {
    insta::assert_snapshot!(plan("{ kind = server } >> { kind = client }"));
}

#[test]
fn spanset_and_is_trace_level() {
    insta::assert_snapshot!(plan(r#"{ name = "a" } && { name = "b" }"#));
}

#[test]
fn count_is_an_aggregate_per_trace() {
    insta::assert_snapshot!(plan("{ } | count() > 2"));
}

#[test]
fn by_adds_a_group_column() {
    insta::assert_snapshot!(plan("{ kind = client } | by(resource.service.name) | avg(duration) > 1s"));
}

#[test]
fn event_conditions_unnest_events() {
    insta::assert_snapshot!(plan(r#"{ event:name = "exception" }"#));
}
