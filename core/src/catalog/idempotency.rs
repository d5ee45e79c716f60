//! Kept responses of `Idempotency-Key` requests (migration 8).

use rusqlite::{params, OptionalExtension};

use super::Catalog;
use crate::error::Result;

/// A response kept for an idempotency key, with the fingerprint of the request body it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// A hash of the request body the key was first used with (hex).
    pub fingerprint: String,
    /// The HTTP status of the kept response.
    pub status: u16,
    /// Its `Content-Type`, if it had one.
    pub content_type: Option<String>,
    /// Its body.
    pub body: Vec<u8>,
    /// When it was kept (seconds since the epoch, workspace clock).
    pub created_at: i64,
}

impl Catalog {
    /// The record kept for `scope` if it is newer than `expired_before` (seconds since the epoch).
    pub fn idempotency_record(&self, scope: &str, expired_before: i64) -> Result<Option<IdempotencyRecord>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT fingerprint, status, content_type, body, created_at FROM idempotency
                 WHERE scope = ?1 AND created_at >= ?2",
            )?;
            Ok(st
                .query_row(params![scope, expired_before], |r| {
                    Ok(IdempotencyRecord {
                        fingerprint: r.get(0)?,
                        status: r.get(1)?,
                        content_type: r.get(2)?,
                        body: r.get(3)?,
                        created_at: r.get(4)?,
                    })
                })
                .optional()?)
        })
    }

    /// Keeps `record` for `scope` (the first one kept wins), and in the same transaction forgets records older
    /// than `expired_before` and the oldest beyond `max`.
    pub fn put_idempotency_record(
        &self,
        scope: &str,
        record: &IdempotencyRecord,
        expired_before: i64,
        max: usize,
    ) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            tx.execute("DELETE FROM idempotency WHERE created_at < ?1", [expired_before])?;
            tx.execute(
                "INSERT INTO idempotency(scope, fingerprint, status, content_type, body, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(scope) DO UPDATE SET fingerprint = excluded.fingerprint, status = excluded.status,
                     content_type = excluded.content_type, body = excluded.body, created_at = excluded.created_at
                 WHERE idempotency.created_at < ?7",
                params![
                    scope,
                    record.fingerprint,
                    record.status,
                    record.content_type,
                    record.body,
                    record.created_at,
                    expired_before
                ],
            )?;
            let max = i64::try_from(max).unwrap_or(i64::MAX);
            tx.execute(
                "DELETE FROM idempotency WHERE scope IN (SELECT scope FROM idempotency
                     ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?1)",
                [max],
            )?;
            tx.commit()?;
            Ok(())
        })
    }
}
