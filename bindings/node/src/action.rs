//! Actions from JavaScript: a config object built by the built-in families (`segkit_actions::registry()`), or
//! a custom action — an async function `(delivery) => outcome` — adapted to core's `Action` trait
//! ([`JsAction`]) through a thread-safe function, so the same dispatcher, retries and ledger drive it.
//!
//! index.js wraps the user's function: it parses the delivery (JSON text), awaits the function, turns its
//! result or the exception into an outcome object and returns that as JSON text, which core's
//! `Outcome::from_json` parses.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use napi::bindgen_prelude::Promise;
use napi::threadsafe_function::ThreadsafeFunction;
use napi::Status;
use napi_derive::napi;
use segkit::action::{ActionFactory, Delivery, Outcome};
use segkit::Action;
use serde_json::Value;

use crate::{OrJs, Result};

/// `(deliveryJson) => Promise<outcomeJson>`; weak, so a registered action does not keep the event loop alive.
pub type ExecuteFn = ThreadsafeFunction<String, Promise<String>, String, Status, false, true>;

/// The factory of action configs: every compiled-in family (jsonl, smtp, webhook, wecom, dingtalk, feishu, sms).
pub fn factory() -> Arc<dyn ActionFactory> {
    Arc::new(segkit_actions::registry())
}

/// A segkit [`Action`] implemented in JavaScript.
pub struct JsAction {
    kind: String,
    execute: Arc<ExecuteFn>,
    parts: Option<Vec<&'static str>>,
    rate: Option<f64>,
}

impl fmt::Debug for JsAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsAction").field("kind", &self.kind).field("parts", &self.parts).finish()
    }
}

impl JsAction {
    /// `kind` as index.js names it (`js:<function name>`); `parts` and `rate` as the caller declared them.
    pub fn new(kind: String, execute: ExecuteFn, parts: Option<Vec<String>>, rate: Option<f64>) -> Result<Self> {
        let parts = parts.map(|p| segkit::action::declared_parts(&p)).transpose().js()?;
        let rate = segkit::action::check_declared_rate(rate).js()?;
        Ok(JsAction { kind, execute: Arc::new(execute), parts, rate })
    }
}

#[async_trait]
impl Action for JsAction {
    fn kind(&self) -> &str {
        &self.kind
    }

    async fn execute(&self, delivery: &Delivery) -> Outcome {
        let text = match serde_json::to_string(delivery) {
            Ok(t) => t,
            Err(e) => return Outcome::Permanent { reason: format!("the delivery cannot be converted: {e}") },
        };
        let promise = match self.execute.call_async(text).await {
            Ok(p) => p,
            Err(e) => {
                return Outcome::Retryable {
                    reason: format!("{}: execute could not be called: {}", self.kind, e.reason),
                    retry_after: None,
                }
            }
        };
        let out = match promise.await {
            Ok(out) => out,
            Err(e) => {
                return Outcome::Retryable {
                    reason: format!("{}: execute failed: {}", self.kind, e.reason),
                    retry_after: None,
                }
            }
        };
        serde_json::from_str::<Value>(&out)
            .map_err(|e| e.to_string())
            .and_then(|v| Outcome::from_json(&v))
            .unwrap_or_else(|m| Outcome::Permanent {
                reason: format!("{}: execute returned an invalid outcome: {m}", self.kind),
            })
    }

    fn parts(&self) -> Option<&[&str]> {
        self.parts.as_deref()
    }

    fn max_rate_per_second(&self) -> Option<f64> {
        self.rate
    }
}

/// Runs segkit's action conformance suite (`segkit::testing::action_conformance`) on `action` with the
/// delivery `delivery_json` (or a generic sample), `secrets` and a per-execute timeout; resolves to the
/// idempotency key it delivered, for [`check_key_received`].
async fn conformance(
    action: Arc<dyn Action>,
    delivery_json: Option<String>,
    secrets: Vec<String>,
    timeout_ms: Option<f64>,
) -> Result<String> {
    let delivery = match delivery_json {
        Some(t) => {
            let v: Value = serde_json::from_str(&t).map_err(|e| crate::invalid(format!("delivery: {e}")))?;
            segkit::testing::delivery_from_json(&v).js()?
        }
        None => segkit::testing::ActionCheck::sample(action.as_ref()),
    };
    let timeout = match timeout_ms {
        None => segkit::testing::DEFAULT_ACTION_TIMEOUT,
        Some(ms) if ms.is_finite() && ms > 0.0 && ms <= 3_600_000.0 => std::time::Duration::from_secs_f64(ms / 1000.0),
        Some(ms) => return Err(crate::invalid(format!("timeoutMs must be 0 to 3600000, not {ms}"))),
    };
    let key = delivery.idempotency_key.clone();
    let check = segkit::testing::ActionCheck::new(delivery).secrets(secrets).timeout(timeout);
    segkit::testing::action_conformance(action.as_ref(), &check).await.js()?;
    Ok(key)
}

/// Conformance of a custom JavaScript action (see `testing.checkAction` in index.js).
#[napi]
pub async fn check_js_action(
    kind: String,
    execute: ExecuteFn,
    parts: Option<Vec<String>>,
    max_rate_per_second: Option<f64>,
    delivery_json: Option<String>,
    secrets: Vec<String>,
    timeout_ms: Option<f64>,
) -> Result<String> {
    let action: Arc<dyn Action> = Arc::new(JsAction::new(kind, execute, parts, max_rate_per_second)?);
    conformance(action, delivery_json, secrets, timeout_ms).await
}

/// Conformance of a built-in action given by its config `{type, …}`.
#[napi]
pub async fn check_action_config(
    config: Value,
    delivery_json: Option<String>,
    secrets: Vec<String>,
    timeout_ms: Option<f64>,
) -> Result<String> {
    let action = factory().build(&config).js()?;
    conformance(action, delivery_json, secrets, timeout_ms).await
}

/// The last conformance check: the idempotency key `key` is among the keys the receiver saw (`received`).
#[napi]
pub fn check_key_received(kind: String, key: String, received: Vec<String>) -> Result<()> {
    crate::guard(|| {
        let d = Delivery::new(key, "conformance", "user", "1");
        let named = Named(kind);
        segkit::testing::key_reaches_receiver(&named, &d, &move || Ok(received.clone())).js()
    })
}

/// Only a kind, to name the action in [`check_key_received`]'s error.
#[derive(Debug)]
struct Named(String);

#[async_trait]
impl Action for Named {
    fn kind(&self) -> &str {
        &self.0
    }
    async fn execute(&self, _delivery: &Delivery) -> Outcome {
        Outcome::Permanent { reason: "not an action".into() }
    }
}
