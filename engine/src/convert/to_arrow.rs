//! OTLP `ResourceSpans` → span-table record batches.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, FixedSizeBinaryBuilder, Int8Builder, Int64Builder, ListArray,
    StringBuilder, StructArray, UInt32Builder, new_null_array,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Fields};
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};

use super::attrs::{AttrMapsBuilder, SplitAttrs};
use crate::error::{Error, Result};
use crate::schema::{
    AttrScope, DEDICATED_COLUMNS, DedicatedColumn, DedicatedType, event_struct_type, link_struct_type,
    list_item_field, span_schema,
};

/// Why a span cannot be stored; receivers report these as rejected spans.
pub fn validate_span(span: &Span) -> std::result::Result<(), String> {
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|b| *b == 0) {
        return Err(format!("span has invalid trace id {:?} (need 16 bytes, not all zero)", hex::encode(&span.trace_id)));
    }
    if span.span_id.len() != 8 || span.span_id.iter().all(|b| *b == 0) {
        return Err(format!("span has invalid span id {:?} (need 8 bytes, not all zero)", hex::encode(&span.span_id)));
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Err(format!("span has invalid parent span id {:?}", hex::encode(&span.parent_span_id)));
    }
    for link in &span.links {
        if link.trace_id.len() != 16 || link.span_id.len() != 8 {
            return Err("span link has an invalid trace or span id".to_owned());
        }
    }
    Ok(())
}

/// Builder for a dedicated attribute column.
enum DedicatedBuilder {
    Str(StringBuilder),
    Int(Int64Builder),
}

impl DedicatedBuilder {
    fn new(d: &DedicatedColumn) -> Self {
        match d.data_type {
            DedicatedType::Str => DedicatedBuilder::Str(StringBuilder::new()),
            DedicatedType::Int => DedicatedBuilder::Int(Int64Builder::new()),
        }
    }

    /// Appends `value` (an attribute already matched to this column by
    /// [`dedicated_slot`], so of the column's type), or null.
    fn append(&mut self, value: Option<&Value>) {
        match (self, value) {
            (DedicatedBuilder::Str(b), Some(Value::StringValue(s))) => b.append_value(s),
            (DedicatedBuilder::Int(b), Some(Value::IntValue(i))) => b.append_value(*i),
            (DedicatedBuilder::Str(b), _) => b.append_null(),
            (DedicatedBuilder::Int(b), _) => b.append_null(),
        }
    }

    /// Appends `value` `n` times.
    fn append_n(&mut self, value: Option<&Value>, n: usize) {
        match (self, value) {
            (DedicatedBuilder::Str(b), Some(Value::StringValue(s))) => (0..n).for_each(|_| b.append_value(s)),
            (DedicatedBuilder::Int(b), Some(Value::IntValue(i))) => b.append_value_n(*i, n),
            (DedicatedBuilder::Str(b), _) => b.append_nulls(n),
            (DedicatedBuilder::Int(b), _) => b.append_nulls(n),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            DedicatedBuilder::Str(b) => Arc::new(b.finish()),
            DedicatedBuilder::Int(b) => Arc::new(b.finish()),
        }
    }
}

/// The index in [`DEDICATED_COLUMNS`] of the column of `scope` storing `kv`
/// (its key and value type match), or `None` when `kv` goes to the maps.
pub(crate) fn dedicated_slot(scope: AttrScope, kv: &KeyValue) -> Option<usize> {
    let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
    DEDICATED_COLUMNS.iter().position(|d| {
        d.scope == scope
            && d.key == kv.key
            && matches!(
                (d.data_type, value),
                (DedicatedType::Str, Some(Value::StringValue(_))) | (DedicatedType::Int, Some(Value::IntValue(_)))
            )
    })
}

/// Attributes of one scope (span or resource) split into the values of
/// dedicated columns (by index in [`DEDICATED_COLUMNS`]) and the rest.
struct ScopedAttrs<'a> {
    dedicated: [Option<&'a Value>; DEDICATED_COLUMNS.len()],
    maps: SplitAttrs<'a>,
}

