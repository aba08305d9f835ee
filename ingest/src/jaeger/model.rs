//! The Jaeger span model both Jaeger wire formats decode into (thrift's
//! `jaeger.thrift` and protobuf's `jaeger.api_v2`), and its one
//! translation into OTLP, following the OpenTelemetry Collector's Jaeger
//! translator (see `docs/ingest.md` for the table).

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span as OtlpSpan, Status};

use crate::translate::{
    Grouper, OTEL_STATUS_CODE, OTEL_STATUS_DESCRIPTION, SERVICE_NAME, kv, kv_str, span_kind_from_name,
    status_code_from_name, status_from_http, take_attr, take_scope, value_to_string,
};

/// Span tag naming the OpenTracing span kind.
pub const SPAN_KIND_TAG: &str = "span.kind";
/// Span tag marking an error (boolean).
pub const ERROR_TAG: &str = "error";
/// Span tag carrying the W3C trace state.
pub const TRACE_STATE_TAG: &str = "w3c.tracestate";
/// Log field naming the event.
pub const EVENT_FIELD: &str = "event";
/// Link attribute naming the reference type.
pub const REF_TYPE_ATTR: &str = "opentracing.ref_type";

/// A batch of spans from one reporter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// The reporting process; spans without their own use it.
    pub process: Option<Process>,
    pub spans: Vec<Span>,
}

/// The process (service) that recorded spans.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Process {
    pub service_name: String,
    pub tags: Vec<Tag>,
}

/// A typed key/value (span tag, process tag, log field).
#[derive(Debug, Clone, PartialEq)]
pub struct Tag {
    pub key: String,
    pub value: TagValue,
}

/// Jaeger's tag value types.
#[derive(Debug, Clone, PartialEq)]
pub enum TagValue {
    String(String),
    Bool(bool),
    Long(i64),
    Double(f64),
    Binary(Vec<u8>),
}

/// A log: fields at a time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Log {
    pub time_unix_nano: u64,
    pub fields: Vec<Tag>,
}

/// Kinds of span references.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefType {
    ChildOf,
    FollowsFrom,
}

/// A reference to another span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRef {
    pub ref_type: RefType,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

/// One span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub operation_name: String,
    /// References; the parent is the first CHILD_OF one in the same trace.
    pub references: Vec<SpanRef>,
    pub flags: u32,
    pub start_unix_nano: u64,
    pub duration_nano: u64,
    pub tags: Vec<Tag>,
    pub logs: Vec<Log>,
    /// The span's own process, when it carries one (OTel's Jaeger gRPC
    /// exporter leaves the batch's empty and sets it per span).
    pub process: Option<Process>,
}

/// A 128-bit trace id from Jaeger's high and low halves (a 64-bit id has
/// `high == 0`: it is padded with zeros in front).
pub fn trace_id(high: i64, low: i64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&high.to_be_bytes());
    id[8..].copy_from_slice(&low.to_be_bytes());
    id
}

impl Tag {
    fn to_otlp(&self) -> KeyValue {
        let value = match &self.value {
            TagValue::String(s) => Value::StringValue(s.clone()),
            TagValue::Bool(b) => Value::BoolValue(*b),
            TagValue::Long(i) => Value::IntValue(*i),
            TagValue::Double(d) => Value::DoubleValue(*d),
            TagValue::Binary(b) => Value::BytesValue(b.clone()),
        };
        kv(self.key.clone(), value)
    }
}

fn to_attributes(tags: &[Tag]) -> Vec<KeyValue> {
    tags.iter().map(Tag::to_otlp).collect()
}

impl Process {
    fn to_resource(&self) -> Resource {
        let mut attributes = Vec::with_capacity(self.tags.len() + 1);
        if !self.service_name.is_empty() {
            attributes.push(kv_str(SERVICE_NAME, self.service_name.clone()));
        }
        attributes.extend(self.tags.iter().filter(|t| t.key != SERVICE_NAME).map(Tag::to_otlp));
        Resource { attributes, ..Default::default() }
    }
}

