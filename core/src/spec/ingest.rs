//! The ingest-options spec: `{mapping, mode}`.
//!
//! ```
//! use segkit::spec::{self, IngestSpec};
//! let o = spec::from_json_text::<IngestSpec>(r#"{"mode": "append", "mapping": {"email": "Email Address"}}"#)
//!     .unwrap().into_options().unwrap();
//! assert_eq!(o.mode, Some(segkit::IngestMode::Append));
//! let e = spec::from_json_text::<IngestSpec>(r#"{"mode": "merge"}"#).unwrap_err();
//! assert!(e.to_string().contains("ingest options.mode: unknown ingest mode `merge`"), "{e}");
//! ```

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{bare_message, Spec, SpecKind};
use crate::error::{Error, Result};
use crate::ingest::{IngestMode, IngestOptions, Mapping};

/// What a caller sends with one ingest: the field `mapping` (see [`Mapping`] for its JSON form) and the `mode`
/// (`append`, `upsert`, `full_refresh`; default: upsert for profiles, append for events). Null means "not given".
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSpec {
    /// Attribute → source field or `{source, constant, transforms}`.
    #[serde(default)]
    pub mapping: Option<Value>,
    /// How the ingest combines with stored data.
    #[serde(default, deserialize_with = "mode")]
    pub mode: Option<IngestMode>,
}

impl Spec for IngestSpec {
    const KIND: SpecKind = SpecKind::Ingest;
}

fn mode<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<IngestMode>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|e: Error| serde::de::Error::custom(bare_message(&e))),
    }
}

impl IngestSpec {
    /// The ingest options; a bad mapping is an [`Error::Definition`] under `mapping`.
    pub fn into_options(self) -> Result<IngestOptions> {
        let mut o = IngestOptions::default();
        if let Some(m) = self.mapping.filter(|m| !m.is_null()) {
            o = o.mapping(Mapping::from_json(&m)?);
        }
        o.mode = self.mode;
        Ok(o)
    }
}

impl TryFrom<IngestSpec> for IngestOptions {
    type Error = Error;
    fn try_from(spec: IngestSpec) -> Result<IngestOptions> {
        spec.into_options()
    }
}
