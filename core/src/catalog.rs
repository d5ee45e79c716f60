//! The catalog: definitions, snapshots, ingest history and segment runs in one SQLite file.
//!
//! Commits are SQLite transactions with optimistic checks, so a snapshot becomes visible all at once or not at
//! all, and two writers on one entity cannot both win.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::Entity;
use crate::segment::SegmentDefinition;

mod auth;
mod idempotency;
mod migrations;
mod schedules;
mod scope;
mod sources;
mod system;
mod workflows;
pub use auth::NewAudit;
pub use idempotency::IdempotencyRecord;
pub use migrations::SCHEMA_VERSION;
use scope::Tx;
pub(crate) use scope::TxScope;
pub use sources::SyncCommit;
pub use system::IngestRecord;
pub(crate) use workflows::NewRow;
pub use workflows::{CapWindow, Finish, LedgerWrite};

/// A committed version of an entity's data: the Parquet files that make it up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Version number (0 = empty, never committed).
    pub version: i64,
    /// Files, relative to the store root.
    pub files: Vec<DataFile>,
    /// Total rows.
    pub row_count: u64,
}

/// One Parquet file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// Path relative to the store root.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// A stored segment run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Segment name.
    pub segment: String,
    /// Run number, from 1.
    pub run: i64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// How long it took.
    pub duration_ms: f64,
    /// Members.
    pub member_count: u64,
    /// Keys that entered.
    pub entered: u64,
    /// Keys that exited.
    pub exited: u64,
    /// Membership Parquet file (relative to the store root).
    pub membership_file: String,
    /// Entity snapshot evaluated.
    pub snapshot: i64,
}

/// One committed version of a static-list segment's keys ([`Workspace::define_static_segment`](crate::Workspace::define_static_segment)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticListVersion {
    /// Segment name.
    pub segment: String,
    /// Version number, from 1.
    pub version: i64,
    /// The Parquet file holding the sorted, distinct keys (relative to the store root).
    pub file: String,
    /// Number of distinct keys in the list (also those no entity has yet).
    pub key_count: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// What made this version: `replace`, `add` or `remove`.
    pub operation: String,
    /// When it was committed (RFC 3339).
    pub created_at: String,
}

/// The catalog handle.
#[derive(Debug)]
pub struct Catalog {
    conn: Mutex<Connection>,
    /// The database file (a [`TxScope`] opens its own connection to it).
    path: PathBuf,
}

/// Catalog failures become [`Error::Catalog`] with an opaque cause, so `?` works on rusqlite calls inside the crate
/// while rusqlite stays out of the public error type. SQLite's "database is busy/locked" (another process held
/// the write lock past the busy timeout) is a retryable [`Error::Conflict`], not raw SQLite text.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        if matches!(e.sqlite_error_code(), Some(DatabaseBusy | DatabaseLocked)) {
            return Error::Conflict {
                what: "the catalog".into(),
                message: format!(
                    "the catalog database is locked by another writer (waited {} s); retry the operation",
                    BUSY_TIMEOUT.as_secs()
                ),
            };
        }
        Error::Catalog { message: e.to_string(), cause: Some(Box::new(e)) }
    }
}

/// How long a catalog call waits for another writer's lock before failing with [`Error::Conflict`].
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The columns of a segment run, in the order run queries select them (see [`RUN_COLUMNS`]).
fn run_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        segment: r.get(0)?,
        run: r.get(1)?,
        started_at: r.get(2)?,
        duration_ms: r.get(3)?,
        member_count: r.get::<_, i64>(4)? as u64,
        entered: r.get::<_, i64>(5)? as u64,
        exited: r.get::<_, i64>(6)? as u64,
        membership_file: r.get(7)?,
        snapshot: r.get(8)?,
    })
}

/// The columns [`run_record`] reads, in its order.
const RUN_COLUMNS: &str =
    "segment, run, started_at, duration_ms, member_count, entered, exited, membership_file, snapshot";

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339()
}

