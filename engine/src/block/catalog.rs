//! The catalog of live blocks per tenant: kept in memory for queries and
//! persisted as `<tenant>/index.json`, so a query never LISTs the bucket.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use parquet::bloom_filter::Sbbf;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parking_lot::RwLock;

use super::meta::{BlockMeta, LiveBlock, TenantIndex};
use super::tags::TagSummary;
use crate::error::Result;
use crate::storage::Layout;

/// Live blocks of every tenant.
#[derive(Debug)]
pub struct BlockCatalog {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    tenants: RwLock<HashMap<String, Arc<Vec<Arc<LiveBlock>>>>>,
    /// Serialises index.json rewrites.
    write_lock: tokio::sync::Mutex<()>,
}

impl BlockCatalog {
    /// Loads the catalog. One LIST at start finds every `meta.json` (a block
    /// exists once its meta does), which also repairs an index that missed a
    /// block because the process died between writing the meta and the index
    /// (unless `read_only`: then nothing is written).
    pub async fn load(store: Arc<dyn ObjectStore>, layout: Layout, read_only: bool) -> Result<Self> {
        let mut found: HashMap<String, Vec<Arc<LiveBlock>>> = HashMap::new();
        let objects: Vec<_> = store.list(layout.root().as_ref()).try_collect().await?;
        let metas = objects.into_iter().filter(|o| o.location.filename() == Some("meta.json"));
        let loaded: Vec<Option<LiveBlock>> = futures::stream::iter(metas)
            .map(|object| load_block(&store, &layout, object.location))
            .buffer_unordered(16)
            .try_collect()
            .await?;
        for block in loaded.into_iter().flatten() {
            found.entry(block.meta.tenant.clone()).or_default().push(Arc::new(block));
        }
        let catalog = Self {
            store,
            layout,
            tenants: RwLock::new(HashMap::new()),
            write_lock: tokio::sync::Mutex::new(()),
        };
        for (tenant, mut blocks) in found {
            blocks.sort_by_key(|b| (b.meta.min_start_unix_nano, b.meta.block_id));
            catalog.tenants.write().insert(tenant.clone(), Arc::new(blocks));
            if !read_only {
                catalog.persist(&tenant).await?;
            }
        }
        Ok(catalog)
    }

    /// The live blocks of `tenant` (a snapshot).
    pub fn blocks(&self, tenant: &str) -> Arc<Vec<Arc<LiveBlock>>> {
        self.tenants.read().get(tenant).cloned().unwrap_or_default()
    }

    /// Tenants that have blocks.
    pub fn tenants(&self) -> Vec<String> {
        self.tenants.read().keys().cloned().collect()
    }

    /// Makes a block whose data and meta are written visible to queries.
    /// The index is rewritten by [`persist_index`](Self::persist_index).
    pub fn insert(&self, block: LiveBlock) {
        let tenant = block.meta.tenant.clone();
        let mut tenants = self.tenants.write();
        let mut blocks = tenants.get(&tenant).map(|b| b.as_ref().clone()).unwrap_or_default();
        blocks.push(Arc::new(block));
        tenants.insert(tenant, Arc::new(blocks));
    }

    /// Rewrites `<tenant>/index.json` from the blocks in memory.
    pub async fn persist_index(&self, tenant: &str) -> Result<()> {
        self.persist(tenant).await
    }

    async fn persist(&self, tenant: &str) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let index = TenantIndex { blocks: self.blocks(tenant).iter().map(|b| b.meta.clone()).collect() };
        let json = serde_json::to_vec(&index)?;
        self.store.put(&self.layout.index(tenant), PutPayload::from(json)).await?;
        Ok(())
    }
}

/// Reads a block's meta and trace filter; `None` (with a warning) when the
/// meta is unreadable, so one bad object does not stop the server.
async fn load_block(store: &Arc<dyn ObjectStore>, layout: &Layout, meta_path: Path) -> Result<Option<LiveBlock>> {
    let bytes = store.get(&meta_path).await?.bytes().await?;
    let meta = match serde_json::from_slice::<BlockMeta>(&bytes) {
        Ok(meta) => meta,
        Err(e) => {
            tracing::warn!(path = %meta_path, error = %e, "skipping unreadable block meta");
            return Ok(None);
        }
    };
    let trace_filter = optional_object(store, &layout.bloom(&meta.tenant, meta.block_id)).await?.map(|b| Sbbf::new(&b));
    let tags = match optional_object(store, &layout.tags(&meta.tenant, meta.block_id)).await? {
        Some(bytes) => match serde_json::from_slice::<TagSummary>(&bytes) {
            Ok(tags) => Some(Arc::new(tags)),
            Err(e) => {
                tracing::warn!(block = %meta.block_id, error = %e, "unreadable tags.json; tag lookups will skip the block");
                None
            }
        },
        None => None,
    };
    Ok(Some(LiveBlock { meta, trace_filter, tags }))
}

/// The bytes of an object, or `None` when it does not exist.
async fn optional_object(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<Option<bytes::Bytes>> {
    match store.get(path).await {
        Ok(result) => Ok(Some(result.bytes().await?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
