//! Every list endpoint sorts and filters (issue 10: "pagination / sorting / filtering on every list"), over real
//! HTTP on loopback: one table of lists, each read sorted ascending and descending by one of its fields and
//! filtered by one of its filters, against a workspace with at least two items in each.

mod common;

use std::cmp::Ordering;

use common::{start, Server};
use serde_json::{json, Value};

/// Every item of a list (following `next_cursor`), read with `query`.
async fn read_all(s: &Server, path: &str, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut url = format!("{path}{sep}limit=3&{query}");
    for _ in 0..100 {
        let r = s.get(&url, &s.admin).await;
        assert_eq!(r.status, 200, "GET {url}: {}", r.text());
        let v = r.json();
        items.extend(v["items"].as_array().unwrap_or_else(|| panic!("GET {url}: no items: {v}")).iter().cloned());
        match v["next_cursor"].as_str() {
            Some(c) => url = format!("{path}{sep}limit=3&{query}&cursor={c}"),
            None => return items,
        }
    }
    panic!("GET {path}: more than 100 pages");
}

/// JSON values in the order a sort puts them: numbers by value, text by its bytes, null first.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x.as_f64().unwrap().total_cmp(&y.as_f64().unwrap()),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => panic!("cannot compare {a} and {b}"),
    }
}

fn field<'a>(item: &'a Value, pointer: &str) -> &'a Value {
    item.pointer(pointer).unwrap_or_else(|| panic!("no {pointer} in {item}"))
}

/// One list: its path, a sort field and where it is in an item, a filter and where its value is.
struct Case {
    path: String,
    sort: &'static str,
    sort_at: &'static str,
    filter: &'static str,
    filter_at: &'static str,
    /// Whether any value may be filtered for (else the filter checks its value: 400 for an unknown one).
    free_filter: bool,
}

fn case(path: &str, sort: &'static str, sort_at: &'static str, filter: &'static str, filter_at: &'static str) -> Case {
    Case { path: path.to_string(), sort, sort_at, filter, filter_at, free_filter: true }
}

