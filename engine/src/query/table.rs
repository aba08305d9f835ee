//! `spans`: the DataFusion table of one tenant, the union of the unflushed
//! heads (Arrow in memory) and the live Parquet blocks. Blocks are pruned by
//! their meta first (trace-id range, time range) and their tag summary
//! (attribute equalities, see [`super::tag_pruning`]); DataFusion then prunes
//! row groups and pages by statistics and bloom filters, since the filters
//! are pushed into the Parquet scan. A bound on span start times that every
//! span the table reads meets (a metrics query's range over the blocks of
//! that range) is exact: DataFusion drops it, and it is evaluated nowhere.

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::{Int64Type, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;

use super::indexed_reader::IndexedReaderFactory;
use super::tag_pruning::{TagEquality, tag_equalities};
use crate::block::LiveBlock;
use crate::schema::{col, column_index, span_schema};
use crate::storage::Layout;

/// Where the `spans` table of one tenant gets its data.
pub trait SpanSource: Send + Sync + std::fmt::Debug {
    /// Batches not yet in blocks (head and sealed heads).
    fn unflushed(&self, tenant: &str) -> Vec<arrow::record_batch::RecordBatch>;
    /// Live blocks.
    fn blocks(&self, tenant: &str) -> Arc<Vec<Arc<LiveBlock>>>;
    /// Both at once, consistent with each other (no span in both or neither).
    fn snapshot(&self, tenant: &str) -> (Vec<arrow::record_batch::RecordBatch>, Arc<Vec<Arc<LiveBlock>>>) {
        (self.unflushed(tenant), self.blocks(tenant))
    }
}

/// What a table reads: unflushed batches and live blocks, as of one moment.
pub(crate) type Snapshot = (Vec<arrow::record_batch::RecordBatch>, Arc<Vec<Arc<LiveBlock>>>);

/// The `spans` table of one tenant.
#[derive(Debug)]
pub struct SpansTable {
    tenant: String,
    source: Arc<dyn SpanSource>,
    store_url: ObjectStoreUrl,
    layout: Layout,
    /// Only blocks overlapping this range of unix nanos are read.
    block_time_range: Option<(i64, i64)>,
    /// False: only the unflushed spans (a fast first answer for streaming).
    include_blocks: bool,
    /// Read by every scan instead of the source's data of the moment.
    pinned: Option<Snapshot>,
}

impl SpansTable {
    /// The table of `tenant`; blocks are read through the object store
    /// registered under `store_url`.
    pub fn new(tenant: &str, source: Arc<dyn SpanSource>, store_url: ObjectStoreUrl, layout: Layout) -> Self {
        Self { tenant: tenant.to_owned(), source, store_url, layout, block_time_range: None, include_blocks: true, pinned: None }
    }

    /// Restricts the blocks read to those overlapping `[start, end]` (unix nanos).
    pub fn with_block_time_range(mut self, start: i64, end: i64) -> Self {
        self.block_time_range = Some((start, end));
        self
    }

    /// Reads only the unflushed spans, no blocks.
    pub fn without_blocks(mut self) -> Self {
        self.include_blocks = false;
        self
    }

    /// Makes every scan read the data of this moment: the scans of one query
    /// then agree with each other and with what was planned from it.
    pub(crate) fn pinned(mut self) -> Self {
        self.pinned = Some(self.source.snapshot(&self.tenant));
        self
    }

    /// The pinned data, or the source's data of the moment.
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.pinned.clone().unwrap_or_else(|| self.source.snapshot(&self.tenant))
    }

    /// Whether the table reads `block` at all (before any filter).
    pub(crate) fn reads_block(&self, block: &LiveBlock) -> bool {
        self.include_blocks && self.block_time_range.is_none_or(|(start, end)| block.meta.overlaps(start, end))
    }

    /// The earliest and latest start of every span the table reads: the
    /// read blocks' metas and the unflushed spans' starts. `None` when the
    /// table is not pinned (a scan could then read other data than this
    /// answer describes), reads nothing, or a block predates
    /// `max_start_unix_nano`.
    fn start_bounds(&self) -> Option<(i64, i64)> {
        let (unflushed, blocks) = self.pinned.as_ref()?;
        let from_blocks = blocks
            .iter()
            .filter(|block| self.reads_block(block))
            .map(|block| Some((block.meta.min_start_unix_nano, block.meta.max_start_unix_nano?)));
        let from_unflushed = unflushed.iter().filter(|batch| batch.num_rows() > 0).map(|batch| {
            let starts = batch.column(column_index(col::START_UNIX_NANO)).as_primitive_opt::<Int64Type>()?;
            Some((arrow::compute::min(starts)?, arrow::compute::max(starts)?))
        });
        let mut bounds: Option<(i64, i64)> = None;
        for part in from_blocks.chain(from_unflushed) {
            let (low, high) = part?;
            bounds = Some(bounds.map_or((low, high), |(l, h)| (l.min(low), h.max(high))));
        }
        bounds
    }

    fn block_may_match(&self, block: &LiveBlock, trace_ids: &[Vec<Vec<u8>>], equalities: &[TagEquality]) -> bool {
        self.reads_block(block)
            && trace_ids.iter().all(|any_of| any_of.iter().any(|id| block.may_contain_trace(id)))
            && block.tags.as_ref().is_none_or(|tags| equalities.iter().all(|e| e.may_match(tags)))
    }
}

