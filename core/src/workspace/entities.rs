//! Entity definitions: define, evolve, look up.

use crate::catalog::Snapshot;
use crate::error::{Error, Result};
use crate::model::{name_fold, normalize_name, Attribute, Entity, EntityKind};

use super::Workspace;

impl Workspace {
    /// Defines an entity, or evolves an existing one (adding nullable attributes, changing flags).
    ///
    /// Incompatible changes (a type change, a different key, dropping an attribute, making a populated
    /// attribute required) are refused with [`Error::IncompatibleChange`].
    pub async fn define_entity(&self, entity: Entity) -> Result<Entity> {
        let entity = entity.normalized()?;
        for (i, l) in entity.links.iter().enumerate() {
            let p = format!("entity {}.links[{i}]", entity.name);
            let Some((target, _)) = self.inner.catalog.entity(&l.entity)? else {
                let known: Vec<String> = self.inner.catalog.entities()?.into_iter().map(|e| e.name).collect();
                let hint = crate::error::hint(&l.entity, known.iter().map(String::as_str));
                return Err(Error::definition(p, format!("linked entity `{}` is not defined{hint}", l.entity)));
            };
            if target.kind != EntityKind::Profile {
                return Err(Error::definition(
                    p,
                    format!("linked entity `{}` is an event entity; links point to profiles", l.entity),
                ));
            }
            let tattr = match &l.target {
                Some(t) => target.attr(t).map_err(|e| Error::definition(&p, e.to_string()))?,
                None => target.key_attribute().expect("profiles have keys"),
            };
            let mine = entity.attr(&l.attribute)?;
            if mine.data_type != tattr.data_type {
                return Err(Error::definition(
                    p,
                    format!(
                        "`{}` is {} but `{}.{}` is {}",
                        mine.name, mine.data_type, target.name, tattr.name, tattr.data_type
                    ),
                ));
            }
        }
        if let Some(other) = self.inner.catalog.entities()?.into_iter().find(|o| {
            o.name != entity.name && crate::model::name_fold(&o.name) == crate::model::name_fold(&entity.name)
        }) {
            return Err(Error::definition(
                "entity",
                format!(
                    "entity names `{}` and `{}` differ only by case; names must differ by more",
                    other.name, entity.name
                ),
            ));
        }
        let _guard = self.entity_lock(&entity.name).lock_owned().await;
        let snap = match self.inner.catalog.entity(&entity.name)? {
            Some((old, v)) => {
                let snap = self.inner.catalog.snapshot(&entity.name, v)?;
                entity.check_evolution(&old, snap.row_count > 0)?;
                if old == entity {
                    return Ok(entity);
                }
                snap
            }
            None => Snapshot::default(),
        };
        self.inner.catalog.put_entity(&entity)?;
        self.register(&entity, &snap)?;
        Ok(entity)
    }

    /// Adds one attribute to an existing entity (a compatible evolution: the attribute must be new and, when the
    /// entity holds rows, nullable) and returns the stored entity.
    pub async fn add_attribute(&self, entity: &str, attribute: Attribute) -> Result<Entity> {
        let mut e = self.entity(entity)?;
        let name = normalize_name(&attribute.name);
        if e.attributes.iter().any(|a| name_fold(&a.name) == name_fold(&name)) {
            return Err(Error::Conflict {
                what: format!("attribute `{name}` of entity `{}`", e.name),
                message: "it exists already".into(),
            });
        }
        e.attributes.push(attribute);
        self.define_entity(e).await
    }

    /// What depends on entity `name`: segments over it, sources feeding it, workflows and templates about it,
    /// other entities linking to it.
    pub fn entity_dependents(&self, name: &str) -> Result<EntityDependents> {
        let e = self.entity(name)?;
        let mut workflows = vec![];
        for w in self.workflows()? {
            if self.trigger_entity(&w.trigger).is_ok_and(|t| t == e.name) {
                workflows.push(w.name);
            }
        }
        let d = EntityDependents {
            segments: self.segments()?.into_iter().filter(|s| s.entity == e.name).map(|s| s.name).collect(),
            sources: self
                .sources()?
                .into_iter()
                .filter(|s| s.definition.entity == e.name)
                .map(|s| s.definition.name)
                .collect(),
            workflows,
            templates: self
                .templates()?
                .into_iter()
                .filter(|t| t.entity.as_deref() == Some(e.name.as_str()))
                .map(|t| t.name)
                .collect(),
            linked_from: self
                .entities()?
                .into_iter()
                .filter(|o| o.name != e.name && o.links.iter().any(|l| l.entity == e.name))
                .map(|o| o.name)
                .collect(),
        };
        Ok(d)
    }

