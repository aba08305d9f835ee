//! Spans as an ingester holds them before they become a block: the columns
//! of each span once per span, and those of its resource and
//! instrumentation scope once per distinct scope, not repeated on every
//! span. On the `small` dataset that holds a head in a third of the memory
//! of the same spans as one [`span_schema`] batch (resource attributes are
//! most of a span's bytes).
//!
//! [`SpanColumns`] reads spans held either way (and prepared block
//! batches) column by column, so that cutting a block and summarising its
//! tags need not expand them first.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, FixedSizeBinaryArray, RecordBatch, StructArray, UInt32Array,
    new_null_array,
};
use arrow::buffer::ScalarBuffer;
use arrow::compute::{filter, filter_record_batch, take, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type};

use crate::error::{Error, Result};
use crate::schema::{ColumnLevel, col, column_index, column_level, scope_level_schema, span_level_schema, span_schema};

/// The WAL's column of each span's resource and scope columns.
const WAL_SCOPE_COLUMN: &str = "scope";

static WAL_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let scope = DataType::Struct(scope_level_schema().fields().clone());
    let mut fields: Vec<Arc<Field>> = span_level_schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(WAL_SCOPE_COLUMN, DataType::Dictionary(Box::new(DataType::UInt32), Box::new(scope)), false)));
    Arc::new(Schema::new(fields))
});

/// The schema of a WAL record ([`ReceivedSpans::to_wal_batch`]): the
/// span-level columns, then a `scope` column of the scope-level ones as a
/// struct, dictionary-encoded (each scope once, a key per span).
pub fn wal_schema() -> SchemaRef {
    WAL_SCHEMA.clone()
}

/// Adds the bytes of each value of `column` to `sizes` (one per row): a
/// string's bytes and offset, a fixed-width value's width, a map's offset
/// and its entries' keys and values. From the offsets alone: a request can
/// hold hundreds of thousands of scopes.
fn add_value_sizes(column: &dyn Array, sizes: &mut [usize]) {
    let offset_size = size_of::<i32>();
    if let Some(strings) = column.as_string_opt::<i32>() {
        for (size, pair) in sizes.iter_mut().zip(strings.value_offsets().windows(2)) {
            *size += offset_size + (pair[1] - pair[0]) as usize;
        }
    } else if let Some(map) = column.as_map_opt() {
        // The entries' sizes, summed over each row's range of them.
        let mut entries = vec![0usize; map.entries().len()];
        for child in map.entries().columns() {
            add_value_sizes(child.as_ref(), &mut entries);
        }
        for (size, pair) in sizes.iter_mut().zip(map.value_offsets().windows(2)) {
            *size += offset_size + entries[pair[0] as usize..pair[1] as usize].iter().sum::<usize>();
        }
    } else {
        let width = column.data_type().primitive_width().unwrap_or(1);
        sizes.iter_mut().for_each(|size| *size += width);
    }
}

/// A column of the span schema as some spans hold it.
#[derive(Debug, Clone, Copy)]
pub struct HeldColumn<'a> {
    /// The values.
    pub array: &'a ArrayRef,
    /// `None` when `array` holds a value per span; otherwise it holds one
    /// per resource and scope, and these are each span's row in it.
    pub rows: Option<&'a [u32]>,
}

impl HeldColumn<'_> {
    /// The row of `array` holding span `span`'s value.
    pub fn row(&self, span: usize) -> usize {
        self.rows.map_or(span, |rows| rows[span] as usize)
    }
}

/// Spans whose columns can be read one at a time, as they are held.
pub trait SpanColumns {
    /// Number of spans.
    fn num_rows(&self) -> usize;

    /// Column `index` of [`span_schema`]; `None` when not held (the
    /// trace-level columns of spans not yet cut into a block).
    fn held(&self, index: usize) -> Option<HeldColumn<'_>>;

    /// Column `name`, which must be held a value per span (ids, times).
    fn span_column(&self, name: &str) -> Result<&ArrayRef> {
        match self.held(column_index(name)) {
            Some(HeldColumn { array, rows: None }) => Ok(array),
            _ => Err(Error::internal(format!("column {name} is not held per span"))),
        }
    }
}

/// A [`span_schema`] batch holds every column per span.
impl SpanColumns for RecordBatch {
    fn num_rows(&self) -> usize {
        RecordBatch::num_rows(self)
    }

    fn held(&self, index: usize) -> Option<HeldColumn<'_>> {
        Some(HeldColumn { array: self.column(index), rows: None })
    }
}

/// Spans as received, ready to append to a tenant's WAL and head.
#[derive(Debug, Clone)]
pub struct ReceivedSpans {
    /// The span-level columns ([`span_level_schema`]), a row per span.
    spans: RecordBatch,
    /// The scope-level columns ([`scope_level_schema`]).
    scopes: RecordBatch,
    /// Each span's row in `scopes`; `None` when `scopes` has a row per span.
    scope_rows: Option<ScalarBuffer<u32>>,
}

