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

/// Name of the optional text column in which a source says why a record in [`MALFORMED_COLUMN`] could not be
/// read and where it was (e.g. `users.csv line 7, byte 181: 5 fields, expected 4`). Ingestion appends it to the
/// quarantine reason; like [`MALFORMED_COLUMN`], it is never mapped to an attribute.
pub const MALFORMED_REASON_COLUMN: &str = "_error";

/// A stream of record batches, each possibly an error.
pub type BatchStream = BoxStream<'static, Result<RecordBatch>>;

/// What a scan asks of a source.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ScanRequest {
    /// Field names wanted; `None` means all. A source without projection support may return more.
    pub projection: Option<Vec<String>>,
    /// Resume after this cursor (only for sources that support incremental reads): yield exactly the records
    /// that come after the position the cursor describes. `None` means from the beginning.
    pub cursor: Option<serde_json::Value>,
    /// Filters the caller would like applied (a conjunction of DataFusion expressions over the source's
    /// fields). A hint: a source may apply some, all or none of them, and segkit never relies on them being
    /// applied. Sources without [`SourceCapabilities::filters`] ignore them.
    pub filters: Vec<datafusion::logical_expr::Expr>,
    /// Text fields the caller would like delivered already read as these types (an ingest asks for this when
    /// it is safe, see [`crate::ingest::ColumnReader`]). A hint: a source may deliver any batch as text instead;
    /// one that honours it reads every listed field of a batch with a [`crate::ingest::ColumnReader`], and only
    /// when every value of the batch was accepted.
    pub typed: Vec<crate::ingest::TypedField>,
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
    /// A scan that resumes after `cursor` (`None`: from the beginning).
    pub fn with_cursor(mut self, cursor: Option<serde_json::Value>) -> Self {
        self.cursor = cursor;
        self
    }
    /// A scan asking for typed fields (see [`ScanRequest::typed`]).
    pub fn with_typed(mut self, fields: Vec<crate::ingest::TypedField>) -> Self {
        self.typed = fields;
        self
    }
    /// A scan with filter hints (see [`ScanRequest::filters`]).
    pub fn with_filters(mut self, filters: Vec<datafusion::logical_expr::Expr>) -> Self {
        self.filters = filters;
        self
    }
}

/// Optional abilities of a source; everything defaults to unsupported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceCapabilities {
    /// Honors [`ScanRequest::projection`].
    pub projection: bool,
    /// Honors [`ScanRequest::cursor`] and reports the cursor after a scan through [`Source::cursor`].
    pub incremental: bool,
    /// May apply [`ScanRequest::filters`] (as a hint; rows that do not match may still be returned).
    pub filters: bool,
}

impl SourceCapabilities {
    /// No optional ability.
    pub fn none() -> Self {
        Self::default()
    }
    /// With projection pushdown.
    pub fn with_projection(mut self) -> Self {
        self.projection = true;
        self
    }
    /// With incremental reads from a cursor.
    pub fn with_incremental(mut self) -> Self {
        self.incremental = true;
        self
    }
    /// With filter pushdown (as a hint).
    pub fn with_filters(mut self) -> Self {
        self.filters = true;
        self
    }
}

