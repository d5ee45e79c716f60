//! The request model: what a caller (Python, Node, a later HTTP service or config file) sends to define
//! entities and segments and to run ingests, as serde types that every front end deserializes into.
//!
//! Each spec parses from JSON text ([`from_json_text`]) or from a [`serde_json::Value`] ([`from_value`]) and
//! reports a bad field with its path from the root of the spec (`entity.attributes.age.type: unknown type
//! `int65``), through [`serde_path_to_error`]. A spec then converts into the model type the workspace takes
//! ([`Entity`](crate::Entity), [`SegmentDefinition`](crate::SegmentDefinition),
//! [`IngestOptions`](crate::IngestOptions)); the checks that need more than one field (the key exists, the rule
//! type-checks) stay with the model and the workspace, so they are written once.
//!
//! Specs are untrusted: text is bounded by [`crate::limits::MAX_RULE_TEXT_BYTES`], nesting by serde_json's
//! recursion limit (reported as [`crate::limits::MAX_RULE_DEPTH`]) and rules by
//! [`crate::limits::check_rule_value`] before any recursive code sees them.
//!
//! Prefer JSON text where the order of an object's keys matters (the attribute map of an entity is the storage
//! order): a [`serde_json::Value`] keeps its object keys sorted.

pub mod config_schema;
pub mod entity;
pub mod ingest;
pub mod schedule;
pub mod segment;
pub mod source;
pub mod workflow;

pub use entity::{AttributeOptions, AttributeSpec, AttributesSpec, EntitySpec, LinksSpec};
pub use ingest::IngestSpec;
pub use schedule::{JobSpec, ScheduleSpec};
pub use segment::SegmentSpec;
pub use source::SourceSpec;
pub use workflow::{TemplateSpec, WorkflowSpec};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::limits;

/// What a spec is, for its error paths (the root of every path) and the kind of error a bad field gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecKind {
    /// An entity definition: errors are [`Error::Definition`] under `entity`.
    Entity,
    /// A segment definition: errors are [`Error::Definition`] under `segment` (rule problems are [`Error::Rule`]).
    Segment,
    /// Options of one ingest: errors are [`Error::InvalidArgument`] under `ingest options` (mapping problems are
    /// [`Error::Definition`] under `mapping`).
    Ingest,
    /// A message template: errors are [`Error::Definition`] under `template`.
    Template,
    /// A workflow definition: errors are [`Error::Definition`] under `workflow`.
    Workflow,
    /// A cron schedule: errors are [`Error::Definition`] under `schedule`.
    Schedule,
    /// A named source: errors are [`Error::Definition`] under `source`.
    Source,
    /// One attribute added to an entity: errors are [`Error::Definition`] under `attribute`.
    Attribute,
}

impl SpecKind {
    /// The root of error paths, e.g. `entity`.
    pub fn root(self) -> &'static str {
        match self {
            SpecKind::Entity => "entity",
            SpecKind::Segment => "segment",
            SpecKind::Ingest => "ingest options",
            SpecKind::Template => "template",
            SpecKind::Workflow => "workflow",
            SpecKind::Schedule => "schedule",
            SpecKind::Source => "source",
            SpecKind::Attribute => "attribute",
        }
    }

    fn error(self, path: String, message: String) -> Error {
        match self {
            SpecKind::Entity
            | SpecKind::Segment
            | SpecKind::Template
            | SpecKind::Workflow
            | SpecKind::Schedule
            | SpecKind::Source
            | SpecKind::Attribute => Error::Definition { path, message },
            SpecKind::Ingest => Error::InvalidArgument(format!("{path}: {message}")),
        }
    }
}

/// A spec type: deserializable with a path-reporting parser, of a [`SpecKind`].
pub trait Spec: DeserializeOwned {
    /// Which spec this is.
    const KIND: SpecKind;
}

