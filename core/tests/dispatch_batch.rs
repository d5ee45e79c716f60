//! The batch-oriented dispatcher: one pass over thousands of claimed rows (more than one attribute lookup's
//! worth of keys) delivers each entity its own attributes exactly once, and the group commit of outcomes keeps
//! the ledger's rules — a write applies only for the attempt that claimed the row, a finish adds the next row
//! only when it applies, holds do not count an attempt — against a real catalog and real Parquet data.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use segkit::catalog::{Catalog, LedgerWrite};
use segkit::deps::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use segkit::limits::MAX_LOOKUP_KEYS;
use segkit::spec::{from_value, TemplateSpec, WorkflowSpec};
use segkit::workflow::{DeliveryFilter, LedgerRow, Status};
use segkit::{
    Action, Attribute, DataType, Delivery, Entity, FixedClock, IngestOptions, Outcome, Workspace, WorkspaceOptions,
};
use serde_json::json;

/// Keeps every delivery it is given.
#[derive(Debug, Default)]
struct Recording(Mutex<Vec<Delivery>>);

#[async_trait]
impl Action for Recording {
    fn kind(&self) -> &str {
        "recording"
    }
    async fn execute(&self, d: &Delivery) -> Outcome {
        self.0.lock().unwrap().push(d.clone());
        Outcome::Delivered { receipt: Some(format!("got {}", d.entity_key)) }
    }
}

/// The instant the workspaces of these tests are fixed at.
const NOW: &str = "2026-06-30T00:00:00Z";

/// [`NOW`] in ms since the epoch, and the catalog of the workspace in `dir` opened beside it (to claim and
/// record directly).
fn ledger(dir: &tempfile::TempDir) -> (i64, Catalog) {
    let now = NOW.parse::<chrono::DateTime<chrono::Utc>>().unwrap().timestamp_millis();
    (now, Catalog::open(&dir.path().join("segkit.db")).unwrap())
}

/// A workspace with `n` users (keys 1..=n, name `User <key>`), a clock fixed at 2026-06-30, and a manual
/// workflow `hello`: an action step rendering the name, then an exit.
async fn users(n: i64) -> (tempfile::TempDir, Workspace, Arc<Recording>) {
    users_with(n, WorkspaceOptions::default()).await
}

/// [`users`] in a workspace opened with `options`.
async fn users_with(n: i64, options: WorkspaceOptions) -> (tempfile::TempDir, Workspace, Arc<Recording>) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open_with(dir.path(), options).await.unwrap();
    ws.set_clock(Arc::new(FixedClock::parse(NOW).unwrap()));
    ws.define_entity(
        Entity::profile("user", "user_id")
            .attribute(Attribute::new("user_id", DataType::Int64))
            .attribute(Attribute::new("name", DataType::String)),
    )
    .await
    .unwrap();
    let ids: Vec<i64> = (1..=n).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("User {i}")).collect();
    let batch = RecordBatch::try_from_iter([
        ("user_id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        ("name", Arc::new(StringArray::from(names)) as ArrayRef),
    ])
    .unwrap();
    ws.ingest_batches("user", vec![batch], IngestOptions::default()).await.unwrap();
    let action = Arc::new(Recording::default());
    ws.register_action("hook", action.clone()).unwrap();
    let t: TemplateSpec = from_value(json!({"name": "hi", "channel": "hook", "entity": "user",
        "parts": {"text": "Hi {{ entity.name }} ({{ key }})"}}))
    .unwrap();
    ws.define_template(t).await.unwrap();
    let w: WorkflowSpec = from_value(json!({"name": "hello", "trigger": {"type": "manual", "entity": "user"},
        "steps": [{"name": "send", "type": "action", "action": "hook", "template": "hi"},
                  {"name": "bye", "type": "exit"}]}))
    .unwrap();
    ws.define_workflow(w).await.unwrap();
    (dir, ws, action)
}

