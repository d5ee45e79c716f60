//! Reclaiming store space: old snapshots and orphan files.

use crate::error::{Error, Result};

use super::Workspace;

impl Workspace {
    /// Deletes the data files that only old snapshots use: for each entity, the snapshots older than its latest
    /// `keep_snapshots` are forgotten and the files no kept snapshot reads are removed from the store.
    ///
    /// Ingests never overwrite files — an upsert writes the changed profiles to new files — so replaced and
    /// deleted records stay on disk until this runs: call it after erasing someone's data, or on a schedule.
    /// Keep at least 2 when other processes may still be reading the previous snapshot.
    ///
    /// It also collects orphans: files under the workspace's data, quarantine and segment directories that the
    /// catalog does not refer to (left by a process that crashed before committing) and that are older than
    /// [`ORPHAN_GRACE`], so a write in flight in another process is never touched.
    ///
    /// ```no_run
    /// # async fn f(ws: segkit::Workspace) -> segkit::Result<()> {
    /// let report = ws.vacuum(2).await?;
    /// println!("{} files, {} bytes freed", report.files_deleted, report.bytes_freed);
    /// # Ok(()) }
    /// ```
    pub async fn vacuum(&self, keep_snapshots: usize) -> Result<VacuumReport> {
        if keep_snapshots == 0 {
            return Err(Error::InvalidArgument("vacuum keeps at least 1 snapshot (the current one)".into()));
        }
        let mut report = VacuumReport::default();
        let entities = self.entities()?;
        for entity in &entities {
            let _guard = self.entity_lock(&entity.name).lock_owned().await;
            let (removed, files) = self.inner.catalog.prune_snapshots(&entity.name, keep_snapshots)?;
            report.snapshots_removed += removed;
            report.files_deleted += files.len() as u64;
            report.bytes_freed += files.iter().map(|f| f.bytes).sum::<u64>();
            let paths: Vec<String> = files.into_iter().map(|f| f.path).collect();
            self.inner.store.delete(&paths).await;
        }
        // Static lists keep their latest `keep_snapshots` versions, like entities.
        for s in self.segments()? {
            let files = self.inner.catalog.prune_static_list(&s.name, keep_snapshots)?;
            report.files_deleted += files.len() as u64;
            self.inner.store.delete(&files).await;
        }
        let referenced = self.inner.catalog.referenced_files()?;
        let cutoff = chrono::Utc::now() - ORPHAN_GRACE;
        let dirs = entities
            .iter()
            .flat_map(|e| {
                let p = crate::store::path_segment(&e.name);
                [format!("data/{p}/"), format!("quarantine/{p}/")]
            })
            .chain(self.segments()?.into_iter().flat_map(|s| {
                let p = crate::store::path_segment(&s.name);
                [format!("segments/{p}/"), format!("static/{p}/")]
            }));
        for dir in dirs {
            let orphans: Vec<crate::store::StoredFile> = self
                .inner
                .store
                .list(&dir)
                .await?
                .into_iter()
                .filter(|f| f.modified < cutoff && !referenced.contains(&f.path))
                .collect();
            report.orphans_deleted += orphans.len() as u64;
            report.bytes_freed += orphans.iter().map(|f| f.bytes).sum::<u64>();
            let paths: Vec<String> = orphans.into_iter().map(|f| f.path).collect();
            self.inner.store.delete(&paths).await;
        }
        Ok(report)
    }
}

/// What [`Workspace::vacuum`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct VacuumReport {
    /// Snapshots forgotten.
    pub snapshots_removed: u64,
    /// Data files deleted from the store.
    pub files_deleted: u64,
    /// Files no snapshot, ingest or run refers to (left by a crash) that were deleted.
    pub orphans_deleted: u64,
    /// The total size of all deleted files.
    pub bytes_freed: u64,
}

/// How old a file the catalog does not know must be before [`Workspace::vacuum`] deletes it: a write in another
/// process commits well within this.
pub const ORPHAN_GRACE: chrono::Duration = chrono::Duration::hours(1);
