//! Ingestion: mapping source fields to attributes, coercing values, validating rows, quarantining the bad ones
//! and committing the good ones as a new snapshot.
//!
//! A row that cannot be coerced or that violates the schema (missing key, null in a non-nullable attribute,
//! duplicate key within one ingest of a profile) is *quarantined*: written with its 1-based source row number,
//! its reason and its raw fields to `quarantine/<entity>/<ingest id>.parquet` (see
//! [`Workspace::quarantine`](crate::Workspace::quarantine)) and counted in the [`IngestReport`], while the good
//! rows commit. A failure of the source or the store aborts the ingest and leaves the previous snapshot as it was.

mod coerce;
pub(crate) mod pipeline;
mod sort;
mod stages;
mod typed;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::DataType;

pub use coerce::coerce;
pub use typed::{ColumnReader, TypedField};

/// How an ingest combines with the data already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IngestMode {
    /// Add rows (events).
    Append,
    /// Insert new keys, replace rows of existing keys (profiles).
    Upsert,
    /// Replace everything with this ingest's rows.
    FullRefresh,
}

impl std::str::FromStr for IngestMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "append" => Ok(IngestMode::Append),
            "upsert" => Ok(IngestMode::Upsert),
            "full_refresh" | "replace" => Ok(IngestMode::FullRefresh),
            _ => Err(Error::InvalidArgument(format!(
                "unknown ingest mode `{s}`; expected append, upsert or full_refresh"
            ))),
        }
    }
}

/// A transformation applied to a source value before it is coerced to the attribute type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Remove leading and trailing whitespace.
    Trim,
    /// Lower-case.
    Lower,
    /// Upper-case.
    Upper,
    /// Parse text as a timestamp with a chrono format (`%d/%m/%Y %H:%M`); without an offset it is UTC.
    ParseTimestamp(String),
    /// Cast to an intermediate type (rows that do not convert are quarantined).
    Cast(DataType),
    /// Split text into list elements on this separator (default `|`; JSON arrays are always accepted).
    Split(String),
}

/// Where one attribute's values come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FieldMapping {
    /// The source field (default: the attribute's own name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// A constant for every row instead of a source field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constant: Option<Value>,
    /// Transformations, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<Transform>,
}

impl FieldMapping {
    /// Take the value from source field `name`.
    pub fn from_field(name: impl Into<String>) -> Self {
        FieldMapping { source: Some(name.into()), ..Default::default() }
    }
    /// Use a constant.
    pub fn constant(v: impl Into<Value>) -> Self {
        FieldMapping { constant: Some(v.into()), ..Default::default() }
    }
    /// Adds a transformation.
    pub fn then(mut self, t: Transform) -> Self {
        self.transforms.push(t);
        self
    }
}

/// Attribute name → where its values come from. Attributes not listed are read from a source field of the
/// same name (or, failing that, the same name ignoring case); a missing nullable attribute is null.
///
/// As JSON: `{"email": "Email Address", "country": {"source": "cc", "transforms": ["trim", "upper"]},
/// "plan": {"constant": "free"}, "signup_at": {"transforms": [{"parse_timestamp": "%d/%m/%Y"}]}}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Mapping(pub BTreeMap<String, FieldMapping>);