#[tokio::test]
async fn one_pass_over_more_keys_than_one_lookup_sends_each_entity_its_own_attributes_once() {
    let n = MAX_LOOKUP_KEYS as i64 + 200;
    let (_dir, ws, action) = users(n).await;
    ws.suppress("hook", &["7".into(), "4100".into()]).unwrap();
    let mut keys: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    keys.push("999999".into()); // no such user
    assert_eq!(ws.trigger("hello", Some(keys)).await.unwrap(), n as u64 + 1);

    let rep = ws.dispatch_due(n as usize + 10, 32).await.unwrap();
    assert_eq!(rep.claimed, n as u64 + 1, "{rep:?}");
    assert_eq!((rep.delivered, rep.suppressed, rep.dead), (n as u64 - 2, 2, 1), "{rep:?}");

    let sent = action.0.lock().unwrap().clone();
    assert_eq!(sent.len(), n as usize - 2);
    let mut seen_keys = HashSet::new();
    for d in &sent {
        assert!(seen_keys.insert(d.entity_key.clone()), "{} sent twice", d.entity_key);
        // The batched lookup gave this delivery the attributes of its own entity.
        assert_eq!(d.attributes["user_id"], json!(d.entity_key.parse::<i64>().unwrap()), "{d:?}");
        assert_eq!(d.content["text"], format!("Hi User {} ({})", d.entity_key, d.entity_key));
        assert_eq!(d.attempt, 1);
    }
    assert!(!seen_keys.contains("7") && !seen_keys.contains("4100") && !seen_keys.contains("999999"));

    let rows = ws.deliveries(&DeliveryFilter::default(), usize::MAX).unwrap();
    let by_key: BTreeMap<(String, String), Status> =
        rows.iter().map(|r| ((r.step.clone(), r.entity_key.clone()), r.status)).collect();
    assert_eq!(by_key.len(), rows.len(), "one ledger row per (step, entity)");
    assert_eq!(by_key[&("send".to_string(), "7".to_string())], Status::Suppressed);
    assert_eq!(by_key[&("send".to_string(), "999999".to_string())], Status::Dead);
    let missing = rows.iter().find(|r| r.entity_key == "999999").unwrap();
    assert!(missing.last_error.as_deref().unwrap().contains("no entity with this key"), "{missing:?}");
    let receipt = rows.iter().find(|r| r.step == "send" && r.entity_key == "42").unwrap();
    assert_eq!((receipt.status, receipt.receipt.as_deref()), (Status::Delivered, Some("got 42")));
    // Every delivered or suppressed row added its exit row in the same group commit; the dead one did not.
    let exits = rows.iter().filter(|r| r.step == "bye").count();
    assert_eq!(exits, n as usize);

    let rep = ws.dispatch_due(n as usize + 10, 32).await.unwrap();
    assert_eq!((rep.claimed, rep.done), (n as u64, n as u64), "{rep:?}");
    assert_eq!(ws.dispatch_due(10, 4).await.unwrap().claimed, 0);
    assert_eq!(action.0.lock().unwrap().len(), n as usize - 2, "nothing sent again");
}

