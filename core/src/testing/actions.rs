//! Conformance checks for [`Action`] implementations: built-in families, third-party crates, and the custom
//! actions the Python and Node bindings wrap (`segkit.testing.check_action`, `testing.checkAction`).
//!
//! Call [`action_conformance`] with a delivery the action should deliver (its receiver up and accepting):
//!
//! ```ignore
//! #[tokio::test]
//! async fn my_action_conforms() {
//!     let action = MyAction::new(/* pointed at a receiver on 127.0.0.1 */);
//!     let check = segkit::testing::ActionCheck::new(segkit::testing::ActionCheck::sample(&action))
//!         .secrets(["the-token"]);
//!     segkit::testing::action_conformance(&action, &check).await.unwrap();
//! }
//! ```
//!
//! A violation is an [`Error::Definition`] with path `action <kind>` whose message starts with
//! `conformance:` and says what was expected and what was found.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use serde_json::Value;

use crate::action::{Action, Delivery, Outcome};
use crate::error::{Error, Result};

/// The longest one `execute` may take by default: the dispatcher gives up on an attempt after half its lease.
pub const DEFAULT_ACTION_TIMEOUT: Duration = Duration::from_secs(30);

/// Lists the idempotency keys the receiver has seen (for [`key_reaches_receiver`]).
pub type ReceivedKeys = Arc<dyn Fn() -> Result<Vec<String>> + Send + Sync>;

/// What [`action_conformance`] sends and what it checks against.
#[derive(Clone)]
pub struct ActionCheck {
    /// A delivery the action must report [`Outcome::Delivered`] for (see [`ActionCheck::sample`]).
    pub delivery: Delivery,
    /// The longest one `execute` may take (default [`DEFAULT_ACTION_TIMEOUT`]).
    pub timeout: Duration,
    /// Secret values (resolved) that must appear neither in the action's `Debug` output nor in any outcome.
    pub secrets: Vec<String>,
    /// When given, the idempotency key of [`ActionCheck::delivery`] must be among the keys this returns after
    /// the deliveries ([`key_reaches_receiver`]).
    pub received: Option<ReceivedKeys>,
}

impl fmt::Debug for ActionCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionCheck")
            .field("delivery", &self.delivery.idempotency_key)
            .field("timeout", &self.timeout)
            .field("secrets", &format_args!("[{} redacted]", self.secrets.len()))
            .field("received", &self.received.is_some())
            .finish()
    }
}

impl ActionCheck {
    /// Checks with `delivery`, the default timeout, no secrets and no receiver probe.
    pub fn new(delivery: Delivery) -> Self {
        ActionCheck { delivery, timeout: DEFAULT_ACTION_TIMEOUT, secrets: vec![], received: None }
    }

    /// Sets the longest one `execute` may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds secret values that must never show.
    pub fn secrets<S: Into<String>>(mut self, secrets: impl IntoIterator<Item = S>) -> Self {
        self.secrets.extend(secrets.into_iter().map(Into::into).filter(|s| !s.is_empty()));
        self
    }

    /// Sets the receiver probe of [`key_reaches_receiver`].
    pub fn received(mut self, received: impl Fn() -> Result<Vec<String>> + Send + Sync + 'static) -> Self {
        self.received = Some(Arc::new(received));
        self
    }

    /// A generic first-attempt delivery for `action`: key `conformance-<uuid>`, entity `user` key `1`, no
    /// attributes, and every part the action declares filled (`body` with a JSON object, others with text).
    pub fn sample(action: &dyn Action) -> Delivery {
        let mut d = Delivery::new(format!("conformance-{}", uuid::Uuid::new_v4().simple()), "conformance", "user", "1");
        d.step = "send".into();
        d.channel = action.kind().to_string();
        for part in action.parts().unwrap_or(&[]) {
            let text = match *part {
                "body" => r#"{"conformance": true}"#.to_string(),
                "html" => "<p>segkit conformance</p>".to_string(),
                p => format!("segkit conformance {p}"),
            };
            d.content.insert(part.to_string(), text);
        }
        d
    }
}

