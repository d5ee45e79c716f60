//! Entities, attributes, links and their validation.
//!
//! ```
//! use segkit::{Attribute, DataType, Entity};
//! let user = Entity::profile("user", "user_id")
//!     .attribute(Attribute::new("user_id", DataType::Int64))
//!     .attribute(Attribute::new("email", DataType::String).pii())
//!     .attribute(Attribute::new("tags", "list<string>".parse().unwrap()));
//! user.validate().unwrap();
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

use crate::error::{suggest, Error, Hint, Result};

/// The time zone segkit stores timestamps in. Inputs with other offsets are converted.
pub const UTC: &str = "UTC";

/// The type of an attribute.
///
/// Written as strings in definitions: `string`, `int32`, `int64` (alias `int`), `float64` (aliases `float`,
/// `double`), `bool`, `date`, `timestamp` (an instant, stored in UTC), `json`, `list<T>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DataType {
    /// UTF-8 text.
    String,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// Boolean.
    Bool,
    /// Calendar date.
    Date,
    /// Instant with time zone, microsecond precision, stored in UTC.
    Timestamp,
    /// JSON document, stored as its text.
    Json,
    /// List of values of one type.
    List(Box<DataType>),
}

impl DataType {
    /// The Arrow type segkit stores this type as.
    pub fn to_arrow(&self) -> ArrowType {
        match self {
            DataType::String | DataType::Json => ArrowType::Utf8,
            DataType::Int32 => ArrowType::Int32,
            DataType::Int64 => ArrowType::Int64,
            DataType::Float64 => ArrowType::Float64,
            DataType::Bool => ArrowType::Boolean,
            DataType::Date => ArrowType::Date32,
            DataType::Timestamp => ArrowType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            DataType::List(inner) => ArrowType::List(Arc::new(Field::new("item", inner.to_arrow(), true))),
        }
    }

    /// Whether values of this type have an order (`lt`, `between`, …).
    pub fn is_ordered(&self) -> bool {
        matches!(
            self,
            DataType::String
                | DataType::Int32
                | DataType::Int64
                | DataType::Float64
                | DataType::Date
                | DataType::Timestamp
        )
    }

    /// Whether this is a number type.
    pub fn is_numeric(&self) -> bool {
        matches!(self, DataType::Int32 | DataType::Int64 | DataType::Float64)
    }

    /// Whether this is `date` or `timestamp`.
    pub fn is_temporal(&self) -> bool {
        matches!(self, DataType::Date | DataType::Timestamp)
    }

    /// Whether this type can be an entity key.
    pub fn is_key_type(&self) -> bool {
        matches!(self, DataType::String | DataType::Int32 | DataType::Int64)
    }

    /// The element type if this is a list.
    pub fn element(&self) -> Option<&DataType> {
        match self {
            DataType::List(t) => Some(t),
            _ => None,
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::String => f.write_str("string"),
            DataType::Int32 => f.write_str("int32"),
            DataType::Int64 => f.write_str("int64"),
            DataType::Float64 => f.write_str("float64"),
            DataType::Bool => f.write_str("bool"),
            DataType::Date => f.write_str("date"),
            DataType::Timestamp => f.write_str("timestamp"),
            DataType::Json => f.write_str("json"),
            DataType::List(t) => write!(f, "list<{t}>"),
        }
    }
}

impl FromStr for DataType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        if let Some(inner) = t.strip_prefix("list<").and_then(|r| r.strip_suffix('>')) {
            let inner: DataType = inner.parse()?;
            if matches!(inner, DataType::List(_) | DataType::Json) {
                return Err(Error::definition("type", format!("`{s}`: list elements must be scalar types")));
            }
            return Ok(DataType::List(Box::new(inner)));
        }
        Ok(match t.as_str() {
            "string" | "str" | "text" | "utf8" => DataType::String,
            "int32" | "i32" => DataType::Int32,
            "int" | "int64" | "i64" | "integer" | "bigint" => DataType::Int64,
            "float" | "float64" | "f64" | "double" => DataType::Float64,
            "bool" | "boolean" => DataType::Bool,
            "date" => DataType::Date,
            "timestamp" | "timestamptz" | "datetime" => DataType::Timestamp,
            "json" => DataType::Json,
            _ => {
                return Err(Error::definition(
                    "type",
                    format!(
                        "unknown type `{s}`; expected one of string, int32, int64, float64, bool, date, timestamp, json, list<T>"
                    ),
                ))
            }
        })
    }
}

