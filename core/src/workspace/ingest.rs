//! Ingesting sources into entities, and the quarantine of rejected rows.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType as ArrowType, Field, Schema};

use crate::catalog::SyncCommit;
use crate::error::{Error, Result};
use crate::ingest::pipeline::{self, quarantine_schema};
use crate::ingest::{IngestMode, IngestOptions, IngestReport};
use crate::source::{RecordBatchSource, ScanRequest, Source};
use crate::sources::{IngestControl, Tracker};

use super::Workspace;

impl Workspace {
    /// Ingests everything `source` yields into `entity`.
    ///
    /// Bad rows are quarantined (see [`IngestReport::rows_quarantined`]); the good rows commit atomically as a
    /// new snapshot. If the source or the store fails, nothing is committed and the previous snapshot stays.
    pub async fn ingest(&self, entity: &str, source: &dyn Source, options: IngestOptions) -> Result<IngestReport> {
        self.ingest_with(entity, source, options, &IngestControl::default()).await
    }

    /// [`ingest`](Self::ingest) with a progress callback and a cancellation token (see [`IngestControl`]). A
    /// cancelled ingest fails with [`Error::Cancelled`] and leaves the previous snapshot as it was.
    pub async fn ingest_with(
        &self,
        entity: &str,
        source: &dyn Source,
        options: IngestOptions,
        control: &IngestControl,
    ) -> Result<IngestReport> {
        self.ingest_inner(entity, source, options, control, None).await
    }

    /// The one ingest path: with `sync`, the scan starts from the source's stored cursor (read under the entity
    /// lock) and the cursor reported after the scan commits in the same transaction as the snapshot.
    pub(super) async fn ingest_inner(
        &self,
        entity: &str,
        source: &dyn Source,
        options: IngestOptions,
        control: &IngestControl,
        sync: Option<&str>,
    ) -> Result<IngestReport> {
        let r = self.ingest_locked(entity, source, options, control, sync).await;
        // The batches of the ingest are freed: give the memory back (see `crate::memory`).
        crate::memory::release_unused_memory();
        r
    }

