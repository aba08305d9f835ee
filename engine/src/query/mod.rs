//! Queries over a tenant's spans: the shared DataFusion runtime, per-query
//! sessions with the `spans` table registered, and trace lookup by id.

mod absent_attributes;
mod indexed_reader;
mod lookup;
mod table;
mod tag_pruning;
mod udf;

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, FixedSizeBinaryArray};
use arrow::compute::{concat_batches, filter_record_batch, sort_to_indices, take_record_batch};
use arrow::record_batch::RecordBatch;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use absent_attributes::AbsentAttributes;
use datafusion::execution::session_state::SessionStateBuilder;
use lookup::BlockFiles;
pub use table::{SpanSource, SpansTable};

use crate::block::{BlockCatalog, LiveBlock, TagSummary};
use crate::convert::batches_to_resource_spans;
use crate::error::{Error, Result};
use crate::ingester::Ingester;
use crate::schema::{self, column_index};
use crate::storage::Layout;

/// Memory all running queries may hold together before spilling or failing.
const QUERY_MEMORY_BYTES: usize = 2 * 1024 * 1024 * 1024;

/// Blocks a trace lookup reads concurrently.
const BLOCKS_READ_AT_ONCE: usize = 8;

/// URL under which the block store is registered in DataFusion.
const STORE_URL: &str = "spanlake://blocks/";

/// The live data of every tenant: the ingester's heads plus the catalog's blocks.
#[derive(Debug)]
pub struct LiveSpans {
    pub ingester: Arc<Ingester>,
    pub catalog: Arc<BlockCatalog>,
}

impl SpanSource for LiveSpans {
    fn unflushed(&self, tenant: &str) -> Vec<RecordBatch> {
        self.ingester.unflushed_batches(tenant)
    }

    fn blocks(&self, tenant: &str) -> Arc<Vec<Arc<LiveBlock>>> {
        self.catalog.blocks(tenant)
    }

    fn snapshot(&self, tenant: &str) -> (Vec<RecordBatch>, Arc<Vec<Arc<LiveBlock>>>) {
        self.ingester.snapshot(tenant)
    }
}

/// Runs queries for any tenant over one shared DataFusion runtime (object
/// store registry, Parquet metadata cache, memory pool).
#[derive(Debug)]
pub struct QueryEngine {
    source: Arc<dyn SpanSource>,
    runtime: Arc<RuntimeEnv>,
    /// Block files for trace lookups (the store and `runtime`'s metadata cache).
    files: BlockFiles,
    layout: Layout,
}

impl QueryEngine {
    /// A query engine over `source`, reading blocks from `store`.
    pub fn new(source: Arc<dyn SpanSource>, store: Arc<dyn ObjectStore>, layout: Layout) -> Result<Self> {
        // Queries share a bounded pool and spill to disk beyond it, so one
        // big query cannot starve ingest of memory.
        let runtime = RuntimeEnvBuilder::new().with_memory_limit(QUERY_MEMORY_BYTES, 1.0).build_arc()?;
        let url = url_for_store();
        runtime.register_object_store(&url, store.clone());
        let files =
            BlockFiles { store, layout: layout.clone(), metadata_cache: runtime.cache_manager.get_file_metadata_cache() };
        Ok(Self { source, runtime, files, layout })
    }

    fn session_config() -> SessionConfig {
        let mut config = SessionConfig::new().with_information_schema(true);
        let parquet = &mut config.options_mut().execution.parquet;
        // Keep the schema's Utf8 (not Utf8View) so head and blocks union cleanly.
        parquet.schema_force_view_types = false;
        // Evaluate filters while decoding (late materialisation) and use the
        // trace_id bloom filters and page index.
        parquet.pushdown_filters = true;
        parquet.reorder_filters = true;
        parquet.bloom_filter_on_read = true;
        parquet.enable_page_index = true;
        // DataFusion 55's leaf-projection pushdown trips over projections that
        // re-alias `spans.x AS x` next to map field access (an "ambiguous
        // field" schema error on TraceQL `by()` plans); off until fixed upstream.
        config.options_mut().optimizer.enable_leaf_expression_pushdown = false;
        // The table has no row statistics, so DataFusion would hash-repartition
        // both join inputs; building the (filtered) left side once and
        // streaming the right side through it avoids copying every probe row.
        config.options_mut().optimizer.repartition_joins = false;
        config
    }

    /// A new session for `tenant` with its `spans` table registered.
    pub fn session(&self, tenant: &str) -> Result<SessionContext> {
        self.session_with(SpansTable::new(tenant, self.source.clone(), store_url()?, self.layout.clone()))
    }

