//! [`SmtpAction`]: mail over SMTP (lettre), plain or HTML multipart.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;
use serde_json::Value;

use segkit::Result;

use crate::{Action, Delivery, Outcome};

/// Default SMTP timeout per command, in milliseconds.
const DEFAULT_TIMEOUT_MS: u64 = 30_000;
const MAX_TIMEOUT_MS: u64 = 120_000;
/// The largest mail body accepted (text + html parts), in bytes.
pub const MAX_MAIL_BYTES: usize = 10 * 1024 * 1024;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which is required (default port 587).
    #[default]
    Starttls,
    /// Implicit TLS from the first byte (SMTPS, default port 465).
    Tls,
    /// No encryption at all (default port 25): only for loopback or a trusted relay.
    None,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    #[allow(dead_code)]
    r#type: String,
    host: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    tls: SmtpTls,
    #[serde(default)]
    ca_file: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    from: String,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(default)]
    to_attribute: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// Sends one mail per delivery over SMTP.
///
/// Config: `{"type": "smtp", "host": "smtp.example.com", "port": 587, "tls": "starttls" | "tls" | "none",
/// "ca_file": "/path/ca.pem", "username": "mailer", "password": "env:SMTP_PASSWORD", "from": "Shop
/// <shop@example.com>", "reply_to": "help@example.com", "to_attribute": "email", "timeout_ms": 30000}`.
/// `ca_file` adds a PEM root certificate (a private CA); the system's web roots are trusted otherwise.
///
/// Reads the parts `subject` (required) and `text` and/or `html` (at least one; both make a
/// `multipart/alternative` mail). The recipient is the attribute `to_attribute` (default `email`). The
/// `Message-ID` is derived from the idempotency key (`<key@segkit>`, characters outside `[A-Za-z0-9._-]`
/// hex-escaped), so receivers and mail stores can drop duplicates.
///
/// Outcomes: accepted is [`Outcome::Delivered`] (receipt: the server's reply line); 4xx replies, timeouts,
/// connection and TLS failures are [`Outcome::Retryable`]; 5xx replies, an invalid recipient address and
/// missing parts are [`Outcome::Permanent`].
pub struct SmtpAction {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    endpoint: String,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    to_attribute: String,
}

impl std::fmt::Debug for SmtpAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpAction")
            .field("endpoint", &self.endpoint)
            .field("from", &self.from.to_string())
            .field("to_attribute", &self.to_attribute)
            .finish_non_exhaustive()
    }
}

fn mailbox(field: &str, value: &str) -> Result<Mailbox> {
    value
        .parse::<Mailbox>()
        .map_err(|e| crate::common::definition(format!("action.{field}"), format!("not a valid mail address: {e}")))
}

/// The `Message-ID` for an idempotency key: `<escaped-key@segkit>`.
pub fn message_id(idempotency_key: &str) -> String {
    let mut local = String::with_capacity(idempotency_key.len());
    for b in idempotency_key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            local.push(b as char);
        } else {
            local.push_str(&format!("={b:02X}"));
        }
    }
    format!("<{local}@segkit>")
}

