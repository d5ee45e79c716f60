//! The durable delivery ledger: one row per (workflow, trigger version, step, entity) in the catalog table
//! `deliveries` (migration 4), under a UNIQUE idempotency key derived from those four, so writing the same row
//! twice is a no-op and a re-sent delivery carries the key of the first attempt.
//!
//! A row's life: `pending` (due at `due_at`) → `running` (claimed, with a lease) → `delivered` / `done` (a wait,
//! branch, split or exit step) / `suppressed` / `capped` / `dead` (permanent failure or the last attempt failed;
//! `replay` makes it `pending` again). Quiet hours, a rate limit and a wait `until` put a claimed row back to
//! `pending` with a later due time, without counting an attempt. A `running` row whose lease expired — its dispatcher died — is claimed again.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The idempotency key of (workflow, trigger version, step, entity key): hex SHA-256 of the four, so the key
/// itself never shows an entity key.
///
/// ```
/// let k = segkit::workflow::ledger::idempotency_key("w", "manual:1", "mail", "42");
/// assert_eq!(k.len(), 32);
/// assert_ne!(k, segkit::workflow::ledger::idempotency_key("w", "manual:2", "mail", "42"));
/// ```
pub fn idempotency_key(workflow: &str, trigger: &str, step: &str, entity_key: &str) -> String {
    let mut h = Sha256::new();
    for part in [workflow, trigger, step, entity_key] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(32);
    for b in h.finalize().iter().take(16) {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
    out
}

/// The state of a ledger row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// Waiting for its due time.
    Pending,
    /// Claimed by a dispatcher (until its lease expires).
    Running,
    /// The action reported success.
    Delivered,
    /// A wait or exit step that completed.
    Done,
    /// Not sent: the entity is on the channel's suppression list.
    Suppressed,
    /// Not sent: a frequency cap of the workflow was reached (see `detail`); the entity went on.
    Capped,
    /// Failed permanently or after the last attempt; see `last_error`. `replay` sends it again.
    Dead,
}

impl Status {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Delivered => "delivered",
            Status::Done => "done",
            Status::Suppressed => "suppressed",
            Status::Capped => "capped",
            Status::Dead => "dead",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "running" => Status::Running,
            "delivered" => Status::Delivered,
            "done" => Status::Done,
            "suppressed" => Status::Suppressed,
            "capped" => Status::Capped,
            "dead" => Status::Dead,
            _ => return None,
        })
    }
}

/// A row to add to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The workflow.
    pub workflow: String,
    /// The trigger version (`run:3` for segment run 3, `manual:2` for the second manual trigger).
    pub trigger: String,
    /// The step.
    pub step: String,
    /// The entity type.
    pub entity: String,
    /// The entity key as text.
    pub entity_key: String,
    /// When it is due, in milliseconds since the Unix epoch.
    pub due_at: i64,
    /// The entity's attributes captured when the row was made (the JSON text of an object), which the row's
    /// first attempt renders and sends with instead of reading the entity at send time; `None`: read at send
    /// time. Kept in the ledger only until the row finishes or is retried.
    pub context: Option<String>,
}

impl NewDelivery {
    /// The row's idempotency key.
    pub fn key(&self) -> String {
        idempotency_key(&self.workflow, &self.trigger, &self.step, &self.entity_key)
    }
}

/// How new rows of one trigger are filtered by the workflow's re-entry policy: skip an entity whose first step
/// row in this workflow was created after `since` (ms since the epoch; `i64::MIN` = ever). `None`: no filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reentry {
    /// The workflow's first step.
    pub first_step: String,
    /// The cut-off.
    pub since: i64,
}

