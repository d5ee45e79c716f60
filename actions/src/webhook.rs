//! [`WebhookAction`]: a signed JSON HTTP request per delivery.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use segkit::Result;

use crate::http::{self, Secret};
use crate::http1;
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
///
/// A plain `http://` URL (without an `HTTP_PROXY` / `ALL_PROXY` in the environment) is sent by a lean HTTP/1.1
/// client: kept-alive connections reused across deliveries, the request written as ready-made bytes, the reply
/// read only for its status, `Retry-After` and a bounded body. `https://` URLs (and proxied ones) go through
/// reqwest. Both classify outcomes the same way.
#[derive(Debug)]
pub struct WebhookAction {
    url: url::Url,
    method: reqwest::Method,
    headers: reqwest::header::HeaderMap,
    secret: Option<Secret>,
    timeout: Duration,
    client: reqwest::Client,
    lean: Option<Lean>,
}

/// The lean plain-http path: the connection pool and the request head up to the per-delivery headers.
#[derive(Debug)]
struct Lean {
    pool: http1::Pool,
    /// `<METHOD> <target> HTTP/1.1`, `host`, `user-agent`, `accept`, the configured headers and `content-type`,
    /// each line ending in CRLF.
    head: Vec<u8>,
}

/// Whether reqwest would send plain-http requests through a proxy named in the environment.
fn proxy_in_env() -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
}

impl Lean {
    /// The lean path for `url` when it is plain http and not proxied.
    fn new(
        url: &url::Url,
        method: &reqwest::Method,
        headers: &reqwest::header::HeaderMap,
        timeout: Duration,
    ) -> Option<Lean> {
        if url.scheme() != "http" || proxy_in_env() {
            return None;
        }
        let host = match url.host()? {
            url::Host::Domain(d) => d.to_string(),
            url::Host::Ipv4(a) => a.to_string(),
            url::Host::Ipv6(a) => a.to_string(),
        };
        let port = url.port_or_known_default()?;
        let mut head = Vec::with_capacity(256);
        head.extend_from_slice(method.as_str().as_bytes());
        head.push(b' ');
        head.extend_from_slice(url.path().as_bytes());
        if let Some(q) = url.query() {
            head.push(b'?');
            head.extend_from_slice(q.as_bytes());
        }
        head.extend_from_slice(b" HTTP/1.1\r\n");
        if !headers.contains_key(reqwest::header::HOST) {
            head.extend_from_slice(b"host: ");
            head.extend_from_slice(url.host_str()?.as_bytes());
            if let Some(p) = url.port() {
                head.extend_from_slice(format!(":{p}").as_bytes());
            }
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(
            concat!("user-agent: segkit/", env!("CARGO_PKG_VERSION"), "\r\naccept: */*\r\n").as_bytes(),
        );
        for (name, value) in headers {
            // The body's framing and the connection are the client's.
            if matches!(name.as_str(), "content-length" | "transfer-encoding" | "connection") {
                continue;
            }
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"content-type: application/json\r\n");
        let pool = http1::Pool::new(host, port, timeout.min(Duration::from_secs(10)));
        Some(Lean { pool, head })
    }
}

/// Whether `value` can be sent as a header value as it is (visible ASCII, spaces and tabs).
fn header_safe(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
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
        let lean = Lean::new(&url, &method, &headers, timeout);
        Ok(WebhookAction { url, method, headers, secret, timeout, client: http::client(timeout)?, lean })
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
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

impl WebhookAction {
    /// Sends `body` for `delivery` on the lean plain-http path.
    async fn execute_lean(&self, lean: &Lean, delivery: &Delivery, body: &str) -> Outcome {
        if !header_safe(&delivery.idempotency_key) {
            return Outcome::Permanent { reason: "webhook: the idempotency key cannot be sent as a header".into() };
        }
        let mut request = Vec::with_capacity(lean.head.len() + body.len() + 160);
        request.extend_from_slice(&lean.head);
        request.extend_from_slice(b"idempotency-key: ");
        request.extend_from_slice(delivery.idempotency_key.as_bytes());
        if let Some(secret) = &self.secret {
            let t = chrono::Utc::now().timestamp();
            request.extend_from_slice(b"\r\nx-segkit-signature: ");
            request.extend_from_slice(signature(secret.expose().as_bytes(), t, body).as_bytes());
        }
        request.extend_from_slice(format!("\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body.as_bytes());
        let reply = match tokio::time::timeout(self.timeout, lean.pool.exchange(&request)).await {
            Ok(Ok(r)) => r,
            Ok(Err(f)) => return lean_failure(f, self.timeout),
            Err(_) => return lean_failure(http1::Failure::Timeout, self.timeout),
        };
        if (200..300).contains(&reply.status) {
            return Outcome::Delivered { receipt: Some(format!("HTTP {}", reply.status)) };
        }
        let Ok(status) = reqwest::StatusCode::from_u16(reply.status) else {
            return Outcome::Retryable {
                reason: format!("request failed: invalid HTTP status {}", reply.status),
                retry_after: None,
            };
        };
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(v) = reply.retry_after.and_then(|v| reqwest::header::HeaderValue::from_str(&v).ok()) {
            headers.insert(reqwest::header::RETRY_AFTER, v);
        }
        let reply = http::Reply { status, headers, body: String::from_utf8_lossy(&reply.body).into_owned() };
        http::classify_status(&reply)
            .unwrap_or_else(|| Outcome::Delivered { receipt: Some(format!("HTTP {}", status.as_u16())) })
    }
}

/// The outcome of a lean exchange that failed, worded like reqwest's (`timed out`, `connection failed`,
/// `request failed`): all retryable.
fn lean_failure(f: http1::Failure, timeout: Duration) -> Outcome {
    let reason = match f {
        http1::Failure::Connect(e) => format!("connection failed: {e}"),
        http1::Failure::Timeout => format!("timed out: no complete reply within {} ms", timeout.as_millis()),
        http1::Failure::Io(e) => format!("request failed: {e}"),
        http1::Failure::Protocol(m) => format!("request failed: {m}"),
    };
    Outcome::Retryable { reason, retry_after: None }
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
        if let Some(lean) = &self.lean {
            return self.execute_lean(lean, delivery, &body).await;
        }
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
