//! Turns head batches into a block: sort by trace id, drop duplicate spans,
//! compute nested-set and trace-level columns, write Parquet (zstd,
//! dictionaries, page statistics, bloom filter on trace_id) and then
//! `meta.json`.

use std::ops::Range;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{
    Array, ArrayData, ArrayRef, AsArray, FixedSizeBinaryArray, Int32Array, Int64Array, MutableArrayData, RecordBatch,
    StringArray, make_array,
};
use arrow::datatypes::Int64Type;
use arrow::compute::interleave;
use object_store::buffered::BufWriter;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::{ParquetMetaData, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::meta::{BlockMeta, LiveBlock};
use crate::convert::SpanColumns;
use super::nested_set::{TraceSpans, nested_set};
use super::tags::TagSummary;
use crate::config::BlockConfig;
use crate::error::{Error, Result};
use crate::schema::{BlockOrder, DEDICATED_COLUMNS, SCHEMA_VERSION, col, column_index, span_schema};
use crate::storage::Layout;

/// Sorts, de-duplicates and completes the derived columns of spans (span
/// batches, or spans as a head holds them). The result is ready to be
/// written as a block. Only the sort keys are concatenated; every other
/// column is gathered once, straight from the input, in block order.
pub fn prepare_block<S: SpanColumns>(batches: &[S]) -> Result<RecordBatch> {
    let plan = BlockPlan::new(batches)?;
    plan.rows(batches, 0..plan.num_rows())
}

/// Span batches laid out as a block before their rows are copied: the
/// rows in block order and the nested-set and trace-level columns of that
/// order. A flush gathers the rows a slice at a time ([`BlockPlan::rows`]),
/// so it never holds a sorted copy of a whole head beside the head.
pub struct BlockPlan {
    /// (batch, row) of each block row, in block order.
    rows: Vec<(usize, usize)>,
    /// `rows` as runs of consecutive rows of one batch.
    runs: Runs,
    /// Columns already in block order, by column index: the sort keys and
    /// the columns the derived ones are computed from (gathered to plan),
    /// then the derived columns.
    computed: Vec<(usize, ArrayRef)>,
    /// Distinct traces.
    traces: u64,
}

impl BlockPlan {
    /// Sorts and de-duplicates `batches` (only the sort keys and the
    /// columns the derived ones need are gathered here).
    pub fn new<S: SpanColumns>(batches: &[S]) -> Result<Self> {
        let rows = if batches.iter().all(|b| b.num_rows() == 0) { Vec::new() } else { sorted_unique_rows(batches)? };
        let runs = Runs::of(&rows);
        let mut plan = Self { rows, runs, computed: Vec::new(), traces: 0 };
        // Gathered once: kept for writing, and the derived columns' input.
        let mut key = |name: &str| -> Result<ArrayRef> {
            let column = plan.column(batches, column_index(name), 0..plan.num_rows())?;
            plan.computed.push((column_index(name), column.clone()));
            Ok(column)
        };
        let keys = TraceKeys {
            trace_ids: key(col::TRACE_ID)?,
            span_ids: key(col::SPAN_ID)?,
            parents: key(col::PARENT_SPAN_ID)?,
            starts: key(col::START_UNIX_NANO)?,
            durations: key(col::DURATION_NANO)?,
            services: key(col::SERVICE_NAME)?,
            names: key(col::NAME)?,
        };
        plan.traces = count_traces(&fsb_of(&keys.trace_ids)?);
        plan.computed.extend(trace_columns(&keys)?);
        Ok(plan)
    }

    /// A column the plan computed (a derived one, or one it sorted by), in block order.
    pub fn computed_column(&self, name: &str) -> Option<&ArrayRef> {
        let index = column_index(name);
        self.computed.iter().find(|(i, _)| *i == index).map(|(_, column)| column)
    }

    /// Rows in the block.
    pub fn num_rows(&self) -> usize {
        self.rows.len()
    }

    /// Block rows `range` of column `index` of `batches` (those the plan
    /// was made from).
    pub fn column<S: SpanColumns>(&self, batches: &[S], index: usize, range: Range<usize>) -> Result<ArrayRef> {
        if let Some((_, column)) = self.computed.iter().find(|(i, _)| *i == index) {
            return Ok(column.slice(range.start, range.len()));
        }
        if batches.is_empty() {
            return Ok(arrow::array::new_empty_array(span_schema().field(index).data_type()));
        }
        let held = batches
            .iter()
            .map(|b| b.held(index))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::internal(format!("column {} is neither held nor computed", span_schema().field(index).name())))?;
        let parts: Vec<&dyn Array> = held.iter().map(|h| h.array.as_ref()).collect();
        if held.iter().all(|h| h.rows.is_none()) {
            return self.runs.gather(&parts, &self.rows, range);
        }
        // Held once per scope: each span's value is its scope's row.
        let rows: Vec<(usize, usize)> = self.rows[range].iter().map(|&(b, r)| (b, held[b].row(r))).collect();
        Ok(interleave(&parts, &rows)?)
    }

    /// Block rows `range` of `batches` (those the plan was made from),
    /// every column filled.
    pub fn rows<S: SpanColumns>(&self, batches: &[S], range: Range<usize>) -> Result<RecordBatch> {
        let schema = span_schema();
        let columns = (0..schema.fields().len()).map(|index| self.column(batches, index, range.clone())).collect::<Result<_>>()?;
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// Rows to gather from several arrays, as runs of consecutive rows of one
/// array: (array, start, end), with the position of each run's first row
/// among the rows, so that any range of the rows is gathered from the runs.
struct Runs {
    runs: Vec<(usize, usize, usize)>,
    firsts: Vec<usize>,
}

/// Least mean run length at which rows are copied a run at a time. A run
/// costs a call per leaf array (of which a span has about a hundred), a row
/// copied on its own a few index lookups; batches converted from a request
/// hold whole traces in block order, so their runs are traces (36 spans on
/// `small`), while spans of other origins may come one per run.
const MIN_MEAN_RUN: usize = 4;

impl Runs {
    fn of(rows: &[(usize, usize)]) -> Self {
        let mut runs: Vec<(usize, usize, usize)> = Vec::new();
        let mut firsts = Vec::new();
        for (position, &(array, row)) in rows.iter().enumerate() {
            match runs.last_mut() {
                Some((a, _, end)) if *a == array && *end == row => *end += 1,
                _ => {
                    runs.push((array, row, row + 1));
                    firsts.push(position);
                }
            }
        }
        Self { runs, firsts }
    }

    /// The runs covering positions `range` of the rows, cut to it.
    fn within(&self, range: Range<usize>) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        let first = self.firsts.partition_point(|&p| p <= range.start).saturating_sub(1);
        let last = self.firsts.partition_point(|&p| p < range.end);
        (first..last).map(move |i| {
            let (array, start, end) = self.runs[i];
            let skip = range.start.saturating_sub(self.firsts[i]);
            let beyond = (self.firsts[i] + (end - start)).saturating_sub(range.end);
            (array, start + skip, end - beyond)
        })
    }

    /// Positions `range` of `rows` (those the runs were made of) of
    /// `parts`: a run at a time when runs are long enough, otherwise a row
    /// at a time.
    fn gather(&self, parts: &[&dyn Array], rows: &[(usize, usize)], range: Range<usize>) -> Result<ArrayRef> {
        if self.within(range.clone()).count() * MIN_MEAN_RUN > range.len() {
            return Ok(interleave(parts, &rows[range])?);
        }
        let data: Vec<ArrayData> = parts.iter().map(|a| a.to_data()).collect();
        let mut gathered = MutableArrayData::new(data.iter().collect(), false, range.len());
        for (array, start, end) in self.within(range) {
            gathered.try_extend(array, start, end)?;
        }
        Ok(make_array(gathered.freeze()))
    }
}

fn fsb_of(array: &ArrayRef) -> Result<FixedSizeBinaryArray> {
    array.as_fixed_size_binary_opt().cloned().ok_or_else(|| Error::internal("ids are not fixed-size binary"))
}

fn fsb(spans: &impl SpanColumns, name: &str) -> Result<FixedSizeBinaryArray> {
    fsb_of(spans.span_column(name)?)
}

/// The rows of `batches` as (batch, row) in block order (trace id, start
/// time, span id), keeping the first row of each (trace_id, span_id): the
/// WAL replay and the carrying of live traces between heads can both repeat a span.
fn sorted_unique_rows<S: SpanColumns>(batches: &[S]) -> Result<Vec<(usize, usize)>> {
    // Sorting plain integer keys is several times cheaper than comparing
    // the columns row by row (arrow's lexsort was 8% of the ingest's
    // instructions). Of the copies of a span (same trace and span id), the
    // one with the earliest start is kept, and of those with equal starts
    // the first in `batches` (the batch and row break ties). The stable sort
    // merges the runs it finds: batches converted from a request are
    // already in block order.
    let mut keys = Vec::with_capacity(batches.iter().map(S::num_rows).sum());
    for (b, batch) in batches.iter().enumerate() {
        let (trace_ids, span_ids) = (fsb(batch, col::TRACE_ID)?, fsb(batch, col::SPAN_ID)?);
        let starts = batch.span_column(col::START_UNIX_NANO)?.as_primitive_opt::<Int64Type>();
        let starts = starts.ok_or_else(|| Error::internal("start is not int64"))?;
        for r in 0..batch.num_rows() {
            let key = BlockOrder::of(trace_ids.value(r), starts.value(r), span_ids.value(r))?;
            keys.push((key, b as u32, r as u32));
        }
    }
    keys.sort();
    let mut rows: Vec<(usize, usize)> = Vec::with_capacity(keys.len());
    let mut previous: Option<&BlockOrder> = None;
    let mut seen = std::collections::HashSet::new();
    for (key, b, r) in &keys {
        if previous.is_none_or(|p| p.trace_id != key.trace_id) {
            seen.clear();
        }
        previous = Some(key);
        if seen.insert(key.span_id) {
            rows.push((*b as usize, *r as usize));
        }
    }
    Ok(rows)
}

/// The columns the derived ones are computed from, in block order.
struct TraceKeys {
    trace_ids: ArrayRef,
    span_ids: ArrayRef,
    parents: ArrayRef,
    starts: ArrayRef,
    durations: ArrayRef,
    services: ArrayRef,
    names: ArrayRef,
}

/// The nested-set and trace-level columns (by column index) of spans sorted by trace id.
fn trace_columns(keys: &TraceKeys) -> Result<Vec<(usize, ArrayRef)>> {
    let int64 = |a: &ArrayRef| a.as_primitive_opt::<Int64Type>().cloned().ok_or_else(|| Error::internal("int64"));
    let utf8 = |a: &ArrayRef| a.as_string_opt::<i32>().cloned().ok_or_else(|| Error::internal("utf8"));
    let (trace_ids, span_ids, parents) = (fsb_of(&keys.trace_ids)?, fsb_of(&keys.span_ids)?, fsb_of(&keys.parents)?);
    let (starts, durations) = (int64(&keys.starts)?, int64(&keys.durations)?);
    let (services, names) = (utf8(&keys.services)?, utf8(&keys.names)?);
    let n = trace_ids.len();

    let mut left = Vec::with_capacity(n);
    let mut right = Vec::with_capacity(n);
    let mut parent = Vec::with_capacity(n);
    let mut child_count = Vec::with_capacity(n);
    let mut root_service: Vec<Option<String>> = Vec::with_capacity(n);
    let mut root_name: Vec<Option<String>> = Vec::with_capacity(n);
    let mut trace_start = Vec::with_capacity(n);
    let mut trace_duration = Vec::with_capacity(n);

    let mut begin = 0;
    while begin < n {
        let mut end = begin + 1;
        while end < n && trace_ids.value(end) == trace_ids.value(begin) {
            end += 1;
        }
        let ids: Vec<[u8; 8]> = (begin..end).map(|r| span_ids.value(r).try_into().unwrap_or_default()).collect();
        let parent_ids: Vec<Option<[u8; 8]>> = (begin..end)
            .map(|r| (!parents.is_null(r)).then(|| parents.value(r).try_into().unwrap_or_default()))
            .collect();
        let set = nested_set(&TraceSpans { span_ids: &ids, parent_ids: &parent_ids });
        left.extend(set.left);
        right.extend(set.right);
        parent.extend(set.parent);
        child_count.extend(set.child_count);

        let first = (begin..end).map(|r| starts.value(r)).min().unwrap_or(0);
        let last = (begin..end).map(|r| starts.value(r).wrapping_add(durations.value(r))).max().unwrap_or(0);
        // The earliest root names the trace (rows are sorted by start time).
        let root = (begin..end).find(|r| parents.is_null(*r));
        let service = root.and_then(|r| (!services.is_null(r)).then(|| services.value(r).to_owned()));
        let name = root.map(|r| names.value(r).to_owned());
        for _ in begin..end {
            root_service.push(service.clone());
            root_name.push(name.clone());
            trace_start.push(first);
            trace_duration.push(last.wrapping_sub(first));
        }
        begin = end;
    }

    let column = |name: &str, array: ArrayRef| (column_index(name), array);
    Ok(vec![
        column(col::NESTED_SET_LEFT, Arc::new(Int32Array::from(left))),
        column(col::NESTED_SET_RIGHT, Arc::new(Int32Array::from(right))),
        column(col::NESTED_SET_PARENT, Arc::new(Int32Array::from(parent))),
        column(col::CHILD_COUNT, Arc::new(Int32Array::from(child_count))),
        column(col::TRACE_ROOT_SERVICE, Arc::new(StringArray::from(root_service))),
        column(col::TRACE_ROOT_NAME, Arc::new(StringArray::from(root_name))),
        column(col::TRACE_START_UNIX_NANO, Arc::new(Int64Array::from(trace_start))),
        column(col::TRACE_DURATION_NANO, Arc::new(Int64Array::from(trace_duration))),
    ])
}

/// Numeric columns of (nearly) unique values stored BYTE_STREAM_SPLIT
/// without a dictionary: their high bytes repeat (times share a prefix,
/// nested-set numbers are small), and splitting the bytes into streams lets
/// zstd see that. On `small` this took start_unix_nano from 5.46 to 3.30 and
/// duration_nano from 5.84 to 3.24 bytes/span at the same write cost; DELTA_BINARY_PACKED
/// did worse (a trace boundary widens a whole miniblock). DuckDB reads it.
const BYTE_STREAM_SPLIT_COLUMNS: [&str; 6] = [
    col::START_UNIX_NANO,
    col::DURATION_NANO,
    col::NESTED_SET_LEFT,
    col::NESTED_SET_RIGHT,
    col::NESTED_SET_PARENT,
    col::CHILD_COUNT,
];

/// Rows per data page. A trace lookup decompresses and decodes the whole
/// page of every column that holds the trace, so pages are kept smaller than
/// arrow-rs' 20 000 rows: on `small` 8192 cut the CPU of a one-block lookup by
/// about a third for 1.9 bytes/span (page headers, shorter zstd frames),
/// which [`STRING_MAP_ZSTD_LEVEL`] wins back.
const DATA_PAGE_ROWS: usize = 8192;

/// Most bytes of a column chunk's dictionary; past it the chunk's later
/// pages are written plain. A trace lookup decodes the whole dictionary of
/// every column it reads (into an Arrow array) for the few values its rows
/// use. arrow-rs' default of 1 MiB was reached by the string attribute
/// values alone, and their dictionary was a third of a one-block lookup's
/// CPU. On a 100k-span block, 128 KiB took a lookup from 4.1 to 3.4 ms
/// (in-process) at the same size (-0.4%); scanning the span attributes
/// got 9% slower (16.2 → 17.6 ms: more plain bytes to decompress). 64 KiB:
/// 3.4 ms, +0.5% size.
const DICTIONARY_PAGE_BYTES: usize = 128 * 1024;

/// Least zstd level of the string attribute maps, the largest compressible
/// columns, in compacted blocks: their values repeat over long distances
/// (a resource's attributes on each of its spans), which level 6 finds and
/// 3 does not. On `small`: 1.2 bytes/span less for about 8% more
/// block-writing CPU. Blocks flushed by the ingester (level 0) keep the
/// configured level: the compactor rewrites them, and at level 6 these
/// columns' zstd was 9% of the ingest's instructions.
const STRING_MAP_ZSTD_LEVEL: i32 = 6;

/// zstd level of the string attribute maps in a block of `compaction_level`.
fn string_map_zstd_level(config: &BlockConfig, compaction_level: u32) -> i32 {
    if compaction_level == 0 { config.zstd_level } else { config.zstd_level.max(STRING_MAP_ZSTD_LEVEL) }
}

/// The leaf columns (keys and values) of the string attribute maps.
fn string_map_leaves() -> Vec<ColumnPath> {
    [col::SPAN_ATTRS, col::RESOURCE_ATTRS]
        .iter()
        .flat_map(|prefix| ["keys", "values"].map(|leaf| ColumnPath::new(vec![format!("{prefix}_str"), "entries".into(), leaf.into()])))
        .collect()
}

/// Leaf columns inside maps, lists and structs. They get no statistics:
/// DataFusion prunes row groups and pages by top-level columns only (tag
/// summaries prune blocks by attribute), their page index entries (64-byte
/// min/max values per page of every key and value leaf) were a third of the
/// footer, and keeping a min and max costs the writer a comparison per
/// value: on `small`, ~3% of the ingest CPU for the row-group ones alone.
fn nested_leaves() -> Result<Vec<ColumnPath>> {
    let descriptor = parquet::arrow::ArrowSchemaConverter::new().convert(&span_schema())?;
    Ok(descriptor.columns().iter().map(|c| c.path().clone()).filter(|path| path.parts().len() > 1).collect())
}

/// Is a leaf column written without compression? Those whose values are
/// random (span ids) or absent or default on nearly every span: dropped
/// counts, trace state, entity refs, scope attributes, the bool and other
/// attribute maps, resource float attributes, and the fields of events and
/// links other than their times, names, trace ids and string attributes.
/// zstd gains nothing on them (on `small`, 8.004 against 8.003 bytes/span
/// for span_id; the empty ones come out bigger), while reading a zstd
/// column chunk costs a new zstd context in arrow-rs: a trace lookup reads
/// every column, and context creation was a fifth of its CPU.
fn stored_uncompressed(path: &ColumnPath) -> bool {
    let parts = path.parts();
    match parts[0].as_str() {
        col::SPAN_ID
        | col::TRACE_STATE
        | col::DROPPED_ATTRIBUTES_COUNT
        | col::DROPPED_EVENTS_COUNT
        | col::DROPPED_LINKS_COUNT
        | col::RESOURCE_DROPPED_ATTRIBUTES_COUNT
        | col::RESOURCE_ENTITY_REFS
        | col::SCOPE_DROPPED_ATTRIBUTES_COUNT => true,
        col::EVENTS | col::LINKS => {
            // <events|links>.list.item.<field>[.entries.<keys|values>]
            let field = parts.get(3).map(String::as_str).unwrap_or_default();
            ![col::TIME_UNIX_NANO, col::NAME, col::TRACE_ID, "attrs_str"].contains(&field)
        }
        name if name.starts_with(col::SCOPE_ATTRS) => true,
        name => name.ends_with("_bool") || name.ends_with("_other") || name == "resource_attrs_float",
    }
}

/// Is a leaf column written with LZ4 (raw) rather than zstd? Those of few
/// distinct values, whose pages are short runs of dictionary indices
/// (status, flags, low-cardinality dedicated attributes, schema URLs, the
/// trace root's name and service), the trace-level times (one value per
/// trace, repeated on its spans) and the small event and link fields that
/// lookups read. zstd saves little on them (on `small`, 0.7 bytes/span for
/// all of them together), while every zstd column chunk read costs arrow-rs
/// a new compressor and decompressor context, and LZ4 decompresses several
/// times faster. Columns where zstd earns more (ids, span times, names, URLs,
/// the attribute maps, nested sets) keep it.
fn stored_lz4(path: &ColumnPath) -> bool {
    let parts = path.parts();
    match parts[0].as_str() {
        col::FLAGS
        | col::STATUS_CODE
        | col::STATUS_MESSAGE
        | col::SERVICE_NAME
        | col::RESOURCE_SCHEMA_URL
        | col::SCOPE_SCHEMA_URL
        | col::TRACE_ROOT_SERVICE
        | col::TRACE_ROOT_NAME
        | col::TRACE_START_UNIX_NANO
        | col::TRACE_DURATION_NANO
        | "service_namespace"
        | "deployment_environment"
        | "k8s_cluster_name"
        | "http_method"
        | "http_request_method"
        | "http_route"
        | "http_status_code"
        | "http_response_status_code"
        | "db_system"
        | "span_attrs_float" => true,
        "resource_attrs_int" => parts.last().is_some_and(|leaf| leaf == "keys"),
        col::EVENTS => {
            // events.list.item.<field>[.entries.<keys|values>]
            let field = parts.get(3).map(String::as_str).unwrap_or_default();
            [col::TIME_UNIX_NANO, col::NAME, "attrs_str"].contains(&field)
        }
        col::LINKS => {
            let field = parts.get(3).map(String::as_str).unwrap_or_default();
            field == col::TRACE_ID || (field == "attrs_str" && parts.last().is_some_and(|leaf| leaf == "keys"))
        }
        _ => false,
    }
}

/// Parquet writer settings for blocks of `compaction_level`.
fn writer_properties(config: &BlockConfig, compaction_level: u32, trace_count: u64) -> Result<WriterProperties> {
    let rows_per_group = config.row_group_size.max(1) as u64;
    let mut builder = WriterProperties::builder();
    for column in BYTE_STREAM_SPLIT_COLUMNS {
        builder = builder
            .set_column_dictionary_enabled(column.into(), false)
            .set_column_encoding(column.into(), Encoding::BYTE_STREAM_SPLIT);
    }
    let string_map_level = ZstdLevel::try_new(string_map_zstd_level(config, compaction_level))?;
    for leaf in string_map_leaves() {
        builder = builder.set_column_compression(leaf, Compression::ZSTD(string_map_level));
    }
    let descriptor = parquet::arrow::ArrowSchemaConverter::new().convert(&span_schema())?;
    for leaf in descriptor.columns().iter().map(|c| c.path()) {
        if stored_uncompressed(leaf) {
            builder = builder.set_column_compression(leaf.clone(), Compression::UNCOMPRESSED);
        } else if stored_lz4(leaf) {
            builder = builder.set_column_compression(leaf.clone(), Compression::LZ4_RAW);
        }
    }
    for leaf in nested_leaves()? {
        builder = builder.set_column_statistics_enabled(leaf, EnabledStatistics::None);
    }
    Ok(builder
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(config.zstd_level)?))
        .set_dictionary_enabled(true)
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_data_page_row_count_limit(DATA_PAGE_ROWS)
        .set_max_row_group_row_count(Some(config.row_group_size.max(1)))
        .set_sorting_columns(Some(vec![SortingColumn { column_idx: 0, descending: false, nulls_first: false }]))
        .set_column_bloom_filter_enabled(col::TRACE_ID.into(), true)
        .set_column_bloom_filter_fpp(col::TRACE_ID.into(), config.bloom_filter_fpp)
        // Distinct trace ids per row group: at most the trace count, at most the rows.
        .set_column_bloom_filter_max_ndv(col::TRACE_ID.into(), trace_count.clamp(1, rows_per_group))
        // Random ids do not compress: no dictionary for the id columns.
        .set_column_dictionary_enabled(col::TRACE_ID.into(), false)
        .set_column_dictionary_enabled(col::SPAN_ID.into(), false)
        .set_column_dictionary_enabled(col::PARENT_SPAN_ID.into(), false)
        .build())
}

