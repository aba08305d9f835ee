//! Wiring of one engine instance: object store, block catalog, ingester
//! (with WAL replay) and query engine, from configuration.

use std::sync::Arc;

use object_store::ObjectStore;

use std::collections::HashMap;

use arrow::record_batch::RecordBatch;

use crate::block::{BlockCatalog, LiveBlock, prepare_block};
use crate::compactor::Compactor;
use crate::config::{CompactionConfig, IngesterConfig, StorageConfig, TraceStorageConfig};
use crate::query::SpanSource;
use crate::wal;
use crate::error::Result;
use crate::ingester::Ingester;
use crate::metrics::EngineMetrics;
use crate::query::{LiveSpans, QueryEngine};
use crate::storage::{Layout, build_object_store};

/// A running engine: write through [`Engine::ingester`], read through [`Engine::query`].
#[derive(Debug, Clone)]
pub struct Engine {
    pub store: Arc<dyn ObjectStore>,
    pub catalog: Arc<BlockCatalog>,
    pub ingester: Arc<Ingester>,
    pub query: Arc<QueryEngine>,
    /// Merges and expires blocks; its loop is started by the server.
    pub compactor: Arc<Compactor>,
}

impl Engine {
    /// Opens storage, loads the block catalog and replays the WAL.
    pub async fn open(
        storage: &StorageConfig,
        ingester: &IngesterConfig,
        compaction: &CompactionConfig,
        metrics: EngineMetrics,
    ) -> Result<Self> {
        let trace = &storage.trace;
        let store = build_object_store(trace).await?;
        let layout = layout_of(trace);
        let catalog = Arc::new(BlockCatalog::load(store.clone(), layout.clone(), false).await?);
        let ingester = Arc::new(Ingester::open(
            ingester.clone(),
            trace,
            store.clone(),
            layout.clone(),
            catalog.clone(),
            metrics.clone(),
        )?);
        let compactor = Arc::new(Compactor::new(
            store.clone(),
            layout.clone(),
            catalog.clone(),
            trace.block.clone(),
            compaction.clone(),
            metrics,
            trace.wal.path.clone(),
        ));
        let source = Arc::new(LiveSpans { ingester: ingester.clone(), catalog: catalog.clone() });
        let query = Arc::new(QueryEngine::new(source, store.clone(), layout)?);
        Ok(Self { store, catalog, ingester, query, compactor })
    }
}

fn layout_of(trace: &TraceStorageConfig) -> Layout {
    match trace.backend {
        crate::config::Backend::S3 => Layout::new(&trace.s3.prefix),
        crate::config::Backend::Local => Layout::new(""),
    }
}

/// Spans as they stand on disk: the blocks plus whatever the WAL holds,
/// read without writing anything (for `spanlake sql` beside a running server).
#[derive(Debug)]
struct StoredSpans {
    catalog: BlockCatalog,
    unflushed: HashMap<String, Vec<RecordBatch>>,
}

impl SpanSource for StoredSpans {
    fn unflushed(&self, tenant: &str) -> Vec<RecordBatch> {
        self.unflushed.get(tenant).cloned().unwrap_or_default()
    }

    fn blocks(&self, tenant: &str) -> Arc<Vec<Arc<LiveBlock>>> {
        self.catalog.blocks(tenant)
    }
}

/// Opens the stored spans read-only and returns a query engine over them.
pub async fn open_read_only(storage: &StorageConfig) -> Result<QueryEngine> {
    let trace = &storage.trace;
    let store = build_object_store(trace).await?;
    let layout = layout_of(trace);
    let catalog = BlockCatalog::load(store.clone(), layout.clone(), true).await?;
    let mut by_tenant: HashMap<String, Vec<crate::convert::ReceivedSpans>> = HashMap::new();
    for segment in wal::replay(&trace.wal.path)? {
        by_tenant.entry(segment.tenant).or_default().extend(segment.batches);
    }
    let mut unflushed = HashMap::new();
    for (tenant, batches) in by_tenant {
        unflushed.insert(tenant, vec![prepare_block(&batches)?]);
    }
    QueryEngine::new(Arc::new(StoredSpans { catalog, unflushed }), store, layout)
}
