//! [`SmsAction`]: text messages through an [`SmsProvider`] — a templated HTTP API or Aliyun `SendSms`.

use std::collections::BTreeMap;
use std::fmt::Debug;

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use serde_json::{json, Value};

use segkit::Result;

use crate::http::{self, JsonBody, Secret};
use crate::{Action, Delivery, Outcome};

/// Sends one text message; implemented per SMS provider.
#[async_trait]
pub trait SmsProvider: Send + Sync + Debug {
    /// The provider's name, e.g. `aliyun`.
    fn name(&self) -> &str;

    /// Sends `delivery` to the phone number `to` (already checked to look like one) and classifies the
    /// outcome.
    async fn send(&self, to: &str, delivery: &Delivery) -> Outcome;

    /// The template parts the provider reads.
    fn parts(&self) -> &[&str];
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    #[allow(dead_code)]
    r#type: String,
    #[serde(default)]
    to_attribute: Option<String>,
    provider: ProviderConfig,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
enum ProviderConfig {
    Http {
        url: String,
        #[serde(default)]
        method: Option<String>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        json: Option<BTreeMap<String, String>>,
        #[serde(default)]
        form: Option<BTreeMap<String, String>>,
    },
    Aliyun {
        access_key_id: String,
        access_key_secret: String,
        sign_name: String,
        template_code: String,
        #[serde(default)]
        endpoint: Option<String>,
        #[serde(default)]
        region_id: Option<String>,
    },
}

/// Sends a text message per delivery to the phone number in attribute `to_attribute` (default `phone`).
///
/// Config: `{"type": "sms", "to_attribute": "phone", "timeout_ms": 10000, "provider": {"kind": …}}` with one of
///
/// - `{"kind": "http", "url": "https://…", "method": "POST", "headers": {…}, "json": {"to": "{to}", "text":
///   "{text}"}}` (or `"form": {…}` for a form post): a templated HTTP API. Each template value may hold
///   `{to}`, `{text}` (the `text` part), `{idempotency_key}` and `{entity_key}`; 2xx is delivered, statuses are
///   classified as for webhooks.
/// - `{"kind": "aliyun", "access_key_id": "env:…", "access_key_secret": "env:…", "sign_name": "…",
///   "template_code": "SMS_…", "endpoint": "https://dysmsapi.aliyuncs.com", "region_id": "cn-hangzhou"}`:
///   Aliyun `SendSms` (RPC API 2017-05-25, signature v1: HMAC-SHA1 of the canonicalized query, see
///   [`aliyun_signature`]). `TemplateParam` is the `body` part (a JSON object) when present; `OutId` is the
///   idempotency key. `Code` `OK` is delivered (receipt: the `BizId`); throttling codes are retryable.
///
/// A missing or malformed phone number (`+` and 5 to 20 digits, spaces and dashes ignored) is
/// [`Outcome::Permanent`].
#[derive(Debug)]
pub struct SmsAction {
    to_attribute: String,
    provider: Box<dyn SmsProvider>,
}

impl SmsAction {
    /// An action sending through `provider` to the number in attribute `to_attribute`.
    pub fn new(to_attribute: impl Into<String>, provider: Box<dyn SmsProvider>) -> Self {
        SmsAction { to_attribute: to_attribute.into(), provider }
    }

    /// Builds the action from its JSON config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let c: Config = segkit::action::parse_config(config)?;
        let client = http::client(http::timeout(c.timeout_ms)?)?;
        let provider: Box<dyn SmsProvider> = match c.provider {
            ProviderConfig::Http { url, method, headers, json, form } => {
                let url = http::check_url("provider.url", &url)?;
                let method = match method.as_deref().map(str::to_ascii_uppercase).as_deref() {
                    None | Some("POST") => reqwest::Method::POST,
                    Some("PUT") => reqwest::Method::PUT,
                    Some("GET") => reqwest::Method::GET,
                    Some(m) => {
                        return Err(crate::common::definition(
                            "action.provider.method",
                            format!("`{m}` is not one of POST, PUT, GET"),
                        ))
                    }
                };
                let body = match (json, form) {
                    (Some(j), None) => HttpBody::Json(j),
                    (None, Some(f)) => HttpBody::Form(f),
                    (None, None) => HttpBody::Json(BTreeMap::from([
                        ("to".to_string(), "{to}".to_string()),
                        ("text".to_string(), "{text}".to_string()),
                    ])),
                    (Some(_), Some(_)) => {
                        return Err(crate::common::definition("action.provider", "give `json` or `form`, not both"))
                    }
                };
                Box::new(HttpSmsProvider {
                    url,
                    method,
                    headers: http::headers("provider.headers", &headers)?,
                    body,
                    client,
                })
            }
            ProviderConfig::Aliyun {
                access_key_id,
                access_key_secret,
                sign_name,
                template_code,
                endpoint,
                region_id,
            } => {
                let endpoint = endpoint.as_deref().unwrap_or("https://dysmsapi.aliyuncs.com/");
                Box::new(AliyunSms {
                    endpoint: http::check_url("provider.endpoint", endpoint)?,
                    access_key_id: Secret::resolve("provider.access_key_id", &access_key_id)?,
                    access_key_secret: Secret::resolve("provider.access_key_secret", &access_key_secret)?,
                    sign_name,
                    template_code,
                    region_id: region_id.unwrap_or_else(|| "cn-hangzhou".into()),
                    client,
                })
            }
        };
        Ok(SmsAction { to_attribute: c.to_attribute.unwrap_or_else(|| "phone".into()), provider })
    }
}

