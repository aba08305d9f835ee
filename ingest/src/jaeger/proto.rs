//! `jaeger.api_v2` protobuf (`model.proto`) into the Jaeger model.

use super::model::{Batch, Log, Process, RefType, Span, SpanRef, Tag, TagValue};
use crate::error::{Error, Result};
use crate::proto::jaeger as pb;

const FORMAT: &str = "Jaeger protobuf";

/// Converts a protobuf batch; ids of the wrong length are an error.
pub fn batch_from_proto(batch: pb::Batch) -> Result<Batch> {
    Ok(Batch {
        process: batch.process.map(process),
        spans: batch.spans.into_iter().map(span).collect::<Result<_>>()?,
    })
}

fn process(p: pb::Process) -> Process {
    Process { service_name: p.service_name, tags: p.tags.into_iter().map(tag).collect() }
}

fn tag(kv: pb::KeyValue) -> Tag {
    let value = match pb::ValueType::try_from(kv.v_type).unwrap_or(pb::ValueType::String) {
        pb::ValueType::String => TagValue::String(kv.v_str),
        pb::ValueType::Bool => TagValue::Bool(kv.v_bool),
        pb::ValueType::Int64 => TagValue::Long(kv.v_int64),
        pb::ValueType::Float64 => TagValue::Double(kv.v_float64),
        pb::ValueType::Binary => TagValue::Binary(kv.v_binary),
    };
    Tag { key: kv.key, value }
}

/// A trace id: 16 bytes, or 8 (a 64-bit id, padded in front).
fn trace_id(bytes: &[u8]) -> Result<[u8; 16]> {
    match bytes.len() {
        16 => Ok(bytes.try_into().expect("length checked")),
        8 => {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(bytes);
            Ok(id)
        }
        n => Err(Error::decode(FORMAT, format!("trace id of {n} bytes (want 16)"))),
    }
}

fn span_id(bytes: &[u8]) -> Result<[u8; 8]> {
    bytes.try_into().map_err(|_| Error::decode(FORMAT, format!("span id of {} bytes (want 8)", bytes.len())))
}

fn timestamp_nanos(t: Option<prost_types::Timestamp>) -> u64 {
    t.map(|t| (t.seconds.max(0) as u64).saturating_mul(1_000_000_000).saturating_add(t.nanos.max(0) as u64)).unwrap_or(0)
}

fn span(s: pb::Span) -> Result<Span> {
    let references = s
        .references
        .iter()
        .map(|r| {
            Ok(SpanRef {
                ref_type: match pb::SpanRefType::try_from(r.ref_type) {
                    Ok(pb::SpanRefType::FollowsFrom) => RefType::FollowsFrom,
                    _ => RefType::ChildOf,
                },
                trace_id: trace_id(&r.trace_id)?,
                span_id: span_id(&r.span_id)?,
            })
        })
        .collect::<Result<_>>()?;
    let duration = s.duration.map(|d| (d.seconds.max(0) as u64).saturating_mul(1_000_000_000).saturating_add(d.nanos.max(0) as u64));
    Ok(Span {
        trace_id: trace_id(&s.trace_id)?,
        span_id: span_id(&s.span_id)?,
        operation_name: s.operation_name,
        references,
        flags: s.flags,
        start_unix_nano: timestamp_nanos(s.start_time),
        duration_nano: duration.unwrap_or(0),
        tags: s.tags.into_iter().map(tag).collect(),
        logs: s.logs.into_iter().map(|l| Log { time_unix_nano: timestamp_nanos(l.timestamp), fields: l.fields.into_iter().map(tag).collect() }).collect(),
        process: s.process.map(process),
    })
}
