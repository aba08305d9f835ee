//! Trace lookup by id straight from Parquet, without a DataFusion plan.
//!
//! A lookup touches a handful of rows in at most a few blocks, so planning a
//! query costs more than the read itself. Rows are sorted by trace id inside
//! a block, so the footer's row-group statistics and the page index of
//! `trace_id` narrow the read to the one or two pages that can hold the
//! trace; those `trace_id` values give the exact rows, and arrow-rs then
//! reads only the pages of the other columns that overlap them (offset
//! index), a few column groups at once. Footers and page indexes are kept in DataFusion's metadata cache
//! (bounded, shared with the scans of TraceQL and SQL queries).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, FixedSizeBinaryArray, RecordBatch, Scalar};
use arrow::compute::{concat_batches, prep_null_mask_filter};
use arrow::compute::kernels::cmp::eq;
use arrow::datatypes::Schema;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use futures::TryStreamExt;
use object_store::ObjectStore;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};

use crate::block::{BlockReader, LiveBlock};
use crate::error::{Error, Result};
use crate::schema::{TRACE_DERIVED_COLUMNS, adapt_to_span_schema, col, column_index};
use crate::storage::Layout;

/// Rows decoded per batch: a trace rarely has more spans.
const BATCH_ROWS: usize = 8192;

/// The rows of `trace_id` among unflushed batches.
pub(crate) fn head_rows(batches: &[RecordBatch], trace_id: &[u8; 16]) -> Result<Vec<RecordBatch>> {
    let id = trace_id_scalar(trace_id)?;
    batches
        .iter()
        .map(|batch| {
            let keep = eq(batch.column(column_index(col::TRACE_ID)), &id)?;
            Ok(arrow::compute::filter_record_batch(batch, &keep)?)
        })
        .filter(|batch| !matches!(batch, Ok(b) if b.num_rows() == 0))
        .collect()
}

/// The rows of `trace_id` in one block (none when its statistics rule the
/// trace out). The `trace_id` pages that may hold the trace are read first,
/// to find its exact rows; then the other span columns of those rows are
/// read in up to [`lookup_parts`] groups at once, each on a task of its own:
/// a lookup's time goes into decoding a dictionary and a page of each of
/// some hundred leaf columns, work that splits by column. The trace-derived
/// columns are not read (they come back null): a lookup answers OTLP spans,
/// and every column read costs a page decompressed.
pub(crate) async fn block_rows(files: &BlockFiles, block: &LiveBlock, trace_id: &[u8; 16]) -> Result<Vec<RecordBatch>> {
    block_rows_in_parts(files, block, trace_id, lookup_parts()).await
}

/// [`block_rows`], reading the span columns in `parts` groups at once.
async fn block_rows_in_parts(files: &BlockFiles, block: &LiveBlock, trace_id: &[u8; 16], parts: usize) -> Result<Vec<RecordBatch>> {
    let mut reader = BlockReader::new(files.store.clone(), &files.layout, &block.meta, Some(files.metadata_cache.clone()));
    // The whole page index: the column index prunes trace_id pages, the
    // offset index of every column lets the reader skip the others' pages.
    // The file's own schema: blocks of an older schema version are adapted below.
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let metadata = ArrowReaderMetadata::load_async(&mut reader, options).await?;
    let Some((row_groups, pages)) = trace_pages(metadata.metadata(), metadata.schema(), trace_id)? else {
        return Ok(Vec::new());
    };
    let Some(rows) = trace_rows(&reader, &metadata, &row_groups, pages, trace_id)
        .await
        .map_err(|e| Error::internal(format!("trace lookup in block {}: {e}", block.meta.block_id)))?
    else {
        return Ok(Vec::new());
    };
    // A JoinSet: when the lookup fails or its caller goes away, dropping
    // the set stops the other reads. Their order does not matter: the
    // columns are put in schema order by name below.
    let mut reads = tokio::task::JoinSet::new();
    for columns in column_parts(&metadata, parts) {
        reads.spawn(read_columns(reader.clone(), metadata.clone(), row_groups.clone(), rows.clone(), columns));
    }
    let in_block = |e: String| Error::internal(format!("trace lookup in block {}: {e}", block.meta.block_id));
    let mut parts = Vec::new();
    while let Some(read) = reads.join_next().await {
        parts.push(read.map_err(|e| in_block(e.to_string()))??);
    }
    // The trace_id column is the id on every row, as the first read found.
    let trace_ids = FixedSizeBinaryArray::try_from_iter(std::iter::repeat_n(trace_id, rows.row_count()))?;
    let mut fields = vec![Arc::new(metadata.schema().field_with_name(col::TRACE_ID)?.clone())];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(trace_ids)];
    for part in &parts {
        fields.extend(part.schema().fields().iter().cloned());
        columns.extend(part.columns().iter().cloned());
    }
    let rows = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
    let rows = adapt_to_span_schema(&rows).map_err(in_block)?;
    Ok(vec![rows])
}

