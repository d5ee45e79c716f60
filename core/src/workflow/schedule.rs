//! The scheduler: cron jobs that sync sources, evaluate segments, start workflows and dispatch deliveries.
//!
//! A schedule ([`ScheduleSpec`]) is stored in the catalog (migration 5) with the next instant it is due.
//! [`Workspace::run_due`](crate::Workspace::run_due) performs every job due at or before a given instant — once,
//! however many due times were missed while nothing ran — records the outcome (last due instant, last run,
//! last error) and the next due instant, then makes one dispatch pass.
//! [`Workspace::serve`](crate::Workspace::serve) does that in a loop until its cancellation token fires.
//!
//! Cron patterns are parsed and evaluated by the `croner` crate in the schedule's IANA time zone. Across
//! daylight-saving changes a local time that does not exist that day (02:30 on a spring-forward day in Europe)
//! runs at the first instant after the gap, and a local time that occurs twice (02:30 on a fall-back day) runs
//! once, at its first occurrence (the repeated hour does not run again, for interval patterns too).
//!
//! A job runs at least once per due instant: the next due instant is recorded after the job, so a process
//! killed mid-job runs it again when restarted. Every job is safe to repeat: a sync commits its cursor with its
//! data, an evaluation that finds no change triggers nothing, a workflow run writes ledger rows under the
//! trigger version `schedule:<name>:<due instant>` whose idempotency keys make a repeat write nothing, and
//! dispatch claims rows with a lease.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use segkit::workflow::schedule::Cron;
//! let c = Cron::parse("30 2 * * *", "Europe/Berlin").unwrap();
//! // 2027-03-28 is the spring-forward day in Berlin: 02:30 does not exist, the job runs at 03:00 local.
//! let next = c.next_after(Utc.with_ymd_and_hms(2027, 3, 27, 12, 0, 0).unwrap()).unwrap();
//! assert_eq!(next, Utc.with_ymd_and_hms(2027, 3, 28, 1, 0, 0).unwrap());
//! ```

use chrono::{DateTime, LocalResult, SubsecRound, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::limits::{MAX_CRON_BYTES, MAX_SCHEDULE_CATCH_UP};
use crate::workflow::dispatch::DispatchReport;

pub use crate::spec::schedule::{JobSpec, ScheduleSpec};

/// Most candidate instants [`Cron::next_after`] examines while skipping the second pass through a repeated
/// (fall-back) hour: one per second of that hour and some slack.
const MAX_SKIPS: usize = 4000;

/// A parsed cron pattern in a time zone.
#[derive(Debug, Clone)]
pub struct Cron {
    cron: croner::Cron,
    tz: Tz,
}

impl Cron {
    /// Parses `pattern` (5 fields, or 6 with leading seconds; at most [`MAX_CRON_BYTES`]) in the IANA time
    /// zone `tz`. Errors are [`Error::InvalidArgument`] describing the problem.
    pub fn parse(pattern: &str, tz: &str) -> Result<Cron> {
        if pattern.len() > MAX_CRON_BYTES {
            return Err(Error::InvalidArgument(format!(
                "the cron pattern is {} bytes, longer than {MAX_CRON_BYTES} (limit MAX_CRON_BYTES)",
                pattern.len()
            )));
        }
        let tz: Tz = tz.parse().map_err(|_| {
            Error::InvalidArgument(format!("unknown time zone {tz:?}; use an IANA name such as Europe/Berlin"))
        })?;
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(pattern)
            .map_err(|e| Error::InvalidArgument(format!("cron pattern {pattern:?}: {e}")))?;
        Ok(Cron { cron, tz })
    }

    /// The first instant strictly after `t` at which the pattern matches, or `None` when it never matches again
    /// (e.g. `0 0 30 2 *`). The second pass through a repeated local hour (a fall-back change) does not match.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let t = t.trunc_subsecs(0);
        let mut from = t.with_timezone(&self.tz);
        for _ in 0..MAX_SKIPS {
            let next = self.cron.find_next_occurrence(&from, false).ok()?;
            match self.tz.from_local_datetime(&next.naive_local()) {
                // A local time that occurs twice runs at its first instant only: croner answers with the first
                // instant even when the search starts inside the second pass; go on after the second one.
                LocalResult::Ambiguous(first, second) if next != first || first <= t => from = second,
                // Not expected from croner; step on rather than answer with the past.
                _ if next <= t => from = next + chrono::Duration::seconds(1),
                _ => return Some(next.with_timezone(&Utc)),
            }
        }
        None
    }

    /// The latest instant at or before `now` at which the pattern matches, given that `first` (≤ `now`) is one:
    /// the due instant a run that missed several stands for.
    pub fn latest_due(&self, first: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut due = first;
        for _ in 0..MAX_SCHEDULE_CATCH_UP {
            match self.next_after(due) {
                Some(n) if n <= now => due = n,
                _ => return due,
            }
        }
        self.cron
            .find_previous_occurrence(&now.with_timezone(&self.tz), true)
            .map(|p| p.with_timezone(&Utc))
            .ok()
            .filter(|p| *p >= due && *p <= now)
            .unwrap_or(due)
    }

    /// The time zone.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }
}

