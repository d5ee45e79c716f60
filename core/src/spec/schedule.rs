//! Specs of scheduled jobs (see [`crate::workflow::schedule`]).
//!
//! ```
//! use segkit::spec::{from_json_text, ScheduleSpec, JobSpec};
//! let s: ScheduleSpec = from_json_text(r#"{"name": "nightly", "cron": "30 2 * * *",
//!     "timezone": "Europe/Berlin", "job": {"type": "evaluate", "segment": "vip"}}"#).unwrap();
//! assert_eq!(s.job, JobSpec::Evaluate { segment: "vip".into() });
//! let e = from_json_text::<ScheduleSpec>(r#"{"name": "n", "cron": "* * * * *", "job": {"type": "sink"}}"#)
//!     .unwrap_err();
//! assert!(e.to_string().contains("schedule.job") && e.to_string().contains("unknown variant `sink`"), "{e}");
//! ```

use serde::{Deserialize, Serialize};

use super::{Spec, SpecKind};

/// What a schedule does when it is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobSpec {
    /// Syncs the named source ([`Workspace::sync`](crate::Workspace::sync)).
    Sync {
        /// The source.
        source: String,
    },
    /// Evaluates the segment ([`Workspace::evaluate`](crate::Workspace::evaluate)); the run writes the ledger
    /// rows of the workflows its entered / exited keys trigger.
    Evaluate {
        /// The segment.
        segment: String,
    },
    /// Starts a workflow whose trigger is `{"type": "schedule", "segment": …}` for every current member of the
    /// segment, under the trigger version `schedule:<schedule>:<due instant>`.
    Workflow {
        /// The workflow.
        workflow: String,
    },
    /// One dispatch pass over the delivery ledger.
    Dispatch,
}

/// A cron schedule: a job run when a standard cron pattern (`min hour day month weekday`, an optional leading
/// seconds field) matches in a time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// The schedule's name (entity-name rules).
    pub name: String,
    /// The cron pattern, e.g. `30 2 * * *` (02:30 every day) or `0 */15 * * * *` (every 15 minutes, with seconds).
    pub cron: String,
    /// The IANA time zone the pattern is read in (default: the workspace's time zone when it is defined).
    #[serde(default)]
    pub timezone: Option<String>,
    /// What to do.
    pub job: JobSpec,
}

impl Spec for ScheduleSpec {
    const KIND: SpecKind = SpecKind::Schedule;
}
