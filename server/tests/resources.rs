//! The REST API's resources beyond segments, over real HTTP on 127.0.0.1: entities and attributes, sources,
//! syncs and quarantine, templates, workflows, schedules, changes, deliveries, dead letters and replay, the
//! shared list parameters (pagination, sorting, filtering) on every list, and the role matrix of these endpoints.

mod common;

use common::{start, Server};
use serde_json::{json, Value};

/// Follows `next` links from `first` and returns every item, checking each page's size and `Link` header.
async fn all_pages(s: &Server, first: &str, key: &str, limit: usize) -> Vec<Value> {
    let (mut items, mut url, mut pages) = (vec![], first.to_string(), 0);
    loop {
        let r = s.get(&url, key).await;
        assert_eq!(r.status, 200, "{url}: {}", r.text());
        let v = r.json();
        let page = v["items"].as_array().unwrap().clone();
        assert!(page.len() <= limit, "{url}: {} items", page.len());
        items.extend(page);
        pages += 1;
        assert!(pages < 100, "no end of pages");
        match v["next"].as_str() {
            Some(next) => {
                assert!(r.header("link").unwrap().contains(next), "{:?}", r.header("link"));
                url = next.strip_prefix("/api/v1").unwrap().to_string();
            }
            None => {
                assert!(r.header("link").is_none());
                break;
            }
        }
    }
    items
}