/// A producer of Arrow data for ingestion.
///
/// # The contract
///
/// - **Schema discovery**: [`schema`](Source::schema) describes every batch a scan yields (names, types,
///   nullability, in order). It may read the source to find out (a CSV header, a database catalog) and should
///   cache the answer; it must be the same on every call.
/// - **Streaming scan**: [`scan`](Source::scan) returns a stream of batches with bounded memory — never the
///   whole table at once. It can be called more than once; two full scans of unchanged data yield the same rows.
///   A failure is an `Err` item (or an `Err` from `scan`); ingest then commits nothing.
/// - **Incremental reads** (optional, [`SourceCapabilities::incremental`]): a scan with
///   [`ScanRequest::cursor`] yields exactly the records after that position, in a deterministic order. After the
///   stream of a scan has **ended** (returned `None`), [`cursor`](Source::cursor) reports the position just
///   after the last record *that stream yielded* — not after records it prefetched or skipped. segkit calls it
///   only then, and commits that cursor in the same catalog transaction as the snapshot holding those rows; a
///   scan that failed or was cancelled has its cursor ignored. So the committed cursor can never run ahead of
///   the committed data, and a sync killed at any point and run again neither loses nor doubles a record. A
///   cursor is any JSON value (an offset, `{"file": …, "byte": …}`, `{"updated_at": …, "id": …}` with a
///   tie-breaker for equal values); segkit stores it and hands it back unchanged. `Ok(None)` means "no
///   position to report" (keep the previous cursor).
/// - **Pushdown** (optional): [`SourceCapabilities::projection`] promises that a projected scan yields
///   exactly the requested fields in order; [`SourceCapabilities::filters`] that the source may use the filter
///   hints. Both default to unsupported, and segkit works without them.
///
/// `name()` and `Debug` must never show secrets (passwords, tokens, URL credentials). Check an
/// implementation with [`crate::testing::source_conformance`] (feature `testing`); `docs/connectors.md` is a
/// tutorial.
#[async_trait]
pub trait Source: Send + Sync + Debug {
    /// A short name for messages, e.g. `csv:users.csv`. Must not contain secrets.
    fn name(&self) -> String;

    /// The schema of the batches [`scan`](Source::scan) yields.
    async fn schema(&self) -> Result<SchemaRef>;

    /// Streams the data (from [`ScanRequest::cursor`] on, for incremental sources).
    async fn scan(&self, request: &ScanRequest) -> Result<BatchStream>;

    /// Optional abilities (default: none).
    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::default()
    }

    /// The cursor just after the last record yielded by the most recent scan whose stream has ended
    /// (incremental sources only; see the trait documentation). `Ok(None)`: nothing to report.
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

    /// Applies the filter hints exactly (with DataFusion's expression evaluator), then the projection.
    async fn scan(&self, request: &ScanRequest) -> Result<BatchStream> {
        let mut batches = self.batches.clone();
        if let Some(predicate) = datafusion::logical_expr::utils::conjunction(request.filters.iter().cloned()) {
            let df_schema = datafusion::common::DFSchema::try_from(self.schema.as_ref().clone())?;
            let physical = datafusion::prelude::SessionContext::new().create_physical_expr(predicate, &df_schema)?;
            batches = batches
                .iter()
                .map(|b| {
                    let mask = physical.evaluate(b)?.into_array(b.num_rows())?;
                    let mask = mask.as_any().downcast_ref::<arrow::array::BooleanArray>().ok_or_else(|| {
                        Error::InvalidArgument(format!("filter is not a boolean expression ({})", mask.data_type()))
                    })?;
                    Ok(arrow::compute::filter_record_batch(b, mask)?)
                })
                .collect::<Result<Vec<_>>>()?;
        }
        let batches = match &request.projection {
            None => batches,
            Some(cols) => {
                let idx =
                    cols.iter().map(|c| self.schema.index_of(c).map_err(Error::from)).collect::<Result<Vec<_>>>()?;
                batches.iter().map(|b| b.project(&idx)).collect::<Result<Vec<_>, _>>()?
            }
        };
        Ok(futures::stream::iter(batches.into_iter().map(Ok)).boxed())
    }

    fn capabilities(&self) -> SourceCapabilities {
        SourceCapabilities::none().with_projection().with_filters()
    }
}

