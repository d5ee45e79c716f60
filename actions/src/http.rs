//! Shared plumbing of the HTTP families: secrets, the client, bounded responses and outcome classification.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use segkit::Result;

pub use crate::common::{missing_part, Secret};
use crate::Outcome;

/// Default request timeout of every HTTP family, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Largest accepted `timeout_ms`.
pub const MAX_TIMEOUT_MS: u64 = 120_000;
/// At most this many bytes of a reply are read; the rest is ignored.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;
/// Longest excerpt of a reply quoted in an outcome reason.
const MAX_QUOTED: usize = 200;
/// Longest `Retry-After` honoured (a receiver asking for more is capped to this).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Checks `timeout_ms` (1..=MAX) and returns it as a duration.
pub fn timeout(timeout_ms: Option<u64>) -> Result<Duration> {
    let ms = timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if ms == 0 || ms > MAX_TIMEOUT_MS {
        return Err(crate::common::definition(
            "action.timeout_ms",
            format!("must be between 1 and {MAX_TIMEOUT_MS} milliseconds, got {ms}"),
        ));
    }
    Ok(Duration::from_millis(ms))
}

/// An HTTP client with the request timeout `timeout`, no redirects followed (a redirect is a failure).
pub fn client(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("segkit/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| crate::common::definition("action", format!("cannot build the HTTP client: {}", e.without_url())))
}

/// Checks that `url` is an absolute http(s) URL; `field` names the config field.
pub fn check_url(field: &str, url: &str) -> Result<url::Url> {
    let parsed = url::Url::parse(url)
        .map_err(|e| crate::common::definition(format!("action.{field}"), format!("not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(crate::common::definition(
            format!("action.{field}"),
            "the URL must start with http:// or https://",
        ));
    }
    Ok(parsed)
}

/// The status, headers and (at most [`MAX_REPLY_BYTES`] of the) body of a reply.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// Reply headers.
    pub headers: HeaderMap,
    /// The body, lossily decoded, truncated to [`MAX_REPLY_BYTES`].
    pub body: String,
}

/// Sends `request`; transport failures are classified (timeouts and connection failures are retryable).
pub async fn send(request: reqwest::RequestBuilder) -> std::result::Result<Reply, Outcome> {
    let mut response = request.send().await.map_err(transport_failure)?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_REPLY_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_REPLY_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            // The status is known; a body cut short only matters for 2xx replies we must parse.
            Err(e) if status.is_success() => return Err(transport_failure(e)),
            Err(_) => break,
        }
    }
    Ok(Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// Classifies a transport error, without its URL (URLs of robots carry keys and signatures).
pub fn transport_failure(e: reqwest::Error) -> Outcome {
    let retryable = e.is_timeout() || e.is_connect() || e.is_request() || e.is_body();
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let builder = e.is_builder();
    let reason = format!("{kind}: {}", error_chain(&e.without_url()));
    if retryable && !builder {
        Outcome::Retryable { reason, retry_after: None }
    } else {
        Outcome::Permanent { reason }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Classifies a non-2xx status: 408, 425, 429 and 5xx are retryable (with `Retry-After`), other statuses
/// permanent. `None` for 2xx.
pub fn classify_status(reply: &Reply) -> Option<Outcome> {
    let status = reply.status;
    if status.is_success() {
        return None;
    }
    let reason = format!("HTTP {}{}", status.as_u16(), quote(&reply.body));
    let retryable = matches!(status.as_u16(), 408 | 425 | 429) || status.is_server_error();
    Some(if retryable {
        Outcome::Retryable { reason, retry_after: retry_after(&reply.headers) }
    } else {
        Outcome::Permanent { reason }
    })
}

/// `: <excerpt>` of a reply body for reasons, empty for an empty body.
pub fn quote(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    let cut: String = body.chars().take(MAX_QUOTED).collect();
    let ellipsis = if cut.len() < body.len() { "…" } else { "" };
    format!(": {cut}{ellipsis}")
}

/// The `Retry-After` header as a duration: delay-seconds or an HTTP date (capped at a day).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Parses a robot's JSON reply: `Err(Outcome)` when the body is not JSON.
pub fn json_reply(reply: &Reply) -> std::result::Result<serde_json::Value, Outcome> {
    serde_json::from_str(&reply.body).map_err(|_| Outcome::Retryable {
        reason: format!("HTTP {} with a reply that is not JSON{}", reply.status.as_u16(), quote(&reply.body)),
        retry_after: None,
    })
}

/// Checks that a text part fits in `max` bytes (the receiver's limit).
pub fn check_len(kind: &str, part: &str, text: &str, max: usize) -> std::result::Result<(), Outcome> {
    if text.len() > max {
        return Err(Outcome::Permanent {
            reason: format!("{kind}: the `{part}` part is {} bytes, more than the {max} bytes allowed", text.len()),
        });
    }
    Ok(())
}

/// Resolves config headers: values that are `env:NAME` references are read from the environment; a header
/// that carries credentials (`Authorization`, `*-Token`, `*-Api-Key`, …) must be such a reference.
pub fn headers(field: &str, headers: &std::collections::BTreeMap<String, String>) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let path = format!("action.{field}.{name}");
        let header_name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| crate::common::definition(&path, "not a valid header name"))?;
        let normalized = name.to_ascii_lowercase().replace('-', "_");
        let credential = matches!(normalized.as_str(), "authorization" | "proxy_authorization" | "cookie")
            || segkit::sources::is_secret_field(&normalized)
            || normalized.ends_with("_key");
        let is_ref = value.starts_with("env:");
        let value = if is_ref {
            Secret::resolve(&format!("{field}.{name}"), value)?.expose().to_string()
        } else if credential {
            return Err(crate::common::definition(
                &path,
                "this header carries credentials and must be a reference such as \"env:MY_TOKEN\", not inline",
            ));
        } else {
            value.clone()
        };
        let mut header_value = reqwest::header::HeaderValue::from_str(&value)
            .map_err(|_| crate::common::definition(&path, "not a valid header value"))?;
        header_value.set_sensitive(credential || is_ref);
        map.insert(header_name, header_value);
    }
    Ok(map)
}