fn violation(kind: &str, message: impl Into<String>) -> Error {
    let kind = if kind.is_empty() { "<unnamed>" } else { kind };
    Error::definition(format!("action {kind}"), format!("conformance: {}", message.into()))
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Delivered { receipt } => format!("delivered (receipt {receipt:?})"),
        Outcome::Retryable { reason, retry_after } => format!("retryable: {reason} (retry after {retry_after:?})"),
        Outcome::Permanent { reason } => format!("permanent: {reason}"),
        #[allow(unreachable_patterns)]
        _ => "an unknown outcome".to_string(),
    }
}

/// Runs every check: [`kind_is_set`], [`declarations_are_sane`], [`debug_redacts_secrets`],
/// [`delivers_and_accepts_repeats`], [`missing_parts_are_not_retried`] and, with a receiver probe,
/// [`key_reaches_receiver`]. The action's receiver must accept the check's delivery; each `execute` gets
/// `check.timeout`.
pub async fn action_conformance(action: &dyn Action, check: &ActionCheck) -> Result<()> {
    kind_is_set(action)?;
    declarations_are_sane(action)?;
    debug_redacts_secrets(action, &check.secrets)?;
    delivers_and_accepts_repeats(action, check).await?;
    missing_parts_are_not_retried(action, check).await?;
    if let Some(received) = &check.received {
        key_reaches_receiver(action, &check.delivery, received.as_ref())?;
    }
    Ok(())
}

/// `kind()` is a non-empty word without whitespace, the same on every call.
pub fn kind_is_set(action: &dyn Action) -> Result<()> {
    let kind = action.kind().to_string();
    if kind.trim().is_empty() || kind.chars().any(char::is_whitespace) {
        return Err(violation(&kind, format!("kind() must be a non-empty word without spaces, got {kind:?}")));
    }
    if action.kind() != kind {
        return Err(violation(&kind, format!("kind() changed between calls: {kind:?} then {:?}", action.kind())));
    }
    Ok(())
}

/// `parts()`, when declared, are distinct non-empty names; `max_rate_per_second()`, when declared, is a finite
/// positive rate.
pub fn declarations_are_sane(action: &dyn Action) -> Result<()> {
    let kind = action.kind();
    if let Some(parts) = action.parts() {
        let mut seen = std::collections::BTreeSet::new();
        for p in parts {
            if p.trim().is_empty() {
                return Err(violation(kind, "parts() lists an empty part name"));
            }
            if !seen.insert(*p) {
                return Err(violation(kind, format!("parts() lists `{p}` twice")));
            }
        }
    }
    if let Some(r) = action.max_rate_per_second() {
        if !r.is_finite() || r <= 0.0 {
            return Err(violation(kind, format!("max_rate_per_second() must be a finite rate above 0, got {r}")));
        }
    }
    Ok(())
}

/// No secret value appears in the action's `Debug` output.
pub fn debug_redacts_secrets(action: &dyn Action, secrets: &[String]) -> Result<()> {
    let debug = format!("{action:?}");
    if secrets.iter().any(|s| !s.is_empty() && debug.contains(s.as_str())) {
        return Err(violation(action.kind(), "the Debug output shows a secret value; redact it"));
    }
    Ok(())
}

