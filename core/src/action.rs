//! The `Action` plugin trait: what a workflow does for one entity (send an email, call a webhook, …), and the
//! open registry that builds actions from their serde configs (tagged by `type`).
//!
//! Core does not know action families: `segkit_actions::registry()` registers the built-in ones (`smtp`,
//! `webhook`, `wecom`, …) into an [`ActionRegistry`]; a third party registers its own `type` the same way. A
//! config holds secrets as references (`env:NAME`), never inline — [`check_no_inline_secrets`] refuses them at
//! definition, exactly as for sources.
//!
//! # Rendered content
//!
//! A workflow step renders its template into named parts ([`Delivery::content`]). Each action documents which
//! parts it reads; the conventional names are `subject`, `text`, `html`, `markdown`, `title` and `body` (a JSON
//! body for webhooks). A part the action needs and the delivery lacks is a [`Outcome::Permanent`] failure.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// One delivery to perform: who, what, and the idempotency key that must travel to the receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Unique per (workflow, trigger version, step, entity key); receivers use it to drop duplicates.
    pub idempotency_key: String,
    /// The workflow (or segment, for direct deliveries) that caused it.
    pub origin: String,
    /// The step of the workflow that produced it (empty outside workflows).
    #[serde(default)]
    pub step: String,
    /// The channel the step sends on (the name of the action in the workflow, e.g. `email`).
    #[serde(default)]
    pub channel: String,
    /// The entity type.
    pub entity: String,
    /// The entity's key, as text.
    pub entity_key: String,
    /// The entity's attributes (pii attributes included: actions need addresses).
    pub attributes: serde_json::Map<String, Value>,
    /// The rendered template parts by name (`subject`, `text`, `html`, `body`, …); empty without a template.
    #[serde(default)]
    pub content: BTreeMap<String, String>,
    /// Which attempt this is, from 1.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
}

fn first_attempt() -> u32 {
    1
}

impl Delivery {
    /// A first-attempt delivery of `entity` `entity_key` from `origin`, without attributes or content.
    pub fn new(
        idempotency_key: impl Into<String>,
        origin: impl Into<String>,
        entity: impl Into<String>,
        entity_key: impl Into<String>,
    ) -> Self {
        Delivery {
            idempotency_key: idempotency_key.into(),
            origin: origin.into(),
            step: String::new(),
            channel: String::new(),
            entity: entity.into(),
            entity_key: entity_key.into(),
            attributes: Default::default(),
            content: BTreeMap::new(),
            attempt: 1,
        }
    }

    /// The rendered part `name`, if the template produced it.
    pub fn part(&self, name: &str) -> Option<&str> {
        self.content.get(name).map(String::as_str)
    }

    /// The attribute `name` as text (strings as they are, other JSON values printed), if present and not null.
    pub fn attribute_text(&self, name: &str) -> Option<String> {
        match self.attributes.get(name)? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            v => Some(v.to_string()),
        }
    }
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Outcome {
    /// Delivered; optional receipt (message id, HTTP status…).
    Delivered {
        /// Receiver's reference, if any.
        receipt: Option<String>,
    },
    /// Failed but may succeed later (429, 503, timeouts, connection resets).
    Retryable {
        /// Why.
        reason: String,
        /// When to retry at the earliest, if the receiver said.
        retry_after: Option<Duration>,
    },
    /// Failed for good (bad address, rejected content, other 4xx).
    Permanent {
        /// Why.
        reason: String,
    },
}

/// Executes deliveries. Dispatch is at-least-once, so implementations should pass the idempotency key on.
#[async_trait]
pub trait Action: Send + Sync + Debug {
    /// The action type, e.g. `jsonl`, `webhook`, `smtp`.
    fn kind(&self) -> &str;

    /// Performs one delivery and classifies the outcome. Never panics on bad content: a missing part or a bad
    /// address is [`Outcome::Permanent`].
    async fn execute(&self, delivery: &Delivery) -> Outcome;

    /// The template parts this action reads (`["subject", "text", "html"]` for mail), so a workflow can check
    /// its templates when it is defined. Default: unknown (no check).
    fn parts(&self) -> Option<&[&str]> {
        None
    }

    /// The rate this action's receiver allows, in deliveries per second (e.g. a robot's published limit),
    /// which the dispatcher must not exceed for this action. Default: no limit of its own.
    fn max_rate_per_second(&self) -> Option<f64> {
        None
    }
}

