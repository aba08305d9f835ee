//! A zero-copy reader of OTLP trace protobuf: views of an
//! `ExportTraceServiceRequest` and of the messages in it that borrow ids and
//! strings from the request's bytes, for the conversion to the span table.
//! Decoding requests into owned prost messages (a `String` per attribute
//! key and value) and dropping them again was a quarter of the ingest's
//! instructions on `small`.
//!
//! The wire format is read by hand (varints, keys, length-delimited fields;
//! prost's own readers are not public API). Field numbers are those of
//! opentelemetry-proto's `trace.v1`, `resource.v1` and `common.v1`. As in
//! prost: unknown fields are skipped, and a known field of the wrong wire
//! type, a truncated field or a string that is not UTF-8 is an error. A
//! singular message field given more than once is merged, as protobuf
//! requires: its scalar fields are the last given, its repeated fields
//! concatenated. Attributes of the `other` kind (arrays, kvlists, bytes,
//! empty values) and entity references are decoded with prost when they
//! are rendered, so malformed content nested in them is found only then
//! (never in the spans rejected for their ids, which are not rendered).

use prost::Message;

use crate::error::Error;

/// Why a request's bytes are not OTLP protobuf; becomes [`Error::Malformed`].
/// Small, unlike [`Error`]: every field read returns it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Malformed(Box<str>);

impl From<Malformed> for Error {
    fn from(malformed: Malformed) -> Self {
        Error::Malformed { format: "OTLP protobuf", message: malformed.0.into() }
    }
}

type Result<T, E = Malformed> = std::result::Result<T, E>;

/// A string field's bytes as a `str`.
fn utf8(bytes: &[u8]) -> Result<&str> {
    std::str::from_utf8(bytes).map_err(|e| malformed(format!("string field is not UTF-8: {e}")))
}

#[cold]
fn malformed(what: impl std::fmt::Display) -> Malformed {
    Malformed(what.to_string().into())
}

/// One field's value as found on the wire.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
    /// A group (wire types 3 and 4), skipped: no OTLP field is one.
    Group,
}

impl<'a> FieldValue<'a> {
    #[cold]
    fn wrong_type(self, expected: &str) -> Malformed {
        malformed(format!("a field expected as {expected} is {self:?}"))
    }

    fn varint(self) -> Result<u64> {
        match self {
            FieldValue::Varint(v) => Ok(v),
            other => Err(other.wrong_type("varint")),
        }
    }

    /// A `uint32` field: prost keeps the low 32 bits of the varint.
    fn uint32(self) -> Result<u32> {
        self.varint().map(|v| v as u32)
    }

    /// An `int32` or enum field (its low 32 bits, as prost).
    fn int32(self) -> Result<i32> {
        self.varint().map(|v| v as i32)
    }

    fn fixed64(self) -> Result<u64> {
        match self {
            FieldValue::Fixed64(v) => Ok(v),
            other => Err(other.wrong_type("fixed64")),
        }
    }

    fn fixed32(self) -> Result<u32> {
        match self {
            FieldValue::Fixed32(v) => Ok(v),
            other => Err(other.wrong_type("fixed32")),
        }
    }

    /// A `bytes` or message field.
    fn bytes(self) -> Result<&'a [u8]> {
        match self {
            FieldValue::Len(v) => Ok(v),
            other => Err(other.wrong_type("length-delimited")),
        }
    }

    fn str(self) -> Result<&'a str> {
        utf8(self.bytes()?)
    }
}

