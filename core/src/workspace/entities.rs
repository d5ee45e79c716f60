//! Entity definitions: define, evolve, look up.

use crate::catalog::Snapshot;
use crate::error::{Error, Result};
use crate::model::{Entity, EntityKind};

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
