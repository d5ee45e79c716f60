//! Templates, workflows, the delivery ledger and suppression lists in the catalog (migration 4).

use std::collections::HashSet;

use rusqlite::{params, params_from_iter, OptionalExtension};

use super::{now_text, Catalog, RunRecord};
use crate::error::{Error, Result};
use crate::workflow::ledger::{idempotency_key, DeliveryFilter, LedgerRow, NewDelivery, Reentry, Status, WorkflowRun};

const ROW: &str = "id, idempotency_key, workflow, trigger, step, entity, entity_key, status, attempts, due_at, \
                   last_error, receipt, created_at, updated_at, channel, detail, resolved_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerRow> {
    let status: String = r.get(7)?;
    Ok(LedgerRow {
        id: r.get(0)?,
        idempotency_key: r.get(1)?,
        workflow: r.get(2)?,
        trigger: r.get(3)?,
        step: r.get(4)?,
        entity: r.get(5)?,
        entity_key: r.get(6)?,
        status: Status::parse(&status).unwrap_or(Status::Dead),
        attempts: r.get(8)?,
        due_at: r.get(9)?,
        last_error: r.get(10)?,
        receipt: r.get(11)?,
        created_at: r.get(12)?,
        updated_at: r.get(13)?,
        channel: r.get(14)?,
        detail: r.get(15)?,
        resolved_at: r.get(16)?,
    })
}

/// How [`Catalog::finish_delivery_with`] finishes a claimed row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finish<'a> {
    /// The final status.
    pub status: Status,
    /// The receiver's receipt.
    pub receipt: Option<&'a str>,
    /// The error (for `dead`).
    pub error: Option<&'a str>,
    /// How the step went (kept when `None`).
    pub detail: Option<&'a str>,
    /// The channel of an action step (kept when `None`).
    pub channel: Option<&'a str>,
    /// Whether it counts as sent on `channel` now (for frequency caps).
    pub sent: bool,
}

impl Finish<'_> {
    /// A finish with `status` and nothing else.
    pub fn status(status: Status) -> Self {
        Finish { status, receipt: None, error: None, detail: None, channel: None, sent: false }
    }
}

/// A frequency cap to check in [`Catalog::reserve_send`]: at most `max` sends on the channel since `since` (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapWindow {
    /// Most sends.
    pub max: u32,
    /// The window's start, ms since the epoch (exclusive).
    pub since: i64,
}

/// The outcome of one claimed ledger row, as [`Catalog::record_outcomes`] writes it (the dispatcher collects
/// these from finished deliveries and commits them in groups).
// `Finish`, the common variant, is the large one: boxing its next row would cost an allocation per delivery.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerWrite {
    /// Finishes the row with a final status and adds the workflow's next row.
    Finish {
        /// The row.
        id: i64,
        /// The attempt that claimed it.
        attempts: u32,
        /// The final status.
        status: Status,
        /// The receiver's receipt.
        receipt: Option<String>,
        /// The error (for `dead`).
        error: Option<String>,
        /// How the step went (kept when `None`).
        detail: Option<String>,
        /// The channel of an action step (kept when `None`).
        channel: Option<String>,
        /// Whether it counts as sent on `channel` now (for frequency caps).
        sent: bool,
        /// The workflow's next row, added when the finish applies.
        next: Option<NewDelivery>,
    },
    /// Back to pending without counting the attempt (quiet hours, a rate limit, a wait `until`).
    Hold {
        /// The row.
        id: i64,
        /// The attempt that claimed it.
        attempts: u32,
        /// When it is due again, ms since the epoch.
        due_at: i64,
        /// How the step went (kept when `None`).
        detail: Option<String>,
        /// For a wait `until`: the resolved instant (kept when `None`).
        resolved_at: Option<i64>,
    },
    /// Back to pending after a failed attempt, due at `due_at`, with the attempt's error.
    Retry {
        /// The row.
        id: i64,
        /// The attempt that claimed it.
        attempts: u32,
        /// When it is due again, ms since the epoch.
        due_at: i64,
        /// Why the attempt failed.
        error: String,
    },
}

impl LedgerWrite {
    /// The write that finishes row `id` (claimed for attempt `attempts`) as `f` says, adding `next`.
    pub fn finish(id: i64, attempts: u32, f: &Finish<'_>, next: Option<&NewDelivery>) -> LedgerWrite {
        LedgerWrite::Finish {
            id,
            attempts,
            status: f.status,
            receipt: f.receipt.map(str::to_string),
            error: f.error.map(str::to_string),
            detail: f.detail.map(str::to_string),
            channel: f.channel.map(str::to_string),
            sent: f.sent,
            next: next.cloned(),
        }
    }
}

