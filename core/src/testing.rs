//! Conformance tests for third-party [`Source`] implementations (feature `testing`), and for [`Action`]
//! implementations ([`action_conformance`], in the `actions` submodule).
//!
//! [`Action`]: crate::action::Action
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

mod actions;
pub use actions::{
    action_conformance, debug_redacts_secrets, declarations_are_sane, delivers_and_accepts_repeats, delivery_from_json,
    execute_bounded, key_reaches_receiver, kind_is_set, missing_parts_are_not_retried, ActionCheck, ReceivedKeys,
    DEFAULT_ACTION_TIMEOUT,
};

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
/// [`scan_is_repeatable`], when the source claims projection support [`projection_is_honoured`], and when it
/// claims incremental reads [`incremental_resume_is_consistent`].
///
/// Give it a source over a small fixture with at least one row and, for projection, at least two fields. For
/// the full incremental checks (new data appearing after a cursor), also run
/// [`source_conformance_incremental`].
pub async fn source_conformance(source: &dyn Source) -> Result<()> {
    name_is_set(source)?;
    schema_is_stable(source).await?;
    scan_matches_schema(source).await?;
    scan_is_repeatable(source).await?;
    if source.capabilities().projection {
        projection_is_honoured(source).await?;
    }
    if source.capabilities().filters {
        filters_never_drop_matching_rows(source).await?;
    }
    if source.capabilities().incremental {
        incremental_resume_is_consistent(source).await?;
    }
    Ok(())
}

/// For a source claiming filter support: a scan with the hint `<first field> IS NOT NULL` yields only rows of a
/// full scan (as a multiset) and every row of the full scan that matches the filter (a hint may leave extra
/// rows, never drop matching ones).
pub async fn filters_never_drop_matching_rows(source: &dyn Source) -> Result<()> {
    let schema = source.schema().await?;
    let Some(first) = schema.fields().first() else { return Ok(()) };
    let full = collect_scan(source, &ScanRequest::all()).await?;
    let matching: Vec<RecordBatch> = full
        .iter()
        .map(|b| {
            let mask = arrow::compute::is_not_null(b.column(0))?;
            Ok(arrow::compute::filter_record_batch(b, &mask)?)
        })
        .collect::<Result<_>>()?;
    let filter = datafusion::prelude::col(datafusion::common::Column::new_unqualified(first.name())).is_not_null();
    let got = collect_scan(source, &ScanRequest::all().with_filters(vec![filter])).await?;
    let (full, matching, got) = (rows_as_text(&full)?, rows_as_text(&matching)?, rows_as_text(&got)?);
    let mut pool = full.clone();
    for r in &got {
        match pool.iter().position(|x| x == r) {
            Some(i) => {
                pool.swap_remove(i);
            }
            None => return Err(violation(source, format!("a filtered scan yielded a row no full scan has: {r}"))),
        }
    }
    let mut have = got.clone();
    for r in &matching {
        match have.iter().position(|x| x == r) {
            Some(i) => {
                have.swap_remove(i);
            }
            None => {
                return Err(violation(
                    source,
                    format!("a scan filtered on `{} IS NOT NULL` dropped the matching row {r}", first.name()),
                ))
            }
        }
    }
    Ok(())
}

/// The incremental checks with new data: [`source_conformance`], then `add_rows` appends records upstream
/// (writes a file, inserts rows, publishes messages…) and [`incremental_sees_new_rows`] checks that a scan
/// from the earlier cursor yields exactly the new records, deterministically.
pub async fn source_conformance_incremental<F, Fut>(source: &dyn Source, add_rows: F) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    if !source.capabilities().incremental {
        return Err(violation(source, "source_conformance_incremental needs capabilities().incremental"));
    }
    source_conformance(source).await?;
    incremental_sees_new_rows(source, add_rows).await
}

/// One scan from `cursor` and the cursor the source reports after it (`None` reported: the old one stands).
pub async fn scan_from(
    source: &dyn Source,
    cursor: Option<serde_json::Value>,
) -> Result<(Vec<String>, Option<serde_json::Value>)> {
    let batches = collect_scan(source, &ScanRequest::all().with_cursor(cursor.clone())).await?;
    let after = source.cursor().await?.or(cursor);
    Ok((rows_as_text(&batches)?, after))
}

/// Each row as one line of text (fields formatted by Arrow, separated by tabs), for comparing scans.
pub fn rows_as_text(batches: &[RecordBatch]) -> Result<Vec<String>> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let opts = FormatOptions::default().with_null("∅");
    let mut out = vec![];
    for b in batches {
        let fmts = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for i in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(i).to_string()).collect::<Vec<_>>().join("\t"));
        }
    }
    Ok(out)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// For an incremental source over unchanging data: a scan from no cursor yields every row and reports a