#[tokio::test]
async fn a_group_commit_applies_each_write_only_for_the_attempt_that_claimed_its_row() {
    let (dir, ws, _action) = users(6).await;
    assert_eq!(ws.trigger("hello", None).await.unwrap(), 6);
    let (now, cat) = ledger(&dir);
    let first = cat.claim_deliveries(now, 1000, 4).unwrap();
    assert_eq!(first.len(), 4);
    assert!(first.windows(2).all(|w| w[0].id < w[1].id) && first.iter().all(|r| r.attempts == 1));
    // The lease of the first claim expires: a second claim takes those rows again (attempt 2), then the rest.
    let second = cat.claim_deliveries(now + 1000, 1000, 10).unwrap();
    assert_eq!(second.len(), 6);
    assert_eq!(second.iter().filter(|r| r.attempts == 2).count(), 4);
    let finish = |r: &LedgerRow, attempts: u32| delivered_then_bye(r, attempts, "ok", now);
    let (a, b, c, d) = (&second[0], &second[1], &second[2], &second[5]);
    let writes = vec![
        finish(a, 1), // the expired first attempt: stale, changes nothing and adds no next row
        finish(b, b.attempts),
        LedgerWrite::Hold {
            id: c.id,
            attempts: c.attempts,
            due_at: now + 5000,
            detail: Some("held".into()),
            resolved_at: None,
        },
        LedgerWrite::Retry { id: d.id, attempts: d.attempts, due_at: now + 9000, error: "503".into() },
    ];
    assert_eq!(cat.record_outcomes(&writes, now + 1000).unwrap(), vec![false, true, true, true]);
    assert_eq!(cat.record_outcomes(&writes[1..2], now + 1000).unwrap(), vec![false], "already finished");

    let rows: BTreeMap<i64, LedgerRow> =
        ws.deliveries(&DeliveryFilter::default(), 100).unwrap().into_iter().map(|r| (r.id, r)).collect();
    assert_eq!(rows[&a.id].status, Status::Running, "the stale finish did not apply");
    assert_eq!((rows[&b.id].status, rows[&b.id].receipt.as_deref()), (Status::Delivered, Some("ok")));
    assert_eq!((rows[&c.id].status, rows[&c.id].attempts, rows[&c.id].due_at), (Status::Pending, 1, now + 5000));
    assert_eq!(rows[&c.id].detail.as_deref(), Some("held"));
    assert_eq!((rows[&d.id].status, rows[&d.id].attempts), (Status::Pending, 1));
    assert_eq!(rows[&d.id].last_error.as_deref(), Some("503"));
    let exits: Vec<&str> = rows.values().filter(|r| r.step == "bye").map(|r| r.entity_key.as_str()).collect();
    assert_eq!(exits, [b.entity_key.as_str()], "only the applied finish added its next row");
}

#[tokio::test]
async fn a_group_commit_applies_writes_sharing_their_values_in_one_statement_per_attempt() {
    let (dir, ws, _action) = users(8).await;
    assert_eq!(ws.trigger("hello", None).await.unwrap(), 8);
    let (now, cat) = ledger(&dir);
    assert_eq!(cat.claim_deliveries(now, 1000, 3).unwrap().len(), 3);
    // Rows 0..3 are claimed again (attempt 2), rows 3..8 for the first time (attempt 1).
    let rows = cat.claim_deliveries(now + 1000, 1000, 10).unwrap();
    assert_eq!(rows.iter().map(|r| r.attempts).collect::<Vec<_>>(), [2, 2, 2, 1, 1, 1, 1, 1]);
    // The next step is due after this test's claims.
    let delivered = |r: &LedgerRow, attempts: u32| delivered_then_bye(r, attempts, "HTTP 200", now + 60_000);
    let held = |r: &LedgerRow| LedgerWrite::Hold {
        id: r.id,
        attempts: r.attempts,
        due_at: now + 5000,
        detail: Some("quiet".into()),
        resolved_at: None,
    };
    let retry =
        |r: &LedgerRow| LedgerWrite::Retry { id: r.id, attempts: r.attempts, due_at: now + 9000, error: "503".into() };
    let writes = vec![
        delivered(&rows[0], 1), // stale (the row's attempt is 2), in the same group as rows 3 and 4
        delivered(&rows[3], 1),
        delivered(&rows[1], 2), // the attempt-2 group
        delivered(&rows[4], 1),
        delivered(&rows[2], 2),
        held(&rows[5]),
        held(&rows[6]),
        retry(&rows[7]),
    ];
    assert_eq!(cat.record_outcomes(&writes, now + 1000).unwrap(), [false, true, true, true, true, true, true, true]);
    assert_eq!(cat.record_outcomes(&writes[1..4], now + 1000).unwrap(), [false; 3], "already finished");
    // Two writes to one row apply one by one, in order: the second finds the row no longer running.
    // (The claim takes row 0, whose lease expired, and the first due row: row 5, held until now + 5000.)
    let again = cat.claim_deliveries(now + 20_000, 1000, 2).unwrap();
    let r = again.iter().find(|r| r.id == rows[5].id).expect("the held row is due again");
    let twice = [delivered(r, r.attempts), retry(r)];
    assert_eq!(cat.record_outcomes(&twice, now + 20_000).unwrap(), [true, false]);

    let ledger: BTreeMap<i64, LedgerRow> =
        ws.deliveries(&DeliveryFilter::default(), 100).unwrap().into_iter().map(|r| (r.id, r)).collect();
    assert_eq!(ledger[&rows[0].id].receipt, None, "the stale finish did not apply");
    assert_eq!((ledger[&rows[0].id].status, ledger[&rows[0].id].attempts), (Status::Running, 3));
    for r in [&rows[1], &rows[2], &rows[3], &rows[4], &rows[5]] {
        assert_eq!(ledger[&r.id].status, Status::Delivered, "row {}", r.id);
        assert_eq!(ledger[&r.id].receipt.as_deref(), Some("HTTP 200"));
        assert_eq!(ledger[&r.id].channel.as_deref(), Some("hook"));
    }
    assert_eq!((ledger[&rows[6].id].status, ledger[&rows[6].id].attempts), (Status::Pending, 0));
    assert_eq!((ledger[&rows[6].id].due_at, ledger[&rows[6].id].detail.as_deref()), (now + 5000, Some("quiet")));
    assert_eq!((ledger[&rows[7].id].status, ledger[&rows[7].id].last_error.as_deref()), (Status::Pending, Some("503")));
    let mut exits: Vec<&str> = ledger.values().filter(|r| r.step == "bye").map(|r| r.entity_key.as_str()).collect();
    exits.sort();
    let mut expected: Vec<&str> =
        [&rows[1], &rows[2], &rows[3], &rows[4], &rows[5]].iter().map(|r| r.entity_key.as_str()).collect();
    expected.sort();
    assert_eq!(exits, expected, "each applied finish added its next row, the stale one none");
}

