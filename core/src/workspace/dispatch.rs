//! The dispatcher — one pass over the due ledger rows, each step kind and each policy (see
//! [`crate::workflow::steps`] and [`crate::workflow::policy`]) — and dry runs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use datafusion::common::TableReference;
use datafusion::logical_expr::Expr;
use datafusion::prelude::ident;
use futures::{SinkExt, StreamExt};

use crate::action::{Action, Delivery, Outcome};
use crate::catalog::{CapWindow, Finish, LedgerWrite};
use crate::error::{Error, Result};
use crate::limits::{MAX_DRY_RUN_ROWS, MAX_LOOP_PASSES};
use crate::model::normalize_name;
use crate::rules::{check_with, column, literal, scalar, Dialect, Rule};
use crate::workflow::dispatch::{backoff, DispatchReport, DEFAULT_BACKOFF_MS, DEFAULT_MAX_ATTEMPTS};
use crate::workflow::ledger::{DryRunRow, DryRunStatus, LedgerRow, NewDelivery, Reentry, Status};
use crate::workflow::policy::{quiet_until, QuietHours};
use crate::workflow::steps::{
    due_at, fallback_zone, index_of, next_in_order, next_local_time, parse_time_of_day, pass_of, split_bucket,
    split_choice, with_pass, zone_for,
};
use crate::workflow::template::Compiled;
use crate::workflow::{FrequencyCapSpec, StepSpec, TriggerSpec, WorkflowSpec};

use super::group_commit::{group_commit, Pending, Recorder};
use super::schedules::record_delivery;
use super::workflows::{keys_of, ms, reentry};
use super::Workspace;
use crate::sources::CancellationToken;

type Attributes = serde_json::Map<String, serde_json::Value>;

/// An action built for a step, or why it cannot be.
type Built = std::result::Result<Arc<dyn Action>, String>;

/// The detail suffix of a jump that would start a loop pass past the limit.
const LOOP_STOP: &str = "; not taken: this trigger made MAX_LOOP_PASSES passes through the loop";

/// How long a dispatch keeps claiming (see [`Workspace::dispatch_claims`]).
#[derive(Clone, Copy, Debug)]
pub(super) enum Claims {
    /// One claim (one pass).
    Once,
    /// Another claim after each full one, overlapped with the previous batch's last deliveries, until a claim is
    /// not full or (when given) the instant has passed.
    WhileFull(Option<std::time::Instant>),
}

/// What processing one claimed row did.
enum Processed {
    /// Finished with this status.
    Finished(Status),
    /// Failed, scheduled again.
    Retried,
    /// Held by quiet hours.
    Held,
    /// Over a rate limit, pending again.
    RateLimited,
    /// A wait `until` resolved its instant.
    Waiting,
    /// A shutdown began while it waited for a send slot: released unsent (back to pending, the attempt not
    /// counted).
    Released,
}

impl Processed {
    /// The `status` label of [`crate::monitoring::DELIVERIES`].
    fn label(&self) -> &'static str {
        match self {
            Processed::Finished(s) => s.as_str(),
            Processed::Retried => "retried",
            Processed::Held => "held",
            Processed::RateLimited => "rate_limited",
            Processed::Waiting => "waiting",
            Processed::Released => "released",
        }
    }
}

/// The channel of an action step: its `channel`, else the registered action's name, else the config's `type`.
pub(super) fn channel_of(action: &serde_json::Value, channel: &Option<String>) -> String {
    match channel {
        Some(c) => normalize_name(c),
        None => match action {
            serde_json::Value::String(s) => normalize_name(s),
            v => v.get("type").and_then(|t| t.as_str()).unwrap_or("action").to_string(),
        },
    }
}

fn local_text(t: DateTime<Utc>, tz: Tz) -> String {
    format!("{} ({})", t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"), tz.name())
}

fn utc_of(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// The caps of `caps` on `channel`, with their windows at `now`.
fn cap_windows<'a>(caps: &'a [FrequencyCapSpec], channel: &str, now: i64) -> Vec<(&'a FrequencyCapSpec, CapWindow)> {
    caps.iter()
        .filter(|c| c.channel == channel)
        .map(|c| {
            let since = now.saturating_sub((c.seconds.min(i64::MAX as u64 / 1000) * 1000) as i64);
            (c, CapWindow { max: c.max, since })
        })
        .collect()
}

fn cap_text(c: &FrequencyCapSpec) -> String {
    format!("frequency cap reached: {} on `{}` per {} s", c.max, c.channel, c.seconds)
}

/// The token buckets a delivery of step `i` takes from: the step's `rate_per_second`, and the action's own rate
/// (per registered action name, or per step for an action config).
fn rate_limits(spec: &WorkflowSpec, i: usize, action: &dyn Action) -> Vec<(String, f64)> {
    let mut out = vec![];
    let StepSpec::Action { name, action: a, rate_per_second, .. } = &spec.steps[i] else { return out };
    if let Some(r) = rate_per_second {
        out.push((format!("step:{}.{name}", spec.name), *r));
    }
    if let Some(r) = action.max_rate_per_second().filter(|r| r.is_finite() && *r > 0.0) {
        let key = match a {
            serde_json::Value::String(s) => format!("action:{}", normalize_name(s)),
            _ => format!("action:{}.{name}", spec.name),
        };
        out.push((key, r));
    }
    out
}

/// What one dispatch pass reads once for its whole batch of claimed rows, instead of once per row: the
/// workflows, their steps' channels and the templates (parsed once). Dropped at the end of the pass.
struct Pass {
    /// The pass's instant.
    now: DateTime<Utc>,
    /// Workflow definitions by name.
    specs: HashMap<String, WorkflowSpec>,
    /// Channels some workflow caps: every delivery on them reserves its send, so the caps see it in flight.
    capped: HashSet<String>,
    /// The channel of each workflow's action steps, by workflow and step name.
    channels: HashMap<String, HashMap<String, String>>,
    /// Templates of the claimed action rows by name, parsed, or why they cannot be read or parsed.
    templates: HashMap<String, std::result::Result<Compiled, String>>,
    /// The actions of the claimed action rows by (workflow, step), built once per pass, or why they cannot be.
    actions: HashMap<String, HashMap<String, Built>>,
    /// The pass's send slots (its `concurrency`): an action holds one while it executes and gives it back as
    /// soon as it has its outcome, before that outcome is committed (see [`Workspace::dispatch_due`]). Shared
    /// by the passes of one dispatch (see [`Workspace::dispatch_backlog`]).
    sends: Arc<tokio::sync::Semaphore>,
    /// The shutdown token of a serving loop: once cancelled, a row still waiting for a send slot is released
    /// unsent.
    stop: Option<CancellationToken>,
}

/// What a pass reads once per chunk of its claimed rows (one query per entity type for the attributes, one
/// catalog access for the suppression entries); the next chunk's is read while this one's deliveries run.
struct Chunk {
    /// By entity type: the attributes of the chunk's other keys, or why the lookup failed.
    attributes: HashMap<String, std::result::Result<HashMap<String, Attributes>, String>>,
    /// By channel: the keys of the chunk's action rows that are suppressed on it.
    suppressed: HashMap<String, HashSet<String>>,
}

/// The entity context a template renders with (borrowed: the attributes are not copied per delivery).
#[derive(serde::Serialize)]
struct RenderContext<'a> {
    entity: &'a Attributes,
    key: &'a str,
    workflow: &'a str,
    step: &'a str,
    segment: &'a str,
}

