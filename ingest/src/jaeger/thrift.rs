//! `jaeger.thrift` structs (`Batch`, `Process`, `Span`, `Tag`, `Log`,
//! `SpanRef`) and the agent's `emitBatch` message, decoded from either
//! Thrift protocol into the Jaeger model. Field ids are those of
//! jaeger-idl's `jaeger.thrift` and `agent.thrift`; unknown fields are
//! skipped, as Thrift readers do.

use super::model::{Batch, Log, Process, RefType, Span, SpanRef, Tag, TagValue, trace_id};
use crate::thrift::{
    BinaryProtocol, CompactProtocol, Error, MessageType, Protocol, Result, TType, read_list_of, skip,
};

/// Which Thrift protocol a payload uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThriftProtocol {
    Binary,
    Compact,
}

/// Decodes a bare `Batch` struct (the collector's HTTP body).
pub fn decode_batch(data: &[u8], protocol: ThriftProtocol) -> Result<Batch> {
    match protocol {
        ThriftProtocol::Binary => read_batch(&mut BinaryProtocol::new(data)),
        ThriftProtocol::Compact => read_batch(&mut CompactProtocol::new(data)),
    }
}

/// Decodes an agent datagram: one `Agent.emitBatch` message.
pub fn decode_emit_batch(data: &[u8], protocol: ThriftProtocol) -> Result<Batch> {
    match protocol {
        ThriftProtocol::Binary => read_emit_batch(&mut BinaryProtocol::new(data)),
        ThriftProtocol::Compact => read_emit_batch(&mut CompactProtocol::new(data)),
    }
}

fn read_emit_batch(p: &mut dyn Protocol) -> Result<Batch> {
    let header = p.read_message_begin()?;
    if header.name != "emitBatch" {
        return Err(Error::Other(format!(
            "unsupported agent method {:?} (only emitBatch; Zipkin's emitZipkinBatch is not accepted)",
            header.name
        )));
    }
    if !matches!(header.kind, MessageType::Call | MessageType::Oneway) {
        return Err(Error::Other(format!("emitBatch message of type {:?}", header.kind)));
    }
    // emitBatch_args { 1: Batch batch }
    let mut batch = None;
    p.read_struct_begin()?;
    while let Some((t, id)) = p.read_field_begin()? {
        match (id, t) {
            (1, TType::Struct) => batch = Some(read_batch(p)?),
            _ => skip(p, t)?,
        }
    }
    p.read_struct_end()?;
    batch.ok_or(Error::MissingField { structure: "emitBatch_args", field: "batch" })
}

/// Checks a field's wire type.
fn expect(structure: &'static str, field: i16, found: TType, expected: TType) -> Result<()> {
    if found == expected { Ok(()) } else { Err(Error::WrongType { structure, field, expected, found }) }
}

fn read_batch(p: &mut dyn Protocol) -> Result<Batch> {
    const S: &str = "Batch";
    let mut batch = Batch::default();
    let mut has_spans = false;
    p.read_struct_begin()?;
    while let Some((t, id)) = p.read_field_begin()? {
        match id {
            1 => {
                expect(S, id, t, TType::Struct)?;
                batch.process = Some(read_process(p)?);
            }
            2 => {
                let n = read_list_of(p, S, id, t, TType::Struct)?;
                for _ in 0..n {
                    batch.spans.push(read_span(p)?);
                }
                has_spans = true;
            }
            _ => skip(p, t)?,
        }
    }
    p.read_struct_end()?;
    if batch.process.is_none() {
        return Err(Error::MissingField { structure: S, field: "process" });
    }
    if !has_spans {
        return Err(Error::MissingField { structure: S, field: "spans" });
    }
    Ok(batch)
}

fn read_process(p: &mut dyn Protocol) -> Result<Process> {
    const S: &str = "Process";
    let mut process = Process::default();
    p.read_struct_begin()?;
    while let Some((t, id)) = p.read_field_begin()? {
        match id {
            1 => {
                expect(S, id, t, TType::Binary)?;
                process.service_name = p.read_string()?;
            }
            2 => process.tags = read_tags(p, S, id, t)?,
            _ => skip(p, t)?,
        }
    }
    p.read_struct_end()?;
    Ok(process)
}

fn read_tags(p: &mut dyn Protocol, structure: &'static str, field: i16, field_type: TType) -> Result<Vec<Tag>> {
    let n = read_list_of(p, structure, field, field_type, TType::Struct)?;
    let mut tags = Vec::new();
    for _ in 0..n {
        tags.push(read_tag(p)?);
    }
    Ok(tags)
}

