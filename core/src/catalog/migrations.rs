//! Numbered schema migrations of the catalog.
//!
//! The catalog's schema version is SQLite's `PRAGMA user_version`; [`MIGRATIONS`]`[i]` takes a catalog from
//! version `i` to `i + 1`, in one transaction together with the new `user_version` (and the `meta.schema_version`
//! row kept for people reading the file), so a crash leaves a catalog at one version or the next, never between.
//!
//! **Rule: the list is append-only.** A migration that has shipped is never edited, reordered or removed — a
//! catalog made by any released segkit must open in every later one. A schema change is a new entry at the end.
//! A catalog whose version is higher than this build knows was written by a newer segkit and is refused, not
//! misread. `tests/fixtures/workspace-v1/` is a workspace written at version 1; `core/tests/migrations.rs` opens it.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

/// Version 1: the schema before numbered migrations existed. Every statement is `IF NOT EXISTS`, so a v1 catalog
/// made before migrations (`user_version = 0`, `meta.schema_version = '1'`) is adopted unchanged.
const V1: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entities (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    snapshot INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    entity TEXT NOT NULL REFERENCES entities(name) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    files TEXT NOT NULL,
    row_count INTEGER NOT NULL,
    operation TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (entity, version)
);
CREATE TABLE IF NOT EXISTS ingests (
    id TEXT PRIMARY KEY,
    entity TEXT NOT NULL,
    source TEXT NOT NULL,
    snapshot INTEGER,
    report TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS segments (
    name TEXT PRIMARY KEY,
    entity TEXT NOT NULL,
    definition TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS segment_runs (
    segment TEXT NOT NULL,
    run INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    member_count INTEGER NOT NULL,
    entered INTEGER NOT NULL,
    exited INTEGER NOT NULL,
    membership_file TEXT NOT NULL,
    snapshot INTEGER NOT NULL,
    PRIMARY KEY (segment, run)
);
"#;

/// Version 2: named sources for the connectors (a sync's cursor is committed in the same transaction as the
/// snapshot it produced, so `cursor` and `snapshot` change together), and an index for the per-entity ingest
/// history that [`Catalog::ingests`](super::Catalog::ingests) and quarantine clearing read today.
const V2: &str = r#"
CREATE TABLE sources (
    name TEXT PRIMARY KEY,
    entity TEXT NOT NULL,
    config TEXT NOT NULL,
    mapping TEXT NOT NULL,
    mode TEXT NOT NULL,
    cursor TEXT,
    snapshot INTEGER,
    updated_at TEXT NOT NULL
);
CREATE INDEX ingests_by_entity ON ingests(entity, created_at);
"#;

/// Migration 3: static-list segments. Each change of a static list (replace, add, remove) writes one Parquet file
/// of the whole sorted key list and commits a new version row; the latest version is the list. `vacuum` forgets old versions
/// like old snapshots.
const V3: &str = r#"
CREATE TABLE static_lists (
    segment TEXT NOT NULL,
    version INTEGER NOT NULL,
    file TEXT NOT NULL,
    key_count INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    operation TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (segment, version)
);
"#;

/// Migration 4: workflows. Message templates, workflow definitions (with a counter of manual triggers), the
/// durable delivery ledger — one row per (workflow, trigger version, step, entity) under a UNIQUE idempotency
/// key, written in the transaction of the segment run or trigger that produced it; a row is claimed with a lease
/// (`lease_until`) so a killed dispatcher's claims expire and are taken again — and per-channel suppression lists.
const V4: &str = r#"
CREATE TABLE templates (
    name TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    parts TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE workflows (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    manual_triggers INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    workflow TEXT NOT NULL,
    trigger TEXT NOT NULL,
    step TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at INTEGER NOT NULL,
    lease_until INTEGER,
    last_error TEXT,
    receipt TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries(status, due_at);
CREATE INDEX deliveries_by_entity ON deliveries(workflow, entity_key, created_at);
CREATE TABLE suppressions (
    channel TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (channel, entity_key)
);
"#;

/// Migration 5: workflow steps and policies. A ledger row records the channel an action step sent on and when
/// (`sent_at`, which frequency caps count across workflows), a `detail` of how the step went (the branch or
/// split choice, the zone a wait used, the hold by quiet hours, the cap), and `resolved_at`, the instant a wait
/// `until` resolved to.
const V5: &str = r#"
ALTER TABLE deliveries ADD COLUMN channel TEXT;
ALTER TABLE deliveries ADD COLUMN sent_at INTEGER;
ALTER TABLE deliveries ADD COLUMN detail TEXT;
ALTER TABLE deliveries ADD COLUMN resolved_at INTEGER;
CREATE INDEX deliveries_by_channel ON deliveries(entity_key, channel, sent_at);
"#;

/// Migration 6: cron schedules. A schedule's definition (JSON), the next instant it is due (ms since the epoch),
/// and its last run: the due instant it performed, when it finished, whether it failed and why, and counters.
const V6: &str = r#"
CREATE TABLE schedules (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    next_due INTEGER,
    last_due INTEGER,
    last_run_at INTEGER,
    last_duration_ms REAL,
    last_error TEXT,
    runs INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);
"#;

/// Migration 7: API keys and the audit log of the REST API. A key is stored as the SHA-256 of its secret (the
/// secret itself is shown once); `audit_log` rows say who did what to which object when.
const V7: &str = r#"
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT
);
"#;

/// Migration 8: the REST API's `Idempotency-Key` records (the first response to a key, kept so a retry after a
/// restart gets the same answer; expired by `created_at`), and `meta.auth_generation`, a counter that triggers
/// bump on every change to `api_keys`, so a process caching verified keys sees a key created or revoked by any
/// process.
const V8: &str = r#"
CREATE TABLE idempotency (
    scope TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status INTEGER NOT NULL,
    content_type TEXT,
    body BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX idempotency_created ON idempotency(created_at);
INSERT INTO meta(key, value) VALUES ('auth_generation', '0') ON CONFLICT(key) DO NOTHING;
CREATE TRIGGER api_keys_generation_insert AFTER INSERT ON api_keys BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'auth_generation';
END;
CREATE TRIGGER api_keys_generation_update AFTER UPDATE ON api_keys BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'auth_generation';
END;
CREATE TRIGGER api_keys_generation_delete AFTER DELETE ON api_keys BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'auth_generation';
END;
"#;

/// The entity attributes a trigger captured for a ledger row's first attempt (a JSON object; NULL: read them
/// at send time), cleared when the row finishes or is retried.
const V9: &str = r#"
ALTER TABLE deliveries ADD COLUMN context TEXT;
"#;

/// The due index covers only the rows a dispatcher or the gauges look up by status — pending, running and
/// dead — so a delivery that finishes removes its entry instead of moving it to a status nobody searches by
/// (a query uses it when its WHERE names one of those statuses as a literal, e.g. `status = 'pending'`).
const V10: &str = r#"
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries(status, due_at)
    WHERE status = 'pending' OR status = 'running' OR status = 'dead';
"#;

/// The migrations, in order; see the module doc for the append-only rule.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9, V10];

/// The schema version this build of segkit writes (the number of migrations).
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

pub(super) fn user_version(c: &Connection) -> Result<u32> {
    Ok(c.pragma_query_value(None, "user_version", |r| r.get::<_, u32>(0))?)
}

/// Brings the catalog at `path` to [`SCHEMA_VERSION`], one transaction per migration.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    loop {
        // IMMEDIATE takes the write lock before reading the version, so two processes opening one catalog at
        // once run each migration exactly once.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = user_version(&tx)?;
        if current > SCHEMA_VERSION {
            return Err(Error::definition(
                format!("catalog {}", path.display()),
                format!(
                    "schema version {current} was written by a newer segkit; this build knows versions up to \
                     {SCHEMA_VERSION} — upgrade segkit to open it"
                ),
            ));
        }
        if current == SCHEMA_VERSION {
            return Ok(());
        }
        let next = current + 1;
        tx.execute_batch(MIGRATIONS[current as usize])?;
        tx.pragma_update(None, "user_version", next)?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('schema_version', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [next.to_string()],
        )?;
        tx.commit()?;
    }
}