/// How many claimed rows a pass prepares (reads attributes and suppressions for) at once: enough to fill the
/// `window` of deliveries in flight while the next chunk is read, and at most about a quarter of the batch so
/// the first deliveries start early.
fn chunk_len(claimed: usize, window: usize) -> usize {
    claimed.div_ceil(4).max(window).clamp(1, claimed.max(1))
}

/// A delivery's task: aborted when dropped unfinished (a pass cut short by a shutdown's grace period drops its
/// deliveries, as it did when they were polled in place), a panic in it is resumed in the pass.
struct Spawned(tokio::task::JoinHandle<Result<Handed>>);

impl Spawned {
    /// The task's output.
    async fn join(mut self) -> Result<Handed> {
        match (&mut self.0).await {
            Ok(out) => out,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only this handle's drop or a runtime shutting down cancel it.
            Err(e) => Err(Error::Catalog { message: format!("a delivery task was cancelled: {e}"), cause: None }),
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One of the pass's send slots (see [`Pass::sends`]).
async fn send_slot(pass: &Pass) -> Result<tokio::sync::OwnedSemaphorePermit> {
    pass.sends
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| Error::Catalog { message: "the dispatch pass has stopped".into(), cause: None })
}

/// What processing a claimed row did, and its outcome handed to the group commit (the delivery is done when
/// that is committed).
type Handed = (Processed, Pending);

/// Finishes `row` as `f` says (adding `next`) in the next group commit.
fn finish(rec: &Recorder, row: &LedgerRow, f: Finish<'_>, next: Option<&NewDelivery>) -> Result<Handed> {
    let pending = rec.submit(LedgerWrite::finish(row.id, row.attempts, &f, next))?;
    Ok((Processed::Finished(f.status), pending))
}

/// Dead-letters `row` with `reason` in the next group commit.
fn dead(rec: &Recorder, row: &LedgerRow, reason: String) -> Result<Handed> {
    tracing::warn!(reason = %reason, "dead-lettered");
    finish(rec, row, Finish { error: Some(&reason), ..Finish::status(Status::Dead) }, None)
}

/// Puts `row` back to pending, due at `due_at`, without counting the attempt, in the next group commit.
fn hold(
    rec: &Recorder,
    row: &LedgerRow,
    due_at: i64,
    detail: Option<String>,
    resolved_at: Option<i64>,
) -> Result<Pending> {
    rec.submit(LedgerWrite::Hold { id: row.id, attempts: row.attempts, due_at, detail, resolved_at })
}

impl Workspace {
    /// How many claimed rows a dispatch with `concurrency` send slots processes at once: the
    /// [`delivery_window`](crate::WorkspaceOptions::delivery_window) it was opened with, else twice
    /// `concurrency` — so a delivery whose outcome waits for its group commit does not keep a send slot — and with
    /// durable commits at least [`DEFAULT_DURABLE_DELIVERY_WINDOW`](crate::DEFAULT_DURABLE_DELIVERY_WINDOW), so
    /// the syncs to disk do not bound the rate. At most this many deliveries are sent without their outcome
    /// committed, which is what a killed process may send again.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let ws = segkit::Workspace::open(dir.path()).await.unwrap();
    /// assert_eq!(ws.delivery_window(8), 16);
    /// let durable = segkit::WorkspaceOptions::default().durable_commits(true);
    /// let ws = segkit::Workspace::open_with(dir.path(), durable).await.unwrap();
    /// assert_eq!(ws.delivery_window(8), 1024);
    /// # });
    /// ```
    pub fn delivery_window(&self, concurrency: usize) -> usize {
        let twice = concurrency.max(1).saturating_mul(2);
        let default = if self.durable_commits() { twice.max(crate::DEFAULT_DURABLE_DELIVERY_WINDOW) } else { twice };
        self.inner.delivery_window.unwrap_or(default).clamp(1, crate::limits::MAX_DELIVERY_WINDOW)
    }

    /// One dispatch pass at the workspace clock's now: claims up to `limit` due rows (with a lease of
    /// [`Workspace::lease`]), executes them at most `concurrency` at a time, records each outcome and writes the
    /// next step's row in the same transaction. Quiet hours, rate limits and waits `until` put rows back to
    /// pending with a later due time (not an attempt); frequency caps skip them (`capped`).
    ///
    /// The pass is batch-oriented: the claim is one transaction; the attributes of the claimed entities are
    /// read with one query per entity type and chunk; outcomes are recorded by group commit (all outcomes
    /// finished while the previous group was being committed go in one transaction — with durable commits, one
    /// sync to disk). At most `concurrency` actions execute at once; an action gives its send slot back as soon
    /// as it has its outcome, and the delivery counts as done once that outcome is committed. At most
    /// `2 × concurrency` deliveries are in flight (sent or being sent, outcome not yet committed): a process
    /// killed at any moment sends at most those again, with the same idempotency keys.
    pub async fn dispatch_due(&self, limit: usize, concurrency: usize) -> Result<DispatchReport> {
        Ok(self.dispatch_pass(ms(self.now()), limit, concurrency, None).await?.0)
    }

    /// Dispatches the due backlog: claims up to `batch` due rows at a time, executes them at most `concurrency`
    /// at a time (as [`dispatch_due`](Self::dispatch_due) does), and claims the next batch while the previous
    /// one's last deliveries are still in flight, for as long as each claim was full (`batch` rows). Returns
    /// when a claim is not full (fewer rows were due) and every claimed row is done: the report sums all the
    /// claims. Unlike a loop of `dispatch_due` calls, the deliveries in flight never drain to zero between
    /// batches; the guarantees are the same: at most `2 × concurrency` deliveries are sent with their outcome
    /// not yet committed, at most `concurrency` actions execute at once, each claim holds its rows with a lease.
    /// While more rows keep becoming due as fast as they are sent, it does not return.
    pub async fn dispatch_backlog(&self, batch: usize, concurrency: usize) -> Result<DispatchReport> {
        Ok(self.dispatch_claims(ms(self.now()), batch, concurrency, None, Claims::WhileFull(None)).await?.0)
    }

    /// One dispatch pass at `now` (ms) (see [`dispatch_due`](Self::dispatch_due); with `shutdown`, see
    /// [`run_claimed`](Self::run_claimed)). Returns the report and how many claims were released.
    pub(super) async fn dispatch_pass(
        &self,
        now_ms: i64,
        limit: usize,
        concurrency: usize,
        shutdown: Option<(&CancellationToken, std::time::Duration)>,
    ) -> Result<(DispatchReport, u64)> {
        self.dispatch_claims(now_ms, limit, concurrency, shutdown, Claims::Once).await
    }

    /// Claims up to `limit` due rows at `now` (ms), with their captured contexts.
    fn claim_batch(&self, now_ms: i64, limit: usize) -> Result<Vec<(LedgerRow, Option<String>)>> {
        self.inner.catalog.claim_deliveries_with_context(now_ms, self.inner.lease.as_millis() as i64, limit)
    }

    /// Dispatch passes that share one stream of deliveries, one send-slot semaphore and one group commit: the
    /// first claims at `now_ms`; with [`Claims::WhileFull`], after the producer has handed out the last chunk
    /// of a full batch it claims the next one (at the clock's now, on the blocking pool) and prepares its first
    /// chunk while that batch's last deliveries run. Returns the summed report and how many claims were
    /// released (see [`run_claimed`](Self::run_claimed)).
    pub(super) async fn dispatch_claims(
        &self,
        now_ms: i64,
        limit: usize,
        concurrency: usize,
        shutdown: Option<(&CancellationToken, std::time::Duration)>,
        claims: Claims,
    ) -> Result<(DispatchReport, u64)> {
        let limit = limit.max(1);
        let first = self.claim_batch(now_ms, limit)?;
        if first.is_empty() {
            self.record_queue_depth(false)?;
            return Ok((DispatchReport::default(), 0));
        }
        // Every claim not finished yet: released (back to pending) if the dispatch stops before running it.
        let held: Arc<std::sync::Mutex<rustc_hash::FxHashSet<i64>>> =
            Arc::new(std::sync::Mutex::new(first.iter().map(|(r, _)| r.id).collect()));
        // The send slots, shared by every pass of this dispatch.
        let sends = Arc::new(tokio::sync::Semaphore::new(concurrency.clamp(1, tokio::sync::Semaphore::MAX_PERMITS)));
        // The claimed rows in chunks: a producer reads what each chunk needs while the previous chunk's
        // deliveries run, at most two prepared chunks ahead (one in the channel, one waiting to be sent).
        // Each row with the attributes its trigger captured (first attempts of a workflow's first action step),
        // parsed, which its delivery takes.
        type Item = (Vec<(LedgerRow, Option<Attributes>)>, Arc<Chunk>, Arc<Pass>);
        let (mut tx, rx) = futures::channel::mpsc::channel::<Item>(0);
        let stop = shutdown.map(|(t, _)| t.clone());
        let stopped = move || stop.as_ref().is_some_and(|t| t.is_cancelled());
        let held_by_producer = held.clone();
        let producer = async move {
            let (mut batch, mut now_ms, mut claimed) = (first, now_ms, 0u64);
            loop {
                claimed += batch.len() as u64;
                let full = batch.len() >= limit;
                let mut pass = self.prepare_pass(batch.iter().map(|(r, _)| r), utc_of(now_ms), sends.clone())?;
                pass.stop = shutdown.map(|(t, _)| t.clone());
                let pass = Arc::new(pass);
                let len = chunk_len(batch.len(), self.delivery_window(concurrency));
                let mut chunks: Vec<Vec<(LedgerRow, Option<String>)>> = vec![];
                for row in batch {
                    match chunks.last_mut() {
                        Some(c) if c.len() < len => c.push(row),
                        _ => chunks.push(vec![row]),
                    }
                }
                for rows in chunks {
                    if stopped() {
                        return Ok::<_, Error>((claimed, full, 0));
                    }
                    let (chunk, rows) = self.prepare_chunk(&pass, rows).await?;
                    if tx.send((rows, Arc::new(chunk), pass.clone())).await.is_err() {
                        return Ok((claimed, full, 0)); // the deliveries stopped (a shutdown)
                    }
                }
                let more = match claims {
                    Claims::Once => false,
                    Claims::WhileFull(until) => full && until.is_none_or(|u| std::time::Instant::now() < u),
                };
                if !more || stopped() {
                    return Ok((claimed, full, 0));
                }
                // The next batch, claimed while this one's last chunk is being delivered: off the async threads
                // (the claim is a write transaction, a sync to disk when durable), so the deliveries go on.
                self.record_queue_depth(true)?;
                now_ms = ms(self.now());
                let ws = self.clone();
                batch = tokio::task::spawn_blocking(move || ws.claim_batch(now_ms, limit)).await.map_err(|e| {
                    Error::Catalog { message: format!("the claim of the next batch failed: {e}"), cause: None }
                })??;
                if batch.is_empty() {
                    return Ok((claimed, false, 0));
                }
                if stopped() {
                    // A shutdown began during the claim: these rows are given back at once, unsent.
                    let ids: Vec<i64> = batch.iter().map(|(r, _)| r.id).collect();
                    let released = self.inner.catalog.release_deliveries(&ids, ms(self.now()))?;
                    return Ok((claimed + batch.len() as u64, false, released));
                }
                held_by_producer.lock().unwrap_or_else(|p| p.into_inner()).extend(batch.iter().map(|(r, _)| r.id));
            }
        };
        let claimed = rx.flat_map(|(rows, chunk, pass)| {
            futures::stream::iter(
                rows.into_iter().map(move |(r, captured)| (r, (captured, chunk.clone(), pass.clone()))),
            )
        });
        let clock: Box<dyn Fn() -> i64 + Send> = match claims {
            // One pass records its outcomes at its own instant (`run_due(now)` is deterministic).
            Claims::Once => Box::new(move || now_ms),
            Claims::WhileFull(_) => {
                let ws = self.clone();
                Box::new(move || ms(ws.now()))
            }
        };
        let (recorder, writer) = group_commit(self.inner.catalog.clone(), clock);
        // Rows released unsent by a shutdown, counted as they are (the results of a pass cut short by the grace
        // period are not returned, and these rows are no longer running when the rest are released).
        let released_unsent = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let released_unsent_ref = &released_unsent;
        // The closure owns the recorder: when every delivery is done it is dropped, and the writer stops.
        // Each delivery runs as a task of its own, so the runtime's workers share the per-delivery work
        // (rendering, signing, the request and its response) instead of one task polling every delivery of the
        // pass; the catalog work stays on the blocking threads (the group commit, the suppression lookups). The
        // task ends once it has handed its outcome to the group commit; the wait for that commit (which keeps
        // the delivery's place in the window) is on the dispatch's own task, so a commit wakes one task, not
        // every delivery in its group.
        // An action row's task is spawned once it has its send slot (waiting for one is on the dispatch's task
        // too), so the tasks alive are those sending, not every row of the window.
        let work = move |row: LedgerRow, (captured, chunk, pass): (Option<Attributes>, Arc<Chunk>, Arc<Pass>)| {
            let action_channel = pass.channels.get(&row.workflow).and_then(|steps| steps.get(&row.step));
            let is_action = action_channel.is_some();
            let channel = action_channel.cloned().unwrap_or_default();
            let workflow = row.workflow.clone();
            let started = std::time::Instant::now();
            let (rec, ws, released_unsent) = (recorder.clone(), self.clone(), released_unsent_ref.clone());
            async move {
                let slot = if is_action { Some(send_slot(&pass).await?) } else { None };
                // Boxed: the task (and what its handle reads back) stays small instead of holding the whole future.
                let task = Box::pin(async move { ws.process(row, captured, slot, &pass, &chunk, &rec).await });
                let spawned = Spawned(tokio::spawn(tracing::Instrument::in_current_span(task)));
                let (processed, pending) = spawned.join().await?;
                pending.committed().await?;
                match &processed {
                    Processed::Released => {
                        released_unsent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    p => record_delivery(p.label(), &workflow, &channel, started.elapsed()),
                }
                Ok(processed)
            }
        };
        // The outcomes counted as they come, the first error kept (nothing is held per delivery).
        let count = |(counts, first_error): &mut (DispatchReport, Option<Error>), r: Result<Processed>| match r {
            Err(e) => {
                first_error.get_or_insert(e);
            }
            Ok(p) => match p {
                Processed::Finished(Status::Delivered) => counts.delivered += 1,
                Processed::Finished(Status::Done) => counts.done += 1,
                Processed::Finished(Status::Dead) => counts.dead += 1,
                Processed::Finished(Status::Suppressed) => counts.suppressed += 1,
                Processed::Finished(Status::Capped) => counts.capped += 1,
                Processed::Finished(_) => {}
                Processed::Retried => counts.retried += 1,
                Processed::Held => counts.held += 1,
                Processed::RateLimited => counts.rate_limited += 1,
                Processed::Waiting => counts.waiting += 1,
                Processed::Released => {} // counted by the task (`released_unsent`)
            },
        };
        let (produced, ran, ()) = tokio::join!(
            producer,
            self.run_claimed(held, claimed, self.delivery_window(concurrency), shutdown, work, count),
            writer
        );
        let ((counts, first_error), mut released) = ran?;
        released += released_unsent.load(std::sync::atomic::Ordering::Relaxed);
        // A chunk that could not be prepared (or a claim that failed) fails the dispatch; its rows and the later
        // ones were released.
        let (claimed, full, released_by_producer) = produced?;
        released += released_by_producer;
        self.record_queue_depth(full)?;
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok((DispatchReport { claimed, ..counts }, released))
    }

    /// Reads what the claimed `rows` need once for the batch (see [`Pass`]).
    fn prepare_pass<'r>(
        &self,
        rows: impl Iterator<Item = &'r LedgerRow>,
        now: DateTime<Utc>,
        sends: Arc<tokio::sync::Semaphore>,
    ) -> Result<Pass> {
        let specs: HashMap<String, WorkflowSpec> = self.workflows()?.into_iter().map(|w| (w.name.clone(), w)).collect();
        let capped = specs.values().flat_map(|w| w.policies.frequency_caps.iter().map(|c| c.channel.clone())).collect();
        let channels = specs
            .values()
            .map(|w| {
                let steps = w
                    .steps
                    .iter()
                    .filter_map(|s| match s {
                        StepSpec::Action { name, action, channel, .. } => {
                            Some((name.clone(), channel_of(action, channel)))
                        }
                        _ => None,
                    })
                    .collect();
                (w.name.clone(), steps)
            })
            .collect();
        let mut names = std::collections::BTreeSet::new();
        let mut actions: HashMap<String, HashMap<String, Built>> = HashMap::new();
        for row in rows {
            let Some(spec) = specs.get(&row.workflow) else { continue };
            if let Some(StepSpec::Action { template, action, .. }) = index_of(spec, &row.step).map(|i| &spec.steps[i]) {
                if let Some(t) = template {
                    names.insert(t.clone());
                }
                let steps = actions.entry(row.workflow.clone()).or_default();
                if !steps.contains_key(&row.step) {
                    let built = self.dispatch_action(action, "step.action").map_err(|e| e.to_string());
                    steps.insert(row.step.clone(), built);
                }
            }
        }
        let templates = names
            .into_iter()
            .map(|n| {
                let t = self.template(&n).and_then(|t| Compiled::new(&t.parts)).map_err(|e| e.to_string());
                (n, t)
            })
            .collect();
        Ok(Pass { now, specs, capped, channels, templates, actions, sends, stop: None })
    }

    /// Reads what the claimed `rows` of one chunk need (see [`Chunk`]). Each row comes with the attributes its
    /// trigger captured (JSON text), if any; returned with them parsed for the rows of action steps.
    async fn prepare_chunk(
        &self,
        pass: &Pass,
        rows: Vec<(LedgerRow, Option<String>)>,
    ) -> Result<(Chunk, Vec<(LedgerRow, Option<Attributes>)>)> {
        // One look at each row's step: its captured context parsed (action rows only), the keys whose
        // attributes must be looked up, and the (channel, key) pairs to check against the suppression lists.
        let mut out = Vec::with_capacity(rows.len());
        let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut lookup = |entity: &str, key: &str| match keys.get_mut(entity) {
            Some(k) => k.push(key.to_string()),
            None => {
                keys.insert(entity.to_string(), vec![key.to_string()]);
            }
        };
        let mut pairs = vec![];
        for (row, context) in rows {
            let step = pass.specs.get(&row.workflow).and_then(|spec| index_of(spec, &row.step).map(|i| &spec.steps[i]));
            let mut captured = None;
            match step {
                Some(StepSpec::Action { action, channel, .. }) => {
                    // A captured context that does not parse (it cannot, short of a damaged catalog) is read again.
                    captured = context.and_then(|c| serde_json::from_str::<Attributes>(&c).ok());
                    if captured.is_none() {
                        lookup(&row.entity, &row.entity_key);
                    }
                    pairs.push((channel_of(action, channel), row.entity_key.clone()));
                }
                Some(StepSpec::Wait { until: Some(_), timezone_attribute: Some(_), .. })
                    if row.resolved_at.is_none() =>
                {
                    lookup(&row.entity, &row.entity_key);
                }
                _ => {}
            }
            out.push((row, captured));
        }
        let mut attributes = HashMap::new();
        for (entity, keys) in keys {
            let found = self.entity_attributes_many(&entity, &keys).await.map_err(|e| e.to_string());
            attributes.insert(entity, found);
        }
        // Off the async threads: the catalog may be busy with a group commit (a sync to disk), and the
        // deliveries of the previous chunk run on this task meanwhile.
        let catalog = self.inner.catalog.clone();
        let suppressed = tokio::task::spawn_blocking(move || catalog.suppressed_among(&pairs))
            .await
            .map_err(|e| Error::Catalog { message: format!("the suppression lookup failed: {e}"), cause: None })??;
        let mut by_channel: HashMap<String, HashSet<String>> = HashMap::new();
        for (channel, key) in suppressed {
            by_channel.entry(channel).or_default().insert(key);
        }
        Ok((Chunk { attributes, suppressed: by_channel }, out))
    }

    /// The attributes of `row`'s entity from the pass's lookup (`None`: no entity with that key); the ones its
    /// trigger captured (`captured`) are taken (a row reads them once), the others copied. When the batched
    /// lookup of its entity type failed, the row's own lookup is made, so it fails (or not) with the error a
    /// lookup of that one key gives.
    async fn attributes_of(
        &self,
        chunk: &Chunk,
        row: &LedgerRow,
        captured: &mut Option<Attributes>,
    ) -> Result<Option<Attributes>> {
        if let Some(a) = captured.take() {
            return Ok(Some(a));
        }
        match chunk.attributes.get(&row.entity) {
            Some(Ok(found)) => Ok(found.get(&row.entity_key).cloned()),
            _ => self.entity_attributes(&row.entity, &row.entity_key).await,
        }
    }

    /// Processes one claimed row (`captured`: the attributes its trigger captured, if any; `slot`: the send slot
    /// an action row already holds).
    async fn process(
        &self,
        row: LedgerRow,
        mut captured: Option<Attributes>,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
        pass: &Pass,
        chunk: &Chunk,
        rec: &Recorder,
    ) -> Result<Handed> {
        let now_dt = pass.now;
        let now = ms(now_dt);
        let Some(spec) = pass.specs.get(&row.workflow) else {
            return dead(rec, &row, format!("workflow `{}` was deleted", row.workflow));
        };
        let Some(i) = index_of(spec, &row.step) else {
            return dead(rec, &row, format!("workflow `{}` has no step `{}` any more", row.workflow, row.step));
        };
        // A jump to a step at or before this one starts a new pass of a loop (see `workflow::steps`).
        let (base, loop_pass) = pass_of(&row.trigger);
        let row_for = |j: usize| {
            let p = if j <= i { loop_pass.saturating_add(1) } else { loop_pass };
            (p <= MAX_LOOP_PASSES).then(|| NewDelivery {
                workflow: row.workflow.clone(),
                trigger: with_pass(base, p),
                step: spec.steps[j].name().to_string(),
                entity: row.entity.clone(),
                entity_key: row.entity_key.clone(),
                due_at: due_at(&spec.steps[j], now),
                context: None,
            })
        };
        let seq = next_in_order(spec, i).and_then(row_for);
        let done = Finish::status(Status::Done);
        match &spec.steps[i] {
            StepSpec::Exit { .. } => finish(rec, &row, done, None),
            StepSpec::Wait { until: None, .. } => finish(rec, &row, done, seq.as_ref()),
            StepSpec::Wait { until: Some(_), .. } if row.resolved_at.is_some() => finish(rec, &row, done, seq.as_ref()),
            StepSpec::Wait { until: Some(until), timezone_attribute, timezone, .. } => {
                let at = match parse_time_of_day(until, "until") {
                    Ok(t) => t,
                    Err(e) => return dead(rec, &row, e.to_string()),
                };
                let attrs = match timezone_attribute {
                    Some(_) => self.attributes_of(chunk, &row, &mut captured).await?,
                    None => None,
                };
                let fallback = fallback_zone(timezone.as_deref(), self.time_zone());
                let (tz, note) = zone_for(attrs.as_ref(), timezone_attribute.as_deref(), fallback);
                let target = next_local_time(now_dt, at, tz);
                let detail =
                    format!("until {}{}", local_text(target, tz), note.map(|n| format!("; {n}")).unwrap_or_default());
                if ms(target) <= now {
                    return finish(rec, &row, Finish { detail: Some(&detail), ..done }, seq.as_ref());
                }
                Ok((Processed::Waiting, hold(rec, &row, ms(target), Some(detail), Some(ms(target)))?))
            }
            StepSpec::Branch { rule, then, otherwise, .. } => {
                let m = match self.rule_matches(&row.entity, rule, &row.entity_key).await {
                    Ok(m) => m,
                    Err(e) => return dead(rec, &row, format!("branch rule: {e}")),
                };
                let (field, target) = if m { ("then", then) } else { ("else", otherwise) };
                let Some(j) = index_of(spec, target) else {
                    return dead(rec, &row, format!("workflow `{}` has no step `{target}` any more", row.workflow));
                };
                let next = row_for(j);
                let detail = format!("{field} → {target}{}", if next.is_none() { LOOP_STOP } else { "" });
                finish(rec, &row, Finish { detail: Some(&detail), ..done }, next.as_ref())
            }
            StepSpec::Split { branches, .. } => {
                let bucket = split_bucket(&row.workflow, &row.step, &row.entity_key);
                let Some(target) = branches.get(split_choice(branches, bucket)).map(|b| &b.step) else {
                    return dead(rec, &row, format!("split step `{}` has no branches", row.step));
                };
                let Some(j) = index_of(spec, target) else {
                    return dead(rec, &row, format!("workflow `{}` has no step `{target}` any more", row.workflow));
                };
                let next = row_for(j);
                let detail =
                    format!("bucket {bucket} of 100 → {target}{}", if next.is_none() { LOOP_STOP } else { "" });
                finish(rec, &row, Finish { detail: Some(&detail), ..done }, next.as_ref())
            }
            StepSpec::Action { .. } => {
                self.run_action(row, captured, slot, spec, i, seq.as_ref(), pass, chunk, rec).await
            }
        }
    }

    /// Runs action step `i` of `spec` for a claimed row: suppression, quiet hours, frequency caps, rate limits,
    /// rendering, the action, and the outcome; `seq` is the next step's row; `slot`: its send slot, if taken.
    #[allow(clippy::too_many_arguments)]
    async fn run_action(
        &self,
        mut row: LedgerRow,
        mut captured: Option<Attributes>,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
        spec: &WorkflowSpec,
        i: usize,
        seq: Option<&NewDelivery>,
        pass: &Pass,
        chunk: &Chunk,
        rec: &Recorder,
    ) -> Result<Handed> {
        let now_dt = pass.now;
        let now = ms(now_dt);
        let StepSpec::Action { action, channel, template, .. } = &spec.steps[i] else {
            return Err(Error::InvalidArgument(format!("step `{}` is not an action step", row.step)));
        };
        let channel = channel_of(action, channel);
        if chunk.suppressed.get(&channel).is_some_and(|keys| keys.contains(&row.entity_key)) {
            let f = Finish { channel: Some(&channel), ..Finish::status(Status::Suppressed) };
            return finish(rec, &row, f, seq);
        }
        let built = match pass.actions.get(&row.workflow).and_then(|steps| steps.get(&row.step)) {
            Some(b) => b.clone(),
            None => self.dispatch_action(action, "step.action").map_err(|e| e.to_string()),
        };
        let action_impl = match built {
            Ok(a) => a,
            Err(e) => return dead(rec, &row, e),
        };
        let Some(attributes) = self.attributes_of(chunk, &row, &mut captured).await? else {
            return dead(rec, &row, format!("`{}` has no entity with this key any more", row.entity));
        };
        if let Some(until) = self.quiet_hours_hold(spec, &attributes, now_dt)? {
            let (t, detail) = until;
            tracing::debug!(until = %t, "held by quiet hours");
            return Ok((Processed::Held, hold(rec, &row, ms(t), Some(detail), None)?));
        }
        let caps = cap_windows(&spec.policies.frequency_caps, &channel, now);
        if !caps.is_empty() || pass.capped.contains(&channel) {
            let windows: Vec<CapWindow> = caps.iter().map(|(_, w)| *w).collect();
            let hit = self.inner.catalog.reserve_send(
                row.id,
                row.attempts,
                &row.entity,
                &row.entity_key,
                &channel,
                &windows,
                now,
            )?;
            if let Some(k) = hit {
                let detail = cap_text(caps[k].0);
                tracing::debug!(channel = %channel, "capped: {detail}");
                let f = Finish { detail: Some(&detail), channel: Some(&channel), ..Finish::status(Status::Capped) };
                return finish(rec, &row, f, seq);
            }
        }
        if let Err(wait_ms) = self.inner.rate_limits.try_take(&rate_limits(spec, i, action_impl.as_ref()), now) {
            tracing::debug!(wait_ms, "over a rate limit, pending again");
            return Ok((Processed::RateLimited, hold(rec, &row, now.saturating_add(wait_ms), None, None)?));
        }
        let content = match template {
            Some(t) => {
                let rendered = match pass.templates.get(t) {
                    Some(Ok(t)) => self.render_with(spec, t, &row.step, &row.entity_key, &attributes),
                    Some(Err(e)) => Err(Error::InvalidArgument(e.clone())),
                    None => self.render_for(spec, t, &row.step, &row.entity_key, &attributes),
                };
                match rendered {
                    Ok(c) => c,
                    Err(e) => return dead(rec, &row, e.to_string()),
                }
            }
            None => BTreeMap::new(),
        };
        // The row's texts move into the delivery (the row's id, attempt and due time are what is used after).
        let delivery = Delivery {
            idempotency_key: std::mem::take(&mut row.idempotency_key),
            origin: std::mem::take(&mut row.workflow),
            step: std::mem::take(&mut row.step),
            channel,
            entity: std::mem::take(&mut row.entity),
            entity_key: std::mem::take(&mut row.entity_key),
            attributes,
            content,
            attempt: row.attempts,
        };
        // A send slot while the action runs (taken before its task started); given back with the outcome, before
        // the outcome's commit.
        let slot = match slot {
            Some(s) => s,
            None => send_slot(pass).await?,
        };
        if pass.stop.as_ref().is_some_and(|t| t.is_cancelled()) {
            // A shutdown began while this row waited for a slot: it was not started, so it is released.
            drop(slot);
            return Ok((Processed::Released, hold(rec, &row, row.due_at, None, None)?));
        }
        let outcome = match tokio::time::timeout(self.inner.lease / 2, action_impl.execute(&delivery)).await {
            Ok(o) => o,
            Err(_) => Outcome::Retryable {
                reason: format!("no outcome within {} ms", (self.inner.lease / 2).as_millis()),
                retry_after: None,
            },
        };
        drop(slot);
        match outcome {
            Outcome::Delivered { receipt } => {
                let f = Finish {
                    receipt: receipt.as_deref(),
                    channel: Some(&delivery.channel),
                    sent: true,
                    ..Finish::status(Status::Delivered)
                };
                finish(rec, &row, f, seq)
            }
            Outcome::Permanent { reason } => dead(rec, &row, format!("permanent failure: {reason}")),
            Outcome::Retryable { reason, retry_after } => {
                let max = spec.policies.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
                if row.attempts >= max {
                    return dead(rec, &row, format!("failed {max} attempts; last: {reason}"));
                }
                let base = spec.policies.backoff_ms.unwrap_or(DEFAULT_BACKOFF_MS);
                let delay = backoff(base, row.attempts, &delivery.idempotency_key, retry_after);
                let due = now.saturating_add(delay.as_millis() as i64);
                let write = LedgerWrite::Retry { id: row.id, attempts: row.attempts, due_at: due, error: reason };
                Ok((Processed::Retried, rec.submit(write)?))
            }
        }
    }

    /// When the workflow's quiet hours hold a delivery to an entity with `attributes` at `now`: until when, and
    /// the detail for the ledger.
    fn quiet_hours_hold(
        &self,
        spec: &WorkflowSpec,
        attributes: &Attributes,
        now: DateTime<Utc>,
    ) -> Result<Option<(DateTime<Utc>, String)>> {
        let Some(q) = &spec.policies.quiet_hours else { return Ok(None) };
        let hours = QuietHours::parse(q, &format!("workflow {}.policies.quiet_hours", spec.name))?;
        let fallback = fallback_zone(q.timezone.as_deref(), self.time_zone());
        let (tz, note) = zone_for(Some(attributes), q.timezone_attribute.as_deref(), fallback);
        Ok(quiet_until(now, hours.start, hours.end, tz).map(|t| {
            let detail = format!(
                "held by quiet hours {}–{} until {}{}",
                q.start,
                q.end,
                local_text(t, tz),
                note.map(|n| format!("; {n}")).unwrap_or_default()
            );
            (t, detail)
        }))
    }

    /// Renders template `template` (by name) for a step of `spec` and one entity.
    fn render_for(
        &self,
        spec: &WorkflowSpec,
        template: &str,
        step: &str,
        key: &str,
        attributes: &Attributes,
    ) -> Result<BTreeMap<String, String>> {
        self.render_with(spec, &Compiled::new(&self.template(template)?.parts)?, step, key, attributes)
    }

    /// Renders the parsed template `t` for a step of `spec` and one entity.
    fn render_with(
        &self,
        spec: &WorkflowSpec,
        t: &Compiled,
        step: &str,
        key: &str,
        attributes: &Attributes,
    ) -> Result<BTreeMap<String, String>> {
        let segment = match &spec.trigger {
            TriggerSpec::Entered { segment } | TriggerSpec::Exited { segment } | TriggerSpec::Schedule { segment } => {
                segment.as_str()
            }
            TriggerSpec::Manual { .. } => "",
        };
        t.render(RenderContext { entity: attributes, key, workflow: &spec.name, step, segment })
    }

    /// Whether the entity `entity` with key `key` (as text) matches `rule` (a stored, canonical rule) now: the
    /// rule compiled by the rule compiler, filtered to the one key (a typed literal, never SQL text).
    async fn rule_matches(&self, entity: &str, rule: &serde_json::Value, key: &str) -> Result<bool> {
        let e = self.entity(entity)?;
        let key_attr =
            e.key.clone().ok_or_else(|| Error::InvalidArgument(format!("`{entity}` has no key to branch on")))?;
        let parsed = Rule::parse(rule, Dialect::Segkit)?;
        let checked = check_with(&parsed, &e, self, &[])?;
        let key_type = e.attr(&key_attr)?.data_type.clone();
        let value = literal(&serde_json::Value::String(key.to_string()), &key_type, "key")?;
        let df = self
            .filtered(&e, &checked)
            .await?
            .filter(column(&key_attr).eq(Expr::Literal(scalar(&value, &key_type), None)))?
            .limit(0, Some(1))?;
        Ok(df.count().await? > 0)
    }

    /// Who would receive what if workflow `name` were triggered now, without sending anything or writing the
    /// ledger: for each entity (the given `keys`; by default the current members of an `entered` workflow's
    /// segment, or the entities of a manual one; an `exited` workflow needs keys), at most `limit` (and
    /// [`MAX_DRY_RUN_ROWS`]), the first action step its path reaches through waits, branches and splits, that
    /// step's channel and rendered template, or why it would not be sent (re-entry, suppressed, capped, quiet
    /// hours, an exit, a failure).
    pub async fn dry_run_workflow(
        &self,
        name: &str,
        keys: Option<Vec<String>>,
        limit: usize,
    ) -> Result<Vec<DryRunRow>> {
        self.dry_run_workflow_with(name, keys, limit, false).await
    }

    /// [`dry_run_workflow`](Self::dry_run_workflow), with `pii` attribute values rendered as `***` in the content
    /// when `mask_pii` (for callers not allowed to read them); branches and policies still see the real values.
    pub async fn dry_run_workflow_with(
        &self,
        name: &str,
        keys: Option<Vec<String>>,
        limit: usize,
        mask_pii: bool,
    ) -> Result<Vec<DryRunRow>> {
        let spec = self.workflow(name)?;
        let entity = self.trigger_entity(&spec.trigger)?;
        let limit = limit.min(MAX_DRY_RUN_ROWS);
        let mut keys = match keys {
            Some(k) if k.len() > MAX_DRY_RUN_ROWS => {
                return Err(Error::InvalidArgument(format!(
                    "{} keys, more than {MAX_DRY_RUN_ROWS} per dry run (limit MAX_DRY_RUN_ROWS)",
                    k.len()
                )))
            }
            Some(k) => k,
            None => match &spec.trigger {
                // A scheduled run starts every current member, like an entered segment's members.
                TriggerSpec::Entered { segment } | TriggerSpec::Schedule { segment } => {
                    let mut stream = self.members(segment, None).await?;
                    let mut out = vec![];
                    while let Some(b) = stream.next().await {
                        out.extend(keys_of(std::slice::from_ref(&b?))?);
                        if out.len() >= limit {
                            break;
                        }
                    }
                    out
                }
                TriggerSpec::Exited { .. } => {
                    return Err(Error::InvalidArgument(format!(
                        "workflow `{}` runs for entities leaving a segment: name the keys to dry-run",
                        spec.name
                    )))
                }
                TriggerSpec::Manual { .. } => {
                    let e = self.entity(&entity)?;
                    let key = e.key.clone().ok_or_else(|| {
                        Error::InvalidArgument(format!("`{entity}` has no key: name the keys to dry-run"))
                    })?;
                    let df = self.inner.ctx.table(TableReference::bare(e.name.as_str())).await?;
                    keys_of(&df.select(vec![ident(key)])?.limit(0, Some(limit))?.collect().await?)?
                }
            },
        };
        keys.truncate(limit);
        let now = self.now();
        let re = reentry(&spec, ms(now));
        let mut rows = Vec::with_capacity(keys.len());
        for key in keys {
            rows.push(self.dry_run_one(&spec, &entity, key, re.as_ref(), now, mask_pii).await?);
        }
        Ok(rows)
    }

    async fn dry_run_one(
        &self,
        spec: &WorkflowSpec,
        entity: &str,
        key: String,
        re: Option<&Reentry>,
        now: DateTime<Utc>,
        mask_pii: bool,
    ) -> Result<DryRunRow> {
        let row = |key: String, status: DryRunStatus, detail: String| DryRunRow {
            entity_key: key,
            step: None,
            channel: None,
            status,
            content: BTreeMap::new(),
            detail: Some(detail),
        };
        if let Some(r) = re {
            if self.inner.catalog.started_since(&spec.name, &key, r)? {
                let why = if r.since == i64::MIN {
                    "re-entry policy `never`: it went through this workflow before".to_string()
                } else {
                    format!("re-entry policy: it started this workflow after {}", utc_of(r.since).to_rfc3339())
                };
                return Ok(row(key, DryRunStatus::Reentry, why));
            }
        }
        let Some(attributes) = self.entity_attributes(entity, &key).await? else {
            return Ok(row(key, DryRunStatus::Failed, format!("`{entity}` has no entity with this key")));
        };
        // Walk to the first action step (the graph is acyclic: at most one visit per step).
        let mut path = vec![];
        let mut at = Some(0usize);
        let mut found = None;
        for _ in 0..spec.steps.len() {
            let Some(i) = at else { break };
            match &spec.steps[i] {
                StepSpec::Action { .. } => {
                    found = Some(i);
                    break;
                }
                StepSpec::Exit { name } => {
                    path.push(format!("exit `{name}`"));
                    break;
                }
                StepSpec::Wait { name, .. } => {
                    path.push(format!("wait `{name}`"));
                    at = next_in_order(spec, i);
                }
                StepSpec::Branch { name, rule, then, otherwise, .. } => {
                    let m = self.rule_matches(entity, rule, &key).await?;
                    let target = if m { then } else { otherwise };
                    path.push(format!("branch `{name}`: {} → `{target}`", if m { "then" } else { "else" }));
                    at = index_of(spec, target);
                }
                StepSpec::Split { name, branches } => {
                    let bucket = split_bucket(&spec.name, name, &key);
                    let target = branches.get(split_choice(branches, bucket)).map(|b| b.step.as_str()).unwrap_or("");
                    path.push(format!("split `{name}`: bucket {bucket} → `{target}`"));
                    at = index_of(spec, target);
                }
            }
        }
        let with_path = |why: String| if path.is_empty() { why } else { format!("{why} (path: {})", path.join("; ")) };
        let Some(StepSpec::Action { name: step, action, channel, template, .. }) = found.map(|i| &spec.steps[i]) else {
            return Ok(row(key, DryRunStatus::Exit, with_path("ends before any action step".into())));
        };
        let channel = channel_of(action, channel);
        let mut out = row(key, DryRunStatus::Send, String::new());
        out.step = Some(step.clone());
        out.channel = Some(channel.clone());
        if self.inner.catalog.is_suppressed(&channel, &out.entity_key)? {
            out.status = DryRunStatus::Suppressed;
            out.detail = Some(with_path(format!("on the `{channel}` suppression list")));
            return Ok(out);
        }
        for (cap, w) in cap_windows(&spec.policies.frequency_caps, &channel, ms(now)) {
            if self.inner.catalog.sent_count(entity, &out.entity_key, &channel, w.since)? >= cap.max as u64 {
                out.status = DryRunStatus::Capped;
                out.detail = Some(with_path(cap_text(cap)));
                return Ok(out);
            }
        }
        if let Some(t) = template {
            let shown = if mask_pii { self.masked(entity, attributes.clone())? } else { attributes.clone() };
            match self.render_for(spec, t, step, &out.entity_key, &shown) {
                Ok(c) => out.content = c,
                Err(e) => {
                    out.status = DryRunStatus::Failed;
                    out.detail = Some(with_path(e.to_string()));
                    return Ok(out);
                }
            }
        }
        out.detail = match self.quiet_hours_hold(spec, &attributes, now)? {
            Some((_, detail)) => {
                out.status = DryRunStatus::Held;
                Some(with_path(detail))
            }
            None if path.is_empty() => None,
            None => Some(format!("path: {}", path.join("; "))),
        };
        Ok(out)
    }
}
