//! Reading a block's `data.parquet` from object storage with arrow-rs'
//! async reader, for trace lookups and compaction.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use futures::future::BoxFuture;
use futures::{FutureExt, TryFutureExt};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaData;

use super::BlockMeta;
use crate::storage::Layout;

/// One `data.parquet` for arrow-rs' async reader. The footer and page index
/// come through DataFusion's [`DFParquetMetadata`], from (and into) the
/// metadata cache when one is given. (DataFusion's own reader is a
/// `Box<dyn AsyncFileReader + Send>`, which arrow-rs' stream builder does
/// not take, and arrow-rs' `ParquetObjectReader` is deprecated.)
#[derive(Clone)]
pub(crate) struct BlockReader {
    store: Arc<dyn ObjectStore>,
    object: ObjectMeta,
    metadata_cache: Option<Arc<FileMetadataCache>>,
}

impl BlockReader {
    /// A reader of the data of `meta`'s block.
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        layout: &Layout,
        meta: &BlockMeta,
        metadata_cache: Option<Arc<FileMetadataCache>>,
    ) -> Self {
        let path = layout.data(&meta.tenant, meta.block_id);
        // As DataFusion's scans name the file, so that they share cache entries.
        let object = PartitionedFile::new(path.to_string(), meta.size_bytes).object_meta;
        Self { store, object, metadata_cache }
    }
}

fn parquet_error(e: impl std::error::Error + Send + Sync + 'static) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for BlockReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        self.store.get_range(&self.object.location, range).map_err(parquet_error).boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.object.location, &ranges).await.map_err(parquet_error) }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            DFParquetMetadata::new(self.store.as_ref(), &self.object)
                .with_file_metadata_cache(self.metadata_cache.clone())
                .with_page_index_policy(options.map(|o| o.column_index_policy()))
                .fetch_metadata()
                .await
                .map_err(parquet_error)
        }
        .boxed()
    }
}
