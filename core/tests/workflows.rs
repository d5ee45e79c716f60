//! Templates, workflows and the durable delivery ledger, against a real catalog, real Parquet data and an
//! action that appends each delivery to a real JSON-lines file, with a fixed clock moved by hand.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use segkit::rules::{Dialect, Rule};
use segkit::spec::{from_value, TemplateSpec, WorkflowSpec};
use segkit::workflow::{DeliveryFilter, Status};
use segkit::{Action, Delivery, ErrorKind, FixedClock, Outcome, SegmentDefinition, Workspace};
use serde_json::json;

/// Appends every delivery to a JSON-lines file; fails the first `fail` attempts with a retryable outcome.
#[derive(Debug)]
struct FileAction {
    path: PathBuf,
    fail: AtomicU32,
    seen: Mutex<Vec<Delivery>>,
}

impl FileAction {
    fn new(dir: &std::path::Path, fail: u32) -> Arc<Self> {
        Arc::new(FileAction { path: dir.join("sent.jsonl"), fail: AtomicU32::new(fail), seen: Mutex::new(vec![]) })
    }
    fn sent(&self) -> Vec<Delivery> {
        match std::fs::read_to_string(&self.path) {
            Ok(t) => t.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
            Err(_) => vec![],
        }
    }
}

#[async_trait]
impl Action for FileAction {
    fn kind(&self) -> &str {
        "file"
    }
    async fn execute(&self, d: &Delivery) -> Outcome {
        self.seen.lock().unwrap().push(d.clone());
        if self.fail.load(Ordering::SeqCst) > 0 {
            self.fail.fetch_sub(1, Ordering::SeqCst);
            return Outcome::Retryable { reason: "receiver said 503".into(), retry_after: None };
        }
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path).unwrap();
        writeln!(f, "{}", serde_json::to_string(d).unwrap()).unwrap();
        Outcome::Delivered { receipt: Some(format!("ok {}", d.entity_key)) }
    }
}

fn at(ws: &Workspace, t: DateTime<Utc>) {
    ws.set_clock(Arc::new(FixedClock(t)));
}

fn t0() -> DateTime<Utc> {
    "2026-06-30T00:00:00Z".parse().unwrap()
}

async fn template(ws: &Workspace, spec: serde_json::Value) -> segkit::Result<TemplateSpec> {
    ws.define_template(from_value(spec)?).await
}

async fn workflow(ws: &Workspace, spec: serde_json::Value) -> segkit::Result<WorkflowSpec> {
    ws.define_workflow(from_value(spec)?).await
}

async fn cn_segment(ws: &Workspace) {
    let rule = Rule::parse(&json!({"attribute": "country", "op": "eq", "value": "CN"}), Dialect::Auto).unwrap();
    ws.define_segment(SegmentDefinition::new("cn", "people", rule)).await.unwrap();
}

fn statuses(ws: &Workspace, workflow: &str) -> BTreeMap<(String, String), Status> {
    let f = DeliveryFilter { workflow: Some(workflow.into()), ..Default::default() };
    ws.deliveries(&f, 1000).unwrap().into_iter().map(|r| ((r.step, r.entity_key), r.status)).collect()
}

#[tokio::test]
async fn templates_are_checked_at_definition_and_render_sandboxed() {
    let (_dir, ws) = common::people_workspace().await;
    let e = template(
        &ws,
        json!({"name": "t", "channel": "email", "entity": "people",
        "parts": {"text": "Hi {{ entity.nam }}"}}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Definition);
    assert!(
        e.to_string().contains("template t.parts.text") && e.to_string().contains("unknown attribute `nam`"),
        "{e}"
    );
    assert!(e.to_string().contains("did you mean `name`"), "{e}");
    let e =
        template(&ws, json!({"name": "t", "channel": "email", "parts": {"text": "Hi {{ user }}"}})).await.unwrap_err();
    assert!(e.to_string().contains("unknown variable `user`"), "{e}");
    let e = template(&ws, json!({"name": "t", "channel": "email", "parts": {"text": "{% if %}"}})).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Definition, "{e}");
    let long = "x".repeat(segkit::limits::MAX_TEMPLATE_BYTES + 1);
    let e = template(&ws, json!({"name": "t", "channel": "email", "parts": {"text": long}})).await.unwrap_err();
    assert!(e.to_string().contains("MAX_TEMPLATE_BYTES"), "{e}");
    let e = template(&ws, json!({"name": "1t", "channel": "email", "parts": {"text": "x"}})).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Definition, "{e}");

    template(
        &ws,
        json!({"name": "hello", "channel": "email", "entity": "people", "parts": {
        "subject": "Hi {{ entity.name }} ({{ key }})",
        "html": "<p>{{ entity.plan ~ ' <&> ' }}</p>"}}),
    )
    .await
    .unwrap();
    let r = ws.render("hello", "1").await.unwrap();
    assert_eq!(r["subject"], "Hi Ann (1)");
    assert_eq!(r["html"], "<p>pro &lt;&amp;&gt; </p>");
    // An entity key that does not exist is not found (404 over the REST API).
    let e = ws.render("hello", "999").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("key 999"), "{e}");
    let e = ws.render("helo", "1").await.unwrap_err();
    assert!(e.to_string().contains("did you mean `hello`"), "{e}");

    // A template that would run for ever runs out of fuel.
    template(
        &ws,
        json!({"name": "spin", "channel": "email", "entity": "people", "parts": {
        "text": "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}"}}),
    )
    .await
    .unwrap();
    let e = ws.render("spin", "1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("fuel"), "{e}");
}

