//! Uploads (`POST /entities/{name}/upload`) and events (`POST /events`) over real HTTP on 127.0.0.1.

mod common;

use common::{start, start_with, Reply, Server};
use segkit::deps::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use segkit::deps::parquet::arrow::ArrowWriter;
use segkit_server::api::ServerOptions;
use serde_json::{json, Value};
use std::sync::Arc;

/// Sends `body` with `content_type` to `path` as `key`.
async fn send(
    s: &Server,
    path: &str,
    key: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
    extra: &[(&str, &str)],
) -> Reply {
    let mut req = s.http.post(s.url(path)).header("authorization", format!("Bearer {key}")).body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    Reply { status, headers, body: r.bytes().await.unwrap().to_vec() }
}

async fn count_users(s: &Server, rule: Value) -> u64 {
    let r = s.post("/count", &s.viewer, &json!({"entity": "user", "rule": rule}).to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["count"].as_u64().unwrap()
}

fn users_batch(ids: &[i64]) -> RecordBatch {
    let n = ids.len();
    RecordBatch::try_from_iter([
        ("user_id", Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef),
        ("country", Arc::new(StringArray::from(vec!["SE"; n])) as ArrayRef),
        ("age", Arc::new(Int64Array::from(vec![60; n])) as ArrayRef),
        ("email", Arc::new(StringArray::from(vec!["x@example.com"; n])) as ArrayRef),
    ])
    .unwrap()
}

#[tokio::test]
async fn each_upload_format_goes_through_the_ingest_with_quarantine_and_audit() {
    let s = start().await;
    let ge11 = json!({"attribute": "user_id", "op": "ge", "value": 11});
    // CSV: one good row, one quarantined (age is not a number). The editor sees the count, not the raw row.
    let csv = "user_id,country,age,email\n11,DE,40,a@example.com\n12,FR,old,b@example.com\n";
    let r = send(&s, "/entities/user/upload", &s.editor, Some("text/csv"), csv.into(), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rep = r.json();
    assert_eq!((rep["rows_written"].as_u64(), rep["rows_quarantined"].as_u64()), (Some(1), Some(1)), "{rep}");
    assert_eq!(rep["quarantine_sample"], json!([]), "no raw rows for a role without pii");
    // The admin (pii) sees the quarantined row's number and reason.
    let r = send(&s, "/entities/user/upload", &s.admin, Some("text/csv; charset=utf-8"), csv.into(), &[]).await;
    let sample = r.json()["quarantine_sample"].clone();
    assert_eq!(sample.as_array().map(Vec::len), Some(1), "{sample}");
    assert!(sample[0]["row"].as_u64().is_some(), "{sample}");
    assert!(sample[0]["reason"].as_str().unwrap().contains("age"), "{sample}");
    // NDJSON, with a mapping from the file's field names (the libraries' ingest options).
    let nd = "{\"id\": 13, \"land\": \"JP\", \"age\": 50, \"email\": \"c@example.com\"}\n";
    let mapping = r#"{"user_id": "id", "country": "land"}"#;
    let path = format!("/entities/user/upload?mode=upsert&mapping={}", urlencode(mapping));
    let r = send(&s, &path, &s.editor, Some("application/x-ndjson"), nd.into(), &[]).await;
    assert_eq!((r.status, r.json()["rows_written"].as_u64()), (200, Some(1)), "{}", r.text());
    // Parquet.
    let mut parquet = vec![];
    let b = users_batch(&[14]);
    let mut w = ArrowWriter::try_new(&mut parquet, b.schema(), None).unwrap();
    w.write(&b).unwrap();
    w.close().unwrap();
    let r = send(&s, "/entities/user/upload", &s.editor, Some("application/vnd.apache.parquet"), parquet, &[]).await;
    assert_eq!((r.status, r.json()["rows_written"].as_u64()), (200, Some(1)), "{}", r.text());
    // Arrow IPC stream; semicolon-delimited CSV through the file options.
    let b = users_batch(&[15, 16]);
    let ipc = segkit::encode::to_ipc_stream(&b.schema(), &[b]).unwrap();
    let r = send(&s, "/entities/user/upload", &s.editor, Some("application/vnd.apache.arrow.stream"), ipc, &[]).await;
    assert_eq!((r.status, r.json()["rows_written"].as_u64()), (200, Some(2)), "{}", r.text());
    let path = format!("/entities/user/upload?options={}", urlencode(r#"{"delimiter": ";"}"#));
    let semi = "user_id;country;age;email\n17;IT;70;d@example.com\n";
    let r = send(&s, &path, &s.editor, Some("text/csv"), semi.into(), &[]).await;
    assert_eq!((r.status, r.json()["rows_written"].as_u64()), (200, Some(1)), "{}", r.text());
    assert_eq!(count_users(&s, ge11.clone()).await, 6, "11, 13, 14, 15, 16, 17 (12 was quarantined)");
    // Every upload is in the audit log.
    let audit = s.get("/audit?limit=100", &s.admin).await.json();
    let uploads = audit["items"].as_array().unwrap().iter().filter(|a| a["action"] == "entity.upload").count();
    assert_eq!(uploads, 6, "{audit}");
    // mode=replace: the entity holds exactly the file's rows afterwards.
    let r = send(
        &s,
        "/entities/user/upload?mode=replace",
        &s.editor,
        Some("text/csv"),
        "user_id,country,age,email\n1,CN,20,a@x\n2,US,30,b@x\n".into(),
        &[],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(count_users(&s, json!({"attribute": "user_id", "op": "ge", "value": 0})).await, 2);
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[tokio::test]
async fn bad_uploads_and_roles_get_4xx_with_clear_messages() {
    let s =
        start_with(ServerOptions { rate_limit_per_minute: None, upload_limit: 200, ..ServerOptions::default() }).await;
    let csv = "user_id,country,age,email\n11,DE,40,a@example.com\n";
    let up = "/entities/user/upload";
    let p = send(&s, up, &s.viewer, Some("text/csv"), csv.into(), &[]).await.problem(403);
    assert!(p["detail"].as_str().unwrap().contains("viewer"), "{p}");
    send(&s, "/entities/nope/upload", &s.editor, Some("text/csv"), csv.into(), &[]).await.problem(404);
    let p = send(&s, up, &s.editor, Some("text/plain"), csv.into(), &[]).await.problem(415);
    assert!(p["detail"].as_str().unwrap().contains("text/csv"), "{p}");
    send(&s, up, &s.editor, None, csv.into(), &[]).await.problem(415);
    let p = send(&s, up, &s.editor, Some("text/csv"), vec![], &[]).await.problem(400);
    assert!(p["detail"].as_str().unwrap().contains("empty"), "{p}");
    // Malformed files: 422 saying what is wrong, never 5xx.
    let p = send(&s, up, &s.editor, Some("application/vnd.apache.parquet"), b"PAR1 not really".to_vec(), &[])
        .await
        .problem(422);
    assert!(p["detail"].as_str().unwrap().contains("not ingested"), "{p}");
    let p = send(&s, up, &s.editor, Some("application/vnd.apache.arrow.stream"), b"garbage".to_vec(), &[])
        .await
        .problem(422);
    assert!(p["detail"].as_str().unwrap().contains("Arrow IPC"), "{p}");
    let p = send(&s, up, &s.editor, Some("application/x-ndjson"), b"{\"user_id\": 1,\n".to_vec(), &[]).await;
    assert!(p.status == 422 || (p.status == 200 && p.json()["rows_quarantined"] == 1), "{}", p.text());
    // Bad options name their parameter.
    let p = send(&s, &format!("{up}?mode=merge"), &s.editor, Some("text/csv"), csv.into(), &[]).await.problem(400);
    assert!(p["detail"].as_str().unwrap().contains("unknown ingest mode `merge`"), "{p}");
    let p = send(&s, &format!("{up}?mode=append"), &s.editor, Some("text/csv"), csv.into(), &[]).await.problem(422);
    assert!(p["detail"].as_str().unwrap().contains("upsert"), "profiles are not appended: {p}");
    let opts = urlencode(r#"{"path": "/etc/passwd"}"#);
    let p = send(&s, &format!("{up}?options={opts}"), &s.editor, Some("text/csv"), csv.into(), &[]).await.problem(400);
    assert_eq!(p["path"], "options.path", "{p}");
    let p = send(&s, &format!("{up}?mapping=%7B"), &s.editor, Some("text/csv"), csv.into(), &[]).await.problem(400);
    assert_eq!(p["path"], "mapping", "{p}");
    send(&s, &format!("{up}?color=red"), &s.editor, Some("text/csv"), csv.into(), &[]).await.problem(400);
    // Over the upload limit (200 bytes here): 413, with or without an Idempotency-Key.
    let big = format!("user_id,age\n{}", "1,2\n".repeat(100));
    let p = send(&s, up, &s.editor, Some("text/csv"), big.clone().into(), &[]).await.problem(413);
    assert!(p["detail"].as_str().unwrap().contains("upload-limit"), "{p}");
    send(&s, up, &s.editor, Some("text/csv"), big.into(), &[("idempotency-key", "k-big")]).await.problem(413);
    // An Idempotency-Key replays the first answer instead of ingesting twice.
    let before = s.ws.ingest_history("user").unwrap().len();
    let a = send(&s, up, &s.editor, Some("text/csv"), csv.into(), &[("idempotency-key", "k1")]).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let b = send(&s, up, &s.editor, Some("text/csv"), csv.into(), &[("idempotency-key", "k1")]).await;
    assert_eq!((b.status, b.header("idempotent-replayed").as_deref()), (200, Some("true")));
    assert_eq!(a.json()["id"], b.json()["id"]);
    assert_eq!(s.ws.ingest_history("user").unwrap().len(), before + 1);
}

/// Defines the event entity `click` (user_id, ts, page, amount) linked to `user`.
async fn clicks(s: &Server) {
    let spec = json!({"name": "click", "kind": "event", "timestamp": "ts",
        "attributes": {"user_id": "int64", "ts": "timestamp", "page": "string", "amount": "float64"},
        "links": {"user_id": "user"}});
    let r = s.post("/entities", &s.editor, &spec.to_string()).await;
    assert_eq!(r.status, 201, "{}", r.text());
}

fn events(from: i64, n: i64) -> Vec<Value> {
    (from..from + n)
        .map(|i| json!({"user_id": i % 10 + 1, "ts": "2026-06-30T12:00:00Z", "page": format!("/p/{i}"), "amount": i as f64 / 4.0}))
        .collect()
}

async fn click_count(s: &Server) -> i64 {
    let b = s.ws.sql("SELECT count(*) FROM click").await.unwrap();
    b[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_batches_commit_before_the_answer_concurrently_and_as_ndjson() {
    let s = start().await;
    clicks(&s).await;
    let r = s.post("/events", &s.editor, &json!({"entity": "click", "events": events(0, 1000)}).to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = r.json();
    assert_eq!((rec["rows"].as_u64(), rec["entity"].as_str()), (Some(1000), Some("click")), "{rec}");
    assert!(rec["snapshot"].as_i64().is_some(), "{rec}");
    // Committed when answered.
    assert_eq!(click_count(&s).await, 1000);
    // NDJSON with ?entity=.
    let nd: String = events(1000, 3).iter().map(|e| format!("{e}\n")).collect();
    let r = send(&s, "/events?entity=click", &s.editor, Some("application/x-ndjson"), nd.into(), &[]).await;
    assert_eq!((r.status, r.json()["rows"].as_u64()), (200, Some(3)), "{}", r.text());
    // 20 concurrent batches of 100: every one answered 200 after its commit; nothing lost or doubled.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (http, url, key) = (s.http.clone(), s.url("/events"), s.editor.clone());
            let body = json!({"entity": "click", "events": events(2000 + i * 100, 100)}).to_string();
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .header("authorization", format!("Bearer {key}"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).unwrap())
            })
        })
        .collect();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!((status, body["rows"].as_u64()), (200, Some(100)), "{body}");
        assert!(body["group_rows"].as_u64().unwrap() >= 100, "{body}");
    }
    assert_eq!(click_count(&s).await, 3003);
    let b = s.ws.sql("SELECT count(DISTINCT page) FROM click").await.unwrap();
    assert_eq!(b[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0), 3003);
    // A retried request with its Idempotency-Key is not appended twice.
    let body = json!({"entity": "click", "events": events(9000, 5)}).to_string();
    for _ in 0..2 {
        let r = send(
            &s,
            "/events",
            &s.editor,
            Some("application/json"),
            body.clone().into(),
            &[("idempotency-key", "ev-1")],
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(click_count(&s).await, 3008);
}

#[tokio::test]
async fn bad_events_get_400_with_the_path_and_nothing_is_stored() {
    let s = start().await;
    clicks(&s).await;
    let post = |body: Value| {
        let s = &s;
        async move { s.post("/events", &s.editor, &body.to_string()).await }
    };
    let mut evs = events(0, 5);
    evs[3]["amount"] = json!("lots");
    let p = post(json!({"entity": "click", "events": evs})).await.problem(400);
    assert_eq!(p["path"], "events[3].amount", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("expected a number"), "{p}");
    let mut evs = events(0, 2);
    evs[1]["pagee"] = json!("/x");
    let p = post(json!({"entity": "click", "events": evs})).await.problem(400);
    assert_eq!(p["path"], "events[1].pagee", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("did you mean `page`"), "{p}");
    let p = post(json!({"entity": "click", "events": [{"user_id": 1, "ts": "yesterday"}]})).await.problem(400);
    assert_eq!(p["path"], "events[0].ts", "{p}");
    let p = post(json!({"entity": "click", "events": [{"user_id": 1}]})).await.problem(400);
    assert_eq!(p["path"], "events[0].ts", "{p}");
    let p = post(json!({"entity": "click", "events": [7]})).await.problem(400);
    assert_eq!(p["path"], "events[0]", "{p}");
    let p = post(json!({"events": events(0, 1)})).await.problem(400);
    assert_eq!(p["path"], "entity", "{p}");
    let p = post(json!({"entity": "click", "events": {}})).await.problem(400);
    assert_eq!(p["path"], "events", "{p}");
    let p = post(json!({"entity": "click", "events": events(0, 1), "extra": 1})).await.problem(400);
    assert_eq!(p["path"], "extra", "{p}");
    post(json!({"entity": "click", "events": []})).await.problem(400);
    post(json!({"entity": "nope", "events": events(0, 1)})).await.problem(404);
    let p = post(json!({"entity": "user", "events": [{"user_id": 1}]})).await.problem(400);
    assert!(p["detail"].as_str().unwrap().contains("profile"), "{p}");
    s.call("POST", "/events", Some(&s.editor), Some("{not json")).await.problem(400);
    // Over the batch limit: 413.
    let p = post(json!({"entity": "click", "events": events(0, segkit::limits::MAX_EVENT_BATCH as i64 + 1)}))
        .await
        .problem(413);
    assert!(p["detail"].as_str().unwrap().contains("MAX_EVENT_BATCH"), "{p}");
    // NDJSON: a bad line names its index; the entity is required.
    let r = send(
        &s,
        "/events?entity=click",
        &s.editor,
        Some("application/x-ndjson"),
        b"{\"user_id\": 1, \"ts\": \"2026-06-30T12:00:00Z\"}\n{oops\n".to_vec(),
        &[],
    )
    .await;
    assert_eq!(r.problem(400)["path"], "events[1]");
    let r = send(&s, "/events", &s.editor, Some("application/x-ndjson"), b"{}\n".to_vec(), &[]).await;
    assert_eq!(r.problem(400)["path"], "entity");
    // Viewers may not send events.
    s.post("/events", &s.viewer, &json!({"entity": "click", "events": events(0, 1)}).to_string()).await.problem(403);
    assert_eq!(click_count(&s).await, 0, "no bad request stored anything");
}
