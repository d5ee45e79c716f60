//! API keys and the audit log in the catalog (migration 7).

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::Catalog;
use crate::auth::{ApiKey, AuditEntry, AuditFilter, Role};
use crate::error::{Error, Result};

const KEY_COLS: &str = "id, name, role, created_at, revoked_at";

fn key(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, String, Option<String>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn parse((id, name, role, created_at, revoked_at): (String, String, String, String, Option<String>)) -> Result<ApiKey> {
    Ok(ApiKey { id, name, role: role.parse::<Role>()?, created_at, revoked_at })
}

/// One audit row to insert: (at, actor, action, target, detail).
pub type NewAudit<'a> = (&'a str, &'a str, &'a str, &'a str, Option<&'a str>);

fn insert_audit(c: &rusqlite::Connection, (at, actor, action, target, detail): NewAudit<'_>) -> Result<()> {
    c.execute(
        "INSERT INTO audit_log(at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![at, actor, action, target, detail],
    )?;
    Ok(())
}

impl Catalog {
    /// Inserts a key with the hash of its secret, and its audit row, in one transaction; refused when `max`
    /// keys are active already.
    pub fn insert_api_key(&self, key: &ApiKey, hash: &str, max: usize, audit: NewAudit<'_>) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let active: i64 =
                tx.query_row("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL", [], |r| r.get(0))?;
            if active as usize >= max {
                return Err(Error::InvalidArgument(format!(
                    "the workspace has {active} active API keys, the most allowed (limit MAX_API_KEYS = {max}); \
                     revoke one first"
                )));
            }
            tx.execute(
                "INSERT INTO api_keys(id, name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![key.id, key.name, key.role.as_str(), hash, key.created_at],
            )?;
            insert_audit(&tx, audit)?;
            tx.commit()?;
            Ok(())
        })
    }

    /// Every key, oldest first.
    pub fn api_keys(&self) -> Result<Vec<ApiKey>> {
        let rows = self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {KEY_COLS} FROM api_keys ORDER BY created_at, id"))?;
            let rows = st.query_map([], key)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })?;
        rows.into_iter().map(parse).collect()
    }

    /// A key by id.
    pub fn api_key(&self, id: &str) -> Result<Option<ApiKey>> {
        let row = self.with(|c| {
            Ok(c.query_row(&format!("SELECT {KEY_COLS} FROM api_keys WHERE id = ?1"), [id], key).optional()?)
        })?;
        row.map(parse).transpose()
    }

    /// The counter every change to `api_keys` bumps (by any process: triggers of migration 8 keep it), for
    /// caches of verified keys.
    pub fn auth_generation(&self) -> Result<i64> {
        self.with(|c| {
            let mut st = c.prepare_cached("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'auth_generation'")?;
            Ok(st.query_row([], |r| r.get::<_, i64>(0)).optional()?.unwrap_or(0))
        })
    }

    /// The active (not revoked) key whose secret hashes to `hash`.
    pub fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        let row = self.with(|c| {
            Ok(c.query_row(
                &format!("SELECT {KEY_COLS} FROM api_keys WHERE hash = ?1 AND revoked_at IS NULL"),
                [hash],
                key,
            )
            .optional()?)
        })?;
        row.map(parse).transpose()
    }

    /// Marks a key revoked at `at` (a revoked key stays revoked at its first time) with its audit row; false
    /// when there is no such key.
    pub fn revoke_api_key(&self, id: &str, at: &str, audit: NewAudit<'_>) -> Result<bool> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let n =
                tx.execute("UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1", params![id, at])?;
            if n == 0 {
                return Ok(false);
            }
            insert_audit(&tx, audit)?;
            tx.commit()?;
            Ok(true)
        })
    }

    /// Appends a row to the audit log.
    pub fn append_audit(&self, entry: NewAudit<'_>) -> Result<()> {
        self.with(|c| insert_audit(c, entry))
    }

    /// The audit log, oldest first, at most `limit` rows (from the newest end when `newest` is set).
    pub fn audit_log(&self, limit: usize, newest: bool) -> Result<Vec<AuditEntry>> {
        let filter = crate::auth::AuditFilter { newest_first: newest, ..Default::default() };
        let mut rows = self.audit_entries(&filter, limit)?;
        if newest {
            rows.reverse();
        }
        Ok(rows)
    }

    /// Audit rows matching `filter`, in its order, at most `limit`.
    pub fn audit_entries(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditEntry>> {
        use rusqlite::types::Value;
        let mut conds = vec![];
        let mut args: Vec<Value> = vec![];
        for (col, v) in [("actor", &filter.actor), ("action", &filter.action), ("target", &filter.target)] {
            if let Some(v) = v {
                args.push(Value::Text(v.clone()));
                conds.push(format!("{col} = ?{}", args.len()));
            }
        }
        for (op, v) in [(">", filter.after_id), ("<", filter.before_id)] {
            if let Some(v) = v {
                args.push(Value::Integer(v));
                conds.push(format!("id {op} ?{}", args.len()));
            }
        }
        let clause = if conds.is_empty() { String::new() } else { format!("WHERE {}", conds.join(" AND ")) };
        let order = if filter.newest_first { "DESC" } else { "ASC" };
        let limit = limit.min(i64::MAX as usize);
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT id, at, actor, action, target, detail FROM audit_log {clause} ORDER BY id {order} LIMIT {limit}"
            ))?;
            let rows = st
                .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                    Ok(AuditEntry {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        target: r.get(4)?,
                        detail: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