impl ReceivedSpans {
    /// Spans `spans` whose resource and scope columns are row
    /// `scope_rows[i]` of `scopes`. An error when the parts do not fit.
    pub(crate) fn new(spans: RecordBatch, scopes: RecordBatch, scope_rows: Vec<u32>) -> Result<Self> {
        if spans.schema() != span_level_schema() || scopes.schema() != scope_level_schema() {
            return Err(Error::internal("received spans do not have the span- and scope-level schemas"));
        }
        if scope_rows.len() != spans.num_rows() || scope_rows.iter().any(|&r| r as usize >= scopes.num_rows()) {
            return Err(Error::internal("a span's scope row is missing or out of range"));
        }
        Ok(Self { spans, scopes, scope_rows: Some(scope_rows.into()) })
    }

    /// Number of spans.
    pub fn num_rows(&self) -> usize {
        self.spans.num_rows()
    }

    /// Arrow memory held.
    pub fn memory_size(&self) -> usize {
        let rows = self.scope_rows.as_ref().map_or(0, |r| r.inner().capacity());
        self.spans.get_array_memory_size() + self.scopes.get_array_memory_size() + rows
    }

    /// About how many bytes the spans take once expanded ([`Self::to_batch`],
    /// and what a block's flush gathers): each span's resource and scope
    /// values counted on it. A large resource over many spans is small
    /// held, but not expanded.
    pub fn expanded_size(&self) -> usize {
        let Some(rows) = &self.scope_rows else { return self.memory_size() };
        let mut row_bytes = vec![0usize; self.scopes.num_rows()];
        for column in self.scopes.columns() {
            add_value_sizes(column, &mut row_bytes);
        }
        rows.iter().fold(self.spans.get_array_memory_size(), |sum, &row| sum.saturating_add(row_bytes[row as usize]))
    }

    /// The spans' trace ids.
    pub(crate) fn trace_ids(&self) -> Result<&FixedSizeBinaryArray> {
        self.span_column(col::TRACE_ID)?
            .as_any()
            .downcast_ref::<FixedSizeBinaryArray>()
            .ok_or_else(|| Error::internal("trace_id is not fixed-size binary"))
    }

