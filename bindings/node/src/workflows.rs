//! Workflows from JavaScript: actions, templates, workflows, triggers, the dispatcher, the ledger, replay and
//! suppression lists, dry runs, schedules and the scheduler loop (`serve`, stopped through a cancellation token
//! index.js ties to an AbortSignal). One thin method per core method: specs arrive as JSON text for core's request model
//! (`segkit::spec`, snake_case fields, so a spec read back defines the same workflow again); ledger rows and
//! dispatch reports go back with camelCase keys.

use std::sync::Arc;
use std::time::Duration;

use napi_derive::napi;
use segkit::spec::{ScheduleSpec, TemplateSpec, WorkflowSpec};
use segkit::workflow::{DeliveryFilter, ServeOptions, Status};
use serde_json::Value;

use crate::action::{ExecuteFn, JsAction};
use crate::{camel_keys, guard, invalid, NativeWorkspace, OrJs, Result};

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).js()
}

/// A ledger filter: `status` is a status name (`pending`, `running`, `delivered`, `done`, `suppressed`, `dead`).
fn delivery_filter(workflow: Option<String>, status: Option<String>, ids: Option<Vec<i64>>) -> Result<DeliveryFilter> {
    let status = match status {
        None => None,
        Some(s) => Some(Status::parse(&s).ok_or_else(|| {
            invalid(format!(
                "unknown delivery status `{s}` (one of pending, running, delivered, done, suppressed, dead)"
            ))
        })?),
    };
    #[allow(clippy::needless_update)] // other filter fields may come; they default to "any"
    Ok(DeliveryFilter { workflow, status, ids, ..Default::default() })
}

#[napi]
impl NativeWorkspace {
    /// Registers a custom action: index.js's wrapper around the user's async function.
    #[napi]
    pub fn register_js_action(
        &self,
        name: String,
        kind: String,
        execute: ExecuteFn,
        parts: Option<Vec<String>>,
        max_rate_per_second: Option<f64>,
    ) -> Result<()> {
        let action = JsAction::new(kind, execute, parts, max_rate_per_second)?;
        guard(|| self.inner.register_action(&name, Arc::new(action)).js())
    }

    /// Registers a built-in action from its config `{type, …}`.
    #[napi]
    pub fn register_action_config(&self, name: String, config: Value) -> Result<()> {
        guard(|| {
            let action = crate::action::factory().build(&config).js()?;
            self.inner.register_action(&name, action).js()
        })
    }

    /// Defines (or replaces) a template from its spec (`segkit::spec::TemplateSpec`) as JSON text.
    #[napi]
    pub async fn define_template(&self, spec_json: String) -> Result<Value> {
        let spec = segkit::spec::from_json_text::<TemplateSpec>(&spec_json).js()?;
        to_value(&self.inner.define_template(spec).await.js()?)
    }

    /// A stored template.
    #[napi]
    pub fn template(&self, name: String) -> Result<Value> {
        guard(|| to_value(&self.inner.template(&name).js()?))
    }

    /// The rendered parts of a template for the entity with key `key`; `pii` values as `***` when `mask_pii`.
    #[napi]
    pub async fn render(&self, template: String, key: String, mask_pii: bool) -> Result<Value> {
        to_value(&self.inner.render_masked(&template, &key, mask_pii).await.js()?)
    }

    /// Defines (or replaces) a workflow from its spec (`segkit::spec::WorkflowSpec`) as JSON text.
    #[napi]
    pub async fn define_workflow(&self, spec_json: String) -> Result<Value> {
        let spec = segkit::spec::from_json_text::<WorkflowSpec>(&spec_json).js()?;
        to_value(&self.inner.define_workflow(spec).await.js()?)
    }

    /// A stored workflow.
    #[napi]
    pub fn workflow(&self, name: String) -> Result<Value> {
        guard(|| to_value(&self.inner.workflow(&name).js()?))
    }

    /// All workflows, by name.
    #[napi]
    pub fn workflows(&self) -> Result<Value> {
        guard(|| to_value(&self.inner.workflows().js()?))
    }

    /// Deletes a workflow (its ledger rows stay).
    #[napi]
    pub fn delete_workflow(&self, name: String) -> Result<()> {
        guard(|| self.inner.delete_workflow(&name).js())
    }

    /// Triggers a workflow for `keys` (as text), or for every member / entity; resolves to the rows added.
    #[napi]
    pub async fn trigger(&self, name: String, keys: Option<Vec<String>>) -> Result<f64> {
        Ok(self.inner.trigger(&name, keys).await.js()? as f64)
    }

    /// One dispatch pass: `{claimed, delivered, done, retried, dead, suppressed}`.
    #[napi]
    pub async fn dispatch_due(&self, limit: u32, concurrency: u32) -> Result<Value> {
        let report = self.inner.dispatch_due(limit as usize, concurrency as usize).await.js()?;
        Ok(camel_keys(to_value(&report)?))
    }

