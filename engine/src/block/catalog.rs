//! The catalog of live blocks per tenant: kept in memory for queries and
//! persisted as `<tenant>/index.json`, so a query never LISTs the bucket.

use std::collections::HashMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parking_lot::RwLock;

use super::meta::{BlockMeta, TenantIndex};
use crate::error::Result;
use crate::storage::Layout;

/// Live blocks of every tenant.
#[derive(Debug)]
pub struct BlockCatalog {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    tenants: RwLock<HashMap<String, Arc<Vec<Arc<BlockMeta>>>>>,
    /// Serialises index.json rewrites.
    write_lock: tokio::sync::Mutex<()>,
}

impl BlockCatalog {
    /// Loads the catalog. One LIST at start finds every `meta.json` (a block
    /// exists once its meta does), which also repairs an index that missed a
    /// block because the process died between writing the meta and the index.
    pub async fn load(store: Arc<dyn ObjectStore>, layout: Layout) -> Result<Self> {
        let mut found: HashMap<String, Vec<Arc<BlockMeta>>> = HashMap::new();
        let objects: Vec<_> = store.list(layout.root().as_ref()).try_collect().await?;
        for object in objects {
            if object.location.filename() != Some("meta.json") {
                continue;
            }
            let bytes = store.get(&object.location).await?.bytes().await?;
            match serde_json::from_slice::<BlockMeta>(&bytes) {
                Ok(meta) => found.entry(meta.tenant.clone()).or_default().push(Arc::new(meta)),
                Err(e) => tracing::warn!(path = %object.location, error = %e, "skipping unreadable block meta"),
            }
        }
        let catalog = Self {
            store,
            layout,
            tenants: RwLock::new(HashMap::new()),
            write_lock: tokio::sync::Mutex::new(()),
        };
        for (tenant, mut blocks) in found {
            blocks.sort_by_key(|b| (b.min_start_unix_nano, b.block_id));
            catalog.tenants.write().insert(tenant.clone(), Arc::new(blocks));
            catalog.persist(&tenant).await?;
        }
        Ok(catalog)
    }

    /// The live blocks of `tenant` (a snapshot).
    pub fn blocks(&self, tenant: &str) -> Arc<Vec<Arc<BlockMeta>>> {
        self.tenants.read().get(tenant).cloned().unwrap_or_default()
    }

    /// Tenants that have blocks.
    pub fn tenants(&self) -> Vec<String> {
        self.tenants.read().keys().cloned().collect()
    }

    /// Adds a block whose data and meta are written, and rewrites the index.
    pub async fn add(&self, meta: BlockMeta) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let tenant = meta.tenant.clone();
        {
            let mut tenants = self.tenants.write();
            let mut blocks = tenants.get(&tenant).map(|b| b.as_ref().clone()).unwrap_or_default();
            blocks.push(Arc::new(meta));
            tenants.insert(tenant.clone(), Arc::new(blocks));
        }
        self.persist(&tenant).await
    }

    async fn persist(&self, tenant: &str) -> Result<()> {
        let index = TenantIndex { blocks: self.blocks(tenant).iter().map(|b| b.as_ref().clone()).collect() };
        let json = serde_json::to_vec(&index)?;
        self.store.put(&self.layout.index(tenant), PutPayload::from(json)).await?;
        Ok(())
    }
}
