//! Object storage: builds the configured `ObjectStore` (local disk or S3)
//! and names the objects of the block layout (DESIGN §2):
//!
//! ```text
//! <root>/<tenant>/blocks/<block_id>/data.parquet
//! <root>/<tenant>/blocks/<block_id>/bloom.bin     # trace-id bloom filter
//! <root>/<tenant>/blocks/<block_id>/tags.json     # tag names and values
//! <root>/<tenant>/blocks/<block_id>/meta.json   # written last
//! <root>/<tenant>/blocks/<block_id>/meta.compacted.json  # once compacted or expired
//! <root>/<tenant>/index.json                    # live block metas
//! ```

mod s3;

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use uuid::Uuid;

use crate::config::{Backend, TraceStorageConfig};
use crate::error::{Error, Result};

/// Builds the object store named by the configuration. For S3 this also
/// resolves credentials through aws-config's default chain.
pub async fn build_object_store(config: &TraceStorageConfig) -> Result<Arc<dyn ObjectStore>> {
    match config.backend {
        Backend::Local => {
            let path = &config.local.path;
            std::fs::create_dir_all(path).map_err(Error::io(format!("creating {}", path.display())))?;
            Ok(Arc::new(LocalFileSystem::new_with_prefix(path)?.with_automatic_cleanup(true)))
        }
        Backend::S3 => s3::build(&config.s3).await,
    }
}

/// Object paths of the block layout, under an optional root prefix.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    root: String,
}

impl Layout {
    /// A layout rooted at `prefix` ("" for the store's root).
    pub fn new(prefix: &str) -> Self {
        Self { root: prefix.trim_matches('/').to_owned() }
    }

    fn join(&self, rest: String) -> Path {
        if self.root.is_empty() { Path::from(rest) } else { Path::from(format!("{}/{rest}", self.root)) }
    }

    /// `<tenant>/blocks/`
    pub fn blocks_dir(&self, tenant: &str) -> Path {
        self.join(format!("{tenant}/blocks"))
    }

    /// `<tenant>/blocks/<id>/data.parquet`
    pub fn data(&self, tenant: &str, block: Uuid) -> Path {
        self.join(format!("{tenant}/blocks/{block}/data.parquet"))
    }

    /// `<tenant>/blocks/<id>/meta.json`
    pub fn meta(&self, tenant: &str, block: Uuid) -> Path {
        self.join(format!("{tenant}/blocks/{block}/meta.json"))
    }

    /// `<tenant>/blocks/<id>/bloom.bin`: bloom filter bitset of the block's trace ids.
    pub fn bloom(&self, tenant: &str, block: Uuid) -> Path {
        self.join(format!("{tenant}/blocks/{block}/bloom.bin"))
    }

    /// `<tenant>/blocks/<id>/tags.json`: the block's tag summary.
    pub fn tags(&self, tenant: &str, block: Uuid) -> Path {
        self.join(format!("{tenant}/blocks/{block}/tags.json"))
    }

    /// `<tenant>/blocks/<id>/meta.compacted.json`: the block was compacted or expired.
    pub fn compacted_meta(&self, tenant: &str, block: Uuid) -> Path {
        self.join(format!("{tenant}/blocks/{block}/meta.compacted.json"))
    }

    /// Every object of a block, in the order they are deleted: `meta.json`
    /// first (the block stops existing before any of its data goes), then
    /// the data, and `meta.compacted.json` last (a deletion cut short is
    /// resumed at the next start).
    pub fn block_objects(&self, tenant: &str, block: Uuid) -> [Path; 5] {
        [
            self.meta(tenant, block),
            self.data(tenant, block),
            self.bloom(tenant, block),
            self.tags(tenant, block),
            self.compacted_meta(tenant, block),
        ]
    }

    /// The tenant and block of an object under `<tenant>/blocks/<id>/`;
    /// `None` for any other path.
    pub fn block_of(&self, path: &Path) -> Option<(String, Uuid)> {
        let parts: Vec<_> = match self.root() {
            Some(root) => path.prefix_match(&root)?.collect(),
            None => path.parts().collect(),
        };
        match parts.as_slice() {
            [tenant, blocks, block, _file] if blocks.as_ref() == "blocks" => {
                Some((tenant.as_ref().to_owned(), block.as_ref().parse().ok()?))
            }
            _ => None,
        }
    }

    /// `<tenant>/index.json`
    pub fn index(&self, tenant: &str) -> Path {
        self.join(format!("{tenant}/index.json"))
    }

    /// The root under which tenants live.
    pub fn root(&self) -> Option<Path> {
        (!self.root.is_empty()).then(|| Path::from(self.root.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_of_reads_tenant_and_block_from_a_block_object_path() {
        let id = Uuid::from_u128(7);
        for layout in [Layout::new(""), Layout::new("/traces/")] {
            assert_eq!(layout.block_of(&layout.data("t1", id)), Some(("t1".to_owned(), id)));
            assert_eq!(layout.block_of(&layout.compacted_meta("t1", id)), Some(("t1".to_owned(), id)));
            assert_eq!(layout.block_of(&layout.index("t1")), None);
        }
        assert_eq!(Layout::new("traces").block_of(&Layout::new("other").data("t1", id)), None, "outside the root");
        assert_eq!(Layout::new("").block_of(&Path::from("t1/blocks/not-a-uuid/data.parquet")), None);
    }
}