/// Writes a prepared (sorted, completed) batch as a new level-0 block of
/// `tenant`: `data.parquet` first, `meta.json` last. Returns the block.
/// `tags` is the batch's tag summary when already known (summarised from
/// the batch otherwise).
pub async fn write_block(
    store: &Arc<dyn ObjectStore>,
    layout: &Layout,
    config: &BlockConfig,
    tenant: &str,
    batch: &RecordBatch,
    tags: Option<TagSummary>,
    wal_segments: Vec<String>,
) -> Result<LiveBlock> {
    let target = BlockTarget { store, layout, config, tenant, trace_count: count_traces(&fsb(batch, col::TRACE_ID)?) };
    let mut writer = target.writer(tags)?;
    let written = writer.write(batch).await;
    target.finish(writer, written, wal_segments).await
}

/// Rows of a column gathered at a time when a block is written from a
/// [`BlockPlan`]. Every slice costs a gather and a Parquet write call per
/// column. Session 6 measured, gathering every column of a slice together
/// (64 MiB heads, 33k spans, on `small`): 12.8 CPU-s per million spans and
/// 404 MiB peak RSS in one slice, 12.8 and 372 in slices of 16384 rows,
/// 13.2–13.5 and 323–352 of 4096, 13.9 and 322 of 1024. A slice now holds
/// one column only, so smaller slices cost few calls; at 16384 rows the
/// resource attribute map's slice (12 MB) and its Parquet levels (6 MB)
/// were the largest transient allocations of a flush (session 11, heaptrack).
const PLANNED_SLICE_ROWS: usize = 4096;

