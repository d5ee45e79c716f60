//! [`WeComAction`]: 企业微信 (WeCom) group robot messages.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use segkit::Result;

use crate::http::{self, JsonBody, MsgType, Secret};
use crate::{Action, Delivery, Outcome};

/// WeCom's published limit for one group robot: 20 messages per minute.
pub const WECOM_RATE_PER_SECOND: f64 = 20.0 / 60.0;
const TEXT_MAX: usize = 2048;
const MARKDOWN_MAX: usize = 4096;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    #[allow(dead_code)]
    r#type: String,
    key: String,
    #[serde(default)]
    msgtype: MsgType,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(default)]
    mentioned_mobile_list: Vec<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// Posts to a WeCom group robot: `POST {base_url}/cgi-bin/webhook/send?key=<key>`.
///
/// Config: `{"type": "wecom", "key": "env:WECOM_KEY", "msgtype": "text" | "markdown", "base_url":
/// "https://qyapi.weixin.qq.com", "mentioned_mobile_list": ["@all"], "timeout_ms": 10000}`. Reads the `text`
/// part (at most 2048 bytes) or the `markdown` part (at most 4096 bytes).
///
/// The reply's `errcode` decides: 0 is [`Outcome::Delivered`]; 45009 (frequency limit) and -1 (system busy)
/// are [`Outcome::Retryable`]; any other code is [`Outcome::Permanent`] (e.g. 93000, an invalid key). HTTP
/// statuses and transport failures are classified as for webhooks. The key, part of the URL, never appears in
/// outcomes. [`Action::max_rate_per_second`] is WeCom's 20 per minute.
#[derive(Debug)]
pub struct WeComAction {
    url: url::Url,
    key: Secret,
    msgtype: MsgType,
    mentioned_mobile_list: Vec<String>,
    client: reqwest::Client,
}

impl WeComAction {
    /// Builds the action from its JSON config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let c: Config = segkit::action::parse_config(config)?;
        let base = c.base_url.as_deref().unwrap_or("https://qyapi.weixin.qq.com");
        let url = http::check_url("base_url", &format!("{}/cgi-bin/webhook/send", base.trim_end_matches('/')))?;
        let timeout = http::timeout(c.timeout_ms)?;
        Ok(WeComAction {
            url,
            key: Secret::resolve("key", &c.key)?,
            msgtype: c.msgtype,
            mentioned_mobile_list: c.mentioned_mobile_list,
            client: http::client(timeout)?,
        })
    }

    fn payload(&self, delivery: &Delivery) -> std::result::Result<Value, Outcome> {
        let part = self.msgtype.part();
        let text = delivery.part(part).ok_or_else(|| http::missing_part("wecom", part))?;
        Ok(match self.msgtype {
            MsgType::Text => {
                http::check_len("wecom", part, text, TEXT_MAX)?;
                let mut t = json!({"content": text});
                if !self.mentioned_mobile_list.is_empty() {
                    t["mentioned_mobile_list"] = json!(self.mentioned_mobile_list);
                }
                json!({"msgtype": "text", "text": t})
            }
            MsgType::Markdown => {
                http::check_len("wecom", part, text, MARKDOWN_MAX)?;
                json!({"msgtype": "markdown", "markdown": {"content": text}})
            }
        })
    }
}

#[async_trait]
impl Action for WeComAction {
    fn kind(&self) -> &str {
        "wecom"
    }

    async fn execute(&self, delivery: &Delivery) -> Outcome {
        let payload = match self.payload(delivery) {
            Ok(p) => p,
            Err(o) => return o,
        };
        let mut url = self.url.clone();
        url.query_pairs_mut().append_pair("key", self.key.expose());
        let request = self.client.post(url).json_body(&payload);
        let reply = match http::send(request).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        http::RobotReply { robot: "wecom", code_fields: &["errcode"], msg_fields: &["errmsg"], retryable: &[45009, -1] }
            .outcome(&reply)
    }

    fn parts(&self) -> Option<&[&str]> {
        Some(match self.msgtype {
            MsgType::Text => &["text"],
            MsgType::Markdown => &["markdown"],
        })
    }

    fn max_rate_per_second(&self) -> Option<f64> {
        Some(WECOM_RATE_PER_SECOND)
    }
}

/// The JSON Schema of this action's config (see [`segkit::spec::config_schema`]).
pub(crate) fn config_schema_variant() -> serde_json::Value {
    segkit::spec::config_schema::variant::<Config>(&["wecom"])
}
