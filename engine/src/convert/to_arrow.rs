//! OTLP trace requests (their protobuf, read through the views of
//! [`wire`](super::wire)) → span-table record batches.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, FixedSizeBinaryBuilder, Int8Builder, Int64Builder, ListArray,
    StringBuilder, StructArray, UInt32Builder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Fields};
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use super::attrs::{AttrMapsBuilder, AttrsSize, SplitAttrs};
use super::received::ReceivedSpans;
use super::wire::{KeyValueView, RequestView, ResourceSpansView, ScopeSpansView, SpanView, ValueView, count_spans, encode_request};
use crate::error::{Error, Result};
use crate::schema::{
    AttrScope, BlockOrder, ColumnLevel, DEDICATED_COLUMNS, DedicatedColumn, DedicatedType, column_level, event_struct_type,
    link_struct_type, list_item_field, scope_level_schema, span_level_schema,
};

/// Why a span cannot be stored (`None` when it can); receivers report these
/// as rejected spans.
fn invalid_span(span: &SpanView<'_>, request: &RequestView<'_>) -> Option<String> {
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|b| *b == 0) {
        return Some(format!("span has invalid trace id {:?} (need 16 bytes, not all zero)", hex::encode(span.trace_id)));
    }
    if span.span_id.len() != 8 || span.span_id.iter().all(|b| *b == 0) {
        return Some(format!("span has invalid span id {:?} (need 8 bytes, not all zero)", hex::encode(span.span_id)));
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Some(format!("span has invalid parent span id {:?}", hex::encode(span.parent_span_id)));
    }
    if request.links(span).iter().any(|link| link.trace_id.len() != 16 || link.span_id.len() != 8) {
        return Some("span link has an invalid trace or span id".to_owned());
    }
    None
}

/// Builder for a dedicated attribute column.
enum DedicatedBuilder {
    Str(StringBuilder),
    Int(Int64Builder),
}

impl DedicatedBuilder {
    /// A builder with room for `rows` values of `bytes` in all.
    fn with_capacity(d: &DedicatedColumn, rows: usize, bytes: usize) -> Self {
        match d.data_type {
            DedicatedType::Str => DedicatedBuilder::Str(StringBuilder::with_capacity(rows, bytes)),
            DedicatedType::Int => DedicatedBuilder::Int(Int64Builder::with_capacity(rows)),
        }
    }