/// Most column groups a lookup of one block reads at once.
const MAX_LOOKUP_PARTS: usize = 4;

/// Column groups a lookup reads at once: one per core, at most
/// [`MAX_LOOKUP_PARTS`].
fn lookup_parts() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get).min(MAX_LOOKUP_PARTS)
}

/// The exact rows of `trace_id` in `row_groups`, as a selection over them
/// (`None` when there are none). Only the `trace_id` pages that `pages`
/// selects are read.
async fn trace_rows(
    reader: &BlockReader,
    metadata: &ArrowReaderMetadata,
    row_groups: &[usize],
    pages: Option<RowSelection>,
    trace_id: &[u8; 16],
) -> Result<Option<RowSelection>> {
    let projection = ProjectionMask::roots(metadata.parquet_schema(), [metadata.schema().index_of(col::TRACE_ID)?]);
    let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader.clone(), metadata.clone())
        .with_batch_size(BATCH_ROWS)
        .with_projection(projection)
        .with_row_groups(row_groups.to_vec());
    if let Some(pages) = &pages {
        builder = builder.with_row_selection(pages.clone());
    }
    let id = trace_id_scalar(trace_id)?;
    let batches: Vec<RecordBatch> = builder.build()?.try_collect().await?;
    // A null trace_id (a foreign file could hold one) is no match.
    let matches = batches
        .iter()
        .map(|batch| {
            let matches = eq(batch.column(0), &id)?;
            Ok(if matches.null_count() > 0 { prep_null_mask_filter(&matches) } else { matches })
        })
        .collect::<Result<Vec<BooleanArray>>>()?;
    let read: usize = matches.iter().map(|m| m.len()).sum();
    if let Some(pages) = &pages
        && read != pages.row_count()
    {
        return Err(Error::internal(format!("read {read} trace_id values where the page index selects {}", pages.row_count())));
    }
    let matched = RowSelection::from_filters(&matches);
    if matched.row_count() == 0 {
        return Ok(None);
    }
    // `matched` counts only the rows `pages` selected.
    Ok(Some(match pages {
        Some(pages) => pages.and_then(&matched),
        None => matched,
    }))
}

/// The span columns other than `trace_id` (root indices) in `parts` groups
/// of about as many leaf columns each. A lookup's cost is mostly per leaf
/// column (a page reader, a codec context, a dictionary and a page to
/// decode), far more even than the leaves' sizes: on a 100k-span block,
/// balancing by leaves gave 3.7 ms per lookup on 2 cores, by uncompressed
/// chunk size 5.0 ms (the span attribute values alone made one group), by
/// compressed size or value count 3.9 ms.
fn column_parts(metadata: &ArrowReaderMetadata, parts: usize) -> Vec<Vec<usize>> {
    let schema = metadata.schema();
    let descriptor = metadata.parquet_schema();
    let mut leaves = vec![0usize; schema.fields().len()];
    for leaf in 0..descriptor.num_columns() {
        leaves[descriptor.get_column_root_idx(leaf)] += 1;
    }
    let mut columns: Vec<usize> = (0..schema.fields().len())
        .filter(|&i| {
            let name = schema.field(i).name().as_str();
            name != col::TRACE_ID && !TRACE_DERIVED_COLUMNS.contains(&name)
        })
        .collect();
    columns.sort_by_key(|&i| std::cmp::Reverse(leaves[i]));
    // Largest first, each into the smallest group so far.
    let mut groups: Vec<(usize, Vec<usize>)> = vec![(0, Vec::new()); parts.max(1)];
    for column in columns {
        let smallest = groups.iter_mut().min_by_key(|(total, _)| *total).expect("at least one group");
        smallest.0 += leaves[column];
        smallest.1.push(column);
    }
    groups.into_iter().map(|(_, columns)| columns).filter(|columns| !columns.is_empty()).collect()
}