    fn session_with(&self, table: SpansTable) -> Result<SessionContext> {
        // One snapshot for the whole session: its scans and the rule that
        // reads its tag summaries see the same data.
        let table = table.pinned();
        let state = SessionStateBuilder::new()
            .with_config(Self::session_config())
            .with_runtime_env(self.runtime.clone())
            .with_default_features()
            .with_optimizer_rule(Arc::new(AbsentAttributes::new(&table)))
            .build();
        let ctx = SessionContext::new_with_state(state);
        ctx.register_table("spans", Arc::new(table))?;
        for function in udf::helper_functions() {
            ctx.register_udf(function);
        }
        Ok(ctx)
    }

    /// Tag names and values of `tenant`'s spans: the blocks' summaries
    /// (overlapping `[start, end]` unix nanos when given) plus the unflushed spans.
    pub fn tag_summary(&self, tenant: &str, range: Option<(i64, i64)>) -> Result<TagSummary> {
        let mut summary = TagSummary::default();
        let (unflushed, blocks) = self.source.snapshot(tenant);
        for block in blocks.iter() {
            if range.is_some_and(|(start, end)| !block.meta.overlaps(start, end)) {
                continue;
            }
            if let Some(tags) = &block.tags {
                summary.merge(tags);
            }
        }
        for batch in unflushed {
            summary.merge(&TagSummary::from_batch(&batch)?);
        }
        Ok(summary)
    }

    /// A session whose `spans` table reads only blocks overlapping `range`.
    pub fn session_in_range(&self, tenant: &str, range: Option<(i64, i64)>) -> Result<SessionContext> {
        let mut table = SpansTable::new(tenant, self.source.clone(), store_url()?, self.layout.clone());
        if let Some((start, end)) = range {
            table = table.with_block_time_range(start, end);
        }
        self.session_with(table)
    }

    /// A session whose `spans` table holds only the unflushed spans.
    pub fn session_unflushed(&self, tenant: &str) -> Result<SessionContext> {
        self.session_with(SpansTable::new(tenant, self.source.clone(), store_url()?, self.layout.clone()).without_blocks())
    }

    /// All spans of a trace, from the heads and every block that may hold it
    /// (optionally only blocks overlapping `[start, end]` unix nanos),
    /// de-duplicated by span id and ordered by start time. `None` when no
    /// span is found. Blocks are read directly (see [`lookup`]), not through
    /// a DataFusion plan: a lookup is too small to pay for planning.
    pub async fn trace_by_id(
        &self,
        tenant: &str,
        trace_id: [u8; 16],
        block_time_range: Option<(i64, i64)>,
    ) -> Result<Option<Vec<ResourceSpans>>> {
        let (unflushed, blocks) = self.source.snapshot(tenant);
        // Head rows first: a span both in a head and in a block keeps its head copy.
        let mut batches = lookup::head_rows(&unflushed, &trace_id)?;
        let candidates: Vec<Arc<LiveBlock>> = blocks
            .iter()
            .filter(|block| {
                block_time_range.is_none_or(|(start, end)| block.meta.overlaps(start, end))
                    && block.may_contain_trace(&trace_id)
            })
            .cloned()
            .collect();
        let from_blocks: Vec<Vec<RecordBatch>> = futures::stream::iter(candidates)
            .map(|block| async move { lookup::block_rows(&self.files, &block, &trace_id).await })
            .buffered(BLOCKS_READ_AT_ONCE)
            .try_collect()
            .await?;
        batches.extend(from_blocks.into_iter().flatten());
        if batches.iter().all(|b| b.num_rows() == 0) {
            return Ok(None);
        }
        let spans = dedupe_spans(&batches)?;
        let spans = concat_batches(&schema::span_schema(), &spans)?;
        let order = sort_to_indices(spans.column(column_index(schema::col::START_UNIX_NANO)), None, None)?;
        Ok(Some(batches_to_resource_spans(&[take_record_batch(&spans, &order)?])?))
    }
}

fn url_for_store() -> url::Url {
    url::Url::parse(STORE_URL).expect("static URL parses")
}

fn store_url() -> Result<ObjectStoreUrl> {
    Ok(ObjectStoreUrl::parse(STORE_URL)?)
}

/// Keeps the first row of each span id (a span can be both in a sealed head
/// and in a block for a moment, or in two blocks after a WAL replay).
fn dedupe_spans(batches: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    let mut seen = HashSet::new();
    batches
        .iter()
        .map(|batch| {
            let ids = batch
                .column(column_index(schema::col::SPAN_ID))
                .as_any()
                .downcast_ref::<FixedSizeBinaryArray>()
                .ok_or_else(|| Error::internal("span_id is not fixed-size binary"))?;
            let keep: BooleanArray = (0..ids.len()).map(|i| Some(seen.insert(ids.value(i).to_vec()))).collect();
            Ok(filter_record_batch(batch, &keep)?)
        })
        .collect()
}