impl TryFrom<String> for DataType {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<DataType> for String {
    fn from(t: DataType) -> String {
        t.to_string()
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A typed attribute of an entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    /// Name: letters, digits and `_`, not starting with a digit.
    pub name: String,
    /// Value type.
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// Whether the value may be missing (default `true`; keys are never nullable).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub nullable: bool,
    /// Whether rules may filter on it (default `true`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub filterable: bool,
    /// Personal data: masked in previews, errors and logs.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pii: bool,
    /// Hint that rules often filter on it: segkit sorts stored files by indexed attributes so row groups prune.
    #[serde(default, skip_serializing_if = "is_false")]
    pub indexed: bool,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Attribute {
    /// A nullable, filterable attribute.
    pub fn new(name: impl Into<String>, data_type: DataType) -> Self {
        Attribute {
            name: name.into(),
            data_type,
            nullable: true,
            filterable: true,
            pii: false,
            indexed: false,
            description: None,
        }
    }
    /// Marks it non-nullable.
    pub fn required(mut self) -> Self {
        self.nullable = false;
        self
    }
    /// Marks it as personal data.
    pub fn pii(mut self) -> Self {
        self.pii = true;
        self
    }
    /// Marks it as indexed.
    pub fn indexed(mut self) -> Self {
        self.indexed = true;
        self
    }
    /// Marks it as not usable in rules.
    pub fn not_filterable(mut self) -> Self {
        self.filterable = false;
        self
    }
    /// Sets the description.
    pub fn describe(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }
}

/// Whether an entity is a keyed profile or an append-only event stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// Keyed by its key attribute; ingesting upserts by key.
    #[default]
    Profile,
    /// Append-only, with a timestamp attribute and a link to a profile entity.
    Event,
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntityKind::Profile => "profile",
            EntityKind::Event => "event",
        })
    }
}

impl FromStr for EntityKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "profile" => Ok(EntityKind::Profile),
            "event" => Ok(EntityKind::Event),
            _ => Err(Error::definition("kind", format!("unknown entity kind `{s}`; expected `profile` or `event`"))),
        }
    }
}

/// A relationship `this.attribute → entity.target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Attribute of this entity holding the foreign key.
    pub attribute: String,
    /// The profile entity it points to.
    pub entity: String,
    /// Attribute of the target (default: its key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl Link {
    /// `attribute → entity`'s key.
    pub fn new(attribute: impl Into<String>, entity: impl Into<String>) -> Self {
        Link { attribute: attribute.into(), entity: entity.into(), target: None }
    }
}