/// cursor; a second such scan yields the same rows in the same order and the same cursor; a scan resumed from
/// that cursor yields no rows, and reports the same position again.
pub async fn incremental_resume_is_consistent(source: &dyn Source) -> Result<()> {
    let full = sorted(rows_as_text(&collect_scan(source, &ScanRequest::all()).await?)?);
    let (first, c1) = scan_from(source, None).await?;
    if sorted(first.clone()) != full {
        return Err(violation(
            source,
            format!("a scan with cursor None gave {} rows but a plain full scan gave {}", first.len(), full.len()),
        ));
    }
    let Some(c1) = c1 else {
        return Err(violation(source, "cursor() reported no cursor after a complete incremental scan"));
    };
    let (again, c1b) = scan_from(source, None).await?;
    if again != first || c1b.as_ref() != Some(&c1) {
        return Err(violation(
            source,
            format!("two scans from the start differ (rows or cursor): cursor {c1} then {c1b:?}"),
        ));
    }
    let (rest, c2) = scan_from(source, Some(c1.clone())).await?;
    if !rest.is_empty() {
        return Err(violation(
            source,
            format!(
                "a scan resumed from the cursor {c1} of a complete scan yielded {} rows, expected none",
                rest.len()
            ),
        ));
    }
    if c2.as_ref() != Some(&c1) {
        return Err(violation(source, format!("resuming from {c1} with no new data moved the cursor to {c2:?}")));
    }
    Ok(())
}

