//! Cron schedules and their state in the catalog (migration 5), and the ledger rows of scheduled workflow runs.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::workflows::insert_deliveries;
use super::{now_text, Catalog};
use crate::error::Result;
use crate::workflow::ledger::{NewDelivery, Reentry};
use crate::workflow::schedule::ScheduleInfo;

const COLS: &str = "definition, next_due, last_due, last_run_at, last_duration_ms, last_error, runs, failures";

fn instant(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.and_then(DateTime::from_timestamp_millis)
}

/// A row: the definition (JSON) and the state, parsed by [`parse`].
type Row = (String, [Option<i64>; 3], Option<f64>, Option<String>, i64, i64);

fn info(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?], r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
}

fn parse(
    (definition, [next_due, last_due, last_run_at], last_duration_ms, last_error, runs, failures): Row,
) -> Result<ScheduleInfo> {
    Ok(ScheduleInfo {
        spec: serde_json::from_str(&definition)?,
        next_due: instant(next_due),
        last_due: instant(last_due),
        last_run_at: instant(last_run_at),
        last_duration_ms,
        last_error,
        runs: runs.max(0) as u64,
        failures: failures.max(0) as u64,
    })
}

impl Catalog {
    /// Stores (inserting or replacing) a schedule definition (JSON) due next at `next_due` (ms); a replaced
    /// schedule keeps its run history.
    pub fn put_schedule(&self, name: &str, definition: &str, next_due: Option<i64>) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO schedules(name, definition, next_due, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET definition = excluded.definition, next_due = excluded.next_due,
                   updated_at = excluded.updated_at",
                params![name, definition, next_due, now_text()],
            )?;
            Ok(())
        })
    }

    /// A schedule with its state.
    pub fn schedule(&self, name: &str) -> Result<Option<ScheduleInfo>> {
        let row = self.with(|c| {
            Ok(c.query_row(&format!("SELECT {COLS} FROM schedules WHERE name = ?1"), [name], info).optional()?)
        })?;
        row.map(parse).transpose()
    }

    /// All schedules, by name.
    pub fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        self.query_schedules("ORDER BY name", None)
    }

    /// The schedules due at or before `now` (ms), earliest first.
    pub fn due_schedules(&self, now: i64) -> Result<Vec<ScheduleInfo>> {
        self.query_schedules("WHERE next_due <= ?1 ORDER BY next_due, name", Some(now))
    }

    /// The earliest next due instant of any schedule (ms).
    pub fn earliest_due(&self) -> Result<Option<i64>> {
        self.with(|c| Ok(c.query_row("SELECT min(next_due) FROM schedules", [], |r| r.get(0))?))
    }

    fn query_schedules(&self, tail: &str, now: Option<i64>) -> Result<Vec<ScheduleInfo>> {
        let rows = self.with(|c| {
            let mut st = c.prepare(&format!("SELECT {COLS} FROM schedules {tail}"))?;
            let rows = match now {
                Some(n) => st.query_map([n], info)?.collect::<rusqlite::Result<Vec<_>>>()?,
                None => st.query_map([], info)?.collect::<rusqlite::Result<Vec<_>>>()?,
            };
            Ok(rows)
        })?;
        rows.into_iter().map(parse).collect()
    }

    /// How many schedules there are.
    pub fn schedule_count(&self) -> Result<usize> {
        self.with(|c| Ok(c.query_row("SELECT count(*) FROM schedules", [], |r| r.get::<_, i64>(0))? as usize))
    }

    /// Deletes a schedule; false if there was none.
    pub fn delete_schedule(&self, name: &str) -> Result<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM schedules WHERE name = ?1", [name])? > 0))
    }

    /// Records a run of a schedule that was due at `expected_next_due` (ms): its due instant, when it finished,
    /// how long it took, its error, and the next due instant. Returns false (changing nothing) when the schedule
    /// was deleted, redefined or run by someone else in the meantime (its `next_due` moved).
    #[allow(clippy::too_many_arguments)]
    pub fn finish_schedule(
        &self,
        name: &str,
        expected_next_due: i64,
        due: i64,
        next_due: Option<i64>,
        finished_at: i64,
        duration_ms: f64,
        error: Option<&str>,
    ) -> Result<bool> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE schedules SET next_due = ?1, last_due = ?2, last_run_at = ?3, last_duration_ms = ?4,
                   last_error = ?5, runs = runs + 1, failures = failures + (?5 IS NOT NULL), updated_at = ?6
                 WHERE name = ?7 AND next_due = ?8",
                params![next_due, due, finished_at, duration_ms, error, now_text(), name, expected_next_due],
            )? > 0)
        })
    }

    /// Inserts the first-step rows of a workflow started under the trigger version `trigger` (ignoring rows
    /// whose idempotency key exists and ones the re-entry policy filters out), in one transaction. Returns how
    /// many were added.
    pub fn trigger_as(&self, rows: &[NewDelivery], reentry: Option<&Reentry>, now: i64) -> Result<u64> {
        self.with(|c| {
            let tx = super::Tx::begin(c, true)?;
            let added = insert_deliveries(&tx, rows, reentry, now)?;
            tx.commit()?;
            Ok(added)
        })
    }
}
