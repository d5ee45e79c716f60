//! Whole-table reads for the `segkit.*` system tables (see [`crate::monitoring`]).

use super::{Catalog, RunRecord, RUN_COLUMNS};
use crate::error::Result;

/// One row of the ingest history: a sync of a named source or a direct ingest.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestRecord {
    /// The ingest id.
    pub id: String,
    /// The entity written.
    pub entity: String,
    /// The named source, or a description of a direct ingest's source.
    pub source: String,
    /// The snapshot it committed (none: nothing was written).
    pub snapshot: Option<i64>,
    /// Its report (JSON of an [`IngestReport`](crate::IngestReport)).
    pub report: String,
    /// When it was recorded (RFC 3339).
    pub created_at: String,
}

impl Catalog {
    /// The runs of every segment, oldest first, at most `limit`.
    pub fn all_runs(&self, limit: usize) -> Result<Vec<RunRecord>> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM segment_runs ORDER BY started_at, segment, run LIMIT ?1"
            ))?;
            let rows = st
                .query_map([limit.min(i64::MAX as usize) as i64], super::run_record)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// The ingest history of every entity, oldest first, at most `limit`.
    pub fn all_ingests(&self, limit: usize) -> Result<Vec<IngestRecord>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id, entity, source, snapshot, report, created_at FROM ingests ORDER BY created_at, rowid
                 LIMIT ?1",
            )?;
            let rows = st
                .query_map([limit.min(i64::MAX as usize) as i64], |r| {
                    Ok(IngestRecord {
                        id: r.get(0)?,
                        entity: r.get(1)?,
                        source: r.get(2)?,
                        snapshot: r.get(3)?,
                        report: r.get(4)?,
                        created_at: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Ledger rows by status, for the queue-depth and dead-letter gauges: (status, count) of the statuses
    /// `pending`, `running` and `dead` that have rows (counted on the partial index `deliveries_due`, which
    /// holds only those).
    pub fn delivery_counts(&self) -> Result<Vec<(String, u64)>> {
        self.with(|c| {
            let mut st = c.prepare_cached(
                "SELECT status, count(*) FROM deliveries
                 WHERE status = 'pending' OR status = 'running' OR status = 'dead' GROUP BY status",
            )?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }
}