/// After `add_rows` adds records upstream, a scan resumed from the cursor of a complete scan yields exactly the
/// rows a full scan gained (as a multiset), twice the same (rows in order, and cursor), and a scan from its
/// new cursor yields nothing.
pub async fn incremental_sees_new_rows<F, Fut>(source: &dyn Source, add_rows: F) -> Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let (before, c1) = scan_from(source, None).await?;
    let c1 = c1.ok_or_else(|| violation(source, "cursor() reported no cursor after a complete incremental scan"))?;
    add_rows().await?;
    let (new, c2) = scan_from(source, Some(c1.clone())).await?;
    let (new_again, c2b) = scan_from(source, Some(c1.clone())).await?;
    if new != new_again || c2 != c2b {
        return Err(violation(
            source,
            format!(
                "two scans resumed from {c1} differ: {} then {} rows, cursor {c2:?} then {c2b:?}",
                new.len(),
                new_again.len()
            ),
        ));
    }
    if new.is_empty() {
        return Err(violation(source, format!("after add_rows, a scan resumed from {c1} yielded no rows")));
    }
    let (all, _) = scan_from(source, None).await?;
    let mut expected = before.clone();
    expected.extend(new.iter().cloned());
    if sorted(all.clone()) != sorted(expected) {
        let gained = all.len() as i64 - before.len() as i64;
        return Err(violation(
            source,
            format!(
                "a scan resumed from {c1} yielded {} rows, but a full scan gained {gained} rows (and they must be the \
                 same rows)",
                new.len()
            ),
        ));
    }
    let c2 = c2.ok_or_else(|| violation(source, "cursor() reported no cursor after the resumed scan"))?;
    if c2 == c1 {
        return Err(violation(source, format!("the cursor did not move ({c1}) although new rows were read")));
    }
    let (tail, _) = scan_from(source, Some(c2.clone())).await?;
    if !tail.is_empty() {
        return Err(violation(
            source,
            format!("a scan from the new cursor {c2} yielded {} old rows again", tail.len()),
        ));
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

/// An incremental test source over a directory of NDJSON files ("parts"), read in file-name order: each file
/// is one batch of text columns `fields`, and the cursor `{"file": name}` is the last file a scan yielded, so
/// a scan from it reads only files whose names sort after it. Writers add a part atomically (write a temporary
/// name, then rename to `*.ndjson`). `delay` sleeps before each batch, to make syncs slow enough to interrupt.
///
/// Config form (registered by [`register_sources`] as type `testing_parts`):
/// `{"type": "testing_parts", "dir": "/path", "fields": ["id", "v"], "delay_ms": 5}`.
#[derive(Debug)]
pub struct PartsSource {
    dir: std::path::PathBuf,
    schema: SchemaRef,
    delay: std::time::Duration,
    last: std::sync::Arc<std::sync::Mutex<Option<serde_json::Value>>>,
}

impl PartsSource {
    /// A source over `dir` with text fields `fields`.
    pub fn new(dir: impl Into<std::path::PathBuf>, fields: &[&str], delay: std::time::Duration) -> Self {
        use arrow::datatypes::{DataType, Field};
        let schema = Schema::new(fields.iter().map(|f| Field::new(*f, DataType::Utf8, true)).collect::<Vec<_>>());
        PartsSource { dir: dir.into(), schema: std::sync::Arc::new(schema), delay, last: Default::default() }
    }

    /// Builds one from its config (see the type documentation).
    pub fn from_config(config: &serde_json::Value) -> Result<Self> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Config {
            #[allow(dead_code)]
            r#type: String,
            dir: std::path::PathBuf,
            fields: Vec<String>,
            #[serde(default)]
            delay_ms: u64,
        }
        let c: Config = crate::sources::parse_config(config)?;
        if c.fields.is_empty() {
            return Err(Error::Definition { path: "source.fields".into(), message: "give at least one field".into() });
        }
        if !c.dir.is_dir() {
            return Err(Error::Definition {
                path: "source.dir".into(),
                message: format!("`{}` is not a directory", c.dir.display()),
            });
        }
        let fields: Vec<&str> = c.fields.iter().map(String::as_str).collect();
        Ok(Self::new(c.dir, &fields, std::time::Duration::from_millis(c.delay_ms.min(60_000))))
    }

    fn parts(&self, after: Option<&str>) -> Result<Vec<String>> {
        let mut names = vec![];
        for e in std::fs::read_dir(&self.dir)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".ndjson") && after.is_none_or(|a| name.as_str() > a) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

fn part_batch(path: &std::path::Path, schema: &SchemaRef) -> Result<RecordBatch> {
    let text = std::fs::read_to_string(path)?;
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(Error::from))
        .collect::<Result<_>>()?;
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let values = rows.iter().map(|r| match r.get(f.name()) {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(v) => Some(v.to_string()),
            });
            std::sync::Arc::new(values.collect::<arrow::array::StringArray>()) as arrow::array::ArrayRef
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[async_trait::async_trait]
impl Source for PartsSource {
    fn name(&self) -> String {
        format!("testing_parts:{}", self.dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
    }

    async fn schema(&self) -> Result<SchemaRef> {
        Ok(self.schema.clone())
    }

    async fn scan(&self, request: &ScanRequest) -> Result<crate::source::BatchStream> {
        let after = match &request.cursor {
            None => None,
            Some(c) => Some(
                c.get("file")
                    .and_then(|f| f.as_str())
                    .ok_or_else(|| Error::source_error(self.name(), format!("cursor {c} has no `file`")))?
                    .to_string(),
            ),
        };
        let parts = self.parts(after.as_deref())?;
        let (dir, schema, delay, last) = (self.dir.clone(), self.schema.clone(), self.delay, self.last.clone());
        *last.lock().unwrap_or_else(|p| p.into_inner()) = request.cursor.clone();
        Ok(futures::stream::iter(parts)
            .then(move |name| {
                let (dir, schema, last) = (dir.clone(), schema.clone(), last.clone());
                async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let batch = part_batch(&dir.join(&name), &schema)?;
                    *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(serde_json::json!({ "file": name }));
                    Ok(batch)
                }
            })
            .boxed())
    }

    fn capabilities(&self) -> crate::source::SourceCapabilities {
        crate::source::SourceCapabilities::none().with_incremental()
    }

    async fn cursor(&self) -> Result<Option<serde_json::Value>> {
        Ok(self.last.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// Registers the test sources (`testing_parts`: [`PartsSource`]) in `registry`.
pub fn register_sources(registry: &mut crate::sources::SourceRegistry) {
    registry.register("testing_parts", |config| Ok(std::sync::Arc::new(PartsSource::from_config(config)?) as _));
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
    async fn record_batch_source_applies_filters() {
        use datafusion::prelude::{col, lit};
        let source = RecordBatchSource::new("memory", vec![batch()]).unwrap();
        assert!(source.capabilities().filters);
        let req = ScanRequest::all().with_filters(vec![col("id").gt(lit(1i64))]).with_projection(vec!["name".into()]);
        let got = rows_as_text(&collect_scan(&source, &req).await.unwrap()).unwrap();
        assert_eq!(got, vec!["b", "c"]);
        let bad = ScanRequest::all().with_filters(vec![col("nope").gt(lit(1i64))]);
        assert!(source.scan(&bad).await.is_err());
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
            let c = SourceCapabilities::none();
            if matches!(self, Broken::IgnoresProjection) {
                c.with_projection()
            } else {
                c
            }
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