fn names(items: &[Value], field: &str) -> Vec<String> {
    items.iter().map(|i| i[field].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn entities_crud_attributes_and_delete_with_dependents() {
    let s = start().await;
    for n in ["shop", "basket", "order_event"] {
        let spec = if n.ends_with("event") {
            json!({"name": n, "kind": "event", "timestamp": "at", "attributes": {"at": "timestamp", "shop_id": "int64"}, "links": {"shop_id": "shop"}})
        } else {
            json!({"name": n, "key": "id", "attributes": {"id": "int64"}})
        };
        let r = s.post("/entities", &s.editor, &spec.to_string()).await;
        assert_eq!(r.status, 201, "{}", r.text());
        assert!(r.header("etag").is_some());
    }
    // Pages of one, sorted by name: every entity once, in order.
    let all = all_pages(&s, "/entities?limit=1", &s.viewer, 1).await;
    assert_eq!(names(&all, "name"), ["basket", "order_event", "shop", "user"]);
    let v = s.get("/entities?sort=-name&kind=profile", &s.viewer).await.json();
    assert_eq!(names(v["items"].as_array().unwrap(), "name"), ["user", "shop", "basket"]);
    assert_eq!((v["total"].clone(), v["next"].clone()), (json!(3), Value::Null));
    let v = s.get("/entities?offset=3", &s.viewer).await.json();
    assert_eq!(names(v["items"].as_array().unwrap(), "name"), ["user"]);

    // Evolve with If-Match; a stale ETag loses.
    let r = s.get("/entities/shop", &s.viewer).await;
    let tag = r.header("etag").unwrap();
    let evolved = r#"{"name": "shop", "key": "id", "attributes": {"id": "int64", "city": "string"}}"#;
    let r = s.call_with("PUT", "/entities/shop", Some(&s.editor), Some(evolved), &[("if-match", &tag)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_ne!(r.header("etag").unwrap(), tag);
    let p =
        s.call_with("PUT", "/entities/shop", Some(&s.editor), Some(evolved), &[("if-match", &tag)]).await.problem(412);
    assert!(p["detail"].as_str().unwrap().contains("entity changed since you read it"), "{p}");
    let p = s.call("PUT", "/entities/shop", Some(&s.editor), Some(&evolved.replace("\"shop\"", "\"shops\""))).await;
    assert_eq!(p.problem(422)["path"], "entity.name");
    // An incompatible change: the type of an attribute.
    let p = s
        .call(
            "PUT",
            "/entities/user",
            Some(&s.editor),
            Some(&common::USER_ENTITY.replace("\"age\": \"int64\"", "\"age\": \"string\"")),
        )
        .await
        .problem(422);
    assert!(p["detail"].as_str().unwrap().contains("age"), "{p}");

    // Add an attribute: it shows up and is usable in a rule; a second time is a conflict.
    let r =
        s.post("/entities/user/attributes", &s.editor, r#"{"name": "score", "type": "float64", "pii": false}"#).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        (r.json()["attributes"][4]["name"].clone(), r.json()["attributes"][4]["type"].clone()),
        (json!("score"), json!("float64")),
        "{}",
        r.text()
    );
    s.post("/entities/user/attributes", &s.editor, r#"{"name": "score", "type": "float64"}"#).await.problem(409);
    let p = s.post("/entities/user/attributes", &s.editor, r#"{"name": "x", "type": "float65"}"#).await.problem(422);
    assert_eq!(p["path"], "attribute.type", "{p}");
    let p = s.post("/entities/user/attributes", &s.editor, r#"{"type": "string"}"#).await.problem(422);
    assert_eq!(p["path"], "attribute.name", "{p}");
    // On an entity with rows, a new attribute must be nullable.
    let p =
        s.post("/entities/user/attributes", &s.editor, r#"{"name": "y", "type": "string", "nullable": false}"#).await;
    assert!(p.problem(422)["detail"].as_str().unwrap().contains("y"), "{}", p.text());
    s.post("/entities/nope/attributes", &s.editor, r#"{"name": "x", "type": "string"}"#).await.problem(404);
    let r = s.post("/count", &s.viewer, r#"{"entity": "user", "rule": {"attribute": "score", "op": "is_null"}}"#).await;
    assert_eq!(r.json()["count"], 10, "{}", r.text());

    // Delete: refused while a segment and a source depend on it, unless forced; a plain entity goes at once.
    s.adults().await;
    let p = s.call("DELETE", "/entities/user", Some(&s.editor), None).await.problem(409);
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("`adults`") && detail.contains("`users_csv`") && detail.contains("force"), "{p}");
    assert_eq!(s.get("/segments/adults", &s.viewer).await.status, 200, "nothing deleted");
    s.call("DELETE", "/entities/user?force=maybe", Some(&s.editor), None).await.problem(400);
    let r = s.call("DELETE", "/entities/user?force=true", Some(&s.editor), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"entity": "user", "segments": ["adults"], "sources": ["users_csv"]}));
    for gone in ["/entities/user", "/segments/adults", "/sources/users_csv"] {
        s.get(gone, &s.viewer).await.problem(404);
    }
    s.call_with("DELETE", "/entities/basket", Some(&s.editor), None, &[("if-match", "\"stale\"")]).await.problem(412);
    assert_eq!(s.call("DELETE", "/entities/basket", Some(&s.editor), None).await.status, 200);
    s.call("DELETE", "/entities/basket", Some(&s.editor), None).await.problem(404);
    // The query session forgot the table: a new entity of that name starts empty.
    let r = s.post("/entities", &s.editor, common::USER_ENTITY).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s
        .post("/count", &s.viewer, r#"{"entity": "user", "rule": {"attribute": "age", "op": "ge", "value": 0}}"#)
        .await;
    assert_eq!(r.json()["count"], 0, "{}", r.text());
    let audit = s.ws.audit_log(1000).unwrap();
    for want in ["entity.update", "entity.add_attribute", "entity.delete"] {
        assert!(audit.iter().any(|a| a.action == want && a.actor == "ed"), "{want}");
    }
}

#[tokio::test]
async fn sources_crud_syncs_and_masked_quarantine() {
    let s = start().await;
    let csv = s.dir.path().join("more.csv");
    std::fs::write(&csv, "user_id,country,age,email\n21,DE,40,a@example.com\n22,DE,old,b@example.com\n").unwrap();
    let spec = json!({"name": "more", "entity": "user", "config": {"type": "csv", "path": csv}}).to_string();
    let h = [("idempotency-key", "create-more")];
    let r = s.call_with("POST", "/sources", Some(&s.editor), Some(&spec), &h).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let tag = r.header("etag").unwrap();
    // A retry with the key replays the answer; without it, the name is taken.
    let again = s.call_with("POST", "/sources", Some(&s.editor), Some(&spec), &h).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (201, Some("true".to_string())));
    s.post("/sources", &s.editor, &spec).await.problem(409);
    // Bad definitions: an inline secret (not echoed), an unknown field, an unknown entity.
    let p = s
        .post(
            "/sources",
            &s.editor,
            r#"{"name": "pg", "entity": "user", "config": {"type": "postgres", "password": "hunter2"}}"#,
        )
        .await
        .problem(422);
    assert!(p["path"].as_str().unwrap().contains("password") && !p.to_string().contains("hunter2"), "{p}");
    let p = s.post("/sources", &s.editor, r#"{"name": "x", "entity": "user", "config": {}, "colour": 1}"#).await;
    assert_eq!(p.problem(422)["path"], "source.colour");
    let p =
        s.post("/sources", &s.editor, &spec.replace("\"user\"", "\"usr\"").replace("more", "more2")).await.problem(422);
    assert!(p["detail"].as_str().unwrap().contains("user"), "{p}");

    let r = s.get("/sources/more", &s.viewer).await;
    assert_eq!((r.header("etag"), r.json()["config"]["type"].clone()), (Some(tag.clone()), json!("csv")));
    let v = s.get("/sources?entity=user&sort=-name", &s.viewer).await.json();
    assert_eq!(names(v["items"].as_array().unwrap(), "name"), ["users_csv", "more"]);
    assert_eq!(s.get("/sources?entity=shop", &s.viewer).await.json()["total"], 0);

    let r = s.post("/sources/more/sync", &s.editor, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    assert_eq!((report["rows_read"].clone(), report["rows_quarantined"].clone()), (json!(2), json!(1)));
    assert_eq!(report["quarantine_sample"], json!([]), "raw rows are not shown to an editor");
    let sync_id = report["id"].as_str().unwrap().to_string();

    // Syncs: every one, by source, newest first.
    let v = s.get("/syncs?source=more", &s.viewer).await.json();
    assert_eq!(v["total"], 1);
    assert_eq!((v["items"][0]["named_source"].clone(), v["items"][0]["id"].clone()), (json!("more"), json!(sync_id)));
    let v = s.get("/syncs?entity=user&sort=-created_at", &s.viewer).await.json();
    assert_eq!(v["total"], 2);
    assert_eq!(v["items"][0]["named_source"], "more");
    assert_eq!(s.get("/sources/more/syncs", &s.viewer).await.json()["total"], 1);
    assert_eq!(s.get("/sources/users_csv/syncs", &s.viewer).await.json()["total"], 1);

    // Quarantine: the raw record is masked for viewers and editors, shown to an admin (and audited).
    for key in [&s.viewer, &s.editor] {
        let r = s.get("/sources/more/quarantine", key).await;
        assert_eq!(r.header("x-pii-masked").as_deref(), Some("true"));
        let v = r.json();
        assert_eq!(v["total"], 1);
        assert_eq!((v["items"][0]["record"].clone(), v["items"][0]["row"].clone()), (json!("***"), json!(2)));
        assert!(v["items"][0]["reason"].as_str().unwrap().contains("age"), "{v}");
        assert!(!r.text().contains("b@example.com"));
    }
    let r = s.get(&format!("/syncs/{sync_id}/quarantine"), &s.admin).await;
    assert_eq!(r.header("x-pii-masked").as_deref(), Some("false"));
    assert!(r.json()["items"][0]["record"].as_str().unwrap().contains("b@example.com"), "{}", r.text());
    assert!(s.ws.audit_log(100).unwrap().iter().any(|a| a.action == "pii.read" && a.actor == "ada"));
    assert_eq!(s.get("/sources/users_csv/quarantine", &s.viewer).await.json()["total"], 0);
    s.get("/syncs/nope/quarantine", &s.viewer).await.problem(404);

    // Update with If-Match (mode append), then delete; stale tags lose.
    let upd = json!({"entity": "user", "config": {"type": "csv", "path": csv}, "mode": "full_refresh"}).to_string();
    let r = s.call_with("PUT", "/sources/more", Some(&s.editor), Some(&upd), &[("if-match", &tag)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["mode"], "full_refresh");
    let tag2 = r.header("etag").unwrap();
    s.call_with("PUT", "/sources/more", Some(&s.editor), Some(&upd), &[("if-match", &tag)]).await.problem(412);
    s.call("PUT", "/sources/nope", Some(&s.editor), Some(&upd)).await.problem(404);
    s.call_with("DELETE", "/sources/more", Some(&s.editor), None, &[("if-match", &tag)]).await.problem(412);
    let r = s.call_with("DELETE", "/sources/more", Some(&s.editor), None, &[("if-match", &tag2)]).await;
    assert_eq!(r.status, 204, "{}", r.text());
    s.get("/sources/more", &s.viewer).await.problem(404);
    let actions: Vec<String> = s.ws.audit_log(100).unwrap().into_iter().map(|a| a.action).collect();
    for want in ["source.create", "source.update", "source.delete", "source.sync"] {
        assert!(actions.contains(&want.to_string()), "{want} in {actions:?}");
    }
}

const TEMPLATE: &str = r#"{"name": "hello", "channel": "webhook", "entity": "user",
    "parts": {"subject": "Hi {{ entity.email }}", "text": "you are {{ entity.age }}"}}"#;

#[tokio::test]
async fn templates_crud_and_render_masks_pii() {
    let s = start().await;
    let r = s.post("/templates", &s.editor, TEMPLATE).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let tag = r.header("etag").unwrap();
    s.post("/templates", &s.editor, TEMPLATE).await.problem(409);
    let p = s
        .post("/templates", &s.editor, &TEMPLATE.replace("entity.age", "entity.agee").replace("hello", "hello2"))
        .await
        .problem(422);
    assert!(p["path"].as_str().unwrap().starts_with("template"), "{p}");
    assert!(p["detail"].as_str().unwrap().contains("agee"), "{p}");

    // Render for one key: pii masked for an editor, shown to an admin (audited).
    let r = s.post("/templates/hello/render", &s.editor, r#"{"key": "5"}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!((v["parts"]["subject"].clone(), v["parts"]["text"].clone()), (json!("Hi ***"), json!("you are 30")));
    assert_eq!(v["pii_masked"], true);
    let v = s.post("/templates/hello/render", &s.admin, r#"{"key": "5"}"#).await.json();
    assert_eq!((v["parts"]["subject"].clone(), v["pii_masked"].clone()), (json!("Hi u5@example.com"), json!(false)));
    assert!(s.ws.audit_log(100).unwrap().iter().any(|a| a.action == "pii.read" && a.target == "hello"));
    let p = s.post("/templates/hello/render", &s.viewer, r#"{"key": "999"}"#).await.problem(404);
    assert!(p["detail"].as_str().unwrap().contains("999"), "{p}");
    let p = s.post("/templates/hello/render", &s.viewer, r#"{"id": "5"}"#).await.problem(422);
    assert!(p["detail"].as_str().unwrap().contains("unknown field `id`"), "{p}");

    let v = s.get("/templates?channel=webhook", &s.viewer).await.json();
    assert_eq!(names(v["items"].as_array().unwrap(), "name"), ["hello"]);
    assert_eq!(s.get("/templates?channel=sms", &s.viewer).await.json()["total"], 0);
    let changed = TEMPLATE.replace("Hi ", "Hello ");
    let r = s.call_with("PUT", "/templates/hello", Some(&s.editor), Some(&changed), &[("if-match", &tag)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.call_with("PUT", "/templates/hello", Some(&s.editor), Some(&changed), &[("if-match", &tag)]).await.problem(412);
    assert_eq!(s.get("/templates/hello", &s.viewer).await.json()["parts"]["subject"], "Hello {{ entity.email }}");
    assert_eq!(s.call("DELETE", "/templates/hello", Some(&s.editor), None).await.status, 204);
    s.get("/templates/hello", &s.viewer).await.problem(404);
}

/// A workflow over `adults` that posts to `url` with the `hello` template, one attempt.
fn workflow(url: &str) -> String {
    json!({"name": "welcome", "trigger": {"type": "entered", "segment": "adults"},
        "policies": {"max_attempts": 1, "reentry": {"type": "always"}},
        "steps": [{"name": "post", "type": "action", "action": {"type": "webhook", "url": url}, "template": "hello"}]})
    .to_string()
}

/// A loopback address nothing listens on (bound, then released).
fn closed_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    drop(l);
    url
}

#[tokio::test]
async fn workflows_crud_dry_run_runs_dead_letters_and_replay() {
    let s = start().await;
    s.adults().await;
    assert_eq!(s.post("/templates", &s.editor, TEMPLATE).await.status, 201);
    let url = closed_url();
    let r = s.post("/workflows", &s.editor, &workflow(&url)).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let tag = r.header("etag").unwrap();
    s.post("/workflows", &s.editor, &workflow(&url)).await.problem(409);
    let p = s
        .post("/workflows", &s.editor, &workflow(&url).replace("\"adults\"", "\"adultz\"").replace("welcome", "w2"))
        .await
        .problem(422);
    assert!(p["detail"].as_str().unwrap().contains("adults"), "{p}");
    let p = s
        .post(
            "/workflows",
            &s.editor,
            &workflow(&url).replace("\"max_attempts\":1", "\"max_attempts\":0").replace("welcome", "w3"),
        )
        .await;
    assert_eq!(p.problem(422)["path"], "workflow w3.policies.max_attempts");

    // Dry run: who would get what, pii masked for an editor.
    let r = s.post("/workflows/welcome/dry-run", &s.editor, r#"{"limit": 2}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["rows"].as_array().unwrap().len(), 2);
    assert_eq!(
        (v["rows"][0]["status"].clone(), v["rows"][0]["content"]["subject"].clone()),
        (json!("send"), json!("Hi ***"))
    );
    let v = s.post("/workflows/welcome/dry-run", &s.admin, r#"{"keys": ["6"]}"#).await.json();
    assert_eq!(v["rows"][0]["content"]["subject"], "Hi u6@example.com");
    assert!(s.ws.deliveries(&Default::default(), 10).unwrap().is_empty(), "a dry run writes no ledger row");
    s.post("/workflows/welcome/dry-run", &s.editor, r#"{"limit": 0}"#).await.problem(422);
    s.post("/workflows/welcome/dry-run", &s.editor, r#"{"keys": "6"}"#).await.problem(422);

    // Trigger for three keys, dispatch once: the receiver is down, one attempt: dead letters.
    let r = s.post("/workflows/welcome/trigger", &s.editor, r#"{"keys": ["5", "6", "7"]}"#).await;
    assert_eq!(r.json()["queued"], 3, "{}", r.text());
    let rep = s.ws.dispatch_due(100, 2).await.unwrap();
    assert_eq!(rep.dead, 3, "{rep:?}");
    let runs = s.get("/workflows/welcome/runs", &s.viewer).await.json();
    assert_eq!(runs["total"], 1, "{runs}");
    assert_eq!(
        (runs["items"][0]["entities"].clone(), runs["items"][0]["statuses"]["dead"].clone()),
        (json!(3), json!(3))
    );
    let dead = all_pages(&s, "/dead-letters?limit=2", &s.viewer, 2).await;
    assert_eq!(names(&dead, "entity_key"), ["5", "6", "7"]);
    let newest = s.get("/dead-letters?sort=-id&limit=1", &s.viewer).await.json();
    assert_eq!(newest["items"][0]["entity_key"], "7");
    assert_eq!(s.get("/deliveries?entity_key=6", &s.viewer).await.json()["items"].as_array().unwrap().len(), 1);
    s.get("/dead-letters?offset=1", &s.viewer).await.problem(400);
    s.get("/dead-letters?cursor=abc", &s.viewer).await.problem(400);

    // Replay one by id, then the rest of the workflow's; each dead row once.
    let id = dead[0]["id"].as_i64().unwrap();
    let r = s.post("/deliveries/replay", &s.editor, &json!({"ids": [id]}).to_string()).await;
    assert_eq!(r.json()["replayed"], 1, "{}", r.text());
    assert_eq!(s.get("/dead-letters", &s.viewer).await.json()["items"].as_array().unwrap().len(), 2);
    assert_eq!(s.post("/deliveries/replay", &s.editor, r#"{"workflow": "welcome"}"#).await.json()["replayed"], 2);
    assert_eq!(s.get("/deliveries?status=pending", &s.viewer).await.json()["items"].as_array().unwrap().len(), 3);
    s.post("/deliveries/replay", &s.editor, "{}").await.problem(422);
    s.post("/deliveries/replay", &s.editor, "[null, \"welcome\"]").await.problem(422);
    s.post("/deliveries/replay", &s.editor, r#"{"workflow": "nope"}"#).await.problem(404);
    s.post("/deliveries/replay", &s.editor, r#"{"ids": ["x"]}"#).await.problem(422);

    // Update with If-Match, list with filters, delete.
    let changed = workflow(&url).replace("\"max_attempts\":1", "\"max_attempts\":2");
    let r = s.call_with("PUT", "/workflows/welcome", Some(&s.editor), Some(&changed), &[("if-match", &tag)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["policies"]["max_attempts"], 2);
    s.call_with("PUT", "/workflows/welcome", Some(&s.editor), Some(&changed), &[("if-match", &tag)]).await.problem(412);
    assert_eq!(s.get("/workflows?segment=adults&trigger=entered", &s.viewer).await.json()["total"], 1);
    assert_eq!(s.get("/workflows?trigger=manual", &s.viewer).await.json()["total"], 0);
    assert_eq!(s.call("DELETE", "/workflows/welcome", Some(&s.editor), None).await.status, 204);
    s.get("/workflows/welcome", &s.viewer).await.problem(404);
    s.get("/workflows/welcome/runs", &s.viewer).await.problem(404);
}

#[tokio::test]
async fn schedules_crud_with_etags_and_if_match() {
    let s = start().await;
    s.adults().await;
    s.ws.set_clock(std::sync::Arc::new(segkit::FixedClock::parse("2026-06-01T00:00:00Z").unwrap()));
    let spec = r#"{"name": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Berlin", "job": {"type": "evaluate", "segment": "adults"}}"#;
    let r = s.post("/schedules", &s.editor, spec).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["spec"]["timezone"], "Europe/Berlin");
    assert!(r.json()["next_due"].is_string());
    s.post("/schedules", &s.editor, spec).await.problem(409);
    let p = s
        .post("/schedules", &s.editor, &spec.replace("30 2 * * *", "61 2 * * *").replace("nightly", "n2"))
        .await
        .problem(422);
    assert_eq!(p["path"], "schedule n2.cron", "{p}");
    let p =
        s.post("/schedules", &s.editor, &spec.replace("evaluate", "sink").replace("nightly", "n3")).await.problem(422);
    assert_eq!(p["path"], "schedule.job.type", "{p}");
    let sync = r#"{"name": "hourly", "cron": "0 * * * *", "job": {"type": "sync", "source": "users_csv"}}"#;
    assert_eq!(s.post("/schedules", &s.editor, sync).await.status, 201);
    let v = s.get("/schedules?sort=-name", &s.viewer).await.json();
    let listed: Vec<&str> =
        v["items"].as_array().unwrap().iter().map(|i| i["spec"]["name"].as_str().unwrap()).collect();
    assert_eq!(listed, ["nightly", "hourly"]);
    assert_eq!(s.get("/schedules?job=sync", &s.viewer).await.json()["total"], 1);
    let r = s.get("/schedules/nightly", &s.viewer).await;
    assert_eq!(r.json()["spec"]["cron"], "30 2 * * *");
    let tag = r.header("etag").unwrap();

    // A scheduler run changes the state, not the ETag (it versions the definition).
    let at = "2026-06-02T01:00:00Z";
    s.ws.set_clock(std::sync::Arc::new(segkit::FixedClock::parse(at).unwrap()));
    let report = s.ws.run_due(at.parse().unwrap()).await.unwrap();
    assert_eq!((report.jobs.len(), report.failures().count()), (2, 0));
    let r = s.get("/schedules/nightly", &s.viewer).await;
    assert_eq!((r.json()["runs"].clone(), r.header("etag")), (json!(1), Some(tag.clone())), "{}", r.text());

    // Replace with If-Match (the name from the path); the run history stays; a stale tag loses.
    let upd = r#"{"cron": "0 4 * * *", "job": {"type": "evaluate", "segment": "adults"}}"#;
    let r = s.call_with("PUT", "/schedules/nightly", Some(&s.editor), Some(upd), &[("if-match", &tag)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!((v["spec"]["cron"].clone(), v["runs"].clone()), (json!("0 4 * * *"), json!(1)), "{v}");
    let tag2 = r.header("etag").unwrap();
    assert_ne!(tag2, tag);
    assert_eq!(s.get("/schedules/nightly", &s.viewer).await.header("etag"), Some(tag2.clone()));
    let p =
        s.call_with("PUT", "/schedules/nightly", Some(&s.editor), Some(upd), &[("if-match", &tag)]).await.problem(412);
    assert!(p["detail"].as_str().unwrap().contains("the schedule changed since you read it"), "{p}");
    let p =
        s.call_with("PUT", "/schedules/nightly", Some(&s.editor), Some(upd), &[("if-match", "")]).await.problem(400);
    assert!(p["detail"].as_str().unwrap().contains("If-Match header is empty"), "{p}");
    // The body's name must agree with the path's; bad fields answer 422 with their path; unknown names 404.
    let p = s
        .call("PUT", "/schedules/nightly", Some(&s.editor), Some(&upd.replace("{", r#"{"name": "other", "#)))
        .await
        .problem(422);
    assert_eq!(p["path"], "schedule.name", "{p}");
    let p =
        s.call("PUT", "/schedules/nightly", Some(&s.editor), Some(&upd.replace("adults", "nope"))).await.problem(422);
    assert_eq!(p["path"], "schedule nightly.job.segment", "{p}");
    s.call("PUT", "/schedules/nope", Some(&s.editor), Some(upd)).await.problem(404);
    // A viewer can read it but not change it.
    s.call_with("PUT", "/schedules/nightly", Some(&s.viewer), Some(upd), &[("if-match", &tag2)]).await.problem(403);
    s.call_with("DELETE", "/schedules/nightly", Some(&s.viewer), None, &[("if-match", &tag2)]).await.problem(403);
    // 409 on create points at PUT.
    let p = s.post("/schedules", &s.editor, spec).await.problem(409);
    assert!(p["detail"].as_str().unwrap().contains("PUT /api/v1/schedules/{name}"), "{p}");

    s.call_with("DELETE", "/schedules/nightly", Some(&s.editor), None, &[("if-match", &tag)]).await.problem(412);
    let r = s.call_with("DELETE", "/schedules/nightly", Some(&s.editor), None, &[("if-match", &tag2)]).await;
    assert_eq!(r.status, 204, "{}", r.text());
    s.call("DELETE", "/schedules/nightly", Some(&s.editor), None).await.problem(404);
    assert_eq!(s.get("/schedules", &s.viewer).await.json()["total"], 1);
    let actions: Vec<String> = s.ws.audit_log(100).unwrap().into_iter().map(|a| a.action).collect();
    for want in ["schedule.create", "schedule.update", "schedule.delete"] {
        assert!(actions.contains(&want.to_string()), "{want} in {actions:?}");
    }
}

#[tokio::test]
async fn segment_changes_between_runs() {
    let s = start().await;
    s.adults().await; // run 1: ids 5..=10 entered
    let r = s
        .call(
            "PUT",
            "/segments/adults",
            Some(&s.editor),
            Some(r#"{"entity": "user", "rule": {"attribute": "age", "op": "ge", "value": 36}}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.post("/segments/adults/evaluate", &s.editor, "").await.json()["exited"], 2); // ids 5, 6 left
    let all = all_pages(&s, "/segments/adults/changes?limit=3", &s.viewer, 3).await;
    assert_eq!(all.len(), 8);
    let v = s.get("/segments/adults/changes?run=2", &s.viewer).await.json();
    let got: Vec<(i64, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["user_id"].as_i64().unwrap(), i["change"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(got, [(5, "exited".to_string()), (6, "exited".to_string())]);
    let v = s.get("/segments/adults/changes?change=entered&sort=-run", &s.viewer).await.json();
    assert_eq!(v["total"], 6);
    assert_eq!(v["items"][0]["run"], 1);
    // Pages past the end, descending by run, filtered: the same rows as the whole list.
    let v = s.get("/segments/adults/changes?sort=-run&limit=3&offset=1", &s.viewer).await.json();
    let got: Vec<i64> = v["items"].as_array().unwrap().iter().map(|i| i["run"].as_i64().unwrap()).collect();
    assert_eq!((got, v["total"].clone(), v["next_cursor"].clone()), (vec![2, 1, 1], json!(8), json!("4")));
    let v = s.get("/segments/adults/changes?run=2&change=exited&offset=5", &s.viewer).await.json();
    assert_eq!(
        (v["items"].as_array().unwrap().len(), v["total"].clone(), v["next"].clone()),
        (0, json!(2), Value::Null)
    );
    let p = s.get("/segments/adults/changes?change=left", &s.viewer).await.problem(400);
    assert_eq!(p["path"], "query.change", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("`left` is not `entered` or `exited`"), "{p}");
    let p = s.get("/segments/adults/changes?run=99999999999999999999", &s.viewer).await.problem(400);
    assert_eq!(p["path"], "query.run", "{p}");
    let p = s.get("/segments/adults/changes?sort=key", &s.viewer).await.problem(400);
    assert_eq!(p["path"], "query.sort", "{p}");
    s.get("/segments/nope/changes", &s.viewer).await.problem(404);
    let runs = s.get("/segments/adults/runs?sort=-run&limit=1", &s.viewer).await.json();
    assert_eq!((runs["items"][0]["run"].clone(), runs["total"].clone()), (json!(2), json!(2)));
    assert_eq!(runs["next_cursor"], "1");
}

#[tokio::test]
async fn audit_pages_by_id_with_filters() {
    let s = start().await;
    for i in 0..5 {
        s.ws.audit("someone", "test.action", &format!("t{i}"), None).unwrap();
    }
    let all = all_pages(&s, "/audit?action=test.action&limit=2", &s.admin, 2).await;
    assert_eq!(names(&all, "target"), ["t0", "t1", "t2", "t3", "t4"]);
    let v = s.get("/audit?action=test.action&sort=-id&limit=2", &s.admin).await.json();
    assert_eq!(names(v["items"].as_array().unwrap(), "target"), ["t4", "t3"]);
    let next = v["next"].as_str().unwrap().strip_prefix("/api/v1").unwrap().to_string();
    let v = s.get(&next, &s.admin).await.json();
    assert_eq!(names(v["items"].as_array().unwrap(), "target"), ["t2", "t1"]);
    assert_eq!(s.get("/audit?actor=nobody", &s.admin).await.json()["items"], json!([]));
    let keys = s.get("/keys?role=viewer", &s.admin).await.json();
    assert_eq!(names(keys["items"].as_array().unwrap(), "name"), ["vi"]);
}

/// Every list refuses bad list parameters with a 400 naming the parameter; none answers 5xx.
#[tokio::test]
async fn bad_list_parameters_are_400_with_the_parameter() {
    let s = start().await;
    s.adults().await;
    let lists = [
        "/entities",
        "/segments",
        "/sources",
        "/syncs",
        "/templates",
        "/workflows",
        "/schedules",
        "/deliveries",
        "/dead-letters",
        "/keys",
        "/audit",
        "/segments/adults/runs",
        "/segments/adults/changes",
        "/sources/users_csv/syncs",
        "/sources/users_csv/quarantine",
    ];
    for list in lists {
        assert_eq!(s.get(list, &s.admin).await.status, 200, "{list}");
        for (q, param) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=ten", "limit"),
            ("sort=colour", "sort"),
            ("colour=red", "colour"),
            ("limit=1&limit=2", "limit"),
        ] {
            let r = s.get(&format!("{list}?{q}"), &s.admin).await;
            let p = r.problem(400);
            assert_eq!(p["path"], format!("query.{param}"), "{list}?{q}: {p}");
            assert!(p["detail"].as_str().unwrap().contains(param), "{list}?{q}: {p}");
        }
    }
    for list in ["/entities", "/segments", "/syncs"] {
        s.get(&format!("{list}?offset=-1"), &s.admin).await.problem(400);
        s.get(&format!("{list}?offset=100001"), &s.admin).await.problem(400);
        s.get(&format!("{list}?cursor=abc"), &s.admin).await.problem(400);
    }
    let p = s.get("/deliveries?status=lost", &s.admin).await.problem(400);
    assert_eq!(p["path"], "query.status");
    // Empty cursor / sort are no cursor / sort; without credentials a bad Idempotency-Key is still a 401.
    assert_eq!(s.get("/segments?cursor=&sort=", &s.admin).await.json()["total"], 1);
    let long = "k".repeat(300);
    s.call_with("POST", "/segments/adults/evaluate", None, None, &[("idempotency-key", &long)]).await.problem(401);
}

/// The role × endpoint matrix of these resources: a viewer changes nothing and reads no pii; an editor changes
/// definitions but reads no pii either.
#[tokio::test]
async fn role_by_endpoint_matrix_of_resources() {
    let s = start().await;
    s.adults().await;
    assert_eq!(s.post("/templates", &s.editor, TEMPLATE).await.status, 201);
    let url = closed_url();
    assert_eq!(s.post("/workflows", &s.editor, &workflow(&url)).await.status, 201);
    let shop = r#"{"name": "shop", "key": "id", "attributes": {"id": "int64"}}"#;
    assert_eq!(s.post("/entities", &s.editor, shop).await.status, 201);
    let csv = s.dir.path().join("users.csv");
    let source = json!({"name": "second", "entity": "user", "config": {"type": "csv", "path": csv}}).to_string();
    let schedule = r#"{"name": "n", "cron": "0 * * * *", "job": {"type": "evaluate", "segment": "adults"}}"#;
    let writes: Vec<(&str, String, Option<String>)> = vec![
        ("PUT", "/entities/user".into(), Some(common::USER_ENTITY.into())),
        ("POST", "/entities/user/attributes".into(), Some(r#"{"name": "z", "type": "string"}"#.into())),
        ("POST", "/sources".into(), Some(source.clone())),
        ("PUT", "/sources/second".into(), Some(source.clone())),
        ("POST", "/templates".into(), Some(TEMPLATE.replace("hello", "bye"))),
        ("PUT", "/templates/hello".into(), Some(TEMPLATE.into())),
        ("POST", "/workflows".into(), Some(workflow(&url).replace("welcome", "other"))),
        ("PUT", "/workflows/welcome".into(), Some(workflow(&url))),
        ("POST", "/schedules".into(), Some(schedule.into())),
        ("PUT", "/schedules/n".into(), Some(schedule.replace("0 *", "5 *"))),
        ("POST", "/deliveries/replay".into(), Some(r#"{"workflow": "welcome"}"#.into())),
        ("DELETE", "/schedules/n".into(), None),
        ("DELETE", "/workflows/other".into(), None),
        ("DELETE", "/templates/bye".into(), None),
        ("DELETE", "/sources/second".into(), None),
        ("DELETE", "/entities/shop".into(), None),
    ];
    let audit_before = s.ws.audit_log(1000).unwrap().len();
    for (m, p, b) in &writes {
        let r = s.call(m, p, Some(&s.viewer), b.as_deref()).await;
        assert_eq!(r.problem(403)["kind"], "forbidden", "viewer {m} {p}");
    }
    assert_eq!(s.ws.audit_log(1000).unwrap().len(), audit_before, "refused requests change nothing");
    // Reads open to viewers, pii masked for viewers and editors.
    for key in [&s.viewer, &s.editor] {
        let r = s.post("/templates/hello/render", key, r#"{"key": "5"}"#).await;
        assert_eq!(r.json()["parts"]["subject"], "Hi ***", "{}", r.text());
        let r = s.post("/workflows/welcome/dry-run", key, r#"{"keys": ["5"]}"#).await;
        assert_eq!(r.json()["rows"][0]["content"]["subject"], "Hi ***", "{}", r.text());
    }
    for p in
        ["/templates/hello", "/workflows/welcome", "/workflows/welcome/runs", "/syncs", "/dead-letters", "/schedules"]
    {
        assert_eq!(s.get(p, &s.viewer).await.status, 200, "{p}");
    }
    // Editors may do every write, in this order (each leaves what the next needs); each is audited.
    for (m, p, b) in &writes {
        let r = s.call(m, p, Some(&s.editor), b.as_deref()).await;
        assert!(r.status < 300, "editor {m} {p}: {} {}", r.status, r.text());
    }
    let audit = s.ws.audit_log(1000).unwrap();
    assert!(audit.len() >= audit_before + writes.len(), "every change is audited");
    assert!(!audit.iter().any(|a| a.action == "pii.read" && a.actor != "ada"), "only the admin read pii");
}