/// Answers the first attempt to user 2 with a retryable failure, records every delivery it is given.
#[derive(Debug, Default)]
struct FailsUser2Once(Mutex<Vec<Delivery>>);

#[async_trait]
impl Action for FailsUser2Once {
    fn kind(&self) -> &str {
        "fails-user-2-once"
    }
    async fn execute(&self, d: &Delivery) -> Outcome {
        self.0.lock().unwrap().push(d.clone());
        if d.entity_key == "2" && d.attempt == 1 {
            return Outcome::Retryable { reason: "busy".into(), retry_after: None };
        }
        Outcome::Delivered { receipt: None }
    }
}

/// A delivered finish of `r` at `attempts` with `receipt` on channel `hook`, adding its next step `bye` due at `due_at`.
fn delivered_then_bye(r: &LedgerRow, attempts: u32, receipt: &str, due_at: i64) -> LedgerWrite {
    LedgerWrite::Finish {
        id: r.id,
        attempts,
        status: Status::Delivered,
        receipt: Some(receipt.into()),
        error: None,
        detail: None,
        channel: Some("hook".into()),
        sent: true,
        next: Some(segkit::workflow::ledger::NewDelivery {
            workflow: r.workflow.clone(),
            trigger: r.trigger.clone(),
            step: "bye".into(),
            entity: r.entity.clone(),
            entity_key: r.entity_key.clone(),
            due_at,
            context: None,
        }),
    }
}