/// A row of the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LedgerRow {
    /// The row id (for `replay`).
    pub id: i64,
    /// Its idempotency key.
    pub idempotency_key: String,
    /// The workflow.
    pub workflow: String,
    /// The trigger version.
    pub trigger: String,
    /// The step.
    pub step: String,
    /// The entity type.
    pub entity: String,
    /// The entity key.
    pub entity_key: String,
    /// Its state.
    pub status: Status,
    /// Attempts started so far.
    pub attempts: u32,
    /// Due time, ms since the epoch.
    pub due_at: i64,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// The receiver's receipt, when delivered.
    pub receipt: Option<String>,
    /// Created, ms since the epoch.
    pub created_at: i64,
    /// Last changed, ms since the epoch.
    pub updated_at: i64,
    /// The channel an action step sent on (set when it is sent, capped or suppressed).
    pub channel: Option<String>,
    /// How the step went: the step a branch or split chose, the instant and zone a wait `until` resolved to,
    /// the quiet hours that held it, the cap that capped it.
    pub detail: Option<String>,
    /// For a wait `until`: the instant it waits for, once resolved (ms since the epoch).
    pub resolved_at: Option<i64>,
}

/// What [`Workspace::dry_run_workflow`](crate::Workspace::dry_run_workflow) says would happen to one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DryRunStatus {
    /// It would be sent now.
    Send,
    /// It would be held by quiet hours and sent when they end (`detail` says until when).
    Held,
    /// The entity is on the channel's suppression list.
    Suppressed,
    /// A frequency cap is reached.
    Capped,
    /// The re-entry policy would not start the workflow for it again.
    Reentry,
    /// Its path exits before any action step.
    Exit,
    /// The delivery would fail: the entity is missing or the template does not render (`detail`).
    Failed,
}

/// One row of a dry run: who would receive what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DryRunRow {
    /// The entity key.
    pub entity_key: String,
    /// The first action step its path reaches (through waits, branches and splits), if any.
    pub step: Option<String>,
    /// That step's channel.
    pub channel: Option<String>,
    /// What would happen.
    pub status: DryRunStatus,
    /// The rendered template parts (for `send` and `held`; empty otherwise or without a template).
    pub content: std::collections::BTreeMap<String, String>,
    /// Why, for every status but `send`; the path taken through branches and splits.
    pub detail: Option<String>,
}

/// Which rows [`Workspace::deliveries`](crate::Workspace::deliveries) and `replay` select.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only this workflow.
    pub workflow: Option<String>,
    /// Only this status.
    pub status: Option<Status>,
    /// Only these ids.
    pub ids: Option<Vec<i64>>,
    /// Only this entity key.
    pub entity_key: Option<String>,
    /// Only ids greater than this (a page after the last id seen).
    pub after_id: Option<i64>,
    /// Only ids less than this (a page before the last id seen, newest first).
    pub before_id: Option<i64>,
    /// Newest (highest id) first instead of oldest first.
    pub newest_first: bool,
}

/// One start of a workflow (a trigger version: a segment run, a manual trigger, a schedule's due instant) and
/// how its ledger rows stand now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkflowRun {
    /// The trigger version (`run:3`, `manual:2`, `schedule:nightly:…`).
    pub trigger: String,
    /// When its first row was written, ms since the epoch.
    pub started_at: i64,
    /// When one of its rows last changed, ms since the epoch.
    pub updated_at: i64,
    /// Distinct entities it started for.
    pub entities: u64,
    /// Ledger rows (one per entity and step reached).
    pub rows: u64,
    /// Rows by status.
    pub statuses: std::collections::BTreeMap<String, u64>,
}

#[cfg(test)]
mod key_tests {
    use super::*;

    /// The key is stored in ledgers already written: its text must not change.
    #[test]
    fn the_idempotency_key_is_the_lowercase_hex_of_the_first_16_bytes_of_the_digest() {
        for parts in [["w", "manual:1", "mail", "42"], ["welcome", "run:everyone:7", "hook", "ü ✓"], ["", "", "", ""]]
        {
            let mut h = Sha256::new();
            for part in parts {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
            let expected: String = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
            assert_eq!(idempotency_key(parts[0], parts[1], parts[2], parts[3]), expected);
        }
        // Computed independently (Python's hashlib over the same length-prefixed parts).
        assert_eq!(idempotency_key("w", "manual:1", "mail", "42"), "5751716c0f03ef99265a07c0a19503a4");
    }
}
