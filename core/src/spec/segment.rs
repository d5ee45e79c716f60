//! The segment spec: `{name, entity, rule, dialect, description, split, keep_runs}`.
//!
//! ```
//! use segkit::spec::{self, SegmentSpec};
//! let def = spec::from_json_text::<SegmentSpec>(
//!     r#"{"name": "adults", "entity": "user", "rule": {"attribute": "age", "op": "ge", "value": 18},
//!         "keep_runs": 3}"#,
//! ).unwrap().into_definition().unwrap();
//! assert_eq!(def.keep_runs, Some(3));
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{bare_message, Spec, SpecKind};
use crate::error::{Error, Result};
use crate::limits;
use crate::rules::{Dialect, Rule};
use crate::segment::SegmentDefinition;
use crate::split::Split;

/// What a caller sends to define (or dry-run) a segment.
///
/// `rule` is a rule in any of the three dialects (segkit, react-querybuilder, JsonLogic) as JSON, or the JSON text
/// of one; `dialect` is `auto` (default), `segkit`, `querybuilder` or `jsonlogic`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentSpec {
    /// Segment name.
    pub name: String,
    /// The entity whose members it selects.
    pub entity: String,
    /// The rule, as JSON or as JSON text.
    #[schemars(schema_with = "crate::rules::rule_or_text")]
    pub rule: Value,
    /// The rule's dialect: `auto` (default), `segkit`, `querybuilder` or `jsonlogic`.
    #[serde(default, deserialize_with = "dialect", serialize_with = "dialect_text", skip_serializing_if = "is_auto")]
    #[schemars(with = "Option<String>")]
    pub dialect: Dialect,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A deterministic split of the members into a holdout and variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// How many runs to keep (default: all).
    #[serde(default, alias = "keepRuns", skip_serializing_if = "Option::is_none")]
    pub keep_runs: Option<u32>,
}

fn is_auto(d: &Dialect) -> bool {
    *d == Dialect::Auto
}

fn dialect_text<S: Serializer>(d: &Dialect, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(match d {
        Dialect::Auto => "auto",
        Dialect::Segkit => "segkit",
        Dialect::QueryBuilder => "querybuilder",
        Dialect::JsonLogic => "jsonlogic",
    })
}

impl SegmentSpec {
    /// The spec of a stored (rule) segment: its rule in segkit's dialect, as stored.
    pub fn from_definition(def: &SegmentDefinition) -> SegmentSpec {
        SegmentSpec {
            name: def.name.clone(),
            entity: def.entity.clone(),
            rule: def.rule.to_json(),
            dialect: Dialect::Segkit,
            description: def.description.clone(),
            split: def.split.clone(),
            keep_runs: def.keep_runs,
        }
    }
}

impl Spec for SegmentSpec {
    const KIND: SpecKind = SpecKind::Segment;
}

fn dialect<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Dialect, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(Dialect::Auto),
        Some(s) => s.parse().map_err(|e: Error| serde::de::Error::custom(bare_message(&e))),
    }
}

impl SegmentSpec {
    /// The segment definition: the rule passes the limits ([`limits::check_rule_value`], or
    /// [`limits::parse_rule_text`] for text) and is parsed in its dialect. Type-checking against the entity
    /// happens when the workspace defines or evaluates it.
    pub fn into_definition(self) -> Result<SegmentDefinition> {
        let value = match self.rule {
            Value::String(text) => limits::parse_rule_text(&text)?,
            v => {
                limits::check_rule_value(&v)?;
                v
            }
        };
        let rule = Rule::parse(&value, self.dialect)?;
        let mut def = SegmentDefinition::new(self.name, self.entity, rule);
        def.description = self.description;
        def.split = self.split;
        def.keep_runs = self.keep_runs;
        Ok(def)
    }
}

impl TryFrom<SegmentSpec> for SegmentDefinition {
    type Error = Error;
    fn try_from(spec: SegmentSpec) -> Result<SegmentDefinition> {
        spec.into_definition()
    }
}
