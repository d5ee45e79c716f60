//! The scheduler against a real catalog and real Parquet data, with a fixed clock moved by hand: cron patterns
//! across daylight-saving changes, missed windows, failing jobs, scheduled workflows, and the `serve` loop's
//! graceful shutdown.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Duration, TimeZone, Utc};
use segkit::rules::{Dialect, Rule};
use segkit::spec::{from_json_text, from_value, ScheduleSpec, WorkflowSpec};
use segkit::workflow::schedule::Cron;
use segkit::workflow::{DeliveryFilter, ServeOptions, Status};
use segkit::{Action, CancellationToken, Delivery, ErrorKind, FixedClock, Outcome, SegmentDefinition, Workspace};
use serde_json::json;

fn at(ws: &Workspace, t: DateTime<Utc>) {
    ws.set_clock(Arc::new(FixedClock(t)));
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

async fn schedule(ws: &Workspace, spec: serde_json::Value) -> segkit::Result<segkit::workflow::ScheduleInfo> {
    ws.schedule(from_value::<ScheduleSpec>(spec)?).await
}

async fn workflow(ws: &Workspace, spec: serde_json::Value) -> WorkflowSpec {
    ws.define_workflow(from_value(spec).unwrap()).await.unwrap()
}

async fn cn_segment(ws: &Workspace) {
    let rule = Rule::parse(&json!({"attribute": "country", "op": "eq", "value": "CN"}), Dialect::Auto).unwrap();
    ws.define_segment(SegmentDefinition::new("cn", "people", rule)).await.unwrap();
}

/// Counts deliveries and confirms them.
#[derive(Debug, Default)]
struct Counter(AtomicU32);

#[async_trait]
impl Action for Counter {
    fn kind(&self) -> &str {
        "counter"
    }
    async fn execute(&self, d: &Delivery) -> Outcome {
        self.0.fetch_add(1, Ordering::SeqCst);
        Outcome::Delivered { receipt: Some(d.entity_key.clone()) }
    }
}

#[test]
fn cron_at_0230_berlin_runs_once_a_day_across_spring_forward_and_fall_back() {
    let c = Cron::parse("30 2 * * *", "Europe/Berlin").unwrap();
    let mut t = utc("2027-03-26T12:00:00Z");
    let mut spring = vec![];
    for _ in 0..3 {
        t = c.next_after(t).unwrap();
        spring.push(t);
    }
    // 02:30 CET, then 02:30 does not exist on 28 March (02:00 → 03:00): 03:00 CEST, then 02:30 CEST.
    assert_eq!(spring, [utc("2027-03-27T01:30:00Z"), utc("2027-03-28T01:00:00Z"), utc("2027-03-29T00:30:00Z")]);
    let mut t = utc("2027-10-29T12:00:00Z");
    let mut fall = vec![];
    for _ in 0..3 {
        t = c.next_after(t).unwrap();
        fall.push(t);
    }
    // 31 October: 02:30 happens twice (CEST then CET); it runs at the first only.
    assert_eq!(fall, [utc("2027-10-30T00:30:00Z"), utc("2027-10-31T00:30:00Z"), utc("2027-11-01T01:30:00Z")]);
    // Asked from inside the repeated hour (after the first 02:30), the next run is the next day, not the past.
    assert_eq!(c.next_after(utc("2027-10-31T01:10:00Z")), Some(utc("2027-11-01T01:30:00Z")));
    // An interval pattern does not run through the repeated hour twice either.
    let q = Cron::parse("*/30 * * * *", "Europe/Berlin").unwrap();
    let mut t = utc("2027-10-30T23:45:00Z"); // 01:45 CEST
    let mut runs = vec![];
    while t < utc("2027-10-31T03:00:00Z") {
        t = q.next_after(t).unwrap();
        runs.push(t.with_timezone(&chrono_tz::Europe::Berlin).format("%H:%M %Z").to_string());
    }
    assert_eq!(runs, ["02:00 CEST", "02:30 CEST", "03:00 CET", "03:30 CET", "04:00 CET"]);
    // A pattern that never matches has no next run; seconds are optional.
    assert_eq!(Cron::parse("0 0 30 2 *", "UTC").unwrap().next_after(utc("2027-01-01T00:00:00Z")), None);
    let s = Cron::parse("15 0 9 * * *", "UTC").unwrap();
    assert_eq!(s.next_after(utc("2027-01-01T00:00:00Z")), Some(utc("2027-01-01T09:00:15Z")));
}

/// Steps the clock every 10 minutes from `from` to `to`, calling `run_due` at each step; returns the due instants run.
async fn step_through(ws: &Workspace, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut t = from;
    let mut dues = vec![];
    while t < to {
        at(ws, t);
        for job in ws.run_due(t).await.unwrap().jobs {
            assert!(job.outcome.is_ok(), "{job:?}");
            dues.push(job.due);
        }
        t += Duration::minutes(10);
    }
    dues
}

#[tokio::test]
async fn run_due_with_a_fixed_clock_follows_berlin_time_across_dst_days() {
    let (_dir, ws) = common::people_workspace().await;
    ws.set_time_zone("Europe/Berlin").unwrap();
    let spec = json!({"name": "nightly", "cron": "30 2 * * *", "job": {"type": "dispatch"}});
    // Spring forward (28 March 2027, 02:00 → 03:00): 02:30 does not exist that day; the job runs at 03:00 CEST.
    at(&ws, utc("2027-03-26T12:00:00Z"));
    let info = schedule(&ws, spec.clone()).await.unwrap();
    assert_eq!(info.spec.timezone.as_deref(), Some("Europe/Berlin"), "the workspace time zone by default");
    let dues = step_through(&ws, utc("2027-03-26T12:00:00Z"), utc("2027-03-29T12:00:00Z")).await;
    assert_eq!(dues, [utc("2027-03-27T01:30:00Z"), utc("2027-03-28T01:00:00Z"), utc("2027-03-29T00:30:00Z")]);
    // Fall back (31 October 2027, 03:00 → 02:00): 02:30 happens twice; the job runs once, at the first.
    at(&ws, utc("2027-10-29T12:00:00Z"));
    let info = schedule(&ws, spec).await.unwrap();
    assert_eq!(info.next_due, Some(utc("2027-10-30T00:30:00Z")));
    let dues = step_through(&ws, utc("2027-10-29T12:00:00Z"), utc("2027-11-01T12:00:00Z")).await;
    assert_eq!(dues, [utc("2027-10-30T00:30:00Z"), utc("2027-10-31T00:30:00Z"), utc("2027-11-01T01:30:00Z")]);
    let info = ws.schedule_info("nightly").unwrap();
    assert_eq!((info.runs, info.failures), (6, 0));
    assert_eq!(info.last_due, Some(utc("2027-11-01T01:30:00Z")));
    assert_eq!(info.next_due, Some(utc("2027-11-02T01:30:00Z")));
}

#[tokio::test]
async fn a_missed_window_runs_once_and_a_failing_job_is_recorded_without_stopping_others() {
    let (_dir, ws) = common::people_workspace().await;
    cn_segment(&ws).await;
    let t0 = utc("2026-06-30T00:00:00Z");
    at(&ws, t0);
    schedule(
        &ws,
        json!({"name": "hourly", "cron": "0 * * * *", "timezone": "UTC",
        "job": {"type": "evaluate", "segment": "cn"}}),
    )
    .await
    .unwrap();
    schedule(
        &ws,
        json!({"name": "doomed", "cron": "0 * * * *", "timezone": "UTC",
        "job": {"type": "evaluate", "segment": "cn"}}),
    )
    .await
    .unwrap();
    // Five hours and a half pass with nothing running: each job runs once, for the latest due time.
    let now = t0 + Duration::minutes(330);
    at(&ws, now);
    let r = ws.run_due(now).await.unwrap();
    assert_eq!(r.jobs.len(), 2, "{r:?}");
    assert!(r.jobs.iter().all(|j| j.due == t0 + Duration::hours(5) && j.next_due == Some(t0 + Duration::hours(6))));
    assert_eq!(r.jobs[1].outcome.as_deref(), Ok("run 2: 3 members, 0 entered, 0 exited"), "{r:?}");
    assert_eq!(ws.runs("cn").unwrap().len(), 2);
    assert!(ws.run_due(now).await.unwrap().jobs.is_empty(), "nothing is due twice");

    // `hourly` moves to another segment and the segment of `doomed` goes away: `doomed` fails and is recorded,
    // `hourly` still runs.
    let rule = Rule::parse(&json!({"attribute": "country", "op": "eq", "value": "US"}), Dialect::Auto).unwrap();
    ws.define_segment(SegmentDefinition::new("us", "people", rule)).await.unwrap();
    schedule(
        &ws,
        json!({"name": "hourly", "cron": "0 * * * *", "timezone": "UTC",
        "job": {"type": "evaluate", "segment": "us"}}),
    )
    .await
    .unwrap();
    ws.delete_segment("cn").await.unwrap();
    let now = t0 + Duration::hours(6);
    at(&ws, now);
    let r = ws.run_due(now).await.unwrap();
    let outcomes: Vec<_> = r.jobs.iter().map(|j| (j.schedule.as_str(), j.outcome.is_ok())).collect();
    assert_eq!(outcomes, [("doomed", false), ("hourly", true)], "{r:?}");
    let doomed = ws.schedule_info("doomed").unwrap();
    assert!(doomed.last_error.as_deref().unwrap().contains("cn"), "{doomed:?}");
    assert_eq!((doomed.runs, doomed.failures), (2, 1));
    assert_eq!(doomed.next_due, Some(t0 + Duration::hours(7)), "a failed job is due again next time");
    let hourly = ws.schedule_info("hourly").unwrap();
    assert_eq!((hourly.last_error, hourly.runs), (None, 2), "a redefined schedule keeps its history");
    assert_eq!(ws.runs("us").unwrap().len(), 1);

    ws.delete_schedule("doomed").unwrap();
    assert_eq!(ws.schedules().unwrap().iter().map(|s| s.spec.name.clone()).collect::<Vec<_>>(), ["hourly"]);
    let e = ws.delete_schedule("doomed").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = ws.schedule_info("hourli").unwrap_err();
    assert!(e.to_string().contains("did you mean `hourly`"), "{e}");
}

#[tokio::test]
async fn a_scheduled_workflow_adds_each_member_once_per_due_instant() {
    let (_dir, ws) = common::people_workspace().await;
    cn_segment(&ws).await;
    let counter = Arc::new(Counter::default());
    ws.register_action("email", counter.clone()).unwrap();
    workflow(
        &ws,
        json!({"name": "welcome", "trigger": {"type": "entered", "segment": "cn"},
        "steps": [{"name": "mail", "type": "action", "action": "email"}]}),
    )
    .await;
    workflow(
        &ws,
        json!({"name": "digest", "trigger": {"type": "schedule", "segment": "cn"},
        "policies": {"reentry": {"type": "always"}},
        "steps": [{"name": "mail", "type": "action", "action": "email"}]}),
    )
    .await;
    let t0 = utc("2026-06-30T00:00:00Z"); // a Tuesday
    at(&ws, t0);
    let e = schedule(
        &ws,
        json!({"name": "weekly", "cron": "0 9 * * MON", "timezone": "UTC",
        "job": {"type": "workflow", "workflow": "welcome"}}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Definition);
    assert!(
        e.to_string().contains("schedule weekly.job.workflow") && e.to_string().contains("not started by schedules")
    );
    let spec = json!({"name": "weekly", "cron": "0 9 * * MON", "timezone": "UTC",
        "job": {"type": "workflow", "workflow": "digest"}});
    let info = schedule(&ws, spec.clone()).await.unwrap();
    let due = utc("2026-07-06T09:00:00Z");
    assert_eq!(info.next_due, Some(due));

    // A segment never evaluated has no members yet: a clear failure, recorded.
    at(&ws, due);
    let r = ws.run_due(due).await.unwrap();
    let e = r.jobs[0].outcome.as_ref().unwrap_err();
    assert!(e.contains("segment `cn` has not been evaluated yet"), "{e}");
    assert_eq!(ws.schedule_info("weekly").unwrap().last_error.as_deref(), Some(e.as_str()));

    ws.evaluate("cn").await.unwrap(); // `welcome` (entered) gets its 3 rows with the run
    let welcome = ws.dispatch_due(100, 4).await.unwrap();
    assert_eq!(welcome.delivered, 3);
    at(&ws, due - Duration::minutes(1));
    schedule(&ws, spec.clone()).await.unwrap();
    at(&ws, due);
    let r = ws.run_due(due).await.unwrap();
    assert_eq!(r.jobs[0].outcome.as_deref(), Ok("3 deliveries added"));
    assert_eq!((r.dispatch.claimed, r.dispatch.delivered), (3, 3), "run_due ends with a dispatch pass");
    let rows = ws.deliveries(&DeliveryFilter { workflow: Some("digest".into()), ..Default::default() }, 100).unwrap();
    assert!(rows.iter().all(|r| r.trigger == "schedule:weekly:2026-07-06T09:00:00Z" && r.status == Status::Delivered));

    // The same due instant run again (a process killed before it recorded the run): nothing is added.
    at(&ws, due - Duration::minutes(1));
    schedule(&ws, spec).await.unwrap();
    at(&ws, due);
    let r = ws.run_due(due).await.unwrap();
    assert_eq!(r.jobs[0].outcome.as_deref(), Ok("0 deliveries added"));
    // The next week is a new trigger version: everyone again (re-entry `always`).
    let next = due + Duration::days(7);
    at(&ws, next);
    let r = ws.run_due(next).await.unwrap();
    assert_eq!(r.jobs[0].outcome.as_deref(), Ok("3 deliveries added"));
    assert_eq!(counter.0.load(Ordering::SeqCst), 9, "3 welcome mails and 2 × 3 digests");
    // A manual trigger of a schedule workflow takes the segment's members too.
    assert_eq!(ws.trigger("digest", None).await.unwrap(), 3);
}

#[tokio::test]
async fn schedule_specs_are_checked_with_field_paths() {
    let (_dir, ws) = common::people_workspace().await;
    let e = from_json_text::<ScheduleSpec>(
        r#"{"name": "n", "cron": "* * * * *", "job": {"type": "dispatch"}, "tz": "UTC"}"#,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Definition);
    assert!(e.to_string().contains("unknown field `tz`"), "{e}");
    let e =
        from_json_text::<ScheduleSpec>(r#"{"name": "n", "cron": "* * * * *", "job": {"type": "sync"}}"#).unwrap_err();
    assert!(e.to_string().contains("schedule.job") && e.to_string().contains("missing field `source`"), "{e}");
    let e = schedule(&ws, json!({"name": "n", "cron": "61 * * * *", "job": {"type": "dispatch"}})).await.unwrap_err();
    assert!(e.to_string().contains("schedule n.cron"), "{e}");
    let e = schedule(
        &ws,
        json!({"name": "n", "cron": "* * * * *", "timezone": "Mars/Olympus",
        "job": {"type": "dispatch"}}),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("schedule n.timezone") && e.to_string().contains("IANA"), "{e}");
    let long = format!("{}*", "0,".repeat(200));
    let e = schedule(&ws, json!({"name": "n", "cron": long, "job": {"type": "dispatch"}})).await.unwrap_err();
    assert!(e.to_string().contains("MAX_CRON_BYTES"), "{e}");
    let e = schedule(&ws, json!({"name": "n", "cron": "* * * * *", "job": {"type": "evaluate", "segment": "nope"}}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("schedule n.job.segment"), "{e}");
    let e = schedule(&ws, json!({"name": "n", "cron": "* * * * *", "job": {"type": "sync", "source": "nope"}}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("schedule n.job.source"), "{e}");
    let e = schedule(&ws, json!({"name": "1n", "cron": "* * * * *", "job": {"type": "dispatch"}})).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Definition, "{e}");
    assert!(ws.schedules().unwrap().is_empty());

    // The delivery lease is a workspace setting, bounded below.
    let dir = tempfile::tempdir().unwrap();
    let short = segkit::WorkspaceOptions::default().lease(StdDuration::from_millis(5));
    let e = Workspace::open_with(dir.path(), short).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("MIN_LEASE"), "{e}");
    let ws = Workspace::open_with(dir.path(), segkit::WorkspaceOptions::default().lease(StdDuration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(ws.lease(), StdDuration::from_secs(5));
    assert_eq!(Workspace::open(dir.path()).await.unwrap().lease(), segkit::workflow::dispatch::LEASE);
}

/// Signals each start on `started`, then finishes only when `release` is cancelled (never, if it is not).
#[derive(Debug)]
struct Gate {
    started: tokio::sync::mpsc::UnboundedSender<String>,
    release: CancellationToken,
}

#[async_trait]
impl Action for Gate {
    fn kind(&self) -> &str {
        "gate"
    }
    async fn execute(&self, d: &Delivery) -> Outcome {
        let _ = self.started.send(d.entity_key.clone());
        self.release.cancelled().await;
        Outcome::Delivered { receipt: None }
    }
}

/// A workspace whose 8 people each have a pending delivery through a `Gate`; returns the receiver of starts.
async fn gated(
    release: CancellationToken,
) -> (tempfile::TempDir, Workspace, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (dir, ws) = common::people_workspace().await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    ws.register_action("gate", Arc::new(Gate { started: tx, release })).unwrap();
    workflow(
        &ws,
        json!({"name": "ping", "trigger": {"type": "manual", "entity": "people"},
        "steps": [{"name": "call", "type": "action", "action": "gate"}]}),
    )
    .await;
    assert_eq!(ws.trigger("ping", None).await.unwrap(), 8);
    (dir, ws, rx)
}

fn by_status(ws: &Workspace) -> Vec<(Status, u32)> {
    let mut v: Vec<_> =
        ws.deliveries(&DeliveryFilter::default(), 100).unwrap().into_iter().map(|r| (r.status, r.attempts)).collect();
    v.sort_by_key(|(s, a)| (s.as_str(), *a));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_shutdown_lets_in_flight_deliveries_finish_and_releases_the_rest() {
    let shutdown = CancellationToken::new();
    // The actions finish as soon as shutdown begins, well within the grace period.
    let (_dir, ws, mut started) = gated(shutdown.clone()).await;
    let options = ServeOptions::default().concurrency(2).grace(StdDuration::from_secs(300));
    let server = tokio::spawn({
        let (ws, shutdown) = (ws.clone(), shutdown.clone());
        async move { ws.serve(options, shutdown).await }
    });
    started.recv().await.unwrap();
    started.recv().await.unwrap();
    shutdown.cancel();
    let report = server.await.unwrap().unwrap();
    assert_eq!((report.delivered, report.released), (2, 6), "{report:?}");
    // Two delivered; six back to pending with their attempt not counted, for the next process.
    let mut expected = vec![(Status::Delivered, 1); 2];
    expected.extend(vec![(Status::Pending, 0); 6]);
    expected.sort_by_key(|(s, a)| (s.as_str(), *a));
    assert_eq!(by_status(&ws), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_shutdown_releases_deliveries_still_running_after_the_grace_period() {
    let never = CancellationToken::new();
    let (_dir, ws, mut started) = gated(never.clone()).await;
    let shutdown = CancellationToken::new();
    let options = ServeOptions::default().concurrency(3).grace(StdDuration::from_millis(50));
    let server = tokio::spawn({
        let (ws, shutdown) = (ws.clone(), shutdown.clone());
        async move { ws.serve(options, shutdown).await }
    });
    for _ in 0..3 {
        started.recv().await.unwrap();
    }
    shutdown.cancel();
    let report = server.await.unwrap().unwrap();
    assert_eq!((report.delivered, report.released), (0, 8), "{report:?}");
    assert_eq!(by_status(&ws), vec![(Status::Pending, 0); 8]);
    // Another process takes them at once, without waiting for the lease.
    never.cancel();
    let rep = ws.dispatch_due(100, 8).await.unwrap();
    assert_eq!(rep.delivered, 8);
}

#[tokio::test]
async fn serve_runs_due_jobs_and_a_failing_one_does_not_stop_the_loop() {
    let (_dir, ws) = common::people_workspace().await;
    cn_segment(&ws).await;
    let t0 = Utc.with_ymd_and_hms(2026, 6, 30, 0, 0, 0).unwrap();
    at(&ws, t0 - Duration::minutes(1));
    schedule(
        &ws,
        json!({"name": "eval", "cron": "0 0 * * *", "timezone": "UTC",
        "job": {"type": "evaluate", "segment": "cn"}}),
    )
    .await
    .unwrap();
    schedule(
        &ws,
        json!({"name": "broken", "cron": "0 0 * * *", "timezone": "UTC",
        "job": {"type": "evaluate", "segment": "cn"}}),
    )
    .await
    .unwrap();
    let rule = Rule::parse(&json!({"attribute": "country", "op": "eq", "value": "US"}), Dialect::Auto).unwrap();
    ws.define_segment(SegmentDefinition::new("us", "people", rule)).await.unwrap();
    schedule(
        &ws,
        json!({"name": "eval", "cron": "0 0 * * *", "timezone": "UTC",
        "job": {"type": "evaluate", "segment": "us"}}),
    )
    .await
    .unwrap();
    ws.delete_segment("cn").await.unwrap();
    at(&ws, t0);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn({
        let (ws, shutdown) = (ws.clone(), shutdown.clone());
        async move { ws.serve(ServeOptions::default().poll_interval(StdDuration::from_millis(20)), shutdown).await }
    });
    // The loop keeps going after `broken` fails; wait until `eval` is recorded too (bounded).
    for _ in 0..500 {
        if ws.schedules().unwrap().iter().all(|s| s.runs == 1) {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    shutdown.cancel();
    let report = server.await.unwrap().unwrap();
    assert_eq!((report.jobs, report.failed_jobs), (2, 1), "{report:?}");
    assert_eq!(ws.runs("us").unwrap().len(), 1);
    let broken = ws.schedule_info("broken").unwrap();
    assert!(broken.last_error.is_some() && broken.next_due == Some(t0 + Duration::days(1)), "{broken:?}");
}

#[tokio::test]
async fn a_sync_job_syncs_a_named_source_and_shows_in_segkit_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    let rows: String = (0..40).map(|i| format!("{{\"id\": {i}, \"name\": \"user {i}\"}}\n")).collect();
    std::fs::write(parts.join("part-00000.ndjson"), rows).unwrap();
    let mut registry = segkit::sources::SourceRegistry::new();
    segkit::testing::register_sources(&mut registry);
    let ws = Workspace::open_with(dir.path().join("ws"), segkit::WorkspaceOptions::default().source_factory(registry))
        .await
        .unwrap();
    ws.define_entity(
        segkit::Entity::profile("user", "id")
            .attribute(segkit::Attribute::new("id", segkit::DataType::Int64))
            .attribute(segkit::Attribute::new("name", segkit::DataType::String)),
    )
    .await
    .unwrap();
    let config = json!({"type": "testing_parts", "dir": parts, "fields": ["id", "name"]});
    ws.define_source(segkit::SourceDefinition::new("users", "user", config)).await.unwrap();
    let t0 = utc("2026-06-30T00:00:00Z");
    at(&ws, t0);
    schedule(
        &ws,
        json!({"name": "pull", "cron": "*/5 * * * *", "timezone": "UTC",
        "job": {"type": "sync", "source": "users"}}),
    )
    .await
    .unwrap();
    let due = t0 + Duration::minutes(5);
    at(&ws, due);
    let r = ws.run_due(due).await.unwrap();
    assert_eq!(r.jobs[0].outcome.as_deref(), Ok("synced 40 rows (0 quarantined)"), "{r:?}");
    let b = ws.sql("SELECT named_source, source, rows_written FROM segkit.syncs").await.unwrap();
    let text = segkit::deps::arrow::util::pretty::pretty_format_batches(&b).unwrap().to_string();
    assert!(text.contains("| users        | testing_parts:parts | 40           |"), "{text}");
    // The next run finds nothing new past the cursor.
    let next = due + Duration::minutes(5);
    at(&ws, next);
    let r = ws.run_due(next).await.unwrap();
    assert_eq!(r.jobs[0].outcome.as_deref(), Ok("synced 0 rows (0 quarantined)"), "{r:?}");
}

#[tokio::test]
async fn an_action_gets_half_the_workspace_lease_to_answer() {
    let dir = tempfile::tempdir().unwrap();
    let options = segkit::WorkspaceOptions::default().lease(StdDuration::from_millis(400));
    let ws = Workspace::open_with(dir.path(), options).await.unwrap();
    ws.define_entity(common::people_entity()).await.unwrap();
    let text = std::fs::read_to_string(format!("{}/people.csv", common::FIXTURES)).unwrap();
    ws.ingest_batches("people", vec![common::csv_batch(&text)], segkit::IngestOptions::default()).await.unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    ws.register_action("gate", Arc::new(Gate { started: tx, release: CancellationToken::new() })).unwrap();
    workflow(
        &ws,
        json!({"name": "ping", "trigger": {"type": "manual", "entity": "people"},
        "steps": [{"name": "call", "type": "action", "action": "gate"}]}),
    )
    .await;
    assert_eq!(ws.trigger("ping", Some(vec!["1".into()])).await.unwrap(), 1);
    // The action never answers: after half the lease the attempt counts as a retryable failure.
    let r = ws.dispatch_due(10, 1).await.unwrap();
    assert_eq!((r.claimed, r.retried), (1, 1), "{r:?}");
    let row = &ws.deliveries(&DeliveryFilter::default(), 10).unwrap()[0];
    assert_eq!((row.status, row.last_error.as_deref()), (Status::Pending, Some("no outcome within 200 ms")));
}
