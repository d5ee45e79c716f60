//! Export: a workspace's definitions as a project, and a project as TOML or YAML text.

use serde::Serialize;
use serde_json::Value;

use super::model::{Project, StaticSegmentSpec};
use crate::error::{Error, Result};
use crate::spec::{EntitySpec, SegmentSpec};
use crate::Workspace;

impl Workspace {
    /// The workspace's definitions as a project: [`apply`](Self::apply) of it to this workspace changes nothing.
    /// Source configs keep their `env:NAME` references (the catalog never holds a secret). A static-list segment
    /// is exported as its definition only (its keys are data). Rules are exported as stored: canonical, in
    /// segkit's dialect.
    pub fn export(&self) -> Result<Project> {
        let mut p = Project {
            entities: self.entities()?.iter().map(EntitySpec::from).collect(),
            sources: self.sources()?.into_iter().map(|s| s.definition).collect(),
            ..Project::default()
        };
        for d in self.segments()? {
            if self.is_static_segment(&d.name)? {
                p.static_segments.push(StaticSegmentSpec { name: d.name, entity: d.entity });
            } else {
                p.segments.push(SegmentSpec::from_definition(&d));
            }
        }
        p.templates = self.templates()?;
        p.workflows = self.workflows()?;
        p.schedules = self.schedules()?.into_iter().map(|s| s.spec).collect();
        Ok(p)
    }
}

impl Project {
    /// The project as TOML: one table per kind, each object under its name (without a `name` field).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(&self.to_table()?).map_err(|e| Error::InvalidArgument(format!("project as TOML: {e}")))
    }

    /// The project as YAML, in the same shape as [`to_toml`](Self::to_toml).
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml_ng::to_string(&self.to_table()?).map_err(|e| Error::InvalidArgument(format!("project as YAML: {e}")))
    }

    fn to_table(&self) -> Result<toml::Table> {
        let mut root = toml::Table::new();
        // Entities keep their attribute order (no JSON detour: a JSON object would sort it).
        section(&mut root, "entities", &self.entities, |e| &e.name, |e| to_toml(e).map(keep_attribute_order))?;
        section(&mut root, "sources", &self.sources, |s| &s.name, via_json)?;
        section(&mut root, "static_segments", &self.static_segments, |s| &s.name, via_json)?;
        section(&mut root, "segments", &self.segments, |s| &s.name, via_json)?;
        section(&mut root, "templates", &self.templates, |s| &s.name, via_json)?;
        section(&mut root, "workflows", &self.workflows, |s| &s.name, via_json)?;
        section(&mut root, "schedules", &self.schedules, |s| &s.name, via_json)?;
        Ok(root)
    }
}

fn section<T>(
    root: &mut toml::Table,
    key: &str,
    items: &[T],
    name: impl Fn(&T) -> &String,
    value: impl Fn(&T) -> Result<toml::Value>,
) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut table = toml::Table::new();
    for item in items {
        let mut v = value(item)?;
        if let Some(t) = v.as_table_mut() {
            t.remove("name");
        }
        table.insert(name(item).clone(), v);
    }
    root.insert(key.to_string(), toml::Value::Table(table));
    Ok(())
}

/// TOML writes a table's plain values before its subtables, so an attribute map with an options table before a
/// bare type would come back reordered (the order is the storage order): such an entity's attributes are written
/// as a list of `{name, type, …}` tables instead.
fn keep_attribute_order(mut entity: toml::Value) -> toml::Value {
    let Some(attrs) = entity.get("attributes").and_then(toml::Value::as_table) else { return entity };
    let mut seen_table = false;
    let reorders = attrs.values().any(|v| {
        let bad = seen_table && !v.is_table();
        seen_table |= v.is_table();
        bad
    });
    if !reorders {
        return entity;
    }
    let list = attrs
        .iter()
        .map(|(name, v)| {
            let mut t = toml::Table::new();
            t.insert("name".into(), toml::Value::String(name.clone()));
            match v {
                toml::Value::Table(o) => t.extend(o.clone()),
                other => {
                    t.insert("type".into(), other.clone());
                }
            }
            toml::Value::Table(t)
        })
        .collect();
    if let Some(e) = entity.as_table_mut() {
        e.insert("attributes".into(), toml::Value::Array(list));
    }
    entity
}

fn to_toml<T: Serialize>(item: &T) -> Result<toml::Value> {
    toml::Value::try_from(item).map_err(|e| Error::InvalidArgument(format!("project as TOML: {e}")))
}

/// Through JSON with nulls left out (TOML has no null; an absent optional field means the same).
fn via_json<T: Serialize>(item: &T) -> Result<toml::Value> {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|_, x| !x.is_null());
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(item)?;
    strip(&mut v);
    to_toml(&v)
}
