//! The `Action` plugin trait: what a workflow does for one entity (send an email, call a webhook, …).

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One delivery to perform: who, what, and the idempotency key that must travel to the receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Unique per (workflow, trigger version, step, entity key); receivers use it to drop duplicates.
    pub idempotency_key: String,
    /// The workflow (or segment, for direct deliveries) that caused it.
    pub origin: String,
    /// The entity type.
    pub entity: String,
    /// The entity's key, as text.
    pub entity_key: String,
    /// The entity's attributes (pii attributes included: actions need addresses).
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// The rendered message body, if the step has a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
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
    /// Failed but may succeed later.
    Retryable {
        /// Why.
        reason: String,
        /// When to retry at the earliest, if the receiver said.
        retry_after: Option<Duration>,
    },
    /// Failed for good (bad address, rejected content).
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

    /// Performs one delivery and classifies the outcome.
    async fn execute(&self, delivery: &Delivery) -> Outcome;
}
