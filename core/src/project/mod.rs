//! Config-as-code: a declarative project file describing a workspace's entities, sources, segments, templates,
//! workflows and schedules; a plan of what applying it would change; an atomic apply; an export of a workspace as
//! such a file.
//!
//! A project is TOML or YAML, one file or a directory of files (`*.toml`, `*.yaml`, `*.yml` directly in it, merged
//! by kind; a name defined in two files is an error naming both). Each kind is a table of name → definition, the
//! definitions being the request model of [`crate::spec`] without their `name` (the table key is the name):
//!
//! ```toml
//! [entities.user]
//! key = "user_id"
//! attributes = { user_id = "int64", email = { type = "string", pii = true }, country = "string" }
//!
//! [segments.de_users]
//! entity = "user"
//! rule = { attribute = "country", op = "eq", value = "DE" }
//! ```
//!
//! Static-list segments are listed under `static_segments` with their entity only: their keys are data, not
//! configuration, so a project creates an empty list and never changes the keys of an existing one.
//!
//! [`Workspace::plan`](crate::Workspace::plan) validates the project against the workspace inside a catalog
//! transaction that it rolls back, and reports each object as created, updated, deleted or unchanged;
//! [`Workspace::apply`](crate::Workspace::apply) does the same and commits — every change or none. Objects of the
//! workspace that the project does not mention are left alone, unless [`ApplyOptions::prune`] is set: then they
//! are deleted. Destructive entity changes (dropping an attribute, changing an attribute's type, the key, the
//! kind or the event time of an entity that holds data — such a change recreates the entity, dropping its data —
//! and deleting an entity that holds data) are refused unless [`ApplyOptions::allow_destructive`] is set.
//! See `docs/project.md`.

mod apply;
mod export;
mod load;
mod model;
mod schema;

pub use apply::{Action, ApplyOptions, Change, Plan};
pub use model::{ObjectKind, Project, StaticSegmentSpec};
pub use schema::json_schema;