/// The fields of one message, in wire order; stops after the first error.
#[derive(Debug, Clone)]
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(crate) fn new(message: &'a [u8]) -> Self {
        Self { buf: message }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64> {
        // Most varints (keys, lengths, small counts) are one byte.
        if let Some(&byte) = self.buf.first()
            && byte < 0x80
        {
            self.buf = &self.buf[1..];
            return Ok(u64::from(byte));
        }
        self.varint_slow()
    }

    fn varint_slow(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for (i, byte) in self.buf.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if *byte < 0x80 {
                if i == 9 && *byte > 1 {
                    break;
                }
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(malformed("invalid or truncated varint"))
    }

    #[inline]
    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        if len > self.buf.len() {
            return Err(malformed(format!("field of {len} bytes with {} left", self.buf.len())));
        }
        let (taken, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(taken)
    }

    /// A field key: its number and wire type.
    #[inline]
    fn key(&mut self) -> Result<(u32, u64)> {
        let key = self.varint()?;
        // As prost: a key is a u32, so field numbers are below 2^29.
        let number = u32::try_from(key).ok().map(|key| key >> 3).filter(|n| *n != 0);
        Ok((number.ok_or_else(|| malformed(format!("invalid field key {key}")))?, key & 7))
    }

    /// Skips the rest of the group `number` whose start was just read.
    fn skip_group(&mut self, number: u32, depth: u32) -> Result<()> {
        if depth > 100 {
            return Err(malformed("groups nested too deep"));
        }
        loop {
            let (inner, wire_type) = self.key()?;
            match wire_type {
                4 if inner == number => return Ok(()),
                4 => return Err(malformed("unmatched end of group")),
                3 => self.skip_group(inner, depth + 1)?,
                _ => {
                    self.value(wire_type)?;
                }
            }
        }
    }

    #[inline]
    fn value(&mut self, wire_type: u64) -> Result<FieldValue<'a>> {
        Ok(match wire_type {
            0 => FieldValue::Varint(self.varint()?),
            1 => FieldValue::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"))),
            2 => {
                let len = self.varint()?;
                FieldValue::Len(self.take(usize::try_from(len).map_err(|_| malformed("length overflows"))?)?)
            }
            5 => FieldValue::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"))),
            other => return Err(malformed(format!("unexpected wire type {other}"))),
        })
    }

    #[inline]
    fn field(&mut self) -> Result<(u32, FieldValue<'a>)> {
        let (number, wire_type) = self.key()?;
        if wire_type == 3 {
            self.skip_group(number, 0)?;
            return Ok((number, FieldValue::Group));
        }
        Ok((number, self.value(wire_type)?))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, FieldValue<'a>)>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let field = self.field();
        if field.is_err() {
            self.buf = &[];
        }
        Some(field)
    }
}

/// The messages (or bytes) of the repeated field `number` of `message`.
fn repeated(message: &[u8], number: u32) -> impl Iterator<Item = Result<&[u8]>> {
    Fields::new(message).filter_map(move |field| match field {
        Ok((n, value)) if n == number => Some(value.bytes()),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    })
}

/// An attribute value by type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum ValueView<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Arrays, kvlists, bytes, string-table references and empty or
    /// absent values: the whole `KeyValue` message, decoded with prost
    /// when rendered.
    Other(&'a [u8]),
}

/// A `KeyValue` attribute.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyValueView<'a> {
    pub(crate) key: &'a str,
    pub(crate) value: ValueView<'a>,
}

impl<'a> KeyValueView<'a> {
    pub(crate) fn parse(message: &'a [u8]) -> Result<Self> {
        Self::parse_common(message).unwrap_or_else(|| Self::parse_fields(message))
    }

    /// The encoding SDKs write (the key, then a value holding one string,
    /// int, double or bool, each shorter than 128 bytes), read without the
    /// field loop: attributes are most of a request's fields. `None` for
    /// any other layout, which [`Self::parse_fields`] reads.
    #[inline]
    fn parse_common(message: &'a [u8]) -> Option<Result<Self>> {
        let short = |len: u8, rest: &[u8]| len < 0x80 && rest.len() >= len as usize;
        let [0x0a, key_len, rest @ ..] = message else { return None };
        if !short(*key_len, rest) {
            return None;
        }
        let (key, rest) = rest.split_at(*key_len as usize);
        let [0x12, value_len, value @ ..] = rest else { return None };
        if *value_len >= 0x80 || value.len() != *value_len as usize {
            return None;
        }
        let value = match value {
            [0x0a, len, string @ ..] if *len < 0x80 && string.len() == *len as usize => match utf8(string) {
                Ok(string) => ValueView::Str(string),
                Err(e) => return Some(Err(e)),
            },
            [0x18, int @ ..] => {
                let mut fields = Fields::new(int);
                let int = fields.varint().ok().filter(|_| fields.buf.is_empty())?;
                ValueView::Int(int as i64)
            }
            [0x21, double @ ..] => ValueView::Float(f64::from_bits(u64::from_le_bytes(double.try_into().ok()?))),
            [0x10, bool] if *bool < 0x80 => ValueView::Bool(*bool != 0),
            _ => return None,
        };
        Some(utf8(key).map(|key| Self { key, value }))
    }

