//! Monitoring: the `segkit.*` system tables through SQL after real ingests, runs, dispatches and schedules, and
//! the metrics segkit records, read back with `metrics-util`'s debugging recorder.
//!
//! The recorder is global to this test binary: each test uses its own entity, segment and workflow names so the
//! metrics of one do not show in the other's labels, and the two run one after the other (the queue-depth gauge
//! has no per-workspace label).

mod common;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use metrics::{SharedString, Unit};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::CompositeKey;
use segkit::deps::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use segkit::deps::arrow::util::pretty::pretty_format_batches;
use segkit::monitoring::{
    DEAD_LETTERS, DELIVERIES, DELIVERY_SECONDS, EVALUATION_SECONDS, QUEUE_DEPTH, ROWS_INGESTED, SCHEDULED_JOBS,
    SEGMENT_MEMBERS,
};
use segkit::rules::{Dialect, Rule};
use segkit::spec::{from_value, ScheduleSpec};
use segkit::{Action, Attribute, DataType, Delivery, Entity, IngestOptions, Outcome, SegmentDefinition, Workspace};
use serde_json::json;

/// Confirms every delivery, or fails every one permanently.
#[derive(Debug)]
struct Fixed(bool);

#[async_trait]
impl Action for Fixed {
    fn kind(&self) -> &str {
        "fixed"
    }
    async fn execute(&self, _d: &Delivery) -> Outcome {
        if self.0 {
            Outcome::Delivered { receipt: None }
        } else {
            Outcome::Permanent { reason: "mailbox does not exist".into() }
        }
    }
}

/// Held by each test, so they do not run at once.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn sql(ws: &Workspace, q: &str) -> String {
    pretty_format_batches(&ws.sql(q).await.unwrap()).unwrap().to_string()
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().map(str::trim).collect()
}

