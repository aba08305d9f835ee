//! The catalog of live blocks per tenant: kept in memory for queries and
//! persisted as `<tenant>/index.json`, so a query never LISTs the bucket.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use parquet::bloom_filter::Sbbf;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parking_lot::RwLock;

use uuid::Uuid;

use super::meta::{BlockMeta, CompactedMeta, LiveBlock, TenantIndex};
use super::writer::unix_seconds;
use super::tags::TagSummary;
use crate::error::{Error, Result};
use crate::storage::Layout;

/// Live blocks of every tenant, and the compacted ones awaiting deletion.
#[derive(Debug)]
pub struct BlockCatalog {
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    tenants: RwLock<HashMap<String, Arc<Vec<Arc<LiveBlock>>>>>,
    /// Blocks no longer live (merged into another, or expired) whose
    /// objects are not deleted yet, per tenant.
    compacted: RwLock<HashMap<String, Vec<CompactedMeta>>>,
    /// Serialises index.json rewrites.
    write_lock: tokio::sync::Mutex<()>,
}

impl BlockCatalog {
    /// Loads the catalog. One LIST at start finds every `meta.json` (a block
    /// exists once its meta does), which also repairs an index that missed a
    /// block because the process died between writing the meta and the index.
    /// A block is live unless it has a `meta.compacted.json` (readable or
    /// not) or another block names it in `compacted_from`. A block dead
    /// without a readable marker (the process died between writing a
    /// compacted block and marking its inputs, or the marker is corrupt) is
    /// marked now, as compacted at this load: its objects are deleted
    /// `compacted_block_retention` from now at the earliest. Nothing is
    /// written when `read_only`.
    pub async fn load(store: Arc<dyn ObjectStore>, layout: Layout, read_only: bool) -> Result<Self> {
        let objects: Vec<_> = store.list(layout.root().as_ref()).try_collect().await?;
        let named = |name: &'static str| objects.iter().filter(move |o| o.location.filename() == Some(name)).map(|o| o.location.clone());
        let metas: Vec<Option<LiveBlock>> = futures::stream::iter(named("meta.json"))
            .map(|path| load_block(&store, &layout, path))
            .buffer_unordered(16)
            .try_collect()
            .await?;
        let markers: Vec<Option<Marker>> = futures::stream::iter(named("meta.compacted.json"))
            .map(|path| load_compacted(&store, &layout, path))
            .buffer_unordered(16)
            .try_collect()
            .await?;
        let (mut compacted, mut unreadable) = (Vec::new(), HashSet::new());
        for marker in markers.into_iter().flatten() {
            match marker {
                Marker::Read(c) => compacted.push(c),
                Marker::Unreadable(block_id) => {
                    unreadable.insert(block_id);
                }
            }
        }
        let metas: Vec<LiveBlock> = metas.into_iter().flatten().collect();
        let dead: HashSet<Uuid> = compacted
            .iter()
            .map(|c| &c.meta)
            .chain(metas.iter().map(|b| &b.meta))
            .flat_map(|meta| meta.compacted_from.iter().copied())
            .chain(compacted.iter().map(|c| c.meta.block_id))
            .chain(unreadable)
            .collect();
        let was_marked: HashSet<Uuid> = compacted.iter().map(|c| c.meta.block_id).collect();
        let mut found: HashMap<String, Vec<Arc<LiveBlock>>> = HashMap::new();
        for block in metas {
            if !dead.contains(&block.meta.block_id) {
                found.entry(block.meta.tenant.clone()).or_default().push(Arc::new(block));
            } else if !was_marked.contains(&block.meta.block_id) {
                tracing::info!(block = %block.meta.block_id, "block is compacted but has no readable marker; marking it");
                compacted.push(CompactedMeta { meta: block.meta, compacted_unix_seconds: unix_seconds() });
                if !read_only {
                    mark_compacted(&store, &layout, compacted.last().expect("just pushed")).await?;
                }
            }
        }
        let catalog = Self {
            store,
            layout,
            tenants: RwLock::new(HashMap::new()),
            compacted: RwLock::new(HashMap::new()),
            write_lock: tokio::sync::Mutex::new(()),
        };
        for c in compacted {
            catalog.compacted.write().entry(c.meta.tenant.clone()).or_default().push(c);
        }
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

    /// Tenants that have live or compacted blocks.
    pub fn tenants(&self) -> Vec<String> {
        let mut tenants: HashSet<String> = self.tenants.read().keys().cloned().collect();
        tenants.extend(self.compacted.read().keys().cloned());
        tenants.into_iter().collect()
    }

    /// Makes a block whose data and meta are written visible to queries.
    /// The index is rewritten by [`persist_index`](Self::persist_index).
    pub fn insert(&self, block: LiveBlock) {
        let tenant = block.meta.tenant.clone();
        self.replace(&tenant, &[], Some(block)).expect("removing nothing cannot fail");
    }

    /// In one step for queries: takes the live blocks `removed` out of the
    /// catalog (they become compacted, kept for deletion) and adds `added`.
    /// Returns the compacted metas; the caller marks them in the store with
    /// [`mark_compacted`]. Changes nothing and fails when a block of
    /// `removed` is not live (it was expired or merged meanwhile).
    pub fn replace(&self, tenant: &str, removed: &[Uuid], added: Option<LiveBlock>) -> Result<Vec<CompactedMeta>> {
        let mut tenants = self.tenants.write();
        let current = tenants.get(tenant).cloned().unwrap_or_default();
        if let Some(gone) = removed.iter().find(|id| !current.iter().any(|b| b.meta.block_id == **id)) {
            return Err(Error::internal(format!("block {gone} of tenant {tenant} is no longer live")));
        }
        let (gone, mut kept): (Vec<Arc<LiveBlock>>, Vec<Arc<LiveBlock>>) =
            current.iter().cloned().partition(|b| removed.contains(&b.meta.block_id));
        kept.extend(added.map(Arc::new));
        tenants.insert(tenant.to_owned(), Arc::new(kept));
        let now = unix_seconds();
        let gone: Vec<CompactedMeta> =
            gone.into_iter().map(|b| CompactedMeta { meta: b.meta.clone(), compacted_unix_seconds: now }).collect();
        self.compacted.write().entry(tenant.to_owned()).or_default().extend(gone.iter().cloned());
        Ok(gone)
    }

    /// The compacted blocks of `tenant` whose objects are not deleted yet.
    pub fn compacted(&self, tenant: &str) -> Vec<CompactedMeta> {
        self.compacted.read().get(tenant).cloned().unwrap_or_default()
    }

    /// Is `block_id` a live or compacted block of `tenant`?
    pub fn contains(&self, tenant: &str, block_id: Uuid) -> bool {
        self.blocks(tenant).iter().any(|b| b.meta.block_id == block_id)
            || self.compacted.read().get(tenant).is_some_and(|c| c.iter().any(|c| c.meta.block_id == block_id))
    }

    /// Forgets a compacted block whose objects are deleted.
    pub fn forget_compacted(&self, tenant: &str, block_id: Uuid) {
        if let Some(blocks) = self.compacted.write().get_mut(tenant) {
            blocks.retain(|c| c.meta.block_id != block_id);
        }
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

/// Records in the store that a block is no longer live: writes its
/// `meta.compacted.json`, then deletes its `meta.json` (so that tools
/// reading the layout see only live blocks).
pub async fn mark_compacted(store: &Arc<dyn ObjectStore>, layout: &Layout, compacted: &CompactedMeta) -> Result<()> {
    let (tenant, block_id) = (&compacted.meta.tenant, compacted.meta.block_id);
    store.put(&layout.compacted_meta(tenant, block_id), PutPayload::from(serde_json::to_vec_pretty(compacted)?)).await?;
    match store.delete(&layout.meta(tenant, block_id)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A `meta.compacted.json` found at load.
enum Marker {
    Read(CompactedMeta),
    /// Present but not parseable: the block it marks is still not live (its
    /// spans are in the block it was merged into, or expired).
    Unreadable(Uuid),
}

/// Reads a `meta.compacted.json`; `None` when it is gone since the LIST or
/// is not under a block's prefix.
async fn load_compacted(store: &Arc<dyn ObjectStore>, layout: &Layout, path: Path) -> Result<Option<Marker>> {
    let Some(bytes) = optional_object(store, &path).await? else { return Ok(None) };
    match serde_json::from_slice::<CompactedMeta>(&bytes) {
        Ok(compacted) => Ok(Some(Marker::Read(compacted))),
        Err(e) => {
            let Some((_, block_id)) = layout.block_of(&path) else {
                tracing::warn!(%path, error = %e, "skipping unreadable compacted block meta outside any block");
                return Ok(None);
            };
            tracing::warn!(%path, error = %e, "unreadable compacted block meta; the block stays out of the live set");
            Ok(Some(Marker::Unreadable(block_id)))
        }
    }
}

/// Reads a block's meta and trace filter; `None` (with a warning) when the
/// meta is unreadable, so one bad object does not stop the server.
async fn load_block(store: &Arc<dyn ObjectStore>, layout: &Layout, meta_path: Path) -> Result<Option<LiveBlock>> {
    // Gone since the LIST (compacted or deleted by a running server): not live.
    let Some(bytes) = optional_object(store, &meta_path).await? else { return Ok(None) };
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
