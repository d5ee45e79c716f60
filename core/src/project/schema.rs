//! The JSON Schema of a project file (shipped as `docs/project.schema.json`, kept current by a test).

use std::collections::BTreeMap;

use serde_json::Value;

use super::model::StaticSegmentSpec;
use crate::sources::SourceDefinition;
use crate::spec::{EntitySpec, ScheduleSpec, SegmentSpec, TemplateSpec, WorkflowSpec};

/// A segkit project file: tables of name → definition by kind. The table key is each definition's name (a `name`
/// field may be given only if equal to it). TOML or YAML; a directory of such files is merged by kind.
#[derive(schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ProjectFile {
    /// Entities: profiles (keyed) and events, with attributes in storage order and links.
    #[serde(default)]
    entities: BTreeMap<String, EntitySpec>,
    /// Named sources: connector config (secrets as `env:NAME`), mapping and mode.
    #[serde(default)]
    sources: BTreeMap<String, SourceDefinition>,
    /// Static-list segments: the definition only (the keys are data).
    #[serde(default)]
    static_segments: BTreeMap<String, StaticSegmentSpec>,
    /// Rule segments.
    #[serde(default)]
    segments: BTreeMap<String, SegmentSpec>,
    /// Message templates.
    #[serde(default)]
    templates: BTreeMap<String, TemplateSpec>,
    /// Workflows.
    #[serde(default)]
    workflows: BTreeMap<String, WorkflowSpec>,
    /// Cron schedules.
    #[serde(default)]
    schedules: BTreeMap<String, ScheduleSpec>,
}

/// The JSON Schema (draft 2020-12) of a project file, for editors and validators.
pub fn json_schema() -> Value {
    let mut v = serde_json::to_value(schemars::schema_for!(ProjectFile)).unwrap_or(Value::Null);
    v["title"] = Value::String("segkit project".into());
    if let Some(defs) = v.get_mut("$defs").and_then(Value::as_object_mut) {
        for name in [
            "EntitySpec",
            "SourceDefinition",
            "StaticSegmentSpec",
            "SegmentSpec",
            "TemplateSpec",
            "WorkflowSpec",
            "ScheduleSpec",
        ] {
            let Some(def) = defs.get_mut(name) else { continue };
            if let Some(req) = def.get_mut("required").and_then(Value::as_array_mut) {
                req.retain(|r| r != "name");
            }
            if name == "SourceDefinition" {
                def["additionalProperties"] = Value::Bool(false);
            }
        }
    }
    v
}