    /// Any encoding: every field in turn.
    fn parse_fields(message: &'a [u8]) -> Result<Self> {
        let mut key = "";
        let mut value = ValueView::Other(message);
        for field in Fields::new(message) {
            match field? {
                (1, v) => key = v.str()?,
                // AnyValue: a oneof, the last of its fields given wins,
                // also over several occurrences of the value (they merge).
                (2, v) => {
                    for field in Fields::new(v.bytes()?) {
                        value = match field? {
                            (1, v) => ValueView::Str(v.str()?),
                            (2, v) => ValueView::Bool(v.varint()? != 0),
                            (3, v) => ValueView::Int(v.varint()? as i64),
                            (4, v) => ValueView::Float(f64::from_bits(v.fixed64()?)),
                            // Arrays, kvlists and bytes; their content is
                            // checked by prost when rendered.
                            (5..=7, v) => v.bytes().map(|_| ValueView::Other(message))?,
                            // A string-table reference (profiles only).
                            (8, v) => v.varint().map(|_| ValueView::Other(message))?,
                            _ => continue,
                        };
                    }
                }
                // `key_strindex`, used by profiles only.
                (3, v) => {
                    v.varint()?;
                }
                _ => {}
            }
        }
        Ok(Self { key, value })
    }

    /// The prost value of an [`ValueView::Other`] attribute (`None` when absent).
    pub(crate) fn decode_other(message: &[u8]) -> Result<Option<opentelemetry_proto::tonic::common::v1::AnyValue>> {
        let kv = opentelemetry_proto::tonic::common::v1::KeyValue::decode(message).map_err(malformed)?;
        Ok(kv.value)
    }
}

/// Items `start..end` of one of a request's lists (attributes, events, links).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Items {
    start: u32,
    end: u32,
}

impl Items {
    /// The items pushed to `list` since it had `start` items.
    fn since<T>(start: usize, list: &[T]) -> Result<Self> {
        let index = |i: usize| u32::try_from(i).map_err(|_| malformed("too many items in one request"));
        Ok(Self { start: index(start)?, end: index(list.len())? })
    }

    /// How many items.
    pub(crate) fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    fn of<T>(self, list: &[T]) -> &[T] {
        &list[self.start as usize..self.end as usize]
    }
}

/// A `Resource` (merged over every occurrence of the field).
#[derive(Debug, Default)]
pub(crate) struct ResourceView<'a> {
    pub(crate) attributes: Vec<KeyValueView<'a>>,
    pub(crate) dropped_attributes_count: u32,
    /// `EntityRef` messages.
    pub(crate) entity_refs: Vec<&'a [u8]>,
}

impl<'a> ResourceView<'a> {
    fn merge(&mut self, message: &'a [u8]) -> Result<()> {
        for field in Fields::new(message) {
            match field? {
                (1, v) => self.attributes.push(KeyValueView::parse(v.bytes()?)?),
                (2, v) => self.dropped_attributes_count = v.uint32()?,
                (3, v) => self.entity_refs.push(v.bytes()?),
                _ => {}
            }
        }
        Ok(())
    }

    /// The entity references, decoded with prost.
    pub(crate) fn decode_entity_refs(&self) -> Result<Vec<opentelemetry_proto::tonic::common::v1::EntityRef>> {
        self.entity_refs.iter().map(|r| opentelemetry_proto::tonic::common::v1::EntityRef::decode(*r).map_err(malformed)).collect()
    }
}

/// An `InstrumentationScope` (merged over every occurrence of the field).
#[derive(Debug, Default)]
pub(crate) struct ScopeView<'a> {
    pub(crate) name: &'a str,
    pub(crate) version: &'a str,
    pub(crate) attributes: Vec<KeyValueView<'a>>,
    pub(crate) dropped_attributes_count: u32,
}