/// Builds actions from their JSON configs.
pub trait ActionFactory: Send + Sync + Debug {
    /// Builds the action `config` describes. Errors name the offending field as [`Error::Definition`] with a
    /// path such as `action.timeout_ms`.
    fn build(&self, config: &Value) -> Result<Arc<dyn Action>>;
}

/// A builder for one action `type`.
pub type ActionBuilder = Arc<dyn Fn(&Value) -> Result<Arc<dyn Action>> + Send + Sync>;

/// An [`ActionFactory`] that picks a builder by the config's `type` field.
///
/// ```
/// use std::sync::Arc;
/// use segkit::action::{ActionFactory, ActionRegistry};
/// let mut registry = ActionRegistry::new();
/// registry.register("null", |_config| Err(segkit::Error::Definition { path: "action".into(), message: "not built here".into() }));
/// assert_eq!(registry.types(), vec!["null"]);
/// let e = registry.build(&serde_json::json!({"type": "nul"})).unwrap_err();
/// assert!(e.to_string().contains("did you mean `null`"), "{e}");
/// ```
#[derive(Clone, Default)]
pub struct ActionRegistry {
    builders: BTreeMap<String, ActionBuilder>,
}

impl Debug for ActionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActionRegistry").field("types", &self.types()).finish()
    }
}

impl ActionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or replaces) the builder for configs whose `type` is `type_name` (matched ignoring ASCII
    /// case). The builder receives the whole config, `type` included.
    pub fn register(
        &mut self,
        type_name: &str,
        builder: impl Fn(&Value) -> Result<Arc<dyn Action>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.builders.insert(type_name.to_ascii_lowercase(), Arc::new(builder));
        self
    }

    /// The registered types, sorted.
    pub fn types(&self) -> Vec<&str> {
        self.builders.keys().map(String::as_str).collect()
    }
}

impl ActionFactory for ActionRegistry {
    fn build(&self, config: &Value) -> Result<Arc<dyn Action>> {
        let Value::Object(m) = config else {
            return Err(Error::definition("action", "the config must be an object with a `type`"));
        };
        let t = match m.get("type") {
            Some(Value::String(t)) => t,
            Some(_) => return Err(Error::definition("action.type", "`type` must be a string")),
            None => {
                return Err(Error::definition(
                    "action.type",
                    format!("missing `type` (one of: {})", self.types().join(", ")),
                ))
            }
        };
        check_no_inline_secrets(config)?;
        match self.builders.get(&t.to_ascii_lowercase()) {
            Some(b) => b(config),
            None => {
                let hint = crate::error::hint(t, self.types());
                Err(Error::definition(
                    "action.type",
                    format!("unknown action type `{t}`{hint} (registered: {})", self.types().join(", ")),
                ))
            }
        }
    }
}

/// Deserializes an action config into `T` with serde; errors name the field path (`action.timeout_ms: …`).
///
/// ```
/// #[derive(serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Config { r#type: String, url: String, timeout_ms: Option<u64> }
/// let e = segkit::action::parse_config::<Config>(
///     &serde_json::json!({"type": "webhook", "url": "http://x", "timeout_ms": "ten"})).err().unwrap();
/// assert!(e.to_string().starts_with("invalid definition of action.timeout_ms: invalid type"), "{e}");
/// ```
pub fn parse_config<T: serde::de::DeserializeOwned>(config: &Value) -> Result<T> {
    serde_path_to_error::deserialize(config).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { "action".to_string() } else { format!("action.{path}") };
        Error::definition(path, e.into_inner().to_string())
    })
}

/// Resolves a secret reference in an action config: `env:NAME` is the value of environment variable `NAME`;
/// anything else is returned as it is. `field` names the config field in the error (the value is never shown).
pub fn resolve_secret(field: &str, value: &str) -> Result<String> {
    match value.strip_prefix("env:") {
        Some(name) => std::env::var(name).map_err(|_| {
            Error::definition(
                format!("action.{field}"),
                format!("environment variable `{name}` (referenced as env:{name}) is not set"),
            )
        }),
        None => Ok(value.to_string()),
    }
}

/// Refuses inline secrets in an action config, as [`crate::sources::check_no_inline_secrets`] does for
/// sources; the error path starts with `action`.
pub fn check_no_inline_secrets(config: &Value) -> Result<()> {
    crate::sources::check_no_inline_secrets(config).map_err(|e| match e {
        Error::Definition { path, message } => Error::Definition {
            path: path.strip_prefix("source").map(|rest| format!("action{rest}")).unwrap_or(path),
            message,
        },
        e => e,
    })
}