impl<'a> ScopedAttrs<'a> {
    fn new(scope: AttrScope, attrs: &'a [KeyValue]) -> Result<Self> {
        let mut dedicated = [None; DEDICATED_COLUMNS.len()];
        let maps = SplitAttrs::new(attrs, |kv| match dedicated_slot(scope, kv) {
            Some(slot) => {
                dedicated[slot] = kv.value.as_ref().and_then(|v| v.value.as_ref());
                true
            }
            None => false,
        })?;
        Ok(Self { dedicated, maps })
    }
}

/// Appends `s`, or null when empty (proto3 cannot tell the two apart).
fn append_opt_str(b: &mut StringBuilder, s: &str) {
    if s.is_empty() { b.append_null() } else { b.append_value(s) }
}

/// Appends `s` (or null when empty) `n` times.
fn append_opt_str_n(b: &mut StringBuilder, s: &str, n: usize) {
    if s.is_empty() {
        b.append_nulls(n)
    } else {
        (0..n).for_each(|_| b.append_value(s))
    }
}

/// Column builders for the `events` or `links` list: element fields plus offsets.
struct NestedListBuilder {
    ids: Option<(FixedSizeBinaryBuilder, FixedSizeBinaryBuilder)>,
    time: Int64Builder,
    name: StringBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    dropped: UInt32Builder,
    attrs: AttrMapsBuilder,
    offsets: Vec<i32>,
}

impl NestedListBuilder {
    fn new(links: bool) -> Self {
        Self {
            ids: links.then(|| (FixedSizeBinaryBuilder::new(16), FixedSizeBinaryBuilder::new(8))),
            time: Int64Builder::new(),
            name: StringBuilder::new(),
            trace_state: StringBuilder::new(),
            flags: UInt32Builder::new(),
            dropped: UInt32Builder::new(),
            attrs: AttrMapsBuilder::new(),
            offsets: vec![0],
        }
    }

    fn append_events(&mut self, span: &Span) -> Result<()> {
        for e in &span.events {
            self.time.append_value(e.time_unix_nano as i64);
            self.name.append_value(&e.name);
            self.dropped.append_value(e.dropped_attributes_count);
            self.attrs.append(&e.attributes, |_| false)?;
        }
        self.offsets.push(self.offsets.last().copied().unwrap_or(0) + span.events.len() as i32);
        Ok(())
    }

    fn append_links(&mut self, span: &Span) -> Result<()> {
        let (trace_ids, span_ids) = self.ids.as_mut().ok_or_else(|| Error::internal("not a link builder"))?;
        for l in &span.links {
            trace_ids.append_value(&l.trace_id)?;
            span_ids.append_value(&l.span_id)?;
            append_opt_str(&mut self.trace_state, &l.trace_state);
            self.flags.append_value(l.flags);
            self.dropped.append_value(l.dropped_attributes_count);
            self.attrs.append(&l.attributes, |_| false)?;
        }
        self.offsets.push(self.offsets.last().copied().unwrap_or(0) + span.links.len() as i32);
        Ok(())
    }

    fn finish(&mut self) -> Result<ArrayRef> {
        let (item_type, mut columns): (DataType, Vec<ArrayRef>) = match self.ids.as_mut() {
            None => (
                event_struct_type(),
                vec![Arc::new(self.time.finish()), Arc::new(self.name.finish()), Arc::new(self.dropped.finish())],
            ),
            Some((trace_ids, span_ids)) => (
                link_struct_type(),
                vec![
                    Arc::new(trace_ids.finish()),
                    Arc::new(span_ids.finish()),
                    Arc::new(self.trace_state.finish()),
                    Arc::new(self.flags.finish()),
                    Arc::new(self.dropped.finish()),
                ],
            ),
        };
        columns.extend(self.attrs.finish());
        let DataType::Struct(fields) = &item_type else { unreachable!("item types are structs") };
        let items = StructArray::try_new(Fields::clone(fields), columns, None)?;
        let offsets = OffsetBuffer::new(std::mem::replace(&mut self.offsets, vec![0]).into());
        Ok(Arc::new(ListArray::try_new(list_item_field(item_type), offsets, Arc::new(items), None)?))
    }
}