    /// Dispatches the due backlog in claims of `batch` rows: the summed report, camelCased.
    #[napi]
    pub async fn dispatch_backlog(&self, batch: u32, concurrency: u32) -> Result<Value> {
        let report = self.inner.dispatch_backlog(batch as usize, concurrency as usize).await.js()?;
        Ok(camel_keys(to_value(&report)?))
    }

    /// Ledger rows matching the filter, oldest first, camelCased.
    #[napi]
    pub fn deliveries(
        &self,
        workflow: Option<String>,
        status: Option<String>,
        ids: Option<Vec<i64>>,
        limit: u32,
    ) -> Result<Vec<Value>> {
        guard(|| {
            let filter = delivery_filter(workflow, status, ids)?;
            self.inner.deliveries(&filter, limit as usize).js()?.iter().map(|r| Ok(camel_keys(to_value(r)?))).collect()
        })
    }

    /// Sends dead-lettered deliveries again; resolves to how many.
    #[napi]
    pub async fn replay(&self, workflow: Option<String>, ids: Option<Vec<i64>>) -> Result<f64> {
        Ok(self.inner.replay(&delivery_filter(workflow, None, ids)?).js()? as f64)
    }

    /// Puts keys on a channel's suppression list; returns how many were new.
    #[napi]
    pub async fn suppress(&self, channel: String, keys: Vec<String>) -> Result<f64> {
        Ok(self.inner.suppress(&channel, &keys).js()? as f64)
    }

    /// Takes keys off a channel's suppression list; returns how many were on it.
    #[napi]
    pub async fn unsuppress(&self, channel: String, keys: Vec<String>) -> Result<f64> {
        Ok(self.inner.unsuppress(&channel, &keys).js()? as f64)
    }

    /// Who would receive what if the workflow were triggered now (nothing is sent or written): rows with
    /// camelCase keys (`entityKey`, `step`, `channel`, `status`, `content`, `detail`).
    /// With `mask_pii`, `pii` values render as `***` in the content.
    #[napi]
    pub async fn dry_run_workflow(
        &self,
        name: String,
        keys: Option<Vec<String>>,
        limit: u32,
        mask_pii: bool,
    ) -> Result<Vec<Value>> {
        let rows = self.inner.dry_run_workflow_with(&name, keys, limit as usize, mask_pii).await.js()?;
        rows.iter().map(|r| Ok(camel_keys(to_value(r)?))).collect()
    }

    /// Defines (or replaces) a schedule from its spec (`segkit::spec::ScheduleSpec`) as JSON text; returns it
    /// with its state (camelCase keys; the spec itself keeps core's field names).
    #[napi]
    pub async fn schedule(&self, spec_json: String) -> Result<Value> {
        let spec = segkit::spec::from_json_text::<ScheduleSpec>(&spec_json).js()?;
        Ok(camel_keys(to_value(&self.inner.schedule(spec).await.js()?)?))
    }

    /// A schedule with its state.
    #[napi]
    pub fn schedule_info(&self, name: String) -> Result<Value> {
        guard(|| Ok(camel_keys(to_value(&self.inner.schedule_info(&name).js()?)?)))
    }

    /// All schedules with their state, by name.
    #[napi]
    pub fn schedules(&self) -> Result<Vec<Value>> {
        guard(|| self.inner.schedules().js()?.iter().map(|s| Ok(camel_keys(to_value(s)?))).collect())
    }

    /// Deletes a schedule.
    #[napi]
    pub fn delete_schedule(&self, name: String) -> Result<()> {
        guard(|| self.inner.delete_schedule(&name).js())
    }

    /// Runs the jobs due at or before `now` (RFC 3339; default the workspace clock's now), then one dispatch
    /// pass: `{jobs: [{schedule, due, ok, outcome, nextDue}], dispatch: {claimed, delivered, …}}`.
    #[napi]
    pub async fn run_due(&self, now: Option<String>) -> Result<Value> {
        let now = match now {
            Some(s) => segkit::FixedClock::parse(&s).js()?.0,
            None => self.inner.now(),
        };
        let mut report = camel_keys(to_value(&self.inner.run_due(now).await.js()?)?);
        if let Some(d) = report.get_mut("dispatch") {
            *d = camel_keys(d.take());
        }
        Ok(report)
    }

    /// Runs the scheduler until the token `cancel` (from `cancelTokenNew`) is cancelled, then shuts down
    /// gracefully: `{passes, jobs, failedJobs, delivered, released}`.
    #[napi]
    pub async fn serve(&self, poll_interval_ms: u32, grace_ms: u32, cancel: u32) -> Result<Value> {
        let token = crate::sources::token(cancel)?;
        let options = ServeOptions::default()
            .poll_interval(Duration::from_millis(poll_interval_ms.into()))
            .grace(Duration::from_millis(grace_ms.into()));
        Ok(camel_keys(to_value(&self.inner.serve(options, token).await.js()?)?))
    }
}
