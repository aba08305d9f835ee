//! Conversion between OTLP trace messages and the span table.
//!
//! The round trip OTLP → Arrow → OTLP keeps every OTLP field. Two things
//! are normalised, as in any columnar store: attribute order (attributes come
//! back grouped by type, dedicated columns first; OTLP keys are unique, so no
//! information is lost; this holds for resource and scope attributes too)
//! and spans are regrouped under one `ResourceSpans` /
//! `ScopeSpans` per distinct resource and scope. An empty `Status` and no
//! status are the same.

mod attrs;
mod from_arrow;
mod received;
mod to_arrow;
mod wire;

pub use from_arrow::batches_to_resource_spans;
pub use received::{HeldColumn, ReceivedSpans, SpanColumns, wal_schema};
pub use to_arrow::{SpanBatchBuilder, convert_export_request, convert_request, resource_spans_to_batch};
pub use wire::{count_spans, encode_request};

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    fn scalar_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            ".{0,8}".prop_map(Value::StringValue),
            any::<i64>().prop_map(Value::IntValue),
            // NaN never equals itself; finite floats are what matter here.
            (-1e12f64..1e12).prop_map(Value::DoubleValue),
            any::<bool>().prop_map(Value::BoolValue),
            vec(any::<u8>(), 0..6).prop_map(Value::BytesValue),
        ]
    }

    fn any_value() -> impl Strategy<Value = Option<AnyValue>> {
        let leaf = prop_oneof![
            4 => scalar_value().prop_map(|v| Some(AnyValue { value: Some(v) })),
            1 => Just(None),
            1 => Just(Some(AnyValue { value: None })),
        ];
        leaf.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..3).prop_map(|vs| Some(AnyValue {
                    value: Some(Value::ArrayValue(ArrayValue { values: vs.into_iter().flatten().collect() }))
                })),
                vec(("[a-c]{1,2}", inner), 0..3).prop_map(|kvs| Some(AnyValue {
                    value: Some(Value::KvlistValue(KeyValueList {
                        values: kvs.into_iter().map(|(key, value)| KeyValue { key, value, ..Default::default() }).collect()
                    }))
                })),
            ]
        })
    }

    /// Attributes with unique keys; some keys are dedicated-column names.
    fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
        let key = prop_oneof![
            "[a-z.]{1,6}",
            Just("service.name".to_owned()),
            Just("http.method".to_owned()),
            Just("http.status_code".to_owned()),
            Just("k8s.pod.name".to_owned()),
        ];
        proptest::collection::btree_map(key, any_value(), 0..6)
            .prop_map(|m| m.into_iter().map(|(key, value)| KeyValue { key, value, ..Default::default() }).collect())
    }

    fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
        vec(any::<u8>(), len).prop_filter("non-zero id", |v| v.iter().any(|b| *b != 0))
    }

    fn span() -> impl Strategy<Value = Span> {
        (
            (id(16), id(8), prop_oneof![Just(Vec::new()), id(8)], ".{0,4}", any::<u32>(), ".{0,10}", 0..6i32),
            (any::<u64>(), any::<u64>(), attributes(), any::<u32>(), any::<u32>(), any::<u32>()),
            vec((any::<u64>(), ".{0,5}", attributes(), any::<u32>()), 0..3),
            vec((id(16), id(8), ".{0,3}", attributes(), any::<u32>(), any::<u32>()), 0..3),
            prop_oneof![Just(None), (0..3i32, ".{0,5}").prop_map(|(code, message)| Some(Status { code, message }))],
        )
            .prop_map(|(ids, times, events, links, status)| {
                let (trace_id, span_id, parent_span_id, trace_state, flags, name, kind) = ids;
                let (start, end, attributes, dropped_attributes_count, dropped_events_count, dropped_links_count) = times;
                Span {
                    trace_id,
                    span_id,
                    trace_state,
                    parent_span_id,
                    flags,
                    name,
                    kind,
                    start_time_unix_nano: start,
                    end_time_unix_nano: end,
                    attributes,
                    dropped_attributes_count,
                    events: events
                        .into_iter()
                        .map(|(time_unix_nano, name, attributes, dropped_attributes_count)| Event {
                            time_unix_nano,
                            name,
                            attributes,
                            dropped_attributes_count,
                        })
                        .collect(),
                    dropped_events_count,
                    links: links
                        .into_iter()
                        .map(|(trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags)| Link {
                            trace_id,
                            span_id,
                            trace_state,
                            attributes,
                            dropped_attributes_count,
                            flags,
                        })
                        .collect(),
                    dropped_links_count,
                    status,
                }
            })
    }

    fn resource_spans() -> impl Strategy<Value = ResourceSpans> {
        (
            attributes(),
            any::<u32>(),
            ".{0,4}",
            vec(("[a-z]{0,3}", "[0-9.]{0,3}", attributes(), any::<u32>(), ".{0,3}", vec(span(), 1..4)), 1..3),
            prop_oneof![Just(Vec::new()), Just(vec![EntityRef { r#type: "service".into(), ..Default::default() }])],
        )
            .prop_map(|(attributes, dropped, schema_url, scopes, entity_refs)| ResourceSpans {
                resource: Some(Resource { attributes, dropped_attributes_count: dropped, entity_refs }),
                schema_url,
                scope_spans: scopes
                    .into_iter()
                    .map(|(name, version, attributes, dropped, schema_url, spans)| ScopeSpans {
                        scope: Some(InstrumentationScope { name, version, attributes, dropped_attributes_count: dropped }),
                        spans,
                        schema_url,
                    })
                    .collect(),
            })
    }

    /// Puts a message into the normal form described in the module docs.
    fn normalise(resource_spans: &[ResourceSpans]) -> Vec<(Vec<u8>, Vec<u8>, Span)> {
        use prost::Message;
        fn sort_attrs(attrs: &mut [KeyValue]) {
            attrs.sort_by(|a, b| a.key.cmp(&b.key));
        }
        let mut rows = Vec::new();
        for rs in resource_spans {
            let mut resource = rs.resource.clone().unwrap_or_default();
            sort_attrs(&mut resource.attributes);
            let mut resource_key = resource.encode_to_vec();
            resource_key.extend(rs.schema_url.as_bytes());
            for ss in &rs.scope_spans {
                let mut scope = ss.scope.clone().unwrap_or_default();
                sort_attrs(&mut scope.attributes);
                let mut scope_key = scope.encode_to_vec();
                scope_key.extend(ss.schema_url.as_bytes());
                for span in &ss.spans {
                    let mut span = span.clone();
                    sort_attrs(&mut span.attributes);
                    span.events.iter_mut().for_each(|e| sort_attrs(&mut e.attributes));
                    span.links.iter_mut().for_each(|l| sort_attrs(&mut l.attributes));
                    if span.status == Some(Status::default()) {
                        span.status = None;
                    }
                    rows.push((resource_key.clone(), scope_key.clone(), span));
                }
            }
        }
        rows.sort_by(|a, b| (&a.0, &a.1, &a.2.span_id, &a.2.trace_id).cmp(&(&b.0, &b.1, &b.2.span_id, &b.2.trace_id)));
        rows
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn otlp_arrow_otlp_round_trip_is_lossless(input in vec(resource_spans(), 1..3)) {
            let (batch, rejected) = resource_spans_to_batch(&input).unwrap();
            prop_assert!(rejected.is_empty());
            let output = batches_to_resource_spans(&[batch]).unwrap();
            prop_assert_eq!(normalise(&input), normalise(&output));
        }
    }

    #[test]
    fn invalid_spans_are_rejected_not_stored() {
        let good = Span { trace_id: vec![1; 16], span_id: vec![2; 8], name: "ok".into(), ..Default::default() };
        let bad_trace = Span { trace_id: vec![0; 16], span_id: vec![2; 8], ..Default::default() };
        let short_span = Span { trace_id: vec![1; 16], span_id: vec![2; 3], ..Default::default() };
        let rs = ResourceSpans {
            scope_spans: vec![ScopeSpans { spans: vec![good, bad_trace, short_span], ..Default::default() }],
            ..Default::default()
        };
        let (batch, rejected) = resource_spans_to_batch(&[rs]).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(rejected.len(), 2);
    }

    #[test]
    fn a_request_that_would_expand_past_the_limit_is_refused_before_anything_is_allocated() {
        let big = KeyValue {
            key: "blob".into(),
            value: Some(AnyValue { value: Some(Value::StringValue("x".repeat(1 << 20))) }),
            ..Default::default()
        };
        let spans = |valid: bool| -> Vec<Span> {
            (1..=2000u32)
                .map(|i| Span {
                    trace_id: if valid { [i.to_be_bytes().as_slice(), &[1; 12]].concat() } else { Vec::new() },
                    span_id: vec![1; 8],
                    ..Default::default()
                })
                .collect()
        };
        let request = |valid| {
            vec![ResourceSpans {
                resource: Some(Resource { attributes: vec![big.clone()], ..Default::default() }),
                scope_spans: vec![ScopeSpans { spans: spans(valid), ..Default::default() }],
                ..Default::default()
            }]
        };
        // 1 MiB on each of 2000 spans: 2 GiB of span columns.
        let error = convert_request(&request(true)).unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::InvalidArgument);
        assert!(error.to_string().contains("send fewer spans per request"), "{error}");
        // Spans rejected for their ids do not count.
        let (received, rejected) = convert_request(&request(false)).unwrap();
        assert_eq!((received.num_rows(), rejected.len()), (0, 2000));
        // Nor may a request hold more than a million spans (empty ones here: 2 bytes each).
        let field = |tag: u8, body: Vec<u8>| {
            let mut out = vec![tag];
            prost::encode_length_delimiter(body.len(), &mut out).unwrap();
            out.extend(body);
            out
        };
        let empty_spans = [0x12u8, 0x00].repeat(super::to_arrow::MAX_REQUEST_SPANS + 1);
        let body = field(0x0a, field(0x12, empty_spans));
        let error = convert_export_request(&body).unwrap_err();
        assert!(error.to_string().contains("send fewer spans per request"), "{error}");
    }

    #[test]
    fn a_request_is_converted_into_builders_sized_for_it() {
        let str_attr = |key: &str, value: String| KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(Value::StringValue(value)) }),
            ..Default::default()
        };
        let spans = (1..=2000u32)
            .map(|i| Span {
                trace_id: [i.to_be_bytes().as_slice(), &[1; 12]].concat(),
                span_id: [i.to_be_bytes().as_slice(), &[1; 4]].concat(),
                name: format!("operation {}", i % 7),
                attributes: vec![str_attr("http.method", "GET".into()), str_attr("peer.address", format!("10.0.0.{}:8080", i % 250))],
                events: vec![Event { name: "retry".into(), attributes: vec![str_attr("attempt", i.to_string())], ..Default::default() }],
                ..Default::default()
            })
            .collect();
        let resource = Resource { attributes: vec![str_attr("service.name", "cart".into()), str_attr("host.name", "node-1".into())], ..Default::default() };
        let rs = vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }];
        let (sized, _) = convert_request(&rs).unwrap();
        let mut grown = SpanBatchBuilder::new();
        grown.append_resource_spans(&rs[0], |reason| panic!("{reason}")).unwrap();
        let grown = grown.finish_received().unwrap();
        assert_eq!(sized.to_batch().unwrap(), grown.to_batch().unwrap());
        // Builders that grow while appending copy their buffers and end with
        // spare capacity, which the head then holds until its block is written.
        assert!(
            sized.memory_size() < grown.memory_size(),
            "{} bytes sized for the request, {} grown",
            sized.memory_size(),
            grown.memory_size()
        );
    }

    #[test]
    fn a_request_is_converted_in_block_order_with_a_row_of_each_resource_and_scope() {
        use arrow::array::AsArray;
        use crate::block::TagSummary;
        let span = |trace: u8, start: u64, id: u8| Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            start_time_unix_nano: start,
            ..Default::default()
        };
        let resource = |service: &str| {
            Some(Resource {
                attributes: vec![
                    KeyValue { key: "service.name".into(), value: Some(AnyValue { value: Some(Value::StringValue(service.into())) }), ..Default::default() },
                    KeyValue { key: "host".into(), value: Some(AnyValue { value: Some(Value::IntValue(service.len() as i64)) }), ..Default::default() },
                ],
                ..Default::default()
            })
        };
        let scope = |name: &str, spans: Vec<Span>| ScopeSpans {
            scope: Some(InstrumentationScope { name: name.into(), ..Default::default() }),
            spans,
            ..Default::default()
        };
        let request = vec![
            ResourceSpans {
                resource: resource("front"),
                scope_spans: vec![scope("http", vec![span(2, 5, 1), span(1, 9, 2)]), scope("db", vec![span(2, 1, 3), span(0, 1, 9)])],
                ..Default::default()
            },
            ResourceSpans { resource: resource("cart"), scope_spans: vec![scope("http", vec![span(1, 3, 4), span(2, 5, 0)])], ..Default::default() },
        ];
        let (received, rejected) = convert_request(&request).unwrap();
        assert_eq!(rejected.len(), 2, "all-zero trace and span ids");
        let batch = received.to_batch().unwrap();
        let ids = |name: &str| -> Vec<u8> {
            let column = batch.column(crate::schema::column_index(name));
            let ids = column.as_any().downcast_ref::<arrow::array::FixedSizeBinaryArray>().unwrap();
            ids.iter().map(|id| id.unwrap()[0]).collect()
        };
        assert_eq!(ids("trace_id"), [1, 1, 2, 2]);
        assert_eq!(ids("span_id"), [4, 2, 3, 1], "by trace, then start");
        // A scope row each, in the order the spans (in block order) first use them.
        let held = |name: &str| received.held(crate::schema::column_index(name)).unwrap();
        let scope_names: Vec<_> = held("scope_name").array.as_string::<i32>().iter().map(Option::unwrap).collect();
        assert_eq!(scope_names, ["http", "http", "db"]);
        let services: Vec<_> = held("service_name").array.as_string::<i32>().iter().map(Option::unwrap).collect();
        assert_eq!(services, ["cart", "front", "front"]);
        assert_eq!(held("scope_name").rows.unwrap(), [0, 1, 2, 1]);
        let mut from_rows = TagSummary::default();
        from_rows.add_resources(&received).unwrap();
        let mut from_all = TagSummary::default();
        from_all.add_resources(&batch).unwrap();
        assert_eq!(from_rows, from_all);
        assert_eq!(from_all.scopes["resource"]["service.name"].values["string"].len(), 2);
    }
}
