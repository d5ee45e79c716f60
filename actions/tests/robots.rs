mod common;

use base64::Engine;
use common::{delivery, serve, Reply};
use segkit::action::ActionFactory;
use segkit_actions::{registry, Outcome};
use serde_json::json;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn wecom_posts_text_and_markdown_and_classifies_errcodes() {
    std::env::set_var("SEGKIT_TEST_WECOM_KEY", "wk-123");
    // The errcode answered depends on the message content.
    let server = serve(|r| {
        let body = r.json();
        let text = body["text"]["content"].as_str().or(body["markdown"]["content"].as_str()).unwrap_or("");
        match text {
            "limit" => Reply::new(200, r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#),
            "bad" => Reply::new(200, r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#),
            _ => Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#),
        }
    })
    .await;
    let text = registry()
        .build(&json!({"type": "wecom", "key": "env:SEGKIT_TEST_WECOM_KEY", "base_url": server.base,
            "mentioned_mobile_list": ["@all"]}))
        .unwrap();
    assert_eq!(text.max_rate_per_second(), Some(20.0 / 60.0));
    assert_eq!(text.parts(), Some(&["text"][..]));
    assert!(!format!("{text:?}").contains("wk-123"));
    let d = delivery("1", json!({}), &[("text", "你好")]);
    assert_eq!(text.execute(&d).await, Outcome::Delivered { receipt: Some("errcode 0".into()) });
    let r = server.last();
    assert_eq!((r.method.as_str(), r.path()), ("POST", "/cgi-bin/webhook/send"));
    assert_eq!(r.query().get("key").map(String::as_str), Some("wk-123"));
    assert_eq!(r.json(), json!({"msgtype": "text", "text": {"content": "你好", "mentioned_mobile_list": ["@all"]}}));

    let md = registry()
        .build(&json!({"type": "wecom", "key": "env:SEGKIT_TEST_WECOM_KEY", "base_url": server.base, "msgtype": "markdown"}))
        .unwrap();
    let d = delivery("2", json!({}), &[("markdown", "**hi**")]);
    assert_eq!(md.execute(&d).await, Outcome::Delivered { receipt: Some("errcode 0".into()) });
    assert_eq!(server.last().json(), json!({"msgtype": "markdown", "markdown": {"content": "**hi**"}}));

    let limit = text.execute(&delivery("3", json!({}), &[("text", "limit")])).await;
    assert_eq!(
        limit,
        Outcome::Retryable { reason: "wecom: errcode 45009: api freq out of limit".into(), retry_after: None }
    );
    let bad = text.execute(&delivery("4", json!({}), &[("text", "bad")])).await;
    assert_eq!(bad, Outcome::Permanent { reason: "wecom: errcode 93000: invalid webhook url".into() });
    // Missing part and oversized text: permanent, nothing sent.
    let n = server.requests().len();
    assert_eq!(
        text.execute(&delivery("5", json!({}), &[("markdown", "x")])).await,
        Outcome::Permanent { reason: "wecom: the delivery has no `text` part (check the step's template)".into() }
    );
    let long = "x".repeat(2049);
    match text.execute(&delivery("6", json!({}), &[("text", &long)])).await {
        Outcome::Permanent { reason } => assert!(reason.contains("2049 bytes, more than the 2048"), "{reason}"),
        o => panic!("{o:?}"),
    }
    assert_eq!(server.requests().len(), n);
    let e = registry().build(&json!({"type": "wecom", "key": "raw-key"})).unwrap_err();
    assert!(
        e.to_string().starts_with("invalid definition of action.key:") && !e.to_string().contains("raw-key"),
        "{e}"
    );
}

#[tokio::test]
async fn dingtalk_signs_the_url_and_classifies_errcodes() {
    std::env::set_var("SEGKIT_TEST_DING_TOKEN", "dt-tok");
    std::env::set_var("SEGKIT_TEST_DING_SECRET", "SECabc+/=");
    // The server verifies the signature as DingTalk does and answers 310000 when it does not match.
    let server = serve(|r| {
        let q = r.query();
        let ts = q.get("timestamp").cloned().unwrap_or_default();
        let expected = b64(&common::hmac_sha256(b"SECabc+/=", format!("{ts}\nSECabc+/=").as_bytes()));
        if q.get("access_token").map(String::as_str) != Some("dt-tok") {
            return Reply::new(200, r#"{"errcode":300001,"errmsg":"token is not exist"}"#);
        }
        if q.get("sign") != Some(&expected) {
            return Reply::new(200, r#"{"errcode":310000,"errmsg":"sign not match"}"#);
        }
        if r.json()["text"]["content"] == "fast" {
            return Reply::new(200, r#"{"errcode":130101,"errmsg":"send too fast"}"#);
        }
        Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#)
    })
    .await;
    let action = registry()
        .build(&json!({"type": "dingtalk", "access_token": "env:SEGKIT_TEST_DING_TOKEN",
            "secret": "env:SEGKIT_TEST_DING_SECRET", "base_url": server.base}))
        .unwrap();
    assert_eq!(action.max_rate_per_second(), Some(20.0 / 60.0));
    let dbg = format!("{action:?}");
    assert!(!dbg.contains("dt-tok") && !dbg.contains("SECabc"), "{dbg}");
    let ok = action.execute(&delivery("1", json!({}), &[("text", "hello")])).await;
    assert_eq!(ok, Outcome::Delivered { receipt: Some("errcode 0".into()) });
    let r = server.last();
    assert_eq!(r.path(), "/robot/send");
    assert_eq!(r.json(), json!({"msgtype": "text", "text": {"content": "hello"}}));
    // The sign is url-encoded in the raw query (base64 of this secret has + / =).
    let raw_sign = r.raw_query().into_iter().find(|(k, _)| k == "sign").unwrap().1;
    assert!(!raw_sign.contains('+') && !raw_sign.contains('/'), "{raw_sign}");
    let ts: i64 = r.query()["timestamp"].parse().unwrap();
    assert!((chrono::Utc::now().timestamp_millis() - ts).abs() < 60_000);
    assert_eq!(segkit_actions::dingtalk_sign(ts, "SECabc+/="), r.query()["sign"]);

    let fast = action.execute(&delivery("2", json!({}), &[("text", "fast")])).await;
    assert_eq!(
        fast,
        Outcome::Retryable { reason: "dingtalk: errcode 130101: send too fast".into(), retry_after: None }
    );
    // A wrong secret is rejected by the server: permanent.
    std::env::set_var("SEGKIT_TEST_DING_SECRET2", "wrong");
    let wrong = registry()
        .build(&json!({"type": "dingtalk", "access_token": "env:SEGKIT_TEST_DING_TOKEN",
            "secret": "env:SEGKIT_TEST_DING_SECRET2", "base_url": server.base}))
        .unwrap();
    assert_eq!(
        wrong.execute(&delivery("3", json!({}), &[("text", "x")])).await,
        Outcome::Permanent { reason: "dingtalk: errcode 310000: sign not match".into() }
    );
    let md = registry()
        .build(&json!({"type": "dingtalk", "access_token": "env:SEGKIT_TEST_DING_TOKEN",
            "secret": "env:SEGKIT_TEST_DING_SECRET", "base_url": server.base, "msgtype": "markdown"}))
        .unwrap();
    let ok = md.execute(&delivery("4", json!({}), &[("markdown", "# Sale\nnow"), ("title", "Sale!")])).await;
    assert_eq!(ok, Outcome::Delivered { receipt: Some("errcode 0".into()) });
    assert_eq!(
        server.last().json(),
        json!({"msgtype": "markdown", "markdown": {"title": "Sale!", "text": "# Sale\nnow"}})
    );
}

#[tokio::test]
async fn feishu_signs_the_body_and_classifies_codes() {
    std::env::set_var("SEGKIT_TEST_FEISHU_HOOK", "hook-uuid-1");
    std::env::set_var("SEGKIT_TEST_FEISHU_SECRET", "fs-secret");
    let server = serve(|r| {
        let body = r.json();
        let ts = body["timestamp"].as_str().unwrap_or("");
        let expected = b64(&common::hmac_sha256(format!("{ts}\nfs-secret").as_bytes(), b""));
        if r.path() != "/open-apis/bot/v2/hook/hook-uuid-1" {
            return Reply::new(404, r#"{"code":19001,"msg":"param invalid: incoming webhook access token invalid"}"#);
        }
        if body["sign"] != json!(expected) {
            return Reply::new(
                200,
                r#"{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}"#,
            );
        }
        if body["content"]["text"] == "flood" {
            return Reply::new(200, r#"{"code":9499,"msg":"too many request"}"#);
        }
        if body["content"]["text"] == "busy" {
            return Reply::new(429, "").header("Retry-After", "3");
        }
        Reply::new(200, r#"{"code":0,"msg":"success","data":{}}"#)
    })
    .await;
    let text = registry()
        .build(&json!({"type": "feishu", "hook": "env:SEGKIT_TEST_FEISHU_HOOK",
            "secret": "env:SEGKIT_TEST_FEISHU_SECRET", "base_url": server.base}))
        .unwrap();
    assert_eq!(text.max_rate_per_second(), Some(100.0 / 60.0));
    assert_eq!(
        text.execute(&delivery("1", json!({}), &[("text", "hi")])).await,
        Outcome::Delivered { receipt: Some("code 0".into()) }
    );
    let body = server.last().json();
    assert_eq!(body["msg_type"], "text");
    assert_eq!(body["content"], json!({"text": "hi"}));
    assert_eq!(
        text.execute(&delivery("2", json!({}), &[("text", "flood")])).await,
        Outcome::Retryable { reason: "feishu: code 9499: too many request".into(), retry_after: None }
    );
    assert_eq!(
        text.execute(&delivery("3", json!({}), &[("text", "busy")])).await,
        Outcome::Retryable { reason: "HTTP 429".into(), retry_after: Some(std::time::Duration::from_secs(3)) }
    );
    std::env::set_var("SEGKIT_TEST_FEISHU_SECRET2", "nope");
    let wrong = registry()
        .build(&json!({"type": "feishu", "hook": "env:SEGKIT_TEST_FEISHU_HOOK",
            "secret": "env:SEGKIT_TEST_FEISHU_SECRET2", "base_url": server.base}))
        .unwrap();
    match wrong.execute(&delivery("4", json!({}), &[("text", "x")])).await {
        Outcome::Permanent { reason } => assert!(reason.starts_with("feishu: code 19021: sign match fail"), "{reason}"),
        o => panic!("{o:?}"),
    }
    let md = registry()
        .build(&json!({"type": "feishu", "hook": "env:SEGKIT_TEST_FEISHU_HOOK",
            "secret": "env:SEGKIT_TEST_FEISHU_SECRET", "base_url": server.base, "msgtype": "markdown"}))
        .unwrap();
    let ok = md.execute(&delivery("5", json!({}), &[("markdown", "**x**"), ("title", "T")])).await;
    assert_eq!(ok, Outcome::Delivered { receipt: Some("code 0".into()) });
    let body = server.last().json();
    assert_eq!(body["msg_type"], "interactive");
    assert_eq!(body["card"]["elements"], json!([{"tag": "markdown", "content": "**x**"}]));
    assert_eq!(body["card"]["header"]["title"]["content"], "T");
    // An unknown message type is refused when the action is built.
    let e = registry()
        .build(&json!({"type": "feishu", "hook": "env:SEGKIT_TEST_FEISHU_HOOK", "msgtype": "html"}))
        .unwrap_err();
    assert!(e.to_string().starts_with("invalid definition of action.msgtype: unknown variant `html`"), "{e}");
}