/// A phone number normalized to `+`/digits, or `None` if it does not look like one.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let s: String = raw.trim().chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')')).collect();
    let digits = s.strip_prefix('+').unwrap_or(&s);
    (5..=20).contains(&digits.len()).then_some(())?;
    digits.chars().all(|c| c.is_ascii_digit()).then_some(s)
}

#[async_trait]
impl Action for SmsAction {
    fn kind(&self) -> &str {
        "sms"
    }

    async fn execute(&self, delivery: &Delivery) -> Outcome {
        let Some(raw) = delivery.attribute_text(&self.to_attribute) else {
            return Outcome::Permanent {
                reason: format!("sms: the entity has no `{}` attribute to send to", self.to_attribute),
            };
        };
        let Some(to) = normalize_phone(&raw) else {
            return Outcome::Permanent {
                reason: format!("sms: the `{}` attribute is not a valid phone number", self.to_attribute),
            };
        };
        self.provider.send(&to, delivery).await
    }

    fn parts(&self) -> Option<&[&str]> {
        Some(self.provider.parts())
    }
}

#[derive(Debug)]
enum HttpBody {
    Json(BTreeMap<String, String>),
    Form(BTreeMap<String, String>),
}

/// The generic templated-HTTP provider (`kind: "http"`).
#[derive(Debug)]
struct HttpSmsProvider {
    url: url::Url,
    method: reqwest::Method,
    headers: reqwest::header::HeaderMap,
    body: HttpBody,
    client: reqwest::Client,
}

fn fill(template: &str, to: &str, text: &str, delivery: &Delivery) -> String {
    // One pass, so a value containing `{to}` is never expanded again.
    let mut out = String::with_capacity(template.len() + text.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let (value, len) = [
            ("{to}", to),
            ("{text}", text),
            ("{idempotency_key}", delivery.idempotency_key.as_str()),
            ("{entity_key}", delivery.entity_key.as_str()),
        ]
        .into_iter()
        .find(|(p, _)| after.starts_with(p))
        .map(|(p, v)| (v, p.len()))
        .unwrap_or(("{", 1));
        out.push_str(value);
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

#[async_trait]
impl SmsProvider for HttpSmsProvider {
    fn name(&self) -> &str {
        "http"
    }

    async fn send(&self, to: &str, delivery: &Delivery) -> Outcome {
        let Some(text) = delivery.part("text") else { return http::missing_part("sms", "text") };
        let request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone())
            .header("Idempotency-Key", delivery.idempotency_key.as_str());
        let request = match &self.body {
            HttpBody::Json(fields) => {
                let body: serde_json::Map<String, Value> =
                    fields.iter().map(|(k, v)| (k.clone(), json!(fill(v, to, text, delivery)))).collect();
                request.json_body(&Value::Object(body))
            }
            HttpBody::Form(fields) => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in fields {
                    form.append_pair(k, &fill(v, to, text, delivery));
                }
                request.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(form.finish())
            }
        };
        let reply = match http::send(request).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        http::classify_status(&reply)
            .unwrap_or_else(|| Outcome::Delivered { receipt: Some(format!("HTTP {}", reply.status.as_u16())) })
    }

    fn parts(&self) -> &[&str] {
        &["text"]
    }
}

/// Aliyun SMS `SendSms` (`kind: "aliyun"`).
#[derive(Debug)]
struct AliyunSms {
    endpoint: url::Url,
    access_key_id: Secret,
    access_key_secret: Secret,
    sign_name: String,
    template_code: String,
    region_id: String,
    client: reqwest::Client,
}