impl LedgerWrite {
    /// The row it writes.
    pub fn id(&self) -> i64 {
        match self {
            LedgerWrite::Finish { id, .. } | LedgerWrite::Hold { id, .. } | LedgerWrite::Retry { id, .. } => *id,
        }
    }
}

/// Applies one write in `tx` (a finish's next row included); false when the row is no longer claimed by that
/// attempt.
fn apply_write(tx: &rusqlite::Connection, w: &LedgerWrite, now: i64) -> Result<bool> {
    let applied = update_one(tx, w, now)?;
    if let (true, LedgerWrite::Finish { next: Some(next), .. }) = (applied, w) {
        insert_deliveries(tx, std::slice::from_ref(next), None, now)?;
    }
    Ok(applied)
}

// The SET clauses of the three writes: `UPDATE deliveries` (one row: by id) or `UPDATE deliveries NOT INDEXED`
// (a group: by the ids' rowids — without NOT INDEXED the planner may walk every running row of the
// `(status, due_at)` index and test each against the ids instead).
const FINISH: &str = "SET status = ?1, receipt = ?2, last_error = ?3, lease_until = NULL,
       context = NULL, updated_at = ?4, detail = coalesce(?7, detail), channel = coalesce(?8, channel),
       sent_at = CASE WHEN ?9 THEN ?4 ELSE sent_at END";
const HOLD: &str = "SET status = 'pending', attempts = attempts - 1, due_at = ?1, lease_until = NULL,
       detail = coalesce(?2, detail), resolved_at = coalesce(?3, resolved_at), updated_at = ?4";
const RETRY: &str = "SET status = 'pending', due_at = ?1, last_error = ?2, lease_until = NULL,
       context = NULL, updated_at = ?3";

/// Updates the row of one write (not a finish's next row); false when it is no longer claimed by that attempt.
fn update_one(tx: &rusqlite::Connection, w: &LedgerWrite, now: i64) -> Result<bool> {
    let one = "WHERE id = ?5 AND status = 'running' AND attempts = ?6";
    let n = match w {
        LedgerWrite::Finish { id, attempts, status, receipt, error, detail, channel, sent, .. } => tx
            .prepare_cached(&format!("UPDATE deliveries {FINISH} {one}"))?
            .execute(params![status.as_str(), receipt, error, now, id, attempts, detail, channel, sent])?,
        LedgerWrite::Hold { id, attempts, due_at, detail, resolved_at } => tx
            .prepare_cached(&format!("UPDATE deliveries {HOLD} {one}"))?
            .execute(params![due_at, detail, resolved_at, now, id, attempts])?,
        LedgerWrite::Retry { id, attempts, due_at, error } => tx
            .prepare_cached(&format!(
                "UPDATE deliveries {RETRY} WHERE id = ?4 AND status = 'running' AND attempts = ?5"
            ))?
            .execute(params![due_at, error, now, id, attempts])?,
    };
    Ok(n > 0)
}

/// The writes one set-based statement applies: the same kind, values and claiming attempt (they differ only by
/// row id).
#[derive(PartialEq, Eq, Hash)]
enum Group<'a> {
    Finish {
        attempts: u32,
        status: &'static str,
        receipt: Option<&'a str>,
        error: Option<&'a str>,
        detail: Option<&'a str>,
        channel: Option<&'a str>,
        sent: bool,
    },
    Hold {
        attempts: u32,
        due_at: i64,
        detail: Option<&'a str>,
        resolved_at: Option<i64>,
    },
    Retry {
        attempts: u32,
        due_at: i64,
        error: &'a str,
    },
}

impl<'a> Group<'a> {
    fn of(w: &'a LedgerWrite) -> Self {
        match w {
            LedgerWrite::Finish { attempts, status, receipt, error, detail, channel, sent, .. } => Group::Finish {
                attempts: *attempts,
                status: status.as_str(),
                receipt: receipt.as_deref(),
                error: error.as_deref(),
                detail: detail.as_deref(),
                channel: channel.as_deref(),
                sent: *sent,
            },
            LedgerWrite::Hold { attempts, due_at, detail, resolved_at, .. } => Group::Hold {
                attempts: *attempts,
                due_at: *due_at,
                detail: detail.as_deref(),
                resolved_at: *resolved_at,
            },
            LedgerWrite::Retry { attempts, due_at, error, .. } => {
                Group::Retry { attempts: *attempts, due_at: *due_at, error: error.as_str() }
            }
        }
    }
}

