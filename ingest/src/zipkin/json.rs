//! Zipkin JSON: v2 (`POST /api/v2/spans`) and v1 (`POST /api/v1/spans`,
//! with `annotations`/`binaryAnnotations`, converted to v2 spans the way
//! Zipkin's own v1 converter does).

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

use super::model::{Annotation, Endpoint, Kind, Span};
use crate::error::{Error, Result};

const V2: &str = "Zipkin v2 JSON";
const V1: &str = "Zipkin v1 JSON";

/// Parses a hex id of at most `N * 2` digits, left-padded with zeros.
pub fn hex_id<const N: usize>(s: &str, what: &str, format: &'static str) -> Result<[u8; N]> {
    let s = s.trim();
    if s.is_empty() || s.len() > N * 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::decode(format, format!("{what} {s:?} is not 1 to {} hex digits", N * 2)));
    }
    let padded = format!("{s:0>width$}", width = N * 2);
    let mut out = [0u8; N];
    hex::decode_to_slice(padded, &mut out).map_err(|e| Error::decode(format, format!("{what}: {e}")))?;
    Ok(out)
}

/// A JSON number of microseconds (integers, or floats some clients send).
fn micros<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u64, D::Error> {
    let v = Option::<serde_json::Number>::deserialize(d)?;
    Ok(v.and_then(|n| n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f.round() as u64))).unwrap_or(0))
}

/// A tag value: strings as is; numbers and booleans in their JSON text.
fn scalar_text(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEndpoint {
    service_name: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    port: Option<i64>,
}

impl JsonEndpoint {
    fn into_model(self, format: &'static str) -> Result<Endpoint> {
        let ipv4 = match self.ipv4.filter(|s| !s.is_empty()) {
            Some(s) => Some(s.parse::<Ipv4Addr>().map_err(|_| Error::decode(format, format!("invalid ipv4 {s:?}")))?),
            None => None,
        };
        let ipv6 = match self.ipv6.filter(|s| !s.is_empty()) {
            Some(s) => Some(s.parse::<Ipv6Addr>().map_err(|_| Error::decode(format, format!("invalid ipv6 {s:?}")))?),
            None => None,
        };
        Ok(Endpoint {
            // Zipkin treats an empty service name as none.
            service_name: self.service_name.filter(|s| !s.is_empty()),
            ipv4,
            ipv6,
            port: self.port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0),
        })
    }
}

#[derive(Debug, Deserialize)]
struct JsonAnnotation {
    #[serde(default, deserialize_with = "micros")]
    timestamp: u64,
    value: String,
    /// v1 only: who recorded it.
    endpoint: Option<JsonEndpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpanV2 {
    trace_id: String,
    id: String,
    parent_id: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "micros")]
    timestamp: u64,
    #[serde(default, deserialize_with = "micros")]
    duration: u64,
    local_endpoint: Option<JsonEndpoint>,
    remote_endpoint: Option<JsonEndpoint>,
    #[serde(default)]
    annotations: Vec<JsonAnnotation>,
    #[serde(default)]
    tags: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    debug: Option<bool>,
    #[serde(default)]
    shared: Option<bool>,
}

/// Parses a v2 JSON list of spans.
pub fn decode_v2(body: &[u8]) -> Result<Vec<Span>> {
    let spans: Vec<JsonSpanV2> = serde_json::from_slice(body).map_err(|e| Error::decode(V2, e))?;
    spans.into_iter().map(|s| s.into_model()).collect()
}

fn parse_kind(kind: &str, format: &'static str) -> Result<Kind> {
    match kind.to_ascii_uppercase().as_str() {
        "CLIENT" => Ok(Kind::Client),
        "SERVER" => Ok(Kind::Server),
        "PRODUCER" => Ok(Kind::Producer),
        "CONSUMER" => Ok(Kind::Consumer),
        _ => Err(Error::decode(format, format!("unknown span kind {kind:?}"))),
    }
}

fn parent_id(parent: Option<String>, format: &'static str) -> Result<Option<[u8; 8]>> {
    match parent.filter(|p| !p.is_empty()) {
        Some(p) => Ok(Some(hex_id::<8>(&p, "parentId", format)?).filter(|p| *p != [0; 8])),
        None => Ok(None),
    }
}

