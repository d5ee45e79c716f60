//! [`FeishuAction`]: Feishu / Lark custom bot messages with signed bodies.

use async_trait::async_trait;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use segkit::Result;

use crate::http::{self, JsonBody, MsgType, Secret};
use crate::{Action, Delivery, Outcome};

/// Feishu's published limit for one custom bot: 100 messages per minute (and 5 per second).
pub const FEISHU_RATE_PER_SECOND: f64 = 100.0 / 60.0;
/// Feishu's request body limit: 20 KB.
const BODY_MAX: usize = 20 * 1024;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    #[allow(dead_code)]
    r#type: String,
    hook: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    msgtype: MsgType,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// Posts to a Feishu custom bot: `POST {base_url}/open-apis/bot/v2/hook/<hook>`.
///
/// Config: `{"type": "feishu", "hook": "env:FEISHU_HOOK", "secret": "env:FEISHU_SECRET", "msgtype": "text" |
/// "markdown", "base_url": "https://open.feishu.cn", "timeout_ms": 10000}` (`https://open.larksuite.com` for
/// Lark). With a `secret` (签名校验) the body carries `timestamp` (seconds, as a string) and `sign` =
/// base64(HMAC-SHA256 keyed with `"<timestamp>\n<secret>"` over an empty message) — see [`feishu_sign`].
///
/// `text` sends `msg_type: "text"` from the `text` part; `markdown` sends an interactive card with one
/// markdown element from the `markdown` part and a header from the `title` part when present. `code` (or
/// `StatusCode`) 0 is [`Outcome::Delivered`]; 9499 and 11232 (rate limited) are [`Outcome::Retryable`];
/// other codes (19021 bad sign, 19024 keywords, 19001 bad params…) [`Outcome::Permanent`].
/// [`Action::max_rate_per_second`] is Feishu's 100 per minute.
#[derive(Debug)]
pub struct FeishuAction {
    base: String,
    hook: Secret,
    secret: Option<Secret>,
    msgtype: MsgType,
    client: reqwest::Client,
}

/// The `sign` field for `timestamp` (seconds) and `secret`: base64(HMAC-SHA256(key = `"<timestamp>\n<secret>"`,
/// message = empty)).
pub fn feishu_sign(timestamp: i64, secret: &str) -> String {
    let mac = http::hmac_sha256(format!("{timestamp}\n{secret}").as_bytes(), b"");
    base64::engine::general_purpose::STANDARD.encode(mac)
}

impl FeishuAction {
    /// Builds the action from its JSON config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let c: Config = segkit::action::parse_config(config)?;
        let base = c.base_url.as_deref().unwrap_or("https://open.feishu.cn").trim_end_matches('/').to_string();
        http::check_url("base_url", &base)?;
        let hook = Secret::resolve("hook", &c.hook)?;
        if !hook.expose().chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
            return Err(crate::common::definition("action.hook", "the hook id may hold only letters, digits, - and _"));
        }
        let timeout = http::timeout(c.timeout_ms)?;
        Ok(FeishuAction {
            base,
            hook,
            secret: c.secret.as_deref().map(|s| Secret::resolve("secret", s)).transpose()?,
            msgtype: c.msgtype,
            client: http::client(timeout)?,
        })
    }

    fn payload(&self, delivery: &Delivery) -> std::result::Result<Value, Outcome> {
        let part = self.msgtype.part();
        let text = delivery.part(part).ok_or_else(|| http::missing_part("feishu", part))?;
        let mut payload = match self.msgtype {
            MsgType::Text => json!({"msg_type": "text", "content": {"text": text}}),
            MsgType::Markdown => {
                let mut card = json!({"elements": [{"tag": "markdown", "content": text}]});
                if let Some(title) = delivery.part("title") {
                    card["header"] = json!({"title": {"tag": "plain_text", "content": title}});
                }
                json!({"msg_type": "interactive", "card": card})
            }
        };
        if let Some(secret) = &self.secret {
            let ts = http::unix_now();
            payload["timestamp"] = json!(ts.to_string());
            payload["sign"] = json!(feishu_sign(ts, secret.expose()));
        }
        http::check_len("feishu", part, &payload.to_string(), BODY_MAX)?;
        Ok(payload)
    }
}

#[async_trait]
impl Action for FeishuAction {
    fn kind(&self) -> &str {
        "feishu"
    }

    async fn execute(&self, delivery: &Delivery) -> Outcome {
        let payload = match self.payload(delivery) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let url = format!("{}/open-apis/bot/v2/hook/{}", self.base, self.hook.expose());
        let reply = match http::send(self.client.post(url).json_body(&payload)).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        http::RobotReply {
            robot: "feishu",
            code_fields: &["code", "StatusCode"],
            msg_fields: &["msg", "StatusMessage"],
            retryable: &[9499, 11232],
        }
        .outcome(&reply)
    }

    fn parts(&self) -> Option<&[&str]> {
        Some(match self.msgtype {
            MsgType::Text => &["text"],
            MsgType::Markdown => &["markdown", "title"],
        })
    }

    fn max_rate_per_second(&self) -> Option<f64> {
        Some(FEISHU_RATE_PER_SECOND)
    }
}

/// The JSON Schema of this action's config (see [`segkit::spec::config_schema`]).
pub(crate) fn config_schema_variant() -> serde_json::Value {
    segkit::spec::config_schema::variant::<Config>(&["feishu"])
}