/// An entity definition: a name, a kind, a key and typed attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    /// Name: letters, digits and `_`.
    pub name: String,
    /// Profile or event.
    #[serde(default)]
    pub kind: EntityKind,
    /// The key attribute (required for profiles; optional event id for events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The event time attribute (events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Links to other entities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// The attributes, in storage order.
    pub attributes: Vec<Attribute>,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Entity {
    /// A profile entity keyed by `key`, with no attributes yet.
    pub fn profile(name: impl Into<String>, key: impl Into<String>) -> Self {
        Entity {
            name: name.into(),
            kind: EntityKind::Profile,
            key: Some(key.into()),
            timestamp: None,
            links: vec![],
            attributes: vec![],
            description: None,
        }
    }

    /// An event entity with time attribute `timestamp`.
    pub fn event(name: impl Into<String>, timestamp: impl Into<String>) -> Self {
        Entity {
            name: name.into(),
            kind: EntityKind::Event,
            key: None,
            timestamp: Some(timestamp.into()),
            links: vec![],
            attributes: vec![],
            description: None,
        }
    }

    /// Adds an attribute (builder style).
    pub fn attribute(mut self, attribute: Attribute) -> Self {
        self.attributes.push(attribute);
        self
    }

    /// Adds a link (builder style).
    pub fn link(mut self, link: Link) -> Self {
        self.links.push(link);
        self
    }

    /// Sets the key (builder style).
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Looks up an attribute by name.
    pub fn get(&self, name: &str) -> Option<&Attribute> {
        let name = normalize_name(name);
        self.attributes.iter().find(|a| a.name == name)
    }

    /// Looks up an attribute, with a "did you mean" hint when it is missing.
    pub fn attr(&self, name: &str) -> Result<&Attribute> {
        self.get(name).ok_or_else(|| Error::NotFound {
            kind: "attribute",
            name: format!("{}.{name}", self.name),
            hint: Hint(suggest(name, self.attributes.iter().map(|a| a.name.as_str()))),
        })
    }

    /// The key attribute, if the entity has one.
    pub fn key_attribute(&self) -> Option<&Attribute> {
        self.key.as_deref().and_then(|k| self.get(k))
    }

    /// The Arrow schema of the stored table.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.attributes
                .iter()
                .map(|a| Field::new(&a.name, a.data_type.to_arrow(), a.nullable && Some(&a.name) != self.key.as_ref()))
                .collect::<Vec<_>>(),
        ))
    }

    fn path(&self) -> String {
        format!("entity {}", self.name)
    }

    /// Checks the definition on its own (links are checked against other entities by the workspace).
    pub fn validate(&self) -> Result<()> {
        let here = self.path();
        check_name(&self.name, "entity")?;
        if self.attributes.is_empty() {
            return Err(Error::definition(&here, "an entity needs at least one attribute"));
        }
        let mut seen = std::collections::HashMap::new();
        for a in &self.attributes {
            let p = format!("{here}.attribute {}", a.name);
            check_name(&a.name, &p)?;
            if let Some(other) = seen.insert(name_fold(&a.name), a.name.as_str()) {
                if other == a.name {
                    return Err(Error::definition(p, "attribute is defined twice"));
                }
                return Err(Error::definition(
                    p,
                    format!(
                        "attribute names `{other}` and `{}` differ only by case; names must differ by more",
                        a.name
                    ),
                ));
            }
        }
        match (&self.kind, &self.key) {
            (EntityKind::Profile, None) => {
                return Err(Error::definition(format!("{here}.key"), "a profile entity needs a key attribute"))
            }
            (_, Some(k)) => {
                let a = self.attr(k).map_err(|e| Error::definition(format!("{here}.key"), e.to_string()))?;
                if !a.data_type.is_key_type() {
                    return Err(Error::definition(
                        format!("{here}.key"),
                        format!("key `{k}` has type {}; a key must be string, int32 or int64", a.data_type),
                    ));
                }
            }
            _ => {}
        }
        match (&self.kind, &self.timestamp) {
            (EntityKind::Event, None) => {
                return Err(Error::definition(
                    format!("{here}.timestamp"),
                    "an event entity needs a timestamp attribute",
                ))
            }
            (EntityKind::Event, Some(t)) => {
                let a = self.attr(t).map_err(|e| Error::definition(format!("{here}.timestamp"), e.to_string()))?;
                if !a.data_type.is_temporal() {
                    return Err(Error::definition(
                        format!("{here}.timestamp"),
                        format!("`{t}` has type {}; the event time must be a timestamp or date", a.data_type),
                    ));
                }
                if self.links.is_empty() {
                    return Err(Error::definition(
                        format!("{here}.links"),
                        "an event entity needs a link to the profile entity it belongs to",
                    ));
                }
            }
            (EntityKind::Profile, Some(_)) => {}
            (EntityKind::Profile, None) => {}
        }
        for (i, l) in self.links.iter().enumerate() {
            let p = format!("{here}.links[{i}]");
            let a = self.attr(&l.attribute).map_err(|e| Error::definition(&p, e.to_string()))?;
            if !a.data_type.is_key_type() {
                return Err(Error::definition(
                    p,
                    format!(
                        "link attribute `{}` has type {}; it must be string, int32 or int64",
                        l.attribute, a.data_type
                    ),
                ));
            }
            check_name(&l.entity, &format!("{p}.entity"))?;
        }
        Ok(())
    }

    /// Checks that `self` (new) may replace `old` given whether data is stored; returns the first problem.
    pub fn check_evolution(&self, old: &Entity, populated: bool) -> Result<()> {
        let here = self.path();
        if self.kind != old.kind {
            return Err(Error::IncompatibleChange {
                path: here,
                message: format!("kind cannot change from {} to {}", old.kind, self.kind),
            });
        }
        if self.key != old.key {
            return Err(Error::IncompatibleChange {
                path: format!("{here}.key"),
                message: format!(
                    "the key cannot change (was {:?}, now {:?}); define a new entity instead",
                    old.key.as_deref().unwrap_or("none"),
                    self.key.as_deref().unwrap_or("none")
                ),
            });
        }
        if self.timestamp != old.timestamp {
            return Err(Error::IncompatibleChange {
                path: format!("{here}.timestamp"),
                message: "the event time attribute cannot change".into(),
            });
        }
        for o in &old.attributes {
            let p = format!("{here}.attribute {}", o.name);
            let Some(n) = self.get(&o.name) else {
                return Err(Error::IncompatibleChange {
                    path: p,
                    message: "attributes cannot be dropped (stored data and segments refer to them)".into(),
                });
            };
            if n.data_type != o.data_type {
                return Err(Error::IncompatibleChange {
                    path: p,
                    message: format!("type cannot change from {} to {}", o.data_type, n.data_type),
                });
            }
            if o.nullable && !n.nullable && populated {
                return Err(Error::IncompatibleChange {
                    path: p,
                    message: "a nullable attribute of a populated entity cannot become non-nullable".into(),
                });
            }
        }
        for n in &self.attributes {
            if old.get(&n.name).is_none() && !n.nullable && populated {
                return Err(Error::IncompatibleChange {
                    path: format!("{here}.attribute {}", n.name),
                    message: "a new attribute of a populated entity must be nullable".into(),
                });
            }
        }
        Ok(())
    }

    /// Normalises derived flags (the key is never nullable).
    pub(crate) fn normalized(mut self) -> Result<Self> {
        self.name = normalize_name(&self.name);
        for a in &mut self.attributes {
            a.name = normalize_name(&a.name);
        }
        for n in [&mut self.key, &mut self.timestamp].into_iter().flatten() {
            *n = normalize_name(n);
        }
        for l in &mut self.links {
            l.attribute = normalize_name(&l.attribute);
            l.entity = normalize_name(&l.entity);
            if let Some(t) = &mut l.target {
                *t = normalize_name(t);
            }
        }
        if let Some(k) = self.key.clone() {
            if let Some(a) = self.attributes.iter_mut().find(|a| a.name == k) {
                a.nullable = false;
            }
        }
        self.validate()?;
        Ok(self)
    }
}