/// Writes a level-0 block like [`write_block`], gathering the rows of
/// `batches` in the order of `plan` a slice at a time.
pub async fn write_planned_block(
    store: &Arc<dyn ObjectStore>,
    layout: &Layout,
    config: &BlockConfig,
    tenant: &str,
    plan: &BlockPlan,
    batches: &[impl SpanColumns + Sync],
    tags: TagSummary,
    wal_segments: Vec<String>,
) -> Result<LiveBlock> {
    let target = BlockTarget { store, layout, config, tenant, trace_count: plan.traces };
    let mut writer = target.writer(Some(tags))?;
    let written = writer.write_planned(plan, batches).await;
    target.finish(writer, written, wal_segments).await
}

/// Where a level-0 block goes, and how many traces it holds (sizes its bloom filter).
struct BlockTarget<'a> {
    store: &'a Arc<dyn ObjectStore>,
    layout: &'a Layout,
    config: &'a BlockConfig,
    tenant: &'a str,
    trace_count: u64,
}

impl BlockTarget<'_> {
    /// A writer of the block, with `tags` as its summary when given.
    fn writer(&self, tags: Option<TagSummary>) -> Result<BlockWriter> {
        let writer = BlockWriter::new(self.store.clone(), self.layout.clone(), self.config, 0, self.tenant, self.trace_count)?;
        Ok(match tags {
            Some(tags) => writer.with_tag_summary(tags),
            None => writer,
        })
    }

    /// Completes the block if its rows were `written`, deletes it otherwise.
    async fn finish(&self, writer: BlockWriter, written: Result<()>, wal_segments: Vec<String>) -> Result<LiveBlock> {
        if let Err(e) = written {
            writer.abort().await;
            return Err(e);
        }
        let now = unix_seconds();
        writer.finish(BlockOrigin { ingested_unix_seconds: now, wal_segments, compacted_from: Vec::new() }).await
    }
}

