//! Specs of message templates and workflows (see [`crate::workflow`]).
//!
//! ```
//! use segkit::spec::{from_json_text, WorkflowSpec};
//! let w: WorkflowSpec = from_json_text(r#"{"name": "welcome", "trigger": {"type": "entered", "segment": "new"},
//!     "steps": [{"name": "mail", "type": "action", "action": "email", "template": "hello"}]}"#).unwrap();
//! assert_eq!(w.steps.len(), 1);
//! let e = from_json_text::<WorkflowSpec>(r#"{"name": "w", "trigger": {"type": "entred"}, "steps": []}"#).unwrap_err();
//! assert!(e.to_string().contains("unknown variant `entred`"), "{e}");
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Spec, SpecKind};

/// A message template: named parts (`subject`, `text`, `html`, `body`, …) rendered with minijinja.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// The template's name (entity-name rules).
    pub name: String,
    /// The channel it is for (`email`, `sms`, `webhook`, …); informative, checked against a step's channel.
    pub channel: String,
    /// The entity type it renders (optional): when given, variables `entity.<name>` are checked against its
    /// attributes at definition, and [`Workspace::render`](crate::Workspace::render) can preview it.
    #[serde(default)]
    pub entity: Option<String>,
    /// The parts by name; the `html` part is HTML-escaped when rendered.
    pub parts: BTreeMap<String, String>,
}

impl Spec for TemplateSpec {
    const KIND: SpecKind = SpecKind::Template;
}

/// What starts a workflow for an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TriggerSpec {
    /// Entities entering `segment` in an evaluation (the ledger rows commit with the segment run).
    Entered {
        /// The segment.
        segment: String,
    },
    /// Entities exiting `segment` in an evaluation.
    Exited {
        /// The segment.
        segment: String,
    },
    /// Every current member of `segment`, each time a schedule with a `{"type": "workflow"}` job naming this
    /// workflow is due (see [`crate::workflow::schedule`]), or on [`Workspace::trigger`](crate::Workspace::trigger).
    Schedule {
        /// The segment.
        segment: String,
    },
    /// Only [`Workspace::trigger`](crate::Workspace::trigger).
    Manual {
        /// The entity type the workflow is for.
        entity: String,
    },
}

/// Whether an entity may go through a workflow again.
// `Never {}` and `Always {}` are struct variants, not unit ones: serde does not apply `deny_unknown_fields` to the
// unit variants of an internally tagged enum, so `{"type": "always", "typo": 1}` was silently accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReentrySpec {
    /// Once per entity, ever (the default).
    Never {},
    /// Again only when its last start is at least `seconds` old.
    Cooldown {
        /// The cool-down, in seconds.
        seconds: u64,
    },
    /// Every time it is triggered.
    Always {},
}

impl Default for ReentrySpec {
    fn default() -> Self {
        ReentrySpec::Never {}
    }
}

/// A frequency cap: at most `max` deliveries on `channel` per entity within any `seconds`-long window, counting
/// the deliveries of every workflow on that channel (see `docs/workflows.md`, "Frequency caps").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrequencyCapSpec {
    /// The channel counted (`email`, `sms`, …).
    pub channel: String,
    /// Most deliveries in the window (at least 1).
    pub max: u32,
    /// The window, in seconds (1 s to 366 days).
    pub seconds: u64,
}

/// Quiet hours in the entity's time zone: a delivery due between `start` and `end` (local times of day, `"22:00"`;
/// `start` after `end` spans midnight) is held until `end`, not dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursSpec {
    /// When quiet hours begin, `HH:MM` local time.
    pub start: String,
    /// When they end, `HH:MM` local time.
    pub end: String,
    /// The entity attribute holding its IANA time zone (when not named, or its value is missing or invalid:
    /// `timezone`, else the workspace time zone).
    #[serde(default)]
    pub timezone_attribute: Option<String>,
    /// A fixed IANA time zone (`Europe/Berlin`) used without a valid `timezone_attribute` value.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// Policies of a workflow.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoliciesSpec {
    /// Re-entry (default: never).
    #[serde(default)]
    pub reentry: ReentrySpec,
    /// Attempts per delivery before it is dead-lettered (default 5, at most 20).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// First retry delay in milliseconds, doubled per attempt with jitter (default 1000).
    #[serde(default)]
    pub backoff_ms: Option<u64>,
    /// Frequency caps applied to this workflow's deliveries, counting every workflow's deliveries on the channel;
    /// a delivery over a cap is skipped with status `capped` and the entity goes on to the next step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frequency_caps: Vec<FrequencyCapSpec>,
    /// Quiet hours for this workflow's action steps (held until they end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHoursSpec>,
}