/// Cuts `text` to at most [`MAX_OUTCOME_TEXT_BYTES`](crate::limits::MAX_OUTCOME_TEXT_BYTES) bytes at a character
/// boundary.
fn bounded_text(mut text: String) -> String {
    let max = crate::limits::MAX_OUTCOME_TEXT_BYTES;
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

impl Outcome {
    /// The outcome a custom action written in another language returned, in its JSON form:
    /// `{"status": "delivered", "receipt": …}`, `{"status": "retryable", "reason": …, "retry_after": <seconds>}`
    /// or `{"status": "permanent", "reason": …}`. Reasons and receipts are cut to
    /// [`MAX_OUTCOME_TEXT_BYTES`](crate::limits::MAX_OUTCOME_TEXT_BYTES). Anything else is an error text saying
    /// what was expected (the bindings record it as a permanent failure: retrying the same code cannot fix it).
    ///
    /// ```
    /// use segkit::Outcome;
    /// let o = Outcome::from_json(&serde_json::json!({"status": "retryable", "reason": "429", "retry_after": 1.5}));
    /// assert_eq!(o, Ok(Outcome::Retryable { reason: "429".into(), retry_after: Some(std::time::Duration::from_millis(1500)) }));
    /// assert!(Outcome::from_json(&serde_json::json!({"status": "sent"})).unwrap_err().contains("`status` must be"));
    /// ```
    pub fn from_json(v: &Value) -> std::result::Result<Outcome, String> {
        let Value::Object(m) = v else {
            return Err(format!("expected an outcome object with a `status`, got {}", json_type(v)));
        };
        let status = m.get("status").and_then(Value::as_str).unwrap_or_default();
        let allowed: &[&str] = match status {
            "delivered" => &["status", "receipt"],
            "retryable" => &["status", "reason", "retry_after"],
            "permanent" => &["status", "reason"],
            _ => {
                return Err(format!(
                    "`status` must be \"delivered\", \"retryable\" or \"permanent\", got {}",
                    m.get("status").map(|s| s.to_string()).unwrap_or_else(|| "nothing".into())
                ))
            }
        };
        if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(format!("unknown field `{k}` in a {status} outcome (expected {})", allowed.join(", ")));
        }
        let text = |field: &str, required: bool| -> std::result::Result<Option<String>, String> {
            match m.get(field) {
                None | Some(Value::Null) if !required => Ok(None),
                None | Some(Value::Null) => Err(format!("a {status} outcome needs a `{field}` text")),
                Some(Value::String(s)) if required && s.trim().is_empty() => {
                    Err(format!("the `{field}` of a {status} outcome must not be empty"))
                }
                Some(Value::String(s)) => Ok(Some(bounded_text(s.clone()))),
                Some(other) => Err(format!("`{field}` must be text, got {}", json_type(other))),
            }
        };
        Ok(match status {
            "delivered" => Outcome::Delivered { receipt: text("receipt", false)? },
            "permanent" => Outcome::Permanent { reason: text("reason", true)?.unwrap_or_default() },
            _ => {
                let retry_after = match m.get("retry_after") {
                    None | Some(Value::Null) => None,
                    Some(Value::Number(n)) => match n.as_f64() {
                        Some(s) if s.is_finite() && (0.0..=86_400.0).contains(&s) => Some(Duration::from_secs_f64(s)),
                        _ => return Err(format!("`retry_after` must be 0 to 86400 seconds, got {n}")),
                    },
                    Some(other) => return Err(format!("`retry_after` must be seconds, got {}", json_type(other))),
                };
                Outcome::Retryable { reason: text("reason", true)?.unwrap_or_default(), retry_after }
            }
        })
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The part names a custom action written in another language declares (`parts`), checked
/// ([`MAX_ACTION_PARTS`](crate::limits::MAX_ACTION_PARTS) names of at most
/// [`MAX_ACTION_PART_NAME_BYTES`](crate::limits::MAX_ACTION_PART_NAME_BYTES), distinct, not empty) and interned
/// as `&'static str` for [`Action::parts`]. Each distinct name is allocated once per process.
pub fn declared_parts(parts: &[String]) -> Result<Vec<&'static str>> {
    use crate::limits::{MAX_ACTION_PARTS, MAX_ACTION_PART_NAME_BYTES};
    static NAMES: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    if parts.len() > MAX_ACTION_PARTS {
        return Err(Error::definition(
            "action.parts",
            format!("at most {MAX_ACTION_PARTS} parts (limit MAX_ACTION_PARTS), not {}", parts.len()),
        ));
    }
    let mut out: Vec<&'static str> = Vec::with_capacity(parts.len());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    for (i, p) in parts.iter().enumerate() {
        if p.trim().is_empty() || p.len() > MAX_ACTION_PART_NAME_BYTES {
            return Err(Error::definition(
                format!("action.parts[{i}]"),
                format!("a part name is 1 to {MAX_ACTION_PART_NAME_BYTES} bytes (limit MAX_ACTION_PART_NAME_BYTES)"),
            ));
        }
        let name = match names.get(p.as_str()) {
            Some(n) => *n,
            None => {
                let leaked: &'static str = Box::leak(p.clone().into_boxed_str());
                names.insert(leaked);
                leaked
            }
        };
        if out.contains(&name) {
            return Err(Error::definition(format!("action.parts[{i}]"), format!("part `{p}` is listed twice")));
        }
        out.push(name);
    }
    Ok(out)
}