impl SmtpAction {
    /// Builds the action from its JSON config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let c: Config = segkit::action::parse_config(config)?;
        if c.host.trim().is_empty() {
            return Err(crate::common::definition("action.host", "must not be empty"));
        }
        let ms = c.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if ms == 0 || ms > MAX_TIMEOUT_MS {
            return Err(crate::common::definition(
                "action.timeout_ms",
                format!("must be between 1 and {MAX_TIMEOUT_MS} milliseconds, got {ms}"),
            ));
        }
        let port = c.port.unwrap_or(match c.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        });
        let tls_parameters = || -> Result<TlsParameters> {
            let mut builder = TlsParameters::builder(c.host.clone());
            if let Some(path) = &c.ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| crate::common::definition("action.ca_file", format!("cannot read {path}: {e}")))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| crate::common::definition("action.ca_file", format!("not a PEM certificate: {e}")))?;
                builder = builder.add_root_certificate(cert);
            }
            builder
                .build_rustls()
                .map_err(|e| crate::common::definition("action.tls", format!("TLS setup failed: {e}")))
        };
        let tls = match c.tls {
            SmtpTls::Starttls => Tls::Required(tls_parameters()?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters()?),
            SmtpTls::None => {
                if c.ca_file.is_some() {
                    return Err(crate::common::definition("action.ca_file", "needs `tls` starttls or tls"));
                }
                Tls::None
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(Duration::from_millis(ms)));
        match (&c.username, &c.password) {
            (Some(user), Some(password)) => {
                let password = crate::common::Secret::resolve("password", password)?.expose().to_string();
                builder = builder.credentials(Credentials::new(user.clone(), password));
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(crate::common::definition("action.password", "`username` needs a `password`"))
            }
            (None, Some(_)) => {
                return Err(crate::common::definition("action.username", "`password` needs a `username`"))
            }
        }
        Ok(SmtpAction {
            transport: builder.build(),
            endpoint: format!("{}:{port}", c.host),
            from: mailbox("from", &c.from)?,
            reply_to: c.reply_to.as_deref().map(|r| mailbox("reply_to", r)).transpose()?,
            to_attribute: c.to_attribute.unwrap_or_else(|| "email".into()),
        })
    }

    /// The mail built for `delivery`, or the permanent failure that prevents it.
    pub fn message(&self, delivery: &Delivery) -> std::result::Result<Message, Outcome> {
        let permanent = |reason: String| Outcome::Permanent { reason };
        let Some(raw_to) = delivery.attribute_text(&self.to_attribute) else {
            return Err(permanent(format!("smtp: the entity has no `{}` attribute to send to", self.to_attribute)));
        };
        let to: Mailbox = raw_to.trim().parse().map_err(|e| {
            permanent(format!("smtp: the `{}` attribute is not a valid mail address: {e}", self.to_attribute))
        })?;
        let subject = delivery.part("subject").ok_or_else(|| crate::common::missing_part("smtp", "subject"))?;
        let text = delivery.part("text");
        let html = delivery.part("html");
        let size = text.map_or(0, str::len) + html.map_or(0, str::len) + subject.len();
        if size > MAX_MAIL_BYTES {
            return Err(permanent(format!("smtp: the mail is {size} bytes, more than {MAX_MAIL_BYTES}")));
        }
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject.replace(['\r', '\n'], " "))
            .message_id(Some(message_id(&delivery.idempotency_key)));
        if let Some(r) = &self.reply_to {
            builder = builder.reply_to(r.clone());
        }
        let built = match (text, html) {
            (Some(t), Some(h)) => builder.multipart(MultiPart::alternative_plain_html(t.to_string(), h.to_string())),
            (Some(t), None) => builder.singlepart(SinglePart::plain(t.to_string())),
            (None, Some(h)) => {
                builder.singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(h.to_string()))
            }
            (None, None) => return Err(crate::common::missing_part("smtp", "text` or `html")),
        };
        built.map_err(|e| permanent(format!("smtp: cannot build the mail: {e}")))
    }
}

#[async_trait]
impl Action for SmtpAction {
    fn kind(&self) -> &str {
        "smtp"
    }

    async fn execute(&self, delivery: &Delivery) -> Outcome {
        let message = match self.message(delivery) {
            Ok(m) => m,
            Err(o) => return o,
        };
        match self.transport.send(message).await {
            Ok(response) => Outcome::Delivered {
                receipt: Some(format!("{} {}", response.code(), response.message().collect::<Vec<_>>().join(" "))),
            },
            Err(e) => {
                let reason = format!("smtp {}: {e}", self.endpoint);
                if e.is_permanent() {
                    Outcome::Permanent { reason }
                } else {
                    Outcome::Retryable { reason, retry_after: None }
                }
            }
        }
    }

    fn parts(&self) -> Option<&[&str]> {
        Some(&["subject", "text", "html"])
    }
}

/// The JSON Schema of this action's config (see [`segkit::spec::config_schema`]).
pub(crate) fn config_schema_variant() -> serde_json::Value {
    segkit::spec::config_schema::variant::<Config>(&["smtp"])
}