/// One way of a random split: the share of entities (`weight` percent) that jump to `step`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitBranchSpec {
    /// Percent of entities, 1 to 100; a split's weights sum to 100.
    pub weight: u32,
    /// The step they jump to.
    pub step: String,
}

/// One step of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StepSpec {
    /// Sends on a channel: `action` names an action registered with
    /// [`Workspace::register_action`](crate::Workspace::register_action), or is an action config (`{"type":
    /// "webhook", …}`) built by the workspace's action factory; `template` names a stored template.
    Action {
        /// The step's name (unique in the workflow).
        name: String,
        /// The action: a registered name or a config.
        action: serde_json::Value,
        /// The channel for suppression lists (default: the action's name, or its `type`).
        #[serde(default)]
        channel: Option<String>,
        /// The template to render (none: empty content).
        #[serde(default)]
        template: Option<String>,
        /// Most deliveries per second this step sends (a token bucket per step, on the workspace clock; rows
        /// beyond it stay pending). The action's own [`max_rate_per_second`](crate::Action::max_rate_per_second)
        /// applies as well.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate_per_second: Option<f64>,
    },
    /// Waits before the next step (a ledger row with a due time, so it survives a restart): `seconds`, or
    /// `until` a local time of day (`"09:00"`) in the entity's time zone — exactly one of the two.
    Wait {
        /// The step's name.
        name: String,
        /// How long, in seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<u64>,
        /// The next local time of day (`HH:MM`) to wait for; a time skipped by a DST change moves to the next
        /// valid instant, a repeated one takes its first occurrence.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<String>,
        /// The entity attribute holding its IANA time zone for `until` (when not named, or its value is missing
        /// or invalid: `timezone`, else the workspace time zone; the fallback is recorded in the row's `detail`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone_attribute: Option<String>,
        /// A fixed IANA time zone for `until` used without a valid `timezone_attribute` value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
    },
    /// Jumps to `then` when the entity matches `rule` now, else to `else`.
    Branch {
        /// The step's name.
        name: String,
        /// A rule in any dialect (checked against the workflow's entity at definition, stored canonical).
        #[schemars(with = "crate::rules::Rule")]
        rule: serde_json::Value,
        /// The rule's dialect: `auto` (default), `segkit`, `querybuilder` or `jsonlogic`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dialect: Option<String>,
        /// The step to jump to when the rule holds.
        then: String,
        /// The step to jump to otherwise.
        #[serde(rename = "else")]
        otherwise: String,
    },
    /// Jumps to one of `branches` at random by weight, the same way every time for one (workflow, entity).
    Split {
        /// The step's name.
        name: String,
        /// The ways, 2 to [`MAX_SPLIT_BRANCHES`](crate::limits::MAX_SPLIT_BRANCHES), weights summing to 100.
        branches: Vec<SplitBranchSpec>,
    },
    /// Ends the workflow for the entity.
    Exit {
        /// The step's name.
        name: String,
    },
}

impl StepSpec {
    /// The step's name.
    pub fn name(&self) -> &str {
        match self {
            StepSpec::Action { name, .. }
            | StepSpec::Wait { name, .. }
            | StepSpec::Branch { name, .. }
            | StepSpec::Split { name, .. }
            | StepSpec::Exit { name } => name,
        }
    }

    /// The kind of step, as in the spec's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            StepSpec::Action { .. } => "action",
            StepSpec::Wait { .. } => "wait",
            StepSpec::Branch { .. } => "branch",
            StepSpec::Split { .. } => "split",
            StepSpec::Exit { .. } => "exit",
        }
    }
}

/// A workflow: a trigger, steps run in order (branch and split steps jump by name), and policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// The workflow's name (entity-name rules).
    pub name: String,
    /// What starts it.
    pub trigger: TriggerSpec,
    /// The steps, in order.
    pub steps: Vec<StepSpec>,
    /// Policies.
    #[serde(default)]
    pub policies: PoliciesSpec,
}

impl Spec for WorkflowSpec {
    const KIND: SpecKind = SpecKind::Workflow;
}
