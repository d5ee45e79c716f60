//! segkit's action conformance suite (`segkit::testing::action_conformance`) run on every built-in HTTP and
//! file family against real receivers on 127.0.0.1, with the receiver-side check that the idempotency key
//! arrived (header, `OutId`, or the JSON line). SMTP is covered by `tests/smtp.rs` against aiosmtpd.

mod common;

use std::sync::Arc;

use common::{serve, Reply, Server};
use segkit::action::ActionFactory;
use segkit::testing::{action_conformance, ActionCheck};
use segkit_actions::{registry, Action};
use serde_json::json;

fn build(config: serde_json::Value) -> Arc<dyn Action> {
    registry().build(&config).unwrap()
}

/// The `Idempotency-Key` headers the server received.
fn header_keys(server: &Server) -> impl Fn() -> segkit::Result<Vec<String>> + Send + Sync + 'static {
    let requests = server.requests.clone();
    move || {
        Ok(requests.lock().unwrap().iter().filter_map(|r| r.header("idempotency-key").map(str::to_string)).collect())
    }
}

#[tokio::test]
async fn webhook_conforms_and_its_key_reaches_the_receiver() {
    std::env::set_var("SEGKIT_CONF_HOOK_SECRET", "whsec-conformance");
    let server = serve(|_| Reply::new(200, "{}")).await;
    let action = build(
        json!({"type": "webhook", "url": format!("{}/hook", server.base), "secret": "env:SEGKIT_CONF_HOOK_SECRET"}),
    );
    let check = ActionCheck::new(ActionCheck::sample(action.as_ref()))
        .secrets(["whsec-conformance"])
        .received(header_keys(&server));
    action_conformance(action.as_ref(), &check).await.unwrap();
    // Delivered, repeated, and the content-less default body: three requests, the first two with the same key.
    let keys = header_keys(&server)().unwrap();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(keys[0], check.delivery.idempotency_key);
    assert_eq!(keys[1], keys[0]);
}

#[tokio::test]
async fn a_receiver_that_refuses_repeats_fails_the_suite() {
    // A receiver answering 409 to a key it has seen: at-least-once dispatch would dead-letter re-sends.
    let seen = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let server = serve(move |r| {
        let key = r.header("idempotency-key").unwrap_or_default().to_string();
        if seen.lock().unwrap().insert(key) {
            Reply::new(200, "{}")
        } else {
            Reply::new(409, "{}")
        }
    })
    .await;
    let action = build(json!({"type": "webhook", "url": server.base}));
    let check = ActionCheck::new(ActionCheck::sample(action.as_ref()));
    let e = action_conformance(action.as_ref(), &check).await.unwrap_err();
    assert_eq!(e.kind(), segkit::ErrorKind::Definition);
    assert!(e.to_string().contains("action webhook: conformance: re-executing the same idempotency key"), "{e}");
}

#[tokio::test]
async fn robots_conform() {
    std::env::set_var("SEGKIT_CONF_WECOM_KEY", "wk-conf");
    std::env::set_var("SEGKIT_CONF_DING_TOKEN", "dt-conf");
    std::env::set_var("SEGKIT_CONF_DING_SECRET", "SEC-conf");
    std::env::set_var("SEGKIT_CONF_FEISHU_HOOK", "fh-conf");
    std::env::set_var("SEGKIT_CONF_FEISHU_SECRET", "fs-conf");
    let chat = serve(|r| {
        if r.path().contains("open-apis") {
            Reply::new(200, r#"{"code":0,"msg":"success","data":{}}"#)
        } else {
            Reply::new(200, r#"{"errcode":0,"errmsg":"ok"}"#)
        }
    })
    .await;
    let configs = [
        (json!({"type": "wecom", "key": "env:SEGKIT_CONF_WECOM_KEY", "base_url": chat.base}), vec!["wk-conf"]),
        (
            json!({"type": "wecom", "key": "env:SEGKIT_CONF_WECOM_KEY", "base_url": chat.base, "msgtype": "markdown"}),
            vec!["wk-conf"],
        ),
        (
            json!({"type": "dingtalk", "access_token": "env:SEGKIT_CONF_DING_TOKEN",
                "secret": "env:SEGKIT_CONF_DING_SECRET", "base_url": chat.base}),
            vec!["dt-conf", "SEC-conf"],
        ),
        (
            json!({"type": "feishu", "hook": "env:SEGKIT_CONF_FEISHU_HOOK", "secret": "env:SEGKIT_CONF_FEISHU_SECRET",
                "base_url": chat.base}),
            vec!["fh-conf", "fs-conf"],
        ),
    ];
    for (config, secrets) in configs {
        let action = build(config.clone());
        let check = ActionCheck::new(ActionCheck::sample(action.as_ref())).secrets(secrets);
        action_conformance(action.as_ref(), &check).await.unwrap_or_else(|e| panic!("{config}: {e}"));
    }
    assert!(chat.requests().len() >= 8);
}

#[tokio::test]
async fn sms_providers_conform() {
    std::env::set_var("SEGKIT_CONF_ALI_AK", "ak-conf");
    std::env::set_var("SEGKIT_CONF_ALI_SK", "sk-conf");
    let server = serve(|r| {
        if r.path().starts_with("/send") {
            Reply::new(201, r#"{"sid":"SM1"}"#)
        } else {
            Reply::new(200, r#"{"Code":"OK","Message":"OK","BizId":"1^0","RequestId":"r1"}"#)
        }
    })
    .await;
    let mut delivery = ActionCheck::sample(
        build(json!({"type": "sms", "provider": {"kind": "http", "url": "http://127.0.0.1:1/"}})).as_ref(),
    );
    delivery.attributes.insert("phone".into(), json!("+8613800138000"));

    let http = build(json!({"type": "sms", "provider": {"kind": "http", "url": format!("{}/send", server.base)}}));
    let check = ActionCheck::new(delivery.clone()).received(header_keys(&server));
    action_conformance(http.as_ref(), &check).await.unwrap();

    let aliyun = build(json!({"type": "sms", "provider": {"kind": "aliyun", "access_key_id": "env:SEGKIT_CONF_ALI_AK",
        "access_key_secret": "env:SEGKIT_CONF_ALI_SK", "sign_name": "segkit", "template_code": "SMS_1",
        "endpoint": format!("{}/", server.base)}}));
    let requests = server.requests.clone();
    delivery.idempotency_key = "conformance-aliyun".into();
    let check = ActionCheck::new(delivery).secrets(["sk-conf"]).received(move || {
        Ok(requests.lock().unwrap().iter().filter_map(|r| r.query().get("OutId").cloned()).collect())
    });
    action_conformance(aliyun.as_ref(), &check).await.unwrap();
}

#[tokio::test]
async fn jsonl_conforms_and_writes_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let action = build(json!({"type": "jsonl", "path": path}));
    let read = path.clone();
    let check = ActionCheck::new(ActionCheck::sample(action.as_ref())).received(move || {
        let text = std::fs::read_to_string(&read).unwrap_or_default();
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["idempotency_key"].as_str().map(str::to_string))
            .collect())
    });
    action_conformance(action.as_ref(), &check).await.unwrap();
}