/// Applies `writes` (to distinct rows) in `tx`: one `UPDATE … WHERE id IN (json_each(?))` per group of writes
/// with the same values and attempt (a single write: its own statement), then the next rows of the finishes
/// that applied. Returns, per write, whether it applied — the same as applying them one by one, since no two
/// touch the same row.
///
/// The many-row updates are `UPDATE OR FAIL`: a constraint error (none can occur: every value set is not null
/// and no unique column changes) ends the statement without undoing its earlier rows, and the caller's
/// transaction rolls back as a whole — so SQLite keeps no statement journal for them (with the default
/// `OR ABORT` it copies every page the statement changes to a temporary file first, in case it must undo it).
fn apply_grouped(tx: &rusqlite::Connection, writes: &[LedgerWrite], now: i64) -> Result<Vec<bool>> {
    use std::fmt::Write as _;
    let mut groups: rustc_hash::FxHashMap<Group<'_>, Vec<usize>> = rustc_hash::FxHashMap::default();
    for (i, w) in writes.iter().enumerate() {
        groups.entry(Group::of(w)).or_default().push(i);
    }
    let mut applied = vec![false; writes.len()];
    let many = "WHERE id IN (SELECT value FROM json_each(?5)) AND status = 'running' AND attempts = ?6 RETURNING id";
    let mut ids = String::new();
    for (group, members) in groups {
        if let [i] = members[..] {
            applied[i] = update_one(tx, &writes[i], now)?;
            continue;
        }
        ids.clear();
        ids.push('[');
        for (n, &i) in members.iter().enumerate() {
            let _ = write!(ids, "{}{}", if n == 0 { "" } else { "," }, writes[i].id());
        }
        ids.push(']');
        let done: rustc_hash::FxHashSet<i64> = match group {
            Group::Finish { attempts, status, receipt, error, detail, channel, sent } => tx
                .prepare_cached(&format!("UPDATE OR FAIL deliveries NOT INDEXED {FINISH} {many}"))?
                .query_map(params![status, receipt, error, now, ids, attempts, detail, channel, sent], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?,
            Group::Hold { attempts, due_at, detail, resolved_at } => tx
                .prepare_cached(&format!("UPDATE OR FAIL deliveries NOT INDEXED {HOLD} {many}"))?
                .query_map(params![due_at, detail, resolved_at, now, ids, attempts], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?,
            Group::Retry { attempts, due_at, error } => tx
                .prepare_cached(&format!(
                    "UPDATE OR FAIL deliveries NOT INDEXED {RETRY} WHERE id IN (SELECT value FROM json_each(?4)) AND status = 'running' AND attempts = ?5
                     RETURNING id"
                ))?
                .query_map(params![due_at, error, now, ids, attempts], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?,
        };
        for i in members {
            applied[i] = done.contains(&writes[i].id());
        }
    }
    for (w, ok) in writes.iter().zip(&applied) {
        if let (true, LedgerWrite::Finish { next: Some(next), .. }) = (*ok, w) {
            insert_deliveries(tx, std::slice::from_ref(next), None, now)?;
        }
    }
    Ok(applied)
}

/// A ledger row to insert, borrowed: what [`NewDelivery`] holds, without owning it (a trigger makes many rows
/// that share their workflow, trigger, step and entity).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NewRow<'a> {
    pub workflow: &'a str,
    pub trigger: &'a str,
    pub step: &'a str,
    pub entity: &'a str,
    pub entity_key: &'a str,
    pub due_at: i64,
    pub context: Option<&'a str>,
}

/// What [`insert_deliveries`] inserts: a [`NewDelivery`] or a [`NewRow`].
pub(crate) trait AsNewRow {
    /// The row, borrowed.
    fn new_row(&self) -> NewRow<'_>;
}

impl AsNewRow for NewDelivery {
    fn new_row(&self) -> NewRow<'_> {
        NewRow {
            workflow: &self.workflow,
            trigger: &self.trigger,
            step: &self.step,
            entity: &self.entity,
            entity_key: &self.entity_key,
            due_at: self.due_at,
            context: self.context.as_deref(),
        }
    }
}

impl AsNewRow for NewRow<'_> {
    fn new_row(&self) -> NewRow<'_> {
        *self
    }
}

impl<T: AsNewRow> AsNewRow for &T {
    fn new_row(&self) -> NewRow<'_> {
        (**self).new_row()
    }
}

