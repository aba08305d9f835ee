//! The Zipkin v2 span model every Zipkin format decodes into (v2 JSON,
//! proto3, and v1 JSON after conversion), and its one translation into
//! OTLP, following the OpenTelemetry Collector's Zipkin translator (see
//! `docs/ingest.md` for the table).

use std::net::{Ipv4Addr, Ipv6Addr};

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span as OtlpSpan, Status};

use crate::translate::{
    Grouper, OTEL_STATUS_CODE, OTEL_STATUS_DESCRIPTION, SERVICE_NAME, kv, kv_str, span_kind_from_name,
    status_code_from_name, take_scope,
};

/// Span tag marking an error (its value is the message, or `true`).
pub const ERROR_TAG: &str = "error";
/// Tag carrying the W3C trace state.
pub const TRACE_STATE_TAG: &str = "w3c.tracestate";
/// Tag naming the kind when the Zipkin kind is absent (`internal`).
pub const SPAN_KIND_TAG: &str = "span.kind";

/// Tag-key prefixes (and whole keys) of OpenTelemetry resource attributes:
/// exporters flatten the resource into tags, and such tags go back to the
/// resource, as the collector does with resource semantic conventions.
const RESOURCE_PREFIXES: [&str; 14] = [
    "service.", "telemetry.", "host.", "os.", "process.", "container.", "k8s.", "cloud.", "deployment.", "device.",
    "webengine.", "aws.ecs.", "aws.eks.", "aws.log.",
];
const RESOURCE_KEYS: [&str; 5] = ["faas.name", "faas.id", "faas.version", "faas.instance", "faas.max_memory"];

/// Zipkin span kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Client,
    Server,
    Producer,
    Consumer,
}

/// A network endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Endpoint {
    pub service_name: Option<String>,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub port: Option<u16>,
}

/// An annotation: a timestamped string.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    pub timestamp_us: u64,
    pub value: String,
}

/// One Zipkin v2 span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Span {
    pub trace_id: [u8; 16],
    pub id: [u8; 8],
    pub parent_id: Option<[u8; 8]>,
    pub kind: Option<Kind>,
    pub name: String,
    pub timestamp_us: u64,
    pub duration_us: u64,
    pub local_endpoint: Option<Endpoint>,
    pub remote_endpoint: Option<Endpoint>,
    pub annotations: Vec<Annotation>,
    /// Tags in arrival order.
    pub tags: Vec<(String, String)>,
    pub debug: bool,
    /// The server side of a span whose id the client started.
    pub shared: bool,
}

/// How tag values become attribute values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TranslateOptions {
    /// Parse string tags into bool, int and double values (the collector's
    /// `parse_string_tags`; off by default, as there).
    pub parse_string_tags: bool,
}

fn is_resource_key(key: &str) -> bool {
    RESOURCE_PREFIXES.iter().any(|p| key.starts_with(p)) || RESOURCE_KEYS.contains(&key)
}

fn tag_value(value: &str, options: TranslateOptions) -> Value {
    if options.parse_string_tags {
        if let Ok(b) = value.parse::<bool>() {
            return Value::BoolValue(b);
        }
        if let Ok(i) = value.parse::<i64>() {
            return Value::IntValue(i);
        }
        if let Ok(d) = value.parse::<f64>()
            && d.is_finite()
        {
            return Value::DoubleValue(d);
        }
    }
    Value::StringValue(value.to_owned())
}

/// Translates spans into OTLP: one resource per local service (plus the
/// resource attributes found in tags), one scope per instrumentation scope.
pub fn spans_to_otlp(spans: Vec<Span>, options: TranslateOptions) -> Vec<ResourceSpans> {
    let mut grouper = Grouper::default();
    for span in spans {
        let (resource, otlp) = span.into_otlp(options);
        let mut otlp = otlp;
        let scope = take_scope(&mut otlp.attributes);
        grouper.push(&resource, &scope, otlp);
    }
    grouper.finish()
}