/// The message format a chat robot sends: plain `text` or `markdown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MsgType {
    /// Plain text from the `text` part.
    #[default]
    Text,
    /// Markdown from the `markdown` part (and a `title` part where the robot needs one).
    Markdown,
}

impl MsgType {
    /// The part this format reads.
    pub fn part(self) -> &'static str {
        match self {
            MsgType::Text => "text",
            MsgType::Markdown => "markdown",
        }
    }
}

/// The `errcode`/`code` of a robot's JSON reply and its message.
pub fn robot_code(reply: &Value, code_fields: &[&str], msg_fields: &[&str]) -> Option<(i64, String)> {
    let code = code_fields.iter().find_map(|f| reply.get(*f).and_then(Value::as_i64))?;
    let msg = msg_fields.iter().find_map(|f| reply.get(*f).and_then(Value::as_str)).unwrap_or("").to_string();
    Some((code, msg))
}

/// How a robot's JSON reply is read: the fields holding its code and message, what the code is called in
/// reasons (`errcode`, `code`), and the codes that mean "try again later" (rate limits, busy).
pub struct RobotReply<'a> {
    /// The robot's name in reasons (`wecom`, `dingtalk`, `feishu`).
    pub robot: &'a str,
    /// Fields that may hold the numeric code, first found wins.
    pub code_fields: &'a [&'a str],
    /// Fields that may hold the message, first found wins.
    pub msg_fields: &'a [&'a str],
    /// Codes that are [`Outcome::Retryable`]; 0 is delivered, any other code permanent.
    pub retryable: &'a [i64],
}

impl RobotReply<'_> {
    /// Classifies a robot's reply: the HTTP status first ([`classify_status`]), then the JSON body's code.
    /// A reply without a code is retryable (the robot answered something other than its API).
    pub fn outcome(&self, reply: &Reply) -> Outcome {
        if let Some(o) = classify_status(reply) {
            return o;
        }
        let body = match json_reply(reply) {
            Ok(b) => b,
            Err(o) => return o,
        };
        let (robot, name) = (self.robot, self.code_fields[0]);
        match robot_code(&body, self.code_fields, self.msg_fields) {
            Some((0, _)) => Outcome::Delivered { receipt: Some(format!("{name} 0")) },
            Some((code, msg)) if self.retryable.contains(&code) => {
                Outcome::Retryable { reason: format!("{robot}: {name} {code}: {msg}"), retry_after: None }
            }
            Some((code, msg)) => Outcome::Permanent { reason: format!("{robot}: {name} {code}: {msg}") },
            None => Outcome::Retryable {
                reason: format!("{robot}: reply without {name}{}", quote(&reply.body)),
                retry_after: None,
            },
        }
    }
}

/// Unix time now, in seconds.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

use serde_json::Value;

/// JSON request bodies without reqwest's `json` feature.
pub trait JsonBody {
    /// Sets `value` as the JSON body.
    fn json_body(self, value: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, value: &Value) -> Self {
        self.header(reqwest::header::CONTENT_TYPE, "application/json").body(value.to_string())
    }
}
