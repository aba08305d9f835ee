//! Span-table record batches → OTLP `ResourceSpans`, regrouped by resource
//! and scope. The inverse of [`super::to_arrow`].

use std::collections::HashMap;

use arrow::array::{
    Array, ArrayRef, FixedSizeBinaryArray, Int8Array, Int64Array, ListArray, StringArray, StructArray,
    UInt32Array,
};
use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use super::attrs::{AttrMapsReader, downcast};
use crate::error::{Error, Result};
use crate::schema::{ATTR_MAP_SUFFIXES, AttrScope, DEDICATED_COLUMNS, col};

/// Typed access to the columns of one span batch.
struct SpanColumns<'a> {
    batch: &'a RecordBatch,
}

impl<'a> SpanColumns<'a> {
    fn column(&self, name: &str) -> Result<&'a ArrayRef> {
        self.batch.column_by_name(name).ok_or_else(|| Error::internal(format!("batch has no column {name}")))
    }

    fn get<T: Array + 'static>(&self, name: &str) -> Result<&'a T> {
        downcast::<T>(self.column(name)?)
    }

    fn attr_maps(&self, prefix: &str) -> Result<AttrMapsReader<'a>> {
        let cols: Vec<&ArrayRef> = ATTR_MAP_SUFFIXES
            .iter()
            .map(|s| self.column(&format!("{prefix}_{s}")))
            .collect::<Result<_>>()?;
        AttrMapsReader::new([cols[0], cols[1], cols[2], cols[3], cols[4]])
    }
}

fn opt_str(a: &StringArray, row: usize) -> String {
    if a.is_null(row) { String::new() } else { a.value(row).to_owned() }
}

/// Reads a struct field by name from a `StructArray`.
fn field<'a>(s: &'a StructArray, name: &str) -> Result<&'a ArrayRef> {
    s.column_by_name(name).ok_or_else(|| Error::internal(format!("struct has no field {name}")))
}

fn struct_attr_maps<'a>(s: &'a StructArray) -> Result<AttrMapsReader<'a>> {
    let cols: Vec<&ArrayRef> =
        ATTR_MAP_SUFFIXES.iter().map(|x| field(s, &format!("{}_{x}", col::ATTRS))).collect::<Result<_>>()?;
    AttrMapsReader::new([cols[0], cols[1], cols[2], cols[3], cols[4]])
}