/// Inserts rows (ignoring ones whose idempotency key exists, and ones the re-entry policy filters out), one at a
/// time as `rows` yields them (a trigger's rows are made as they are written, never all held at once); returns
/// how many were added.
pub(super) fn insert_deliveries<D: AsNewRow>(
    tx: &rusqlite::Connection,
    rows: impl IntoIterator<Item = D>,
    reentry: Option<&Reentry>,
    now: i64,
) -> Result<u64> {
    let mut added = 0u64;
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO deliveries(idempotency_key, workflow, trigger, step, entity, entity_key, status,
           attempts, due_at, created_at, updated_at, context)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?8, ?8, ?9)",
    )?;
    let mut seen = tx.prepare_cached(
        "SELECT 1 FROM deliveries WHERE workflow = ?1 AND entity_key = ?2 AND step = ?3 AND created_at > ?4 LIMIT 1",
    )?;
    for d in rows {
        let d = d.new_row();
        if let Some(r) = reentry {
            if d.step == r.first_step && seen.exists(params![d.workflow, d.entity_key, r.first_step, r.since])? {
                continue;
            }
        }
        added += insert.execute(params![
            idempotency_key(d.workflow, d.trigger, d.step, d.entity_key),
            d.workflow,
            d.trigger,
            d.step,
            d.entity,
            d.entity_key,
            d.due_at,
            now,
            d.context
        ])? as u64;
    }
    Ok(added)
}

/// Inserts a segment run's record; [`Error::Conflict`] if a run with that number exists (a concurrent evaluation).
pub(super) fn insert_run_record(tx: &rusqlite::Connection, r: &RunRecord) -> Result<()> {
    let res = tx.execute(
        "INSERT INTO segment_runs(segment, run, started_at, duration_ms, member_count, entered, exited, membership_file, snapshot)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            r.segment,
            r.run,
            r.started_at,
            r.duration_ms,
            r.member_count as i64,
            r.entered as i64,
            r.exited as i64,
            r.membership_file,
            r.snapshot
        ],
    );
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
            Err(Error::Conflict {
                what: format!("segment `{}`", r.segment),
                message: format!("run {} was recorded concurrently; evaluate again", r.run),
            })
        }
        Err(e) => Err(e.into()),
    }
}