/// Checks the rate a custom action declares (`max_rate_per_second`): finite and above 0.
pub fn check_declared_rate(rate: Option<f64>) -> Result<Option<f64>> {
    match rate {
        Some(r) if !r.is_finite() || r <= 0.0 => {
            Err(Error::definition("action.max_rate_per_second", format!("a finite rate above 0, not {r}")))
        }
        r => Ok(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outcomes_from_other_languages_are_checked_and_bounded() {
        assert_eq!(Outcome::from_json(&json!({"status": "delivered"})), Ok(Outcome::Delivered { receipt: None }));
        assert_eq!(
            Outcome::from_json(&json!({"status": "permanent", "reason": "bad address"})),
            Ok(Outcome::Permanent { reason: "bad address".into() })
        );
        let long = "é".repeat(crate::limits::MAX_OUTCOME_TEXT_BYTES);
        let Ok(Outcome::Delivered { receipt: Some(r) }) =
            Outcome::from_json(&json!({"status": "delivered", "receipt": long}))
        else {
            panic!("a long receipt is cut, not refused")
        };
        assert!(r.len() <= crate::limits::MAX_OUTCOME_TEXT_BYTES && r.len() > 4000, "{}", r.len());
        let err = |v: Value| Outcome::from_json(&v).unwrap_err();
        assert!(err(json!(null)).contains("expected an outcome object"));
        assert!(err(json!({"status": "retryable"})).contains("a retryable outcome needs a `reason` text"));
        assert!(err(json!({"status": "permanent", "reason": " "})).contains("must not be empty"));
        assert!(err(json!({"status": "delivered", "reason": "x"})).contains("unknown field `reason`"));
        assert!(err(json!({"status": "retryable", "reason": "x", "retry_after": -1})).contains("0 to 86400"));
        assert!(err(json!({"status": "retryable", "reason": "x", "retry_after": "soon"})).contains("must be seconds"));
        assert!(err(json!({"status": "delivered", "receipt": 7})).contains("`receipt` must be text"));
    }

    #[test]
    fn declared_parts_are_bounded_distinct_and_interned() {
        let a = declared_parts(&["text".into(), "subject".into()]).unwrap();
        let b = declared_parts(&["text".into()]).unwrap();
        assert!(std::ptr::eq(a[0], b[0]), "one allocation per distinct name");
        let e = declared_parts(&["text".into(), "text".into()]).unwrap_err();
        assert!(e.to_string().contains("action.parts[1]: part `text` is listed twice"), "{e}");
        let e = declared_parts(&["x".repeat(65)]).unwrap_err();
        assert!(e.to_string().contains("MAX_ACTION_PART_NAME_BYTES"), "{e}");
        let many: Vec<String> = (0..=crate::limits::MAX_ACTION_PARTS).map(|i| format!("p{i}")).collect();
        assert!(declared_parts(&many).unwrap_err().to_string().contains("MAX_ACTION_PARTS"));
        assert!(check_declared_rate(Some(f64::NAN)).is_err());
        assert_eq!(check_declared_rate(Some(0.5)).unwrap(), Some(0.5));
    }
}