    /// Appends `value` (an attribute already matched to this column by
    /// [`dedicated_slot`], so of the column's type), or null.
    fn append(&mut self, value: Option<ValueView<'_>>) {
        match (self, value) {
            (DedicatedBuilder::Str(b), Some(ValueView::Str(s))) => b.append_value(s),
            (DedicatedBuilder::Int(b), Some(ValueView::Int(i))) => b.append_value(i),
            (DedicatedBuilder::Str(b), _) => b.append_null(),
            (DedicatedBuilder::Int(b), _) => b.append_null(),
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
fn dedicated_slot(scope: AttrScope, kv: &KeyValueView<'_>) -> Option<usize> {
    DEDICATED_COLUMNS.iter().position(|d| {
        d.scope == scope
            && d.key == kv.key
            && matches!((d.data_type, kv.value), (DedicatedType::Str, ValueView::Str(_)) | (DedicatedType::Int, ValueView::Int(_)))
    })
}

/// Values of the dedicated columns (by index in [`DEDICATED_COLUMNS`]) of one attribute list.
type DedicatedValues<'a> = [Option<ValueView<'a>>; DEDICATED_COLUMNS.len()];

/// A filter for attribute lists of `scope` that selects (to leave out of
/// the maps) the attributes of dedicated columns, recording their values in
/// `dedicated`.
fn take_dedicated<'a, 'd>(scope: AttrScope, dedicated: &'d mut DedicatedValues<'a>) -> impl FnMut(&KeyValueView<'a>) -> bool + 'd {
    move |kv| match dedicated_slot(scope, kv) {
        Some(slot) => {
            dedicated[slot] = Some(kv.value);
            true
        }
        None => false,
    }
}

/// Sizes of a request's columns, counted before converting it so that
/// every builder is allocated once.
#[derive(Debug, Default)]
struct RequestSize {
    spans: usize,
    /// Scopes with valid spans: rows of the scope-level columns.
    scopes: usize,
    /// Bytes of the scope-level columns once repeated on each span (what
    /// [`ReceivedSpans::to_batch`] makes of them).
    expanded_scope_bytes: usize,
    name_bytes: usize,
    trace_state_bytes: usize,
    status_message_bytes: usize,
    /// String bytes of each dedicated column (by index in [`DEDICATED_COLUMNS`]).
    dedicated_bytes: [usize; DEDICATED_COLUMNS.len()],
    resource_schema_url_bytes: usize,
    scope_name_bytes: usize,
    scope_version_bytes: usize,
    scope_schema_url_bytes: usize,
    span_attrs: AttrsSize,
    resource_attrs: AttrsSize,
    scope_attrs: AttrsSize,
    events: usize,
    event_name_bytes: usize,
    event_attrs: AttrsSize,
    links: usize,
    link_attrs: AttrsSize,
}

/// Most spans in one request.
pub const MAX_REQUEST_SPANS: usize = 1_000_000;

/// Most bytes the span columns of one request may take once its resource
/// and scope attributes are repeated on each of its spans. A request of a
/// few MiB could otherwise ask for terabytes (a large resource attribute
/// over many small spans), and a string column's offsets are 32-bit.
pub const MAX_REQUEST_COLUMN_BYTES: usize = 1 << 30;

impl RequestSize {
    /// The size of the `valid` spans of `request`; an error when it is over
    /// [`MAX_REQUEST_COLUMN_BYTES`].
    fn of(request: &RequestView<'_>, valid: &ValidSpans<'_, '_>) -> Result<Self> {
        let mut size = Self::default();
        // Selects the attributes of dedicated columns (left out of the
        // maps), counting their string bytes `times` over.
        fn dedicated<'s>(bytes: &'s mut [usize], scope: AttrScope, times: usize) -> impl FnMut(&KeyValueView) -> bool + 's {
            move |kv| match dedicated_slot(scope, kv) {
                Some(slot) => {
                    if let ValueView::Str(s) = kv.value {
                        bytes[slot] += s.len() * times;
                    }
                    true
                }
                None => false,
            }
        }
        // Resource and scope columns are held once per scope with valid
        // spans, and repeated on each of them when expanded.
        let scopes = request.resource_spans.iter().flat_map(|rs| rs.scope_spans.iter().map(move |ss| (rs, ss)));
        for ((rs, ss), spans) in scopes.zip(valid.per_scope.iter().copied()) {
            if spans == 0 {
                continue;
            }
            let before = size.scope_level_bytes();
            size.spans += spans;
            size.scopes += 1;
            size.resource_attrs.add(&rs.resource.attributes, 1, dedicated(&mut size.dedicated_bytes, AttrScope::Resource, 1));
            size.scope_attrs.add(&ss.scope.attributes, 1, |_| false);
            size.resource_schema_url_bytes += rs.schema_url.len();
            size.scope_name_bytes += ss.scope.name.len();
            size.scope_version_bytes += ss.scope.version.len();
            size.scope_schema_url_bytes += ss.schema_url.len();
            let scope_bytes = size.scope_level_bytes() - before;
            size.expanded_scope_bytes = size.expanded_scope_bytes.saturating_add(scope_bytes.saturating_mul(spans));
        }
        for (span, ..) in &valid.spans {
            size.name_bytes += span.name.len();
            size.trace_state_bytes += span.trace_state.len();
            size.status_message_bytes += span.status_message.len();
            size.span_attrs.add(request.span_attributes(span), 1, dedicated(&mut size.dedicated_bytes, AttrScope::Span, 1));
            size.events += span.events.len();
            for e in request.events(span) {
                size.event_name_bytes += e.name.len();
                size.event_attrs.add(request.event_attributes(e), 1, |_| false);
            }
            size.links += span.links.len();
            for l in request.links(span) {
                size.link_attrs.add(request.link_attributes(l), 1, |_| false);
            }
        }
        let bytes = size.column_bytes();
        if bytes > MAX_REQUEST_COLUMN_BYTES {
            return Err(Error::invalid(format!(
                "request too large once its resource and scope attributes are repeated on each of its {} spans: \
                 {bytes} bytes of span columns (limit {MAX_REQUEST_COLUMN_BYTES}); send fewer spans per request",
                size.spans
            )));
        }
        Ok(size)
    }

    /// String bytes of the dedicated columns of `scope`.
    fn dedicated_bytes_of(&self, scope: AttrScope) -> usize {
        DEDICATED_COLUMNS.iter().zip(self.dedicated_bytes).filter(|(d, _)| d.scope == scope).map(|(_, bytes)| bytes).sum()
    }

    /// String and attribute bytes of the scope-level columns counted so far.
    fn scope_level_bytes(&self) -> usize {
        [
            self.dedicated_bytes_of(AttrScope::Resource),
            self.resource_schema_url_bytes,
            self.scope_name_bytes,
            self.scope_version_bytes,
            self.scope_schema_url_bytes,
            self.resource_attrs.bytes(),
            self.scope_attrs.bytes(),
        ]
        .into_iter()
        .fold(0, usize::saturating_add)
    }

    /// About how many bytes the span columns of this size take once their
    /// scope-level columns are repeated on each span (every string byte and
    /// offset, and the fixed-width columns).
    fn column_bytes(&self) -> usize {
        // Ids, times, counts, kinds and the offsets of every string column.
        const FIXED_PER_SPAN: usize = 200;
        const FIXED_PER_ITEM: usize = 64;
        [
            self.spans.saturating_mul(FIXED_PER_SPAN),
            (self.events + self.links).saturating_mul(FIXED_PER_ITEM),
            self.name_bytes,
            self.trace_state_bytes,
            self.status_message_bytes,
            self.expanded_scope_bytes,
            self.dedicated_bytes_of(AttrScope::Span),
            self.event_name_bytes,
            self.span_attrs.bytes(),
            self.event_attrs.bytes(),
            self.link_attrs.bytes(),
        ]
        .into_iter()
        .fold(0, usize::saturating_add)
    }
}

/// The valid spans of a request in block order (trace id, start, span id),
/// each with the number of its resource and of its scope (in request order).
struct ValidSpans<'r, 'a> {
    spans: Vec<(&'r SpanView<'a>, usize, usize)>,
    /// Valid spans per scope.
    per_scope: Vec<usize>,
}

impl<'r, 'a> ValidSpans<'r, 'a> {
    /// Each invalid span of `request` is left out and its reason passed to `rejected`.
    fn of(request: &'r RequestView<'a>, mut rejected: impl FnMut(String)) -> Result<Self> {
        let (mut spans, mut per_scope) = (Vec::new(), Vec::new());
        for (resource, resource_spans) in request.resource_spans.iter().enumerate() {
            for scope_spans in &resource_spans.scope_spans {
                let scope = per_scope.len();
                per_scope.push(0);
                for span in &scope_spans.spans {
                    match invalid_span(span, request) {
                        None => {
                            // Ids are valid (16 and 8 bytes); starts compare as the Int64 column holds them.
                            let key = BlockOrder::of(span.trace_id, span.start_time_unix_nano as i64, span.span_id)?;
                            spans.push((key, (span, resource, scope)));
                            per_scope[scope] += 1;
                        }
                        Some(reason) => rejected(reason),
                    }
                }
            }
        }
        spans.sort_by_key(|(key, _)| *key);
        Ok(Self { spans: spans.into_iter().map(|(_, span)| span).collect(), per_scope })
    }
}

/// Appends `s`, or null when empty (proto3 cannot tell the two apart).
fn append_opt_str(b: &mut StringBuilder, s: &str) {
    if s.is_empty() { b.append_null() } else { b.append_value(s) }
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
    /// A builder of links (or events) with room for `items` of them, their
    /// names (`name_bytes`) and attributes (`attrs`), over `spans` rows.
    fn new(links: bool, spans: usize, items: usize, name_bytes: usize, attrs: AttrsSize) -> Self {
        let (event_items, link_items) = if links { (0, items) } else { (items, 0) };
        let mut offsets = Vec::with_capacity(spans + 1);
        offsets.push(0);
        Self {
            ids: links.then(|| (FixedSizeBinaryBuilder::with_capacity(items, 16), FixedSizeBinaryBuilder::with_capacity(items, 8))),
            time: Int64Builder::with_capacity(event_items),
            name: StringBuilder::with_capacity(event_items, name_bytes),
            trace_state: StringBuilder::with_capacity(link_items, 0),
            flags: UInt32Builder::with_capacity(link_items),
            dropped: UInt32Builder::with_capacity(items),
            attrs: AttrMapsBuilder::with_size(attrs),
            offsets,
        }
    }

    fn append_events(&mut self, span: &SpanView<'_>, request: &RequestView<'_>) -> Result<()> {
        let events = request.events(span);
        for e in events {
            self.time.append_value(e.time_unix_nano as i64);
            self.name.append_value(e.name);
            self.dropped.append_value(e.dropped_attributes_count);
            self.attrs.append(request.event_attributes(e), |_| false)?;
        }
        self.end_row(events.len())
    }

    fn append_links(&mut self, span: &SpanView<'_>, request: &RequestView<'_>) -> Result<()> {
        let (trace_ids, span_ids) = self.ids.as_mut().ok_or_else(|| Error::internal("not a link builder"))?;
        let links = request.links(span);
        for l in links {
            trace_ids.append_value(l.trace_id)?;
            span_ids.append_value(l.span_id)?;
            append_opt_str(&mut self.trace_state, l.trace_state);
            self.flags.append_value(l.flags);
            self.dropped.append_value(l.dropped_attributes_count);
            self.attrs.append(request.link_attributes(l), |_| false)?;
        }
        self.end_row(links.len())
    }

    /// Ends a span's list of `items` items.
    fn end_row(&mut self, items: usize) -> Result<()> {
        let end = i32::try_from(items).ok().and_then(|items| self.offsets.last().copied().unwrap_or(0).checked_add(items));
        self.offsets.push(end.ok_or_else(|| Error::invalid("too many events or links in one request"))?);
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

/// A resource's columns as repeated on each of its spans, split once.
struct ResourceRow<'a> {
    dedicated: DedicatedValues<'a>,
    maps: SplitAttrs<'a>,
    dropped_attributes_count: u32,
    schema_url: &'a str,
    /// `entity_refs` as JSON, when there are any.
    entity_refs: Option<String>,
}

impl<'a> ResourceRow<'a> {
    fn new(resource_spans: &ResourceSpansView<'a>) -> Result<Self> {
        let resource = &resource_spans.resource;
        let entity_refs =
            if resource.entity_refs.is_empty() { None } else { Some(serde_json::to_string(&resource.decode_entity_refs()?)?) };
        let mut dedicated: DedicatedValues = [None; DEDICATED_COLUMNS.len()];
        let maps = SplitAttrs::new(&resource.attributes, take_dedicated(AttrScope::Resource, &mut dedicated))?;
        Ok(Self {
            dedicated,
            maps,
            dropped_attributes_count: resource.dropped_attributes_count,
            schema_url: resource_spans.schema_url,
            entity_refs,
        })
    }
}

/// An instrumentation scope's columns as repeated on each of its spans, split once.
struct ScopeRow<'a> {
    name: &'a str,
    version: &'a str,
    maps: SplitAttrs<'a>,
    dropped_attributes_count: u32,
    schema_url: &'a str,
}

impl<'a> ScopeRow<'a> {
    fn new(scope_spans: &ScopeSpansView<'a>) -> Result<Self> {
        let scope = &scope_spans.scope;
        Ok(Self {
            name: scope.name,
            version: scope.version,
            maps: SplitAttrs::new(&scope.attributes, |_| false)?,
            dropped_attributes_count: scope.dropped_attributes_count,
            schema_url: scope_spans.schema_url,
        })
    }
}

/// Accumulates spans and produces record batches in [`span_schema`](crate::schema::span_schema).
pub struct SpanBatchBuilder {
    /// Per span appended: its row of the scope-level columns (resource and
    /// scope columns are appended once per scope, not per span).
    scope_rows: Vec<u32>,
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
        Self::with_size(&RequestSize::default())
    }

