//! Parquet through parquet's async reader over object_store: typed, streamed, with projection.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use segkit::{BatchStream, Error, Result};

/// An [`AsyncFileReader`] over one object of known size (parquet's own `ParquetObjectReader` is deprecated
/// in favour of implementing the trait directly).
#[derive(Debug, Clone)]
struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
}

fn pq_err(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { self.store.get_range(&self.path, range).await.map_err(pq_err) }.boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.path, &ranges).await.map_err(pq_err) }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata =
                ParquetMetaDataReader::new().with_arrow_reader_options(options).load_and_finish(self, size).await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

async fn builder(
    name: &str,
    store: &Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<ParquetRecordBatchStreamBuilder<ObjectReader>> {
    let meta = store.head(path).await.map_err(|e| Error::source_error(name, e))?;
    let reader = ObjectReader { store: store.clone(), path: path.clone(), size: meta.size };
    ParquetRecordBatchStreamBuilder::new(reader).await.map_err(|e| Error::source_error(name, e))
}

/// The file's Arrow schema, without Parquet metadata (so that batch schemas compare equal).
pub(crate) async fn schema(name: &str, store: &Arc<dyn ObjectStore>, path: &Path) -> Result<SchemaRef> {
    let b = builder(name, store, path).await?;
    Ok(Arc::new(Schema::new(b.schema().fields().clone())))
}

/// Streams the file, reading only the `projection` columns (by index into [`schema`]) and delivering them in
/// that order.
pub(crate) async fn scan(
    name: &str,
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    schema: SchemaRef,
    projection: Option<Vec<usize>>,
    batch_size: usize,
) -> Result<BatchStream> {
    let b = builder(name, store, path).await?;
    let (b, out_schema, order) = match projection {
        None => (b, schema, None),
        Some(idx) => {
            let mask = ProjectionMask::roots(b.parquet_schema(), idx.iter().copied());
            // The reader yields the masked columns in file order; map them to the requested order.
            let mut sorted = idx.clone();
            sorted.sort_unstable();
            sorted.dedup();
            let order: Vec<usize> = idx.iter().map(|i| sorted.binary_search(i).expect("present")).collect();
            (b.with_projection(mask), Arc::new(schema.project(&idx)?), Some(order))
        }
    };
    let name = name.to_string();
    let stream = b.with_batch_size(batch_size).build().map_err(|e| Error::source_error(name.clone(), e))?;
    Ok(stream
        .map(move |batch| {
            let batch = batch.map_err(|e| Error::source_error(name.clone(), e))?;
            let batch = match &order {
                Some(o) => batch.project(o)?,
                None => batch,
            };
            Ok(RecordBatch::try_new(out_schema.clone(), batch.columns().to_vec())?)
        })
        .boxed())
}