/// Accumulates spans and produces record batches in [`span_schema`].
pub struct SpanBatchBuilder {
    rows: usize,
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    parent_span_id: FixedSizeBinaryBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    name: StringBuilder,
    kind: Int8Builder,
    start: Int64Builder,
    duration: Int64Builder,
    status_code: Int8Builder,
    status_message: StringBuilder,
    dropped_attributes: UInt32Builder,
    dropped_events: UInt32Builder,
    dropped_links: UInt32Builder,
    dedicated: Vec<DedicatedBuilder>,
    span_attrs: AttrMapsBuilder,
    resource_attrs: AttrMapsBuilder,
    resource_dropped: UInt32Builder,
    resource_schema_url: StringBuilder,
    resource_entity_refs: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attrs: AttrMapsBuilder,
    scope_dropped: UInt32Builder,
    scope_schema_url: StringBuilder,
    events: NestedListBuilder,
    links: NestedListBuilder,
}

impl Default for SpanBatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl SpanBatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self {
            rows: 0,
            trace_id: FixedSizeBinaryBuilder::new(16),
            span_id: FixedSizeBinaryBuilder::new(8),
            parent_span_id: FixedSizeBinaryBuilder::new(8),
            trace_state: StringBuilder::new(),
            flags: UInt32Builder::new(),
            name: StringBuilder::new(),
            kind: Int8Builder::new(),
            start: Int64Builder::new(),
            duration: Int64Builder::new(),
            status_code: Int8Builder::new(),
            status_message: StringBuilder::new(),
            dropped_attributes: UInt32Builder::new(),
            dropped_events: UInt32Builder::new(),
            dropped_links: UInt32Builder::new(),
            dedicated: DEDICATED_COLUMNS.iter().map(DedicatedBuilder::new).collect(),
            span_attrs: AttrMapsBuilder::new(),
            resource_attrs: AttrMapsBuilder::new(),
            resource_dropped: UInt32Builder::new(),
            resource_schema_url: StringBuilder::new(),
            resource_entity_refs: StringBuilder::new(),
            scope_name: StringBuilder::new(),
            scope_version: StringBuilder::new(),
            scope_attrs: AttrMapsBuilder::new(),
            scope_dropped: UInt32Builder::new(),
            scope_schema_url: StringBuilder::new(),
            events: NestedListBuilder::new(false),
            links: NestedListBuilder::new(true),
        }
    }

    /// Number of spans appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends every valid span of `resource_spans` (see [`validate_span`]);
    /// each invalid one is skipped and its reason passed to `rejected`.
    pub fn append_resource_spans(&mut self, resource_spans: &ResourceSpans, mut rejected: impl FnMut(String)) -> Result<()> {
        let no_resource = Resource::default();
        let resource = resource_spans.resource.as_ref().unwrap_or(&no_resource);
        let entity_refs = if resource.entity_refs.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&resource.entity_refs)?)
        };
        // Resource and scope attributes are split once and repeated on each span.
        let resource_attrs = ScopedAttrs::new(AttrScope::Resource, &resource.attributes)?;
        for scope_spans in &resource_spans.scope_spans {
            let no_scope = InstrumentationScope::default();
            let scope = scope_spans.scope.as_ref().unwrap_or(&no_scope);
            let rows_before = self.rows;
            for span in &scope_spans.spans {
                if let Err(reason) = validate_span(span) {
                    rejected(reason);
                    continue;
                }
                self.append_span(span)?;
            }
            let n = self.rows - rows_before;
            for ((builder, d), value) in self.dedicated.iter_mut().zip(DEDICATED_COLUMNS).zip(resource_attrs.dedicated) {
                if d.scope == AttrScope::Resource {
                    builder.append_n(value, n);
                }
            }
            self.resource_attrs.append_split(&resource_attrs.maps, n)?;
            self.resource_dropped.append_value_n(resource.dropped_attributes_count, n);
            append_opt_str_n(&mut self.resource_schema_url, &resource_spans.schema_url, n);
            append_opt_str_n(&mut self.resource_entity_refs, entity_refs.as_deref().unwrap_or_default(), n);
            append_opt_str_n(&mut self.scope_name, &scope.name, n);
            append_opt_str_n(&mut self.scope_version, &scope.version, n);
            self.scope_attrs.append_split(&SplitAttrs::new(&scope.attributes, |_| false)?, n)?;
            self.scope_dropped.append_value_n(scope.dropped_attributes_count, n);
            append_opt_str_n(&mut self.scope_schema_url, &scope_spans.schema_url, n);
        }
        Ok(())
    }

    /// Appends the span-level columns of one span (already validated).
    fn append_span(&mut self, span: &Span) -> Result<()> {
        self.rows += 1;
        self.trace_id.append_value(&span.trace_id)?;
        self.span_id.append_value(&span.span_id)?;
        if span.parent_span_id.is_empty() {
            self.parent_span_id.append_null();
        } else {
            self.parent_span_id.append_value(&span.parent_span_id)?;
        }
        append_opt_str(&mut self.trace_state, &span.trace_state);
        self.flags.append_value(span.flags);
        self.name.append_value(&span.name);
        // Kind and status code are small OTLP enums; out-of-range values are clamped
        // to 'unspecified' rather than wrapped.
        self.kind.append_value(i8::try_from(span.kind).unwrap_or(0));
        // Wrapping casts keep every u64 bit: end = start + duration (mod 2^64).
        self.start.append_value(span.start_time_unix_nano as i64);
        self.duration.append_value(span.end_time_unix_nano.wrapping_sub(span.start_time_unix_nano) as i64);
        let (code, message) = span.status.as_ref().map_or((0, ""), |s| (s.code, s.message.as_str()));
        self.status_code.append_value(i8::try_from(code).unwrap_or(0));
        append_opt_str(&mut self.status_message, message);
        self.dropped_attributes.append_value(span.dropped_attributes_count);
        self.dropped_events.append_value(span.dropped_events_count);
        self.dropped_links.append_value(span.dropped_links_count);
        let attrs = ScopedAttrs::new(AttrScope::Span, &span.attributes)?;
        for ((builder, d), value) in self.dedicated.iter_mut().zip(DEDICATED_COLUMNS).zip(attrs.dedicated) {
            if d.scope == AttrScope::Span {
                builder.append(value);
            }
        }
        self.span_attrs.append_split(&attrs.maps, 1)?;
        self.events.append_events(span)?;
        self.links.append_links(span)?;
        Ok(())
    }

    /// Finishes a record batch with everything appended so far.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let rows = std::mem::take(&mut self.rows);
        let schema = span_schema();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.start.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            Arc::new(self.dropped_attributes.finish()),
            Arc::new(self.dropped_events.finish()),
            Arc::new(self.dropped_links.finish()),
        ];
        columns.extend(self.dedicated.iter_mut().map(DedicatedBuilder::finish));
        columns.extend(self.span_attrs.finish());
        columns.extend(self.resource_attrs.finish());
        columns.extend(self.scope_attrs.finish());
        columns.extend([
            Arc::new(self.resource_dropped.finish()) as ArrayRef,
            Arc::new(self.resource_schema_url.finish()),
            Arc::new(self.resource_entity_refs.finish()),
            Arc::new(self.scope_name.finish()),
            Arc::new(self.scope_version.finish()),
            Arc::new(self.scope_dropped.finish()),
            Arc::new(self.scope_schema_url.finish()),
            self.events.finish()?,
            self.links.finish()?,
        ]);
        // Trace-level and nested-set columns are computed when a block is cut.
        for field in schema.fields().iter().skip(columns.len()) {
            columns.push(new_null_array(field.data_type(), rows));
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// Converts a whole OTLP request body into one record batch, keeping only
/// valid spans. Returns the batch and the rejected spans' reasons.
pub fn resource_spans_to_batch(resource_spans: &[ResourceSpans]) -> Result<(RecordBatch, Vec<String>)> {
    let mut builder = SpanBatchBuilder::new();
    let mut rejected = Vec::new();
    for rs in resource_spans {
        builder.append_resource_spans(rs, |reason| rejected.push(reason))?;
    }
    Ok((builder.finish()?, rejected))
}