    /// An empty builder with room for a request of `size`.
    fn with_size(size: &RequestSize) -> Self {
        let (n, scopes) = (size.spans, size.scopes);
        Self {
            scope_rows: Vec::with_capacity(n),
            trace_id: FixedSizeBinaryBuilder::with_capacity(n, 16),
            span_id: FixedSizeBinaryBuilder::with_capacity(n, 8),
            parent_span_id: FixedSizeBinaryBuilder::with_capacity(n, 8),
            trace_state: StringBuilder::with_capacity(n, size.trace_state_bytes),
            flags: UInt32Builder::with_capacity(n),
            name: StringBuilder::with_capacity(n, size.name_bytes),
            kind: Int8Builder::with_capacity(n),
            start: Int64Builder::with_capacity(n),
            duration: Int64Builder::with_capacity(n),
            status_code: Int8Builder::with_capacity(n),
            status_message: StringBuilder::with_capacity(n, size.status_message_bytes),
            dropped_attributes: UInt32Builder::with_capacity(n),
            dropped_events: UInt32Builder::with_capacity(n),
            dropped_links: UInt32Builder::with_capacity(n),
            dedicated: DEDICATED_COLUMNS
                .iter()
                .zip(size.dedicated_bytes)
                .map(|(d, bytes)| DedicatedBuilder::with_capacity(d, if d.scope == AttrScope::Span { n } else { scopes }, bytes))
                .collect(),
            span_attrs: AttrMapsBuilder::with_size(size.span_attrs),
            resource_attrs: AttrMapsBuilder::with_size(size.resource_attrs),
            resource_dropped: UInt32Builder::with_capacity(scopes),
            resource_schema_url: StringBuilder::with_capacity(scopes, size.resource_schema_url_bytes),
            resource_entity_refs: StringBuilder::with_capacity(scopes, 0),
            scope_name: StringBuilder::with_capacity(scopes, size.scope_name_bytes),
            scope_version: StringBuilder::with_capacity(scopes, size.scope_version_bytes),
            scope_attrs: AttrMapsBuilder::with_size(size.scope_attrs),
            scope_dropped: UInt32Builder::with_capacity(scopes),
            scope_schema_url: StringBuilder::with_capacity(scopes, size.scope_schema_url_bytes),
            events: NestedListBuilder::new(false, n, size.events, size.event_name_bytes, size.event_attrs),
            links: NestedListBuilder::new(true, n, size.links, 0, size.link_attrs),
        }
    }

