//! Cron schedules, `run_due`, the `serve` loop and the dispatch pass they share (see
//! [`crate::workflow::schedule`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::dispatch::Claims;
use super::workflows::{keys_of, ms, reentry};
use super::Workspace;
use crate::error::{Error, Result};
use crate::limits::{MAX_SCHEDULES, MAX_TRIGGER_KEYS};
use crate::model::{check_name, normalize_name};
use crate::monitoring;
use crate::sources::IngestControl;
use crate::workflow::ledger::{LedgerRow, NewDelivery, Status};
use crate::workflow::schedule::{
    Cron, JobRun, JobSpec, RunDueReport, ScheduleInfo, ScheduleSpec, ServeOptions, ServeReport,
};
use crate::workflow::steps::due_at;
use crate::workflow::TriggerSpec;

/// Never sleep less than this between two `serve` passes, so a schedule that cannot advance does not spin.
const MIN_SLEEP: Duration = Duration::from_millis(10);

impl Workspace {
    /// Defines (or replaces) a cron schedule and returns it with its state. The name follows the entity-name
    /// rules; the pattern must parse (at most [`MAX_CRON_BYTES`](crate::limits::MAX_CRON_BYTES)) in its time
    /// zone (default: the workspace's); the job's source, segment or workflow must exist, and a workflow job's
    /// workflow must have a `schedule` trigger. It is first due at the first match after the clock's now.
    /// A workspace holds at most [`MAX_SCHEDULES`] schedules.
    pub async fn schedule(&self, mut spec: ScheduleSpec) -> Result<ScheduleInfo> {
        spec.name = normalize_name(&spec.name);
        check_name(&spec.name, "schedule")?;
        let sname = spec.name.clone();
        let here = |f: &str| format!("schedule {sname}.{f}");
        let tz = spec.timezone.clone().unwrap_or_else(|| self.time_zone().name().to_string());
        let cron = Cron::parse(&spec.cron, &tz).map_err(|e| {
            let field = if e.to_string().contains("time zone") { "timezone" } else { "cron" };
            Error::definition(here(field), crate::spec::bare_message(&e))
        })?;
        spec.timezone = Some(cron.time_zone().name().to_string());
        match &mut spec.job {
            JobSpec::Sync { source } => {
                *source = self
                    .source(source)
                    .map_err(|e| Error::definition(here("job.source"), e.to_string()))?
                    .definition
                    .name
            }
            JobSpec::Evaluate { segment } => {
                *segment =
                    self.segment(segment).map_err(|e| Error::definition(here("job.segment"), e.to_string()))?.name
            }
            JobSpec::Workflow { workflow } => {
                let w = self.workflow(workflow).map_err(|e| Error::definition(here("job.workflow"), e.to_string()))?;
                if !matches!(w.trigger, TriggerSpec::Schedule { .. }) {
                    return Err(Error::definition(
                        here("job.workflow"),
                        format!(
                            "workflow `{}` is not started by schedules: its trigger must be \
                             {{\"type\": \"schedule\", \"segment\": …}}",
                            w.name
                        ),
                    ));
                }
                *workflow = w.name;
            }
            JobSpec::Dispatch => {}
        }
        if self.inner.catalog.schedule(&spec.name)?.is_none() && self.inner.catalog.schedule_count()? >= MAX_SCHEDULES {
            return Err(Error::definition(
                here("name"),
                format!("a workspace holds at most {MAX_SCHEDULES} schedules (limit MAX_SCHEDULES)"),
            ));
        }
        let next = cron.next_after(self.now()).map(ms);
        self.inner.catalog.put_schedule(&spec.name, &serde_json::to_string(&spec)?, next)?;
        self.schedule_info(&spec.name)
    }

    /// A stored schedule with its state (next due, last run, last error).
    pub fn schedule_info(&self, name: &str) -> Result<ScheduleInfo> {
        match self.inner.catalog.schedule(&normalize_name(name))? {
            Some(s) => Ok(s),
            None => {
                let known = self.inner.catalog.schedules()?;
                Err(Error::not_found_among("schedule", name, known.iter().map(|s| s.spec.name.as_str())))
            }
        }
    }

    /// All schedules with their state, by name.
    pub fn schedules(&self) -> Result<Vec<ScheduleInfo>> {
        self.inner.catalog.schedules()
    }