/// Distinct trace ids of ids sorted by trace.
fn count_traces(trace_ids: &FixedSizeBinaryArray) -> u64 {
    (0..trace_ids.len()).filter(|&r| r == 0 || trace_ids.value(r) != trace_ids.value(r - 1)).count() as u64
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Where a block's spans came from, recorded in its meta.
#[derive(Debug, Clone, Default)]
pub struct BlockOrigin {
    /// See [`BlockMeta::ingested_unix_seconds`].
    pub ingested_unix_seconds: u64,
    /// WAL segments holding the spans (flushed heads only).
    pub wal_segments: Vec<String>,
    /// Blocks merged into this one (compaction only).
    pub compacted_from: Vec<Uuid>,
}

/// Writes one block from prepared batches given in block order (by trace
/// id; a trace may continue from one batch into the next), so that a block
/// of any size is written with bounded memory. Nothing is visible until
/// [`finish`](Self::finish) writes `meta.json`; a writer dropped before
/// that leaves objects no meta names (call [`abort`](Self::abort) to delete them).
pub struct BlockWriter {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    tenant: String,
    block_id: Uuid,
    /// 0 for a flushed head; one more than its highest input for a
    /// compacted block. Sets the zstd level of its string maps.
    compaction_level: u32,
    writer: ParquetOut,
    trace_filter: Sbbf,
    tags: TagSummary,
    /// Whether [`write`](Self::write) adds each batch to `tags` (false when
    /// the summary was given: the union of the inputs' of a compaction).
    summarise: bool,
    spans: u64,
    traces: u64,
    min_trace_id: Option<[u8; 16]>,
    last_trace_id: Option<[u8; 16]>,
    min_start: i64,
    max_start: i64,
    max_end: i64,
}

impl BlockWriter {
    /// Starts a block of `tenant` that will have `compaction_level` (0 for
    /// the ingester's). `expected_traces` (an upper bound is fine) sizes the
    /// bloom filters.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        layout: Layout,
        config: &BlockConfig,
        compaction_level: u32,
        tenant: &str,
        expected_traces: u64,
    ) -> Result<Self> {
        let block_id = Uuid::new_v4();
        let object_writer = BufWriter::new(store.clone(), layout.data(tenant, block_id));
        let properties = writer_properties(config, compaction_level, expected_traces)?;
        let writer = ParquetOut::new(object_writer, properties, config.row_group_size.max(1))?;
        Ok(Self {
            store,
            layout,
            tenant: tenant.to_owned(),
            block_id,
            compaction_level,
            writer,
            trace_filter: Sbbf::new_with_ndv_fpp(expected_traces.max(1), config.bloom_filter_fpp)?,
            tags: TagSummary::default(),
            summarise: true,
            spans: 0,
            traces: 0,
            min_trace_id: None,
            last_trace_id: None,
            min_start: i64::MAX,
            max_start: i64::MIN,
            max_end: i64::MIN,
        })
    }

    /// Uses `tags` as the block's tag summary instead of summarising the
    /// rows written. For a compaction, the union of its inputs' summaries
    /// is the summary of the merged rows, and costs nothing to compute.
    pub fn with_tag_summary(mut self, tags: TagSummary) -> Self {
        self.tags = tags;
        self.summarise = false;
        self
    }

    /// Appends prepared rows; they must follow the rows written before in trace-id order.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.note_rows(|name| Some(batch.column(column_index(name))))?;
        if self.summarise {
            self.tags.merge(&TagSummary::from_batch(batch)?);
        }
        self.writer.write(batch).await
    }

    /// Writes the rows of `plan` (made from `batches`) a column at a time,
    /// so that only one column of a slice of rows is gathered at once and
    /// only one column's encoder is busy. The writer must have been given
    /// the rows' tag summary ([`with_tag_summary`](Self::with_tag_summary))
    /// and nothing written yet.
    pub async fn write_planned(&mut self, plan: &BlockPlan, batches: &[impl SpanColumns + Sync]) -> Result<()> {
        if self.summarise || self.spans > 0 {
            return Err(Error::internal("a planned block is written whole, with its tag summary"));
        }
        if plan.num_rows() == 0 {
            return Ok(());
        }
        self.note_rows(|name| plan.computed_column(name))?;
        self.writer.write_columns(plan.num_rows(), PLANNED_SLICE_ROWS, |index, range| plan.column(batches, index, range)).await
    }

    /// Counts rows and traces, fills the bloom filter and the time bounds,
    /// from the trace id and time columns of rows in block order.
    fn note_rows<'a>(&mut self, column: impl Fn(&str) -> Option<&'a ArrayRef>) -> Result<()> {
        let column = |name: &str| column(name).ok_or_else(|| Error::internal(format!("no {name} column")));
        let trace_ids = fsb_of(column(col::TRACE_ID)?)?;
        let int64 = |name: &str| column(name)?.as_primitive_opt::<Int64Type>().ok_or_else(|| Error::internal("time columns have the wrong type"));
        let (starts, durations) = (int64(col::START_UNIX_NANO)?, int64(col::DURATION_NANO)?);
        for row in 0..trace_ids.len() {
            let id: [u8; 16] = trace_ids.value(row).try_into().map_err(|_| Error::internal("trace_id is not 16 bytes"))?;
            match self.last_trace_id {
                Some(last) if last == id => continue,
                Some(last) if last > id => return Err(Error::internal("block rows are not in trace-id order")),
                _ => {}
            }
            self.trace_filter.insert(id.as_slice());
            self.traces += 1;
            self.min_trace_id.get_or_insert(id);
            self.last_trace_id = Some(id);
        }
        for (start, duration) in starts.values().iter().zip(durations.values()) {
            self.min_start = self.min_start.min(*start);
            self.max_start = self.max_start.max(*start);
            self.max_end = self.max_end.max(start.wrapping_add(*duration));
        }
        self.spans += trace_ids.len() as u64;
        Ok(())
    }

    /// Completes `data.parquet`, writes the bloom filter, tag summary and
    /// finally `meta.json`: from then on the block exists. On failure the
    /// objects written so far are deleted.
    pub async fn finish(mut self, origin: BlockOrigin) -> Result<LiveBlock> {
        match self.complete(origin).await {
            Ok(meta) => {
                self.tags.pack();
                Ok(LiveBlock { meta, trace_filter: Some(self.trace_filter), tags: Some(Arc::new(self.tags)) })
            }
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn complete(&mut self, origin: BlockOrigin) -> Result<BlockMeta> {
        let (Some(min_trace_id), Some(max_trace_id)) = (self.min_trace_id, self.last_trace_id) else {
            return Err(Error::internal("refusing to write an empty block"));
        };
        let metadata = self.writer.finish().await?;
        let (tenant, block_id) = (self.tenant.as_str(), self.block_id);
        let meta = BlockMeta {
            block_id,
            tenant: tenant.to_owned(),
            schema_version: SCHEMA_VERSION,
            min_start_unix_nano: self.min_start,
            max_end_unix_nano: self.max_end,
            max_start_unix_nano: Some(self.max_start),
            min_trace_id: hex::encode(min_trace_id),
            max_trace_id: hex::encode(max_trace_id),
            span_count: self.spans,
            trace_count: self.traces,
            size_bytes: self.writer.bytes_written() as u64,
            compaction_level: self.compaction_level,
            row_groups: metadata.num_row_groups() as u32,
            dedicated_columns: DEDICATED_COLUMNS.iter().map(|d| d.column.to_owned()).collect(),
            created_unix_seconds: unix_seconds(),
            ingested_unix_seconds: origin.ingested_unix_seconds,
            compacted_from: origin.compacted_from,
            wal_segments: origin.wal_segments,
        };
        let mut bitset = Vec::new();
        self.trace_filter.write_bitset(&mut bitset)?;
        self.store.put(&self.layout.bloom(tenant, block_id), PutPayload::from(bitset)).await?;
        self.store.put(&self.layout.tags(tenant, block_id), PutPayload::from(serde_json::to_vec(&self.tags)?)).await?;
        let json = serde_json::to_vec_pretty(&meta)?;
        self.store.put(&self.layout.meta(tenant, block_id), PutPayload::from(json)).await?;
        Ok(meta)
    }

    /// Gives up on the block and deletes what was written of it (best effort).
    pub async fn abort(self) {
        let Self { store, layout, tenant, block_id, writer, .. } = self;
        writer.abort().await;
        delete_block_objects(&store, &layout, &tenant, block_id).await;
    }
}

/// A block's `data.parquet`, encoded a row group at a time and sent to the
/// object store after each. This is what arrow-rs' `AsyncArrowWriter` does
/// for whole batches ([`write`](Self::write)); it is written out here for
/// [`write_columns`](Self::write_columns), which encodes a row group a
/// column at a time through arrow-rs' column writers.
struct ParquetOut {
    file: SerializedFileWriter<Vec<u8>>,
    row_groups: ArrowRowGroupWriterFactory,
    /// Leaf columns of each span column, in schema order.
    leaves: Vec<usize>,
    /// The row group `write` is filling: its leaf column writers and rows.
    filling: Option<(Vec<ArrowColumnWriter>, usize)>,
    rows_per_group: usize,
    out: BufWriter,
    /// The upload was completed or is being completed: object_store's
    /// `BufWriter` panics when aborted after that.
    shut_down: bool,
}

impl ParquetOut {
    fn new(out: BufWriter, properties: WriterProperties, rows_per_group: usize) -> Result<Self> {
        // An ArrowWriter sets up the file as arrow-rs writes it (the Arrow
        // schema in its metadata); its lower-level parts do the rest.
        let (file, row_groups) = ArrowWriter::try_new(Vec::new(), span_schema(), Some(properties))?.into_serialized_writer()?;
        let descriptor = file.schema_descr();
        let mut leaves = vec![0; span_schema().fields().len()];
        for leaf in 0..descriptor.num_columns() {
            leaves[descriptor.get_column_root_idx(leaf)] += 1;
        }
        Ok(Self { file, row_groups, leaves, filling: None, rows_per_group, out, shut_down: false })
    }

    /// Appends `batch`, closing each row group as it fills.
    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let (writers, rows) = match &mut self.filling {
                Some(filling) => filling,
                filling => filling.insert((self.row_groups.create_column_writers(self.file.flushed_row_groups().len())?, 0)),
            };
            let take = (self.rows_per_group - *rows).min(batch.num_rows() - offset);
            let slice = batch.slice(offset, take);
            let mut writers = writers.iter_mut();
            for (field, column) in span_schema().fields().iter().zip(slice.columns()) {
                for leaf in compute_leaves(field, column)? {
                    writers.next().ok_or_else(|| Error::internal("more leaf columns than writers"))?.write(&leaf)?;
                }
            }
            *rows += take;
            offset += take;
            if *rows == self.rows_per_group {
                self.close_filling().await?;
            }
        }
        Ok(())
    }

    /// Appends `rows` rows given a column at a time: `column(index, range)`
    /// is rows `range` of column `index`, asked for at most `slice_rows`
    /// rows at a time, every slice of a column before the next column.
    async fn write_columns(
        &mut self,
        rows: usize,
        slice_rows: usize,
        mut column: impl FnMut(usize, Range<usize>) -> Result<ArrayRef>,
    ) -> Result<()> {
        self.close_filling().await?;
        let schema = span_schema();
        let slice_rows = slice_rows.max(1);
        for group_start in (0..rows).step_by(self.rows_per_group) {
            let group = group_start..rows.min(group_start + self.rows_per_group);
            let mut writers = self.row_groups.create_column_writers(self.file.flushed_row_groups().len())?.into_iter();
            let mut chunks = Vec::with_capacity(writers.len());
            for (index, field) in schema.fields().iter().enumerate() {
                let mut field_writers: Vec<ArrowColumnWriter> = writers.by_ref().take(self.leaves[index]).collect();
                for start in group.clone().step_by(slice_rows) {
                    let range = start..group.end.min(start + slice_rows);
                    let array = column(index, range.clone())?;
                    // What RecordBatch::try_new checks of a batch's columns.
                    if array.data_type() != field.data_type() || array.len() != range.len() || (!field.is_nullable() && array.null_count() > 0) {
                        return Err(Error::internal(format!("column {} does not match the span schema", field.name())));
                    }
                    let leaves = compute_leaves(field, &array)?;
                    if leaves.len() != field_writers.len() {
                        return Err(Error::internal(format!("column {} has {} leaves, not {}", field.name(), leaves.len(), field_writers.len())));
                    }
                    for (writer, leaf) in field_writers.iter_mut().zip(&leaves) {
                        writer.write(leaf)?;
                    }
                }
                // Closed now, its encoder freed: the chunk is the column's compressed pages.
                for writer in field_writers {
                    chunks.push(writer.close()?);
                }
            }
            self.append_row_group(chunks).await?;
        }
        Ok(())
    }

    /// Closes the row group `write` is filling, if any.
    async fn close_filling(&mut self) -> Result<()> {
        let Some((writers, _)) = self.filling.take() else {
            return Ok(());
        };
        let chunks = writers.into_iter().map(ArrowColumnWriter::close).collect::<parquet::errors::Result<_>>()?;
        self.append_row_group(chunks).await
    }

    /// Appends a row group of the closed leaf columns `chunks` (in schema
    /// order) and sends it.
    async fn append_row_group(&mut self, chunks: Vec<ArrowColumnChunk>) -> Result<()> {
        let mut row_group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.send().await
    }

    /// Sends the bytes encoded so far to the object store.
    async fn send(&mut self) -> Result<()> {
        let bytes = std::mem::take(self.file.inner_mut());
        if !bytes.is_empty() {
            self.out.put(bytes.into()).await?;
        }
        Ok(())
    }

    /// Writes the footer and completes the upload.
    async fn finish(&mut self) -> Result<ParquetMetaData> {
        self.close_filling().await?;
        let metadata = self.file.finish()?;
        self.send().await?;
        self.shut_down = true;
        self.out.shutdown().await.map_err(Error::io("completing data.parquet"))?;
        Ok(metadata)
    }

    fn bytes_written(&self) -> usize {
        self.file.bytes_written()
    }

    /// Gives up on the upload (best effort; once completed, the object is
    /// deleted with the block's others).
    async fn abort(mut self) {
        if !self.shut_down {
            let _ = self.out.abort().await;
        }
    }
}