#[tokio::test]
async fn system_tables_read_the_catalog_at_scan_time() {
    let _serial = SERIAL.lock().await;
    let (_dir, ws) = common::people_workspace().await;
    ws.register_action("email", Arc::new(Fixed(true))).unwrap();
    ws.register_action("sms", Arc::new(Fixed(false))).unwrap();
    let rule = Rule::parse(&json!({"attribute": "country", "op": "eq", "value": "CN"}), Dialect::Auto).unwrap();
    ws.define_segment(SegmentDefinition::new("cn", "people", rule)).await.unwrap();
    let spec = json!({"name": "welcome", "trigger": {"type": "entered", "segment": "cn"},
        "steps": [{"name": "mail", "type": "action", "action": "email"}, {"name": "text", "type": "action",
                   "action": "sms"}]});
    ws.define_workflow(from_value(spec).unwrap()).await.unwrap();
    ws.evaluate("cn").await.unwrap();

    let syncs = sql(&ws, "SELECT entity, rows_read, rows_written, rows_quarantined, snapshot FROM segkit.syncs").await;
    assert!(syncs.contains("| people | 8         | 8            | 0                | 1        |"), "{syncs}");
    let runs = sql(&ws, "SELECT segment, run, member_count, entered, exited FROM segkit.runs").await;
    assert!(runs.contains("| cn      | 1   | 3            | 3       | 0      |"), "{runs}");

    let by_status = "SELECT step, status, count(*) AS n, max(attempts) AS attempts FROM segkit.deliveries \
                     GROUP BY step, status ORDER BY step, status";
    assert_eq!(
        lines(&sql(&ws, by_status).await)[3..4],
        ["| mail | pending | 3 | 0        |"],
        "the ledger rows written with the run"
    );
    ws.dispatch_due(100, 4).await.unwrap(); // mail delivered, text rows written
    ws.dispatch_due(100, 4).await.unwrap(); // text dead-lettered
    let now = sql(&ws, by_status).await;
    assert_eq!(
        lines(&now)[3..5],
        ["| mail | delivered | 3 | 1        |", "| text | dead      | 3 | 1        |"],
        "the same query sees the new state: {now}"
    );
    let dead = sql(&ws, "SELECT DISTINCT last_error FROM segkit.deliveries WHERE status = 'dead'").await;
    assert!(dead.contains("permanent failure: mailbox does not exist"), "{dead}");
    // Equality filters on status and workflow are read through the catalog; the answers match unfiltered reads.
    for (filtered, expected) in [
        ("status = 'dead'", "| 3 |"),
        ("'delivered' = status AND workflow = 'welcome'", "| 3 |"),
        ("status = 'dead' OR status = 'delivered'", "| 6 |"),
        ("status = 'no such status'", "| 0 |"),
        ("workflow = 'welcome' AND step = 'text' AND status = 'dead'", "| 3 |"),
        ("upper(status) = 'DEAD'", "| 3 |"),
        ("status = 'dead' AND status = 'delivered'", "| 0 |"),
    ] {
        let n = sql(&ws, &format!("SELECT count(*) AS n FROM segkit.deliveries WHERE {filtered}")).await;
        assert!(n.contains(expected), "{filtered}: {n}");
    }
    let plan = sql(&ws, "EXPLAIN SELECT id FROM segkit.deliveries WHERE status = 'dead' AND attempts > 0").await;
    assert!(plan.contains("partial_filters=[segkit.deliveries.status = Utf8(\"dead\")"), "{plan}");
    let timing =
        sql(&ws, "SELECT count(*) AS n FROM segkit.deliveries WHERE updated_at >= created_at AND due_at <= updated_at")
            .await;
    assert!(timing.contains("| 6 |"), "{timing}");

    let s: ScheduleSpec = from_value(json!({"name": "nightly", "cron": "0 3 * * *", "timezone": "Asia/Shanghai",
        "job": {"type": "evaluate", "segment": "cn"}}))
    .unwrap();
    ws.schedule(s).await.unwrap();
    let scheds = sql(&ws, "SELECT name, job_type, timezone, next_due, runs, failing FROM segkit.schedules").await;
    // 03:00 in Shanghai is 19:00 UTC the day before; the clock is at 2026-06-30T00:00Z.
    assert!(
        scheds.contains("| nightly | evaluate | Asia/Shanghai | 2026-06-30T19:00:00Z | 0    | false   |"),
        "{scheds}"
    );
    // The system tables are listed with the others.
    let tables =
        sql(&ws, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'segkit' ORDER BY table_name")
            .await;
    assert_eq!(
        lines(&tables)[3..8],
        ["| audit      |", "| deliveries |", "| runs       |", "| schedules  |", "| syncs      |"]
    );
}

fn recorder() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("no other recorder in this test binary");
        snapshotter
    })
}

/// One snapshot of every metric (a snapshot drains histograms, so take one and read all values from it).
struct Metrics(Vec<(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)>);

impl Metrics {
    fn now(snapshotter: &Snapshotter) -> Metrics {
        Metrics(snapshotter.snapshot().into_vec())
    }

    /// The value of metric `name` with exactly `labels` (in any order).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        let mut want: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        want.sort();
        self.0.iter().find_map(|(key, _, _, value)| {
            let key = key.key();
            let mut got: Vec<(String, String)> =
                key.labels().map(|l| (l.key().to_string(), l.value().to_string())).collect();
            got.sort();
            (key.name() == name && got == want).then_some(value)
        })
    }
}

