//! `Idempotency-Key` answers kept in the catalog (they survive a restart and expire), and the in-memory cache of
//! verified API keys (a key revoked by another process stops working at once), over real HTTP on loopback.

mod common;

use std::sync::Arc;

use segkit::auth::Role;
use serde_json::json;

const SPEC: &str = r#"{"name": "cn", "entity": "user", "rule": {"attribute": "country", "op": "eq", "value": "CN"}}"#;

#[tokio::test]
async fn a_retry_after_a_restart_gets_the_kept_answer_and_does_no_work() {
    let mut s = common::start().await;
    let h = [("idempotency-key", "create-cn")];
    let created = s.call_with("POST", "/segments", Some(&s.editor), Some(SPEC), &h).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let e = [("idempotency-key", "eval-cn")];
    let first = s.call_with("POST", "/segments/cn/evaluate", Some(&s.editor), None, &e).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["run"], 1);

    s.restart().await;
    // The new server has none of the old one's memory: the answers come from the catalog.
    let again = s.call_with("POST", "/segments", Some(&s.editor), Some(SPEC), &h).await;
    assert_eq!((again.status, &again.body), (201, &created.body), "replayed, not a 409: {}", again.text());
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(again.header("content-type"), created.header("content-type"));
    let second = s.call_with("POST", "/segments/cn/evaluate", Some(&s.editor), None, &e).await;
    assert_eq!((second.status, &second.body), (200, &first.body));
    assert_eq!(s.ws.runs("cn").unwrap().len(), 1, "the retried evaluation did not run again");
    // The same key with another body is still refused after the restart.
    let other = SPEC.replace("CN", "US");
    let p = s.call_with("POST", "/segments", Some(&s.editor), Some(&other), &h).await.problem(422);
    assert!(p["detail"].as_str().unwrap().contains("different request body"), "{p}");
    // Without a key a second evaluation runs.
    let third = s.post("/segments/cn/evaluate", &s.editor, "").await;
    assert_eq!(third.json()["run"], 2);
}

#[tokio::test]
async fn kept_answers_expire_after_a_day_on_the_workspace_clock() {
    let s = common::start().await;
    let at = |t: &str| Arc::new(segkit::FixedClock::parse(t).unwrap());
    s.ws.set_clock(at("2026-06-01T00:00:00Z"));
    s.post("/segments", &s.editor, SPEC).await;
    let e = [("idempotency-key", "eval-daily")];
    let a = s.call_with("POST", "/segments/cn/evaluate", Some(&s.editor), None, &e).await;
    s.ws.set_clock(at("2026-06-01T23:00:00Z"));
    let b = s.call_with("POST", "/segments/cn/evaluate", Some(&s.editor), None, &e).await;
    assert_eq!((a.json()["run"].clone(), b.json()["run"].clone()), (json!(1), json!(1)), "within the day: replayed");
    s.ws.set_clock(at("2026-06-02T01:00:00Z"));
    let c = s.call_with("POST", "/segments/cn/evaluate", Some(&s.editor), None, &e).await;
    assert_eq!(c.status, 200, "{}", c.text());
    assert_eq!(c.json()["run"], 2, "after the day the key is forgotten and the request runs");
    assert!(c.header("idempotent-replayed").is_none());
    // The new answer is kept from now on.
    let d = s.call_with("POST", "/segments/cn/evaluate", Some(&s.editor), None, &e).await;
    assert_eq!((d.json()["run"].clone(), d.header("idempotent-replayed")), (json!(2), Some("true".into())));
}

#[tokio::test]
async fn a_key_revoked_by_another_process_stops_working_at_once() {
    let s = common::start().await;
    let key = s.ws.create_api_key("temp", Role::Viewer, "test").unwrap();
    for _ in 0..3 {
        // Verified once, then served from the cache.
        assert_eq!(s.get("/segments", &key.secret).await.status, 200);
    }
    let body = json!({"api_key": key.secret}).to_string();
    let token = s.call("POST", "/auth/token", None, Some(&body)).await;
    assert_eq!(token.status, 200, "{}", token.text());
    let token = token.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(s.get("/segments", &token).await.status, 200);
    // Another workspace object over the same directory: what `segkit keys revoke` in another process does.
    let other = segkit_server::open_workspace(&s.dir.path().join("ws")).await.unwrap();
    other.revoke_api_key(&key.key.id, "ops").unwrap();
    let p = s.get("/segments", &key.secret).await.problem(401);
    assert!(p["detail"].as_str().unwrap().contains("unknown or revoked"), "{p}");
    s.get("/segments", &token).await.problem(401);
    // A key created elsewhere works at once too, and other keys kept working.
    let new = other.create_api_key("late", Role::Viewer, "ops").unwrap();
    assert_eq!(s.get("/segments", &new.secret).await.status, 200);
    assert_eq!(s.get("/segments", &s.viewer).await.status, 200);
    // Unknown secrets are answered 401 every time (failures are not remembered, so nothing grows).
    for i in 0..3 {
        s.get("/segments", &format!("sk_{i:064}")).await.problem(401);
    }
}
