//! Parquet blocks on object storage: preparing and writing them, their
//! `meta.json`, and the per-tenant catalog of live blocks.

mod catalog;
mod meta;
mod nested_set;
mod reader;
pub mod tags;
mod writer;

pub(crate) use reader::BlockReader;
pub use catalog::{BlockCatalog, mark_compacted};
pub use meta::{BlockMeta, CompactedMeta, LiveBlock, TenantIndex};
pub use tags::TagSummary;
pub use writer::{BlockOrigin, BlockPlan, BlockWriter, prepare_block, write_block, write_planned_block};
pub(crate) use writer::{delete_block_objects, unix_seconds};