#[tokio::test]
async fn metrics_count_ingested_rows_segment_sizes_deliveries_and_dead_letters() {
    let _serial = SERIAL.lock().await;
    let snap = recorder();
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).await.unwrap();
    ws.define_entity(
        Entity::profile("metered", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("plan", DataType::String)),
    )
    .await
    .unwrap();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])) as ArrayRef),
        ("plan", Arc::new(StringArray::from(vec!["pro", "pro", "free", "pro", "x"])) as ArrayRef),
    ])
    .unwrap();
    ws.ingest_batches("metered", vec![batch], IngestOptions::default()).await.unwrap();
    let m = Metrics::now(snap);
    assert_eq!(m.get(ROWS_INGESTED, &[("entity", "metered")]), Some(&DebugValue::Counter(5)));

    ws.register_action("m_ok", Arc::new(Fixed(true))).unwrap();
    ws.register_action("m_bad", Arc::new(Fixed(false))).unwrap();
    let rule = Rule::parse(&json!({"attribute": "plan", "op": "eq", "value": "pro"}), Dialect::Auto).unwrap();
    ws.define_segment(SegmentDefinition::new("metered_pro", "metered", rule)).await.unwrap();
    let spec = json!({"name": "metered_flow", "trigger": {"type": "entered", "segment": "metered_pro"},
        "steps": [{"name": "hello", "type": "action", "action": "m_ok", "channel": "m_mail"},
                  {"name": "ping", "type": "action", "action": "m_bad"}]});
    ws.define_workflow(from_value(spec).unwrap()).await.unwrap();
    ws.evaluate("metered_pro").await.unwrap();
    let m = Metrics::now(snap);
    assert_eq!(m.get(SEGMENT_MEMBERS, &[("segment", "metered_pro")]), Some(&DebugValue::Gauge(3.0.into())));
    match m.get(EVALUATION_SECONDS, &[("segment", "metered_pro")]) {
        Some(DebugValue::Histogram(v)) => assert_eq!(v.len(), 1, "{v:?}"),
        other => panic!("no evaluation histogram: {other:?}"),
    }

    ws.dispatch_due(100, 2).await.unwrap();
    let m = Metrics::now(snap);
    assert_eq!(m.get(DELIVERIES, &[("status", "delivered"), ("channel", "m_mail")]), Some(&DebugValue::Counter(3)));
    assert_eq!(m.get(QUEUE_DEPTH, &[("status", "pending")]), Some(&DebugValue::Gauge(3.0.into())));
    ws.dispatch_due(100, 2).await.unwrap();
    let m = Metrics::now(snap);
    assert_eq!(m.get(DELIVERIES, &[("status", "dead"), ("channel", "m_bad")]), Some(&DebugValue::Counter(3)));
    assert_eq!(
        m.get(DEAD_LETTERS, &[("workflow", "metered_flow"), ("channel", "m_bad")]),
        Some(&DebugValue::Counter(3))
    );
    assert_eq!(m.get(QUEUE_DEPTH, &[("status", "dead")]), Some(&DebugValue::Gauge(3.0.into())));
    assert!(matches!(m.get(DELIVERY_SECONDS, &[("channel", "m_bad")]), Some(DebugValue::Histogram(h)) if h.len() == 3));

    // Scheduled jobs are counted by outcome.
    let s: ScheduleSpec = from_value(json!({"name": "metered_eval", "cron": "*/5 * * * *",
        "job": {"type": "evaluate", "segment": "metered_pro"}}))
    .unwrap();
    let due = ws.schedule(s).await.unwrap().next_due.unwrap();
    assert_eq!(ws.run_due(due).await.unwrap().jobs.len(), 1);
    let m = Metrics::now(snap);
    assert_eq!(
        m.get(SCHEDULED_JOBS, &[("schedule", "metered_eval"), ("outcome", "ok")]),
        Some(&DebugValue::Counter(1))
    );
}

/// The Parquet files under `dir/<kind>` on disk.
fn parquet_files(dir: &std::path::Path, kind: &str) -> usize {
    fn walk(p: &std::path::Path, n: &mut usize) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, n);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(&dir.join(kind), &mut n);
    n
}

fn synced(m: &Metrics, kind: &str) -> u64 {
    match m.get(segkit::monitoring::FILES_SYNCED, &[("kind", kind)]) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        other => panic!("not a counter: {other:?}"),
    }
}