    /// Deletes a schedule.
    pub fn delete_schedule(&self, name: &str) -> Result<()> {
        let s = self.schedule_info(name)?;
        self.inner.catalog.delete_schedule(&s.spec.name)?;
        Ok(())
    }

    /// Performs every job due at or before `now`, once each however many of its due times were missed (the run
    /// stands for the latest of them), records each outcome in the catalog (last due, last run, last error, next
    /// due — a failing job is recorded and does not stop the others), then makes one dispatch pass at `now`.
    /// Jobs themselves read the workspace clock (an evaluation's relative windows, a workflow's ledger times).
    pub async fn run_due(&self, now: DateTime<Utc>) -> Result<RunDueReport> {
        let o = ServeOptions::default();
        let (report, _) = self.run_due_inner(now, &o, None).await?;
        Ok(report)
    }

    async fn run_due_inner(
        &self,
        now: DateTime<Utc>,
        options: &ServeOptions,
        shutdown: Option<&CancellationToken>,
    ) -> Result<(RunDueReport, u64)> {
        let mut report = RunDueReport::default();
        for info in self.inner.catalog.due_schedules(ms(now))? {
            if shutdown.is_some_and(|s| s.is_cancelled()) {
                break;
            }
            let Some(first) = info.next_due else { continue };
            let spec = &info.spec;
            let tz = spec.timezone.as_deref().unwrap_or("UTC");
            let (due, next, outcome, took) = match Cron::parse(&spec.cron, tz) {
                Ok(cron) => {
                    let due = cron.latest_due(first, now);
                    let started = Instant::now();
                    let span = tracing::info_span!("schedule", name = %spec.name, due = %due);
                    let outcome = self.run_job(spec, due, options, shutdown).instrument(span).await;
                    (due, cron.next_after(now), outcome, started.elapsed())
                }
                Err(e) => (first, None, Err(e), Duration::ZERO),
            };
            let outcome = outcome.map_err(|e| e.to_string());
            if let Err(e) = &outcome {
                tracing::warn!(schedule = %spec.name, error = %e, "scheduled job failed");
            }
            let result = if outcome.is_ok() { "ok" } else { "error" };
            metrics::counter!(monitoring::SCHEDULED_JOBS, "schedule" => spec.name.clone(), "outcome" => result)
                .increment(1);
            self.inner.catalog.finish_schedule(
                &spec.name,
                ms(first),
                ms(due),
                next.map(ms),
                ms(self.now()),
                took.as_secs_f64() * 1000.0,
                outcome.as_ref().err().map(String::as_str),
            )?;
            report.jobs.push(JobRun { schedule: spec.name.clone(), due, outcome, next_due: next });
        }
        if shutdown.is_some_and(|s| s.is_cancelled()) {
            return Ok((report, 0)); // claim nothing once shutdown has begun
        }
        let grace = shutdown.map(|s| (s, options.grace));
        // `run_due` makes one pass; the serving loop keeps claiming while each claim is full (the next batch
        // overlapped with the last deliveries of the previous one), for at most a poll interval, so the jobs
        // due meanwhile still run on time.
        let claims = match shutdown {
            None => Claims::Once,
            Some(_) => Claims::WhileFull(Some(Instant::now() + options.poll_interval)),
        };
        let (dispatch, released) =
            self.dispatch_claims(ms(now), options.dispatch_batch, options.concurrency, grace, claims).await?;
        report.dispatch = dispatch;
        Ok((report, released))
    }

    /// Runs one job. A sync is cancelled (committing nothing) when `shutdown` fires.
    async fn run_job(
        &self,
        spec: &ScheduleSpec,
        due: DateTime<Utc>,
        options: &ServeOptions,
        shutdown: Option<&CancellationToken>,
    ) -> Result<String> {
        match &spec.job {
            JobSpec::Sync { source } => {
                let mut control = IngestControl::default();
                if let Some(token) = shutdown {
                    control = control.cancel_with(token.clone());
                }
                let r = self.sync_with(source, &control).await?;
                Ok(format!("synced {} rows ({} quarantined)", r.rows_written, r.rows_quarantined))
            }
            JobSpec::Evaluate { segment } => {
                let r = self.evaluate(segment).await?;
                Ok(format!(
                    "run {}: {} members, {} entered, {} exited",
                    r.run,
                    r.count,
                    r.entered.num_rows(),
                    r.exited.num_rows()
                ))
            }
            JobSpec::Workflow { workflow } => {
                let n = self.start_scheduled(workflow, &spec.name, due).await?;
                Ok(format!("{n} deliveries added"))
            }
            JobSpec::Dispatch => {
                let (r, _) =
                    self.dispatch_pass(ms(self.now()), options.dispatch_batch, options.concurrency, None).await?;
                Ok(format!("{} claimed, {} delivered, {} retried, {} dead", r.claimed, r.delivered, r.retried, r.dead))
            }
        }
    }