    async fn ingest_locked(
        &self,
        entity: &str,
        source: &dyn Source,
        options: IngestOptions,
        control: &IngestControl,
        sync: Option<&str>,
    ) -> Result<IngestReport> {
        let e = self.entity(entity)?;
        let entity = e.name.as_str();
        let _guard = self.entity_lock(entity).lock_owned().await;
        let (_, version) = self.inner.catalog.entity(entity)?.expect("checked");
        let current = self.inner.catalog.snapshot(entity, version)?;
        // The source's stored cursor, read under the entity lock so two syncs in one process never start from
        // the same cursor (across processes the commit's optimistic check catches it).
        let (request, expected) = match sync {
            None => (ScanRequest::all(), None),
            Some(name) => {
                let (info, text) = self.inner.catalog.source(name)?.ok_or_else(|| Error::not_found("source", name))?;
                // A full refresh replaces the data with everything the source has, so it reads from the start.
                let from = if options.mode == Some(IngestMode::FullRefresh) { None } else { info.cursor };
                let from = from.filter(|_| source.capabilities().incremental);
                (ScanRequest::all().with_cursor(from), text)
            }
        };
        let id = uuid::Uuid::new_v4().to_string();
        let mut tracker = Tracker::new(control);
        let target = pipeline::Target {
            store: &self.inner.store,
            entity: &e,
            current: &current,
            memory: self.inner.ingest_memory,
        };
        let staged =
            pipeline::stage(&target, source, &options, &id, &request, &mut tracker).await.map_err(|err| {
                match (err, sync) {
                    (Error::Cancelled { .. }, Some(name)) => {
                        Error::Cancelled { what: format!("sync of source `{name}`") }
                    }
                    (Error::Cancelled { .. }, None) => Error::Cancelled { what: format!("ingest into `{entity}`") },
                    (err, _) => err,
                }
            })?;
        let mut report = staged.report;
        let changed = staged.files != current.files || matches!(report.mode, crate::ingest::IngestMode::FullRefresh);
        let result = async {
            // The cursor matching the rows just read: asked only now that the stream has ended.
            let cursor = match sync {
                Some(_) if source.capabilities().incremental => source.cursor().await?.or(request.cursor.clone()),
                _ => None,
            };
            if control.is_cancelled() {
                return Err(Error::Cancelled {
                    what: match sync {
                        Some(name) => format!("sync of source `{name}`"),
                        None => format!("ingest into `{entity}`"),
                    },
                });
            }
            #[cfg(test)]
            if self.inner.fail_before_commit.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::ingest(entity, "injected failure before commit"));
            }
            if changed {
                report.snapshot = Some(version + 1);
            }
            let mut json = serde_json::to_value(&report)?;
            if let (Some(name), serde_json::Value::Object(o)) = (sync, &mut json) {
                // The named source, for the `segkit.syncs` system table.
                o.insert("sync".into(), serde_json::Value::String(name.to_string()));
            }
            let operation = format!("{:?}", report.mode).to_lowercase();
            if let Some(name) = sync {
                let commit = SyncCommit { source: name, expected: expected.as_deref(), cursor: cursor.as_ref() };
                let files = changed.then_some(staged.files.as_slice());
                let snap = self.inner.catalog.commit_sync(
                    entity,
                    version,
                    files,
                    &operation,
                    (&id, &report.source, &json),
                    &commit,
                )?;
                if let Some(snap) = snap {
                    self.register(&e, &snap)?;
                }
            } else if changed {
                let snap = self.inner.catalog.commit_snapshot(
                    entity,
                    version,
                    &staged.files,
                    &operation,
                    Some((&id, &report.source, &json)),
                )?;
                self.register(&e, &snap)?;
            } else {
                self.inner.catalog.record_ingest(&id, entity, &report.source, &json)?;
            }
            Ok(())
        }
        .await;
        if let Err(err) = result {
            let orphans: Vec<String> =
                staged.written.iter().map(|f| f.path.clone()).chain(staged.quarantine_file.clone()).collect();
            self.inner.store.delete(&orphans).await;
            return Err(err);
        }
        metrics::counter!(crate::monitoring::ROWS_INGESTED, "entity" => entity.to_string())
            .increment(report.rows_written);
        metrics::counter!(crate::monitoring::ROWS_QUARANTINED, "entity" => entity.to_string())
            .increment(report.rows_quarantined);
        Ok(report)
    }

    /// Ingests in-memory Arrow batches.
    pub async fn ingest_batches(
        &self,
        entity: &str,
        batches: Vec<RecordBatch>,
        options: IngestOptions,
    ) -> Result<IngestReport> {
        if batches.is_empty() {
            return Err(Error::InvalidArgument("no batches to ingest".into()));
        }
        let source = RecordBatchSource::new("arrow", batches)?;
        self.ingest(entity, &source, options).await
    }

    /// Past ingest reports of an entity, oldest first.
    pub fn ingest_history(&self, entity: &str) -> Result<Vec<IngestReport>> {
        self.entity(entity)?;
        self.inner.catalog.ingests(entity)?.into_iter().map(|v| Ok(serde_json::from_value(v)?)).collect()
    }

    /// Every sync and ingest of every entity, oldest first, at most `limit` (the `segkit.syncs` system table as
    /// records): the report with the named source it came from, if any, and when it was recorded.
    pub fn syncs(&self, limit: usize) -> Result<Vec<SyncRecord>> {
        let mut out = vec![];
        for r in self.inner.catalog.all_ingests(limit)? {
            let v: serde_json::Value = serde_json::from_str(&r.report)?;
            let named_source = v.get("sync").and_then(|s| s.as_str()).map(str::to_string);
            out.push(SyncRecord { named_source, created_at: r.created_at, report: serde_json::from_value(v)? });
        }
        Ok(out)
    }

    /// Quarantined rows of an entity across all ingests: `ingest_id`, `row` (1-based), `reason`, `record` (the
    /// raw source fields as JSON text; as sensitive as the data itself).
    pub async fn quarantine(&self, entity: &str) -> Result<RecordBatch> {
        let schema = Arc::new(Schema::new(
            std::iter::once(Arc::new(Field::new("ingest_id", ArrowType::Utf8, false)))
                .chain(quarantine_schema().fields().iter().cloned())
                .collect::<Vec<_>>(),
        ));
        let mut out = vec![];
        for r in self.ingest_history(entity)? {
            if let Some(f) = &r.quarantine_file {
                for b in self.inner.store.read_all(f).await? {
                    let id: ArrayRef = Arc::new(StringArray::from(vec![r.id.as_str(); b.num_rows()]));
                    let mut cols = vec![id];
                    cols.extend(b.columns().iter().cloned());
                    out.push(RecordBatch::try_new(schema.clone(), cols)?);
                }
            }
        }
        Ok(concat_batches(&schema, &out)?)
    }

    /// Forgets the quarantined rows of `entity` (after they were looked at, or to erase the raw records they
    /// hold): deletes the quarantine files and the sample rows kept in the ingest reports; the counts stay.
    /// Returns how many rows were forgotten.
    pub async fn clear_quarantine(&self, entity: &str) -> Result<u64> {
        self.entity(entity)?;
        let _guard = self.entity_lock(entity).lock_owned().await;
        let (files, rows) = self.inner.catalog.clear_quarantine(entity)?;
        self.inner.store.delete(&files).await;
        Ok(rows)
    }
}

/// One recorded sync or ingest (see [`Workspace::syncs`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncRecord {
    /// The named source synced, or `None` for a direct ingest.
    pub named_source: Option<String>,
    /// When it was recorded (RFC 3339).
    pub created_at: String,
    /// Its report.
    #[serde(flatten)]
    pub report: IngestReport,
}