/// RFC 3986 unreserved characters stay; everything else is percent-encoded (Aliyun's `percentEncode`).
const ALIYUN_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// Aliyun's `percentEncode`: UTF-8, RFC 3986 (space as `%20`, `*` as `%2A`, `~` kept).
pub fn aliyun_percent_encode(s: &str) -> String {
    utf8_percent_encode(s, ALIYUN_ENCODE).to_string()
}

/// Aliyun RPC signature v1 of `params` (all query parameters but `Signature`) for `method` (`GET`):
/// base64(HMAC-SHA1(`<secret>&`, `<method>&%2F&<percentEncode(canonicalized query)>`)), where the
/// canonicalized query is the parameters sorted by name, each `percentEncode(k)=percentEncode(v)`, joined by `&`.
pub fn aliyun_signature(method: &str, params: &BTreeMap<String, String>, access_key_secret: &str) -> String {
    let canonical = params
        .iter()
        .map(|(k, v)| format!("{}={}", aliyun_percent_encode(k), aliyun_percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let to_sign = format!("{method}&{}&{}", aliyun_percent_encode("/"), aliyun_percent_encode(&canonical));
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(format!("{access_key_secret}&").as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[async_trait]
impl SmsProvider for AliyunSms {
    fn name(&self) -> &str {
        "aliyun"
    }

    async fn send(&self, to: &str, delivery: &Delivery) -> Outcome {
        let mut params = BTreeMap::from([
            ("AccessKeyId", self.access_key_id.expose().to_string()),
            ("Action", "SendSms".into()),
            ("Format", "JSON".into()),
            ("OutId", delivery.idempotency_key.clone()),
            ("PhoneNumbers", to.trim_start_matches('+').to_string()),
            ("RegionId", self.region_id.clone()),
            ("SignName", self.sign_name.clone()),
            ("SignatureMethod", "HMAC-SHA1".into()),
            ("SignatureNonce", uuid::Uuid::new_v4().to_string()),
            ("SignatureVersion", "1.0".into()),
            ("TemplateCode", self.template_code.clone()),
            ("Timestamp", chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            ("Version", "2017-05-25".into()),
        ])
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect::<BTreeMap<String, String>>();
        if let Some(body) = delivery.part("body") {
            match serde_json::from_str::<Value>(body) {
                Ok(v @ Value::Object(_)) => {
                    params.insert("TemplateParam".into(), v.to_string());
                }
                _ => {
                    return Outcome::Permanent {
                        reason: "sms: the `body` part (Aliyun TemplateParam) must be a JSON object".into(),
                    }
                }
            }
        }
        let signature = aliyun_signature("GET", &params, self.access_key_secret.expose());
        let mut query = params
            .iter()
            .map(|(k, v)| format!("{}={}", aliyun_percent_encode(k), aliyun_percent_encode(v)))
            .collect::<Vec<_>>();
        query.push(format!("Signature={}", aliyun_percent_encode(&signature)));
        let mut url = self.endpoint.clone();
        url.set_query(Some(&query.join("&")));
        let reply = match http::send(self.client.get(url)).await {
            Ok(r) => r,
            Err(o) => return o,
        };
        // Aliyun reports errors in the JSON body (with 4xx/5xx statuses); read the code first.
        let body: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
        let code = body.get("Code").and_then(Value::as_str);
        let message = body.get("Message").and_then(Value::as_str).unwrap_or("");
        match code {
            Some("OK") if reply.status.is_success() => {
                Outcome::Delivered { receipt: body.get("BizId").and_then(Value::as_str).map(str::to_string) }
            }
            Some(code)
                if code.starts_with("Throttling")
                    || code == "isv.BUSINESS_LIMIT_CONTROL"
                    || code == "ServiceUnavailable"
                    || code == "InternalError" =>
            {
                Outcome::Retryable {
                    reason: format!("sms: aliyun {code}: {message}"),
                    retry_after: http::retry_after(&reply.headers),
                }
            }
            Some(code) => Outcome::Permanent { reason: format!("sms: aliyun {code}: {message}") },
            None => http::classify_status(&reply).unwrap_or_else(|| Outcome::Retryable {
                reason: format!("sms: aliyun reply without Code{}", http::quote(&reply.body)),
                retry_after: None,
            }),
        }
    }

    fn parts(&self) -> &[&str] {
        &["body"]
    }
}

/// The JSON Schema of this action's config (see [`segkit::spec::config_schema`]).
pub(crate) fn config_schema_variant() -> serde_json::Value {
    segkit::spec::config_schema::variant::<Config>(&["sms"])
}
