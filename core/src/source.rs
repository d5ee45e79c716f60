//! The `Source` plugin trait: where ingested data comes from.
//!
//! A source describes its schema and streams Arrow [`RecordBatch`]es. Optional capabilities (projection
//! pushdown, incremental reads from a cursor) default to "unsupported". Implement it in Rust, or in Python /
//! Node through the bindings' adapters; check an implementation with [`crate::testing::source_conformance`]
//! (feature `testing`).
//!
//! ```
//! # tokio_test_block_on(async {
//! use std::sync::Arc;
//! use segkit::deps::arrow::array::{Int64Array, RecordBatch};
//! use segkit::{RecordBatchSource, ScanRequest, Source};
//! let batch = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![1, 2])) as _)]).unwrap();
//! let source = RecordBatchSource::new("memory", vec![batch]).unwrap();
//! assert_eq!(source.schema().await.unwrap().field(0).name(), "id");
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::fmt::Debug;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::error::{Error, Result};

/// Name of the optional text column in which a source reports a record it could not parse (a CSV row with
/// the wrong number of fields, a line that is not JSON). Where it is non-null, ingestion quarantines the row
/// as malformed with this text as evidence; the column is never mapped to an attribute.
pub const MALFORMED_COLUMN: &str = "_raw";

/// A stream of record batches, each possibly an error.
pub type BatchStream = BoxStream<'static, Result<RecordBatch>>;

/// What a scan asks of a source.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ScanRequest {
    /// Field names wanted; `None` means all. A source without projection support may return more.
    pub projection: Option<Vec<String>>,
    /// Resume after this cursor (only for sources that support incremental reads).
    pub cursor: Option<serde_json::Value>,
}

impl ScanRequest {
    /// A full scan.
    pub fn all() -> Self {
        Self::default()
    }
    /// A scan of the named fields.
    pub fn with_projection(mut self, fields: Vec<String>) -> Self {
        self.projection = Some(fields);
        self
    }
}

/// Optional abilities of a source; everything defaults to unsupported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceCapabilities {
    /// Honors [`ScanRequest::projection`].
    pub projection: bool,
    /// Honors [`ScanRequest::cursor`] and reports a new cursor.
    pub incremental: bool,
}

/// A producer of Arrow data for ingestion.
#[async_trait]
pub trait Source: Send + Sync + Debug {
    /// A short name for messages, e.g. `csv:users.csv`. Must not contain secrets.
    fn name(&self) -> String;

    /// The schema of the batches [`scan`](Source::scan) yields.
    async fn schema(&self) -> Result<SchemaRef>;

    /// Streams the data.
    async fn scan(&self, request: &ScanRequest) -> Result<BatchStream>;

    /// Optional abilities (default: none).
    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::default()
    }

    /// The cursor to resume from after everything scanned so far (incremental sources only).
    async fn cursor(&self) -> Result<Option<serde_json::Value>> {
        Ok(None)
    }
}

/// A source over record batches already in memory (Rust's in-memory Arrow path).
#[derive(Debug, Clone)]
pub struct RecordBatchSource {
    name: String,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
}

impl RecordBatchSource {
    /// Wraps batches; all must share one schema. Zero batches need [`RecordBatchSource::empty`].
    pub fn new(name: impl Into<String>, batches: Vec<RecordBatch>) -> Result<Self> {
        let Some(first) = batches.first() else {
            return Err(Error::InvalidArgument("no batches given; use RecordBatchSource::empty(schema)".into()));
        };
        let schema = first.schema();
        if let Some(i) = batches.iter().position(|b| b.schema() != schema) {
            return Err(Error::InvalidArgument(format!("batch {i} has a different schema from batch 0")));
        }
        Ok(RecordBatchSource { name: name.into(), schema, batches })
    }

    /// A source with a schema and no rows.
    pub fn empty(name: impl Into<String>, schema: SchemaRef) -> Self {
        RecordBatchSource { name: name.into(), schema, batches: vec![] }
    }
}

#[async_trait]
impl Source for RecordBatchSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    async fn scan(&self, request: &ScanRequest) -> Result<BatchStream> {
        let batches = match &request.projection {
            None => self.batches.clone(),
            Some(cols) => {
                let idx =
                    cols.iter().map(|c| self.schema.index_of(c).map_err(Error::from)).collect::<Result<Vec<_>>>()?;
                self.batches.iter().map(|b| b.project(&idx)).collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(futures::stream::iter(batches.into_iter().map(Ok)).boxed())
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities { projection: true, incremental: false }
    }
}

/// `batch` with exactly the fields of `schema`: matched by name and converted to the declared types (for
/// adapters over foreign data: polars hands strings over as views, JavaScript numbers are doubles). A missing or
/// undeclared field, or a value that does not convert, is an error naming the field — never a silent null.
///
/// ```
/// # use std::sync::Arc;
/// # use segkit::deps::arrow::array::{ArrayRef, Int32Array, RecordBatch};
/// # use segkit::deps::arrow::datatypes::{DataType, Field, Schema};
/// let declared = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
/// let piece = RecordBatch::try_from_iter([("n", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef)]).unwrap();
/// assert_eq!(segkit::source::to_declared(&piece, &declared).unwrap().schema(), declared);
/// ```
pub fn to_declared(batch: &RecordBatch, schema: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    if let Some(extra) = batch.schema().fields().iter().find(|f| schema.field_with_name(f.name()).is_err()) {
        return Err(format!("scan() yielded field `{}`, which schema() does not declare", extra.name()));
    }
    let options = arrow::compute::CastOptions { safe: false, ..Default::default() };
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let c = batch
                .column_by_name(f.name())
                .ok_or_else(|| format!("scan() yielded a piece without the declared field `{}`", f.name()))?;
            if c.data_type() == f.data_type() {
                return Ok(c.clone());
            }
            arrow::compute::cast_with_options(c, f.data_type(), &options).map_err(|e| {
                format!(
                    "scan() yielded `{}` as {}, which does not convert to the declared {}: {e}",
                    f.name(),
                    c.data_type(),
                    f.data_type()
                )
            })
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}