/// `columns` (root indices) of `rows` in `row_groups`, as one batch.
async fn read_columns(
    reader: BlockReader,
    metadata: ArrowReaderMetadata,
    row_groups: Vec<usize>,
    rows: RowSelection,
    columns: Vec<usize>,
) -> Result<RecordBatch> {
    let projection = ProjectionMask::roots(metadata.parquet_schema(), columns);
    let stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata)
        .with_batch_size(BATCH_ROWS)
        .with_projection(projection)
        .with_row_groups(row_groups)
        .with_row_selection(rows)
        .build()?;
    let schema = stream.schema().clone();
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    Ok(concat_batches(&schema, &batches)?)
}

/// Where trace lookups read blocks: the store and the runtime's metadata cache.
#[derive(Debug, Clone)]
pub(crate) struct BlockFiles {
    pub store: Arc<dyn ObjectStore>,
    pub layout: Layout,
    pub metadata_cache: Arc<FileMetadataCache>,
}

fn trace_id_scalar(trace_id: &[u8; 16]) -> Result<Scalar<FixedSizeBinaryArray>> {
    Ok(Scalar::new(FixedSizeBinaryArray::try_from_iter(std::iter::once(trace_id))?))
}

/// Row groups and pages whose `trace_id` range holds `trace_id`: the row
/// groups to read and, when the file has a page index, the rows of the
/// matching pages inside them. `None` when no row group can hold the trace.
fn trace_pages(
    metadata: &ParquetMetaData,
    schema: &Schema,
    trace_id: &[u8; 16],
) -> Result<Option<(Vec<usize>, Option<RowSelection>)>> {
    let converter = StatisticsConverter::try_new(col::TRACE_ID, schema, metadata.file_metadata().schema_descr())?;
    let holds = |mins: &dyn Array, maxes: &dyn Array| -> Result<BooleanArray> {
        let (mins, maxes) = (fixed_size_binary(mins)?, fixed_size_binary(maxes)?);
        // A missing statistic cannot rule a row group or page out.
        Ok((0..mins.len())
            .map(|i| {
                Some((mins.is_null(i) || mins.value(i) <= trace_id.as_slice())
                    && (maxes.is_null(i) || trace_id.as_slice() <= maxes.value(i)))
            })
            .collect())
    };
    let row_groups = metadata.row_groups();
    let in_range = holds(&converter.row_group_mins(row_groups)?, &converter.row_group_maxes(row_groups)?)?;
    let chosen: Vec<usize> = (0..row_groups.len()).filter(|&i| in_range.value(i)).collect();
    if chosen.is_empty() {
        return Ok(None);
    }
    let (Some(column_index), Some(offset_index)) = (metadata.column_index(), metadata.offset_index()) else {
        return Ok(Some((chosen, None)));
    };
    let pages = holds(
        &converter.data_page_mins(column_index, offset_index, &chosen)?,
        &converter.data_page_maxes(column_index, offset_index, &chosen)?,
    )?;
    let Some(rows) = converter.data_page_row_counts(offset_index, row_groups, &chosen)? else {
        return Ok(Some((chosen, None)));
    };
    let selectors: Vec<RowSelector> = (0..pages.len())
        .map(|page| {
            let rows = rows.value(page) as usize;
            if pages.value(page) { RowSelector::select(rows) } else { RowSelector::skip(rows) }
        })
        .collect();
    Ok(Some((chosen, Some(RowSelection::from(selectors)))))
}

