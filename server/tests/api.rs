//! The REST API over real HTTP on 127.0.0.1: every endpoint, the role × endpoint matrix, bad input, auth,
//! ETags, idempotency, the rate limit and concurrent writers.

mod common;

use common::start;
use segkit_server::api::ServerOptions;
use serde_json::{json, Value};

#[tokio::test]
async fn health_openapi_and_docs_are_served_offline() {
    let s = start().await;
    let r = s.call("GET", "/health", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(r.json()["entities"], 1);
    let r = s.call("GET", "/openapi.json", None, None).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for p in ["/api/v1/segments/{name}/members", "/api/v1/count", "/api/v1/auth/token", "/api/v1/sources/{name}/sync"] {
        assert!(paths.contains_key(p), "{p} missing from {:?}", paths.keys().collect::<Vec<_>>());
    }
    // Every response has a description (OpenAPI 3.1 requires it).
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            for (status, resp) in op["responses"].as_object().unwrap() {
                assert!(resp["description"].is_string(), "{method} {path} {status}");
            }
        }
    }
    let r = s.http.get(format!("{}/api/docs/", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("swagger"), "the Swagger UI page");
    let r = s.call("GET", "/nope", Some(&s.viewer), None).await;
    assert_eq!(r.problem(404)["kind"], "not_found");
}