impl Batch {
    /// Translates the batch into OTLP, one `ResourceSpans` per distinct
    /// process (a span's own process wins over the batch's).
    pub fn into_otlp(self) -> Vec<ResourceSpans> {
        let mut grouper = Grouper::default();
        let batch_resource = self.process.as_ref().map(Process::to_resource).unwrap_or_default();
        for mut span in self.spans {
            let resource = match span.process.take() {
                Some(p) => p.to_resource(),
                None => batch_resource.clone(),
            };
            let mut otlp = span.into_otlp();
            let scope = take_scope(&mut otlp.attributes);
            grouper.push(&resource, &scope, otlp);
        }
        grouper.finish()
    }
}

impl Span {
    /// The parent: the first CHILD_OF reference in the same trace.
    fn parent(&self) -> Option<[u8; 8]> {
        self.references
            .iter()
            .find(|r| r.ref_type == RefType::ChildOf && r.trace_id == self.trace_id)
            .map(|r| r.span_id)
    }

    fn into_otlp(self) -> OtlpSpan {
        let parent = self.parent();
        let mut attributes = to_attributes(&self.tags);
        let kind = match take_attr(&mut attributes, SPAN_KIND_TAG) {
            Some(v) => span_kind_from_name(&value_to_string(&v)),
            None => SpanKind::Unspecified,
        };
        let status = take_status(&mut attributes, kind);
        let trace_state = take_attr(&mut attributes, TRACE_STATE_TAG).map(|v| value_to_string(&v)).unwrap_or_default();
        let links = self
            .references
            .iter()
            .filter(|r| !(r.ref_type == RefType::ChildOf && Some(r.span_id) == parent))
            .map(|r| Link {
                trace_id: r.trace_id.to_vec(),
                span_id: r.span_id.to_vec(),
                attributes: vec![kv_str(
                    REF_TYPE_ATTR,
                    match r.ref_type {
                        RefType::ChildOf => "child_of",
                        RefType::FollowsFrom => "follows_from",
                    },
                )],
                ..Default::default()
            })
            .collect();
        let events = self
            .logs
            .iter()
            .map(|log| {
                let mut attributes = to_attributes(&log.fields);
                let name = take_attr(&mut attributes, EVENT_FIELD).map(|v| value_to_string(&v)).unwrap_or_default();
                Event { time_unix_nano: log.time_unix_nano, name, attributes, ..Default::default() }
            })
            .collect();
        OtlpSpan {
            trace_id: self.trace_id.to_vec(),
            span_id: self.span_id.to_vec(),
            parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
            trace_state,
            // Jaeger's sampled bit is W3C's; its debug/firehose bits have no
            // OTLP counterpart.
            flags: self.flags & 0x01,
            name: self.operation_name,
            kind: kind as i32,
            start_time_unix_nano: self.start_unix_nano,
            end_time_unix_nano: self.start_unix_nano.saturating_add(self.duration_nano),
            attributes,
            events,
            links,
            status,
            ..Default::default()
        }
    }
}