/// With durable commits every Parquet file a commit references (ingested data, quarantined rows, appended events,
/// compacted files, segment members) is synced to disk before the commit; without them none is; durably written
/// data reads back after reopening.
#[tokio::test]
async fn durable_workspaces_sync_every_parquet_file_before_committing_it() {
    let _serial = SERIAL.lock().await;
    let snap = recorder();
    let before = Metrics::now(snap);
    let kinds = ["data", "quarantine", "segments"];
    let base: Vec<u64> = kinds.iter().map(|k| synced(&before, k)).collect();
    let count = |ws: &Workspace, sql: &str| {
        let (ws, sql) = (ws.clone(), sql.to_string());
        async move {
            let b = ws.sql(&sql).await.unwrap();
            b[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0)
        }
    };

    // Not durable: nothing synced.
    let plain = tempfile::tempdir().unwrap();
    let ws = Workspace::open(plain.path()).await.unwrap();
    ws.define_entity(Entity::profile("plain", "id").attribute(Attribute::new("id", DataType::Int64))).await.unwrap();
    let batch = RecordBatch::try_from_iter([("id", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef)]).unwrap();
    ws.ingest_batches("plain", vec![batch], IngestOptions::default()).await.unwrap();
    assert_eq!(parquet_files(plain.path(), "data"), 1);
    let m = Metrics::now(snap);
    assert_eq!(kinds.iter().map(|k| synced(&m, k)).collect::<Vec<_>>(), base, "a plain workspace syncs no file");
    drop(ws);

    let dir = tempfile::tempdir().unwrap();
    let options = segkit::WorkspaceOptions::default().durable_commits(true);
    let ws = Workspace::open_with(dir.path(), options.clone()).await.unwrap();
    ws.define_entity(
        Entity::profile("durable_user", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("plan", DataType::String)),
    )
    .await
    .unwrap();
    let clicks = ws
        .define_entity(
            Entity::event("durable_click", "ts")
                .attribute(Attribute::new("user_id", DataType::Int64))
                .attribute(Attribute::new("ts", DataType::Timestamp))
                .link(segkit::Link::new("user_id", "durable_user")),
        )
        .await
        .unwrap();
    // An ingest with one bad row: a data file and a quarantine file.
    let text = RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(vec!["1", "2", "3", "x"])) as ArrayRef),
        ("plan", Arc::new(StringArray::from(vec!["pro", "free", "pro", "pro"])) as ArrayRef),
    ])
    .unwrap();
    let report = ws.ingest_batches("durable_user", vec![text], IngestOptions::default()).await.unwrap();
    assert_eq!((report.rows_written, report.rows_quarantined), (3, 1), "{report:?}");
    // Small appends of events, merged by compaction after COMPACT_MIN_FILES of them.
    let appender = segkit::appender::Appender::new(ws.clone());
    let appends = segkit::limits::COMPACT_MIN_FILES as i64 + 1;
    for i in 0..appends {
        let rows = vec![json!({"user_id": i, "ts": "2026-06-30T12:00:00Z"})];
        appender
            .append("durable_click", segkit::appender::decode_rows(&clicks, &rows, "events").unwrap())
            .await
            .unwrap();
    }
    // A segment run's member file.
    let rule = Rule::parse(&json!({"attribute": "plan", "op": "eq", "value": "pro"}), Dialect::Auto).unwrap();
    ws.define_segment(SegmentDefinition::new("durable_pro", "durable_user", rule)).await.unwrap();
    ws.evaluate("durable_pro").await.unwrap();

    // Every file written (nothing vacuumed: the compacted ones are still there) was synced, once.
    let m = Metrics::now(snap);
    for (k, b) in kinds.iter().zip(&base) {
        let on_disk = parquet_files(dir.path(), k) as u64;
        assert!(on_disk > 0, "{k}: no files");
        assert_eq!(synced(&m, k) - b, on_disk, "{k}: synced vs on disk");
    }
    // One profile file, one file per append, and the one the first COMPACT_MIN_FILES were merged into.
    assert_eq!(parquet_files(dir.path(), "data") as i64, 1 + appends + 1);

    // Reopened, everything committed reads back.
    drop((appender, ws));
    let ws = Workspace::open_with(dir.path(), options).await.unwrap();
    assert_eq!(count(&ws, "SELECT count(*) FROM durable_user").await, 3);
    assert_eq!(count(&ws, "SELECT count(*) FROM durable_click").await, appends);
    assert_eq!(ws.count("durable_pro").await.unwrap(), 2);
}