impl<'a> ScopeView<'a> {
    fn merge(&mut self, message: &'a [u8]) -> Result<()> {
        for field in Fields::new(message) {
            match field? {
                (1, v) => self.name = v.str()?,
                (2, v) => self.version = v.str()?,
                (3, v) => self.attributes.push(KeyValueView::parse(v.bytes()?)?),
                (4, v) => self.dropped_attributes_count = v.uint32()?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// A `Span`. Its attributes, events and links are in the request's lists
/// (see [`RequestView`]).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SpanView<'a> {
    pub(crate) trace_id: &'a [u8],
    pub(crate) span_id: &'a [u8],
    pub(crate) trace_state: &'a str,
    pub(crate) parent_span_id: &'a [u8],
    pub(crate) flags: u32,
    pub(crate) name: &'a str,
    pub(crate) kind: i32,
    pub(crate) start_time_unix_nano: u64,
    pub(crate) end_time_unix_nano: u64,
    pub(crate) dropped_attributes_count: u32,
    pub(crate) dropped_events_count: u32,
    pub(crate) dropped_links_count: u32,
    pub(crate) status_code: i32,
    pub(crate) status_message: &'a str,
    pub(crate) attributes: Items,
    pub(crate) events: Items,
    pub(crate) links: Items,
}

/// A span `Event`.
#[derive(Debug, Default)]
pub(crate) struct EventView<'a> {
    pub(crate) time_unix_nano: u64,
    pub(crate) name: &'a str,
    pub(crate) attributes: Items,
    pub(crate) dropped_attributes_count: u32,
}

/// A span `Link`.
#[derive(Debug, Default)]
pub(crate) struct LinkView<'a> {
    pub(crate) trace_id: &'a [u8],
    pub(crate) span_id: &'a [u8],
    pub(crate) trace_state: &'a str,
    pub(crate) attributes: Items,
    pub(crate) dropped_attributes_count: u32,
    pub(crate) flags: u32,
}

/// A `ScopeSpans`.
#[derive(Debug, Default)]
pub(crate) struct ScopeSpansView<'a> {
    pub(crate) scope: ScopeView<'a>,
    pub(crate) spans: Vec<SpanView<'a>>,
    pub(crate) schema_url: &'a str,
}

/// A `ResourceSpans`.
#[derive(Debug, Default)]
pub(crate) struct ResourceSpansView<'a> {
    pub(crate) resource: ResourceView<'a>,
    pub(crate) scope_spans: Vec<ScopeSpansView<'a>>,
    pub(crate) schema_url: &'a str,
}

/// An `ExportTraceServiceRequest`, every field read once. The attributes,
/// events and links of all its spans are kept in flat lists (one
/// allocation each per request, not per span), which spans, events and
/// links index with [`Items`].
#[derive(Debug, Default)]
pub(crate) struct RequestView<'a> {
    pub(crate) resource_spans: Vec<ResourceSpansView<'a>>,
    span_attributes: Vec<KeyValueView<'a>>,
    events: Vec<EventView<'a>>,
    event_attributes: Vec<KeyValueView<'a>>,
    links: Vec<LinkView<'a>>,
    link_attributes: Vec<KeyValueView<'a>>,
}

impl<'a> RequestView<'a> {
    /// Reads the protobuf of an `ExportTraceServiceRequest`.
    pub(crate) fn parse(message: &'a [u8]) -> Result<Self> {
        let mut request = Self::default();
        for rs in repeated(message, 1) {
            let rs = request.resource_spans(rs?)?;
            request.resource_spans.push(rs);
        }
        Ok(request)
    }

    pub(crate) fn span_attributes(&self, span: &SpanView<'a>) -> &[KeyValueView<'a>] {
        span.attributes.of(&self.span_attributes)
    }

    pub(crate) fn events(&self, span: &SpanView<'a>) -> &[EventView<'a>] {
        span.events.of(&self.events)
    }

    pub(crate) fn event_attributes(&self, event: &EventView<'a>) -> &[KeyValueView<'a>] {
        event.attributes.of(&self.event_attributes)
    }

    pub(crate) fn links(&self, span: &SpanView<'a>) -> &[LinkView<'a>] {
        span.links.of(&self.links)
    }

    pub(crate) fn link_attributes(&self, link: &LinkView<'a>) -> &[KeyValueView<'a>] {
        link.attributes.of(&self.link_attributes)
    }