/// Parses a spec from JSON text, within the text-length and nesting limits.
pub fn from_json_text<T: Spec>(text: &str) -> Result<T> {
    if text.len() > limits::MAX_RULE_TEXT_BYTES {
        return Err(T::KIND.error(
            T::KIND.root().to_string(),
            format!(
                "the {} is {} bytes of JSON, longer than {} (limit MAX_RULE_TEXT_BYTES = {})",
                T::KIND.root(),
                text.len(),
                limits::MAX_RULE_TEXT_BYTES,
                limits::MAX_RULE_TEXT_BYTES
            ),
        ));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let out = serde_path_to_error::deserialize(&mut de).map_err(|e| spec_error(T::KIND, e))?;
    de.end().map_err(|e| T::KIND.error(T::KIND.root().to_string(), json_message(&e)))?;
    Ok(out)
}

/// Parses a spec from a JSON value (object keys of a `Value` are sorted: see the module docs).
pub fn from_value<T: Spec>(value: Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| spec_error(T::KIND, e))
}

/// `root.path` (`entity.attributes.age.type`); the root alone for the whole spec.
pub(crate) fn join_path(kind: SpecKind, path: &str) -> String {
    if path.is_empty() || path == "." {
        kind.root().to_string()
    } else if path.starts_with('[') {
        format!("{}{path}", kind.root())
    } else {
        format!("{}.{path}", kind.root())
    }
}

fn spec_error(kind: SpecKind, e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = join_path(kind, &e.path().to_string());
    let inner = e.into_inner();
    let message = json_message(&inner);
    if message.starts_with("recursion limit exceeded") {
        return match kind {
            SpecKind::Segment => limits::depth_error(),
            _ => kind.error(path, limits::nesting_message(kind.root())),
        };
    }
    if let Some(rest) = message.strip_prefix(RULE_ERROR_MARK) {
        // A rule problem found while deserializing (the limits): keep it a rule error.
        return Error::Rule { path: "<root>".into(), message: rest.to_string() };
    }
    kind.error(path, message)
}

/// Marks a custom serde error message that is really a rule error (so [`spec_error`] keeps its kind).
pub(crate) const RULE_ERROR_MARK: &str = "\u{1}rule:";

/// serde_json's message without its ` at line 1 column 23` suffix (the spec may not have been text at all).
fn json_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    if e.line() == 0 {
        return s;
    }
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    s.strip_suffix(&suffix).map(str::to_string).unwrap_or(s)
}