fn read_tag(p: &mut dyn Protocol) -> Result<Tag> {
    const S: &str = "Tag";
    let (mut key, mut v_type) = (None, None);
    let (mut v_str, mut v_double, mut v_bool, mut v_long, mut v_binary) = (None, None, None, None, None);
    p.read_struct_begin()?;
    while let Some((t, id)) = p.read_field_begin()? {
        match (id, t) {
            (1, TType::Binary) => key = Some(p.read_string()?),
            (2, TType::I32) => v_type = Some(p.read_i32()?),
            (3, TType::Binary) => v_str = Some(p.read_string()?),
            (4, TType::Double) => v_double = Some(p.read_double()?),
            (5, TType::Bool) => v_bool = Some(p.read_bool()?),
            (6, TType::I64) => v_long = Some(p.read_i64()?),
            (7, TType::Binary) => v_binary = Some(p.read_binary()?.to_vec()),
            (1..=7, _) => return Err(Error::Other(format!("Tag field {id} has wire type {t:?}"))),
            _ => skip(p, t)?,
        }
    }
    p.read_struct_end()?;
    let key = key.ok_or(Error::MissingField { structure: S, field: "key" })?;
    // TagType { STRING, DOUBLE, BOOL, LONG, BINARY }; an absent value is the
    // type's zero, as Thrift readers leave it.
    let value = match v_type.ok_or(Error::MissingField { structure: S, field: "vType" })? {
        0 => TagValue::String(v_str.unwrap_or_default()),
        1 => TagValue::Double(v_double.unwrap_or_default()),
        2 => TagValue::Bool(v_bool.unwrap_or_default()),
        3 => TagValue::Long(v_long.unwrap_or_default()),
        4 => TagValue::Binary(v_binary.unwrap_or_default()),
        other => return Err(Error::Other(format!("unknown tag type {other} of tag {key:?}"))),
    };
    Ok(Tag { key, value })
}

fn read_log(p: &mut dyn Protocol) -> Result<Log> {
    const S: &str = "Log";
    let mut log = Log::default();
    let mut timestamp = None;
    p.read_struct_begin()?;
    while let Some((t, id)) = p.read_field_begin()? {
        match id {
            1 => {
                expect(S, id, t, TType::I64)?;
                timestamp = Some(p.read_i64()?);
            }
            2 => log.fields = read_tags(p, S, id, t)?,
            _ => skip(p, t)?,
        }
    }
    p.read_struct_end()?;
    log.time_unix_nano = micros_to_nanos(timestamp.ok_or(Error::MissingField { structure: S, field: "timestamp" })?);
    Ok(log)
}

fn read_span_ref(p: &mut dyn Protocol) -> Result<SpanRef> {
    const S: &str = "SpanRef";
    let (mut ref_type, mut low, mut high, mut span_id) = (None, None, None, None);
    p.read_struct_begin()?;
    while let Some((t, id)) = p.read_field_begin()? {
        match (id, t) {
            (1, TType::I32) => ref_type = Some(p.read_i32()?),
            (2, TType::I64) => low = Some(p.read_i64()?),
            (3, TType::I64) => high = Some(p.read_i64()?),
            (4, TType::I64) => span_id = Some(p.read_i64()?),
            (1..=4, _) => return Err(Error::Other(format!("SpanRef field {id} has wire type {t:?}"))),
            _ => skip(p, t)?,
        }
    }
    p.read_struct_end()?;
    let missing = |field| Error::MissingField { structure: S, field };
    let ref_type = match ref_type.ok_or(missing("refType"))? {
        0 => RefType::ChildOf,
        1 => RefType::FollowsFrom,
        other => return Err(Error::Other(format!("unknown span reference type {other}"))),
    };
    Ok(SpanRef {
        ref_type,
        trace_id: trace_id(high.ok_or(missing("traceIdHigh"))?, low.ok_or(missing("traceIdLow"))?),
        span_id: span_id.ok_or(missing("spanId"))?.to_be_bytes(),
    })
}