impl Span {
    fn into_otlp(self, options: TranslateOptions) -> (Resource, OtlpSpan) {
        let mut tags = self.tags;
        let take = |tags: &mut Vec<(String, String)>, key: &str| -> Option<String> {
            let i = tags.iter().position(|(k, _)| k == key)?;
            Some(tags.remove(i).1)
        };

        let mut resource = Resource::default();
        if let Some(service) = self.local_endpoint.as_ref().and_then(|e| e.service_name.clone()) {
            resource.attributes.push(kv_str(SERVICE_NAME, service));
        }
        let (resource_tags, span_tags): (Vec<_>, Vec<_>) = tags.drain(..).partition(|(k, _)| is_resource_key(k));
        tags = span_tags;
        for (k, v) in resource_tags {
            if k != SERVICE_NAME || resource.attributes.is_empty() {
                resource.attributes.push(kv(k, tag_value(&v, options)));
            }
        }

        let kind = match self.kind {
            Some(Kind::Client) => SpanKind::Client,
            Some(Kind::Server) => SpanKind::Server,
            Some(Kind::Producer) => SpanKind::Producer,
            Some(Kind::Consumer) => SpanKind::Consumer,
            None => match take(&mut tags, SPAN_KIND_TAG) {
                Some(k) if span_kind_from_name(&k) == SpanKind::Internal => SpanKind::Internal,
                _ => SpanKind::Unspecified,
            },
        };

        // Status: `otel.status_code` (+ description); an `error` tag makes it
        // an error (and is removed when it is just "true").
        let mut status = None;
        if let Some(code) = take(&mut tags, OTEL_STATUS_CODE) {
            let message = take(&mut tags, OTEL_STATUS_DESCRIPTION).unwrap_or_default();
            status = Some(Status { code: status_code_from_name(&code) as i32, message });
        }
        if let Some(i) = tags.iter().position(|(k, _)| k == ERROR_TAG) {
            let status = status.get_or_insert_with(Status::default);
            status.code = StatusCode::Error as i32;
            if tags[i].1 == "true" {
                tags.remove(i);
            }
        }
        let trace_state = take(&mut tags, TRACE_STATE_TAG).unwrap_or_default();

        let mut attributes: Vec<KeyValue> = tags.into_iter().map(|(k, v)| kv(k, tag_value(&v, options))).collect();
        if let Some(local) = &self.local_endpoint {
            if let Some(ip) = local.ipv4 {
                attributes.push(kv_str("net.host.ip", ip.to_string()));
            }
            if let Some(ip) = local.ipv6 {
                attributes.push(kv_str("net.host.ip", ip.to_string()));
            }
            if let Some(port) = local.port.filter(|p| *p > 0) {
                attributes.push(kv("net.host.port", Value::IntValue(port.into())));
            }
        }
        if let Some(remote) = &self.remote_endpoint {
            if let Some(service) = &remote.service_name {
                attributes.push(kv_str("peer.service", service.clone()));
            }
            if let Some(ip) = remote.ipv4 {
                attributes.push(kv_str("net.peer.ip", ip.to_string()));
            }
            if let Some(ip) = remote.ipv6 {
                attributes.push(kv_str("net.peer.ip", ip.to_string()));
            }
            if let Some(port) = remote.port.filter(|p| *p > 0) {
                attributes.push(kv("net.peer.port", Value::IntValue(port.into())));
            }
        }

        let events = self.annotations.into_iter().map(annotation_to_event).collect();
        let start = self.timestamp_us.saturating_mul(1_000);
        let span = OtlpSpan {
            trace_id: self.trace_id.to_vec(),
            span_id: self.id.to_vec(),
            parent_span_id: self.parent_id.map(|p| p.to_vec()).unwrap_or_default(),
            trace_state,
            name: self.name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start.saturating_add(self.duration_us.saturating_mul(1_000)),
            attributes,
            events,
            status,
            ..Default::default()
        };
        (resource, span)
    }
}