    fn resource_spans(&mut self, message: &'a [u8]) -> Result<ResourceSpansView<'a>> {
        let mut resource = ResourceView::default();
        let (scope_spans, schema_url) = self.container(message, |m| resource.merge(m), Self::scope_spans)?;
        Ok(ResourceSpansView { resource, scope_spans, schema_url })
    }

    fn scope_spans(&mut self, message: &'a [u8]) -> Result<ScopeSpansView<'a>> {
        let mut scope = ScopeView::default();
        let (spans, schema_url) = self.container(message, |m| scope.merge(m), Self::span)?;
        Ok(ScopeSpansView { scope, spans, schema_url })
    }

    /// A `ResourceSpans` or `ScopeSpans`, which share their layout: the
    /// resource or scope (field 1, given to `merge`), the children (field
    /// 2, each read by `child`) and the schema URL (field 3).
    fn container<T>(
        &mut self,
        message: &'a [u8],
        mut merge: impl FnMut(&'a [u8]) -> Result<()>,
        child: impl Fn(&mut Self, &'a [u8]) -> Result<T>,
    ) -> Result<(Vec<T>, &'a str)> {
        let (mut children, mut schema_url) = (Vec::new(), "");
        for field in Fields::new(message) {
            match field? {
                (1, v) => merge(v.bytes()?)?,
                (2, v) => children.push(child(self, v.bytes()?)?),
                (3, v) => schema_url = v.str()?,
                _ => {}
            }
        }
        Ok((children, schema_url))
    }

    fn span(&mut self, message: &'a [u8]) -> Result<SpanView<'a>> {
        let mut span = SpanView::default();
        let (attributes, events, links) = (self.span_attributes.len(), self.events.len(), self.links.len());
        for field in Fields::new(message) {
            match field? {
                (1, v) => span.trace_id = v.bytes()?,
                (2, v) => span.span_id = v.bytes()?,
                (3, v) => span.trace_state = v.str()?,
                (4, v) => span.parent_span_id = v.bytes()?,
                (5, v) => span.name = v.str()?,
                (6, v) => span.kind = v.int32()?,
                (7, v) => span.start_time_unix_nano = v.fixed64()?,
                (8, v) => span.end_time_unix_nano = v.fixed64()?,
                (9, v) => self.span_attributes.push(KeyValueView::parse(v.bytes()?)?),
                (10, v) => span.dropped_attributes_count = v.uint32()?,
                (11, v) => {
                    let event = self.event(v.bytes()?)?;
                    self.events.push(event);
                }
                (12, v) => span.dropped_events_count = v.uint32()?,
                (13, v) => {
                    let link = self.link(v.bytes()?)?;
                    self.links.push(link);
                }
                (14, v) => span.dropped_links_count = v.uint32()?,
                (15, v) => {
                    for field in Fields::new(v.bytes()?) {
                        match field? {
                            (2, v) => span.status_message = v.str()?,
                            (3, v) => span.status_code = v.int32()?,
                            _ => {}
                        }
                    }
                }
                (16, v) => span.flags = v.fixed32()?,
                _ => {}
            }
        }
        span.attributes = Items::since(attributes, &self.span_attributes)?;
        span.events = Items::since(events, &self.events)?;
        span.links = Items::since(links, &self.links)?;
        Ok(span)
    }

    fn event(&mut self, message: &'a [u8]) -> Result<EventView<'a>> {
        let mut event = EventView::default();
        let attributes = self.event_attributes.len();
        for field in Fields::new(message) {
            match field? {
                (1, v) => event.time_unix_nano = v.fixed64()?,
                (2, v) => event.name = v.str()?,
                (3, v) => self.event_attributes.push(KeyValueView::parse(v.bytes()?)?),
                (4, v) => event.dropped_attributes_count = v.uint32()?,
                _ => {}
            }
        }
        event.attributes = Items::since(attributes, &self.event_attributes)?;
        Ok(event)
    }

    fn link(&mut self, message: &'a [u8]) -> Result<LinkView<'a>> {
        let mut link = LinkView::default();
        let attributes = self.link_attributes.len();
        for field in Fields::new(message) {
            match field? {
                (1, v) => link.trace_id = v.bytes()?,
                (2, v) => link.span_id = v.bytes()?,
                (3, v) => link.trace_state = v.str()?,
                (4, v) => self.link_attributes.push(KeyValueView::parse(v.bytes()?)?),
                (5, v) => link.dropped_attributes_count = v.uint32()?,
                (6, v) => link.flags = v.fixed32()?,
                _ => {}
            }
        }
        link.attributes = Items::since(attributes, &self.link_attributes)?;
        Ok(link)
    }
}

/// Spans in an `ExportTraceServiceRequest`, counted without reading them
/// (for the metrics of a request that failed); 0 when malformed.
pub fn count_spans(message: &[u8]) -> usize {
    let count = || -> Result<usize> {
        let mut spans = 0;
        for rs in repeated(message, 1) {
            for ss in repeated(rs?, 2) {
                for span in repeated(ss?, 2) {
                    span?;
                    spans += 1;
                }
            }
        }
        Ok(spans)
    };
    count().unwrap_or(0)
}

/// The protobuf of an `ExportTraceServiceRequest` holding `resource_spans`
/// (field 1 of the request, each written length-delimited).
pub fn encode_request(resource_spans: &[opentelemetry_proto::tonic::trace::v1::ResourceSpans]) -> Vec<u8> {
    let len = |rs: &opentelemetry_proto::tonic::trace::v1::ResourceSpans| rs.encoded_len();
    let mut buf = Vec::with_capacity(resource_spans.iter().map(|rs| 1 + prost::length_delimiter_len(len(rs)) + len(rs)).sum());
    for rs in resource_spans {
        buf.push(1 << 3 | 2);
        rs.encode_length_delimited(&mut buf).expect("the buffer grows");
    }
    buf
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;

    fn request(spans: Vec<Span>) -> Vec<ResourceSpans> {
        vec![ResourceSpans { scope_spans: vec![ScopeSpans { spans, ..Default::default() }], ..Default::default() }]
    }

    #[test]
    fn encoded_requests_are_what_prost_encodes() {
        let rs = request(vec![Span { name: "a".into(), ..Default::default() }; 3]);
        let ours = encode_request(&rs);
        assert_eq!(ours, ExportTraceServiceRequest { resource_spans: rs }.encode_to_vec());
        assert_eq!(count_spans(&ours), 3);
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        let span = Span { trace_id: vec![1; 16], span_id: vec![2; 8], name: "name".into(), ..Default::default() };
        let good = encode_request(&request(vec![span]));
        assert_eq!(RequestView::parse(&good).unwrap().resource_spans[0].scope_spans[0].spans[0].name, "name");
        // Every truncation, and every single-byte change, fails cleanly or parses.
        for len in 0..good.len() {
            let _ = RequestView::parse(&good[..len]);
        }
        for at in 0..good.len() {
            for byte in [0x00, 0x07, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] = byte;
                let _ = RequestView::parse(&bad);
            }
        }
        assert!(RequestView::parse(&[0x0a, 0x05, 0x01]).is_err(), "length past the end");
        assert!(RequestView::parse(&[0x0a; 11]).is_err());
        assert!(RequestView::parse(&[0xff; 12]).is_err(), "varint of more than 10 bytes");
        assert!(RequestView::parse(&[0x80, 0x80, 0x80, 0x80, 0x10, 0x00]).is_err(), "key above u32::MAX");
    }

    #[test]
    fn strings_must_be_utf8_and_fields_of_the_right_wire_type() {
        // ResourceSpans { scope_spans { spans { name: [0xff] } } }
        let span = [0x2a, 0x01, 0xff];
        let scope = [&[0x12, span.len() as u8][..], &span].concat();
        let rs = [&[0x12, scope.len() as u8][..], &scope].concat();
        let req = [&[0x0a, rs.len() as u8][..], &rs].concat();
        assert!(RequestView::parse(&req).unwrap_err().to_string().contains("UTF-8"));
        // start_time_unix_nano (7) as a varint instead of fixed64.
        let span = [0x38, 0x01];
        let scope = [&[0x12, span.len() as u8][..], &span].concat();
        let rs = [&[0x12, scope.len() as u8][..], &scope].concat();
        let req = [&[0x0a, rs.len() as u8][..], &rs].concat();
        assert!(RequestView::parse(&req).is_err());
    }

    #[test]
    fn the_common_attribute_encoding_reads_as_any_other() {
        let kv = |value: Option<Value>| KeyValue { key: "key".into(), value: Some(AnyValue { value }), ..Default::default() };
        let long = "x".repeat(200);
        let attributes = [
            kv(Some(Value::StringValue("value".into()))),
            kv(Some(Value::StringValue(String::new()))),
            kv(Some(Value::StringValue(long.clone()))),
            kv(Some(Value::IntValue(-1))),
            kv(Some(Value::IntValue(300))),
            kv(Some(Value::DoubleValue(2.5))),
            kv(Some(Value::BoolValue(true))),
            kv(Some(Value::BytesValue(vec![1]))),
            kv(None),
            KeyValue { key: long, ..Default::default() },
        ];
        for attribute in &attributes {
            let bytes = attribute.encode_to_vec();
            let (fast, any) = (KeyValueView::parse(&bytes).unwrap(), KeyValueView::parse_fields(&bytes).unwrap());
            assert_eq!((fast.key, fast.value), (any.key, any.value), "{attribute:?}");
        }
        let common = |bytes: &[u8]| KeyValueView::parse_common(bytes).is_some();
        assert!(common(&attributes[0].encode_to_vec()) && common(&attributes[4].encode_to_vec()));
        assert!(!common(&attributes[2].encode_to_vec()) && !common(&attributes[8].encode_to_vec()));
        // Invalid UTF-8 is an error on the short path too.
        assert!(KeyValueView::parse(&[0x0a, 0x01, 0xff, 0x12, 0x02, 0x0a, 0x00]).is_err());
        assert!(KeyValueView::parse(&[0x0a, 0x01, b'k', 0x12, 0x03, 0x0a, 0x01, 0xff]).is_err());
    }

    #[test]
    fn values_given_twice_merge_as_in_prost() {
        use opentelemetry_proto::tonic::common::v1::KeyValueList;
        let value = |v: Option<Value>| AnyValue { value: v }.encode_length_delimited_to_vec();
        let string = value(Some(Value::StringValue("x".into())));
        let list = value(Some(Value::KvlistValue(KeyValueList::default())));
        let (empty, int) = (value(None), value(Some(Value::IntValue(4))));
        let cases: [(Vec<&[u8]>, ValueView); 3] = [
            (vec![&string, &empty], ValueView::Str("x")),
            (vec![&list, &string], ValueView::Str("x")),
            (vec![&string, &int], ValueView::Int(4)),
        ];
        for (values, expected) in cases {
            let mut kv = vec![0x0a, 0x01, b'k'];
            for v in values {
                kv.push(0x12);
                kv.extend_from_slice(v);
            }
            let ours = KeyValueView::parse(&kv).unwrap();
            assert_eq!(ours.value, expected);
            let prost = KeyValue::decode(kv.as_slice()).unwrap();
            let prost_value = prost.value.and_then(|v| v.value);
            match (prost_value, expected) {
                (Some(Value::StringValue(s)), ValueView::Str(e)) => assert_eq!(s, e),
                (Some(Value::IntValue(i)), ValueView::Int(e)) => assert_eq!(i, e),
                other => panic!("prost and ours differ: {other:?}"),
            }
        }
        // An array value of the wrong wire type is malformed, even when a later value replaces it.
        assert!(KeyValueView::parse(&[0x12, 0x02, 0x28, 0x01, 0x12, 0x02, 0x18, 0x01]).is_err());
    }

    #[test]
    fn unknown_fields_and_groups_are_skipped_and_repeated_singular_messages_merge() {
        let kv = |key: &str, value: Value| KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() };
        let first = opentelemetry_proto::tonic::resource::v1::Resource {
            attributes: vec![kv("a", Value::IntValue(1))],
            dropped_attributes_count: 3,
            ..Default::default()
        };
        let second = opentelemetry_proto::tonic::resource::v1::Resource {
            attributes: vec![kv("b", Value::StringValue("x".into()))],
            dropped_attributes_count: 4,
            ..Default::default()
        };
        let mut rs = Vec::new();
        for resource in [first, second] {
            rs.push(0x0a);
            resource.encode_length_delimited(&mut rs).unwrap();
        }
        // An unknown varint field 99 and an unknown group 100 holding a field.
        rs.extend([0x98, 0x06, 0x05, 0xa3, 0x06, 0x08, 0x01, 0xa4, 0x06]);
        let req = [&[0x0a, rs.len() as u8][..], &rs].concat();
        let parsed = RequestView::parse(&req).unwrap();
        let resource = &parsed.resource_spans[0].resource;
        assert_eq!(resource.dropped_attributes_count, 4);
        let attrs: Vec<_> = resource.attributes.iter().map(|kv| (kv.key, kv.value)).collect();
        assert_eq!(attrs, [("a", ValueView::Int(1)), ("b", ValueView::Str("x"))]);
    }
}