impl JsonSpanV2 {
    fn into_model(self) -> Result<Span> {
        Ok(Span {
            trace_id: hex_id::<16>(&self.trace_id, "traceId", V2)?,
            id: hex_id::<8>(&self.id, "id", V2)?,
            parent_id: parent_id(self.parent_id, V2)?,
            kind: self.kind.map(|k| parse_kind(&k, V2)).transpose()?,
            name: self.name.unwrap_or_default(),
            timestamp_us: self.timestamp,
            duration_us: self.duration,
            local_endpoint: self.local_endpoint.map(|e| e.into_model(V2)).transpose()?,
            remote_endpoint: self.remote_endpoint.map(|e| e.into_model(V2)).transpose()?,
            annotations: self.annotations.into_iter().map(|a| Annotation { timestamp_us: a.timestamp, value: a.value }).collect(),
            tags: self.tags.into_iter().map(|(k, v)| (k, scalar_text(v))).collect(),
            debug: self.debug.unwrap_or(false),
            shared: self.shared.unwrap_or(false),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonBinaryAnnotation {
    key: String,
    value: serde_json::Value,
    endpoint: Option<JsonEndpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpanV1 {
    trace_id: String,
    /// v1's split form of a 128-bit trace id.
    trace_id_high: Option<String>,
    id: String,
    parent_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "micros")]
    timestamp: u64,
    #[serde(default, deserialize_with = "micros")]
    duration: u64,
    #[serde(default)]
    annotations: Vec<JsonAnnotation>,
    #[serde(default)]
    binary_annotations: Vec<JsonBinaryAnnotation>,
    #[serde(default)]
    debug: Option<bool>,
}

/// One side of a v1 span (client, server, producer or consumer), from its
/// core annotations: kind, start and end times, local and remote endpoints.
struct Side {
    kind: Option<Kind>,
    start: Option<u64>,
    end: Option<u64>,
    local: Option<JsonEndpoint>,
    remote: Option<JsonEndpoint>,
}

/// Parses a v1 JSON list of spans into v2 spans.
pub fn decode_v1(body: &[u8]) -> Result<Vec<Span>> {
    let spans: Vec<JsonSpanV1> = serde_json::from_slice(body).map_err(|e| Error::decode(V1, e))?;
    let mut out = Vec::with_capacity(spans.len());
    for s in spans {
        s.convert(&mut out)?;
    }
    Ok(out)
}

/// Zipkin v1's core annotations (they set kind and timing).
fn is_core(value: &str) -> bool {
    matches!(value, "cs" | "cr" | "sr" | "ss" | "ms" | "mr")
}

fn endpoint(e: Option<JsonEndpoint>) -> Result<Option<Endpoint>> {
    e.map(|e| e.into_model(V1)).transpose()
}

impl JsonSpanV1 {
    /// Zipkin's v1 → v2 conversion: the core annotations (`cs`/`cr` client,
    /// `sr`/`ss` server, `ms` producer, `mr` consumer) give kind, timing and
    /// local endpoint; a span with both client and server sides becomes two
    /// spans, the server one `shared`. Address annotations (`ca`, `sa`,
    /// `ma`) give the remote endpoint; `lc` names the local component (its
    /// endpoint is the local one when no core annotation has one); other
    /// binary annotations are tags and other annotations stay annotations.
    fn convert(self, out: &mut Vec<Span>) -> Result<()> {
        let trace_id = match self.trace_id_high.as_deref().filter(|h| !h.is_empty()) {
            Some(high) => hex_id::<16>(&format!("{high:0>16}{:0>16}", self.trace_id), "traceId", V1)?,
            None => hex_id::<16>(&self.trace_id, "traceId", V1)?,
        };
        let base = Span {
            trace_id,
            id: hex_id::<8>(&self.id, "id", V1)?,
            parent_id: parent_id(self.parent_id, V1)?,
            name: self.name.unwrap_or_default(),
            debug: self.debug.unwrap_or(false),
            ..Default::default()
        };

        let (mut cs, mut cr, mut sr, mut ss, mut ms, mut mr) = (None, None, None, None, None, None);
        let mut other = Vec::new();
        // The local endpoint when nothing better names it: the first endpoint
        // of any annotation (Zipkin's converter does the same).
        let mut first_endpoint: Option<JsonEndpoint> = None;
        for a in self.annotations {
            if first_endpoint.is_none() && a.endpoint.is_some() && !is_core(&a.value) {
                first_endpoint = a.endpoint.clone();
            }
            let slot = match a.value.as_str() {
                "cs" => &mut cs,
                "cr" => &mut cr,
                "sr" => &mut sr,
                "ss" => &mut ss,
                "ms" => &mut ms,
                "mr" => &mut mr,
                _ => {
                    other.push(a);
                    continue;
                }
            };
            *slot = Some((a.timestamp, a.endpoint));
        }

        let mut tags = Vec::new();
        let (mut ca, mut sa, mut ma, mut lc_endpoint) = (None, None, None, None);
        for b in self.binary_annotations {
            match b.key.as_str() {
                "ca" => ca = b.endpoint,
                "sa" => sa = b.endpoint,
                "ma" => ma = b.endpoint,
                _ => {
                    if b.key == "lc" && lc_endpoint.is_none() {
                        lc_endpoint = b.endpoint.clone();
                    }
                    if first_endpoint.is_none() {
                        first_endpoint = b.endpoint;
                    }
                    tags.push((b.key, scalar_text(b.value)));
                }
            }
        }

        // One side per pair of core annotations.
        let mut sides: Vec<Side> = Vec::new();
        let mut side = |kind, start: Option<(u64, Option<JsonEndpoint>)>, end: Option<(u64, Option<JsonEndpoint>)>, remote| {
            if start.is_none() && end.is_none() {
                return;
            }
            let (start_ts, start_ep) = start.map(|(t, e)| (Some(t), e)).unwrap_or((None, None));
            let (end_ts, end_ep) = end.map(|(t, e)| (Some(t), e)).unwrap_or((None, None));
            sides.push(Side { kind: Some(kind), start: start_ts, end: end_ts, local: start_ep.or(end_ep), remote });
        };
        side(Kind::Client, cs, cr, sa);
        side(Kind::Server, sr, ss, ca);
        side(Kind::Producer, ms, None, ma.take());
        side(Kind::Consumer, mr, None, ma);
        if sides.is_empty() {
            let local = lc_endpoint.take().or(first_endpoint.take());
            sides.push(Side { kind: None, start: None, end: None, local, remote: None });
        }

        let n = sides.len();
        for (i, Side { kind, start, end, local, remote }) in sides.into_iter().enumerate() {
            let mut span = base.clone();
            span.kind = kind;
            let fallback = if i == 0 { lc_endpoint.take().or(first_endpoint.take()) } else { None };
            span.local_endpoint = endpoint(local)?.or(endpoint(fallback)?);
            span.remote_endpoint = endpoint(remote)?;
            // The span's own timestamp/duration belong to its first side (the
            // one that started it); other sides take their annotations.
            span.timestamp_us = if i == 0 && self.timestamp > 0 { self.timestamp } else { start.unwrap_or(0) };
            span.duration_us = if i == 0 && self.duration > 0 {
                self.duration
            } else {
                match (start, end) {
                    (Some(s), Some(e)) => e.saturating_sub(s),
                    _ => 0,
                }
            };
            span.shared = i > 0 && kind == Some(Kind::Server);
            if i == 0 {
                span.tags = tags.clone();
                span.annotations = other.iter().map(|a| Annotation { timestamp_us: a.timestamp, value: a.value.clone() }).collect();
            }
            if n > 1 && span.timestamp_us == 0 {
                continue;
            }
            out.push(span);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_spans_parse() {
        let body = br#"[{"traceId":"0123456789abcdef","id":"0000000000000002","parentId":"0000000000000001",
            "kind":"SERVER","name":"get","timestamp":1000,"duration":20,
            "localEndpoint":{"serviceName":"api","ipv4":"127.0.0.1","port":80},
            "annotations":[{"timestamp":1005,"value":"wr"}],"tags":{"a":"b","n":3},"shared":true}]"#;
        let spans = decode_v2(body).unwrap();
        let s = &spans[0];
        assert_eq!(hex::encode(s.trace_id), "00000000000000000123456789abcdef");
        assert_eq!(s.parent_id, Some([0, 0, 0, 0, 0, 0, 0, 1]));
        assert_eq!(s.kind, Some(Kind::Server));
        assert_eq!(s.tags, vec![("a".into(), "b".into()), ("n".into(), "3".into())]);
        assert!(s.shared);
        assert!(decode_v2(br#"[{"traceId":"xyz","id":"1"}]"#).is_err());
        assert!(decode_v2(br#"[{"traceId":"1","id":"12345678901234567"}]"#).is_err());
    }

    #[test]
    fn v1_client_and_server_split() {
        let body = br#"[{"traceId":"1","id":"2","name":"rpc","timestamp":100,"duration":50,
            "annotations":[
              {"timestamp":100,"value":"cs","endpoint":{"serviceName":"front"}},
              {"timestamp":110,"value":"sr","endpoint":{"serviceName":"back"}},
              {"timestamp":140,"value":"ss","endpoint":{"serviceName":"back"}},
              {"timestamp":150,"value":"cr","endpoint":{"serviceName":"front"}},
              {"timestamp":120,"value":"cache miss","endpoint":{"serviceName":"back"}}],
            "binaryAnnotations":[{"key":"http.path","value":"/x","endpoint":{"serviceName":"front"}},
              {"key":"sa","value":true,"endpoint":{"serviceName":"back","ipv4":"10.0.0.2","port":9000}}]}]"#;
        let spans = decode_v1(body).unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].kind, Some(Kind::Client));
        assert_eq!(spans[0].local_endpoint.as_ref().unwrap().service_name.as_deref(), Some("front"));
        assert_eq!(spans[0].remote_endpoint.as_ref().unwrap().port, Some(9000));
        assert_eq!((spans[0].timestamp_us, spans[0].duration_us), (100, 50));
        assert_eq!(spans[1].kind, Some(Kind::Server));
        assert!(spans[1].shared);
        assert_eq!((spans[1].timestamp_us, spans[1].duration_us), (110, 30));
    }

    #[test]
    fn v1_local_component() {
        let body = br#"[{"traceId":"1","id":"3","name":"work","timestamp":5,"duration":1,
            "binaryAnnotations":[{"key":"lc","value":"scheduler","endpoint":{"serviceName":"jobs"}}]}]"#;
        let spans = decode_v1(body).unwrap();
        assert_eq!(spans[0].kind, None);
        assert_eq!(spans[0].local_endpoint.as_ref().unwrap().service_name.as_deref(), Some("jobs"));
        assert_eq!(spans[0].tags, vec![("lc".into(), "scheduler".into())]);
    }
}
