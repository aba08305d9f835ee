//! Tempo's JSON for traces: protobuf-JSON conventions (lowerCamel names,
//! 64-bit integers as strings, enums by name, zero values omitted, ids in
//! base64), which is what Tempo's Go marshaller emits and Grafana reads.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use serde_json::{Map, Value as Json, json};

/// Builds a JSON object, leaving out fields whose value is a proto3 default.
struct Obj(Map<String, Json>);

impl Obj {
    fn new() -> Self {
        Obj(Map::new())
    }
    fn str(mut self, key: &str, v: &str) -> Self {
        if !v.is_empty() {
            self.0.insert(key.into(), json!(v));
        }
        self
    }
    fn bytes(mut self, key: &str, v: &[u8]) -> Self {
        if !v.is_empty() {
            self.0.insert(key.into(), json!(BASE64.encode(v)));
        }
        self
    }
    fn u64(mut self, key: &str, v: u64) -> Self {
        if v != 0 {
            self.0.insert(key.into(), json!(v.to_string()));
        }
        self
    }
    fn u32(mut self, key: &str, v: u32) -> Self {
        if v != 0 {
            self.0.insert(key.into(), json!(v));
        }
        self
    }
    fn list(mut self, key: &str, v: Vec<Json>) -> Self {
        if !v.is_empty() {
            self.0.insert(key.into(), Json::Array(v));
        }
        self
    }
    fn obj(mut self, key: &str, v: Option<Json>) -> Self {
        if let Some(v) = v {
            self.0.insert(key.into(), v);
        }
        self
    }
    fn done(self) -> Json {
        Json::Object(self.0)
    }
}

fn any_value(v: &AnyValue) -> Json {
    match &v.value {
        None => json!({}),
        Some(Value::StringValue(s)) => json!({ "stringValue": s }),
        Some(Value::BoolValue(b)) => json!({ "boolValue": b }),
        Some(Value::IntValue(i)) => json!({ "intValue": i.to_string() }),
        // Protobuf JSON spells non-finite doubles as strings.
        Some(Value::DoubleValue(d)) if d.is_nan() => json!({ "doubleValue": "NaN" }),
        Some(Value::DoubleValue(d)) if d.is_infinite() => {
            json!({ "doubleValue": if *d > 0.0 { "Infinity" } else { "-Infinity" } })
        }
        Some(Value::DoubleValue(d)) => json!({ "doubleValue": d }),
        Some(Value::BytesValue(b)) => json!({ "bytesValue": BASE64.encode(b) }),
        Some(Value::ArrayValue(a)) => json!({ "arrayValue": Obj::new().list("values", a.values.iter().map(any_value).collect()).done() }),
        Some(Value::KvlistValue(kv)) => json!({ "kvlistValue": Obj::new().list("values", attributes(&kv.values)).done() }),
        // Only meaningful inside OTLP profiles; kept as sent.
        Some(Value::StringValueStrindex(i)) => json!({ "stringValueStrindex": i }),
    }
}

fn attributes(kvs: &[KeyValue]) -> Vec<Json> {
    kvs.iter()
        .map(|kv| Obj::new().str("key", &kv.key).obj("value", kv.value.as_ref().map(any_value)).done())
        .collect()
}

fn scope(s: &InstrumentationScope) -> Json {
    Obj::new()
        .str("name", &s.name)
        .str("version", &s.version)
        .list("attributes", attributes(&s.attributes))
        .u32("droppedAttributesCount", s.dropped_attributes_count)
        .done()
}

fn event(e: &Event) -> Json {
    Obj::new()
        .u64("timeUnixNano", e.time_unix_nano)
        .str("name", &e.name)
        .list("attributes", attributes(&e.attributes))
        .u32("droppedAttributesCount", e.dropped_attributes_count)
        .done()
}

fn link(l: &Link) -> Json {
    Obj::new()
        .bytes("traceId", &l.trace_id)
        .bytes("spanId", &l.span_id)
        .str("traceState", &l.trace_state)
        .list("attributes", attributes(&l.attributes))
        .u32("droppedAttributesCount", l.dropped_attributes_count)
        .u32("flags", l.flags)
        .done()
}

fn span(s: &Span) -> Json {
    let kind = SpanKind::try_from(s.kind).map(|k| k.as_str_name()).unwrap_or("SPAN_KIND_UNSPECIFIED");
    let status = s.status.as_ref().map(|st| {
        let code = StatusCode::try_from(st.code).map(|c| c.as_str_name()).unwrap_or("STATUS_CODE_UNSET");
        let mut o = Obj::new().str("message", &st.message);
        if st.code != 0 {
            o = o.str("code", code);
        }
        o.done()
    });
    let mut o = Obj::new()
        .bytes("traceId", &s.trace_id)
        .bytes("spanId", &s.span_id)
        .str("traceState", &s.trace_state)
        .bytes("parentSpanId", &s.parent_span_id)
        .u32("flags", s.flags)
        .str("name", &s.name);
    if s.kind != 0 {
        o = o.str("kind", kind);
    }
    o.u64("startTimeUnixNano", s.start_time_unix_nano)
        .u64("endTimeUnixNano", s.end_time_unix_nano)
        .list("attributes", attributes(&s.attributes))
        .u32("droppedAttributesCount", s.dropped_attributes_count)
        .list("events", s.events.iter().map(event).collect())
        .u32("droppedEventsCount", s.dropped_events_count)
        .list("links", s.links.iter().map(link).collect())
        .u32("droppedLinksCount", s.dropped_links_count)
        .obj("status", status)
        .done()
}

/// One `ResourceSpans` in Tempo's JSON.
pub fn resource_spans(rs: &ResourceSpans) -> Json {
    let resource = rs.resource.as_ref().map(|r| {
        Obj::new()
            .list("attributes", attributes(&r.attributes))
            .u32("droppedAttributesCount", r.dropped_attributes_count)
            .done()
    });
    let scope_spans = rs
        .scope_spans
        .iter()
        .map(|ss| {
            Obj::new()
                .obj("scope", ss.scope.as_ref().map(scope))
                .list("spans", ss.spans.iter().map(span).collect())
                .str("schemaUrl", &ss.schema_url)
                .done()
        })
        .collect();
    Obj::new().obj("resource", resource).list("scopeSpans", scope_spans).str("schemaUrl", &rs.schema_url).done()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Status};

    #[test]
    fn follows_protobuf_json_conventions() {
        let rs = ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: "GET /".into(),
                    kind: 2,
                    start_time_unix_nano: 1684778327699392724,
                    attributes: vec![KeyValue {
                        key: "n".into(),
                        value: Some(AnyValue { value: Some(Value::IntValue(7)) }),
                        ..Default::default()
                    }],
                    status: Some(Status { code: 2, message: "boom".into() }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let j = resource_spans(&rs);
        let s = &j["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "AQEBAQEBAQEBAQEBAQEBAQ==");
        assert_eq!(s["kind"], "SPAN_KIND_SERVER");
        assert_eq!(s["startTimeUnixNano"], "1684778327699392724");
        assert!(s.get("endTimeUnixNano").is_none(), "zero values are omitted");
        assert_eq!(s["attributes"][0]["value"]["intValue"], "7");
        assert_eq!(s["status"]["code"], "STATUS_CODE_ERROR");
    }
}