    /// Starts a schedule-triggered workflow for every current member of its segment, under the trigger version
    /// `schedule:<schedule>:<due>`, so running the same due instant again adds nothing.
    async fn start_scheduled(&self, workflow: &str, schedule: &str, due: DateTime<Utc>) -> Result<u64> {
        let spec = self.workflow(workflow)?;
        let TriggerSpec::Schedule { segment } = &spec.trigger else {
            return Err(Error::InvalidArgument(format!(
                "workflow `{}` is no longer started by schedules (its trigger changed)",
                spec.name
            )));
        };
        let entity = self.trigger_entity(&spec.trigger)?;
        if self.inner.catalog.last_run(segment)?.is_none() {
            return Err(Error::InvalidArgument(format!(
                "segment `{segment}` has not been evaluated yet, so it has no members to start `{}` for: evaluate \
                 it first (an `evaluate` schedule due before this one does)",
                spec.name
            )));
        }
        let keys = keys_of(&self.members(segment, None).await?.try_collect::<Vec<_>>().await?)?;
        if keys.len() > MAX_TRIGGER_KEYS {
            return Err(Error::InvalidArgument(format!(
                "segment `{segment}` has {} members, more than {MAX_TRIGGER_KEYS} per trigger (limit MAX_TRIGGER_KEYS)",
                keys.len()
            )));
        }
        let now = ms(self.now());
        let first = &spec.steps[0];
        let trigger = format!("schedule:{schedule}:{}", due.to_rfc3339_opts(SecondsFormat::Secs, true));
        let rows: Vec<NewDelivery> = keys
            .into_iter()
            .map(|k| NewDelivery {
                workflow: spec.name.clone(),
                trigger: trigger.clone(),
                step: first.name().to_string(),
                entity: entity.clone(),
                entity_key: k,
                due_at: due_at(first, now),
                context: None,
            })
            .collect();
        self.inner.catalog.trigger_as(&rows, reentry(&spec, now).as_ref(), now)
    }

    /// Runs the scheduler until `shutdown` is cancelled: [`run_due`](Self::run_due) at the clock's now (jobs,
    /// then a dispatch pass), then sleeps until the earliest next due instant or `poll_interval`, whichever is
    /// first (not at all when the pass claimed a full batch). A failing pass is logged and the loop goes on.
    ///
    /// On shutdown it stops claiming and starting deliveries, lets the ones in flight finish for up to
    /// `grace`, then releases the claims it still holds (back to pending, the attempt not counted), so another
    /// process can send them at once instead of waiting for the lease to expire.
    pub async fn serve(&self, options: ServeOptions, shutdown: CancellationToken) -> Result<ServeReport> {
        let mut report = ServeReport::default();
        while !shutdown.is_cancelled() {
            let now = self.now();
            let mut sleep = options.poll_interval;
            match self.run_due_inner(now, &options, Some(&shutdown)).await {
                Ok((r, released)) => {
                    report.passes += 1;
                    report.jobs += r.jobs.len() as u64;
                    report.failed_jobs += r.failures().count() as u64;
                    report.delivered += r.dispatch.delivered;
                    report.released += released;
                    if r.dispatch.claimed >= options.dispatch_batch.max(1) as u64 {
                        sleep = Duration::ZERO;
                    }
                }
                Err(e) => tracing::error!(error = %e, "scheduler pass failed"),
            }
            if let Ok(Some(next)) = self.inner.catalog.earliest_due() {
                let until = Duration::from_millis(next.saturating_sub(ms(self.now())).max(0) as u64);
                sleep = sleep.min(until);
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(sleep.max(MIN_SLEEP)) => {}
            }
        }
        Ok(report)
    }