/// Converts span rows back to OTLP, grouping spans that share a resource and
/// scope. Rows keep their order within each group.
pub fn batches_to_resource_spans(batches: &[RecordBatch]) -> Result<Vec<ResourceSpans>> {
    let mut out: Vec<ResourceSpans> = Vec::new();
    // (encoded resource + schema url) → index in `out`; per resource, scope key → index.
    let mut resource_index: HashMap<Vec<u8>, (usize, HashMap<Vec<u8>, usize>)> = HashMap::new();
    for batch in batches {
        let c = SpanColumns { batch };
        let trace_id = c.get::<FixedSizeBinaryArray>(col::TRACE_ID)?;
        let span_id = c.get::<FixedSizeBinaryArray>(col::SPAN_ID)?;
        let parent = c.get::<FixedSizeBinaryArray>(col::PARENT_SPAN_ID)?;
        let trace_state = c.get::<StringArray>(col::TRACE_STATE)?;
        let flags = c.get::<UInt32Array>(col::FLAGS)?;
        let name = c.get::<StringArray>(col::NAME)?;
        let kind = c.get::<Int8Array>(col::KIND)?;
        let start = c.get::<Int64Array>(col::START_UNIX_NANO)?;
        let duration = c.get::<Int64Array>(col::DURATION_NANO)?;
        let status_code = c.get::<Int8Array>(col::STATUS_CODE)?;
        let status_message = c.get::<StringArray>(col::STATUS_MESSAGE)?;
        let dropped_attrs = c.get::<UInt32Array>(col::DROPPED_ATTRIBUTES_COUNT)?;
        let dropped_events = c.get::<UInt32Array>(col::DROPPED_EVENTS_COUNT)?;
        let dropped_links = c.get::<UInt32Array>(col::DROPPED_LINKS_COUNT)?;
        let dedicated: Vec<&ArrayRef> =
            DEDICATED_COLUMNS.iter().map(|d| c.column(d.column)).collect::<Result<_>>()?;
        let span_attrs = c.attr_maps(col::SPAN_ATTRS)?;
        let resource_attrs = c.attr_maps(col::RESOURCE_ATTRS)?;
        let resource_dropped = c.get::<UInt32Array>(col::RESOURCE_DROPPED_ATTRIBUTES_COUNT)?;
        let resource_schema_url = c.get::<StringArray>(col::RESOURCE_SCHEMA_URL)?;
        let resource_entity_refs = c.get::<StringArray>(col::RESOURCE_ENTITY_REFS)?;
        let scope_name = c.get::<StringArray>(col::SCOPE_NAME)?;
        let scope_version = c.get::<StringArray>(col::SCOPE_VERSION)?;
        let scope_attrs = c.attr_maps(col::SCOPE_ATTRS)?;
        let scope_dropped = c.get::<UInt32Array>(col::SCOPE_DROPPED_ATTRIBUTES_COUNT)?;
        let scope_schema_url = c.get::<StringArray>(col::SCOPE_SCHEMA_URL)?;
        let events = c.get::<ListArray>(col::EVENTS)?;
        let links = c.get::<ListArray>(col::LINKS)?;
        let event_items = downcast::<StructArray>(events.values())?;
        let link_items = downcast::<StructArray>(links.values())?;
        let events_reader = NestedReader::new(event_items)?;
        let links_reader = NestedReader::new(link_items)?;

        for row in 0..batch.num_rows() {
            let mut span_kvs = Vec::new();
            let mut resource_kvs = Vec::new();
            for (d, array) in DEDICATED_COLUMNS.iter().zip(&dedicated) {
                if let Some(value) = dedicated_value(array, row)? {
                    let kv = KeyValue { key: d.key.to_owned(), value: Some(AnyValue { value: Some(value) }), ..Default::default() };
                    match d.scope {
                        AttrScope::Span => span_kvs.push(kv),
                        AttrScope::Resource => resource_kvs.push(kv),
                    }
                }
            }
            span_attrs.read_row(row, &mut span_kvs)?;
            resource_attrs.read_row(row, &mut resource_kvs)?;

            let resource = Resource {
                attributes: resource_kvs,
                dropped_attributes_count: resource_dropped.value(row),
                entity_refs: if resource_entity_refs.is_null(row) {
                    Vec::new()
                } else {
                    serde_json::from_str(resource_entity_refs.value(row))?
                },
            };
            let resource_url = opt_str(resource_schema_url, row);
            let mut resource_key = resource.encode_to_vec();
            resource_key.extend_from_slice(resource_url.as_bytes());
            let (resource_pos, scopes) = resource_index.entry(resource_key).or_insert_with(|| {
                out.push(ResourceSpans { resource: Some(resource), scope_spans: Vec::new(), schema_url: resource_url });
                (out.len() - 1, HashMap::new())
            });

            let scope = InstrumentationScope {
                name: opt_str(scope_name, row),
                version: opt_str(scope_version, row),
                attributes: {
                    let mut kvs = Vec::new();
                    scope_attrs.read_row(row, &mut kvs)?;
                    kvs
                },
                dropped_attributes_count: scope_dropped.value(row),
            };
            let scope_url = opt_str(scope_schema_url, row);
            let mut scope_key = scope.encode_to_vec();
            scope_key.extend_from_slice(scope_url.as_bytes());
            let resource_spans = &mut out[*resource_pos];
            let scope_pos = *scopes.entry(scope_key).or_insert_with(|| {
                resource_spans.scope_spans.push(ScopeSpans { scope: Some(scope), spans: Vec::new(), schema_url: scope_url });
                resource_spans.scope_spans.len() - 1
            });

            let start_nanos = start.value(row) as u64;
            let span = Span {
                trace_id: trace_id.value(row).to_vec(),
                span_id: span_id.value(row).to_vec(),
                trace_state: opt_str(trace_state, row),
                parent_span_id: if parent.is_null(row) { Vec::new() } else { parent.value(row).to_vec() },
                flags: flags.value(row),
                name: name.value(row).to_owned(),
                kind: kind.value(row) as i32,
                start_time_unix_nano: start_nanos,
                end_time_unix_nano: start_nanos.wrapping_add(duration.value(row) as u64),
                attributes: span_kvs,
                dropped_attributes_count: dropped_attrs.value(row),
                events: events_reader.events(list_range(events, row))?,
                dropped_events_count: dropped_events.value(row),
                links: links_reader.links(list_range(links, row))?,
                dropped_links_count: dropped_links.value(row),
                status: {
                    let code = status_code.value(row) as i32;
                    let message = opt_str(status_message, row);
                    (code != 0 || !message.is_empty()).then_some(Status { code, message })
                },
            };
            resource_spans.scope_spans[scope_pos].spans.push(span);
        }
    }
    Ok(out)
}

