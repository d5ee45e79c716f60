//! The project model: definitions by kind, reusing the spec types of [`crate::spec`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::sources::SourceDefinition;
use crate::spec::{EntitySpec, ScheduleSpec, SegmentSpec, TemplateSpec, WorkflowSpec};

/// The kinds of object a project holds, in the order they are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// An entity ([`EntitySpec`]).
    Entity,
    /// A named source ([`SourceDefinition`]).
    Source,
    /// A static-list segment ([`StaticSegmentSpec`]).
    StaticSegment,
    /// A rule segment ([`SegmentSpec`]).
    Segment,
    /// A message template ([`TemplateSpec`]).
    Template,
    /// A workflow ([`WorkflowSpec`]).
    Workflow,
    /// A cron schedule ([`ScheduleSpec`]).
    Schedule,
}

impl ObjectKind {
    /// Every kind, in apply order.
    pub const ALL: [ObjectKind; 7] = [
        ObjectKind::Entity,
        ObjectKind::Source,
        ObjectKind::StaticSegment,
        ObjectKind::Segment,
        ObjectKind::Template,
        ObjectKind::Workflow,
        ObjectKind::Schedule,
    ];

    /// The kind's table in a project file (`entities`, `static_segments`…).
    pub fn table(self) -> &'static str {
        match self {
            ObjectKind::Entity => "entities",
            ObjectKind::Source => "sources",
            ObjectKind::StaticSegment => "static_segments",
            ObjectKind::Segment => "segments",
            ObjectKind::Template => "templates",
            ObjectKind::Workflow => "workflows",
            ObjectKind::Schedule => "schedules",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Entity => "entity",
            ObjectKind::Source => "source",
            ObjectKind::StaticSegment => "static segment",
            ObjectKind::Segment => "segment",
            ObjectKind::Template => "template",
            ObjectKind::Workflow => "workflow",
            ObjectKind::Schedule => "schedule",
        })
    }
}

/// A static-list segment in a project: its definition only. The keys are data (see
/// [`Workspace::define_static_segment`](crate::Workspace::define_static_segment)): applying creates a missing list
/// empty and never touches the keys of an existing one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticSegmentSpec {
    /// The segment's name.
    pub name: String,
    /// The entity whose keys it lists.
    pub entity: String,
}

/// A project: the definitions config-as-code manages, by kind. Build one with [`Project::from_path`],
/// [`Project::from_toml_str`] or [`Project::from_yaml_str`], or from a workspace with
/// [`Workspace::export`](crate::Workspace::export).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Project {
    /// Entities.
    pub entities: Vec<EntitySpec>,
    /// Named sources (secrets as `env:NAME` references).
    pub sources: Vec<SourceDefinition>,
    /// Static-list segments (definitions only).
    pub static_segments: Vec<StaticSegmentSpec>,
    /// Rule segments.
    pub segments: Vec<SegmentSpec>,
    /// Message templates.
    pub templates: Vec<TemplateSpec>,
    /// Workflows.
    pub workflows: Vec<WorkflowSpec>,
    /// Cron schedules.
    pub schedules: Vec<ScheduleSpec>,
    /// The file each object came from (for error messages), by kind and name.
    pub(crate) origins: BTreeMap<(ObjectKind, String), String>,
}

impl Project {
    /// How many objects the project holds.
    pub fn len(&self) -> usize {
        self.entities.len()
            + self.sources.len()
            + self.static_segments.len()
            + self.segments.len()
            + self.templates.len()
            + self.workflows.len()
            + self.schedules.len()
    }

    /// Whether the project holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The file an object was loaded from (`None` for a project built in code or parsed from a string).
    pub fn origin(&self, kind: ObjectKind, name: &str) -> Option<&str> {
        self.origins.get(&(kind, name.to_string())).map(String::as_str)
    }

    /// The names of the objects of `kind`, in the project's order.
    pub fn names(&self, kind: ObjectKind) -> Vec<String> {
        match kind {
            ObjectKind::Entity => self.entities.iter().map(|x| x.name.clone()).collect(),
            ObjectKind::Source => self.sources.iter().map(|x| x.name.clone()).collect(),
            ObjectKind::StaticSegment => self.static_segments.iter().map(|x| x.name.clone()).collect(),
            ObjectKind::Segment => self.segments.iter().map(|x| x.name.clone()).collect(),
            ObjectKind::Template => self.templates.iter().map(|x| x.name.clone()).collect(),
            ObjectKind::Workflow => self.workflows.iter().map(|x| x.name.clone()).collect(),
            ObjectKind::Schedule => self.schedules.iter().map(|x| x.name.clone()).collect(),
        }
    }
}