/// A workspace with two or more of everything listable: entities, sources, syncs (one quarantining rows),
/// segments with runs and changes, templates, workflows with runs, deliveries and dead letters, schedules, keys,
/// audit rows.
async fn populated() -> (Server, String) {
    let s = start().await;
    let ok = |r: common::Reply, what: &str| assert!(r.status / 100 == 2, "{what}: {} {}", r.status, r.text());
    s.adults().await;
    let cn = r#"{"name": "cn", "entity": "user", "rule": {"attribute": "country", "op": "eq", "value": "CN"}}"#;
    ok(s.post("/segments", &s.admin, cn).await, "cn");
    // A second sync of users_csv: two rows whose age is not a number (quarantined) and a new adult, so the
    // second run of adults has a change.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(s.dir.path().join("users.csv")).unwrap();
        writeln!(f, "11,DE,sixteen,u11@example.com").unwrap();
        writeln!(f, "12,DE,40,u12@example.com").unwrap();
        writeln!(f, "13,DE,?,u13@example.com").unwrap();
    }
    ok(s.post("/sources/users_csv/sync", &s.admin, "").await, "sync");
    ok(s.post("/segments/adults/evaluate", &s.admin, "").await, "evaluate");
    let clicks = s.dir.path().join("clicks.csv");
    std::fs::write(&clicks, "user_id,ts,page\n1,2026-01-01T00:00:00Z,home\n2,2026-01-02T00:00:00Z,cart\n").unwrap();
    let click = json!({"name": "click", "kind": "event", "timestamp": "ts",
        "attributes": {"user_id": "int64", "ts": "timestamp", "page": "string"}, "links": {"user_id": "user"}});
    ok(s.post("/entities", &s.admin, &click.to_string()).await, "click entity");
    let src = json!({"name": "clicks_csv", "entity": "click", "config": {"type": "csv", "path": clicks}});
    ok(s.post("/sources", &s.admin, &src.to_string()).await, "click source");
    ok(s.post("/sources/clicks_csv/sync", &s.admin, "").await, "click sync");
    for (name, channel) in [("hello", "webhook"), ("note", "email")] {
        let t = json!({"name": name, "channel": channel, "entity": "user",
            "parts": {"subject": "hi", "text": "age {{ entity.age }}"}});
        ok(s.post("/templates", &s.admin, &t.to_string()).await, name);
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    drop(l);
    let step =
        json!([{"name": "post", "type": "action", "action": {"type": "webhook", "url": url}, "template": "hello"}]);
    let w1 = json!({"name": "welcome", "trigger": {"type": "entered", "segment": "adults"}, "steps": step});
    let w2 = json!({"name": "poke", "trigger": {"type": "manual", "entity": "user"}, "steps": step,
        "policies": {"reentry": {"type": "always"}, "max_attempts": 1}});
    ok(s.post("/workflows", &s.admin, &w1.to_string()).await, "welcome");
    ok(s.post("/workflows", &s.admin, &w2.to_string()).await, "poke");
    ok(s.post("/workflows/poke/trigger", &s.admin, r#"{"keys": ["1", "2"]}"#).await, "trigger 1");
    ok(s.post("/workflows/poke/trigger", &s.admin, r#"{"keys": ["3"]}"#).await, "trigger 2");
    // The receiver is down and one attempt is allowed: three dead letters.
    assert_eq!(s.ws.dispatch_due(100, 2).await.unwrap().dead, 3);
    let n = r#"{"name": "nightly", "cron": "30 2 * * *", "job": {"type": "evaluate", "segment": "adults"}}"#;
    let h = r#"{"name": "hourly", "cron": "0 * * * *", "job": {"type": "sync", "source": "users_csv"}}"#;
    ok(s.post("/schedules", &s.admin, n).await, "nightly");
    ok(s.post("/schedules", &s.admin, h).await, "hourly");
    let quarantining = s.ws.syncs(100).unwrap().into_iter().find(|r| r.report.rows_quarantined > 0).unwrap();
    (s, quarantining.report.id)
}

#[tokio::test]
async fn every_list_sorts_both_ways_and_filters() {
    let (s, sync_id) = populated().await;
    let cases = [
        case("/entities", "name", "/name", "kind", "/kind"),
        case("/sources", "entity", "/entity", "entity", "/entity"),
        case("/syncs", "rows_read", "/rows_read", "entity", "/entity"),
        case("/sources/users_csv/syncs", "rows_written", "/rows_written", "mode", "/mode"),
        case("/sources/users_csv/quarantine", "row", "/row", "ingest_id", "/ingest_id"),
        case(&format!("/syncs/{sync_id}/quarantine"), "row", "/row", "ingest_id", "/ingest_id"),
        case("/segments", "name", "/name", "entity", "/entity"),
        Case { free_filter: false, ..case("/segments/adults/changes", "run", "/run", "change", "/change") },
        Case { free_filter: false, ..case("/segments/adults/runs", "started_at", "/started_at", "run", "/run") },
        Case {
            free_filter: false,
            ..case("/segments/adults/runs", "duration_ms", "/duration_ms", "member_count", "/member_count")
        },
        case("/templates", "channel", "/channel", "channel", "/channel"),
        case("/workflows", "name", "/name", "trigger", "/trigger/type"),
        case("/workflows/poke/runs", "entities", "/entities", "trigger", "/trigger"),
        case("/schedules", "name", "/spec/name", "job", "/spec/job/type"),
        case("/deliveries", "id", "/id", "workflow", "/workflow"),
        case("/dead-letters", "id", "/id", "entity_key", "/entity_key"),
        case("/keys", "name", "/name", "role", "/role"),
        case("/audit", "id", "/id", "action", "/action"),
    ];
    for c in &cases {
        let what = format!("{} (sort {}, filter {})", c.path, c.sort, c.filter);
        let up = read_all(&s, &c.path, &format!("sort={}", c.sort)).await;
        let down = read_all(&s, &c.path, &format!("sort=-{}", c.sort)).await;
        assert!(up.len() >= 2, "{what}: only {} items; the test needs two to sort", up.len());
        assert_eq!(up.len(), down.len(), "{what}");
        for pair in up.windows(2) {
            let (a, b) = (field(&pair[0], c.sort_at), field(&pair[1], c.sort_at));
            assert_ne!(compare(a, b), Ordering::Greater, "{what}: ascending, yet {a} before {b}");
        }
        for pair in down.windows(2) {
            let (a, b) = (field(&pair[0], c.sort_at), field(&pair[1], c.sort_at));
            assert_ne!(compare(a, b), Ordering::Less, "{what}: descending, yet {a} before {b}");
        }
        let first = field(&up[0], c.sort_at);
        let last = field(&up[up.len() - 1], c.sort_at);
        assert_eq!(compare(first, field(&down[down.len() - 1], c.sort_at)), Ordering::Equal, "{what}");
        assert_eq!(compare(last, field(&down[0], c.sort_at)), Ordering::Equal, "{what}");

        // Filter by the value of the first item: exactly the items holding it, and no others.
        let value = field(&up[0], c.filter_at);
        let text = match value {
            Value::String(t) => t.clone(),
            other => other.to_string(),
        };
        let expected = up.iter().filter(|i| field(i, c.filter_at) == value).count();
        let query = format!("{}={}", c.filter, urlencode(&text));
        let filtered = read_all(&s, &c.path, &query).await;
        assert_eq!(filtered.len(), expected, "{what}: {query}");
        assert!(filtered.iter().all(|i| field(i, c.filter_at) == value), "{what}: {query}: {filtered:?}");
        // And a value nothing holds: an empty list, not an error (or a 400 naming it, where values are checked).
        let query = format!("{}=no_such_value", c.filter);
        if c.free_filter {
            let none = read_all(&s, &c.path, &query).await;
            assert!(none.is_empty(), "{what}: {none:?}");
        } else {
            let p = s.get(&format!("{}?{query}", c.path), &s.admin).await.problem(400);
            assert!(p["detail"].as_str().unwrap().contains("no_such_value"), "{what}: {p}");
        }
    }
}

fn urlencode(t: &str) -> String {
    t.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