fn read_span(p: &mut dyn Protocol) -> Result<Span> {
    const S: &str = "Span";
    let mut span = Span::default();
    let (mut low, mut high, mut span_id, mut parent, mut start, mut duration) = (None, None, None, None, None, None);
    p.read_struct_begin()?;
    while let Some((t, id)) = p.read_field_begin()? {
        match (id, t) {
            (1, TType::I64) => low = Some(p.read_i64()?),
            (2, TType::I64) => high = Some(p.read_i64()?),
            (3, TType::I64) => span_id = Some(p.read_i64()?),
            (4, TType::I64) => parent = Some(p.read_i64()?),
            (5, TType::Binary) => span.operation_name = p.read_string()?,
            (6, TType::List) => {
                let n = read_list_of(p, S, id, t, TType::Struct)?;
                for _ in 0..n {
                    span.references.push(read_span_ref(p)?);
                }
            }
            (7, TType::I32) => span.flags = p.read_i32()? as u32,
            (8, TType::I64) => start = Some(p.read_i64()?),
            (9, TType::I64) => duration = Some(p.read_i64()?),
            (10, TType::List) => span.tags = read_tags(p, S, id, t)?,
            (11, TType::List) => {
                let n = read_list_of(p, S, id, t, TType::Struct)?;
                for _ in 0..n {
                    span.logs.push(read_log(p)?);
                }
            }
            (1..=11, _) => return Err(Error::Other(format!("Span field {id} has wire type {t:?}"))),
            _ => skip(p, t)?,
        }
    }
    p.read_struct_end()?;
    let missing = |field| Error::MissingField { structure: S, field };
    span.trace_id = trace_id(high.ok_or(missing("traceIdHigh"))?, low.ok_or(missing("traceIdLow"))?);
    span.span_id = span_id.ok_or(missing("spanId"))?.to_be_bytes();
    span.start_unix_nano = micros_to_nanos(start.ok_or(missing("startTime"))?);
    span.duration_nano = micros_to_nanos(duration.ok_or(missing("duration"))?);
    // `parentSpanId` is the parent; as Jaeger's own converter does, it
    // becomes a leading CHILD_OF reference unless one already names it.
    let parent = parent.unwrap_or(0);
    if parent != 0 {
        let parent = parent.to_be_bytes();
        let present =
            span.references.iter().any(|r| r.ref_type == RefType::ChildOf && r.span_id == parent && r.trace_id == span.trace_id);
        if !present {
            span.references.insert(0, SpanRef { ref_type: RefType::ChildOf, trace_id: span.trace_id, span_id: parent });
        }
    }
    Ok(span)
}

/// Microseconds (Jaeger thrift's unit) to nanoseconds; negative times are 0.
fn micros_to_nanos(us: i64) -> u64 {
    u64::try_from(us).unwrap_or(0).saturating_mul(1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary-protocol writer for the few shapes the tests need.
    struct W(Vec<u8>);
    impl W {
        fn field(&mut self, t: u8, id: i16) -> &mut Self {
            self.0.push(t);
            self.0.extend_from_slice(&id.to_be_bytes());
            self
        }
        fn i64(&mut self, id: i16, v: i64) -> &mut Self {
            self.field(10, id);
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i32(&mut self, id: i16, v: i32) -> &mut Self {
            self.field(8, id);
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn str(&mut self, id: i16, v: &str) -> &mut Self {
            self.field(11, id);
            self.0.extend_from_slice(&(v.len() as i32).to_be_bytes());
            self.0.extend_from_slice(v.as_bytes());
            self
        }
        fn list(&mut self, id: i16, elem: u8, n: i32) -> &mut Self {
            self.field(15, id);
            self.0.push(elem);
            self.0.extend_from_slice(&n.to_be_bytes());
            self
        }
        fn stop(&mut self) -> &mut Self {
            self.0.push(0);
            self
        }
    }

    fn sample_batch() -> Vec<u8> {
        let mut w = W(Vec::new());
        w.field(12, 1).str(1, "svc").list(2, 12, 1).str(1, "k").i32(2, 3).i64(6, 42).stop().stop();
        w.list(2, 12, 1);
        w.i64(1, 7).i64(2, 0).i64(3, 2).i64(4, 1).str(5, "op").i32(7, 1).i64(8, 1_000).i64(9, 5).stop();
        w.stop();
        w.0
    }

    #[test]
    fn decodes_a_binary_batch() {
        let batch = decode_batch(&sample_batch(), ThriftProtocol::Binary).unwrap();
        let process = batch.process.unwrap();
        assert_eq!(process.service_name, "svc");
        assert_eq!(process.tags, vec![Tag { key: "k".into(), value: TagValue::Long(42) }]);
        let span = &batch.spans[0];
        assert_eq!(span.trace_id, trace_id(0, 7));
        assert_eq!(span.references, vec![SpanRef { ref_type: RefType::ChildOf, trace_id: trace_id(0, 7), span_id: 1i64.to_be_bytes() }]);
        assert_eq!(span.start_unix_nano, 1_000_000);
        assert_eq!(span.duration_nano, 5_000);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let data = sample_batch();
        for n in 0..data.len() {
            assert!(decode_batch(&data[..n], ThriftProtocol::Binary).is_err(), "prefix {n}");
            let _ = decode_batch(&data[..n], ThriftProtocol::Compact);
        }
    }
}
