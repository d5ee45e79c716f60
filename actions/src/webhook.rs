//! [`WebhookAction`]: a signed JSON HTTP request per delivery.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use segkit::Result;

use crate::http::{self, Secret};
use crate::{Action, Delivery, Outcome};

/// The header carrying the signature, `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "X-Segkit-Signature";

/// The config of a [`WebhookAction`]:
/// `{"type": "webhook", "url": "https://…", "method": "POST", "headers": {…}, "secret": "env:HOOK_SECRET",
/// "timeout_ms": 10000}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    #[allow(dead_code)]
    r#type: String,
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// Sends each delivery as a JSON HTTP request (`POST` unless configured `PUT` or `PATCH`).
///
/// - **Body**: the `body` part, which must be valid JSON (else [`Outcome::Permanent`]); without a `body` part,
///   a JSON object of the delivery (`idempotency_key`, `origin`, `step`, `channel`, `entity`, `entity_key`,
///   `attributes`, `content`, `attempt`).
/// - **Headers**: `Content-Type: application/json`, `Idempotency-Key: <key>`, the configured `headers`
///   (values may be `env:NAME` references; credential headers such as `Authorization` must be), and with a
///   `secret` the signature header `X-Segkit-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is
///   HMAC-SHA256(secret, `"<t>.<body>"`) — see `docs/actions.md` for receiver-side checks.
/// - **Outcome**: 2xx is [`Outcome::Delivered`] (receipt `HTTP <status>`); 408, 425, 429, 5xx, timeouts and
///   connection failures are [`Outcome::Retryable`] (with `Retry-After`); other statuses (redirects
///   included) are [`Outcome::Permanent`].
#[derive(Debug)]
pub struct WebhookAction {
    url: url::Url,
    method: reqwest::Method,
    headers: reqwest::header::HeaderMap,
    secret: Option<Secret>,
    timeout: Duration,
    client: reqwest::Client,
}

impl WebhookAction {
    /// Builds the action from its JSON config (see the type's docs).
    pub fn from_config(config: &Value) -> Result<Self> {
        let c: Config = segkit::action::parse_config(config)?;
        let url = http::check_url("url", &c.url)?;
        let method = match c.method.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("POST") => reqwest::Method::POST,
            Some("PUT") => reqwest::Method::PUT,
            Some("PATCH") => reqwest::Method::PATCH,
            Some(m) => {
                return Err(crate::common::definition("action.method", format!("`{m}` is not one of POST, PUT, PATCH")))
            }
        };
        let headers = http::headers("headers", &c.headers)?;
        let secret = c.secret.as_deref().map(|s| Secret::resolve("secret", s)).transpose()?;
        let timeout = http::timeout(c.timeout_ms)?;
        Ok(WebhookAction { url, method, headers, secret, timeout, client: http::client(timeout)? })
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The JSON body sent for `delivery`, or the permanent failure of an invalid `body` part.
    pub fn body(delivery: &Delivery) -> std::result::Result<String, Outcome> {
        match delivery.part("body") {
            Some(body) => match serde_json::from_str::<serde::de::IgnoredAny>(body) {
                Ok(_) => Ok(body.to_string()),
                Err(e) => {
                    Err(Outcome::Permanent { reason: format!("webhook: the `body` part is not valid JSON: {e}") })
                }
            },
            None => Ok(json!({
                "idempotency_key": delivery.idempotency_key,
                "origin": delivery.origin,
                "step": delivery.step,
                "channel": delivery.channel,
                "entity": delivery.entity,
                "entity_key": delivery.entity_key,
                "attributes": delivery.attributes,
                "content": delivery.content,
                "attempt": delivery.attempt,
            })
            .to_string()),
        }
    }
}

/// The signature header value for `body` signed at unix time `timestamp` with `secret`:
/// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &[u8], timestamp: i64, body: &str) -> String {
    let mac = http::hmac_sha256(secret, format!("{timestamp}.{body}").as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac))
}

#[async_trait]
impl Action for WebhookAction {
    fn kind(&self) -> &str {
        "webhook"
    }

    async fn execute(&self, delivery: &Delivery) -> Outcome {
        let body = match Self::body(delivery) {
            Ok(b) => b,
            Err(o) => return o,
        };
        let mut request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        match reqwest::header::HeaderValue::from_str(&delivery.idempotency_key) {
            Ok(v) => request = request.header("Idempotency-Key", v),
            Err(_) => {
                return Outcome::Permanent { reason: "webhook: the idempotency key cannot be sent as a header".into() }
            }
        }
        if let Some(secret) = &self.secret {
            let t = chrono::Utc::now().timestamp();
            request = request.header(SIGNATURE_HEADER, signature(secret.expose().as_bytes(), t, &body));
        }
        let reply = match http::send(request.body(body)).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        http::classify_status(&reply)
            .unwrap_or_else(|| Outcome::Delivered { receipt: Some(format!("HTTP {}", reply.status.as_u16())) })
    }

    fn parts(&self) -> Option<&[&str]> {
        Some(&["body"])
    }
}

/// The JSON Schema of this action's config (see [`segkit::spec::config_schema`]).
pub(crate) fn config_schema_variant() -> serde_json::Value {
    segkit::spec::config_schema::variant::<Config>(&["webhook"])
}