/// Executes `delivery` once: it must return within `timeout`, without panicking, with a sane outcome (a
/// non-empty reason on failures, a `retry_after` of at most a day, no secret in the reason or receipt).
pub async fn execute_bounded(
    action: &dyn Action,
    delivery: &Delivery,
    timeout: Duration,
    secrets: &[String],
) -> Result<Outcome> {
    let kind = action.kind();
    let run = std::panic::AssertUnwindSafe(action.execute(delivery)).catch_unwind();
    let outcome = match tokio::time::timeout(timeout, run).await {
        Err(_) => {
            return Err(violation(
                kind,
                format!("execute() did not return within {:.1} s; bound every network call", timeout.as_secs_f64()),
            ))
        }
        Ok(Err(panic)) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            return Err(violation(kind, format!("execute() panicked ({what}); return Outcome::Permanent instead")));
        }
        Ok(Ok(o)) => o,
    };
    let text = match &outcome {
        Outcome::Delivered { receipt } => receipt.clone().unwrap_or_default(),
        Outcome::Retryable { reason, retry_after } => {
            if reason.trim().is_empty() {
                return Err(violation(kind, "a retryable outcome needs a reason"));
            }
            if retry_after.is_some_and(|r| r > Duration::from_secs(86_400)) {
                return Err(violation(kind, format!("retry_after {retry_after:?} is more than a day")));
            }
            reason.clone()
        }
        Outcome::Permanent { reason } => {
            if reason.trim().is_empty() {
                return Err(violation(kind, "a permanent outcome needs a reason"));
            }
            reason.clone()
        }
        #[allow(unreachable_patterns)]
        _ => String::new(),
    };
    if secrets.iter().any(|s| !s.is_empty() && text.contains(s.as_str())) {
        return Err(violation(kind, "an outcome (reason or receipt) shows a secret value; redact it"));
    }
    Ok(outcome)
}

/// The check's delivery is delivered, and executing it again with the same idempotency key (attempt 2, as
/// after a crash between sending and recording) is delivered too: dispatch is at-least-once, so a receiver
/// must accept — and may drop — a repeat.
pub async fn delivers_and_accepts_repeats(action: &dyn Action, check: &ActionCheck) -> Result<()> {
    let kind = action.kind();
    let first = execute_bounded(action, &check.delivery, check.timeout, &check.secrets).await?;
    if !matches!(first, Outcome::Delivered { .. }) {
        return Err(violation(
            kind,
            format!("a delivery the receiver accepts must be delivered, got {}", describe(&first)),
        ));
    }
    let mut again = check.delivery.clone();
    again.attempt = again.attempt.saturating_add(1);
    let second = execute_bounded(action, &again, check.timeout, &check.secrets).await?;
    if !matches!(second, Outcome::Delivered { .. }) {
        return Err(violation(
            kind,
            format!(
                "re-executing the same idempotency key must be accepted (at-least-once dispatch), got {}",
                describe(&second)
            ),
        ));
    }
    Ok(())
}

/// A delivery without any rendered content is delivered (the action has defaults) or a permanent failure —
/// never retryable, since retrying cannot add a part — and the action does not panic on it.
pub async fn missing_parts_are_not_retried(action: &dyn Action, check: &ActionCheck) -> Result<()> {
    let mut empty = check.delivery.clone();
    empty.content.clear();
    empty.idempotency_key = format!("{}-empty", check.delivery.idempotency_key);
    let outcome = execute_bounded(action, &empty, check.timeout, &check.secrets).await?;
    if let Outcome::Retryable { .. } = outcome {
        return Err(violation(
            action.kind(),
            format!("a delivery without content must be delivered or permanent, got {}", describe(&outcome)),
        ));
    }
    Ok(())
}

/// The idempotency key of `delivery` reached the receiver: it is among the keys `received` lists.
pub fn key_reaches_receiver(
    action: &dyn Action,
    delivery: &Delivery,
    received: &(dyn Fn() -> Result<Vec<String>> + Send + Sync),
) -> Result<()> {
    let keys = received()?;
    if !keys.contains(&delivery.idempotency_key) {
        return Err(violation(
            action.kind(),
            format!(
                "the receiver never saw idempotency key {} ({} keys received); pass Delivery::idempotency_key on",
                delivery.idempotency_key,
                keys.len()
            ),
        ));
    }
    Ok(())
}

