//! [`DingTalkAction`]: DingTalk custom robot messages with signed URLs.

use async_trait::async_trait;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use segkit::Result;

use crate::http::{self, JsonBody, MsgType, Secret};
use crate::{Action, Delivery, Outcome};

/// DingTalk's published limit for one custom robot: 20 messages per minute.
pub const DINGTALK_RATE_PER_SECOND: f64 = 20.0 / 60.0;
const TEXT_MAX: usize = 20_000;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    #[allow(dead_code)]
    r#type: String,
    access_token: String,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    msgtype: MsgType,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// Posts to a DingTalk custom robot: `POST {base_url}/robot/send?access_token=…&timestamp=…&sign=…`.
///
/// Config: `{"type": "dingtalk", "access_token": "env:DING_TOKEN", "secret": "env:DING_SECRET", "msgtype":
/// "text" | "markdown", "base_url": "https://oapi.dingtalk.com", "timeout_ms": 10000}`. With a `secret` (the
/// robot's 加签 setting) the URL carries `timestamp` (milliseconds) and `sign` = url-encoded
/// base64(HMAC-SHA256(secret, `"<timestamp>\n<secret>"`)) — see [`dingtalk_sign`].
///
/// Reads the `text` part, or the `markdown` part and a `title` part (the notification preview; the first line
/// of the markdown when absent). `errcode` 0 is [`Outcome::Delivered`]; 130101 and 410100 (sending too fast)
/// and -1 (busy) are [`Outcome::Retryable`]; other codes (310000 bad sign or keywords, 300001 bad token…)
/// [`Outcome::Permanent`]. [`Action::max_rate_per_second`] is DingTalk's 20 per minute.
#[derive(Debug)]
pub struct DingTalkAction {
    url: url::Url,
    access_token: Secret,
    secret: Option<Secret>,
    msgtype: MsgType,
    client: reqwest::Client,
}

/// The `sign` parameter (before url-encoding) for `timestamp_ms` and `secret`:
/// base64(HMAC-SHA256(secret, `"<timestamp_ms>\n<secret>"`)).
pub fn dingtalk_sign(timestamp_ms: i64, secret: &str) -> String {
    let mac = http::hmac_sha256(secret.as_bytes(), format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac)
}

impl DingTalkAction {
    /// Builds the action from its JSON config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let c: Config = segkit::action::parse_config(config)?;
        let base = c.base_url.as_deref().unwrap_or("https://oapi.dingtalk.com");
        let url = http::check_url("base_url", &format!("{}/robot/send", base.trim_end_matches('/')))?;
        let timeout = http::timeout(c.timeout_ms)?;
        Ok(DingTalkAction {
            url,
            access_token: Secret::resolve("access_token", &c.access_token)?,
            secret: c.secret.as_deref().map(|s| Secret::resolve("secret", s)).transpose()?,
            msgtype: c.msgtype,
            client: http::client(timeout)?,
        })
    }

    fn payload(&self, delivery: &Delivery) -> std::result::Result<Value, Outcome> {
        let part = self.msgtype.part();
        let text = delivery.part(part).ok_or_else(|| http::missing_part("dingtalk", part))?;
        http::check_len("dingtalk", part, text, TEXT_MAX)?;
        Ok(match self.msgtype {
            MsgType::Text => json!({"msgtype": "text", "text": {"content": text}}),
            MsgType::Markdown => {
                let title = delivery
                    .part("title")
                    .map(str::to_string)
                    .unwrap_or_else(|| text.lines().next().unwrap_or("").trim_start_matches('#').trim().to_string());
                json!({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
            }
        })
    }
}

#[async_trait]
impl Action for DingTalkAction {
    fn kind(&self) -> &str {
        "dingtalk"
    }

    async fn execute(&self, delivery: &Delivery) -> Outcome {
        let payload = match self.payload(delivery) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let mut url = self.url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("access_token", self.access_token.expose());
            if let Some(secret) = &self.secret {
                let ts = chrono::Utc::now().timestamp_millis();
                q.append_pair("timestamp", &ts.to_string());
                q.append_pair("sign", &dingtalk_sign(ts, secret.expose()));
            }
        }
        let reply = match http::send(self.client.post(url).json_body(&payload)).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        http::RobotReply {
            robot: "dingtalk",
            code_fields: &["errcode"],
            msg_fields: &["errmsg"],
            retryable: &[130101, 410100, -1],
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
        Some(DINGTALK_RATE_PER_SECOND)
    }
}

/// The JSON Schema of this action's config (see [`segkit::spec::config_schema`]).
pub(crate) fn config_schema_variant() -> serde_json::Value {
    segkit::spec::config_schema::variant::<Config>(&["dingtalk"])
}