#[tokio::test]
async fn entered_workflow_writes_the_ledger_with_the_run_and_waits_survive_a_reopen() {
    let (dir, ws) = common::people_workspace().await;
    let action = FileAction::new(dir.path(), 0);
    ws.register_action("email", action.clone()).unwrap();
    cn_segment(&ws).await;
    template(
        &ws,
        json!({"name": "hello", "channel": "email", "entity": "people",
        "parts": {"subject": "Hi {{ entity.name }}", "text": "{{ workflow }}/{{ step }}/{{ segment }}"}}),
    )
    .await
    .unwrap();
    let e = workflow(
        &ws,
        json!({"name": "welcome", "trigger": {"type": "entered", "segment": "cn"},
        "steps": [{"name": "mail", "type": "action", "action": "emial", "template": "hello"}]}),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("no action named `emial`") && e.to_string().contains("did you mean `email`"), "{e}");
    let e = workflow(
        &ws,
        json!({"name": "welcome", "trigger": {"type": "entered", "segment": "cn"},
        "steps": [{"name": "a", "type": "exit"}, {"name": "a", "type": "exit"}]}),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("used twice"), "{e}");
    workflow(
        &ws,
        json!({"name": "welcome", "trigger": {"type": "entered", "segment": "cn"}, "steps": [
        {"name": "mail", "type": "action", "action": "email", "template": "hello"},
        {"name": "pause", "type": "wait", "seconds": 3600},
        {"name": "again", "type": "action", "action": "email"}]}),
    )
    .await
    .unwrap();

    at(&ws, t0());
    let run = ws.evaluate("cn").await.unwrap();
    assert_eq!(run.entered.num_rows(), 3);
    let rows = ws.deliveries(&DeliveryFilter::default(), 100).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.trigger == "run:cn:1" && r.status == Status::Pending && r.step == "mail"));

    let rep = ws.dispatch_due(100, 4).await.unwrap();
    assert_eq!((rep.claimed, rep.delivered), (3, 3), "{rep:?}");
    let sent = action.sent();
    let mut subjects: Vec<_> = sent.iter().map(|d| d.content["subject"].clone()).collect();
    subjects.sort();
    assert_eq!(subjects, ["Hi Ann", "Hi Cai", "Hi Gus"]);
    assert_eq!(sent[0].content["text"], "welcome/mail/cn");
    assert_eq!(sent[0].channel, "email");
    assert_eq!(sent[0].attributes["country"], "CN");
    // The wait rows are due in an hour: nothing to do now, even in a reopened workspace.
    drop(ws);
    let ws = Workspace::open(dir.path()).await.unwrap();
    ws.register_action("email", action.clone()).unwrap();
    at(&ws, t0() + Duration::minutes(59));
    assert_eq!(ws.dispatch_due(100, 4).await.unwrap().claimed, 0);
    at(&ws, t0() + Duration::hours(1));
    assert_eq!(ws.dispatch_due(100, 4).await.unwrap().done, 3);
    assert_eq!(ws.dispatch_due(100, 4).await.unwrap().delivered, 3);
    assert_eq!(action.sent().len(), 6);
    assert!(statuses(&ws, "welcome").values().all(|s| matches!(s, Status::Delivered | Status::Done)));
    // Unique keys: 3 entities × 3 steps.
    let rows = ws.deliveries(&DeliveryFilter::default(), 100).unwrap();
    let keys: std::collections::BTreeSet<_> = rows.iter().map(|r| r.idempotency_key.clone()).collect();
    assert_eq!((rows.len(), keys.len()), (9, 9));

    // Re-entry "never": a second evaluation (nobody new) and a manual trigger of a member add nothing.
    ws.evaluate("cn").await.unwrap();
    assert_eq!(ws.trigger("welcome", Some(vec!["1".into()])).await.unwrap(), 0);
    assert_eq!(ws.deliveries(&DeliveryFilter::default(), 100).unwrap().len(), 9);
}

