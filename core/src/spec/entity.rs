//! The entity spec: `{name, kind, key, timestamp, attributes, links, description}`.
//!
//! ```
//! use segkit::spec::{self, EntitySpec};
//! let e = spec::from_json_text::<EntitySpec>(
//!     r#"{"name": "user", "key": "id",
//!         "attributes": {"id": "int64", "email": {"type": "string", "pii": true}, "tags": "list<string>"}}"#,
//! ).unwrap().into_entity().unwrap();
//! assert_eq!(e.attributes[1].name, "email");
//! assert!(e.attributes[1].pii);
//!
//! let err = spec::from_json_text::<EntitySpec>(r#"{"name": "u", "key": "id", "attributes": {"id": "int65"}}"#)
//!     .unwrap_err();
//! assert!(err.to_string().contains("entity.attributes.id: unknown type `int65`"), "{err}");
//! ```

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{bare_message, Spec, SpecKind};
use crate::error::{Error, Result};
use crate::model::{Attribute, DataType, Entity, EntityKind, Link};

/// What a caller sends to define an entity.
///
/// `attributes` is an object of name → [`AttributeSpec`] (its key order is the storage order) or a list of
/// attribute objects with a `name`; `links` an object of attribute → target entity, or a list of
/// `{attribute, entity, target}`. `kind` is `profile` (default) or `event`.
///
/// It serializes back to the same form (attributes as an ordered object, links as an object when no link names a
/// target), leaving defaults out.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntitySpec {
    /// Entity name.
    pub name: String,
    /// Profile (default) or event.
    #[serde(default, skip_serializing_if = "is_profile")]
    pub kind: EntityKind,
    /// The key attribute (required for profiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The event time attribute (events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The attributes, in storage order.
    #[serde(default)]
    pub attributes: AttributesSpec,
    /// Links to other entities.
    #[serde(default, skip_serializing_if = "LinksSpec::is_empty")]
    pub links: LinksSpec,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn is_profile(k: &EntityKind) -> bool {
    *k == EntityKind::Profile
}

impl Spec for EntitySpec {
    const KIND: SpecKind = SpecKind::Entity;
}

impl EntitySpec {
    /// The entity this spec defines. Checks that need the whole entity (the key exists and has a key type,
    /// names are valid and distinct…) run when the workspace defines it ([`Entity::validate`]); the key is made
    /// non-nullable there too, once.
    pub fn into_entity(self) -> Result<Entity> {
        Ok(Entity {
            name: self.name,
            kind: self.kind,
            key: self.key,
            timestamp: self.timestamp,
            links: self.links.0,
            attributes: self.attributes.0.into_iter().map(|(name, a)| a.into_attribute(name)).collect(),
            description: self.description,
        })
    }
}

impl From<&Entity> for EntitySpec {
    /// The spec of a stored entity: [`EntitySpec::into_entity`] of it is that entity again (up to the key's
    /// nullability, which the workspace derives). Attributes with every flag at its default are a bare type.
    fn from(e: &Entity) -> EntitySpec {
        let attributes = e
            .attributes
            .iter()
            .map(|a| {
                let is_key = e.key.as_deref() == Some(a.name.as_str());
                let plain = (a.nullable || is_key) && a.filterable && !a.pii && !a.indexed && a.description.is_none();
                let spec = if plain {
                    AttributeSpec::Type(a.data_type.clone())
                } else {
                    AttributeSpec::Full(AttributeOptions {
                        name: None,
                        data_type: a.data_type.clone(),
                        nullable: (!a.nullable && !is_key).then_some(false),
                        filterable: (!a.filterable).then_some(false),
                        pii: a.pii.then_some(true),
                        indexed: a.indexed.then_some(true),
                        description: a.description.clone(),
                    })
                };
                (a.name.clone(), spec)
            })
            .collect();
        EntitySpec {
            name: e.name.clone(),
            kind: e.kind,
            key: e.key.clone(),
            timestamp: e.timestamp.clone(),
            attributes: AttributesSpec(attributes),
            links: LinksSpec(e.links.clone()),
            description: e.description.clone(),
        }
    }
}

impl TryFrom<EntitySpec> for Entity {
    type Error = crate::Error;
    fn try_from(spec: EntitySpec) -> Result<Entity> {
        spec.into_entity()
    }
}

