//! Conformance tests for third-party [`Source`] implementations (feature `testing`).
//!
//! Shaped like object_store's `integration` module: plain async functions that exercise an implementation
//! and report the first violation. Call [`source_conformance`] from your connector's tests:
//!
//! ```ignore
//! #[tokio::test]
//! async fn my_source_conforms() {
//!     let source = MySource::new(/* a small fixture with at least one row */);
//!     segkit::testing::source_conformance(&source).await.unwrap();
//! }
//! ```
//!
//! Each check is also public, so a source can run a subset. A violation is returned as
//! [`Error::Source`] whose message starts with `conformance:` and says what was expected and what was found.

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use futures::StreamExt;

use crate::error::{Error, Result};
use crate::source::{ScanRequest, Source};

fn violation(source: &dyn Source, message: impl Into<String>) -> Error {
    let name = source.name();
    Error::Source {
        source_name: if name.is_empty() { "<unnamed>".into() } else { name },
        message: format!("conformance: {}", message.into()),
        cause: None,
    }
}

fn describe(schema: &Schema) -> String {
    let fields: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}{}", f.name(), f.data_type(), if f.is_nullable() { "" } else { " not null" }))
        .collect();
    format!("[{}]", fields.join(", "))
}

/// Collects every batch of one scan, failing on the first stream error.
pub async fn collect_scan(source: &dyn Source, request: &ScanRequest) -> Result<Vec<RecordBatch>> {
    let mut stream = source.scan(request).await?;
    let mut out = vec![];
    while let Some(b) = stream.next().await {
        out.push(b?);
    }
    Ok(out)
}

/// Runs every check below: [`name_is_set`], [`schema_is_stable`], [`scan_matches_schema`],
/// [`scan_is_repeatable`] and, when the source claims projection support, [`projection_is_honoured`].
///
/// Give it a source over a small fixture with at least one row and, for projection, at least two fields.
pub async fn source_conformance(source: &dyn Source) -> Result<()> {
    name_is_set(source)?;
    schema_is_stable(source).await?;
    scan_matches_schema(source).await?;
    scan_is_repeatable(source).await?;
    if source.capabilities().projection {
        projection_is_honoured(source).await?;
    }
    Ok(())
}

/// `name()` is non-empty and the same on every call.
pub fn name_is_set(source: &dyn Source) -> Result<()> {
    let a = source.name();
    if a.trim().is_empty() {
        return Err(violation(source, "name() is empty; return a short name such as `csv:users.csv`"));
    }
    let b = source.name();
    if a != b {
        return Err(violation(source, format!("name() changed between calls: `{a}` then `{b}`")));
    }
    Ok(())
}

/// `schema()` returns the same fields on repeated calls, including after a scan.
pub async fn schema_is_stable(source: &dyn Source) -> Result<SchemaRef> {
    let first = source.schema().await?;
    let second = source.schema().await?;
    if first.fields() != second.fields() {
        return Err(violation(
            source,
            format!("schema() changed between calls: {} then {}", describe(&first), describe(&second)),
        ));
    }
    collect_scan(source, &ScanRequest::all()).await?;
    let third = source.schema().await?;
    if first.fields() != third.fields() {
        return Err(violation(
            source,
            format!("schema() changed after a scan: {} then {}", describe(&first), describe(&third)),
        ));
    }
    Ok(first)
}

/// Every batch of a full scan has exactly the fields of `schema()` (names, types and nullability, in order;
/// schema-level metadata is not compared). Returns the row count.
pub async fn scan_matches_schema(source: &dyn Source) -> Result<usize> {
    let schema = source.schema().await?;
    let batches = collect_scan(source, &ScanRequest::all()).await?;
    check_batches(source, &schema, &batches, "a full scan")?;
    Ok(batches.iter().map(RecordBatch::num_rows).sum())
}

fn check_batches(source: &dyn Source, expected: &Schema, batches: &[RecordBatch], what: &str) -> Result<()> {
    for (i, b) in batches.iter().enumerate() {
        if b.schema().fields() != expected.fields() {
            return Err(violation(
                source,
                format!("batch {i} of {what} has schema {} but expected {}", describe(&b.schema()), describe(expected)),
            ));
        }
    }
    Ok(())
}

/// `scan()` can be called twice and both scans yield the same number of rows.
pub async fn scan_is_repeatable(source: &dyn Source) -> Result<()> {
    let a: usize = collect_scan(source, &ScanRequest::all()).await?.iter().map(RecordBatch::num_rows).sum();
    let b: usize = collect_scan(source, &ScanRequest::all()).await?.iter().map(RecordBatch::num_rows).sum();
    if a != b {
        return Err(violation(source, format!("two scans gave different row counts: {a} then {b}")));
    }
    Ok(())
}