/// A stream over pages fetched one at a time (for adapters over callbacks: a Python generator, a JavaScript async
/// iterator): `next_page` gives the next page's batches, `None` at the end, or an error message, which ends the
/// stream as a source error of `name`.
pub fn paged<F, Fut>(name: String, next_page: F) -> BatchStream
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = std::result::Result<Option<Vec<RecordBatch>>, String>> + Send + 'static,
{
    let state = (next_page, std::collections::VecDeque::new(), false);
    futures::stream::unfold(state, move |(mut next_page, mut pending, done)| {
        let name = name.clone();
        async move {
            loop {
                if let Some(b) = pending.pop_front() {
                    return Some((Ok(b), (next_page, pending, done)));
                }
                if done {
                    return None;
                }
                match next_page().await {
                    Ok(Some(batches)) => pending.extend(batches),
                    Ok(None) => return None,
                    Err(message) => {
                        let e = Error::Source { source_name: name, message, cause: None };
                        return Some((Err(e), (next_page, pending, true)));
                    }
                }
            }
        }
    })
    .boxed()
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
            if c.data_type().is_floating() && f.data_type().is_integer() {
                // A cast would truncate 3.5 to 3.
                let floats =
                    arrow::compute::cast(c, &arrow::datatypes::DataType::Float64).map_err(|e| e.to_string())?;
                let floats = floats.as_any().downcast_ref::<arrow::array::Float64Array>().expect("cast to Float64");
                if let Some((row, v)) =
                    floats.iter().enumerate().find_map(|(i, v)| v.filter(|v| v.fract() != 0.0).map(|v| (i, v)))
                {
                    return Err(format!(
                        "scan() yielded `{}` = {v} (row {} of a piece), not an integer as schema() declares ({})",
                        f.name(),
                        row + 1,
                        f.data_type()
                    ));
                }
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

/// Rows given as JSON objects (a page of an API, say) decoded into a batch of `schema`. A number with a fraction
/// in an integer field, a field `schema` does not declare, or a value of the wrong kind is an error naming it;
/// nothing is truncated or dropped.
pub fn decode_json_rows(rows: &[serde_json::Value], schema: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    for f in schema.fields().iter().filter(|f| f.data_type().is_integer()) {
        for (i, row) in rows.iter().enumerate() {
            if let Some(serde_json::Value::Number(n)) = row.get(f.name()) {
                if n.is_f64() {
                    return Err(format!(
                        "row {} of a page: `{}` is {n}, not an integer as schema() declares ({})",
                        i + 1,
                        f.name(),
                        f.data_type()
                    ));
                }
            }
        }
    }
    let reason = |e: arrow::error::ArrowError| format!("a page of objects does not fit schema(): {e}");
    let mut decoder =
        arrow::json::ReaderBuilder::new(schema.clone()).with_strict_mode(true).build_decoder().map_err(reason)?;
    decoder.serialize(rows).map_err(reason)?;
    Ok(decoder.flush().map_err(reason)?.unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}

#[cfg(test)]
mod conversion_tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, AsArray, Float64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use serde_json::json;

    use super::*;

    fn declared() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false), Field::new("tag", DataType::Utf8, true)]))
    }

    #[test]
    fn json_rows_decode_against_the_declared_types() {
        let b = decode_json_rows(&[json!({"id": 1, "tag": "a"}), json!({"id": 2})], &declared()).unwrap();
        assert_eq!(b.column(0).as_primitive::<Int64Type>().values().to_vec(), vec![1, 2]);
        assert!(b.column(1).is_null(1));
        let e = decode_json_rows(&[json!({"id": 1.5})], &declared()).unwrap_err();
        assert_eq!(e, "row 1 of a page: `id` is 1.5, not an integer as schema() declares (Int64)");
        let e = decode_json_rows(&[json!({"id": 1, "extra": true})], &declared()).unwrap_err();
        assert!(e.contains("does not fit schema()") && e.contains("extra"), "{e}");
        let e = decode_json_rows(&[json!({"tag": "a"})], &declared()).unwrap_err();
        assert!(e.contains("does not fit schema()"), "a required field is missing: {e}");
        assert_eq!(decode_json_rows(&[], &declared()).unwrap().num_rows(), 0);
    }

    #[test]
    fn pieces_convert_to_the_declared_types_or_fail_loudly() {
        let piece = |id: ArrayRef| {
            RecordBatch::try_from_iter([("tag", Arc::new(StringArray::from(vec!["x"])) as ArrayRef), ("id", id)])
                .unwrap()
        };
        let ok = to_declared(&piece(Arc::new(Float64Array::from(vec![3.0]))), &declared()).unwrap();
        assert_eq!((ok.schema(), ok.column(0).as_primitive::<Int64Type>().value(0)), (declared(), 3));
        let e = to_declared(&piece(Arc::new(Float64Array::from(vec![3.5]))), &declared()).unwrap_err();
        assert!(e.contains("`id`") && e.contains("3.5"), "a fraction is not truncated: {e}");
        let e = to_declared(&piece(Arc::new(StringArray::from(vec!["three"]))), &declared()).unwrap_err();
        assert!(e.starts_with("scan() yielded `id` as Utf8, which does not convert to the declared Int64"), "{e}");
    }
}