/// The message of a segkit error without its `invalid definition of …:` framing, for serde custom errors.
pub(crate) fn bare_message(e: &Error) -> String {
    match e {
        Error::Definition { message, .. } | Error::Rule { message, .. } => message.clone(),
        Error::InvalidArgument(m) => m.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn deep_text(prefix: &str, depth: usize, suffix: &str) -> String {
        format!("{prefix}{}1{}{suffix}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn attribute_map_keeps_its_order_and_derives_key_nullability_once() {
        let e = from_json_text::<EntitySpec>(
            r#"{"name": "客户", "key": "客户编号", "attributes": {"姓名": "string", "客户编号": {"type": "int64", "nullable": true}, "年龄": "int32"}}"#,
        )
        .unwrap()
        .into_entity()
        .unwrap();
        let names: Vec<&str> = e.attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["姓名", "客户编号", "年龄"]);
        // The spec keeps what was sent; the model derives "keys are never nullable" when the workspace
        // normalises the entity (and its Arrow schema never has a nullable key either way).
        assert!(e.attributes[1].nullable);
        assert!(!e.schema().field(1).is_nullable());
    }

    #[test]
    fn bad_fields_are_reported_with_their_path() {
        let e = from_json_text::<EntitySpec>(
            r#"{"name": "u", "key": "id", "attributes": {"id": "int64", "age": {"type": "int65"}}}"#,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Definition);
        assert!(
            e.to_string().starts_with("invalid definition of entity.attributes.age.type: unknown type `int65`"),
            "{e}"
        );
        let e =
            from_json_text::<EntitySpec>(r#"{"name": "u", "attributes": [{"name": "id", "type": 3}]}"#).unwrap_err();
        assert!(
            e.to_string().starts_with("invalid definition of entity.attributes[0].type: invalid type: integer `3`"),
            "{e}"
        );
        let e = from_json_text::<EntitySpec>(r#"{"name": "u", "attributes": {}, "colour": 1}"#).unwrap_err();
        assert!(e.to_string().contains("entity.colour: unknown field `colour`"), "{e}");
        let e = from_json_text::<EntitySpec>(r#"{"name": "u", "links": {"x": 1}, "attributes": {}}"#).unwrap_err();
        assert!(e.to_string().contains("entity.links.x: invalid type: integer `1`, expected a string"), "{e}");
        let e = from_json_text::<SegmentSpec>(r#"{"name": "s", "entity": "u", "rule": {}, "split": {"holdout": "x"}}"#)
            .unwrap_err();
        assert!(e.to_string().contains("segment.split.holdout: invalid type"), "{e}");
        let e = from_json_text::<IngestSpec>(r#"{"mode": "append", "mappings": {}}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("ingest options.mappings: unknown field `mappings`"), "{e}");
        let e = from_json_text::<IngestSpec>("{} x").unwrap_err();
        assert!(e.to_string().contains("ingest options: trailing characters"), "{e}");
        let e = from_json_text::<EntitySpec>("\"user\"").unwrap_err();
        assert!(e.to_string().contains("invalid definition of entity: invalid type: string \"user\""), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused_with_the_limit_not_a_stack_overflow() {
        // Far beyond serde_json's recursion limit, in every place a spec can nest. An entity spec has no free-form
        // JSON, so nesting is refused at the first level that expects something else.
        for prefix in [
            r#"{"name": "u", "description": "#,
            r#"{"name": "u", "attributes": {"a": "#,
            r#"{"name": "u", "attributes": "#,
        ] {
            let e = from_json_text::<EntitySpec>(&deep_text(prefix, 100_000, "}}")).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Definition);
            assert!(e.to_string().contains("invalid type: sequence"), "{e}");
        }
        let text = deep_text(r#"{"name": "s", "entity": "u", "rule": "#, 100_000, "}");
        let e = from_json_text::<SegmentSpec>(&text).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Rule);
        assert!(e.to_string().contains("MAX_RULE_DEPTH"), "{e}");
        // Below serde_json's limit but beyond MAX_RULE_DEPTH: parsed, then refused by the rule limits.
        let mut rule = serde_json::json!({"attribute": "a", "op": "is_null"});
        for _ in 0..limits::MAX_RULE_DEPTH {
            rule = serde_json::json!({ "not": rule });
        }
        let text = serde_json::json!({"name": "s", "entity": "u", "rule": rule}).to_string();
        let e = from_json_text::<SegmentSpec>(&text).unwrap().into_definition().unwrap_err();
        assert!(e.to_string().contains("MAX_RULE_DEPTH"), "{e}");
        // A rule given as text is held to the same limits.
        let spec = serde_json::json!({"name": "s", "entity": "u", "rule": deep_text("", 100_000, "")});
        let e = from_value::<SegmentSpec>(spec).unwrap().into_definition().unwrap_err();
        assert!(e.to_string().contains("MAX_RULE_DEPTH"), "{e}");
        let e = from_json_text::<IngestSpec>(&deep_text(r#"{"mapping": "#, 100_000, "}")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(e.to_string().contains("nested too deeply"), "{e}");
    }

    #[test]
    fn node_and_list_limits_apply_to_rules_in_specs() {
        let many: Vec<_> = (0..=limits::MAX_RULE_NODES).map(|_| serde_json::json!({})).collect();
        let spec = serde_json::json!({"name": "s", "entity": "u", "rule": {"and": many}});
        let e = from_value::<SegmentSpec>(spec).unwrap().into_definition().unwrap_err();
        assert!(e.to_string().contains("MAX_RULE_NODES"), "{e}");
    }
}