    /// The spans as one [`span_schema`] batch: resource and scope columns
    /// repeated on each span, trace-level columns null.
    pub fn to_batch(&self) -> Result<RecordBatch> {
        let rows = self.scope_rows.as_ref().map(|r| UInt32Array::new(r.clone(), None));
        let schema = span_schema();
        let columns = (0..schema.fields().len())
            .map(|index| match (self.held(index), &rows) {
                (Some(HeldColumn { array, rows: Some(_) }), Some(rows)) => Ok(take(array, rows, None)?),
                (Some(held), _) => Ok(held.array.clone()),
                (None, _) => Ok(new_null_array(schema.field(index).data_type(), self.num_rows())),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new(schema, columns)?)
    }

    /// The spans as a WAL record of [`wal_schema`]: no column is copied
    /// (but the keys of spans held each with its own scope row).
    pub fn to_wal_batch(&self) -> Result<RecordBatch> {
        let keys = match &self.scope_rows {
            Some(rows) => UInt32Array::new(rows.clone(), None),
            None => UInt32Array::from_iter_values(0..self.num_rows() as u32),
        };
        let scopes = DictionaryArray::<UInt32Type>::try_new(keys, Arc::new(StructArray::from(self.scopes.clone())))?;
        let mut columns = self.spans.columns().to_vec();
        columns.push(Arc::new(scopes));
        Ok(RecordBatch::try_new(wal_schema(), columns)?)
    }

    /// Spans read back from a WAL record made by [`Self::to_wal_batch`].
    pub fn from_wal_batch(batch: &RecordBatch) -> Result<Self> {
        if batch.schema() != wal_schema() {
            return Err(Error::internal("a WAL record does not have the WAL schema"));
        }
        let (scope, spans) = batch.columns().split_last().ok_or_else(|| Error::internal("empty WAL record"))?;
        let scope = scope.as_dictionary_opt::<UInt32Type>().ok_or_else(|| Error::internal("WAL scope column is not a dictionary"))?;
        let values = scope.values().as_struct_opt().ok_or_else(|| Error::internal("WAL scopes are not a struct"))?;
        if scope.keys().null_count() > 0 || values.null_count() > 0 {
            return Err(Error::internal("a WAL record has a span without a scope"));
        }
        Self::new(
            RecordBatch::try_new(span_level_schema(), spans.to_vec())?,
            RecordBatch::try_new(scope_level_schema(), values.columns().to_vec())?,
            scope.keys().values().to_vec(),
        )
    }

    /// A WAL record of another version's [`wal_schema`] as one flat batch,
    /// each span with its scope's columns (by name, for
    /// [`adapt_to_span_schema`](crate::schema::adapt_to_span_schema)); a
    /// batch without a `scope` column as it is.
    pub fn flatten_wal_record(batch: &RecordBatch) -> Result<RecordBatch> {
        let Ok(index) = batch.schema().index_of(WAL_SCOPE_COLUMN) else { return Ok(batch.clone()) };
        let scope = batch.column(index).as_dictionary_opt::<UInt32Type>().ok_or_else(|| Error::internal("WAL scope column is not a dictionary"))?;
        let expanded = take(scope.values(), scope.keys(), None)?;
        let scopes = expanded.as_struct_opt().ok_or_else(|| Error::internal("WAL scopes are not a struct"))?;
        let schema = batch.schema();
        let mut fields: Vec<Arc<Field>> = schema.fields().iter().enumerate().filter(|(i, _)| *i != index).map(|(_, f)| f.clone()).collect();
        let mut columns: Vec<ArrayRef> = batch.columns().iter().enumerate().filter(|(i, _)| *i != index).map(|(_, c)| c.clone()).collect();
        fields.extend(scopes.fields().iter().cloned());
        columns.extend(scopes.columns().iter().cloned());
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
    }

    /// The spans `mask` selects. Scope rows none of them uses are dropped.
    pub(crate) fn filter(&self, mask: &BooleanArray) -> Result<Self> {
        let spans = filter_record_batch(&self.spans, mask)?;
        let Some(rows) = &self.scope_rows else {
            return Ok(Self { spans, scopes: filter_record_batch(&self.scopes, mask)?, scope_rows: None });
        };
        let kept = filter(&UInt32Array::new(rows.clone(), None), mask)?;
        let kept = kept.as_any().downcast_ref::<UInt32Array>().ok_or_else(|| Error::internal("filtered rows are not u32"))?;
        // Old scope row → new one, for the rows still used.
        let mut renumbered = vec![u32::MAX; self.scopes.num_rows()];
        let mut used = Vec::new();
        for &row in kept.values() {
            let slot = &mut renumbered[row as usize];
            if *slot == u32::MAX {
                *slot = used.len() as u32;
                used.push(row);
            }
        }
        let scopes = take_record_batch(&self.scopes, &UInt32Array::from(used))?;
        Self::new(spans, scopes, kept.values().iter().map(|&row| renumbered[row as usize]).collect())
    }
}

impl SpanColumns for ReceivedSpans {
    fn num_rows(&self) -> usize {
        self.spans.num_rows()
    }

    fn held(&self, index: usize) -> Option<HeldColumn<'_>> {
        match column_level(index) {
            (ColumnLevel::Span, i) => Some(HeldColumn { array: self.spans.column(i), rows: None }),
            (ColumnLevel::Scope, i) => Some(HeldColumn { array: self.scopes.column(i), rows: self.scope_rows.as_deref() }),
            (ColumnLevel::Trace, _) => None,
        }
    }
}

