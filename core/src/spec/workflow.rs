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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReentrySpec {
    /// Once per entity, ever (the default).
    #[default]
    Never,
    /// Again only when its last start is at least `seconds` old.
    Cooldown {
        /// The cool-down, in seconds.
        seconds: u64,
    },
    /// Every time it is triggered.
    Always,
}

/// Policies of a workflow.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
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
}

/// One step of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    },
    /// Waits `seconds` before the next step (a ledger row with a due time, so it survives a restart).
    Wait {
        /// The step's name.
        name: String,
        /// How long.
        seconds: u64,
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
            StepSpec::Action { name, .. } | StepSpec::Wait { name, .. } | StepSpec::Exit { name } => name,
        }
    }
}

/// A workflow: a trigger, steps run in order, and policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