    /// Number of spans appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.scope_rows.len()
    }

    /// True when nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.scope_rows.is_empty()
    }

    /// Appends every valid span of `resource_spans` (see [`invalid_span`]);
    /// each invalid one is skipped and its reason passed to `rejected`.
    pub fn append_resource_spans(&mut self, resource_spans: &ResourceSpans, rejected: impl FnMut(String)) -> Result<()> {
        let request = encode_request(std::slice::from_ref(resource_spans));
        let view = RequestView::parse(&request)?;
        let valid = ValidSpans::of(&view, rejected)?;
        self.append_request(&view, valid)
    }

    /// Appends the `valid` spans of `request` in block order, so that the
    /// rows of one trace are adjacent and a block is gathered from such
    /// batches a trace at a time, not a row at a time. Each scope with valid
    /// spans gets one row of the scope-level columns.
    fn append_request(&mut self, request: &RequestView<'_>, valid: ValidSpans<'_, '_>) -> Result<()> {
        let mut resources = Vec::with_capacity(request.resource_spans.len());
        let mut scopes = Vec::with_capacity(valid.per_scope.len());
        for resource_spans in &request.resource_spans {
            resources.push(ResourceRow::new(resource_spans)?);
            for scope_spans in &resource_spans.scope_spans {
                scopes.push(ScopeRow::new(scope_spans)?);
            }
        }
        // Every scope belongs to one resource: its row holds both.
        let mut scope_rows: Vec<Option<u32>> = vec![None; scopes.len()];
        for (span, resource, scope) in valid.spans {
            let row = match scope_rows[scope] {
                Some(row) => row,
                None => {
                    // The next row of the scope-level columns.
                    let row = self.resource_dropped.len() as u32;
                    self.append_resource(&resources[resource])?;
                    self.append_scope(&scopes[scope])?;
                    *scope_rows[scope].insert(row)
                }
            };
            self.scope_rows.push(row);
            self.append_span(span, request)?;
        }
        Ok(())
    }

    /// Appends the resource columns of one scope row.
    fn append_resource(&mut self, resource: &ResourceRow<'_>) -> Result<()> {
        for ((builder, d), value) in self.dedicated.iter_mut().zip(DEDICATED_COLUMNS).zip(resource.dedicated) {
            if d.scope == AttrScope::Resource {
                builder.append(value);
            }
        }
        self.resource_attrs.append_split(&resource.maps, 1)?;
        self.resource_dropped.append_value(resource.dropped_attributes_count);
        append_opt_str(&mut self.resource_schema_url, resource.schema_url);
        append_opt_str(&mut self.resource_entity_refs, resource.entity_refs.as_deref().unwrap_or_default());
        Ok(())
    }

    /// Appends the instrumentation-scope columns of one scope row.
    fn append_scope(&mut self, scope: &ScopeRow<'_>) -> Result<()> {
        append_opt_str(&mut self.scope_name, scope.name);
        append_opt_str(&mut self.scope_version, scope.version);
        self.scope_attrs.append_split(&scope.maps, 1)?;
        self.scope_dropped.append_value(scope.dropped_attributes_count);
        append_opt_str(&mut self.scope_schema_url, scope.schema_url);
        Ok(())
    }

    /// Appends the span-level columns of one span (already validated).
    fn append_span(&mut self, span: &SpanView<'_>, request: &RequestView<'_>) -> Result<()> {
        self.trace_id.append_value(span.trace_id)?;
        self.span_id.append_value(span.span_id)?;
        if span.parent_span_id.is_empty() {
            self.parent_span_id.append_null();
        } else {
            self.parent_span_id.append_value(span.parent_span_id)?;
        }
        append_opt_str(&mut self.trace_state, span.trace_state);
        self.flags.append_value(span.flags);
        self.name.append_value(span.name);
        // Kind and status code are small OTLP enums; out-of-range values are clamped
        // to 'unspecified' rather than wrapped.
        self.kind.append_value(i8::try_from(span.kind).unwrap_or(0));
        // Wrapping casts keep every u64 bit: end = start + duration (mod 2^64).
        self.start.append_value(span.start_time_unix_nano as i64);
        self.duration.append_value(span.end_time_unix_nano.wrapping_sub(span.start_time_unix_nano) as i64);
        self.status_code.append_value(i8::try_from(span.status_code).unwrap_or(0));
        append_opt_str(&mut self.status_message, span.status_message);
        self.dropped_attributes.append_value(span.dropped_attributes_count);
        self.dropped_events.append_value(span.dropped_events_count);
        self.dropped_links.append_value(span.dropped_links_count);
        let mut dedicated: DedicatedValues = [None; DEDICATED_COLUMNS.len()];
        self.span_attrs.append(request.span_attributes(span), take_dedicated(AttrScope::Span, &mut dedicated))?;
        for ((builder, d), value) in self.dedicated.iter_mut().zip(DEDICATED_COLUMNS).zip(dedicated) {
            if d.scope == AttrScope::Span {
                builder.append(value);
            }
        }
        self.events.append_events(span, request)?;
        self.links.append_links(span, request)?;
        Ok(())
    }

    /// Finishes the spans appended so far, resource and scope columns held
    /// once per scope.
    pub fn finish_received(&mut self) -> Result<ReceivedSpans> {
        // In span-schema order; each column then goes to its level's batch.
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
        let (mut spans, mut scopes) = (Vec::new(), Vec::new());
        for (index, column) in columns.into_iter().enumerate() {
            match column_level(index).0 {
                ColumnLevel::Span => spans.push(column),
                ColumnLevel::Scope => scopes.push(column),
                ColumnLevel::Trace => return Err(Error::internal("the conversion made a trace-level column")),
            }
        }
        ReceivedSpans::new(
            RecordBatch::try_new(span_level_schema(), spans)?,
            RecordBatch::try_new(scope_level_schema(), scopes)?,
            std::mem::take(&mut self.scope_rows),
        )
    }

    /// Finishes a [`span_schema`](crate::schema::span_schema) record batch with everything appended so
    /// far (resource and scope columns repeated on each span).
    pub fn finish(&mut self) -> Result<RecordBatch> {
        self.finish_received()?.to_batch()
    }
}