impl ReceivedSpans {
    /// Spans of a [`span_schema`] batch (a replayed WAL segment), each with
    /// its own scope row; trace-level columns are dropped. An error for a
    /// batch of another schema.
    pub fn from_span_batch(batch: &RecordBatch) -> Result<Self> {
        if batch.schema() != span_schema() {
            return Err(Error::internal("spans are not in the span schema"));
        }
        let level = |wanted: ColumnLevel| -> Vec<ArrayRef> {
            (0..batch.num_columns()).filter(|&i| column_level(i).0 == wanted).map(|i| batch.column(i).clone()).collect()
        };
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        Ok(Self {
            spans: RecordBatch::try_new_with_options(span_level_schema(), level(ColumnLevel::Span), &options)?,
            scopes: RecordBatch::try_new_with_options(scope_level_schema(), level(ColumnLevel::Scope), &options)?,
            scope_rows: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;
    use crate::convert::{convert_request, resource_spans_to_batch};

    fn request() -> Vec<ResourceSpans> {
        let span = |trace: u8, id: u8| Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            name: format!("op{id}"),
            start_time_unix_nano: u64::from(id),
            end_time_unix_nano: u64::from(id) + 5,
            ..Default::default()
        };
        let resource = |service: &str| Resource {
            attributes: vec![
                KeyValue { key: "service.name".into(), value: Some(AnyValue { value: Some(Value::StringValue(service.into())) }), ..Default::default() },
                KeyValue { key: "host".into(), value: Some(AnyValue { value: Some(Value::StringValue(format!("{service}-host"))) }), ..Default::default() },
            ],
            ..Default::default()
        };
        let scope = |name: &str, spans| ScopeSpans {
            scope: Some(InstrumentationScope { name: name.into(), ..Default::default() }),
            spans,
            ..Default::default()
        };
        vec![
            ResourceSpans {
                resource: Some(resource("a")),
                scope_spans: vec![scope("x", vec![span(1, 1), span(2, 2)]), scope("y", vec![span(1, 3)])],
                ..Default::default()
            },
            ResourceSpans { resource: Some(resource("b")), scope_spans: vec![scope("z", vec![span(2, 4), span(1, 5)])], ..Default::default() },
        ]
    }

    #[test]
    fn scope_columns_are_held_once_per_scope_and_expand_to_the_repeated_batch() {
        let (received, _) = convert_request(&request()).unwrap();
        assert_eq!(received.scopes.num_rows(), 3);
        assert_eq!(received.num_rows(), 5);
        let (expected, _) = resource_spans_to_batch(&request()).unwrap();
        assert_eq!(received.to_batch().unwrap(), expected);
        // The same spans, each with its own scope row.
        let per_span = ReceivedSpans::from_span_batch(&expected).unwrap();
        assert_eq!(per_span.to_batch().unwrap(), expected);
        assert!(received.memory_size() < per_span.memory_size());
        // Expanded, a span holds its resource (and scope) values again: about
        // the bytes of the scope-level columns of the per-span form.
        let scope_part = received.expanded_size() - received.spans.get_array_memory_size();
        let per_span_scope_part: usize = per_span.scopes.columns().iter().map(|c| c.to_data().get_slice_memory_size().unwrap()).sum();
        // Validity bits and each column's closing offset are not counted (~30 bytes a span here).
        let slack = 40 * received.num_rows();
        assert!(scope_part.abs_diff(per_span_scope_part) <= slack, "{scope_part} estimated, {per_span_scope_part} per span");
    }

    #[test]
    fn filtering_keeps_the_scopes_still_used_and_the_same_spans_as_filtering_the_batch() {
        let (received, _) = convert_request(&request()).unwrap();
        let trace_ids = received.trace_ids().unwrap().clone();
        let mask: BooleanArray = (0..trace_ids.len()).map(|i| Some(trace_ids.value(i) == [2; 16])).collect();
        let kept = received.filter(&mask).unwrap();
        assert_eq!(kept.num_rows(), 2);
        // Trace 2 has a span of scope x (resource a) and one of scope z (resource b).
        assert_eq!(kept.scopes.num_rows(), 2);
        let expected = filter_record_batch(&received.to_batch().unwrap(), &mask).unwrap();
        assert_eq!(kept.to_batch().unwrap(), expected);
        let per_span = ReceivedSpans::from_span_batch(&received.to_batch().unwrap()).unwrap().filter(&mask).unwrap();
        assert_eq!(per_span.to_batch().unwrap(), expected);
    }

    #[test]
    fn a_wal_record_reads_back_as_the_same_spans_through_arrow_ipc() {
        let (received, _) = convert_request(&request()).unwrap();
        let per_span = ReceivedSpans::from_span_batch(&received.to_batch().unwrap()).unwrap();
        let mut bytes = Vec::new();
        {
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut bytes, &wal_schema()).unwrap();
            writer.write(&received.to_wal_batch().unwrap()).unwrap();
            writer.write(&per_span.to_wal_batch().unwrap()).unwrap();
            writer.finish().unwrap();
        }
        let reader = arrow::ipc::reader::StreamReader::try_new(bytes.as_slice(), None).unwrap();
        let read: Vec<ReceivedSpans> = reader.map(|b| ReceivedSpans::from_wal_batch(&b.unwrap()).unwrap()).collect();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].scopes.num_rows(), 3, "each scope once");
        assert_eq!(read[1].scopes.num_rows(), 5);
        for spans in &read {
            assert_eq!(spans.to_batch().unwrap(), received.to_batch().unwrap());
        }
    }

    #[test]
    fn parts_that_do_not_fit_are_refused() {
        assert!(ReceivedSpans::from_span_batch(&RecordBatch::new_empty(wal_schema())).is_err(), "not the span schema");
        let (received, _) = convert_request(&request()).unwrap();
        let (spans, scopes) = (received.spans.clone(), received.scopes.clone());
        assert!(ReceivedSpans::new(spans.clone(), scopes.clone(), vec![0; 4]).is_err());
        assert!(ReceivedSpans::new(spans.clone(), scopes.clone(), vec![0, 1, 2, 3, 0]).is_err());
        assert!(ReceivedSpans::new(scopes.clone(), spans.clone(), vec![0; 5]).is_err());
        assert!(ReceivedSpans::new(spans, scopes, vec![2; 5]).is_ok());
    }
}
