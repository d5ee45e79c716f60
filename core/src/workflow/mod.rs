//! Workflows: what segments do. A workflow has a trigger (a segment's entered or exited keys, or a manual
//! [`Workspace::trigger`](crate::Workspace::trigger)), steps (action, wait, branch, split, exit; see [`steps`])
//! and policies (re-entry, retries, frequency caps, quiet hours, rate limits; see [`policy`]); channels have
//! suppression lists. [`Workspace::dry_run_workflow`](crate::Workspace::dry_run_workflow) shows who would
//! receive what without sending.
//!
//! Every step an entity reaches is one row of the durable delivery [`ledger`] in the catalog, written in the
//! transaction that produced it (the segment run, the trigger, or the completion of the previous step). The
//! dispatcher ([`Workspace::dispatch_due`](crate::Workspace::dispatch_due)) claims due rows with a lease,
//! executes them with bounded concurrency, and records the outcome; retries back off exponentially with
//! jitter ([`dispatch::backoff`]), honouring a receiver's retry-after; the last failure dead-letters the row,
//! and [`Workspace::replay`](crate::Workspace::replay) sends it again.
//!
//! The [`schedule`] module runs cron jobs (syncs, evaluations, scheduled workflows, dispatch):
//! [`Workspace::run_due`](crate::Workspace::run_due) and the [`Workspace::serve`](crate::Workspace::serve) loop.

pub mod dispatch;
pub mod ledger;
pub mod policy;
pub mod schedule;
pub mod steps;
pub mod template;

pub use crate::spec::workflow::{
    FrequencyCapSpec, PoliciesSpec, QuietHoursSpec, ReentrySpec, SplitBranchSpec, StepSpec, TemplateSpec, TriggerSpec,
    WorkflowSpec,
};
pub use dispatch::DispatchReport;
pub use ledger::{DeliveryFilter, DryRunRow, DryRunStatus, LedgerRow, Status, WorkflowRun};
pub use schedule::{JobSpec, RunDueReport, ScheduleInfo, ScheduleSpec, ServeOptions, ServeReport};
