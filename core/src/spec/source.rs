//! The spec of a named source (what `define_source` takes), with unknown fields refused.
//!
//! ```
//! use segkit::spec::{from_json_text, SourceSpec};
//! let s: SourceSpec = from_json_text(r#"{"name": "crm", "entity": "user",
//!     "config": {"type": "csv", "path": "users.csv"}, "mode": "upsert"}"#).unwrap();
//! assert_eq!(s.into_definition().name, "crm");
//! let e = from_json_text::<SourceSpec>(r#"{"name": "crm", "entity": "user", "config": {}, "colour": 1}"#)
//!     .unwrap_err();
//! assert!(e.to_string().contains("source.colour: unknown field `colour`"), "{e}");
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Spec, SpecKind};
use crate::ingest::{IngestMode, Mapping};
use crate::sources::SourceDefinition;

/// A named source: `{name, entity, config, mapping, mode}` (see [`SourceDefinition`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// The source's name (same rules as entity names).
    pub name: String,
    /// The target entity.
    pub entity: String,
    /// The connector config, tagged by `type`; secrets as `env:NAME` references.
    pub config: Value,
    /// Field mapping: attribute → source field, or `{source, constant, transforms}`.
    #[serde(default)]
    pub mapping: Mapping,
    /// Ingest mode (default: upsert for profiles, append for events).
    #[serde(default)]
    pub mode: Option<IngestMode>,
}

impl Spec for SourceSpec {
    const KIND: SpecKind = SpecKind::Source;
}

impl SourceSpec {
    /// The definition this spec describes (checked when the workspace defines it).
    pub fn into_definition(self) -> SourceDefinition {
        SourceDefinition {
            name: self.name,
            entity: self.entity,
            config: self.config,
            mapping: self.mapping,
            mode: self.mode,
        }
    }
}
