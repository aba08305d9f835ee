//! Pieces of the Jaeger and Zipkin → OTLP translations that both share:
//! attribute constructors, span kinds by name, the HTTP-status fallback
//! for span status, and grouping spans by resource and scope.

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// Resource attribute naming the service.
pub const SERVICE_NAME: &str = "service.name";
/// Tags naming the instrumentation scope (current and deprecated keys).
pub const SCOPE_NAME_TAGS: [&str; 2] = ["otel.scope.name", "otel.library.name"];
/// Tags naming the instrumentation scope's version.
pub const SCOPE_VERSION_TAGS: [&str; 2] = ["otel.scope.version", "otel.library.version"];
/// Tag carrying an OpenTelemetry status code (`OK`, `ERROR`).
pub const OTEL_STATUS_CODE: &str = "otel.status_code";
/// Tag carrying an OpenTelemetry status message.
pub const OTEL_STATUS_DESCRIPTION: &str = "otel.status_description";

/// An attribute.
pub fn kv(key: impl Into<String>, value: Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

/// A string attribute.
pub fn kv_str(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(value.into()))
}

/// Removes the attribute `key` and returns its value.
pub fn take_attr(attrs: &mut Vec<KeyValue>, key: &str) -> Option<Value> {
    let i = attrs.iter().position(|a| a.key == key)?;
    attrs.remove(i).value.and_then(|v| v.value)
}

/// Removes the first of `keys` present and returns it as a string.
pub fn take_str(attrs: &mut Vec<KeyValue>, keys: &[&str]) -> Option<String> {
    let mut found = None;
    for key in keys {
        if let Some(v) = take_attr(attrs, key) {
            found.get_or_insert(value_to_string(&v));
        }
    }
    found
}

/// A value as text (strings as is; others in their usual notation).
pub fn value_to_string(v: &Value) -> String {
    match v {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        Value::BytesValue(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    }
}

/// The span kind named by an OpenTracing `span.kind` tag or a Zipkin kind
/// (case-insensitive); unknown names are UNSPECIFIED.
pub fn span_kind_from_name(name: &str) -> SpanKind {
    match name.to_ascii_lowercase().as_str() {
        "client" => SpanKind::Client,
        "server" => SpanKind::Server,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        "internal" => SpanKind::Internal,
        _ => SpanKind::Unspecified,
    }
}

/// The status code named by an `otel.status_code` tag.
pub fn status_code_from_name(name: &str) -> StatusCode {
    match name.to_ascii_uppercase().as_str() {
        "OK" => StatusCode::Ok,
        "ERROR" => StatusCode::Error,
        _ => StatusCode::Unset,
    }
}

/// The status an HTTP status code implies, as the collector's Jaeger
/// translator decides it: 1xx–3xx leave it unset, 4xx is an error except on
/// server spans, anything else (5xx, nonsense) is an error.
pub fn status_from_http(code: i64, kind: SpanKind) -> StatusCode {
    match code {
        100..=399 => StatusCode::Unset,
        400..=499 if kind == SpanKind::Server => StatusCode::Unset,
        _ => StatusCode::Error,
    }
}

/// Collects spans into `ResourceSpans`, one per distinct resource and one
/// `ScopeSpans` per distinct scope inside it, in first-seen order.
#[derive(Debug, Default)]
pub struct Grouper {
    out: Vec<ResourceSpans>,
}

impl Grouper {
    /// Adds `span` under `resource` and `scope`.
    pub fn push(&mut self, resource: &Resource, scope: &InstrumentationScope, span: Span) {
        let rs = match self.out.iter().position(|r| r.resource.as_ref() == Some(resource)) {
            Some(i) => &mut self.out[i],
            None => {
                self.out.push(ResourceSpans { resource: Some(resource.clone()), ..Default::default() });
                self.out.last_mut().expect("just pushed")
            }
        };
        let ss = match rs.scope_spans.iter().position(|s| s.scope.as_ref() == Some(scope)) {
            Some(i) => &mut rs.scope_spans[i],
            None => {
                rs.scope_spans.push(ScopeSpans { scope: Some(scope.clone()), ..Default::default() });
                rs.scope_spans.last_mut().expect("just pushed")
            }
        };
        ss.spans.push(span);
    }

    /// The grouped spans.
    pub fn finish(self) -> Vec<ResourceSpans> {
        self.out
    }
}

/// The scope named by the scope tags of a span (removed from `attrs`).
pub fn take_scope(attrs: &mut Vec<KeyValue>) -> InstrumentationScope {
    InstrumentationScope {
        name: take_str(attrs, &SCOPE_NAME_TAGS).unwrap_or_default(),
        version: take_str(attrs, &SCOPE_VERSION_TAGS).unwrap_or_default(),
        ..Default::default()
    }
}