/// An annotation as an event, as the collector reads it: the value is the
/// name, unless it has the collector's own `name|{json attributes}|dropped`
/// form, which is unpacked.
fn annotation_to_event(a: Annotation) -> Event {
    let mut event = Event { time_unix_nano: a.timestamp_us.saturating_mul(1_000), ..Default::default() };
    let parts: Vec<&str> = a.value.split('|').collect();
    if parts.len() >= 3
        && let Ok(dropped) = parts[parts.len() - 1].parse::<u32>()
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&parts[1..parts.len() - 1].join("|"))
    {
        event.name = parts[0].to_owned();
        event.dropped_attributes_count = dropped;
        event.attributes = map.into_iter().map(|(k, v)| kv(k, json_to_value(v))).collect();
        return event;
    }
    event.name = a.value;
    event
}

fn json_to_value(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Bool(b) => Value::BoolValue(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::IntValue(i),
            None => Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::StringValue(s),
        serde_json::Value::Null => Value::StringValue(String::new()),
        serde_json::Value::Array(items) => Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
            values: items.into_iter().map(|v| opentelemetry_proto::tonic::common::v1::AnyValue { value: Some(json_to_value(v)) }).collect(),
        }),
        other => Value::StringValue(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translates_like_the_collector() {
        let span = Span {
            trace_id: [1; 16],
            id: [2; 8],
            kind: Some(Kind::Client),
            name: "get".into(),
            timestamp_us: 10,
            duration_us: 5,
            local_endpoint: Some(Endpoint { service_name: Some("front".into()), ipv4: Some(Ipv4Addr::new(10, 0, 0, 1)), ..Default::default() }),
            remote_endpoint: Some(Endpoint { service_name: Some("back".into()), port: Some(8080), ..Default::default() }),
            annotations: vec![Annotation { timestamp_us: 12, value: "retry".into() }],
            tags: vec![
                ("http.method".into(), "GET".into()),
                ("error".into(), "boom".into()),
                ("telemetry.sdk.name".into(), "opentelemetry".into()),
                ("n".into(), "42".into()),
            ],
            ..Default::default()
        };
        let out = spans_to_otlp(vec![span.clone()], TranslateOptions::default());
        let res = out[0].resource.as_ref().unwrap();
        assert_eq!(res.attributes, vec![kv_str("service.name", "front"), kv_str("telemetry.sdk.name", "opentelemetry")]);
        let s = &out[0].scope_spans[0].spans[0];
        assert_eq!(s.kind, SpanKind::Client as i32);
        assert_eq!(s.status.as_ref().unwrap().code, StatusCode::Error as i32);
        assert_eq!(s.start_time_unix_nano, 10_000);
        assert_eq!(s.end_time_unix_nano, 15_000);
        assert_eq!(s.events[0].name, "retry");
        let keys: Vec<&str> = s.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["http.method", "error", "n", "net.host.ip", "peer.service", "net.peer.port"]);
        assert_eq!(s.attributes[2], kv_str("n", "42"));
        let parsed = spans_to_otlp(vec![span], TranslateOptions { parse_string_tags: true });
        assert_eq!(parsed[0].scope_spans[0].spans[0].attributes[2], kv("n", Value::IntValue(42)));
    }

    #[test]
    fn structured_annotations_unpack() {
        let e = annotation_to_event(Annotation { timestamp_us: 1, value: r#"ev|{"a":1,"b":"x"}|2"#.into() });
        assert_eq!(e.name, "ev");
        assert_eq!(e.dropped_attributes_count, 2);
        assert_eq!(e.attributes.len(), 2);
        let e = annotation_to_event(Annotation { timestamp_us: 1, value: "a|b|c".into() });
        assert_eq!(e.name, "a|b|c");
    }
}
