mod common;

use std::collections::BTreeMap;

use base64::Engine;
use common::{delivery, serve, Reply};
use segkit::action::ActionFactory;
use segkit_actions::{registry, Outcome};
use serde_json::json;

/// Aliyun's signature v1, written independently of the action: the receiver's side.
fn aliyun_expected(params: &BTreeMap<String, String>, secret: &str) -> String {
    use hmac::Mac;
    fn enc(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
    let canonical: Vec<String> =
        params.iter().filter(|(k, _)| *k != "Signature").map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    let to_sign = format!("GET&{}&{}", enc("/"), enc(&canonical.join("&")));
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes()).unwrap();
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn aliyun_send_sms_is_signed_and_codes_are_classified() {
    std::env::set_var("SEGKIT_TEST_ALI_AK", "LTAI-test");
    std::env::set_var("SEGKIT_TEST_ALI_SK", "sk/with+chars=");
    let server = serve(|r| {
        let q = r.query();
        let Some(sig) = q.get("Signature") else { return Reply::new(400, r#"{"Code":"MissingSignature"}"#) };
        if *sig != aliyun_expected(&q, "sk/with+chars=") || q["AccessKeyId"] != "LTAI-test" {
            return Reply::new(
                400,
                r#"{"Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched"}"#,
            );
        }
        match q["PhoneNumbers"].as_str() {
            "8613800000001" => Reply::new(200, r#"{"Code":"isv.BUSINESS_LIMIT_CONTROL","Message":"触发分钟级流控"}"#),
            "8613800000002" => Reply::new(200, r#"{"Code":"isv.MOBILE_NUMBER_ILLEGAL","Message":"非法手机号"}"#),
            "8613800000003" => {
                Reply::new(503, r#"{"Code":"ServiceUnavailable","Message":"busy"}"#).header("Retry-After", "2")
            }
            _ => Reply::new(200, r#"{"Code":"OK","Message":"OK","BizId":"900619746936498440^0","RequestId":"r1"}"#),
        }
    })
    .await;
    let config = |sk: &str| {
        json!({"type": "sms", "provider": {"kind": "aliyun", "access_key_id": "env:SEGKIT_TEST_ALI_AK",
            "access_key_secret": sk, "sign_name": "阿里云短信测试", "template_code": "SMS_154950909",
            "endpoint": format!("{}/", server.base)}})
    };
    let action = registry().build(&config("env:SEGKIT_TEST_ALI_SK")).unwrap();
    assert!(!format!("{action:?}").contains("sk/with+chars="));
    let d = delivery("1", json!({"phone": "+86 138-0000-0000"}), &[("body", r#"{"code":"1234"}"#)]);
    assert_eq!(action.execute(&d).await, Outcome::Delivered { receipt: Some("900619746936498440^0".into()) });
    let q = server.last().query();
    assert_eq!(server.last().method, "GET");
    assert_eq!(q["Action"], "SendSms");
    assert_eq!(q["Version"], "2017-05-25");
    assert_eq!(q["SignatureMethod"], "HMAC-SHA1");
    assert_eq!(q["SignatureVersion"], "1.0");
    assert_eq!(q["PhoneNumbers"], "8613800000000");
    assert_eq!(q["SignName"], "阿里云短信测试");
    assert_eq!(q["TemplateCode"], "SMS_154950909");
    assert_eq!(serde_json::from_str::<serde_json::Value>(&q["TemplateParam"]).unwrap(), json!({"code": "1234"}));
    assert_eq!(q["OutId"], "wf:1:0:1");
    assert!(chrono::DateTime::parse_from_rfc3339(&q["Timestamp"]).is_ok(), "{}", q["Timestamp"]);
    // Spaces are %20 and never `+` in the raw query, as Aliyun requires.
    assert!(!server.last().target.contains('+'), "{}", server.last().target);

    let at = |phone: &str| delivery("2", json!({"phone": phone}), &[]);
    assert_eq!(
        action.execute(&at("8613800000001")).await,
        Outcome::Retryable {
            reason: "sms: aliyun isv.BUSINESS_LIMIT_CONTROL: 触发分钟级流控".into(),
            retry_after: None
        }
    );
    assert_eq!(
        action.execute(&at("8613800000002")).await,
        Outcome::Permanent { reason: "sms: aliyun isv.MOBILE_NUMBER_ILLEGAL: 非法手机号".into() }
    );
    assert_eq!(
        action.execute(&at("8613800000003")).await,
        Outcome::Retryable {
            reason: "sms: aliyun ServiceUnavailable: busy".into(),
            retry_after: Some(std::time::Duration::from_secs(2))
        }
    );
    std::env::set_var("SEGKIT_TEST_ALI_SK_WRONG", "wrong");
    let wrong = registry().build(&config("env:SEGKIT_TEST_ALI_SK_WRONG")).unwrap();
    assert_eq!(
        wrong.execute(&at("8613800000000")).await,
        Outcome::Permanent { reason: "sms: aliyun SignatureDoesNotMatch: Specified signature is not matched".into() }
    );
    // Bad numbers, a missing number and a body that is not an object never reach the provider.
    let n = server.requests().len();
    for phone in ["12", "+86abc", "", "1234567890123456789012"] {
        assert_eq!(
            action.execute(&at(phone)).await,
            Outcome::Permanent { reason: "sms: the `phone` attribute is not a valid phone number".into() },
            "{phone:?}"
        );
    }
    assert_eq!(
        action.execute(&delivery("3", json!({"email": "x@y"}), &[])).await,
        Outcome::Permanent { reason: "sms: the entity has no `phone` attribute to send to".into() }
    );
    assert_eq!(
        action.execute(&delivery("4", json!({"phone": "8613800000000"}), &[("body", "[1]")])).await,
        Outcome::Permanent { reason: "sms: the `body` part (Aliyun TemplateParam) must be a JSON object".into() }
    );
    assert_eq!(server.requests().len(), n);
    let e = registry().build(&config("plain-secret")).unwrap_err();
    assert!(e.to_string().starts_with("invalid definition of action.provider.access_key_secret:"), "{e}");
    assert!(!e.to_string().contains("plain-secret"));
}

#[tokio::test]
async fn templated_http_provider_form_and_json() {
    std::env::set_var("SEGKIT_TEST_SMS_AUTH", "Basic dGVzdDpzZWNyZXQ=");
    let server = serve(|r| match r.path() {
        "/busy" => Reply::new(429, "").header("Retry-After", "5"),
        "/reject" => Reply::new(422, r#"{"message":"unverified number"}"#),
        _ => Reply::new(201, r#"{"sid":"SM1"}"#),
    })
    .await;
    let form = registry()
        .build(&json!({"type": "sms", "to_attribute": "mobile", "provider": {"kind": "http",
            "url": format!("{}/send", server.base), "headers": {"Authorization": "env:SEGKIT_TEST_SMS_AUTH"},
            "form": {"To": "{to}", "Body": "{text} ({entity_key})", "Ref": "{idempotency_key}", "Lit": "{x}"}}}))
        .unwrap();
    let d = delivery("9", json!({"mobile": "+15005550006"}), &[("text", "Code {to} & 42")]);
    assert_eq!(form.execute(&d).await, Outcome::Delivered { receipt: Some("HTTP 201".into()) });
    let r = server.last();
    assert_eq!(r.header("authorization"), Some("Basic dGVzdDpzZWNyZXQ="));
    assert_eq!(r.header("content-type"), Some("application/x-www-form-urlencoded"));
    let fields: BTreeMap<String, String> = url::form_urlencoded::parse(r.body.as_bytes()).into_owned().collect();
    assert_eq!(fields["To"], "+15005550006");
    // Placeholders inside the text are not expanded again.
    assert_eq!(fields["Body"], "Code {to} & 42 (9)");
    assert_eq!(fields["Ref"], "wf:1:0:9");
    assert_eq!(fields["Lit"], "{x}");

    let json_provider = |path: &str| {
        registry()
            .build(&json!({"type": "sms", "provider": {"kind": "http", "url": format!("{}{path}", server.base)}}))
            .unwrap()
    };
    let d = delivery("10", json!({"phone": "+15005550006"}), &[("text", "hi")]);
    assert_eq!(json_provider("/send").execute(&d).await, Outcome::Delivered { receipt: Some("HTTP 201".into()) });
    assert_eq!(server.last().json(), json!({"to": "+15005550006", "text": "hi"}));
    assert_eq!(
        json_provider("/busy").execute(&d).await,
        Outcome::Retryable { reason: "HTTP 429".into(), retry_after: Some(std::time::Duration::from_secs(5)) }
    );
    assert_eq!(
        json_provider("/reject").execute(&d).await,
        Outcome::Permanent { reason: r#"HTTP 422: {"message":"unverified number"}"#.into() }
    );
    assert_eq!(
        json_provider("/send").execute(&delivery("11", json!({"phone": "+15005550006"}), &[])).await,
        Outcome::Permanent { reason: "sms: the delivery has no `text` part (check the step's template)".into() }
    );
    let e = registry().build(&json!({"type": "sms", "provider": {"kind": "twilio", "url": "http://x"}})).unwrap_err();
    assert!(e.to_string().starts_with("invalid definition of action.provider"), "{e}");
    let e = registry()
        .build(&json!({"type": "sms", "provider": {"kind": "http", "url": "http://x", "extra": 1}}))
        .unwrap_err();
    assert!(e.to_string().contains("unknown field `extra`"), "{e}");
}