/// The attribute list of an [`EntitySpec`], in the order given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AttributesSpec(pub Vec<(String, AttributeSpec)>);

/// One attribute: a type string (`"int64"`, `"list<string>"`) or an object with `type` and flags.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeSpec {
    /// Only the type; every flag has its default.
    Type(DataType),
    /// The type and flags.
    Full(AttributeOptions),
}

impl AttributeSpec {
    fn into_attribute(self, name: String) -> Attribute {
        match self {
            AttributeSpec::Type(t) => Attribute::new(name, t),
            AttributeSpec::Full(o) => Attribute {
                name,
                data_type: o.data_type,
                nullable: o.nullable.unwrap_or(true),
                filterable: o.filterable.unwrap_or(true),
                pii: o.pii.unwrap_or(false),
                indexed: o.indexed.unwrap_or(false),
                description: o.description,
            },
        }
    }
}

/// The object form of an [`AttributeSpec`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeOptions {
    /// The attribute's name: required in the list form; in the object form it must equal the key if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Value type.
    #[serde(rename = "type", deserialize_with = "data_type", serialize_with = "type_text")]
    #[schemars(with = "String")]
    pub data_type: DataType,
    /// Whether values may be missing (default true; a key never is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nullable: Option<bool>,
    /// Whether rules may filter on it (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filterable: Option<bool>,
    /// Personal data, masked in previews, errors and logs (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii: Option<bool>,
    /// Rules often filter on it: stored files are sorted by it (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexed: Option<bool>,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Spec for AttributeOptions {
    const KIND: SpecKind = SpecKind::Attribute;
}

impl AttributeOptions {
    /// The attribute these options describe, for adding to an entity: `name` is required here.
    pub fn into_named_attribute(self) -> Result<Attribute> {
        let name = self.name.clone().ok_or_else(|| Error::definition("attribute.name", "missing field `name`"))?;
        Ok(AttributeSpec::Full(AttributeOptions { name: None, ..self }).into_attribute(name))
    }
}

fn type_text<S: Serializer>(t: &DataType, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_string())
}

impl Serialize for AttributeSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            AttributeSpec::Type(t) => type_text(t, s),
            AttributeSpec::Full(o) => o.serialize(s),
        }
    }
}

impl Serialize for AttributesSpec {
    /// An object of name → attribute, in storage order.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (name, a) in &self.0 {
            m.serialize_entry(name, a)?;
        }
        m.end()
    }
}

impl LinksSpec {
    /// No links.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for LinksSpec {
    /// An object of attribute → entity when no link names a target attribute, else a list of links.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.0.iter().all(|l| l.target.is_none()) {
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for l in &self.0 {
                m.serialize_entry(&l.attribute, &l.entity)?;
            }
            m.end()
        } else {
            let mut q = s.serialize_seq(Some(self.0.len()))?;
            for l in &self.0 {
                q.serialize_element(l)?;
            }
            q.end()
        }
    }
}

impl schemars::JsonSchema for AttributeSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AttributeSpec".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let options = g.subschema_for::<AttributeOptions>();
        schemars::json_schema!({
            "description": "A type (`int64`, `string`, `double`, `bool`, `date`, `timestamp`, `json`, `list<T>`) or an object with `type` and flags.",
            "anyOf": [{"type": "string"}, options]
        })
    }
}

impl schemars::JsonSchema for AttributesSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "AttributesSpec".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let one = g.subschema_for::<AttributeSpec>();
        let options = g.subschema_for::<AttributeOptions>();
        schemars::json_schema!({
            "description": "Attribute name → type or options, in storage order; or a list of options objects with `name`.",
            "anyOf": [
                {"type": "object", "additionalProperties": one},
                {"type": "array", "items": options}
            ]
        })
    }
}

impl schemars::JsonSchema for LinksSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LinksSpec".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let link = g.subschema_for::<Link>();
        schemars::json_schema!({
            "description": "Attribute → linked profile entity, or a list of {attribute, entity, target}.",
            "anyOf": [
                {"type": "object", "additionalProperties": {"type": "string"}},
                {"type": "array", "items": link}
            ]
        })
    }
}