/// A delivery from its JSON form (`Delivery`'s serde fields; `attempt` defaults to 1), for the bindings.
pub fn delivery_from_json(v: &Value) -> Result<Delivery> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { "delivery".to_string() } else { format!("delivery.{path}") };
        Error::definition(path, e.into_inner().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::Mutex;

    #[derive(Debug)]
    struct Good(Mutex<Vec<String>>);

    #[async_trait]
    impl Action for Good {
        fn kind(&self) -> &str {
            "good"
        }
        async fn execute(&self, d: &Delivery) -> Outcome {
            if d.part("text").is_none() {
                return Outcome::Permanent { reason: "no text part".into() };
            }
            self.0.lock().unwrap().push(d.idempotency_key.clone());
            Outcome::Delivered { receipt: Some("ok".into()) }
        }
        fn parts(&self) -> Option<&[&str]> {
            Some(&["text"])
        }
    }

    #[derive(Debug)]
    struct Leaky {
        #[allow(dead_code)] // shown only by Debug, which is what the check looks at
        token: String,
        mode: u8,
    }

    #[async_trait]
    impl Action for Leaky {
        fn kind(&self) -> &str {
            "leaky"
        }
        async fn execute(&self, d: &Delivery) -> Outcome {
            match self.mode {
                0 => Outcome::Delivered { receipt: None },
                1 if d.attempt > 1 => Outcome::Permanent { reason: "duplicate".into() },
                1 => Outcome::Delivered { receipt: None },
                2 if d.content.is_empty() => Outcome::Retryable { reason: "no body".into(), retry_after: None },
                2 => Outcome::Delivered { receipt: None },
                3 => Outcome::Permanent { reason: String::new() },
                _ => std::future::pending().await,
            }
        }
    }

    #[tokio::test]
    async fn a_good_action_passes_and_each_violation_is_named() {
        let good = Good(Mutex::new(vec![]));
        let d = ActionCheck::sample(&good);
        assert_eq!(d.part("text"), Some("segkit conformance text"));
        let seen = Arc::new(Mutex::new(vec![]));
        let probe = seen.clone();
        let check = ActionCheck::new(d.clone()).received(move || Ok(probe.lock().unwrap().clone()));
        // The probe sees nothing: the key did not travel.
        let e = action_conformance(&good, &check).await.unwrap_err();
        assert!(e.to_string().contains("never saw idempotency key"), "{e}");
        seen.lock().unwrap().extend(good.0.lock().unwrap().clone());
        action_conformance(&good, &check).await.unwrap();

        let msg = |mode: u8| async move {
            let a = Leaky { token: "tok-123".into(), mode };
            let check =
                ActionCheck::new(ActionCheck::sample(&a)).secrets(["tok-123"]).timeout(Duration::from_millis(100));
            action_conformance(&a, &check).await.unwrap_err().to_string()
        };
        let e = msg(0).await;
        assert!(
            e.starts_with("invalid definition of action leaky: conformance: the Debug output shows a secret"),
            "{e}"
        );
        let clean = |mode: u8| async move {
            let a = Leaky { token: String::new(), mode };
            let check = ActionCheck::new(ActionCheck::sample(&a)).timeout(Duration::from_millis(100));
            action_conformance(&a, &check).await.map_err(|e| e.to_string())
        };
        assert_eq!(clean(0).await, Ok(()));
        assert!(clean(1).await.unwrap_err().contains("re-executing the same idempotency key"));
        let mut d = ActionCheck::sample(&Leaky { token: String::new(), mode: 2 });
        d.content.insert("text".into(), "x".into());
        let e = action_conformance(&Leaky { token: String::new(), mode: 2 }, &ActionCheck::new(d)).await.unwrap_err();
        assert!(e.to_string().contains("without content must be delivered or permanent"), "{e}");
        assert!(clean(3).await.unwrap_err().contains("needs a reason"));
        assert!(clean(4).await.unwrap_err().contains("did not return within 0.1 s"));
    }

    #[test]
    fn deliveries_parse_with_paths() {
        let d = delivery_from_json(&serde_json::json!({"idempotency_key": "k", "origin": "o", "entity": "user",
            "entity_key": "1", "attributes": {}}))
        .unwrap();
        assert_eq!(d.attempt, 1);
        let e = delivery_from_json(&serde_json::json!({"idempotency_key": "k", "origin": "o", "entity": "user",
            "entity_key": 1, "attributes": {}}))
        .unwrap_err();
        assert!(e.to_string().starts_with("invalid definition of delivery.entity_key: invalid type"), "{e}");
    }
}
