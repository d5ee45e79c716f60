//! Ingesting sources into entities, and the quarantine of rejected rows.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType as ArrowType, Field, Schema};

use crate::error::{Error, Result};
use crate::ingest::pipeline::{self, quarantine_schema};
use crate::ingest::{IngestOptions, IngestReport};
use crate::source::{RecordBatchSource, Source};

use super::Workspace;

impl Workspace {
    /// Ingests everything `source` yields into `entity`.
    ///
    /// Bad rows are quarantined (see [`IngestReport::rows_quarantined`]); the good rows commit atomically as a
    /// new snapshot. If the source or the store fails, nothing is committed and the previous snapshot stays.
    pub async fn ingest(&self, entity: &str, source: &dyn Source, options: IngestOptions) -> Result<IngestReport> {
        let r = self.ingest_inner(entity, source, options).await;
        // The batches of the ingest are freed: give the memory back (see `crate::memory`).
        crate::memory::release_unused_memory();
        r
    }

    async fn ingest_inner(&self, entity: &str, source: &dyn Source, options: IngestOptions) -> Result<IngestReport> {
        let e = self.entity(entity)?;
        let _guard = self.entity_lock(entity).lock_owned().await;
        let (_, version) = self.inner.catalog.entity(entity)?.expect("checked");
        let current = self.inner.catalog.snapshot(entity, version)?;
        let id = uuid::Uuid::new_v4().to_string();
        let staged = pipeline::stage(&self.inner.store, &e, &current, source, &options, &id).await?;
        let mut report = staged.report;
        let changed = staged.files != current.files || matches!(report.mode, crate::ingest::IngestMode::FullRefresh);
        let result = async {
            #[cfg(test)]
            if self.inner.fail_before_commit.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::ingest(entity, "injected failure before commit"));
            }
            if changed {
                report.snapshot = Some(version + 1);
                let json = serde_json::to_value(&report)?;
                let snap = self.inner.catalog.commit_snapshot(
                    entity,
                    version,
                    &staged.files,
                    &format!("{:?}", report.mode).to_lowercase(),
                    Some((&id, &report.source, &json)),
                )?;
                self.register(&e, &snap)?;
            } else {
                self.inner.catalog.record_ingest(&id, entity, &report.source, &serde_json::to_value(&report)?)?;
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