/// A stored schedule with its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScheduleInfo {
    /// The definition (its `timezone` filled in).
    pub spec: ScheduleSpec,
    /// When it is next due (`None`: the pattern never matches again).
    #[schemars(with = "Option<String>")]
    pub next_due: Option<DateTime<Utc>>,
    /// The due instant of the last run.
    #[schemars(with = "Option<String>")]
    pub last_due: Option<DateTime<Utc>>,
    /// When the last run finished (workspace clock).
    #[schemars(with = "Option<String>")]
    pub last_run_at: Option<DateTime<Utc>>,
    /// How long the last run took, in milliseconds.
    pub last_duration_ms: Option<f64>,
    /// The error of the last run, if it failed (cleared by a successful run).
    pub last_error: Option<String>,
    /// Runs so far.
    pub runs: u64,
    /// Failed runs so far.
    pub failures: u64,
}

/// One job [`Workspace::run_due`](crate::Workspace::run_due) performed. It serializes (for the bindings) as
/// `{schedule, due, ok, outcome, next_due}`: `ok` false when the job failed, `outcome` the text either way.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRun {
    /// The schedule.
    pub schedule: String,
    /// The due instant it performed (the latest one at or before `now` when several were missed).
    pub due: DateTime<Utc>,
    /// What it did (`synced 120 rows`, `run 4: 3 entered, 1 exited`, `12 deliveries added`, …) or why it failed.
    #[serde(flatten, serialize_with = "outcome_fields")]
    pub outcome: std::result::Result<String, String>,
    /// When it is due next.
    pub next_due: Option<DateTime<Utc>>,
}

/// Serializes a job's outcome as the fields `ok` and `outcome`.
fn outcome_fields<S: serde::Serializer>(
    o: &std::result::Result<String, String>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(2))?;
    m.serialize_entry("ok", &o.is_ok())?;
    m.serialize_entry("outcome", o.as_ref().unwrap_or_else(|e| e))?;
    m.end()
}

/// What one [`Workspace::run_due`](crate::Workspace::run_due) did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunDueReport {
    /// The jobs performed, in due order.
    pub jobs: Vec<JobRun>,
    /// The dispatch pass that followed.
    pub dispatch: DispatchReport,
}

impl RunDueReport {
    /// The jobs that failed.
    pub fn failures(&self) -> impl Iterator<Item = &JobRun> {
        self.jobs.iter().filter(|j| j.outcome.is_err())
    }
}

/// How [`Workspace::serve`](crate::Workspace::serve) runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// The longest sleep between two passes (default 1 s): deliveries that become due (retries, waits) are
    /// picked up within it.
    pub poll_interval: std::time::Duration,
    /// Rows claimed per dispatch pass (default 1000).
    pub dispatch_batch: usize,
    /// Deliveries executed at once (default 16).
    pub concurrency: usize,
    /// On shutdown, how long in-flight deliveries may take to finish before their claims are released
    /// (default 10 s).
    pub grace: std::time::Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            poll_interval: std::time::Duration::from_secs(1),
            dispatch_batch: 1000,
            concurrency: 16,
            grace: std::time::Duration::from_secs(10),
        }
    }
}

impl ServeOptions {
    /// Sets the poll interval.
    pub fn poll_interval(mut self, d: std::time::Duration) -> Self {
        self.poll_interval = d;
        self
    }
    /// Sets the shutdown grace period.
    pub fn grace(mut self, d: std::time::Duration) -> Self {
        self.grace = d;
        self
    }
    /// Sets the dispatch concurrency.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }
    /// Sets the rows claimed per dispatch pass.
    pub fn dispatch_batch(mut self, n: usize) -> Self {
        self.dispatch_batch = n;
        self
    }
}

/// What a [`Workspace::serve`](crate::Workspace::serve) loop did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServeReport {
    /// Passes made.
    pub passes: u64,
    /// Jobs performed.
    pub jobs: u64,
    /// Jobs that failed.
    pub failed_jobs: u64,
    /// Deliveries the actions confirmed.
    pub delivered: u64,
    /// Claims given back at shutdown (not yet started, or still running after the grace period).
    pub released: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_runs_serialize_their_outcome_as_ok_and_text() {
        let due = Utc.with_ymd_and_hms(2026, 6, 30, 0, 30, 0).unwrap();
        let run = |outcome| JobRun { schedule: "nightly".into(), due, outcome, next_due: None };
        let ok = serde_json::to_value(run(Ok("run 1: 2 members".into()))).unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"schedule": "nightly", "due": "2026-06-30T00:30:00Z", "ok": true,
                               "outcome": "run 1: 2 members", "next_due": null})
        );
        let failed = serde_json::to_value(run(Err("no such segment".into()))).unwrap();
        assert_eq!(
            (&failed["ok"], &failed["outcome"]),
            (&serde_json::json!(false), &serde_json::json!("no such segment"))
        );
    }
}