/// Defines segment `everyone`: every user.
async fn define_everyone(ws: &Workspace) {
    ws.define_segment(segkit::SegmentDefinition::new(
        "everyone",
        "user",
        segkit::rules::Rule::parse_str(r#"{"attribute": "user_id", "op": "ge", "value": 0}"#).unwrap(),
    ))
    .await
    .unwrap();
}

/// The count of ledger rows holding a captured context.
fn captured_rows(dir: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open(dir.join("segkit.db")).unwrap();
    c.query_row("SELECT count(*) FROM deliveries WHERE context IS NOT NULL", [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn entering_a_segment_captures_the_attributes_its_first_attempt_sends_and_retries_read_them_again() {
    let (dir, ws, _) = users(3).await;
    let action = Arc::new(FailsUser2Once::default());
    ws.register_action("flaky", action.clone()).unwrap();
    define_everyone(&ws).await;
    let w: WorkflowSpec = from_value(json!({"name": "welcome", "trigger": {"type": "entered", "segment": "everyone"},
        "steps": [{"name": "send", "type": "action", "action": "flaky", "template": "hi"}],
        "policies": {"backoff_ms": 1000}}))
    .unwrap();
    ws.define_workflow(w).await.unwrap();
    ws.evaluate("everyone").await.unwrap();
    assert_eq!(captured_rows(dir.path()), 3, "the trigger captured each entered user's attributes");

    // The names change after the users entered and before the deliveries go out.
    let batch = RecordBatch::try_from_iter([
        ("user_id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
        ("name", Arc::new(StringArray::from(vec!["Ann", "Bob", "Cy"])) as ArrayRef),
    ])
    .unwrap();
    ws.ingest_batches("user", vec![batch], IngestOptions::default()).await.unwrap();

    let rep = ws.dispatch_due(10, 4).await.unwrap();
    assert_eq!((rep.delivered, rep.retried), (2, 1), "{rep:?}");
    // First attempts send what the entities were when they entered the segment.
    let texts = |v: &[Delivery]| -> BTreeMap<(String, u32), String> {
        v.iter().map(|d| ((d.entity_key.clone(), d.attempt), d.content["text"].clone())).collect()
    };
    let sent = texts(&action.0.lock().unwrap());
    assert_eq!(sent[&("1".to_string(), 1)], "Hi User 1 (1)");
    assert_eq!(sent[&("2".to_string(), 1)], "Hi User 2 (2)");
    assert_eq!(sent[&("3".to_string(), 1)], "Hi User 3 (3)");
    assert_eq!(action.0.lock().unwrap()[0].attributes["user_id"], json!(1), "the captured attributes are typed");
    // A finished or retried row no longer holds its context.
    assert_eq!(captured_rows(dir.path()), 0);

    // The retry reads the entity again: it sends the current name.
    ws.set_clock(Arc::new(FixedClock::parse("2026-06-30T01:00:00Z").unwrap()));
    let rep = ws.dispatch_due(10, 4).await.unwrap();
    assert_eq!(rep.delivered, 1, "{rep:?}");
    let sent = texts(&action.0.lock().unwrap());
    assert_eq!(sent[&("2".to_string(), 2)], "Hi Bob (2)");
    assert_eq!(sent.len(), 4);
}

/// Takes 50 ms per delivery; while it executes, counts the ledger's running rows (claimed, not finished) through a
/// connection of its own, and keeps the largest count seen and the most deliveries executing at once.
#[derive(Debug)]
struct SlowCounting {
    db: std::path::PathBuf,
    executing: std::sync::atomic::AtomicUsize,
    most_executing: std::sync::atomic::AtomicUsize,
    most_running: std::sync::atomic::AtomicI64,
    sent: Mutex<Vec<String>>,
}

#[async_trait]
impl Action for SlowCounting {
    fn kind(&self) -> &str {
        "slow-counting"
    }
    async fn execute(&self, d: &Delivery) -> Outcome {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.executing.fetch_add(1, SeqCst) + 1;
        self.most_executing.fetch_max(now, SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        let c = rusqlite::Connection::open(&self.db).unwrap();
        let running: i64 =
            c.query_row("SELECT count(*) FROM deliveries WHERE status = 'running'", [], |r| r.get(0)).unwrap();
        self.most_running.fetch_max(running, SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        self.sent.lock().unwrap().push(d.entity_key.clone());
        self.executing.fetch_sub(1, SeqCst);
        Outcome::Delivered { receipt: None }
    }
}

/// Asserts that `action` was sent each of the 20 users of [`slow_users`] exactly once.
fn assert_each_user_sent_once(action: &SlowCounting) {
    let mut sent = action.sent.lock().unwrap().clone();
    sent.sort_by_key(|k| k.parse::<i64>().unwrap());
    assert_eq!(sent, (1..=20).map(|i| i.to_string()).collect::<Vec<_>>(), "each user once");
}

/// 20 users triggered through a one-step workflow sending with [`SlowCounting`].
async fn slow_users() -> (tempfile::TempDir, Workspace, Arc<SlowCounting>) {
    slow_users_with(WorkspaceOptions::default()).await
}

/// [`slow_users`] in a workspace opened with `options`.
async fn slow_users_with(options: WorkspaceOptions) -> (tempfile::TempDir, Workspace, Arc<SlowCounting>) {
    let (dir, ws, _) = users_with(20, options).await;
    let action = Arc::new(SlowCounting {
        db: dir.path().join("segkit.db"),
        executing: Default::default(),
        most_executing: Default::default(),
        most_running: Default::default(),
        sent: Mutex::new(vec![]),
    });
    ws.register_action("slow", action.clone()).unwrap();
    let w: WorkflowSpec = from_value(json!({"name": "slowly", "trigger": {"type": "manual", "entity": "user"},
        "steps": [{"name": "send", "type": "action", "action": "slow", "template": "hi"}]}))
    .unwrap();
    ws.define_workflow(w).await.unwrap();
    let keys: Vec<String> = (1..=20).map(|i| i.to_string()).collect();
    assert_eq!(ws.trigger("slowly", Some(keys)).await.unwrap(), 20);
    (dir, ws, action)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_backlog_claims_the_next_batch_while_the_previous_ones_last_deliveries_run() {
    use std::sync::atomic::Ordering::SeqCst;
    let (_dir, ws, action) = slow_users().await;
    // Batches of 4, 2 sends at once: 5 full claims, then an empty one ends it.
    let rep = ws.dispatch_backlog(4, 2).await.unwrap();
    assert_eq!((rep.claimed, rep.delivered), (20, 20), "{rep:?}");
    assert_each_user_sent_once(&action);
    assert!(action.most_executing.load(SeqCst) <= 2, "at most `concurrency` actions execute at once");
    // While a batch's deliveries ran, the next batch was already claimed: more rows running than one batch.
    let most = action.most_running.load(SeqCst);
    assert!(most > 4, "the next claim overlapped the previous batch's deliveries: at most {most} running");
    // The window (2 × concurrency rows), the chunk feeding it and the one the producer holds: never all 20.
    assert!(most <= 12, "claims stay at most two chunks ahead of the window: {most} running");
    assert_eq!(ws.dispatch_backlog(4, 2).await.unwrap().claimed, 0);

    // One pass after another (`dispatch_due`) never has more than its own batch claimed.
    let (_dir, ws, action) = slow_users().await;
    let mut claimed = vec![];
    loop {
        let rep = ws.dispatch_due(4, 2).await.unwrap();
        if rep.claimed == 0 {
            break;
        }
        claimed.push(rep.claimed);
    }
    assert_eq!(claimed, vec![4, 4, 4, 4, 4], "dispatch_due claims at most `limit` rows per call");
    assert_eq!(action.sent.lock().unwrap().len(), 20);
    assert!(action.most_running.load(SeqCst) <= 4, "passes do not overlap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_window_bounds_the_deliveries_a_dispatch_has_in_flight() {
    use std::sync::atomic::Ordering::SeqCst;
    // 8 send slots and the default window (16): more than 3 deliveries execute at once.
    let (_dir, ws, action) = slow_users().await;
    let rep = ws.dispatch_backlog(20, 8).await.unwrap();
    assert_eq!((rep.claimed, rep.delivered), (20, 20), "{rep:?}");
    let most = action.most_executing.load(SeqCst);
    assert!(most > 3 && most <= 8, "{most} executing at once with 8 send slots");

    // A window of 3: never more than 3 in flight, so never more than 3 executing, whatever the send slots.
    let (_dir, ws, action) = slow_users_with(WorkspaceOptions::default().delivery_window(3)).await;
    let rep = ws.dispatch_backlog(20, 8).await.unwrap();
    assert_eq!((rep.claimed, rep.delivered), (20, 20), "{rep:?}");
    assert_each_user_sent_once(&action);
    let most = action.most_executing.load(SeqCst);
    assert!((1..=3).contains(&most), "{most} executing at once with a window of 3");

    // The largest window, over more than one claim (a full first batch): every user once, at most 8 executing.
    let big = WorkspaceOptions::default().delivery_window(segkit::limits::MAX_DELIVERY_WINDOW);
    let (_dir, ws, action) = slow_users_with(big).await;
    let rep = ws.dispatch_backlog(10, 8).await.unwrap();
    assert_eq!((rep.claimed, rep.delivered), (20, 20), "{rep:?}");
    assert_each_user_sent_once(&action);
    let most = action.most_executing.load(SeqCst);
    assert!(most > 3 && most <= 8, "{most} executing at once with 8 send slots");

    // A window out of bounds is refused when the workspace opens.
    for w in [0, segkit::limits::MAX_DELIVERY_WINDOW + 1] {
        let dir = tempfile::tempdir().unwrap();
        let err = Workspace::open_with(dir.path(), WorkspaceOptions::default().delivery_window(w)).await.unwrap_err();
        assert!(err.to_string().contains("MAX_DELIVERY_WINDOW"), "{err}");
    }
    // So is a lease beyond a day (its milliseconds are added to instants in the catalog).
    let dir = tempfile::tempdir().unwrap();
    let lease = segkit::workflow::dispatch::MAX_LEASE + std::time::Duration::from_millis(1);
    let err = Workspace::open_with(dir.path(), WorkspaceOptions::default().lease(lease)).await.unwrap_err();
    assert!(err.to_string().contains("longer than 86400000 ms (MAX_LEASE)"), "{err}");
}

#[tokio::test]
async fn a_run_writes_captured_attributes_for_every_capturing_workflow_and_plain_rows_for_the_others() {
    let (dir, ws, action) = users(300).await;
    define_everyone(&ws).await;
    for name in ["welcome", "greet"] {
        let w: WorkflowSpec = from_value(json!({"name": name, "trigger": {"type": "entered", "segment": "everyone"},
            "steps": [{"name": "send", "type": "action", "action": "hook", "template": "hi"}]}))
        .unwrap();
        ws.define_workflow(w).await.unwrap();
    }
    // A first step that is not an action: its rows read the entity when they are dispatched.
    let w: WorkflowSpec = from_value(json!({"name": "later", "trigger": {"type": "entered", "segment": "everyone"},
        "steps": [{"name": "pause", "type": "wait", "seconds": 3600},
                  {"name": "send", "type": "action", "action": "hook", "template": "hi"}]}))
    .unwrap();
    ws.define_workflow(w).await.unwrap();
    let run = ws.evaluate("everyone").await.unwrap();
    assert_eq!(run.entered.num_rows(), 300);
    let rows = ws.deliveries(&DeliveryFilter::default(), usize::MAX).unwrap();
    assert_eq!(rows.len(), 900, "one row per workflow and entered user, committed with the run");
    assert_eq!(captured_rows(dir.path()), 600, "the two workflows starting with an action captured");
    let keys = |w: &str| rows.iter().filter(|r| r.workflow == w).map(|r| r.entity_key.clone()).collect::<HashSet<_>>();
    for w in ["welcome", "greet", "later"] {
        assert_eq!(keys(w).len(), 300, "{w}: each entered user once");
    }

    // The names change before the sends: both workflows send what the users were when they entered.
    let ids: Vec<i64> = (1..=300).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("Renamed {i}")).collect();
    let batch = RecordBatch::try_from_iter([
        ("user_id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        ("name", Arc::new(StringArray::from(names)) as ArrayRef),
    ])
    .unwrap();
    ws.ingest_batches("user", vec![batch], IngestOptions::default()).await.unwrap();
    let rep = ws.dispatch_backlog(1000, 8).await.unwrap();
    // The waits are due in an hour (the clock is fixed): not claimed.
    assert_eq!((rep.claimed, rep.delivered), (600, 600), "{rep:?}");
    let sent = action.0.lock().unwrap().clone();
    assert_eq!(sent.len(), 600);
    for d in &sent {
        assert_eq!(d.content["text"], format!("Hi User {} ({})", d.entity_key, d.entity_key), "{d:?}");
        assert_eq!(d.attributes["user_id"], json!(d.entity_key.parse::<i64>().unwrap()));
    }
    assert_eq!(captured_rows(dir.path()), 0);
}

/// Wraps an entity's table in the query session: every scan of all its columns waits until
/// [`GatedTable::release`] has a permit, and [`GatedTable::started`] is notified when the first one begins.
#[derive(Debug)]
struct GatedTable {
    inner: Arc<dyn datafusion::catalog::TableProvider>,
    started: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
}

#[async_trait]
impl datafusion::catalog::TableProvider for GatedTable {
    fn schema(&self) -> segkit::deps::arrow::datatypes::SchemaRef {
        self.inner.schema()
    }
    fn table_type(&self) -> datafusion::datasource::TableType {
        self.inner.table_type()
    }
    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::prelude::Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        // The trigger's capture reads every attribute; the segment's evaluation only those its rule names.
        if projection.is_none_or(|p| p.len() == self.inner.schema().fields().len()) {
            self.started.notify_one();
            let _permit = self.release.acquire().await.expect("the gate is never closed");
        }
        self.inner.scan(state, projection, filters, limit).await
    }
}

/// The trigger of a segment run reads the entered entities' attributes (for the workflows that capture them)
/// before its catalog transaction begins: while that scan runs, another writer of the catalog commits at once
/// instead of waiting for the run (and failing after the busy timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_writer_commits_while_a_run_scans_the_attributes_it_captures() {
    let (dir, ws, action) = users(50).await;
    define_everyone(&ws).await;
    let w: WorkflowSpec = from_value(json!({"name": "welcome", "trigger": {"type": "entered", "segment": "everyone"},
        "steps": [{"name": "send", "type": "action", "action": "hook", "template": "hi"}]}))
    .unwrap();
    ws.define_workflow(w).await.unwrap();
    // Only the capture scans the session's table: the segment's evaluation plans over the snapshot's provider.
    let gate = Arc::new(GatedTable {
        inner: ws.session().table_provider("user").await.unwrap(),
        started: tokio::sync::Notify::new(),
        release: tokio::sync::Semaphore::new(0),
    });
    ws.session().deregister_table("user").unwrap();
    ws.session().register_table("user", gate.clone()).unwrap();
    let run = tokio::spawn({
        let ws = ws.clone();
        async move { ws.evaluate("everyone").await }
    });
    tokio::time::timeout(std::time::Duration::from_secs(120), gate.started.notified())
        .await
        .expect("the run's trigger never scanned the user table");
    assert!(!run.is_finished(), "the run waits for its scan");
    // The scan is held: a suppression written now commits (the run holds no write lock yet).
    let writer = ws.clone();
    let added = tokio::task::spawn_blocking(move || writer.suppress("hook", &["7".to_string()])).await.unwrap();
    assert_eq!(added.unwrap(), 1, "a write made while the run scans commits at once");
    gate.release.add_permits(1 << 20);
    let run = run.await.unwrap().unwrap();
    assert_eq!(run.entered.num_rows(), 50);
    assert_eq!(captured_rows(dir.path()), 50, "every entered user's attributes were captured");
    let rep = ws.dispatch_backlog(1000, 4).await.unwrap();
    assert_eq!((rep.claimed, rep.delivered, rep.suppressed), (50, 49, 1), "{rep:?}");
    let sent = action.0.lock().unwrap().clone();
    assert!(sent.iter().all(|d| d.entity_key != "7"), "the suppressed user got nothing");
    for d in &sent {
        assert_eq!(d.content["text"], format!("Hi User {} ({})", d.entity_key, d.entity_key), "{d:?}");
    }
}