/// Trace ids the filters pin with `trace_id = <literal>` or
/// `trace_id IN (<literals>)`: each inner list is one filter (any of its ids).
fn pinned_trace_ids(filters: &[Expr]) -> Vec<Vec<Vec<u8>>> {
    let literal = |e: &Expr| match e {
        Expr::Literal(ScalarValue::FixedSizeBinary(16, Some(v)), _) => Some(v.clone()),
        _ => None,
    };
    let in_lists = filters.iter().filter_map(|f| match f {
        Expr::InList(list) if !list.negated && matches!(list.expr.as_ref(), Expr::Column(c) if c.name == col::TRACE_ID) => {
            list.list.iter().map(literal).collect::<Option<Vec<_>>>()
        }
        _ => None,
    });
    let equalities = filters
        .iter()
        .filter_map(|f| match f {
            Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => match (left.as_ref(), right.as_ref()) {
                (Expr::Column(c), Expr::Literal(ScalarValue::FixedSizeBinary(16, Some(v)), _))
                | (Expr::Literal(ScalarValue::FixedSizeBinary(16, Some(v)), _), Expr::Column(c))
                    if c.name == col::TRACE_ID =>
                {
                    Some(v.clone())
                }
                _ => None,
            },
            _ => None,
        })
        .map(|id| vec![id]);
    equalities.chain(in_lists).collect()
}

/// `start_unix_nano <op> <literal>`, the span-start bound of a metrics range.
#[derive(Debug, Clone, Copy, PartialEq)]
struct StartBound {
    op: Operator,
    value: i64,
}

impl StartBound {
    /// Whether every start in `[low, high]` meets the bound.
    fn holds_for(self, (low, high): (i64, i64)) -> bool {
        match self.op {
            Operator::GtEq => low >= self.value,
            Operator::Gt => low > self.value,
            Operator::LtEq => high <= self.value,
            Operator::Lt => high < self.value,
            _ => false,
        }
    }
}

fn start_bound(filter: &Expr) -> Option<StartBound> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else { return None };
    match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(ScalarValue::Int64(Some(value)), _)) if c.name == col::START_UNIX_NANO => {
            Some(StartBound { op: *op, value: *value })
        }
        _ => None,
    }
}

