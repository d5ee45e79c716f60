//! Config-as-code from JavaScript: plan / apply / export of a project (see `docs/project.md`). The logic is core's
//! (`segkit::project`); these only hand over the project text or path and return the plan as JSON.

use napi_derive::napi;
use serde_json::Value;

use crate::{guard, NativeWorkspace, OrJs, Result};

#[napi]
impl NativeWorkspace {
    /// Plans (`apply` false) or applies a project: a path to a file or directory, or TOML / YAML text. Returns the
    /// plan (`changes`, `blocked`, `applied`).
    #[napi]
    pub async fn reconcile(&self, project: String, apply: bool, allow_destructive: bool, prune: bool) -> Result<Value> {
        let p = segkit::Project::from_path_or_text(&project).js()?;
        let options = segkit::ApplyOptions { allow_destructive, prune };
        let plan = if apply { self.inner.apply(&p, options).await } else { self.inner.plan_with(&p, options).await };
        serde_json::to_value(plan.js()?).js()
    }

    /// The workspace's definitions as project text (`format`: `toml` or `yaml`).
    #[napi]
    pub fn export_project(&self, format: String) -> Result<String> {
        guard(|| self.inner.export().and_then(|p| p.to_text(&format)).js())
    }
}
