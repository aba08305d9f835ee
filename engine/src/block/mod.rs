//! Parquet blocks on object storage: preparing and writing them, their
//! `meta.json`, and the per-tenant catalog of live blocks.

mod catalog;
mod meta;
mod nested_set;
pub mod tags;
mod writer;

pub use catalog::BlockCatalog;
pub use meta::{BlockMeta, LiveBlock, TenantIndex};
pub use tags::TagSummary;
pub use writer::{prepare_block, write_block};