/// The span status from its tags, as the collector's Jaeger translator
/// decides it: `error=true` (removed) is the final word; otherwise
/// `otel.status_code`; otherwise an HTTP status code. `otel.status_code`
/// and `otel.status_description` are always removed.
fn take_status(attrs: &mut Vec<KeyValue>, kind: SpanKind) -> Option<Status> {
    let mut code = None;
    let error = attrs.iter().position(|a| a.key == ERROR_TAG && matches!(a.value.as_ref().and_then(|v| v.value.as_ref()), Some(Value::BoolValue(true))));
    if let Some(i) = error {
        attrs.remove(i);
        code = Some(StatusCode::Error);
    }
    if let Some(v) = take_attr(attrs, OTEL_STATUS_CODE) {
        code.get_or_insert(status_code_from_name(&value_to_string(&v)));
    }
    let message = take_attr(attrs, OTEL_STATUS_DESCRIPTION).map(|v| value_to_string(&v)).unwrap_or_default();
    if code.is_none() {
        let http = attrs.iter().find(|a| a.key == "http.status_code").and_then(|a| a.value.as_ref()?.value.as_ref());
        let http = match http {
            Some(Value::IntValue(i)) => Some(*i),
            Some(Value::StringValue(s)) => s.trim().parse().ok(),
            _ => None,
        };
        code = http.map(|c| status_from_http(c, kind)).filter(|c| *c != StatusCode::Unset);
    }
    code.map(|code| Status { code: code as i32, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, value: TagValue) -> Tag {
        Tag { key: key.into(), value }
    }

    #[test]
    fn translates_like_the_collector() {
        let tid = trace_id(0, 0x1234);
        let batch = Batch {
            process: Some(Process { service_name: "svc".into(), tags: vec![tag("host.name", TagValue::String("h".into()))] }),
            spans: vec![Span {
                trace_id: tid,
                span_id: [2; 8],
                operation_name: "op".into(),
                references: vec![
                    SpanRef { ref_type: RefType::FollowsFrom, trace_id: [9; 16], span_id: [9; 8] },
                    SpanRef { ref_type: RefType::ChildOf, trace_id: tid, span_id: [1; 8] },
                ],
                flags: 3,
                start_unix_nano: 1_000,
                duration_nano: 500,
                tags: vec![
                    tag("span.kind", TagValue::String("client".into())),
                    tag("error", TagValue::Bool(true)),
                    tag("otel.status_description", TagValue::String("boom".into())),
                    tag("n", TagValue::Long(7)),
                    tag("raw", TagValue::Binary(vec![0, 255])),
                    tag("ok", TagValue::Bool(false)),
                    tag("otel.library.name", TagValue::String("lib".into())),
                ],
                logs: vec![Log { time_unix_nano: 1_100, fields: vec![tag("event", TagValue::String("retry".into())), tag("k", TagValue::Double(1.5))] }],
                process: None,
            }],
        };
        let out = batch.into_otlp();
        assert_eq!(out.len(), 1);
        let res = out[0].resource.as_ref().unwrap();
        assert_eq!(res.attributes, vec![kv_str("service.name", "svc"), kv_str("host.name", "h")]);
        let scope = &out[0].scope_spans[0];
        assert_eq!(scope.scope.as_ref().unwrap().name, "lib");
        let s = &scope.spans[0];
        assert_eq!(&s.trace_id[..8], &[0; 8]);
        assert_eq!(s.parent_span_id, vec![1; 8]);
        assert_eq!(s.kind, SpanKind::Client as i32);
        assert_eq!(s.status, Some(Status { code: StatusCode::Error as i32, message: "boom".into() }));
        assert_eq!(
            s.attributes,
            vec![kv("n", Value::IntValue(7)), kv("raw", Value::BytesValue(vec![0, 255])), kv("ok", Value::BoolValue(false))]
        );
        assert_eq!(s.end_time_unix_nano, 1_500);
        assert_eq!(s.flags, 1);
        assert_eq!(s.links.len(), 1);
        assert_eq!(s.links[0].attributes, vec![kv_str("opentracing.ref_type", "follows_from")]);
        assert_eq!(s.events[0].name, "retry");
        assert_eq!(s.events[0].attributes, vec![kv("k", Value::DoubleValue(1.5))]);
    }

    #[test]
    fn span_process_wins_and_groups() {
        let p = |name: &str| Some(Process { service_name: name.into(), tags: vec![] });
        let span = |id: u8, process| Span { span_id: [id; 8], process, ..Default::default() };
        let batch = Batch { process: None, spans: vec![span(1, p("a")), span(2, p("b")), span(3, p("a"))] };
        let out = batch.into_otlp();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].scope_spans[0].spans.len(), 2);
        assert_eq!(out[1].scope_spans[0].spans.len(), 1);
    }

    #[test]
    fn status_from_otel_tags_and_http() {
        let mut attrs = vec![kv_str("otel.status_code", "OK")];
        assert_eq!(take_status(&mut attrs, SpanKind::Server).unwrap().code, StatusCode::Ok as i32);
        assert!(attrs.is_empty());
        let mut attrs = vec![kv("http.status_code", Value::IntValue(404))];
        assert_eq!(take_status(&mut attrs, SpanKind::Server), None);
        assert_eq!(take_status(&mut attrs, SpanKind::Client).unwrap().code, StatusCode::Error as i32);
        let mut attrs = vec![kv("error", Value::BoolValue(false))];
        assert_eq!(take_status(&mut attrs, SpanKind::Client), None);
        assert_eq!(attrs.len(), 1);
    }
}