    /// Executes the claimed rows `rows` yields (each with what its chunk of the pass read, `C`) with `work`, at
    /// most `concurrency` at a time, each in a `delivery` span. `held` holds the ids of every row the dispatch
    /// claimed and has not finished (the producer adds each later claim's ids before it yields their rows).
    /// With `shutdown`: once it is cancelled no further row is started, rows in flight get the grace period to
    /// finish, and every claim not finished by then is released (back to pending, the attempt not
    /// counted); so is every claimed row the stream did not yield. Each finished row's result is folded into
    /// an accumulator by `fold` as it comes (nothing is kept per row, so a dispatch of any length holds the
    /// same memory); returns the accumulator — a fresh one when the grace period cut the run short — and how
    /// many claims were released.
    pub(super) async fn run_claimed<C, T, S, F, Fut, A, G>(
        &self,
        held: Arc<Mutex<rustc_hash::FxHashSet<i64>>>,
        rows: S,
        concurrency: usize,
        shutdown: Option<(&CancellationToken, Duration)>,
        work: F,
        mut fold: G,
    ) -> Result<(A, u64)>
    where
        S: futures::Stream<Item = (LedgerRow, C)>,
        F: Fn(LedgerRow, C) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
        A: Default,
        G: FnMut(&mut A, Result<T>),
    {
        let token = shutdown.map(|(t, _)| t.clone());
        let stream = rows
            .take_while(move |_| std::future::ready(!token.as_ref().is_some_and(|t| t.is_cancelled())))
            .map(|(row, c)| {
                let span = tracing::info_span!("delivery", id = row.id, workflow = %row.workflow, step = %row.step);
                let (id, held) = (row.id, held.clone());
                // Made inside the span, so work spawned for the row (a task of its own) is in it too.
                let fut = span.in_scope(|| work(row, c));
                async move {
                    let r = fut.await;
                    held.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                    r
                }
                .instrument(span)
            })
            .buffer_unordered(concurrency.max(1))
            .fold(A::default(), move |mut acc, r| {
                fold(&mut acc, r);
                std::future::ready(acc)
            });
        let results = match shutdown {
            None => stream.await,
            Some((token, grace)) => {
                tokio::pin!(stream);
                tokio::select! {
                    r = &mut stream => r,
                    _ = async { token.cancelled().await; tokio::time::sleep(grace).await } => {
                        tracing::warn!("shutdown: deliveries still running after the grace period are released");
                        A::default()
                    }
                }
            }
        };
        let left: Vec<i64> = held.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
        let released =
            if left.is_empty() { 0 } else { self.inner.catalog.release_deliveries(&left, ms(self.now()))? };
        Ok((results, released))
    }

    /// Sets the queue-depth gauges from the ledger (a count over the whole ledger). After a pass that claimed a
    /// full batch (`backlog`: more is probably due) at most once per [`QUEUE_DEPTH_INTERVAL`], so draining a
    /// large backlog does not count the ledger once per batch; after any other pass always.
    pub(super) fn record_queue_depth(&self, backlog: bool) -> Result<()> {
        {
            let mut last = self.inner.queue_depth_at.lock().unwrap_or_else(|p| p.into_inner());
            if backlog && last.is_some_and(|t| t.elapsed() < QUEUE_DEPTH_INTERVAL) {
                return Ok(());
            }
            *last = Some(std::time::Instant::now());
        }
        let counts = self.inner.catalog.delivery_counts()?;
        for status in [Status::Pending, Status::Running, Status::Dead] {
            let n = counts.iter().find(|(s, _)| s == status.as_str()).map(|(_, n)| *n).unwrap_or(0);
            metrics::gauge!(monitoring::QUEUE_DEPTH, "status" => status.as_str()).set(n as f64);
        }
        Ok(())
    }
}

/// How often the queue-depth gauges are counted while a backlog is drained (see
/// [`Workspace::record_queue_depth`]).
const QUEUE_DEPTH_INTERVAL: Duration = Duration::from_secs(1);

/// Counts one delivery attempt's outcome (`status`: a ledger status, or `retried`, `held`, `rate_limited`,
/// `waiting`) in the metrics.
pub(super) fn record_delivery(status: &'static str, workflow: &str, channel: &str, took: Duration) {
    let channel = channel.to_string();
    metrics::counter!(monitoring::DELIVERIES, "status" => status, "channel" => channel.clone()).increment(1);
    metrics::histogram!(monitoring::DELIVERY_SECONDS, "channel" => channel.clone()).record(took.as_secs_f64());
    if status == Status::Dead.as_str() {
        metrics::counter!(monitoring::DEAD_LETTERS, "workflow" => workflow.to_string(), "channel" => channel)
            .increment(1);
    }
}
