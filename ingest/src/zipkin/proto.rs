//! Zipkin v2 protobuf (`zipkin.proto3.ListOfSpans`) into the Zipkin model.

use std::net::{Ipv4Addr, Ipv6Addr};

use prost::Message;

use super::model::{Annotation, Endpoint, Kind, Span};
use crate::error::{Error, Result};
use crate::proto::zipkin as pb;

const FORMAT: &str = "Zipkin protobuf";

/// Decodes a `ListOfSpans`.
pub fn decode_proto(body: &[u8]) -> Result<Vec<Span>> {
    let list = pb::ListOfSpans::decode(body).map_err(|e| Error::decode(FORMAT, e))?;
    list.spans.into_iter().map(span).collect()
}

fn id<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N]> {
    if bytes.is_empty() || bytes.len() > N {
        return Err(Error::decode(FORMAT, format!("{what} of {} bytes (want at most {N})", bytes.len())));
    }
    let mut out = [0u8; N];
    out[N - bytes.len()..].copy_from_slice(bytes);
    Ok(out)
}

fn endpoint(e: pb::Endpoint) -> Result<Endpoint> {
    let ipv4 = match e.ipv4.len() {
        0 => None,
        4 => Some(Ipv4Addr::from(<[u8; 4]>::try_from(&e.ipv4[..]).expect("length checked"))),
        n => return Err(Error::decode(FORMAT, format!("ipv4 of {n} bytes"))),
    };
    let ipv6 = match e.ipv6.len() {
        0 => None,
        16 => Some(Ipv6Addr::from(<[u8; 16]>::try_from(&e.ipv6[..]).expect("length checked"))),
        n => return Err(Error::decode(FORMAT, format!("ipv6 of {n} bytes"))),
    };
    Ok(Endpoint {
        service_name: Some(e.service_name).filter(|s| !s.is_empty()),
        ipv4,
        ipv6,
        port: u16::try_from(e.port).ok().filter(|p| *p > 0),
    })
}

fn span(s: pb::Span) -> Result<Span> {
    let kind = match pb::span::Kind::try_from(s.kind).unwrap_or(pb::span::Kind::SpanKindUnspecified) {
        pb::span::Kind::SpanKindUnspecified => None,
        pb::span::Kind::Client => Some(Kind::Client),
        pb::span::Kind::Server => Some(Kind::Server),
        pb::span::Kind::Producer => Some(Kind::Producer),
        pb::span::Kind::Consumer => Some(Kind::Consumer),
    };
    let mut tags: Vec<(String, String)> = s.tags.into_iter().collect();
    // prost decodes maps into a HashMap; sort for a stable order.
    tags.sort();
    Ok(Span {
        trace_id: id::<16>(&s.trace_id, "trace_id")?,
        id: id::<8>(&s.id, "id")?,
        parent_id: if s.parent_id.is_empty() { None } else { Some(id::<8>(&s.parent_id, "parent_id")?) },
        kind,
        name: s.name,
        timestamp_us: s.timestamp,
        duration_us: s.duration,
        local_endpoint: s.local_endpoint.map(endpoint).transpose()?,
        remote_endpoint: s.remote_endpoint.map(endpoint).transpose()?,
        annotations: s.annotations.into_iter().map(|a| Annotation { timestamp_us: a.timestamp, value: a.value }).collect(),
        tags,
        debug: s.debug,
        shared: s.shared,
    })
}
