//! Named sources in the catalog (table `sources`, migration 2): definitions and sync state, and the sync
//! commit that writes a snapshot and the source's cursor in one transaction.

use rusqlite::{params, OptionalExtension};

use super::{commit_in, now_text, Catalog, DataFile, Snapshot};
use crate::error::{Error, Result};
use crate::ingest::Mapping;
use crate::sources::{SourceDefinition, SourceInfo};

/// The source half of a sync commit: which source, the cursor the sync started from (as stored, for the
/// optimistic check) and the cursor to store.
#[derive(Debug, Clone)]
pub struct SyncCommit<'a> {
    /// The source's name.
    pub source: &'a str,
    /// The stored cursor text the sync read before scanning (`None`: no cursor).
    pub expected: Option<&'a str>,
    /// The cursor to store (`None`: no cursor).
    pub cursor: Option<&'a serde_json::Value>,
}

/// A `sources` row: name, entity, config, mapping, mode, cursor, snapshot, updated_at.
type Row = (String, String, String, String, String, Option<String>, Option<i64>, String);

fn info(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?))
}

fn decode((name, entity, config, mapping, mode, cursor, snapshot, updated_at): Row) -> Result<SourceInfo> {
    let mapping: serde_json::Value = serde_json::from_str(&mapping)?;
    Ok(SourceInfo {
        definition: SourceDefinition {
            name,
            entity,
            config: serde_json::from_str(&config)?,
            mapping: Mapping::from_json(&mapping)?,
            mode: serde_json::from_str(&mode)?,
        },
        cursor: cursor.map(|c| serde_json::from_str(&c)).transpose()?,
        snapshot,
        updated_at,
    })
}

const COLUMNS: &str = "name, entity, config, mapping, mode, cursor, snapshot, updated_at";

impl Catalog {
    /// Stores (inserting or replacing) a source definition. A replaced definition keeps its cursor only when
    /// `keep_cursor` is true (same entity and config).
    pub fn put_source(&self, def: &SourceDefinition, keep_cursor: bool) -> Result<()> {
        let config = serde_json::to_string(&def.config)?;
        let mapping = serde_json::to_string(&def.mapping)?;
        let mode = serde_json::to_string(&def.mode)?;
        self.with(|c| {
            c.execute(
                &format!(
                    "INSERT INTO sources(name, entity, config, mapping, mode, cursor, snapshot, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL, ?6)
                     ON CONFLICT(name) DO UPDATE SET entity = excluded.entity, config = excluded.config,
                       mapping = excluded.mapping, mode = excluded.mode, updated_at = excluded.updated_at{}",
                    if keep_cursor { "" } else { ", cursor = NULL, snapshot = NULL" }
                ),
                params![def.name, def.entity, config, mapping, mode, now_text()],
            )?;
            Ok(())
        })
    }

    /// A stored source, and its cursor as stored text (for [`SyncCommit::expected`]).
    pub fn source(&self, name: &str) -> Result<Option<(SourceInfo, Option<String>)>> {
        self.with(|c| {
            let row =
                c.query_row(&format!("SELECT {COLUMNS} FROM sources WHERE name = ?1"), [name], info).optional()?;
            row.map(|r| {
                let text = r.5.clone();
                Ok((decode(r)?, text))
            })
            .transpose()
        })
    }

    /// All stored sources, by name.
    pub fn sources(&self) -> Result<Vec<SourceInfo>> {
        self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {COLUMNS} FROM sources ORDER BY name"))?;
            let rows = st.query_map([], info)?.collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(decode).collect()
        })
    }

    /// Deletes a source definition (the entity's data stays); false if there was none.
    pub fn delete_source(&self, name: &str) -> Result<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM sources WHERE name = ?1", [name])? == 1))
    }

    /// Commits a sync in one transaction: a new snapshot of `entity` (when `files` is given; else only the
    /// ingest record), the ingest record, and the source's new cursor and snapshot. Fails with
    /// [`Error::Conflict`] — committing nothing — if another writer committed to the entity since `parent`, or
    /// the source's cursor is no longer `sync.expected` (another sync of the same source committed first), or
    /// the source was deleted meanwhile.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_sync(
        &self,
        entity: &str,
        parent: i64,
        files: Option<&[DataFile]>,
        operation: &str,
        ingest: (&str, &str, &serde_json::Value),
        sync: &SyncCommit<'_>,
    ) -> Result<Option<Snapshot>> {
        let cursor = sync.cursor.map(serde_json::to_string).transpose()?;
        self.with(|c| {
            let tx = super::Tx::begin(c, false)?;
            let snap = match files {
                Some(files) => Some(commit_in(&tx, entity, parent, files, operation, Some(ingest))?),
                None => {
                    let (id, source, report) = ingest;
                    tx.execute(
                        "INSERT INTO ingests(id, entity, source, snapshot, report, created_at) VALUES (?1, ?2, ?3, NULL, ?4, ?5)",
                        params![id, entity, source, report.to_string(), now_text()],
                    )?;
                    None
                }
            };
            let changed = tx.execute(
                "UPDATE sources SET cursor = ?1, snapshot = COALESCE(?2, snapshot), updated_at = ?3
                 WHERE name = ?4 AND cursor IS ?5",
                params![cursor, snap.as_ref().map(|s| s.version), now_text(), sync.source, sync.expected],
            )?;
            if changed != 1 {
                return Err(Error::Conflict {
                    what: format!("source `{}`", sync.source),
                    message: "another sync of this source committed first (or the source was deleted or \
                              redefined); nothing was committed — sync again"
                        .into(),
                });
            }
            tx.commit()?;
            Ok(snap)
        })
    }
}