impl Catalog {
    /// Opens (creating if needed) the catalog at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrations::migrate(&mut conn, path)?;
        Ok(Catalog { conn: Mutex::new(conn), path: path.to_path_buf() })
    }

    /// Makes every later commit wait until it is on disk (`synchronous = FULL`), so a power loss cannot undo a
    /// committed transaction; the default (`NORMAL` in WAL mode) survives a crash of the process, not of the
    /// machine.
    pub fn set_durable_commits(&self, durable: bool) -> Result<()> {
        self.with(|c| Ok(c.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })?))
    }

    /// The schema version of this catalog (after [`Catalog::open`] it is [`SCHEMA_VERSION`]).
    pub fn schema_version(&self) -> Result<u32> {
        self.with(|c| migrations::user_version(c))
    }

    /// Runs `f` on the connection: the one of the [`TxScope`] of this catalog the current task runs in (see
    /// [`Catalog::begin_scope`]), else the catalog's own.
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        if let Some(scope) = scope::current(self) {
            let mut c = scope.conn.lock().unwrap_or_else(|p| p.into_inner());
            return f(&mut c);
        }
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }

    /// Opens a transaction on a connection of its own (`BEGIN IMMEDIATE`: it holds the database's write lock
    /// until it ends, so other writers wait, and readers keep seeing the last commit). Every catalog call made by
    /// a future run with [`TxScope::run`] goes through it; nothing is visible to anyone else until
    /// [`TxScope::commit`], and dropping the scope without committing rolls everything back.
    pub(crate) fn begin_scope(self: &Arc<Self>) -> Result<Arc<TxScope>> {
        TxScope::begin(self, &self.path, BUSY_TIMEOUT)
    }

    /// Stores (inserting or replacing) an entity definition.
    pub fn put_entity(&self, e: &Entity) -> Result<()> {
        let def = serde_json::to_string(e)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO entities(name, definition, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
                params![e.name, def, now_text()],
            )?;
            Ok(())
        })
    }

    /// Deletes an entity with its snapshots and ingest history; returns the store files (data and quarantine) no
    /// longer referenced. Fails with not-found when it does not exist.
    pub fn delete_entity(&self, name: &str) -> Result<Vec<String>> {
        self.with(|c| {
            let tx = Tx::begin(c, true)?;
            let mut files = vec![];
            {
                let mut st = tx.prepare("SELECT files FROM snapshots WHERE entity = ?1")?;
                for f in st.query_map([name], |r| r.get::<_, String>(0))? {
                    let f: Vec<DataFile> = serde_json::from_str(&f?)?;
                    files.extend(f.into_iter().map(|f| f.path));
                }
                let mut st = tx.prepare("SELECT report FROM ingests WHERE entity = ?1")?;
                for r in st.query_map([name], |r| r.get::<_, String>(0))? {
                    let r: serde_json::Value = serde_json::from_str(&r?)?;
                    if let Some(f) = r.get("quarantine_file").and_then(|f| f.as_str()) {
                        files.push(f.to_string());
                    }
                }
            }
            tx.execute("DELETE FROM ingests WHERE entity = ?1", [name])?;
            tx.execute("DELETE FROM snapshots WHERE entity = ?1", [name])?;
            if tx.execute("DELETE FROM entities WHERE name = ?1", [name])? == 0 {
                return Err(Error::not_found("entity", name));
            }
            tx.commit()?;
            files.sort();
            files.dedup();
            Ok(files)
        })
    }

    /// An entity definition and its current snapshot version.
    pub fn entity(&self, name: &str) -> Result<Option<(Entity, i64)>> {
        self.with(|c| {
            let row: Option<(String, i64)> = c
                .query_row("SELECT definition, snapshot FROM entities WHERE name = ?1", [name], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            row.map(|(d, v)| Ok((serde_json::from_str(&d)?, v))).transpose()
        })
    }

    /// All entities, by name.
    pub fn entities(&self) -> Result<Vec<Entity>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT definition FROM entities ORDER BY name")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
            rows.iter().map(|d| Ok(serde_json::from_str(d)?)).collect()
        })
    }

    /// The snapshot at `version` of `entity` (version 0 is the empty snapshot).
    pub fn snapshot(&self, entity: &str, version: i64) -> Result<Snapshot> {
        if version == 0 {
            return Ok(Snapshot::default());
        }
        self.with(|c| {
            let (files, rows): (String, i64) = c.query_row(
                "SELECT files, row_count FROM snapshots WHERE entity = ?1 AND version = ?2",
                params![entity, version],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(Snapshot { version, files: serde_json::from_str(&files)?, row_count: rows as u64 })
        })
    }

    /// Atomically commits a new snapshot of `entity` whose parent is `parent`, with the ingest record.
    ///
    /// Fails with [`Error::Conflict`] if another writer committed since `parent` was read.
    pub fn commit_snapshot(
        &self,
        entity: &str,
        parent: i64,
        files: &[DataFile],
        operation: &str,
        ingest: Option<(&str, &str, &serde_json::Value)>,
    ) -> Result<Snapshot> {
        self.with(|c| {
            let tx = Tx::begin(c, false)?;
            let snap = commit_in(&tx, entity, parent, files, operation, ingest)?;
            tx.commit()?;
            Ok(snap)
        })
    }

    /// Forgets the snapshots of `entity` older than its latest `keep` (at least the current one is kept); returns
    /// how many were forgotten and the files that no kept snapshot references (each once).
    pub fn prune_snapshots(&self, entity: &str, keep: usize) -> Result<(u64, Vec<DataFile>)> {
        self.with(|c| {
            let tx = Tx::begin(c, false)?;
            let current: i64 = tx
                .query_row("SELECT snapshot FROM entities WHERE name = ?1", [entity], |r| r.get(0))
                .optional()?
                .ok_or_else(|| Error::not_found("entity", entity))?;
            let oldest_kept = current - keep.max(1) as i64 + 1;
            let snapshots: Vec<(i64, Vec<DataFile>)> = {
                let mut st = tx.prepare("SELECT version, files FROM snapshots WHERE entity = ?1")?;
                let rows = st
                    .query_map([entity], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                rows.into_iter().map(|(v, files)| Ok((v, serde_json::from_str(&files)?))).collect::<Result<Vec<_>>>()?
            };
            let kept: std::collections::HashSet<&str> = snapshots
                .iter()
                .filter(|(v, _)| *v >= oldest_kept)
                .flat_map(|(_, files)| files.iter().map(|f| f.path.as_str()))
                .collect();
            let mut seen = std::collections::HashSet::new();
            let mut gone = vec![];
            let mut removed = 0;
            for (_, files) in snapshots.iter().filter(|(v, _)| *v < oldest_kept) {
                removed += 1;
                for f in files {
                    if !kept.contains(f.path.as_str()) && seen.insert(f.path.as_str()) {
                        gone.push(f.clone());
                    }
                }
            }
            tx.execute("DELETE FROM snapshots WHERE entity = ?1 AND version < ?2", params![entity, oldest_kept])?;
            tx.commit()?;
            Ok((removed, gone))
        })
    }

    /// Every store file the catalog refers to: the data files of all snapshots, the quarantine files of all
    /// ingests, the membership files of all segment runs and the key files of all static-list versions.
    pub fn referenced_files(&self) -> Result<std::collections::HashSet<String>> {
        self.with(|c| {
            let mut out = std::collections::HashSet::new();
            let mut st = c.prepare("SELECT files FROM snapshots")?;
            for files in st.query_map([], |r| r.get::<_, String>(0))? {
                let files: Vec<DataFile> = serde_json::from_str(&files?)?;
                out.extend(files.into_iter().map(|f| f.path));
            }
            let mut st = c.prepare("SELECT report FROM ingests")?;
            for report in st.query_map([], |r| r.get::<_, String>(0))? {
                let report: serde_json::Value = serde_json::from_str(&report?)?;
                if let Some(f) = report.get("quarantine_file").and_then(|f| f.as_str()) {
                    out.insert(f.to_string());
                }
            }
            let mut st = c.prepare("SELECT membership_file FROM segment_runs")?;
            for f in st.query_map([], |r| r.get::<_, String>(0))? {
                out.insert(f?);
            }
            let mut st = c.prepare("SELECT file FROM static_lists")?;
            for f in st.query_map([], |r| r.get::<_, String>(0))? {
                out.insert(f?);
            }
            Ok(out)
        })
    }

    /// Forgets the quarantined rows of `entity`'s ingests: their reports keep the counts but lose the quarantine
    /// file and the sample of rows. Returns the quarantine files and how many rows they held.
    pub fn clear_quarantine(&self, entity: &str) -> Result<(Vec<String>, u64)> {
        self.with(|c| {
            let tx = Tx::begin(c, false)?;
            let reports: Vec<(String, String)> = {
                let mut st = tx.prepare("SELECT id, report FROM ingests WHERE entity = ?1")?;
                let rows = st.query_map([entity], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<Vec<_>, _>>()?;
                rows
            };
            let (mut files, mut rows) = (vec![], 0);
            for (id, text) in reports {
                let mut report: serde_json::Value = serde_json::from_str(&text)?;
                let file = report.get("quarantine_file").and_then(|f| f.as_str()).map(str::to_string);
                let sampled = report.get("quarantine_sample").and_then(|s| s.as_array()).is_some_and(|s| !s.is_empty());
                if file.is_none() && !sampled {
                    continue;
                }
                rows += report.get("rows_quarantined").and_then(|n| n.as_u64()).unwrap_or(0);
                files.extend(file);
                report["quarantine_file"] = serde_json::Value::Null;
                report["quarantine_sample"] = serde_json::json!([]);
                tx.execute("UPDATE ingests SET report = ?1 WHERE id = ?2", params![report.to_string(), id])?;
            }
            tx.commit()?;
            Ok((files, rows))
        })
    }

    /// Records an ingest that committed no snapshot (for example every row quarantined).
    pub fn record_ingest(&self, id: &str, entity: &str, source: &str, report: &serde_json::Value) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO ingests(id, entity, source, snapshot, report, created_at) VALUES (?1, ?2, ?3, NULL, ?4, ?5)",
                params![id, entity, source, report.to_string(), now_text()],
            )?;
            Ok(())
        })
    }

    /// Ingest reports of `entity`, oldest first.
    pub fn ingests(&self, entity: &str) -> Result<Vec<serde_json::Value>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT report FROM ingests WHERE entity = ?1 ORDER BY created_at, rowid")?;
            let rows = st.query_map([entity], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
            rows.iter().map(|d| Ok(serde_json::from_str(d)?)).collect()
        })
    }

    /// Stores a segment definition (insert or replace).
    pub fn put_segment(&self, s: &SegmentDefinition) -> Result<()> {
        let def = serde_json::to_string(s)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO segments(name, entity, definition, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET entity = excluded.entity, definition = excluded.definition, updated_at = excluded.updated_at",
                params![s.name, s.entity, def, now_text()],
            )?;
            Ok(())
        })
    }

    /// A segment definition.
    pub fn segment(&self, name: &str) -> Result<Option<SegmentDefinition>> {
        self.with(|c| {
            let d: Option<String> = c
                .prepare_cached("SELECT definition FROM segments WHERE name = ?1")?
                .query_row([name], |r| r.get(0))
                .optional()?;
            d.map(|d| Ok(serde_json::from_str(&d)?)).transpose()
        })
    }

    /// A segment's stored definition text (JSON), without parsing it.
    pub fn segment_text(&self, name: &str) -> Result<Option<String>> {
        self.with(|c| {
            Ok(c.query_row("SELECT definition FROM segments WHERE name = ?1", [name], |r| r.get(0)).optional()?)
        })
    }

    /// All segment definitions, by name.
    pub fn segments(&self) -> Result<Vec<SegmentDefinition>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT definition FROM segments ORDER BY name")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
            rows.iter().map(|d| Ok(serde_json::from_str(d)?)).collect()
        })
    }

    /// Deletes a segment, its run history and its static-list versions; returns the membership and key files that
    /// are now unreferenced.
    pub fn delete_segment(&self, name: &str) -> Result<Vec<String>> {
        self.with(|c| {
            let tx = Tx::begin(c, false)?;
            let files = {
                let mut st = tx.prepare("SELECT membership_file FROM segment_runs WHERE segment = ?1")?;
                let rows = st.query_map([name], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
                rows
            };
            let n = tx.execute("DELETE FROM segments WHERE name = ?1", [name])?;
            if n == 0 {
                return Err(Error::not_found("segment", name));
            }
            tx.execute("DELETE FROM segment_runs WHERE segment = ?1", [name])?;
            let lists = {
                let mut st = tx.prepare("SELECT file FROM static_lists WHERE segment = ?1")?;
                let rows = st.query_map([name], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
                rows
            };
            tx.execute("DELETE FROM static_lists WHERE segment = ?1", [name])?;
            tx.commit()?;
            Ok(files.into_iter().chain(lists).collect())
        })
    }

    /// Commits a new version of a static list together with its segment definition, in one transaction.
    /// `expected` is the version the change was computed from (0: none); if another writer committed meanwhile
    /// this fails with [`Error::Conflict`] and nothing changes.
    pub fn commit_static_list(
        &self,
        def: &SegmentDefinition,
        expected: i64,
        file: &str,
        key_count: u64,
        bytes: u64,
        operation: &str,
    ) -> Result<StaticListVersion> {
        let text = serde_json::to_string(def)?;
        self.with(|c| {
            let tx = Tx::begin(c, false)?;
            let latest: i64 = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM static_lists WHERE segment = ?1",
                [&def.name],
                |r| r.get(0),
            )?;
            if latest != expected {
                return Err(Error::Conflict {
                    what: format!("static segment `{}`", def.name),
                    message: format!(
                        "its key list changed concurrently (version {latest}, expected {expected}); retry"
                    ),
                });
            }
            let created_at = now_text();
            tx.execute(
                "INSERT INTO segments(name, entity, definition, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET entity = excluded.entity, definition = excluded.definition, updated_at = excluded.updated_at",
                params![def.name, def.entity, text, created_at],
            )?;
            tx.execute(
                "INSERT INTO static_lists(segment, version, file, key_count, bytes, operation, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![def.name, expected + 1, file, key_count as i64, bytes as i64, operation, created_at],
            )?;
            tx.commit()?;
            Ok(StaticListVersion {
                segment: def.name.clone(),
                version: expected + 1,
                file: file.to_string(),
                key_count,
                bytes,
                operation: operation.to_string(),
                created_at,
            })
        })
    }

    /// The versions of a static list, oldest first (empty: `segment` is not a static-list segment).
    pub fn static_list_versions(&self, segment: &str) -> Result<Vec<StaticListVersion>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT segment, version, file, key_count, bytes, operation, created_at FROM static_lists
                 WHERE segment = ?1 ORDER BY version",
            )?;
            let rows = st
                .query_map([segment], |r| {
                    Ok(StaticListVersion {
                        segment: r.get(0)?,
                        version: r.get(1)?,
                        file: r.get(2)?,
                        key_count: r.get::<_, i64>(3)? as u64,
                        bytes: r.get::<_, i64>(4)? as u64,
                        operation: r.get(5)?,
                        created_at: r.get(6)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// The latest version of a static list (`None`: `segment` is not a static-list segment).
    pub fn static_list(&self, segment: &str) -> Result<Option<StaticListVersion>> {
        Ok(self.static_list_versions(segment)?.pop())
    }

    /// Forgets every version of a static list but the latest `keep` (all of them with `keep` = 0, when the
    /// segment stops being a static list); returns the files no kept version uses.
    pub fn prune_static_list(&self, segment: &str, keep: usize) -> Result<Vec<String>> {
        self.with(|c| {
            let tx = Tx::begin(c, false)?;
            let latest: i64 = tx.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM static_lists WHERE segment = ?1",
                [segment],
                |r| r.get(0),
            )?;
            let oldest_kept = latest - keep as i64 + 1;
            let files = {
                let mut st = tx.prepare("SELECT file FROM static_lists WHERE segment = ?1 AND version < ?2")?;
                let rows = st
                    .query_map(params![segment, oldest_kept], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                rows
            };
            tx.execute("DELETE FROM static_lists WHERE segment = ?1 AND version < ?2", params![segment, oldest_kept])?;
            tx.commit()?;
            Ok(files)
        })
    }

    /// The latest run of a segment.
    pub fn last_run(&self, segment: &str) -> Result<Option<RunRecord>> {
        Ok(self.query_runs(segment, "ORDER BY run DESC LIMIT 1")?.pop())
    }

    /// All runs of a segment, oldest first.
    pub fn runs(&self, segment: &str) -> Result<Vec<RunRecord>> {
        self.query_runs(segment, "ORDER BY run")
    }

    /// Run `run` of a segment (`None`: its latest run) with its entity's definition text, in one cached
    /// statement; `None` when the segment or the run does not exist. The read path of a members page (see
    /// `Workspace::members_run`).
    pub fn segment_run(&self, segment: &str, run: Option<i64>) -> Result<Option<(RunRecord, Option<String>)>> {
        self.with(|c| {
            // The join makes a run of a deleted segment unreadable even if a row were left behind.
            let mut st = c.prepare_cached(
                "SELECT r.segment, r.run, r.started_at, r.duration_ms, r.member_count, r.entered, r.exited,
                        r.membership_file, r.snapshot, e.definition
                 FROM segments s JOIN segment_runs r ON r.segment = s.name LEFT JOIN entities e ON e.name = s.entity
                 WHERE s.name = ?1 AND (?2 IS NULL OR r.run = ?2) ORDER BY r.run DESC LIMIT 1",
            )?;
            Ok(st.query_row(params![segment, run], |r| Ok((run_record(r)?, r.get(9)?))).optional()?)
        })
    }

    fn query_runs(&self, segment: &str, order: &str) -> Result<Vec<RunRecord>> {
        self.with(|c| {
            let mut st =
                c.prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM segment_runs WHERE segment = ?1 {order}"))?;
            let rows = st.query_map([segment], run_record)?.collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// Deletes the runs of `segment` numbered below `run`; returns their membership files.
    pub fn delete_runs_before(&self, segment: &str, run: i64) -> Result<Vec<String>> {
        self.with(|c| {
            let tx = Tx::begin(c, false)?;
            let files = {
                let mut st = tx.prepare("SELECT membership_file FROM segment_runs WHERE segment = ?1 AND run < ?2")?;
                let rows =
                    st.query_map(params![segment, run], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
                rows
            };
            tx.execute("DELETE FROM segment_runs WHERE segment = ?1 AND run < ?2", params![segment, run])?;
            tx.commit()?;
            Ok(files)
        })
    }

    /// Records a run; fails with [`Error::Conflict`] if a run with that number exists (a concurrent evaluation).
    /// Inside a transaction scope the record waits for the scope's commit, so the run's ledger rows written in the
    /// same scope commit with it (see [`Catalog::insert_run_with`] for the record and its rows in one call).
    pub fn insert_run(&self, r: &RunRecord) -> Result<()> {
        self.with(|c| workflows::insert_run_record(c, r))
    }
}

/// The body of [`Catalog::commit_snapshot`] inside an open transaction.
fn commit_in(
    tx: &Connection,
    entity: &str,
    parent: i64,
    files: &[DataFile],
    operation: &str,
    ingest: Option<(&str, &str, &serde_json::Value)>,
) -> Result<Snapshot> {
    let rows: u64 = files.iter().map(|f| f.rows).sum();
    let files_json = serde_json::to_string(files)?;
    let version = parent + 1;
    let changed = tx.execute(
        "UPDATE entities SET snapshot = ?1, updated_at = ?2 WHERE name = ?3 AND snapshot = ?4",
        params![version, now_text(), entity, parent],
    )?;
    if changed != 1 {
        return Err(Error::Conflict {
            what: format!("entity `{entity}`"),
            message: format!("another writer committed after snapshot {parent}; retry the ingest"),
        });
    }
    tx.execute(
        "INSERT INTO snapshots(entity, version, files, row_count, operation, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![entity, version, files_json, rows as i64, operation, now_text()],
    )?;
    if let Some((id, source, report)) = ingest {
        tx.execute(
            "INSERT INTO ingests(id, entity, source, snapshot, report, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, entity, source, version, report.to_string(), now_text()],
        )?;
    }
    Ok(Snapshot { version, files: files.to_vec(), row_count: rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::model::{Attribute, DataType};

    #[test]
    fn a_locked_catalog_is_a_retryable_conflict_not_raw_sqlite_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segkit.db");
        let cat = Catalog::open(&path).unwrap();
        cat.conn.lock().unwrap().busy_timeout(std::time::Duration::ZERO).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let e = cat.put_entity(&Entity::profile("u", "id").attribute(Attribute::new("id", DataType::Int64)));
        let e = e.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e:?}");
        assert!(
            e.to_string().starts_with("concurrent modification of the catalog: the catalog database is locked"),
            "{e}"
        );
        other.execute_batch("ROLLBACK").unwrap();
        cat.put_entity(&Entity::profile("u", "id").attribute(Attribute::new("id", DataType::Int64))).unwrap();
    }

    #[test]
    fn other_sqlite_failures_are_opaque_catalog_errors_with_a_cause() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&dir.path().join("segkit.db")).unwrap();
        let e = cat.with(|c| Ok(c.execute("INSERT INTO no_such_table VALUES (1)", [])?)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert!(matches!(&e, Error::Catalog { message, cause: Some(_) } if message.contains("no such table")), "{e:?}");
        assert_eq!(e.chain()[0], "catalog error: no such table: no_such_table");
    }
}