/// Converts the protobuf of an OTLP `ExportTraceServiceRequest`, keeping
/// only valid spans. Returns them and the rejected spans' reasons; malformed
/// protobuf is an invalid-argument error.
pub fn convert_export_request(request: &[u8]) -> Result<(ReceivedSpans, Vec<String>)> {
    // Counted before reading: a span's view takes ~90 times the two bytes
    // of an empty span message.
    let spans = count_spans(request);
    if spans > MAX_REQUEST_SPANS {
        return Err(Error::invalid(format!("request of {spans} spans (limit {MAX_REQUEST_SPANS}); send fewer spans per request")));
    }
    let request = RequestView::parse(request)?;
    let mut rejected = Vec::new();
    let valid = ValidSpans::of(&request, |reason| rejected.push(reason))?;
    let mut builder = SpanBatchBuilder::with_size(&RequestSize::of(&request, &valid)?);
    builder.append_request(&request, valid)?;
    Ok((builder.finish_received()?, rejected))
}

/// Converts a whole OTLP request body decoded by prost (OTLP/JSON, and the
/// Jaeger and Zipkin translations), as [`convert_export_request`] its
/// protobuf: one conversion serves every protocol.
pub fn convert_request(resource_spans: &[ResourceSpans]) -> Result<(ReceivedSpans, Vec<String>)> {
    convert_export_request(&encode_request(resource_spans))
}

/// Converts a whole OTLP request body into one record batch, keeping only
/// valid spans. Returns the batch and the rejected spans' reasons.
pub fn resource_spans_to_batch(resource_spans: &[ResourceSpans]) -> Result<(RecordBatch, Vec<String>)> {
    let (spans, rejected) = convert_request(resource_spans)?;
    Ok((spans.to_batch()?, rejected))
}
