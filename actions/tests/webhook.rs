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

/// A raw HTTP/1.1 server for the lean client's connection handling: answers the n-th request (from 0) with the
/// bytes `reply(n)` gives, then closes the connection when it says so; records (connection number,
/// idempotency key) per request.
async fn raw_server(
    reply: impl Fn(usize) -> (Vec<u8>, bool) + Send + Sync + 'static,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<(usize, String)>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (log, reply) = (seen.clone(), std::sync::Arc::new(reply));
    tokio::spawn(async move {
        for conn in 0usize.. {
            let Ok((stream, _)) = listener.accept().await else { return };
            let (log, reply) = (log.clone(), reply.clone());
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let (mut len, mut key) = (0usize, String::new());
                    let mut first = true;
                    loop {
                        let mut line = String::new();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end().to_string();
                        if line.is_empty() && !first {
                            break;
                        }
                        first = false;
                        if let Some((k, v)) = line.split_once(':') {
                            match k.trim().to_ascii_lowercase().as_str() {
                                "content-length" => len = v.trim().parse().unwrap(),
                                "idempotency-key" => key = v.trim().to_string(),
                                _ => {}
                            }
                        }
                    }
                    let mut body = vec![0; len];
                    stream.read_exact(&mut body).await.unwrap();
                    let n = {
                        let mut l = log.lock().unwrap();
                        l.push((conn, key));
                        l.len() - 1
                    };
                    let (bytes, close) = reply(n);
                    if stream.get_mut().write_all(&bytes).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (base, seen)
}

#[tokio::test]
async fn plain_http_reuses_connections_and_recovers_from_closed_ones() {
    // Kept alive: five deliveries on one connection; replies framed by length and by chunks.
    let (base, seen) = raw_server(|n| {
        let reply = if n % 2 == 0 {
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_string()
        } else {
            "HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nx-t: 1\r\n\r\n"
                .to_string()
        };
        (reply.into_bytes(), false)
    })
    .await;
    let hook = build(json!({"type": "webhook", "url": format!("{base}/hook"), "timeout_ms": 5000}));
    for i in 0..5 {
        let d = delivery(&i.to_string(), json!({}), &[("body", "{}")]);
        let expected = if i % 2 == 0 { "HTTP 200" } else { "HTTP 201" };
        assert_eq!(hook.execute(&d).await, Outcome::Delivered { receipt: Some(expected.into()) });
    }
    let seen = seen.lock().unwrap().clone();
    let keys: Vec<&str> = seen.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(keys, ["wf:1:0:0", "wf:1:0:1", "wf:1:0:2", "wf:1:0:3", "wf:1:0:4"]);
    assert!(seen.iter().all(|(c, _)| *c == 0), "one kept-alive connection: {seen:?}");

    // The receiver closes every connection after its reply (without saying so): each delivery is still sent
    // exactly once, the stale pooled connection replaced by a new one.
    let (base, seen) = raw_server(|_| (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec(), true)).await;
    let hook = build(json!({"type": "webhook", "url": format!("{base}/hook"), "timeout_ms": 5000}));
    for i in 0..3 {
        let d = delivery(&i.to_string(), json!({}), &[("body", "{}")]);
        assert_eq!(hook.execute(&d).await, Outcome::Delivered { receipt: Some("HTTP 200".into()) });
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [0, 1, 2], "{seen:?}");
    assert_eq!(seen.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>(), ["wf:1:0:0", "wf:1:0:1", "wf:1:0:2"]);

    // A chunked 429 with Retry-After and `connection: close`, an interim 100, a reply cut short, a non-HTTP reply.
    let (base, _) = raw_server(|n| match n {
        0 => (b"HTTP/1.1 429 Too Many\r\ntransfer-encoding: chunked\r\nretry-after: 3\r\nconnection: close\r\n\r\n4\r\nslow\r\n0\r\n\r\n".to_vec(), true),
        1 => (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad\r\ncontent-length: 3\r\n\r\nbad".to_vec(), false),
        2 => (b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{}".to_vec(), true),
        _ => (b"SMTP 220 hello\r\n\r\n".to_vec(), true),
    })
    .await;
    let hook = build(json!({"type": "webhook", "url": format!("{base}/hook"), "timeout_ms": 5000}));
    let d = delivery("9", json!({}), &[("body", "{}")]);
    assert_eq!(
        hook.execute(&d).await,
        Outcome::Retryable { reason: "HTTP 429: slow".into(), retry_after: Some(Duration::from_secs(3)) }
    );
    assert_eq!(hook.execute(&d).await, Outcome::Permanent { reason: "HTTP 400: bad".into() });
    match hook.execute(&d).await {
        Outcome::Retryable { reason, retry_after: None } => {
            assert!(reason.starts_with("request failed: ") && reason.contains("closed"), "{reason}")
        }
        o => panic!("a 2xx reply cut short is retryable: {o:?}"),
    }
    match hook.execute(&d).await {
        Outcome::Retryable { reason, retry_after: None } => {
            assert!(reason.starts_with("request failed: invalid HTTP reply"), "{reason}")
        }
        o => panic!("{o:?}"),
    }
}