fn list_range(list: &ListArray, row: usize) -> std::ops::Range<usize> {
    let offsets = list.value_offsets();
    offsets[row] as usize..offsets[row + 1] as usize
}

fn dedicated_value(array: &ArrayRef, row: usize) -> Result<Option<Value>> {
    if array.is_null(row) {
        return Ok(None);
    }
    if let Some(s) = array.as_any().downcast_ref::<StringArray>() {
        return Ok(Some(Value::StringValue(s.value(row).to_owned())));
    }
    Ok(Some(Value::IntValue(downcast::<Int64Array>(array)?.value(row))))
}

/// Reads elements of the `events` or `links` struct arrays.
struct NestedReader<'a> {
    items: &'a StructArray,
    attrs: AttrMapsReader<'a>,
    dropped: &'a UInt32Array,
}

impl<'a> NestedReader<'a> {
    fn new(items: &'a StructArray) -> Result<Self> {
        Ok(Self {
            items,
            attrs: struct_attr_maps(items)?,
            dropped: downcast::<UInt32Array>(field(items, col::DROPPED_ATTRIBUTES_COUNT)?)?,
        })
    }

    fn attributes(&self, i: usize) -> Result<Vec<KeyValue>> {
        let mut kvs = Vec::new();
        self.attrs.read_row(i, &mut kvs)?;
        Ok(kvs)
    }

    fn events(&self, range: std::ops::Range<usize>) -> Result<Vec<Event>> {
        let time = downcast::<Int64Array>(field(self.items, col::TIME_UNIX_NANO)?)?;
        let name = downcast::<StringArray>(field(self.items, col::NAME)?)?;
        range
            .map(|i| {
                Ok(Event {
                    time_unix_nano: time.value(i) as u64,
                    name: name.value(i).to_owned(),
                    attributes: self.attributes(i)?,
                    dropped_attributes_count: self.dropped.value(i),
                })
            })
            .collect()
    }

    fn links(&self, range: std::ops::Range<usize>) -> Result<Vec<Link>> {
        let trace_id = downcast::<FixedSizeBinaryArray>(field(self.items, col::TRACE_ID)?)?;
        let span_id = downcast::<FixedSizeBinaryArray>(field(self.items, col::SPAN_ID)?)?;
        let trace_state = downcast::<StringArray>(field(self.items, col::TRACE_STATE)?)?;
        let flags = downcast::<UInt32Array>(field(self.items, col::FLAGS)?)?;
        range
            .map(|i| {
                Ok(Link {
                    trace_id: trace_id.value(i).to_vec(),
                    span_id: span_id.value(i).to_vec(),
                    trace_state: opt_str(trace_state, i),
                    attributes: self.attributes(i)?,
                    dropped_attributes_count: self.dropped.value(i),
                    flags: flags.value(i),
                })
            })
            .collect()
    }
}
