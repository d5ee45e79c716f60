//! Compaction of small event files: frequent small appends (the REST API's `POST /api/v1/events`, the
//! [`crate::appender::Appender`]) each add a file to the event entity's snapshot; reads open every file, so many
//! small ones slow every evaluation. [`Workspace::compact`] merges runs of consecutive small files into one.

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use serde::Serialize;

use crate::catalog::DataFile;
use crate::error::Result;
use crate::ingest::pipeline::{sort_by, storage_order};
use crate::limits::{COMPACT_MAX_ROWS, COMPACT_MIN_FILES, COMPACT_SMALL_FILE_ROWS};
use crate::model::EntityKind;

use super::Workspace;

/// What one [`Workspace::compact`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    /// Small files merged (0: nothing to do).
    pub files_merged: usize,
    /// Files written in their place.
    pub files_written: usize,
    /// Rows rewritten.
    pub rows: u64,
    /// The snapshot committed, when something was merged.
    pub snapshot: Option<i64>,
}

impl Workspace {
    /// Merges the first run of at least [`COMPACT_MIN_FILES`] consecutive small files (fewer than
    /// [`COMPACT_SMALL_FILE_ROWS`] rows each; at most [`COMPACT_MAX_ROWS`] rows together) of an event entity into
    /// one file in storage order, committed as a new snapshot (`compact`) that reads the same rows. Profiles
    /// need none: an upsert rewrites their files. Nothing to merge returns an empty report.
    ///
    /// The merged files stay on disk for readers of older snapshots until [`vacuum`](Self::vacuum) removes them.
    pub async fn compact(&self, entity: &str) -> Result<CompactReport> {
        let e = self.entity(entity)?;
        if e.kind != EntityKind::Event {
            return Ok(CompactReport::default());
        }
        let _guard = self.entity_lock(&e.name).lock_owned().await;
        let (_, version) = self.inner.catalog.entity(&e.name)?.expect("checked");
        let current = self.inner.catalog.snapshot(&e.name, version)?;
        let Some(run) = small_run(&current.files) else { return Ok(CompactReport::default()) };
        let schema = e.schema();
        let mut batches: Vec<RecordBatch> = vec![];
        for f in &current.files[run.clone()] {
            for b in self.inner.store.read_all(&f.path).await? {
                // Files written before the entity gained an attribute have another schema: leave them alone.
                if b.schema().fields().len() != schema.fields().len()
                    || b.schema()
                        .fields()
                        .iter()
                        .zip(schema.fields())
                        .any(|(a, b)| a.name() != b.name() || a.data_type() != b.data_type())
                {
                    return Ok(CompactReport::default());
                }
                batches.push(RecordBatch::try_new(schema.clone(), b.columns().to_vec())?);
            }
        }
        let order = storage_order(&e);
        let mut merged = concat_batches(&schema, &batches)?;
        drop(batches);
        if order.len() > 1 {
            merged = sort_by(&merged, &order)?;
        }
        let dir = format!("data/{}", crate::store::path_segment(&e.name));
        let mut writer = self.inner.store.writer(&dir, schema.clone(), Some(&order.join(","))).single_file();
        if let Err(err) = writer.write(&merged).await {
            writer.abort().await;
            return Err(err);
        }
        let rows = merged.num_rows() as u64;
        drop(merged);
        let written = writer.finish().await?;
        let files: Vec<DataFile> = current.files[..run.start]
            .iter()
            .chain(written.iter())
            .chain(current.files[run.end..].iter())
            .cloned()
            .collect();
        let snap = match self.inner.catalog.commit_snapshot(&e.name, version, &files, "compact", None) {
            Ok(s) => s,
            Err(err) => {
                let paths: Vec<String> = written.iter().map(|f| f.path.clone()).collect();
                self.inner.store.delete(&paths).await;
                return Err(err);
            }
        };
        self.register(&e, &snap)?;
        crate::memory::release_unused_memory();
        Ok(CompactReport { files_merged: run.len(), files_written: written.len(), rows, snapshot: Some(snap.version) })
    }
}

impl Workspace {
    /// The data files of an entity's current snapshot.
    #[cfg(test)]
    pub(crate) fn data_files(&self, entity: &str) -> Result<Vec<DataFile>> {
        let (_, version) =
            self.inner.catalog.entity(entity)?.ok_or_else(|| crate::Error::not_found("entity", entity))?;
        Ok(self.inner.catalog.snapshot(entity, version)?.files)
    }
}

/// The first run of at least [`COMPACT_MIN_FILES`] consecutive small files, cut at [`COMPACT_MAX_ROWS`] rows.
fn small_run(files: &[DataFile]) -> Option<std::ops::Range<usize>> {
    let mut start = 0;
    while start < files.len() {
        if files[start].rows >= COMPACT_SMALL_FILE_ROWS {
            start += 1;
            continue;
        }
        let (mut end, mut rows) = (start, 0u64);
        while end < files.len()
            && files[end].rows < COMPACT_SMALL_FILE_ROWS
            && rows + files[end].rows <= COMPACT_MAX_ROWS
        {
            rows += files[end].rows;
            end += 1;
        }
        if end - start >= COMPACT_MIN_FILES {
            return Some(start..end);
        }
        // Too short: go on after it (a run cut by the row cap goes on from the cut).
        start = end.max(start + 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(rows: u64) -> DataFile {
        DataFile { path: format!("f{rows}"), rows, bytes: 1 }
    }

    #[test]
    fn only_long_enough_runs_of_small_files_are_merged() {
        let big = COMPACT_SMALL_FILE_ROWS;
        assert_eq!(small_run(&[f(big), f(10), f(10)]), None);
        let mut files = vec![f(big)];
        files.extend((0..COMPACT_MIN_FILES).map(|_| f(10)));
        files.push(f(big));
        assert_eq!(small_run(&files), Some(1..1 + COMPACT_MIN_FILES));
        // The row cap cuts a run; the part within the cap is merged when it is long enough.
        let many: Vec<DataFile> = (0..COMPACT_MIN_FILES * 2).map(|_| f(COMPACT_MAX_ROWS / 10)).collect();
        assert_eq!(small_run(&many), Some(0..10));
    }
}