fn data_type<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<DataType, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = DataType;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a type such as \"int64\", \"string\" or \"list<string>\"")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<DataType, E> {
            s.parse::<DataType>().map_err(|e| E::custom(bare_message(&e)))
        }
    }
    d.deserialize_str(V)
}

impl<'de> Deserialize<'de> for AttributeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AttributeSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a type string such as \"int64\" or an object {type, pii, nullable, …}")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<AttributeSpec, E> {
                s.parse::<DataType>().map(AttributeSpec::Type).map_err(|e| E::custom(bare_message(&e)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<AttributeSpec, A::Error> {
                AttributeOptions::deserialize(de::value::MapAccessDeserializer::new(map)).map(AttributeSpec::Full)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for AttributesSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AttributesSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of attribute name → type or {type, …}, or a list of {name, type, …}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<AttributesSpec, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    let spec: AttributeSpec = map.next_value()?;
                    if let AttributeSpec::Full(AttributeOptions { name: Some(n), .. }) = &spec {
                        if *n != name {
                            return Err(de::Error::custom(format!(
                                "attribute `{name}` is given an object named `{n}`; drop `name` or make it equal"
                            )));
                        }
                    }
                    out.push((name, spec));
                }
                Ok(AttributesSpec(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<AttributesSpec, A::Error> {
                /// One element of the list form: an object (so a wrong element says what is expected).
                struct Element(AttributeOptions);
                impl<'de> Deserialize<'de> for Element {
                    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                        struct E;
                        impl<'de> Visitor<'de> for E {
                            type Value = Element;
                            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                                f.write_str("an attribute object {name, type, pii, nullable, …}")
                            }
                            fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Element, A::Error> {
                                AttributeOptions::deserialize(de::value::MapAccessDeserializer::new(map)).map(Element)
                            }
                        }
                        d.deserialize_map(E)
                    }
                }
                let mut out = Vec::new();
                while let Some(Element(o)) = seq.next_element::<Element>()? {
                    let Some(name) = o.name.clone() else {
                        return Err(de::Error::custom(format!(
                            "attribute {} has no `name` (the list form needs one in each object)",
                            out.len()
                        )));
                    };
                    out.push((name, AttributeSpec::Full(o)));
                }
                Ok(AttributesSpec(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// The links of an [`EntitySpec`]: `{attribute: entity}` or `[{attribute, entity, target}]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinksSpec(pub Vec<Link>);

impl<'de> Deserialize<'de> for LinksSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LinksSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of attribute → entity, or a list of {attribute, entity, target}")
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<LinksSpec, E> {
                Ok(LinksSpec::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<LinksSpec, A::Error> {
                let mut out = Vec::new();
                while let Some((attribute, entity)) = map.next_entry::<String, String>()? {
                    out.push(Link::new(attribute, entity));
                }
                Ok(LinksSpec(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<LinksSpec, A::Error> {
                let mut out = Vec::new();
                while let Some(l) = seq.next_element::<Link>()? {
                    out.push(l);
                }
                Ok(LinksSpec(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// An entity as plain JSON for front ends: `{name, kind, key, timestamp, attributes, links, description}` with the
/// attributes as a list in storage order and every flag explicit (`nullable`, `filterable`, `pii`, `indexed`),
/// absent options as `null`. (The serde form of [`Entity`] leaves default flags out.)
pub fn explicit_json(e: &Entity) -> serde_json::Value {
    use serde_json::json;
    let attributes: Vec<_> = e
        .attributes
        .iter()
        .map(|a| {
            let mut o = json!({
                "name": a.name, "type": a.data_type.to_string(), "nullable": a.nullable,
                "filterable": a.filterable, "pii": a.pii, "indexed": a.indexed,
            });
            if let Some(d) = &a.description {
                o["description"] = json!(d);
            }
            o
        })
        .collect();
    let links: Vec<_> = e
        .links
        .iter()
        .map(|l| {
            let mut o = json!({"attribute": l.attribute, "entity": l.entity});
            if let Some(t) = &l.target {
                o["target"] = json!(t);
            }
            o
        })
        .collect();
    json!({
        "name": e.name, "kind": e.kind.to_string(), "key": e.key, "timestamp": e.timestamp,
        "attributes": attributes, "links": links, "description": e.description,
    })
}