impl Mapping {
    /// An empty mapping (every attribute from the same-named field).
    pub fn new() -> Self {
        Self::default()
    }
    /// Maps `attribute` (builder style).
    pub fn map(mut self, attribute: impl Into<String>, field: FieldMapping) -> Self {
        self.0.insert(attribute.into(), field);
        self
    }
    /// Parses the JSON form documented on [`Mapping`].
    pub fn from_json(v: &Value) -> Result<Self> {
        let Value::Object(m) = v else {
            return Err(Error::definition("mapping", "expected an object of attribute → source field or mapping"));
        };
        let mut out = BTreeMap::new();
        for (attr, spec) in m {
            let path = format!("mapping.{attr}");
            let fm = match spec {
                Value::String(s) => FieldMapping::from_field(s.clone()),
                Value::Object(o) => {
                    let mut fm = FieldMapping::default();
                    for (k, v) in o {
                        match k.as_str() {
                            "source" | "field" => {
                                fm.source = Some(
                                    v.as_str()
                                        .ok_or_else(|| Error::definition(&path, "`source` must be text"))?
                                        .to_string(),
                                )
                            }
                            "constant" => fm.constant = Some(v.clone()),
                            "transforms" | "transform" => {
                                let items = match v {
                                    Value::Array(a) => a.clone(),
                                    other => vec![other.clone()],
                                };
                                for (i, t) in items.iter().enumerate() {
                                    fm.transforms.push(parse_transform(t, &format!("{path}.transforms[{i}]"))?);
                                }
                            }
                            other => {
                                return Err(Error::definition(
                                    &path,
                                    format!("unknown key `{other}` (expected source, constant, transforms)"),
                                ))
                            }
                        }
                    }
                    fm
                }
                _ => return Err(Error::definition(&path, "expected a source field name or an object")),
            };
            out.insert(attr.clone(), fm);
        }
        Ok(Mapping(out))
    }
}

impl<'de> Deserialize<'de> for Mapping {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Mapping::from_json(&v).map_err(serde::de::Error::custom)
    }
}

fn parse_transform(v: &Value, path: &str) -> Result<Transform> {
    let (name, arg) = match v {
        Value::String(s) => (s.as_str(), None),
        Value::Object(o) if o.len() == 1 => {
            let (k, v) = o.iter().next().expect("len 1");
            (k.as_str(), Some(v))
        }
        _ => return Err(Error::definition(path, "expected a transform name or {name: argument}")),
    };
    let text = |what: &str| -> Result<String> {
        arg.and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| Error::definition(path, format!("`{name}` needs a {what}")))
    };
    Ok(match name {
        "trim" => Transform::Trim,
        "lower" | "lowercase" => Transform::Lower,
        "upper" | "uppercase" => Transform::Upper,
        "parse_timestamp" | "timestamp" => Transform::ParseTimestamp(text("chrono format such as \"%d/%m/%Y %H:%M\"")?),
        "cast" => Transform::Cast(text("type")?.parse().map_err(|e: Error| Error::definition(path, e.to_string()))?),
        "split" => Transform::Split(text("separator")?),
        other => {
            return Err(Error::definition(
                path,
                format!("unknown transform `{other}` (expected trim, lower, upper, parse_timestamp, cast, split)"),
            ))
        }
    })
}

/// Options of one ingest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestOptions {
    /// Field mapping.
    #[serde(default)]
    pub mapping: Mapping,
    /// Mode (default: upsert for profiles, append for events).
    #[serde(default)]
    pub mode: Option<IngestMode>,
}

impl IngestOptions {
    /// Sets the mode.
    pub fn mode(mut self, mode: IngestMode) -> Self {
        self.mode = Some(mode);
        self
    }
    /// Sets the mapping.
    pub fn mapping(mut self, mapping: Mapping) -> Self {
        self.mapping = mapping;
        self
    }
}

/// One quarantined row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QuarantinedRow {
    /// 1-based row number in the source.
    pub row: u64,
    /// Why it was not ingested.
    pub reason: String,
}

/// What an ingest did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IngestReport {
    /// Unique id of this ingest.
    pub id: String,
    /// Target entity.
    pub entity: String,
    /// Source name.
    pub source: String,
    /// Mode used.
    pub mode: IngestMode,
    /// Rows read from the source.
    pub rows_read: u64,
    /// Rows committed.
    pub rows_written: u64,
    /// Of those, new keys (profiles) or appended rows (events).
    pub rows_inserted: u64,
    /// Of those, rows that replaced an existing key (profiles).
    pub rows_updated: u64,
    /// Rows quarantined.
    pub rows_quarantined: u64,
    /// The snapshot committed, if any rows were written (or a full refresh ran).
    pub snapshot: Option<i64>,
    /// Where quarantined rows were written (relative to the store root).
    pub quarantine_file: Option<String>,
    /// The first quarantined rows, for a quick look.
    pub quarantine_sample: Vec<QuarantinedRow>,
    /// Source fields that no attribute reads.
    pub ignored_fields: Vec<String>,
    /// Wall time.
    pub duration_ms: f64,
}
