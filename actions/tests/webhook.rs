mod common;

use std::time::Duration;

use common::{closed_port_url, delivery, serve, Reply};
use segkit::action::ActionFactory;
use segkit::ErrorKind;
use segkit_actions::{registry, Outcome};
use serde_json::json;

fn build(config: serde_json::Value) -> std::sync::Arc<dyn segkit_actions::Action> {
    registry().build(&config).unwrap()
}

/// Extracts the fenced code block following `marker` in docs/actions.md.
fn doc_snippet(marker: &str) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/actions.md")).unwrap();
    let after = &doc[doc.find(marker).unwrap_or_else(|| panic!("{marker} missing in docs/actions.md"))..];
    let start = after.find("```").unwrap();
    let code = &after[start..];
    let code = &code[code.find('\n').unwrap() + 1..];
    code[..code.find("```").unwrap()].to_string()
}

#[tokio::test]
async fn signed_json_delivery_verified_by_receiver_and_doc_snippets() {
    std::env::set_var("SEGKIT_TEST_HOOK_SECRET", "whsec-test-1");
    std::env::set_var("SEGKIT_TEST_HOOK_AUTH", "Bearer abc");
    let server = serve(|_| Reply::new(202, "{}")).await;
    let action = build(json!({"type": "webhook", "url": format!("{}/hook", server.base),
        "headers": {"Authorization": "env:SEGKIT_TEST_HOOK_AUTH", "X-Team": "growth"},
        "secret": "env:SEGKIT_TEST_HOOK_SECRET", "timeout_ms": 3000}));
    let debug = format!("{action:?}");
    assert!(!debug.contains("whsec-test-1") && !debug.contains("Bearer abc"), "{debug}");

    let d = delivery("42", json!({"email": "a@example.com"}), &[("body", r#"{"hello": "wörld"}"#)]);
    assert_eq!(action.execute(&d).await, Outcome::Delivered { receipt: Some("HTTP 202".into()) });
    let r = server.last();
    assert_eq!((r.method.as_str(), r.path()), ("POST", "/hook"));
    assert_eq!(r.header("idempotency-key"), Some("wf:1:0:42"));
    assert_eq!(r.header("authorization"), Some("Bearer abc"));
    assert_eq!(r.header("x-team"), Some("growth"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, r#"{"hello": "wörld"}"#);
    // The receiver recomputes the signature.
    let sig = r.header("x-segkit-signature").unwrap().to_string();
    let (t, v1) = sig.strip_prefix("t=").unwrap().split_once(",v1=").unwrap();
    let t: i64 = t.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - t).abs() < 60);
    let expected = hex::encode(common::hmac_sha256(b"whsec-test-1", format!("{t}.{}", r.body).as_bytes()));
    assert_eq!(v1, expected);

    // The documented Python and JS receivers accept it, and refuse a tampered body or a wrong secret.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body"), &r.body).unwrap();
    std::fs::write(dir.path().join("header"), &sig).unwrap();
    let py = format!(
        "{}\nimport sys\nb = open(sys.argv[1], 'rb').read(); h = open(sys.argv[2]).read()\n\
         print(verify('whsec-test-1', h, b), verify('whsec-test-1', h, b + b' '), verify('other', h, b))\n",
        doc_snippet("<!-- verify-python -->")
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &py, dir.path().join("body").to_str().unwrap(), dir.path().join("header").to_str().unwrap()])
        .output()
        .expect("python3 runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "True False False", "{out:?}");
    let js = format!(
        "{}\nconst fs = require('node:fs');\nconst b = fs.readFileSync(process.argv[1]); const h = fs.readFileSync(process.argv[2], 'utf8');\n\
         console.log(verify('whsec-test-1', h, b), verify('whsec-test-1', h, Buffer.concat([b, Buffer.from(' ')])), verify('other', h, b));\n",
        doc_snippet("<!-- verify-js -->")
    );
    let out = std::process::Command::new("node")
        .args(["-e", &js, dir.path().join("body").to_str().unwrap(), dir.path().join("header").to_str().unwrap()])
        .output()
        .expect("node runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "true false false", "{out:?}");
}

#[tokio::test]
async fn default_body_is_the_delivery_and_statuses_are_classified() {
    let server = serve(|r| match r.path() {
        "/429" => Reply::new(429, "slow down").header("Retry-After", "7"),
        "/503" => Reply::new(503, ""),
        "/500" => Reply::new(500, "boom"),
        "/400" => Reply::new(400, "bad"),
        "/302" => Reply::new(302, "").header("Location", "/ok"),
        "/slow" => Reply::new(200, "{}").delay(Duration::from_millis(1500)),
        _ => Reply::new(200, "{}"),
    })
    .await;
    let hook =
        |path: &str| build(json!({"type": "webhook", "url": format!("{}{path}", server.base), "timeout_ms": 500}));
    let d = delivery("7", json!({"email": "b@example.com"}), &[("text", "hi")]);

    assert_eq!(hook("/ok").execute(&d).await, Outcome::Delivered { receipt: Some("HTTP 200".into()) });
    let body = server.last().json();
    assert_eq!(body["idempotency_key"], "wf:1:0:7");
    assert_eq!(body["entity_key"], "7");
    assert_eq!(body["attributes"]["email"], "b@example.com");
    assert_eq!(body["content"]["text"], "hi");
    assert_eq!(body["attempt"], 1);
    assert!(server.last().header("x-segkit-signature").is_none());

    assert_eq!(
        hook("/429").execute(&d).await,
        Outcome::Retryable { reason: "HTTP 429: slow down".into(), retry_after: Some(Duration::from_secs(7)) }
    );
    assert_eq!(hook("/503").execute(&d).await, Outcome::Retryable { reason: "HTTP 503".into(), retry_after: None });
    assert_eq!(
        hook("/500").execute(&d).await,
        Outcome::Retryable { reason: "HTTP 500: boom".into(), retry_after: None }
    );
    assert_eq!(hook("/400").execute(&d).await, Outcome::Permanent { reason: "HTTP 400: bad".into() });
    assert_eq!(hook("/302").execute(&d).await, Outcome::Permanent { reason: "HTTP 302".into() });
    match hook("/slow").execute(&d).await {
        Outcome::Retryable { reason, retry_after: None } => assert!(reason.starts_with("timed out"), "{reason}"),
        o => panic!("{o:?}"),
    }
    let closed = build(json!({"type": "webhook", "url": closed_port_url().await}));
    match closed.execute(&d).await {
        Outcome::Retryable { reason, .. } => assert!(reason.starts_with("connection failed"), "{reason}"),
        o => panic!("{o:?}"),
    }
    // A body part that is not JSON is permanent and nothing is sent.
    let before = server.requests().len();
    let bad = delivery("8", json!({}), &[("body", "{not json")]);
    match hook("/ok").execute(&bad).await {
        Outcome::Permanent { reason } => {
            assert!(reason.starts_with("webhook: the `body` part is not valid JSON"), "{reason}")
        }
        o => panic!("{o:?}"),
    }
    assert_eq!(server.requests().len(), before);
}

#[test]
fn bad_configs_are_refused_with_the_field() {
    let r = registry();
    let err = |c: serde_json::Value| r.build(&c).unwrap_err();
    let e = err(json!({"type": "webhook", "url": "http://127.0.0.1:1", "secret": "inline-secret"}));
    assert_eq!(e.kind(), ErrorKind::Definition);
    assert!(e.to_string().starts_with("invalid definition of action.secret:"), "{e}");
    assert!(!e.to_string().contains("inline-secret"), "{e}");
    let e = err(json!({"type": "webhook", "url": "http://127.0.0.1:1", "headers": {"Authorization": "Bearer x"}}));
    assert!(e.to_string().starts_with("invalid definition of action.headers.Authorization:"), "{e}");
    assert!(!e.to_string().contains("Bearer x"), "{e}");
    let e = err(json!({"type": "webhook", "url": "ftp://x"}));
    assert!(e.to_string().contains("action.url"), "{e}");
    let e = err(json!({"type": "webhook", "url": "http://x", "timeout_ms": 0}));
    assert!(e.to_string().starts_with("invalid definition of action.timeout_ms: must be between"), "{e}");
    let e = err(json!({"type": "webhook", "url": "http://x", "methd": "PUT"}));
    assert!(e.to_string().contains("unknown field `methd`"), "{e}");
    let e = err(json!({"type": "webhook", "url": "http://x", "method": "DELETE"}));
    assert!(e.to_string().starts_with("invalid definition of action.method:"), "{e}");
    let e = err(json!({"type": "webhook", "url": "http://x", "secret": "env:SEGKIT_TEST_UNSET_VAR_1"}));
    assert!(
        e.to_string().contains("SEGKIT_TEST_UNSET_VAR_1` (referenced as env:SEGKIT_TEST_UNSET_VAR_1) is not set"),
        "{e}"
    );
    assert_eq!(r.types(), vec!["dingtalk", "feishu", "jsonl", "sms", "smtp", "webhook", "wecom"]);
}