#[tokio::test]
async fn retries_back_off_then_dead_letter_and_replay_keeps_the_key() {
    let (dir, ws) = common::people_workspace().await;
    let action = FileAction::new(dir.path(), 3);
    ws.register_action("hook", action.clone()).unwrap();
    workflow(
        &ws,
        json!({"name": "ping", "trigger": {"type": "manual", "entity": "people"},
        "policies": {"max_attempts": 2, "backoff_ms": 10000, "reentry": {"type": "always"}},
        "steps": [{"name": "call", "type": "action", "action": "hook"}]}),
    )
    .await
    .unwrap();
    let e = workflow(
        &ws,
        json!({"name": "bad", "trigger": {"type": "manual", "entity": "people"},
        "policies": {"max_attempts": 0}, "steps": [{"name": "x", "type": "exit"}]}),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("workflow bad.policies.max_attempts"), "{e}");
    at(&ws, t0());
    assert_eq!(ws.trigger("ping", Some(vec!["2".into()])).await.unwrap(), 1);
    assert_eq!(ws.dispatch_due(10, 1).await.unwrap().retried, 1);
    let row = &ws.deliveries(&DeliveryFilter::default(), 10).unwrap()[0];
    assert_eq!((row.status, row.attempts), (Status::Pending, 1));
    assert_eq!(row.last_error.as_deref(), Some("receiver said 503"));
    // Backoff: 10 s × jitter in [0.5, 1).
    assert!(row.due_at >= t0().timestamp_millis() + 5000 && row.due_at < t0().timestamp_millis() + 10000, "{row:?}");
    assert_eq!(ws.dispatch_due(10, 1).await.unwrap().claimed, 0, "not due yet");
    at(&ws, t0() + Duration::seconds(10));
    assert_eq!(ws.dispatch_due(10, 1).await.unwrap().dead, 1);
    let row = ws.deliveries(&DeliveryFilter { status: Some(Status::Dead), ..Default::default() }, 10).unwrap();
    assert_eq!(row.len(), 1);
    assert!(row[0].last_error.as_deref().unwrap().contains("failed 2 attempts; last: receiver said 503"), "{row:?}");
    assert!(action.sent().is_empty());

    assert_eq!(ws.replay(&DeliveryFilter { ids: Some(vec![row[0].id]), ..Default::default() }).unwrap(), 1);
    assert_eq!(ws.replay(&DeliveryFilter { ids: Some(vec![row[0].id]), ..Default::default() }).unwrap(), 0);
    assert_eq!(ws.dispatch_due(10, 1).await.unwrap().retried, 1, "third failure of the action");
    at(&ws, t0() + Duration::seconds(30));
    assert_eq!(ws.dispatch_due(10, 1).await.unwrap().delivered, 1);
    let seen = action.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|d| d.idempotency_key == row[0].idempotency_key));
    assert_eq!(seen.iter().map(|d| d.attempt).collect::<Vec<_>>(), [1, 2, 1, 2]);
    let e = ws.replay(&DeliveryFilter { ids: Some((0..20_000).collect()), ..Default::default() }).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn suppression_reentry_cooldown_and_render_failures() {
    let (dir, ws) = common::people_workspace().await;
    let action = FileAction::new(dir.path(), 0);
    ws.register_action("sms", action.clone()).unwrap();
    // No entity on the template: the unknown attribute is found when the delivery renders (a permanent failure).
    template(&ws, json!({"name": "loose", "channel": "sms", "parts": {"text": "{{ entity.nickname }}"}}))
        .await
        .unwrap();
    workflow(
        &ws,
        json!({"name": "bad_tpl", "trigger": {"type": "manual", "entity": "people"},
        "steps": [{"name": "s", "type": "action", "action": "sms", "template": "loose"}]}),
    )
    .await
    .unwrap();
    workflow(
        &ws,
        json!({"name": "promo", "trigger": {"type": "manual", "entity": "people"},
        "policies": {"reentry": {"type": "cooldown", "seconds": 100}},
        "steps": [{"name": "s", "type": "action", "action": "sms"}]}),
    )
    .await
    .unwrap();
    at(&ws, t0());
    assert_eq!(ws.suppress("sms", &["1".into(), "1".into(), "2".into()]).unwrap(), 2);
    assert_eq!(ws.unsuppress("sms", &["2".into()]).unwrap(), 1);
    assert_eq!(ws.trigger("promo", Some(vec!["1".into(), "2".into()])).await.unwrap(), 2);
    assert_eq!(ws.trigger("promo", Some(vec!["1".into(), "2".into()])).await.unwrap(), 0, "cool-down");
    let rep = ws.dispatch_due(10, 2).await.unwrap();
    assert_eq!((rep.delivered, rep.suppressed), (1, 1), "{rep:?}");
    assert_eq!(action.sent().iter().map(|d| d.entity_key.clone()).collect::<Vec<_>>(), ["2"]);
    at(&ws, t0() + Duration::seconds(101));
    assert_eq!(ws.trigger("promo", Some(vec!["2".into()])).await.unwrap(), 1, "after the cool-down");

    assert_eq!(ws.trigger("bad_tpl", Some(vec!["3".into()])).await.unwrap(), 1);
    assert_eq!(ws.trigger("bad_tpl", Some(vec!["4".into()])).await.unwrap(), 1);
    let rep = ws.dispatch_due(10, 2).await.unwrap();
    assert_eq!((rep.delivered, rep.dead), (1, 2), "{rep:?}");
    let dead = ws.deliveries(&DeliveryFilter { workflow: Some("bad_tpl".into()), ..Default::default() }, 10).unwrap();
    assert!(
        dead.iter().all(|r| r.status == Status::Dead && r.last_error.as_deref().unwrap().contains("undefined")),
        "{dead:?}"
    );
    // Unknown keys and workflows.
    let e = ws.trigger("promoo", None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("did you mean `promo`"), "{e}");
}