/// With a projection, batches have exactly the requested fields in the requested order and the same row
/// count as a full scan. Tried with the last field alone and with the last and first fields (reversed order).
/// Only meaningful for sources whose `capabilities().projection` is true.
pub async fn projection_is_honoured(source: &dyn Source) -> Result<()> {
    let schema = source.schema().await?;
    let n = schema.fields().len();
    if n == 0 {
        return Ok(());
    }
    let full: usize = collect_scan(source, &ScanRequest::all()).await?.iter().map(RecordBatch::num_rows).sum();
    let mut cases = vec![vec![n - 1]];
    if n > 1 {
        cases.push(vec![n - 1, 0]);
    }
    for idx in cases {
        let names: Vec<String> = idx.iter().map(|&i| schema.field(i).name().clone()).collect();
        let expected = schema.project(&idx)?;
        let what = format!("a scan projected to {names:?}");
        let batches = collect_scan(source, &ScanRequest::all().with_projection(names.clone())).await?;
        check_batches(source, &expected, &batches, &what)?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows != full {
            return Err(violation(source, format!("{what} gave {rows} rows but a full scan gave {full}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};
    use async_trait::async_trait;

    use super::*;
    use crate::source::{BatchStream, RecordBatchSource, SourceCapabilities};

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as _),
            ("name", Arc::new(StringArray::from(vec!["a", "b", "c"])) as _),
        ])
        .unwrap()
    }

    #[tokio::test]
    async fn record_batch_source_conforms() {
        let source = RecordBatchSource::new("memory", vec![batch(), batch()]).unwrap();
        source_conformance(&source).await.unwrap();
        assert_eq!(scan_matches_schema(&source).await.unwrap(), 6);
    }

    #[tokio::test]
    async fn empty_source_conforms() {
        let source = RecordBatchSource::empty("empty", batch().schema());
        source_conformance(&source).await.unwrap();
    }

    /// A source whose behaviour is broken in one chosen way.
    #[derive(Debug)]
    enum Broken {
        EmptyName,
        WrongBatchSchema,
        ShrinkingScans(AtomicUsize),
        IgnoresProjection,
        DriftingSchema(AtomicUsize),
    }

    #[async_trait]
    impl Source for Broken {
        fn name(&self) -> String {
            if matches!(self, Broken::EmptyName) {
                String::new()
            } else {
                "broken".into()
            }
        }
        async fn schema(&self) -> Result<SchemaRef> {
            if let Broken::DriftingSchema(n) = self {
                let k = n.fetch_add(1, Ordering::SeqCst);
                return Ok(Arc::new(Schema::new(vec![Field::new(format!("f{k}"), DataType::Int64, true)])));
            }
            Ok(batch().schema())
        }
        async fn scan(&self, _request: &ScanRequest) -> Result<BatchStream> {
            let b = match self {
                Broken::WrongBatchSchema => batch().project(&[1, 0]).unwrap(),
                Broken::ShrinkingScans(n) => {
                    let k = n.fetch_add(1, Ordering::SeqCst);
                    batch().slice(0, 3usize.saturating_sub(k))
                }
                _ => batch(),
            };
            Ok(futures::stream::iter(vec![Ok(b)]).boxed())
        }
        fn capabilities(&self) -> SourceCapabilities {
            SourceCapabilities { projection: matches!(self, Broken::IgnoresProjection), incremental: false }
        }
    }

    async fn message(source: Broken) -> String {
        let err = source_conformance(&source).await.expect_err("a broken source must fail conformance");
        assert!(matches!(err, Error::Source { .. }), "{err:?}");
        err.to_string()
    }

    #[tokio::test]
    async fn broken_sources_fail_with_clear_messages() {
        assert!(message(Broken::EmptyName).await.contains("name() is empty"));
        let m = message(Broken::WrongBatchSchema).await;
        assert!(m.contains("batch 0 of a full scan has schema [name: Utf8 not null, id: Int64 not null]"), "{m}");
        let m = message(Broken::ShrinkingScans(AtomicUsize::new(0))).await;
        assert!(m.contains("two scans gave different row counts"), "{m}");
        let m = message(Broken::IgnoresProjection).await;
        assert!(m.contains("projected to [\"name\"]") && m.contains("expected [name: Utf8 not null]"), "{m}");
        let m = message(Broken::DriftingSchema(AtomicUsize::new(0))).await;
        assert!(m.contains("schema() changed between calls"), "{m}");
    }

    #[tokio::test]
    async fn source_errors_propagate() {
        #[derive(Debug)]
        struct Failing;
        #[async_trait]
        impl Source for Failing {
            fn name(&self) -> String {
                "failing".into()
            }
            async fn schema(&self) -> Result<SchemaRef> {
                Ok(batch().schema())
            }
            async fn scan(&self, _request: &ScanRequest) -> Result<BatchStream> {
                Ok(futures::stream::iter(vec![Err(Error::source_error("failing", "disk on fire"))]).boxed())
            }
        }
        let err = source_conformance(&Failing).await.unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
    }
}
