//! Wiring of one engine instance: object store, block catalog, ingester
//! (with WAL replay) and query engine, from configuration.

use std::sync::Arc;

use object_store::ObjectStore;

use crate::block::BlockCatalog;
use crate::config::{IngesterConfig, StorageConfig};
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
}

impl Engine {
    /// Opens storage, loads the block catalog and replays the WAL.
    pub async fn open(storage: &StorageConfig, ingester: &IngesterConfig, metrics: EngineMetrics) -> Result<Self> {
        let trace = &storage.trace;
        let store = build_object_store(trace).await?;
        let layout = match trace.backend {
            crate::config::Backend::S3 => Layout::new(&trace.s3.prefix),
            crate::config::Backend::Local => Layout::new(""),
        };
        let catalog = Arc::new(BlockCatalog::load(store.clone(), layout.clone()).await?);
        let ingester = Arc::new(Ingester::open(
            ingester.clone(),
            trace,
            store.clone(),
            layout.clone(),
            catalog.clone(),
            metrics,
        )?);
        let source = Arc::new(LiveSpans { ingester: ingester.clone(), catalog: catalog.clone() });
        let query = Arc::new(QueryEngine::new(source, store.clone(), layout)?);
        Ok(Self { store, catalog, ingester, query })
    }
}