/// Deletes every object of a block, `meta.compacted.json` last; missing
/// objects are fine. Returns whether all of them are gone.
pub(crate) async fn delete_block_objects(store: &Arc<dyn ObjectStore>, layout: &Layout, tenant: &str, block_id: Uuid) -> bool {
    for path in layout.block_objects(tenant, block_id) {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => {
                tracing::warn!(%path, error = %e, "could not delete a block object; retried later");
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use arrow::compute::concat_batches;
    use object_store::memory::InMemory;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;
    use crate::convert::resource_spans_to_batch;

    /// Two traces of a root and two children each, with varied times.
    fn spans() -> Vec<ResourceSpans> {
        let spans = (0..6u8)
            .map(|i| Span {
                trace_id: vec![i % 2 + 1; 16],
                span_id: vec![i + 1; 8],
                parent_span_id: if i < 2 { Vec::new() } else { vec![i % 2 + 1; 8] },
                name: format!("op{i}"),
                start_time_unix_nano: 1_700_000_000_000_000_000 + 1_000 * i as u64,
                end_time_unix_nano: 1_700_000_000_000_500_000 + 7 * i as u64,
                ..Default::default()
            })
            .collect();
        vec![ResourceSpans { scope_spans: vec![ScopeSpans { spans, ..Default::default() }], ..Default::default() }]
    }

    #[test]
    fn compacted_string_maps_get_at_least_their_zstd_level_and_pages_are_small() {
        let zstd = |level| Compression::ZSTD(ZstdLevel::try_new(level).unwrap());
        let properties = |level, compaction_level| {
            writer_properties(&BlockConfig { zstd_level: level, ..BlockConfig::default() }, compaction_level, 10).unwrap()
        };
        let (default, strong, flushed) = (properties(3, 1), properties(9, 1), properties(3, 0));
        for leaf in string_map_leaves() {
            assert_eq!(default.compression(&leaf), zstd(STRING_MAP_ZSTD_LEVEL), "{leaf}");
            assert_eq!(strong.compression(&leaf), zstd(9), "a higher configured level wins: {leaf}");
            assert_eq!(flushed.compression(&leaf), zstd(3), "the ingester's blocks keep the configured level: {leaf}");
        }
        assert_eq!(default.compression(&ColumnPath::from(col::NAME)), zstd(3));
        assert_eq!(default.data_page_row_count_limit(), DATA_PAGE_ROWS);
        for leaf in string_map_leaves() {
            assert_eq!(default.column_dictionary_page_size_limit(&leaf), DICTIONARY_PAGE_BYTES, "small dictionaries: {leaf}");
        }
        let map_key = ColumnPath::new(vec!["span_attrs_str".into(), "entries".into(), "keys".into()]);
        assert_eq!(default.statistics_enabled(&map_key), EnabledStatistics::None, "no statistics inside maps");
        assert_eq!(default.statistics_enabled(&ColumnPath::from(col::NAME)), EnabledStatistics::Page);
        let path = |parts: &[&str]| ColumnPath::new(parts.iter().map(|p| p.to_string()).collect());
        for uncompressed in [
            path(&[col::SPAN_ID]),
            path(&["span_attrs_bool", "entries", "values"]),
            path(&["scope_attrs_str", "entries", "keys"]),
            path(&[col::LINKS, "list", "item", col::SPAN_ID]),
            path(&[col::EVENTS, "list", "item", "attrs_int", "entries", "values"]),
        ] {
            assert_eq!(default.compression(&uncompressed), Compression::UNCOMPRESSED, "{uncompressed}");
        }
        for zstd in [
            path(&[col::TRACE_ID]),
            path(&[col::PARENT_SPAN_ID]),
            path(&[col::START_UNIX_NANO]),
            path(&["span_attrs_int", "entries", "values"]),
            path(&["resource_attrs_int", "entries", "values"]),
            path(&[col::LINKS, "list", "item", "attrs_str", "entries", "values"]),
        ] {
            assert!(matches!(default.compression(&zstd), Compression::ZSTD(_)), "{zstd}");
        }
        for lz4 in [
            path(&[col::STATUS_CODE]),
            path(&[col::TRACE_START_UNIX_NANO]),
            path(&["http_route"]),
            path(&["span_attrs_float", "entries", "values"]),
            path(&["resource_attrs_int", "entries", "keys"]),
            path(&[col::EVENTS, "list", "item", "attrs_str", "entries", "values"]),
            path(&[col::EVENTS, "list", "item", col::TIME_UNIX_NANO]),
            path(&[col::LINKS, "list", "item", col::TRACE_ID]),
        ] {
            assert_eq!(default.compression(&lz4), Compression::LZ4_RAW, "{lz4}");
        }
    }

    #[tokio::test]
    async fn block_pins_its_encodings_and_reads_back_unchanged() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let layout = Layout::new("");
        let (batch, _) = resource_spans_to_batch(&spans()).unwrap();
        let batch = prepare_block(&[batch]).unwrap();
        let block = write_block(&store, &layout, &BlockConfig::default(), "t", &batch, None, Vec::new()).await.unwrap();
        let data = store.get(&layout.data("t", block.meta.block_id)).await.unwrap().bytes().await.unwrap();

        let reader = SerializedFileReader::new(data.clone()).unwrap();
        let row_group = reader.metadata().row_group(0);
        let chunk = |name: &str| row_group.columns().iter().find(|c| c.column_path().string() == name).unwrap();
        for name in BYTE_STREAM_SPLIT_COLUMNS {
            let encodings: Vec<Encoding> = chunk(name).encodings().collect();
            assert!(encodings.contains(&Encoding::BYTE_STREAM_SPLIT), "{name}: {encodings:?}");
            assert!(!encodings.contains(&Encoding::RLE_DICTIONARY), "{name}: {encodings:?}");
        }
        assert!(chunk(col::NAME).encodings().any(|e| e == Encoding::RLE_DICTIONARY), "strings keep their dictionary");
        assert!(chunk(col::TRACE_ID).bloom_filter_offset().is_some(), "trace_id has a bloom filter");
        assert!(chunk(col::TRACE_ID).encodings().all(|e| e != Encoding::RLE_DICTIONARY), "random ids: no dictionary");
        assert!(row_group.column(0).offset_index_offset().is_some(), "page index written");
        for leaf in string_map_leaves() {
            assert!(matches!(chunk(&leaf.string()).compression(), Compression::ZSTD(_)), "{leaf} exists and is zstd");
        }

        let read: Vec<RecordBatch> =
            ParquetRecordBatchReaderBuilder::try_new(data).unwrap().build().unwrap().map(|b| b.unwrap()).collect();
        assert_eq!(concat_batches(&batch.schema(), &read).unwrap(), batch, "every field comes back as written");
    }

    #[tokio::test]
    async fn a_planned_block_gathered_in_slices_holds_what_the_prepared_batch_holds() {
        // Traces spread over three batches, more rows than one slice, one span repeated.
        let received: Vec<RecordBatch> = (0..3u64)
            .map(|b| {
                let spans = (0..(PLANNED_SLICE_ROWS as u64 / 2 + 7))
                    .map(|i| Span {
                        trace_id: (1 + (i * 7 + b) % 97).to_be_bytes().repeat(2),
                        span_id: (b << 32 | i + 1).to_be_bytes().to_vec(),
                        parent_span_id: if i % 5 == 0 { Vec::new() } else { (b << 32 | i).to_be_bytes().to_vec() },
                        name: format!("op{}", i % 11),
                        start_time_unix_nano: 1_700_000_000_000_000_000 + 1_000 * (i % 13),
                        end_time_unix_nano: 1_700_000_000_000_500_000 + i,
                        ..Default::default()
                    })
                    .collect();
                let rs = ResourceSpans { scope_spans: vec![ScopeSpans { spans, ..Default::default() }], ..Default::default() };
                resource_spans_to_batch(&[rs]).unwrap().0
            })
            .chain([resource_spans_to_batch(&spans()).unwrap().0.slice(0, 1)])
            .chain([resource_spans_to_batch(&spans()).unwrap().0])
            .collect();
        let prepared = prepare_block(&received).unwrap();
        let plan = BlockPlan::new(&received).unwrap();
        assert!(plan.num_rows() > PLANNED_SLICE_ROWS, "several slices");
        assert_eq!(plan.num_rows(), prepared.num_rows(), "the repeated span is kept once");

        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let layout = Layout::new("");
        let tags = TagSummary::from_batch(&prepared).unwrap();
        let block = write_planned_block(&store, &layout, &BlockConfig::default(), "t", &plan, &received, tags.clone(), Vec::new())
            .await
            .unwrap();
        assert_eq!(block.meta.span_count, prepared.num_rows() as u64);
        assert_eq!(block.tags.as_deref(), Some(&tags));
        let from_prepared = write_block(&store, &layout, &BlockConfig::default(), "t", &prepared, None, Vec::new()).await.unwrap();
        assert_eq!(block.meta.trace_count, from_prepared.meta.trace_count);
        let read_back = |block: LiveBlock| {
            let (store, layout) = (store.clone(), layout.clone());
            async move {
                let data = store.get(&layout.data("t", block.meta.block_id)).await.unwrap().bytes().await.unwrap();
                let read: Vec<RecordBatch> =
                    ParquetRecordBatchReaderBuilder::try_new(data.clone()).unwrap().build().unwrap().map(|b| b.unwrap()).collect();
                let footer = SerializedFileReader::new(data).unwrap().metadata().clone();
                for row_group in footer.row_groups() {
                    assert!(row_group.sorting_columns().is_some(), "sorted by trace id");
                    assert!(row_group.column(0).bloom_filter_offset().is_some(), "trace_id has a bloom filter");
                }
                (concat_batches(&span_schema(), &read).unwrap(), block.meta.row_groups)
            }
        };
        assert_eq!(read_back(block).await, (prepared.clone(), 1));

        // Row groups smaller than a slice, and not a divisor of it: both
        // paths cut them at the same rows.
        let config = BlockConfig { row_group_size: 1000, ..BlockConfig::default() };
        let groups = prepared.num_rows().div_ceil(1000) as u32;
        let planned = write_planned_block(&store, &layout, &config, "t", &plan, &received, tags, Vec::new()).await.unwrap();
        assert_eq!(read_back(planned).await, (prepared.clone(), groups));
        let mut writer = BlockWriter::new(store.clone(), layout.clone(), &config, 0, "t", 100).unwrap();
        for start in (0..prepared.num_rows()).step_by(777) {
            writer.write(&prepared.slice(start, 777.min(prepared.num_rows() - start))).await.unwrap();
        }
        let streamed = writer.finish(BlockOrigin::default()).await.unwrap();
        assert_eq!(read_back(streamed).await, (prepared, groups));
    }

    #[test]
    fn prepare_sorts_across_batches_and_keeps_one_copy_of_a_repeated_span() {
        let (batch, _) = resource_spans_to_batch(&spans()).unwrap();
        // The same spans again in a second batch (as after carrying a trace), split unevenly.
        let batches = [batch.slice(0, 4), batch.clone(), batch.slice(4, 2)];
        let prepared = prepare_block(&batches).unwrap();
        assert_eq!(prepared.num_rows(), 6);
        let ids = |name: &str| -> Vec<u8> { fsb(&prepared, name).unwrap().iter().map(|v| v.unwrap()[0]).collect() };
        assert_eq!(ids(col::TRACE_ID), [1, 1, 1, 2, 2, 2]);
        assert_eq!(ids(col::SPAN_ID), [1, 3, 5, 2, 4, 6], "by trace, then start time");
        assert_eq!(prepared, prepare_block(&[batch]).unwrap(), "the same block as from one copy");
        assert_eq!(prepare_block::<RecordBatch>(&[]).unwrap().num_rows(), 0);
    }

    #[test]
    fn rows_gathered_a_run_at_a_time_equal_those_gathered_a_row_at_a_time() {
        let (batch, _) = resource_spans_to_batch(&spans()).unwrap();
        let batches = [batch.clone(), batch.slice(1, 4)];
        let parts = |index: usize| -> Vec<&dyn Array> { batches.iter().map(|b| b.column(index).as_ref()).collect() };
        // Long runs (copied a run at a time) and single rows (interleaved).
        let long: Vec<(usize, usize)> = [(1, 0), (1, 1), (1, 2), (1, 3), (0, 0), (0, 1), (0, 2), (0, 3), (0, 4)].into();
        let short: Vec<(usize, usize)> = [(1, 3), (0, 5), (1, 0), (0, 2), (1, 2)].into();
        for rows in [long, short] {
            let runs = Runs::of(&rows);
            for index in 0..batch.num_columns() {
                // Every range, including those that start or end inside a run.
                for start in 0..=rows.len() {
                    for end in start..=rows.len() {
                        let gathered = runs.gather(&parts(index), &rows, start..end).unwrap();
                        let expected = interleave(&parts(index), &rows[start..end]).unwrap();
                        assert_eq!(gathered.as_ref(), expected.as_ref(), "column {index}, rows {start}..{end}");
                    }
                }
            }
        }
        let runs = Runs::of(&[(0, 4), (0, 5), (1, 5), (1, 6), (0, 6)]);
        assert_eq!(runs.runs, [(0, 4, 6), (1, 5, 7), (0, 6, 7)]);
        assert_eq!(runs.within(1..4).collect::<Vec<_>>(), [(0, 5, 6), (1, 5, 7)]);
        assert_eq!(runs.within(3..5).collect::<Vec<_>>(), [(1, 6, 7), (0, 6, 7)]);
    }
}