#[tokio::test]
async fn missing_invalid_or_revoked_credentials_get_401() {
    let s = start().await;
    let r = s.call("GET", "/segments", None, None).await;
    assert!(r.problem(401)["detail"].as_str().unwrap().contains("Authorization"));
    for bad in ["sk_0000", "not-a-token", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"] {
        s.call("GET", "/segments", Some(bad), None).await.problem(401);
    }
    let r = s.call_with("GET", "/segments", None, None, &[("authorization", "Basic abc")]).await;
    r.problem(401);

    // A token works, a tampered one does not, and revoking the key ends both.
    let r = s.call("POST", "/auth/token", None, Some(&json!({"api_key": s.viewer}).to_string())).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t = r.json();
    assert_eq!((t["role"].as_str(), t["token_type"].as_str()), (Some("viewer"), Some("Bearer")));
    let token = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(s.get("/segments", &token).await.status, 200);
    // `GET /whoami` names the key behind a key or a token, and needs one like every other route.
    let id = s.ws.api_keys().unwrap().into_iter().find(|k| k.name == "vi").unwrap().id;
    for credential in [s.viewer.as_str(), token.as_str()] {
        let me = s.get("/whoami", credential).await;
        assert_eq!(me.status, 200, "{}", me.text());
        assert_eq!(me.json(), json!({"key_id": id, "name": "vi", "role": "viewer"}));
    }
    s.call("GET", "/whoami", None, None).await.problem(401);
    s.get("/whoami", "sk_0000").await.problem(401);
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    s.get("/segments", &tampered).await.problem(401);

    let r = s.call("DELETE", &format!("/keys/{id}"), Some(&s.admin), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["revoked_at"].is_string());
    s.get("/segments", &token).await.problem(401);
    s.get("/segments", &s.viewer).await.problem(401);
    s.call("POST", "/auth/token", None, Some(&json!({"api_key": s.viewer}).to_string())).await.problem(401);
    s.call("POST", "/auth/token", None, Some(r#"{"key": 1}"#)).await.problem(400);
}

#[tokio::test]
async fn segments_crud_with_etags_and_if_match() {
    let s = start().await;
    let spec = r#"{"name": "cn", "entity": "user", "rule": {"attribute": "country", "op": "eq", "value": "CN"}}"#;
    let r = s.post("/segments", &s.editor, spec).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let tag1 = r.header("etag").unwrap();
    assert_eq!(r.json()["name"], "cn");
    assert_eq!(s.post("/segments", &s.editor, spec).await.problem(409)["kind"], "conflict");

    let r = s.get("/segments/cn", &s.viewer).await;
    assert_eq!((r.status, r.header("etag")), (200, Some(tag1.clone())));
    let listed = s.get("/segments", &s.viewer).await.json();
    assert_eq!((listed["items"].as_array().unwrap().len(), listed["total"].clone()), (1, json!(1)));

    let us = r#"{"entity": "user", "rule": {"attribute": "country", "op": "eq", "value": "US"}}"#;
    let r = s.call_with("PUT", "/segments/cn", Some(&s.editor), Some(us), &[("if-match", &tag1)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let tag2 = r.header("etag").unwrap();
    assert_ne!(tag1, tag2);
    assert_eq!(r.json()["rule"]["value"], "US");
    // A writer holding the old ETag loses instead of overwriting.
    let r = s.call_with("PUT", "/segments/cn", Some(&s.editor), Some(spec), &[("if-match", &tag1)]).await;
    assert!(r.problem(412)["detail"].as_str().unwrap().contains("changed since you read it"));
    // An empty If-Match is malformed (400), not a failed precondition (found by Schemathesis).
    let r = s.call_with("PUT", "/segments/cn", Some(&s.editor), Some(us), &[("if-match", "")]).await;
    assert!(r.problem(400)["detail"].as_str().unwrap().contains("If-Match header is empty"));
    // The body's name must agree with the path.
    let r = s.call("PUT", "/segments/cn", Some(&s.editor), Some(&spec.replace("\"cn\"", "\"other\""))).await;
    assert_eq!(r.problem(422)["path"], "segment.name");
    s.call("PUT", "/segments/missing", Some(&s.editor), Some(us)).await.problem(404);

    s.call_with("DELETE", "/segments/cn", Some(&s.editor), None, &[("if-match", &tag1)]).await.problem(412);
    let r = s.call_with("DELETE", "/segments/cn", Some(&s.editor), None, &[("if-match", &tag2)]).await;
    assert_eq!(r.status, 204, "{}", r.text());
    let p = s.get("/segments/cn", &s.viewer).await.problem(404);
    assert!(p["detail"].as_str().unwrap().contains("segment `cn` not found"), "{p}");
}

#[tokio::test]
async fn bad_input_is_4xx_with_the_message_and_path() {
    let s = start().await;
    // A rule naming an unknown attribute: 422 with the rule path and a suggestion.
    let r = s
        .post(
            "/segments",
            &s.editor,
            r#"{"name": "x", "entity": "user", "rule": {"attribute": "agee", "op": "ge", "value": 1}}"#,
        )
        .await;
    let p = r.problem(422);
    assert_eq!(p["kind"], "rule");
    assert!(p["detail"].as_str().unwrap().contains("age"), "{p}");
    assert!(p["path"].as_str().unwrap().starts_with("rule"), "{p}");
    // A spec field of the wrong type: the path of the field.
    let p = s
        .post("/segments", &s.editor, r#"{"name": "x", "entity": "user", "rule": {}, "keep_runs": "many"}"#)
        .await
        .problem(422);
    assert_eq!(p["path"], "segment.keep_runs", "{p}");
    let p = s
        .post("/segments", &s.editor, r#"{"name": "x", "entity": "user", "rule": {}, "colour": 1}"#)
        .await
        .problem(422);
    assert!(p["detail"].as_str().unwrap().contains("colour"), "{p}");
    // An entity spec with an unknown type.
    let p = s
        .post("/entities", &s.editor, r#"{"name": "e", "key": "id", "attributes": {"id": "int65"}}"#)
        .await
        .problem(422);
    assert_eq!(p["path"], "entity.attributes.id", "{p}");
    // Not JSON at all, not UTF-8, wrong segment entity.
    assert!(s.post("/segments", &s.editor, "{not json").await.problem(400)["detail"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
    let p = s
        .post("/count", &s.viewer, r#"{"entity": "usr", "rule": {"attribute": "age", "op": "ge", "value": 1}}"#)
        .await
        .problem(422);
    assert!(p["detail"].as_str().unwrap().contains("did you mean `user`"), "{p}");
    // Query parameters.
    s.adults().await;
    s.get("/segments/adults/members?limit=0", &s.viewer).await.problem(400);
    s.get("/segments/adults/members?limit=many", &s.viewer).await.problem(400);
    s.get("/segments/adults/members?cursor=abc", &s.viewer).await.problem(400);
    s.get("/segments/adults/members?format=xml", &s.viewer).await.problem(400);
    s.get("/segments/adults/members?colour=red", &s.viewer).await.problem(400);
    s.get("/segments/adults/members?run=99", &s.viewer).await.problem(404);
    s.get("/segments/adults/preview?n=100000", &s.viewer).await.problem(400);
    s.get("/segments/adults/explain", &s.viewer).await.problem(400);
    s.get("/deliveries?status=lost", &s.viewer).await.problem(400);
    // Too large a body: 413, not a hang or a 500.
    let big = format!(
        r#"{{"name": "x", "entity": "user", "rule": "{}"}}"#,
        "a".repeat(segkit::limits::MAX_REQUEST_BODY_BYTES)
    );
    assert_eq!(s.post("/segments", &s.editor, &big).await.problem(413)["kind"], "payload_too_large");
}

#[tokio::test]
async fn counts_members_pages_formats_preview_explain_and_runs() {
    let s = start().await;
    s.adults().await;
    assert_eq!(s.get("/segments/adults/count", &s.viewer).await.json()["count"], 6);
    // The live count of an unsaved rule.
    let r = s
        .post("/count", &s.viewer, r#"{"entity": "user", "rule": {"attribute": "country", "op": "eq", "value": "CN"}}"#)
        .await;
    assert_eq!(r.json()["count"], 5, "{}", r.text());
    let r = s
        .post("/count", &s.viewer, r#"{"entity": "user", "rule": {"combinator": "and", "rules": [{"field": "age", "operator": ">=", "value": 30}, {"field": "country", "operator": "=", "value": "CN"}]}}"#)
        .await;
    assert_eq!(r.json()["count"], 3, "{}", r.text()); // ids 5, 7, 9 (react-querybuilder dialect)

    // Members a page at a time: every member exactly once, in key order.
    let (mut keys, mut cursor, mut pages) = (vec![], None::<String>, 0);
    loop {
        let q = match &cursor {
            Some(c) => format!("/segments/adults/members?limit=4&cursor={c}"),
            None => "/segments/adults/members?limit=4".into(),
        };
        let r = s.get(&q, &s.viewer).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["run"], 1);
        keys.extend(v["items"].as_array().unwrap().iter().map(|i| i["user_id"].as_i64().unwrap()));
        pages += 1;
        assert_eq!(r.header("x-next-cursor"), v["next_cursor"].as_str().map(str::to_string));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!((keys, pages), (vec![5, 6, 7, 8, 9, 10], 2));
    let r = s.call_with("GET", "/segments/adults/members", Some(&s.viewer), None, &[("accept", "text/csv")]).await;
    assert_eq!(r.header("content-type").as_deref(), Some("text/csv; charset=utf-8"));
    assert_eq!(r.text(), "user_id\n5\n6\n7\n8\n9\n10\n");
    let r = s
        .call_with(
            "GET",
            "/segments/adults/members?limit=2",
            Some(&s.viewer),
            None,
            &[("accept", "application/vnd.apache.arrow.stream")],
        )
        .await;
    let (_, batches) = segkit::encode::from_ipc(&r.body).unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    assert_eq!(r.header("x-next-cursor").as_deref(), Some("1.2"));

    // Preview: pii masked for everyone but an admin, whose unmasked read is audited.
    for key in [&s.viewer, &s.editor] {
        let v = s.get("/segments/adults/preview?n=2", key).await.json();
        assert_eq!(v["pii_masked"], true);
        assert_eq!(v["rows"][0]["email"], "***");
        assert_eq!(v["rows"][0]["user_id"], 5);
    }
    let v = s.get("/segments/adults/preview?n=2", &s.admin).await.json();
    assert_eq!((v["pii_masked"].clone(), v["rows"][0]["email"].clone()), (json!(false), json!("u5@example.com")));
    let audit = s.ws.audit_log(100).unwrap();
    assert!(audit.iter().any(|a| a.action == "pii.read" && a.actor == "ada" && a.target == "adults"), "{audit:?}");
    assert!(!audit.iter().any(|a| a.action == "pii.read" && a.actor != "ada"));

    let v = s.get("/segments/adults/explain?key=5", &s.viewer).await.json();
    assert_eq!(v["member"], true);
    assert!(v["text"].as_str().unwrap().contains("is a member"), "{v}");
    assert_eq!(s.get("/segments/adults/explain?key=1", &s.viewer).await.json()["member"], false);
    let runs = s.get("/segments/adults/runs", &s.viewer).await.json();
    let runs = &runs["items"];
    assert_eq!((runs[0]["run"].clone(), runs[0]["member_count"].clone()), (json!(1), json!(6)));
    let r = s.post("/segments/adults/evaluate", &s.editor, "").await.json();
    assert_eq!((r["run"].clone(), r["count"].clone(), r["entered"].clone()), (json!(2), json!(6), json!(0)));
}

/// Members pages carry a strong `ETag` of (run file, offset, limit, format, masking): `If-None-Match` answers 304,
/// a named run's page is `immutable`, the latest run's must be revalidated; a pii key is masked for roles
/// without the permission (an admin's unmasked read is audited), and masked and unmasked pages never mix; a page
/// served before is a 404 once its segment is deleted.
#[tokio::test]
async fn members_pages_etags_immutability_pii_masking_and_deletion() {
    let s = start().await;
    s.adults().await;
    let get = |path: &'static str, key: &str, inm: Option<&str>| {
        let key = key.to_string();
        let inm = inm.map(str::to_string);
        let s = &s;
        async move {
            let mut h = vec![];
            if let Some(t) = &inm {
                h.push(("if-none-match", t.as_str()));
            }
            s.call_with("GET", path, Some(&key), None, &h).await
        }
    };
    let first = get("/segments/adults/members?limit=4", &s.viewer, None).await;
    assert_eq!(first.status, 200, "{}", first.text());
    let tag = first.header("etag").expect("an ETag");
    assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
    assert_eq!(first.header("cache-control").as_deref(), Some("private, no-cache"), "the latest run moves");
    assert_eq!(first.header("content-length"), Some(first.body.len().to_string()));
    // The same page again (kept): the same bytes and tag.
    let again = get("/segments/adults/members?limit=4", &s.viewer, None).await;
    assert_eq!((again.body.clone(), again.header("etag")), (first.body.clone(), Some(tag.clone())));
    assert_eq!(again.header("x-next-cursor").as_deref(), Some("1.4"));
    // Revalidation: 304 without a body, for a list of tags and weak comparison too; another tag is a 200.
    for inm in [tag.clone(), format!("\"x\", W/{tag}"), "*".to_string()] {
        let r = get("/segments/adults/members?limit=4", &s.viewer, Some(&inm)).await;
        assert_eq!((r.status, r.body.len()), (304, 0), "{inm}");
        assert_eq!(r.header("etag"), Some(tag.clone()));
        assert_eq!(r.header("x-run").as_deref(), Some("1"));
    }
    assert_eq!(get("/segments/adults/members?limit=4", &s.viewer, Some("\"other\"")).await.status, 200);
    // Other rows or another encoding: another tag. A named run's page never changes.
    let next = get("/segments/adults/members?limit=4&cursor=1.4", &s.viewer, None).await;
    assert_eq!(next.json()["items"].as_array().unwrap().len(), 2);
    assert_ne!(next.header("etag"), Some(tag.clone()));
    assert_eq!(next.header("cache-control").as_deref(), Some("private, max-age=31536000, immutable"));
    let csv = get("/segments/adults/members?limit=4&format=csv", &s.viewer, None).await;
    assert_eq!(csv.text(), "user_id\n5\n6\n7\n8\n");
    assert_ne!(csv.header("etag"), Some(tag.clone()));
    // A new run: the latest page is another file, so the old tag no longer matches.
    assert_eq!(s.post("/segments/adults/evaluate", &s.editor, "").await.status, 200);
    let r = get("/segments/adults/members?limit=4", &s.viewer, Some(&tag)).await;
    assert_eq!((r.status, r.header("x-run").as_deref()), (200, Some("2")));
    assert_ne!(r.header("etag"), Some(tag.clone()));
    // Run 1 by number still answers with its own (unchanged) tag.
    let r = get("/segments/adults/members?limit=4&run=1", &s.viewer, Some(&tag)).await;
    assert_eq!(r.status, 304);

    // A segment over an entity whose key is pii: masked unless the caller may read pii.
    let r = s
        .post(
            "/entities",
            &s.admin,
            r#"{"name": "contact", "key": "email", "attributes": {"email": {"type": "string", "pii": true}, "n": "int64"}}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let batch = segkit::deps::arrow::array::RecordBatch::try_from_iter([
        (
            "email",
            std::sync::Arc::new(segkit::deps::arrow::array::StringArray::from(vec!["a@x.org", "b@x.org"]))
                as segkit::deps::arrow::array::ArrayRef,
        ),
        ("n", std::sync::Arc::new(segkit::deps::arrow::array::Int64Array::from(vec![1, 2])) as _),
    ])
    .unwrap();
    s.ws.ingest_batches("contact", vec![batch], segkit::IngestOptions::default()).await.unwrap();
    let r = s
        .post(
            "/segments",
            &s.editor,
            r#"{"name": "all_contacts", "entity": "contact", "rule": {"attribute": "n", "op": "ge", "value": 0}}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.post("/segments/all_contacts/evaluate", &s.editor, "").await.status, 200);
    let audited = |s: &common::Server| {
        s.ws.audit_log(1000).unwrap().iter().filter(|a| a.action == "pii.read" && a.target == "all_contacts").count()
    };
    let mut masked_tag = None;
    for key in [&s.viewer, &s.editor] {
        // Twice: the second answer comes from the kept (masked) page.
        for _ in 0..2 {
            let r = get("/segments/all_contacts/members", key, None).await;
            assert_eq!(r.json()["items"], json!([{"email": "***"}, {"email": "***"}]), "{}", r.text());
            assert_eq!(get("/segments/all_contacts/members?format=csv", key, None).await.text(), "email\n***\n***\n");
            masked_tag = r.header("etag");
        }
    }
    assert_eq!(audited(&s), 0, "masked reads are not pii reads");
    let r = get("/segments/all_contacts/members", &s.admin, None).await;
    assert_eq!(r.json()["items"], json!([{"email": "a@x.org"}, {"email": "b@x.org"}]));
    assert_ne!(r.header("etag"), masked_tag, "masked and unmasked pages have different tags");
    assert_eq!(get("/segments/all_contacts/members", &s.admin, None).await.json()["items"][0]["email"], "a@x.org");
    assert_eq!(audited(&s), 2, "every unmasked read is audited, kept page or not");
    // A viewer's tag does not revalidate the admin's page, nor the reverse.
    let r = get("/segments/all_contacts/members", &s.admin, masked_tag.as_deref()).await;
    assert_eq!(r.status, 200);
    let r = get("/segments/all_contacts/members", &s.viewer, masked_tag.as_deref()).await;
    assert_eq!(r.status, 304);

    // Deleted: the kept pages are never served, revalidation included.
    assert_eq!(s.call("DELETE", "/segments/adults", Some(&s.editor), None).await.status, 204);
    get("/segments/adults/members?limit=4", &s.viewer, None).await.problem(404);
    get("/segments/adults/members?limit=4&run=1", &s.viewer, Some(&tag)).await.problem(404);
}

#[tokio::test]
async fn sources_sync_workflows_trigger_and_deliveries() {
    let s = start().await;
    let v = s.get("/sources", &s.viewer).await.json()["items"].clone();
    assert_eq!((v[0]["name"].as_str(), v[0]["entity"].as_str()), (Some("users_csv"), Some("user")));
    // The setup synced the file once; the source is incremental, so a sync reads what was appended since.
    let r = s.post("/sources/users_csv/sync", &s.editor, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rows_read"], 0);
    let appended = common::append_users(s.dir.path(), 11..=12);
    let r = s.post("/sources/users_csv/sync", &s.editor, "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rows_read"], appended);
    s.post("/sources/nope/sync", &s.editor, "").await.problem(404);

    s.adults().await;
    let wf = segkit::spec::from_json_text::<segkit::workflow::WorkflowSpec>(
        r#"{"name": "welcome", "trigger": {"type": "entered", "segment": "adults"},
            "steps": [{"name": "done", "type": "exit"}]}"#,
    )
    .unwrap();
    s.ws.define_workflow(wf).await.unwrap();
    assert_eq!(s.get("/workflows", &s.viewer).await.json()["items"][0]["name"], "welcome");
    let r = s.post("/workflows/welcome/trigger", &s.editor, r#"{"keys": ["5", "6"]}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["queued"], 2);
    let p = s.post("/workflows/welcome/trigger", &s.editor, r#"{"keys": 5}"#).await.problem(422);
    assert_eq!(p["path"], "trigger.keys", "{p}");
    s.post("/workflows/welcome/trigger", &s.editor, r#"{"keys": "#).await.problem(400);
    s.post("/workflows/nope/trigger", &s.editor, "").await.problem(404);
    let d = s.get("/deliveries?workflow=welcome&limit=10", &s.viewer).await.json();
    let mut keys: Vec<&str> =
        d["items"].as_array().unwrap().iter().map(|r| r["entity_key"].as_str().unwrap()).collect();
    keys.sort();
    assert_eq!(keys, ["5", "6"]);
    assert_eq!(s.get("/deliveries?status=dead", &s.viewer).await.json()["items"], json!([]));
}

/// Every endpoint that changes something, for each role: a viewer changes nothing, an editor cannot manage
/// keys or read the audit log, an admin can do everything.
#[tokio::test]
async fn role_by_endpoint_matrix() {
    let s = start().await;
    s.adults().await;
    let entity = r#"{"name": "shop", "key": "id", "attributes": {"id": "int64"}}"#;
    let segment = r#"{"name": "m", "entity": "user", "rule": {"attribute": "age", "op": "ge", "value": 1}}"#;
    let writes: [(&str, &str, Option<&str>); 8] = [
        ("POST", "/entities", Some(entity)),
        ("POST", "/segments", Some(segment)),
        (
            "PUT",
            "/segments/adults",
            Some(r#"{"entity": "user", "rule": {"attribute": "age", "op": "ge", "value": 31}}"#),
        ),
        ("POST", "/segments/adults/evaluate", None),
        ("POST", "/sources/users_csv/sync", None),
        ("POST", "/workflows/none/trigger", None),
        ("DELETE", "/segments/m", None),
        ("DELETE", "/segments/adults", None),
    ];
    let admin_only: [(&str, &str, Option<&str>); 4] = [
        ("GET", "/keys", None),
        ("POST", "/keys", Some(r#"{"name": "x", "role": "viewer"}"#)),
        ("DELETE", "/keys/key_0", None),
        ("GET", "/audit", None),
    ];
    let before = s.ws.segments().unwrap();
    for (m, p, b) in writes.iter().chain(admin_only.iter()) {
        let r = s.call(m, p, Some(&s.viewer), *b).await;
        assert_eq!(r.problem(403)["kind"], "forbidden", "viewer {m} {p}");
    }
    for (m, p, b) in admin_only.iter() {
        s.call(m, p, Some(&s.editor), *b).await.problem(403);
    }
    assert_eq!(s.ws.segments().unwrap(), before, "nothing changed");
    assert_eq!(s.ws.entities().unwrap().len(), 1);
    // Editors may write (the last two deletes: `m` exists after the create).
    for (m, p, b) in writes.iter() {
        let r = s.call(m, p, Some(&s.editor), *b).await;
        if p.contains("/workflows/none") {
            r.problem(404);
        } else {
            assert!(r.status < 300, "editor {m} {p}: {} {}", r.status, r.text());
        }
    }
    // Reads are open to viewers.
    for p in ["/entities", "/entities/user", "/segments", "/sources", "/workflows", "/deliveries"] {
        assert_eq!(s.get(p, &s.viewer).await.status, 200, "{p}");
    }
    // Admins manage keys; the secret is shown once and works.
    let r = s.post("/keys", &s.admin, r#"{"name": "bot", "role": "editor"}"#).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let secret = r.json()["secret"].as_str().unwrap().to_string();
    assert_eq!(s.get("/segments", &secret).await.status, 200);
    let keys = s.get("/keys", &s.admin).await;
    assert!(!keys.text().contains(&secret) && !keys.text().contains("hash"));
    s.post("/keys", &s.admin, r#"{"name": "bot", "role": "owner"}"#).await.problem(400);
    s.call("DELETE", "/keys/key_0", Some(&s.admin), None).await.problem(404);
    // The audit log has every change with its actor, also as the segkit.audit system table.
    let audit = s.get("/audit?limit=1000", &s.admin).await.json();
    let actions: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["actor"].as_str().unwrap().to_string(), a["action"].as_str().unwrap().to_string()))
        .collect();
    for want in
        ["entity.define", "segment.create", "segment.update", "segment.evaluate", "source.sync", "segment.delete"]
    {
        assert!(actions.contains(&("ed".into(), want.into())), "{want} in {actions:?}");
    }
    assert!(actions.contains(&("ada".into(), "key.create".into())));
    assert!(!actions.iter().any(|(a, _)| a == "vi"), "refused requests change nothing");
    let b = s.ws.sql("SELECT count(*) AS n FROM segkit.audit WHERE action = 'segment.delete'").await.unwrap();
    let n = b[0].column(0).as_any().downcast_ref::<segkit::deps::arrow::array::Int64Array>().unwrap().value(0);
    assert_eq!(n, 2);
}

#[tokio::test]
async fn idempotency_key_replays_the_first_answer_and_refuses_reuse() {
    let s = start().await;
    let spec = r#"{"name": "cn", "entity": "user", "rule": {"attribute": "country", "op": "eq", "value": "CN"}}"#;
    let h = [("idempotency-key", "create-cn-1")];
    let first = s.call_with("POST", "/segments", Some(&s.editor), Some(spec), &h).await;
    assert_eq!(first.status, 201, "{}", first.text());
    let again = s.call_with("POST", "/segments", Some(&s.editor), Some(spec), &h).await;
    assert_eq!((again.status, again.body.clone()), (201, first.body.clone()), "replayed, not a 409");
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    let other = spec.replace("CN", "US");
    s.call_with("POST", "/segments", Some(&s.editor), Some(&other), &h).await.problem(422);
    // Evaluate twice with one key: one run.
    let h = [("idempotency-key", "eval-1")];
    let a = s.call_with("POST", "/segments/cn/evaluate", Some(&s.editor), None, &h).await;
    let b = s.call_with("POST", "/segments/cn/evaluate", Some(&s.editor), None, &h).await;
    assert_eq!((a.json()["run"].clone(), b.json()["run"].clone()), (json!(1), json!(1)));
    assert_eq!(s.ws.runs("cn").unwrap().len(), 1);
    // Another caller's identical key is another request.
    let c = s.call_with("POST", "/segments/cn/evaluate", Some(&s.admin), None, &h).await;
    assert_eq!(c.json()["run"], 2);
    let long = "k".repeat(300);
    s.call_with("POST", "/segments/cn/evaluate", Some(&s.editor), None, &[("idempotency-key", &long)])
        .await
        .problem(400);
}

#[tokio::test]
async fn over_the_rate_limit_is_429_with_retry_after() {
    let s = common::start_with(ServerOptions { rate_limit_per_minute: Some(3), ..ServerOptions::default() }).await;
    for _ in 0..3 {
        assert_eq!(s.get("/segments", &s.viewer).await.status, 200);
    }
    let r = s.get("/segments", &s.viewer).await;
    let p = r.problem(429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(p["retry_after"], retry);
}

/// Several clients update one segment at once with the ETag they read: exactly one wins, the others get 412
/// (no lost update), and none sees a 5xx or `database is locked`.
#[tokio::test]
async fn concurrent_writers_lose_no_update() {
    let s = std::sync::Arc::new(start().await);
    s.adults().await;
    let tag = s.get("/segments/adults", &s.viewer).await.header("etag").unwrap();
    let mut tasks = vec![];
    for i in 0..8 {
        let (s, tag) = (s.clone(), tag.clone());
        tasks.push(tokio::spawn(async move {
            let body =
                format!(r#"{{"entity": "user", "rule": {{"attribute": "age", "op": "ge", "value": {}}}}}"#, 20 + i);
            let r = s.call_with("PUT", "/segments/adults", Some(&s.editor), Some(&body), &[("if-match", &tag)]).await;
            (r.status, i)
        }));
    }
    let mut results = vec![];
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let winners: Vec<_> = results.iter().filter(|(st, _)| *st == 200).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results.iter().all(|(st, _)| *st == 200 || *st == 412), "{results:?}");
    let stored = s.get("/segments/adults", &s.viewer).await.json();
    assert_eq!(stored["rule"]["value"], json!(20 + winners[0].1));
    // Concurrent evaluations and live counts alongside: counts succeed; an evaluation either stores its run or,
    // when another one committed first, answers 409 `conflict` (retry) — never a 5xx, never a lost run.
    let mut tasks = vec![];
    for i in 0..6 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let r = s.post("/segments/adults/evaluate", &s.editor, "").await;
                if r.status != 200 {
                    assert_eq!(r.problem(409)["kind"], "conflict");
                }
                (true, r.status)
            } else {
                let body = r#"{"entity": "user", "rule": {"attribute": "age", "op": "lt", "value": 30}}"#;
                (false, s.post("/count", &s.viewer, body).await.status)
            }
        }));
    }
    let mut stored = 0;
    for t in tasks {
        match t.await.unwrap() {
            (true, 200) => stored += 1,
            (true, _) => {}
            (false, status) => assert_eq!(status, 200),
        }
    }
    assert!(stored >= 1);
    let runs: Vec<Value> = s.get("/segments/adults/runs", &s.viewer).await.json()["items"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 1 + stored, "the first run and one per successful evaluation");
    let numbers: Vec<i64> = runs.iter().map(|r| r["run"].as_i64().unwrap()).collect();
    assert_eq!(numbers, (1..=runs.len() as i64).collect::<Vec<_>>(), "no gap, no duplicate");
}