fn fixed_size_binary(array: &dyn Array) -> Result<&FixedSizeBinaryArray> {
    array.as_fixed_size_binary_opt().ok_or_else(|| Error::internal("trace_id statistics are not fixed-size binary"))
}

#[cfg(test)]
mod tests {
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};

    use super::*;
    use crate::block::{prepare_block, write_block};
    use crate::schema::span_schema;
    use crate::config::BlockConfig;
    use crate::convert::resource_spans_to_batch;

    /// Traces `1..=traces` (id: the number repeated) of three spans each, sorted.
    fn traces(traces: u8) -> RecordBatch {
        let spans = (1..=traces)
            .flat_map(|t| {
                (0..3u8).map(move |i| Span {
                    trace_id: vec![t; 16],
                    span_id: vec![t * 10 + i; 8],
                    name: format!("t{t}s{i}"),
                    start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(i),
                    end_time_unix_nano: 1_700_000_000_000_000_100,
                    ..Default::default()
                })
            })
            .collect();
        let rs = ResourceSpans { scope_spans: vec![ScopeSpans { spans, ..Default::default() }], ..Default::default() };
        prepare_block(&[resource_spans_to_batch(&[rs]).unwrap().0]).unwrap()
    }

    fn names(batches: &[RecordBatch]) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| b.column(column_index(col::NAME)).as_string::<i32>().iter().map(|n| n.unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn only_row_groups_and_pages_that_may_hold_the_trace_are_selected() {
        // Two row groups of nine rows, pages of three rows: one trace per page.
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(9))
            .set_data_page_row_count_limit(3)
            .set_write_batch_size(3)
            .set_statistics_enabled(EnabledStatistics::Page)
            .build();
        let mut file = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut file, span_schema(), Some(properties)).unwrap();
        writer.write(&traces(6)).unwrap();
        writer.close().unwrap();
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let metadata = ArrowReaderMetadata::load(&bytes::Bytes::from(file), options).unwrap();

        let (row_groups, selection) = trace_pages(metadata.metadata(), metadata.schema(), &[5; 16]).unwrap().unwrap();
        assert_eq!(row_groups, [1]);
        let selectors: Vec<RowSelector> = selection.unwrap().into();
        assert_eq!(selectors, [RowSelector::skip(3), RowSelector::select(3), RowSelector::skip(3)]);
        assert!(trace_pages(metadata.metadata(), metadata.schema(), &[9; 16]).unwrap().is_none(), "above every row group");
    }

    #[tokio::test]
    async fn block_rows_are_the_trace_and_the_footer_is_cached() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let layout = Layout::new("");
        let config = BlockConfig { row_group_size: 4, ..BlockConfig::default() };
        let block = write_block(&store, &layout, &config, "t", &traces(5), None, Vec::new()).await.unwrap();
        let metadata_cache = RuntimeEnvBuilder::new().build().unwrap().cache_manager.get_file_metadata_cache();
        let path = layout.data("t", block.meta.block_id);
        let files = BlockFiles { store, layout, metadata_cache: metadata_cache.clone() };

        let rows = block_rows(&files, &block, &[3; 16]).await.unwrap();
        assert_eq!(names(&rows), ["t3s0", "t3s1", "t3s2"], "a trace spread over two row groups");
        for parts in [1, 3] {
            let rows = block_rows_in_parts(&files, &block, &[3; 16], parts).await.unwrap();
            assert_eq!(names(&rows), ["t3s0", "t3s1", "t3s2"], "in {parts} parts");
        }
        let left = rows[0].column(column_index(col::NESTED_SET_LEFT));
        assert_eq!(left.null_count(), left.len(), "trace-derived columns are not read");
        assert!(metadata_cache.get(&path).is_some(), "footer cached for the next lookup");
        assert!(block_rows(&files, &block, &[4; 16]).await.unwrap().iter().all(|b| b.num_rows() == 3));
        assert!(names(&block_rows(&files, &block, &[7; 16]).await.unwrap()).is_empty());
    }

    #[tokio::test]
    async fn a_lookup_read_in_parts_returns_every_span_column_of_the_trace() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let layout = Layout::new("");
        let spans = traces(5);
        let block = write_block(&store, &layout, &BlockConfig::default(), "t", &spans, None, Vec::new()).await.unwrap();
        let metadata_cache = RuntimeEnvBuilder::new().build().unwrap().cache_manager.get_file_metadata_cache();
        let files = BlockFiles { store, layout, metadata_cache };
        let expected = spans.slice(6, 3);
        for parts in [1, 2, 3, 200] {
            let rows = block_rows_in_parts(&files, &block, &[3; 16], parts).await.unwrap();
            assert_eq!(rows.len(), 1);
            for (i, field) in span_schema().fields().iter().enumerate() {
                let column = rows[0].column(i);
                if TRACE_DERIVED_COLUMNS.contains(&field.name().as_str()) {
                    assert_eq!(column.null_count(), 3, "{} is not read", field.name());
                } else {
                    assert_eq!(column.as_ref(), expected.column(i).as_ref(), "{} with {parts} parts", field.name());
                }
            }
        }
    }

    #[test]
    fn column_parts_hold_each_span_column_once_with_leaves_balanced() {
        let mut file = Vec::new();
        ArrowWriter::try_new(&mut file, span_schema(), None).unwrap().close().unwrap();
        let metadata = ArrowReaderMetadata::load(&bytes::Bytes::from(file), ArrowReaderOptions::new()).unwrap();
        let descriptor = metadata.parquet_schema();
        let leaves = |root: usize| (0..descriptor.num_columns()).filter(|&leaf| descriptor.get_column_root_idx(leaf) == root).count();
        let span_columns: Vec<usize> = (0..span_schema().fields().len())
            .filter(|&i| {
                let name = span_schema().field(i).name().clone();
                name != col::TRACE_ID && !TRACE_DERIVED_COLUMNS.contains(&name.as_str())
            })
            .collect();
        let widest = span_columns.iter().map(|&c| leaves(c)).max().unwrap();
        for parts in [1, 2, 3] {
            let groups = column_parts(&metadata, parts);
            assert_eq!(groups.len(), parts);
            let mut all: Vec<usize> = groups.concat();
            all.sort();
            assert_eq!(all, span_columns, "every span column but trace_id, once");
            let sizes: Vec<usize> = groups.iter().map(|g| g.iter().map(|&c| leaves(c)).sum()).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= widest, "{sizes:?}");
        }
        assert_eq!(column_parts(&metadata, 1000).len(), span_columns.len(), "no empty groups");
    }

    #[tokio::test]
    async fn blocks_of_an_older_schema_are_adapted() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let layout = Layout::new("");
        let block = write_block(&store, &layout, &BlockConfig::default(), "t", &traces(3), None, Vec::new()).await.unwrap();
        // The same spans without a column that a later schema version added.
        let current = traces(3);
        let old = current.project(&(0..current.num_columns()).filter(|&i| i != column_index(col::CHILD_COUNT)).collect::<Vec<_>>()).unwrap();
        let mut file = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut file, old.schema(), None).unwrap();
        writer.write(&old).unwrap();
        writer.close().unwrap();
        let mut block = block;
        block.meta.size_bytes = file.len() as u64;
        store.put(&layout.data("t", block.meta.block_id), file.into()).await.unwrap();
        let metadata_cache = RuntimeEnvBuilder::new().build().unwrap().cache_manager.get_file_metadata_cache();
        let files = BlockFiles { store, layout, metadata_cache };

        let rows = block_rows(&files, &block, &[2; 16]).await.unwrap();
        assert_eq!(names(&rows), ["t2s0", "t2s1", "t2s2"]);
        assert_eq!(rows[0].schema(), span_schema());
        assert_eq!(rows[0].column(column_index(col::CHILD_COUNT)).null_count(), 3, "the missing column reads as nulls");
    }

    #[test]
    fn head_rows_keep_the_trace_and_drop_empty_batches() {
        let batch = traces(3);
        let rows = head_rows(&[batch.slice(0, 4), batch.slice(4, 5)], &[2; 16]).unwrap();
        assert_eq!(names(&rows), ["t2s0", "t2s1", "t2s2"]);
        assert!(head_rows(&[batch], &[9; 16]).unwrap().is_empty());
    }
}