/// The most characters (Unicode scalar values, not bytes) a name may have.
pub const MAX_NAME_CHARS: usize = 128;

/// The canonical (NFC) form of a name, so a name typed two ways (composed or decomposed) is one name.
pub fn normalize_name(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    if name.is_ascii() {
        name.to_owned()
    } else {
        name.nfc().collect()
    }
}

/// The key two names collide on: equal up to Unicode case folding (`Age` and `age`, `Ä` and `ä`).
pub fn name_fold(name: &str) -> String {
    normalize_name(name).to_lowercase()
}

/// Checks that a name is an identifier: 1–128 Unicode letters, digits (`char::is_alphanumeric`, so Chinese
/// characters count, emoji and punctuation do not) or `_`, not starting with a digit, and already in NFC
/// (callers normalise with [`normalize_name`] first).
pub(crate) fn check_name(name: &str, path: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name.chars().next().is_some_and(|c| (c.is_alphabetic() || c == '_') && !c.is_numeric())
        && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    if !ok {
        return Err(Error::definition(
            path,
            format!(
                "name {name:?} must be 1–{MAX_NAME_CHARS} Unicode letters, digits or `_`, not starting with a \
                 digit (no spaces, punctuation or emoji)"
            ),
        ));
    }
    if !name.is_ascii() && normalize_name(name) != name {
        return Err(Error::definition(path, format!("name {name:?} is not in Unicode NFC form")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_through_strings() {
        for s in
            ["string", "int32", "int64", "float64", "bool", "date", "timestamp", "json", "list<string>", "list<int64>"]
        {
            let t: DataType = s.parse().unwrap();
            assert_eq!(t.to_string(), s);
        }
        assert_eq!("int".parse::<DataType>().unwrap(), DataType::Int64);
        let e = "list<list<int>>".parse::<DataType>().unwrap_err();
        assert!(e.to_string().contains("scalar"), "{e}");
        let e = "decimal".parse::<DataType>().unwrap_err();
        assert!(e.to_string().contains("unknown type `decimal`"), "{e}");
    }

    #[test]
    fn validation_names_the_culprit() {
        let e = Entity::profile("user", "id").attribute(Attribute::new("uid", DataType::Int64)).validate().unwrap_err();
        assert!(e.to_string().contains("entity user.key"), "{e}");
        assert!(e.to_string().contains("did you mean `uid`"), "{e}");
        let e =
            Entity::profile("user", "id").attribute(Attribute::new("id", DataType::Float64)).validate().unwrap_err();
        assert!(e.to_string().contains("must be string, int32 or int64"), "{e}");
        let e = Entity::profile("us-er", "id").attribute(Attribute::new("id", DataType::Int64)).validate().unwrap_err();
        assert!(e.to_string().contains("\"us-er\""), "{e}");
        let e =
            Entity::event("click", "ts").attribute(Attribute::new("ts", DataType::Timestamp)).validate().unwrap_err();
        assert!(e.to_string().contains("entity click.links"), "{e}");
        let e = Entity::event("click", "ts")
            .attribute(Attribute::new("ts", DataType::String))
            .link(Link::new("ts", "user"))
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("entity click.timestamp"), "{e}");
    }

    #[test]
    fn evolution_rules() {
        let old = Entity::profile("u", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("age", DataType::Int32));
        let added = old.clone().attribute(Attribute::new("city", DataType::String));
        added.check_evolution(&old, true).unwrap();
        let required = old.clone().attribute(Attribute::new("city", DataType::String).required());
        required.check_evolution(&old, false).unwrap();
        let e = required.check_evolution(&old, true).unwrap_err();
        assert!(e.to_string().contains("attribute city"), "{e}");
        let mut retyped = old.clone();
        retyped.attributes[1].data_type = DataType::String;
        let e = retyped.check_evolution(&old, false).unwrap_err();
        assert!(e.to_string().contains("entity u.attribute age: type cannot change from int32 to string"), "{e}");
        let rekeyed = old.clone().with_key("age");
        let e = rekeyed.check_evolution(&old, false).unwrap_err();
        assert!(e.to_string().contains("entity u.key"), "{e}");
        let mut dropped = old.clone();
        dropped.attributes.pop();
        assert!(matches!(dropped.check_evolution(&old, false), Err(Error::IncompatibleChange { .. })));
    }

    #[test]
    fn serde_shape() {
        let e: Entity = serde_json::from_value(serde_json::json!({
            "name": "user", "kind": "profile", "key": "id",
            "attributes": [{"name": "id", "type": "int"}, {"name": "tags", "type": "list<string>", "pii": true}]
        }))
        .unwrap();
        assert_eq!(e.attributes[1].data_type, DataType::List(Box::new(DataType::String)));
        assert!(e.attributes[1].pii && e.attributes[1].nullable);
        let back = serde_json::to_value(&e).unwrap();
        assert_eq!(back["attributes"][0]["type"], "int64");
    }
}