#[async_trait]
impl TableProvider for SpansTable {
    fn schema(&self) -> SchemaRef {
        span_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // Pruning is approximate: DataFusion keeps its own filter above the
        // scan. A start-time bound that every span read meets is exact (the
        // scan needs nothing to apply it), so DataFusion drops it: a metrics
        // query otherwise decodes every span's start to test its range (on
        // `small`, 20.5 → 12 server CPU-ms).
        let bounds = std::cell::OnceCell::new();
        Ok(filters
            .iter()
            .map(|filter| match start_bound(filter) {
                Some(bound) if bounds.get_or_init(|| self.start_bounds()).is_some_and(|b| bound.holds_for(b)) => {
                    TableProviderFilterPushDown::Exact
                }
                _ => TableProviderFilterPushDown::Inexact,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let schema = span_schema();
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();

        let (head, blocks) = self.snapshot();
        if !head.is_empty() {
            inputs.push(MemorySourceConfig::try_new_exec(&[head], schema.clone(), projection.cloned())?);
        }

        let trace_ids = pinned_trace_ids(filters);
        let equalities = tag_equalities(filters);
        let files: Vec<PartitionedFile> = blocks
            .iter()
            .filter(|b| self.block_may_match(b, &trace_ids, &equalities))
            .map(|b| PartitionedFile::new(self.layout.data(&self.tenant, b.meta.block_id).to_string(), b.meta.size_bytes))
            .collect();
        if !files.is_empty() {
            let partitions = state.config().target_partitions().max(1);
            let per_group = files.len().div_ceil(partitions);
            let groups: Vec<FileGroup> = files.chunks(per_group).map(|c| FileGroup::new(c.to_vec())).collect();
            // Footers and page indexes come from the runtime's metadata
            // cache (a plain ParquetSource decodes them again for every
            // scan: 12% of a metrics query's CPU on one block of 1M spans).
            let runtime = state.runtime_env();
            let readers = IndexedReaderFactory(CachedParquetFileReaderFactory::new(
                runtime.object_store(&self.store_url)?,
                runtime.cache_manager.get_file_metadata_cache(),
            ));
            let source = ParquetSource::new(schema.clone())
                .with_table_parquet_options(state.table_options().parquet.clone())
                .with_parquet_file_reader_factory(Arc::new(readers));
            let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
                .with_file_groups(groups)
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
            inputs.push(DataSourceExec::from_data_source(config));
        }

        match inputs.len() {
            0 => Ok(Arc::new(EmptyExec::new(datafusion::common::project_schema(&schema, projection)?))),
            _ => UnionExec::try_new(inputs),
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::{col as column, lit};
    use object_store::ObjectStore;
    use object_store::memory::InMemory;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;
    use crate::block::{prepare_block, write_block};
    use crate::config::BlockConfig;
    use crate::convert::resource_spans_to_batch;

    /// Fixed data, as the ingester and catalog would give it.
    #[derive(Debug)]
    struct Fixed(Vec<arrow::record_batch::RecordBatch>, Arc<Vec<Arc<LiveBlock>>>);

    impl SpanSource for Fixed {
        fn unflushed(&self, _: &str) -> Vec<arrow::record_batch::RecordBatch> {
            self.0.clone()
        }
        fn blocks(&self, _: &str) -> Arc<Vec<Arc<LiveBlock>>> {
            self.1.clone()
        }
    }

    /// Spans starting at `starts` (unix nanos), each ending before it starts
    /// (OTLP allows it), in one batch.
    fn spans(starts: &[u64]) -> arrow::record_batch::RecordBatch {
        let spans = starts
            .iter()
            .enumerate()
            .map(|(i, &start)| Span {
                trace_id: vec![i as u8 + 1; 16],
                span_id: vec![i as u8 + 1; 8],
                start_time_unix_nano: start,
                end_time_unix_nano: start - 5,
                ..Default::default()
            })
            .collect();
        let rs = ResourceSpans { scope_spans: vec![ScopeSpans { spans, ..Default::default() }], ..Default::default() };
        resource_spans_to_batch(&[rs]).unwrap().0
    }

    fn table(unflushed: Vec<arrow::record_batch::RecordBatch>, blocks: Vec<Arc<LiveBlock>>) -> SpansTable {
        let source = Arc::new(Fixed(unflushed, Arc::new(blocks)));
        SpansTable::new("t", source, ObjectStoreUrl::parse("memory://").unwrap(), Layout::new(""))
    }

    fn pushdown(table: &SpansTable, filter: Expr) -> TableProviderFilterPushDown {
        table.supports_filters_pushdown(&[&filter]).unwrap().remove(0)
    }

    #[tokio::test]
    async fn start_bounds_every_span_meets_are_exact_and_others_inexact() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let block = write_block(&store, &Layout::new(""), &BlockConfig::default(), "t", &prepare_block(&[spans(&[100, 200])]).unwrap(), None, Vec::new())
            .await
            .unwrap();
        assert_eq!((block.meta.min_start_unix_nano, block.meta.max_start_unix_nano), (100, Some(200)));
        assert_eq!(block.meta.max_end_unix_nano, 195, "ends before the latest start");
        let pinned = table(vec![spans(&[150, 250])], vec![Arc::new(block.clone())]).pinned();
        let start = || column(col::START_UNIX_NANO);
        for (filter, exact) in [
            (start().gt_eq(lit(100i64)), true),
            (start().gt_eq(lit(101i64)), false),
            (start().gt(lit(99i64)), true),
            (start().lt(lit(251i64)), true),
            (start().lt(lit(250i64)), false),
            (start().lt_eq(lit(250i64)), true),
            (column(col::DURATION_NANO).gt_eq(lit(0i64)), false),
            (start().eq(lit(100i64)), false),
        ] {
            let expected = if exact { TableProviderFilterPushDown::Exact } else { TableProviderFilterPushDown::Inexact };
            assert_eq!(pushdown(&pinned, filter.clone()), expected, "{filter}");
        }
        // Unpinned: a scan may read data that arrived after planning.
        assert_eq!(pushdown(&table(Vec::new(), vec![Arc::new(block.clone())]), start().gt_eq(lit(0i64))), TableProviderFilterPushDown::Inexact);
        // A block written before max_start_unix_nano existed says nothing.
        let mut old = block.clone();
        old.meta.max_start_unix_nano = None;
        assert_eq!(pushdown(&table(Vec::new(), vec![Arc::new(old)]).pinned(), start().lt(lit(1000i64))), TableProviderFilterPushDown::Inexact);
        // Blocks the table does not read do not count.
        let later = table(vec![spans(&[1500])], vec![Arc::new(block)]).with_block_time_range(1000, 2000).pinned();
        assert_eq!(pushdown(&later, start().gt_eq(lit(1000i64))), TableProviderFilterPushDown::Exact, "the block (100–200) is not read");
        assert_eq!(pushdown(&later, start().gt_eq(lit(1501i64))), TableProviderFilterPushDown::Inexact);
    }
}