    /// Deletes an entity with its data and ingest history. Refused ([`Error::Conflict`]) while anything depends
    /// on it ([`entity_dependents`](Self::entity_dependents)); with `force`, its segments and sources are deleted
    /// first (workflows, templates and linking entities still refuse: delete those yourself). Returns what was
    /// deleted along with it.
    pub async fn delete_entity(&self, name: &str, force: bool) -> Result<EntityDependents> {
        let e = self.entity(name)?;
        let d = self.entity_dependents(&e.name)?;
        let blocking = if force {
            !(d.workflows.is_empty() && d.templates.is_empty() && d.linked_from.is_empty())
        } else {
            !d.is_empty()
        };
        if blocking {
            return Err(Error::Conflict {
                what: format!("entity `{}`", e.name),
                message: format!(
                    "{} depend on it{}",
                    d.describe(),
                    if force { "" } else { " (force deletes its segments and sources too)" }
                ),
            });
        }
        // A segment referenced by another has more (transitive) dependents than it: delete the ones nothing
        // references first.
        let mut segments = Vec::with_capacity(d.segments.len());
        for s in &d.segments {
            segments.push((self.dependents(s)?.len(), s.clone()));
        }
        segments.sort();
        let segments: Vec<String> = segments.into_iter().map(|(_, s)| s).collect();
        for s in &segments {
            self.delete_segment(s).await?;
        }
        for s in &d.sources {
            self.delete_source(s).await?;
        }
        let _guard = self.entity_lock(&e.name).lock_owned().await;
        let files = self.inner.catalog.delete_entity(&e.name)?;
        self.delete_files(&files).await;
        self.refresh_tables(std::slice::from_ref(&e.name))?;
        Ok(EntityDependents { segments, sources: d.sources, ..Default::default() })
    }

    /// An entity definition.
    pub fn entity(&self, name: &str) -> Result<Entity> {
        match self.inner.catalog.entity(&crate::model::normalize_name(name))? {
            Some((e, _)) => Ok(e),
            None => {
                let known = self.inner.catalog.entities()?;
                Err(Error::not_found_among("entity", name, known.iter().map(|x| x.name.as_str())))
            }
        }
    }

    /// All entities.
    pub fn entities(&self) -> Result<Vec<Entity>> {
        self.inner.catalog.entities()
    }

    /// The current snapshot of an entity.
    pub fn snapshot(&self, entity: &str) -> Result<Snapshot> {
        self.entity(entity)?;
        let (_, v) = self.inner.catalog.entity(entity)?.expect("checked");
        self.inner.catalog.snapshot(entity, v)
    }
}

/// What depends on an entity (see [`Workspace::entity_dependents`]), or what was deleted along with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EntityDependents {
    /// Segments over it.
    pub segments: Vec<String>,
    /// Sources feeding it.
    pub sources: Vec<String>,
    /// Workflows about it.
    pub workflows: Vec<String>,
    /// Templates naming it.
    pub templates: Vec<String>,
    /// Entities linking to it.
    pub linked_from: Vec<String>,
}

impl EntityDependents {
    /// Nothing depends on it.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
            && self.sources.is_empty()
            && self.workflows.is_empty()
            && self.templates.is_empty()
            && self.linked_from.is_empty()
    }

    fn describe(&self) -> String {
        [
            ("segments", &self.segments),
            ("sources", &self.sources),
            ("workflows", &self.workflows),
            ("templates", &self.templates),
            ("linking entities", &self.linked_from),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k} {}", v.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
    }
}
