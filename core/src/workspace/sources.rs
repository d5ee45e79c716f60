//! Named sources: define, list, delete, sync (see [`crate::sources`]).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ingest::{IngestMode, IngestOptions, IngestReport};
use crate::model::{check_name, name_fold, normalize_name, EntityKind};
use crate::source::Source;
use crate::sources::{check_no_inline_secrets, IngestControl, SourceDefinition, SourceInfo};

use tracing::Instrument;

use super::Workspace;

impl Workspace {
    fn build_source(&self, config: &serde_json::Value) -> Result<Arc<dyn Source>> {
        let factory = self.inner.source_factory.as_ref().ok_or_else(|| {
            Error::InvalidArgument(
                "this workspace has no source factory: open it with WorkspaceOptions::source_factory (e.g. \
                 segkit_connectors::registry()) to define and sync named sources"
                    .into(),
            )
        })?;
        factory.build(config)
    }

    /// Defines (or replaces) a named source and returns the stored definition.
    ///
    /// The name follows the entity-name rules (Unicode letters, digits, `_`; NFC-normalised; a name differing
    /// from another source's only by case is refused). The entity must exist and the mode suit its kind;
    /// mapped attributes must exist; the config must not hold inline secrets (see [`crate::sources`]) and must
    /// build (the factory validates it, resolving `env:` references). Replacing a source with the same entity
    /// and config keeps its cursor; any other change starts the next sync from the beginning.
    pub async fn define_source(&self, mut def: SourceDefinition) -> Result<SourceDefinition> {
        def.name = normalize_name(&def.name);
        def.entity = normalize_name(&def.entity);
        check_name(&def.name, "source")?;
        let here = |field: &str| format!("source {}.{field}", def.name);
        if let Some(other) = self
            .inner
            .catalog
            .sources()?
            .into_iter()
            .find(|o| o.definition.name != def.name && name_fold(&o.definition.name) == name_fold(&def.name))
        {
            return Err(Error::definition(
                "source",
                format!(
                    "source names `{}` and `{}` differ only by case; names must differ by more",
                    other.definition.name, def.name
                ),
            ));
        }
        let entity = self.entity(&def.entity).map_err(|e| Error::definition(here("entity"), e.to_string()))?;
        def.entity = entity.name.clone();
        match (entity.kind, def.mode) {
            (EntityKind::Profile, Some(IngestMode::Append)) => {
                return Err(Error::definition(
                    here("mode"),
                    format!("`{}` is a profile entity: use mode upsert or full_refresh, not append", entity.name),
                ))
            }
            (EntityKind::Event, Some(IngestMode::Upsert)) => {
                return Err(Error::definition(
                    here("mode"),
                    format!("`{}` is an event entity (append-only): use mode append or full_refresh", entity.name),
                ))
            }
            _ => {}
        }
        for attr in def.mapping.0.keys() {
            entity.attr(attr).map_err(|e| Error::definition(here(&format!("mapping.{attr}")), e.to_string()))?;
        }
        check_no_inline_secrets(&def.config)?;
        self.build_source(&def.config)?;
        let keep_cursor = match self.inner.catalog.source(&def.name)? {
            Some((old, _)) => old.definition.entity == def.entity && old.definition.config == def.config,
            None => false,
        };
        self.inner.catalog.put_source(&def, keep_cursor)?;
        Ok(def)
    }

    /// A named source with its sync state.
    pub fn source(&self, name: &str) -> Result<SourceInfo> {
        match self.inner.catalog.source(&normalize_name(name))? {
            Some((s, _)) => Ok(s),
            None => {
                let known = self.inner.catalog.sources()?;
                Err(Error::not_found_among("source", name, known.iter().map(|s| s.definition.name.as_str())))
            }
        }
    }

    /// All named sources, by name.
    pub fn sources(&self) -> Result<Vec<SourceInfo>> {
        self.inner.catalog.sources()
    }

    /// Deletes a named source (and its cursor); the data it ingested stays in its entity.
    pub async fn delete_source(&self, name: &str) -> Result<()> {
        let info = self.source(name)?;
        let _guard = self.entity_lock(&info.definition.entity).lock_owned().await;
        if !self.inner.catalog.delete_source(&info.definition.name)? {
            return Err(Error::not_found("source", name));
        }
        Ok(())
    }

    /// Syncs a named source: builds it from its config, scans it — from the stored cursor when the source is
    /// incremental — ingests with its mapping and mode, and commits the new snapshot together with the cursor
    /// the source reported, in one catalog transaction. A sync that fails, is cancelled or is killed commits
    /// nothing, so running it again neither loses nor doubles rows.
    pub async fn sync(&self, name: &str) -> Result<IngestReport> {
        self.sync_with(name, &IngestControl::default()).await
    }

    /// [`sync`](Self::sync) with a progress callback and a cancellation token (see [`IngestControl`]).
    pub async fn sync_with(&self, name: &str, control: &IngestControl) -> Result<IngestReport> {
        let info = self.source(name)?;
        let def = info.definition;
        let source = self.build_source(&def.config).map_err(|e| match e {
            e @ Error::InvalidArgument(_) => e,
            e => Error::Source { source_name: def.name.clone(), message: e.to_string(), cause: Some(Box::new(e)) },
        })?;
        let options = IngestOptions { mapping: def.mapping.clone(), mode: def.mode };
        self.ingest_inner(&def.entity, source.as_ref(), options, control, Some(&def.name))
            .instrument(tracing::info_span!("sync", source = %def.name, entity = %def.entity))
            .await
    }
}