impl Catalog {
    /// Stores (inserting or replacing) a template.
    pub fn put_template(&self, name: &str, channel: &str, parts: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO templates(name, channel, parts, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET channel = excluded.channel, parts = excluded.parts,
                   updated_at = excluded.updated_at",
                params![name, channel, parts, now_text()],
            )?;
            Ok(())
        })
    }

    /// A stored template: (channel, parts JSON).
    pub fn template(&self, name: &str) -> Result<Option<(String, String)>> {
        self.with(|c| {
            Ok(c.query_row("SELECT channel, parts FROM templates WHERE name = ?1", [name], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
        })
    }

    /// The names of all templates, sorted.
    pub fn template_names(&self) -> Result<Vec<String>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT name FROM templates ORDER BY name")?;
            let names = st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(names)
        })
    }

    /// Deletes a template; returns whether it existed.
    pub fn delete_template(&self, name: &str) -> Result<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM templates WHERE name = ?1", [name])? > 0))
    }

    /// Stores (inserting or replacing) a workflow definition (JSON).
    pub fn put_workflow(&self, name: &str, definition: &str) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO workflows(name, definition, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
                params![name, definition, now_text()],
            )?;
            Ok(())
        })
    }

    /// A stored workflow definition (JSON).
    pub fn workflow(&self, name: &str) -> Result<Option<String>> {
        self.with(|c| {
            Ok(c.query_row("SELECT definition FROM workflows WHERE name = ?1", [name], |r| r.get(0)).optional()?)
        })
    }

    /// All workflow definitions (JSON), by name.
    pub fn workflow_definitions(&self) -> Result<Vec<String>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT definition FROM workflows ORDER BY name")?;
            let defs = st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(defs)
        })
    }

    /// Deletes a workflow definition (its ledger rows stay, for the record); false if there was none.
    pub fn delete_workflow(&self, name: &str) -> Result<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM workflows WHERE name = ?1", [name])? > 0))
    }

    /// A manual trigger: takes the workflow's next trigger number and inserts the rows `make(trigger)` yields
    /// (each written as it is made), in one transaction. Returns (trigger version, rows added).
    pub fn trigger_manual<I: IntoIterator<Item = NewDelivery>>(
        &self,
        workflow: &str,
        reentry: Option<&Reentry>,
        now: i64,
        make: impl FnOnce(&str) -> I,
    ) -> Result<(String, u64)> {
        self.with(|c| {
            let tx = super::Tx::begin(c, true)?;
            let n: i64 = tx
                .query_row(
                    "UPDATE workflows SET manual_triggers = manual_triggers + 1 WHERE name = ?1
                     RETURNING manual_triggers",
                    [workflow],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or_else(|| Error::not_found("workflow", workflow))?;
            let trigger = format!("manual:{n}");
            let added = insert_deliveries(&tx, make(&trigger), reentry, now)?;
            tx.commit()?;
            Ok((trigger, added))
        })
    }

    /// Records a segment run together with the ledger rows of the workflows it triggers (per workflow, its rows
    /// and re-entry filter; each row is written as its iterator makes it), in one transaction; fails with
    /// [`Error::Conflict`] if a run with that number exists (a concurrent evaluation).
    pub fn insert_run_with<I: IntoIterator<Item = NewDelivery>>(
        &self,
        r: &RunRecord,
        deliveries: Vec<(I, Option<Reentry>)>,
        now: i64,
    ) -> Result<()> {
        self.with(|c| {
            let tx = super::Tx::begin(c, true)?;
            insert_run_record(&tx, r)?;
            for (rows, reentry) in deliveries {
                insert_deliveries(&tx, rows, reentry.as_ref(), now)?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Inserts ledger rows (each written as the iterator makes it) under the re-entry filter, as
    /// [`Catalog::insert_run_with`] does for each workflow; inside a transaction scope they commit with it.
    /// Returns how many were added.
    pub(crate) fn insert_deliveries_in<D: AsNewRow>(
        &self,
        rows: impl IntoIterator<Item = D>,
        reentry: Option<&Reentry>,
        now: i64,
    ) -> Result<u64> {
        self.with(|c| insert_deliveries(c, rows, reentry, now))
    }

    /// Whether the current task runs in a transaction scope of this catalog (see [`Catalog::begin_scope`]).
    pub(crate) fn in_scope(&self) -> bool {
        super::scope::current(self).is_some()
    }

    /// Claims up to `limit` rows due at `now` (running with an expired lease, then pending and due, oldest due
    /// first): marks them running until `now + lease_ms` and counts an attempt, in one transaction. Returns them
    /// by id. Each of the two selections walks the `(status, due_at)` index and stops at `limit`, so a claim
    /// costs the same however many rows are due.
    pub fn claim_deliveries(&self, now: i64, lease_ms: i64, limit: usize) -> Result<Vec<LedgerRow>> {
        Ok(self.claim_deliveries_with_context(now, lease_ms, limit)?.into_iter().map(|(r, _)| r).collect())
    }

    /// [`Catalog::claim_deliveries`], each row with the attributes its trigger captured (see
    /// [`NewDelivery::context`]) when this claim is its first attempt, else `None`.
    pub fn claim_deliveries_with_context(
        &self,
        now: i64,
        lease_ms: i64,
        limit: usize,
    ) -> Result<Vec<(LedgerRow, Option<String>)>> {
        self.with(|c| {
            let tx = super::Tx::begin(c, true)?;
            let mut rows = Vec::new();
            for which in ["status = 'running' AND lease_until <= ?1", "status = 'pending' AND due_at <= ?1"] {
                let left = limit.saturating_sub(rows.len());
                if left == 0 {
                    break;
                }
                // `OR FAIL` (see `apply_grouped`): no statement journal for this many-row update.
                let mut st = tx.prepare_cached(&format!(
                    "UPDATE OR FAIL deliveries SET status = 'running', lease_until = ?1 + ?2, attempts = attempts + 1,
                       updated_at = ?1
                     WHERE id IN (SELECT id FROM deliveries WHERE {which} ORDER BY due_at, id LIMIT ?3)
                     RETURNING {ROW}, CASE WHEN attempts = 1 THEN context END"
                ))?;
                let claimed = st
                    .query_map(params![now, lease_ms, left as i64], |r| Ok((row(r)?, r.get(17)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                rows.extend(claimed);
            }
            tx.commit()?;
            rows.sort_by_key(|(r, _)| r.id);
            Ok(rows)
        })
    }

    /// Finishes a claimed row with `status` (and its receipt or error) and adds the workflow's next row, in one
    /// transaction. Returns false (changing nothing) when the row is no longer claimed by this attempt.
    #[allow(clippy::too_many_arguments)]
    pub fn finish_delivery(
        &self,
        id: i64,
        attempts: u32,
        status: Status,
        receipt: Option<&str>,
        error: Option<&str>,
        next: Option<&NewDelivery>,
        now: i64,
    ) -> Result<bool> {
        let f = Finish { receipt, error, ..Finish::status(status) };
        self.finish_delivery_with(id, attempts, &f, next, now)
    }

    /// [`Catalog::finish_delivery`] that also records the step's detail, channel and whether it was sent.
    pub fn finish_delivery_with(
        &self,
        id: i64,
        attempts: u32,
        f: &Finish<'_>,
        next: Option<&NewDelivery>,
        now: i64,
    ) -> Result<bool> {
        let w = LedgerWrite::finish(id, attempts, f, next);
        Ok(self.record_outcomes(std::slice::from_ref(&w), now)?.first().copied().unwrap_or(false))
    }

    /// Puts a claimed row back to pending without counting the attempt (quiet hours, a rate limit, a wait
    /// `until` resolving), due at `due_at`; `detail` and `resolved_at` are set when given. False when the row is
    /// no longer claimed by this attempt.
    pub fn hold_delivery(
        &self,
        id: i64,
        attempts: u32,
        due_at: i64,
        detail: Option<&str>,
        resolved_at: Option<i64>,
        now: i64,
    ) -> Result<bool> {
        let w = LedgerWrite::Hold { id, attempts, due_at, detail: detail.map(str::to_string), resolved_at };
        Ok(self.record_outcomes(std::slice::from_ref(&w), now)?.first().copied().unwrap_or(false))
    }

    /// Records the outcomes of claimed rows in ONE transaction (a group commit: with durable commits, one sync
    /// to disk for all of them), in order. Each write applies only if its row is still claimed by that attempt
    /// (`status = 'running'` and the same `attempts`); the result says, per write, whether it applied. A
    /// finish's next row is inserted only when the finish applied. Either every write commits or none.
    /// Writes to distinct rows are applied set-based: one `UPDATE … WHERE id IN (json_each(?))` per group of
    /// writes with the same values and attempt (a pass's deliveries mostly share theirs), then the next rows.
    pub fn record_outcomes(&self, writes: &[LedgerWrite], now: i64) -> Result<Vec<bool>> {
        if writes.is_empty() {
            return Ok(vec![]);
        }
        self.with(|c| {
            let tx = super::Tx::begin(c, true)?;
            // Set-based statements need distinct rows; writes to the same row apply one by one, in order.
            let mut rows = rustc_hash::FxHashSet::with_capacity_and_hasher(writes.len(), Default::default());
            let applied = if writes.iter().all(|w| rows.insert(w.id())) {
                apply_grouped(&tx, writes, now)?
            } else {
                writes.iter().map(|w| apply_write(&tx, w, now)).collect::<Result<Vec<bool>>>()?
            };
            tx.commit()?;
            Ok(applied)
        })
    }

    /// Checks the frequency caps of a claimed action row and, when none is reached, marks it as sent on
    /// `channel` now (so concurrent checks, also in other processes, count it), in one transaction. A cap counts
    /// the other rows to the same entity on the channel that were sent after its window's start and are
    /// delivered or being sent. Returns the index of the first cap reached (changing nothing), or `None`.
    #[allow(clippy::too_many_arguments)]
    pub fn reserve_send(
        &self,
        id: i64,
        attempts: u32,
        entity: &str,
        entity_key: &str,
        channel: &str,
        caps: &[CapWindow],
        now: i64,
    ) -> Result<Option<usize>> {
        self.with(|c| {
            let tx = super::Tx::begin(c, true)?;
            for (i, cap) in caps.iter().enumerate() {
                if count_sent(&tx, entity, entity_key, channel, cap.since, Some(id))? >= cap.max as u64 {
                    return Ok(Some(i));
                }
            }
            tx.execute(
                "UPDATE deliveries SET channel = ?1, sent_at = ?2 WHERE id = ?3 AND status = 'running' AND attempts = ?4",
                params![channel, now, id, attempts],
            )?;
            tx.commit()?;
            Ok(None)
        })
    }

    /// How many deliveries to `entity_key` on `channel` were sent after `since` (ms) and are delivered or being
    /// sent (for dry runs).
    pub fn sent_count(&self, entity: &str, entity_key: &str, channel: &str, since: i64) -> Result<u64> {
        self.with(|c| count_sent(c, entity, entity_key, channel, since, None))
    }

    /// Whether the re-entry policy `reentry` would skip `entity_key` now (it started `workflow` after the cut-off).
    pub fn started_since(&self, workflow: &str, entity_key: &str, reentry: &Reentry) -> Result<bool> {
        self.with(|c| {
            Ok(c.prepare_cached(
                "SELECT 1 FROM deliveries WHERE workflow = ?1 AND entity_key = ?2 AND step = ?3 AND created_at > ?4
                 LIMIT 1",
            )?
            .exists(params![workflow, entity_key, reentry.first_step, reentry.since])?)
        })
    }

    /// Puts a claimed row back to pending, due at `due_at`, with the error of this attempt.
    pub fn retry_delivery(&self, id: i64, attempts: u32, due_at: i64, error: &str, now: i64) -> Result<bool> {
        let w = LedgerWrite::Retry { id, attempts, due_at, error: error.to_string() };
        Ok(self.record_outcomes(std::slice::from_ref(&w), now)?.first().copied().unwrap_or(false))
    }

    /// Which of the (channel, entity key) pairs are on their channel's suppression list, read in one catalog
    /// access (a dispatch pass checks its whole batch at once).
    pub fn suppressed_among(&self, pairs: &[(String, String)]) -> Result<HashSet<(String, String)>> {
        if pairs.is_empty() {
            return Ok(HashSet::new());
        }
        self.with(|c| {
            // Most channels have no suppression list: one probe per distinct channel spares their keys' lookups.
            let mut listed = c.prepare_cached("SELECT 1 FROM suppressions WHERE channel = ?1 LIMIT 1")?;
            let mut channels: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
            for (channel, _) in pairs {
                if !channels.contains_key(channel.as_str()) {
                    channels.insert(channel, listed.exists([channel])?);
                }
            }
            let mut st = c.prepare_cached("SELECT 1 FROM suppressions WHERE channel = ?1 AND entity_key = ?2")?;
            let mut out = HashSet::new();
            for (channel, key) in pairs {
                if channels.get(channel.as_str()).copied().unwrap_or(true) && st.exists(params![channel, key])? {
                    out.insert((channel.clone(), key.clone()));
                }
            }
            Ok(out)
        })
    }

    /// Releases claimed rows (a graceful shutdown): back to pending, the attempt not counted.
    pub fn release_deliveries(&self, ids: &[i64], now: i64) -> Result<u64> {
        self.with(|c| {
            let mut n = 0;
            for id in ids {
                n += c.execute(
                    "UPDATE deliveries SET status = 'pending', attempts = attempts - 1, lease_until = NULL,
                       updated_at = ?1 WHERE id = ?2 AND status = 'running'",
                    params![now, id],
                )? as u64;
            }
            Ok(n)
        })
    }

    /// Ledger rows matching `filter`, oldest first (at most `limit`).
    pub fn deliveries(&self, filter: &DeliveryFilter, limit: usize) -> Result<Vec<LedgerRow>> {
        let (clause, args) = where_clause(filter);
        self.with(|c| {
            let limit = limit.min(i64::MAX as usize);
            let order = if filter.newest_first { "DESC" } else { "ASC" };
            let mut st =
                c.prepare(&format!("SELECT {ROW} FROM deliveries {clause} ORDER BY id {order} LIMIT {limit}"))?;
            let rows = st.query_map(params_from_iter(args.iter()), row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// The starts of `workflow` (its trigger versions) with their rows' statuses, newest first, at most `limit`.
    pub fn workflow_runs(&self, workflow: &str, limit: usize) -> Result<Vec<WorkflowRun>> {
        self.with(|c| {
            let limit = limit.min(i64::MAX as usize) as i64;
            let mut st = c.prepare(
                "SELECT trigger, min(created_at) AS started, max(updated_at), count(DISTINCT entity_key), count(*)
                 FROM deliveries WHERE workflow = ?1 GROUP BY trigger ORDER BY started DESC, trigger LIMIT ?2",
            )?;
            let mut runs = st
                .query_map(params![workflow, limit], |r| {
                    Ok(WorkflowRun {
                        trigger: r.get(0)?,
                        started_at: r.get(1)?,
                        updated_at: r.get(2)?,
                        entities: r.get::<_, i64>(3)? as u64,
                        rows: r.get::<_, i64>(4)? as u64,
                        statuses: Default::default(),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut st = c.prepare(
                "SELECT status, count(*) FROM deliveries WHERE workflow = ?1 AND trigger = ?2 GROUP BY status",
            )?;
            for run in &mut runs {
                for row in st.query_map(params![workflow, run.trigger], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })? {
                    let (status, n) = row?;
                    run.statuses.insert(status, n);
                }
            }
            Ok(runs)
        })
    }

    /// Makes the dead rows matching `filter` pending again, due at `now`, with a fresh attempt count; returns
    /// how many.
    pub fn replay_deliveries(&self, filter: &DeliveryFilter, now: i64) -> Result<u64> {
        let mut f = filter.clone();
        f.status = Some(Status::Dead);
        let (clause, mut args) = where_clause(&f);
        args.push(rusqlite::types::Value::Integer(now));
        let p = args.len();
        self.with(|c| {
            Ok(c.execute(
                &format!(
                    "UPDATE deliveries SET status = 'pending', attempts = 0, due_at = ?{p}, updated_at = ?{p} {clause}"
                ),
                params_from_iter(args.iter()),
            )? as u64)
        })
    }

    /// Adds keys to a channel's suppression list; returns how many were new.
    pub fn suppress(&self, channel: &str, keys: &[String]) -> Result<u64> {
        self.with(|c| {
            let tx = super::Tx::begin(c, false)?;
            let mut n = 0;
            {
                let mut st = tx.prepare_cached(
                    "INSERT OR IGNORE INTO suppressions(channel, entity_key, created_at) VALUES (?1, ?2, ?3)",
                )?;
                let now = now_text();
                for k in keys {
                    n += st.execute(params![channel, k, now])? as u64;
                }
            }
            tx.commit()?;
            Ok(n)
        })
    }

    /// Removes keys from a channel's suppression list; returns how many were there.
    pub fn unsuppress(&self, channel: &str, keys: &[String]) -> Result<u64> {
        self.with(|c| {
            let tx = super::Tx::begin(c, false)?;
            let mut n = 0;
            {
                let mut st = tx.prepare_cached("DELETE FROM suppressions WHERE channel = ?1 AND entity_key = ?2")?;
                for k in keys {
                    n += st.execute(params![channel, k])? as u64;
                }
            }
            tx.commit()?;
            Ok(n)
        })
    }

    /// Whether `key` is on `channel`'s suppression list.
    pub fn is_suppressed(&self, channel: &str, key: &str) -> Result<bool> {
        self.with(|c| {
            Ok(c.prepare_cached("SELECT 1 FROM suppressions WHERE channel = ?1 AND entity_key = ?2")?
                .exists(params![channel, key])?)
        })
    }
}

fn count_sent(
    c: &rusqlite::Connection,
    entity: &str,
    entity_key: &str,
    channel: &str,
    since: i64,
    except: Option<i64>,
) -> Result<u64> {
    let n: i64 = c
        .prepare_cached(
            "SELECT count(*) FROM deliveries WHERE entity_key = ?1 AND channel = ?2 AND sent_at > ?3 AND entity = ?4
           AND status IN ('running', 'delivered') AND id IS NOT ?5",
        )?
        .query_row(params![entity_key, channel, since, entity, except], |r| r.get(0))?;
    Ok(n as u64)
}

fn where_clause(f: &DeliveryFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut conds = Vec::new();
    let mut args = Vec::new();
    if let Some(w) = &f.workflow {
        args.push(Value::Text(w.clone()));
        conds.push(format!("workflow = ?{}", args.len()));
    }
    if let Some(s) = f.status {
        // A literal (one of the fixed status names), so the partial index `deliveries_due` serves the pending,
        // running and dead rows.
        conds.push(format!("status = '{}'", s.as_str()));
    }
    if let Some(k) = &f.entity_key {
        args.push(Value::Text(k.clone()));
        conds.push(format!("entity_key = ?{}", args.len()));
    }
    if let Some(id) = f.after_id {
        args.push(Value::Integer(id));
        conds.push(format!("id > ?{}", args.len()));
    }
    if let Some(id) = f.before_id {
        args.push(Value::Integer(id));
        conds.push(format!("id < ?{}", args.len()));
    }
    if let Some(ids) = &f.ids {
        let mut marks = Vec::new();
        for id in ids {
            args.push(Value::Integer(*id));
            marks.push(format!("?{}", args.len()));
        }
        conds.push(if marks.is_empty() { "0".into() } else { format!("id IN ({})", marks.join(", ")) });
    }
    if conds.is_empty() {
        (String::new(), args)
    } else {
        (format!("WHERE {}", conds.join(" AND ")), args)
    }
}
