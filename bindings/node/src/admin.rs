//! Entity lifecycle (add an attribute, dependents, delete), compaction, group-commit appends
//! (`NativeAppender` over `segkit::appender::Appender`) and the monitoring readers (syncs, the audit log,
//! workflow runs). One thin method per core method; results go back with camelCase keys.

use std::sync::Mutex;

use arrow::array::RecordBatch;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use segkit::appender::{decode_rows, Appender};
use segkit::auth::AuditFilter;
use segkit::spec::AttributeOptions;
use serde_json::Value;

use crate::{camel_keys, entity_to_js, from_ipc, guard, invalid, NativeWorkspace, OrJs, Result};

fn camel<T: serde::Serialize>(v: &T) -> Result<Value> {
    Ok(camel_keys(serde_json::to_value(v).js()?))
}

#[napi]
impl NativeWorkspace {
    /// Adds one attribute (`segkit::spec::AttributeOptions` as JSON text: `{name, type, nullable, …}`) to an
    /// entity; resolves to the entity.
    #[napi]
    pub async fn add_attribute(&self, entity: String, spec_json: String) -> Result<Value> {
        let attribute = segkit::spec::from_json_text::<AttributeOptions>(&spec_json)
            .and_then(AttributeOptions::into_named_attribute)
            .js()?;
        Ok(entity_to_js(&self.inner.add_attribute(&entity, attribute).await.js()?))
    }

    /// What depends on an entity: `{segments, sources, workflows, templates, linkedFrom}`.
    #[napi]
    pub async fn entity_dependents(&self, name: String) -> Result<Value> {
        camel(&self.inner.entity_dependents(&name).js()?)
    }

    /// Deletes an entity with its data; resolves to what was deleted along with it.
    #[napi]
    pub async fn delete_entity(&self, name: String, force: bool) -> Result<Value> {
        camel(&self.inner.delete_entity(&name, force).await.js()?)
    }

    /// Merges runs of small files of an event entity: `{filesMerged, filesWritten, rows, snapshot}`.
    #[napi]
    pub async fn compact(&self, entity: String) -> Result<Value> {
        camel(&self.inner.compact(&entity).await.js()?)
    }

    /// A group-commit appender for an event entity.
    #[napi]
    pub async fn appender(&self, entity: String) -> Result<NativeAppender> {
        let appender = Appender::new(self.inner.clone());
        let entity = appender.event_entity(&entity).js()?;
        Ok(NativeAppender { entity, inner: Mutex::new(Some(appender)) })
    }

    /// Every sync and ingest, oldest first, at most `limit`: report fields plus `namedSource` and `createdAt`.
    #[napi]
    pub async fn syncs(&self, limit: u32) -> Result<Vec<Value>> {
        self.inner.syncs(limit as usize).js()?.iter().map(camel).collect()
    }

    /// Audit rows matching the filter, at most `limit`.
    #[napi]
    #[allow(clippy::too_many_arguments)] // the fields of auditEntries' options object
    pub async fn audit_entries(
        &self,
        actor: Option<String>,
        action: Option<String>,
        target: Option<String>,
        after_id: Option<i64>,
        before_id: Option<i64>,
        newest_first: bool,
        limit: u32,
    ) -> Result<Vec<Value>> {
        let filter = AuditFilter { actor, action, target, after_id, before_id, newest_first };
        self.inner.audit_entries(&filter, limit as usize).js()?.iter().map(camel).collect()
    }

    /// Appends a row to the audit log at the workspace clock's now.
    #[napi]
    pub async fn audit(&self, actor: String, action: String, target: String, detail: Option<String>) -> Result<()> {
        self.inner.audit(&actor, &action, &target, detail.as_deref()).js()
    }

    /// The starts of a workflow, newest first, at most `limit`, with their ledger rows counted by status.
    #[napi]
    pub async fn workflow_runs(&self, name: String, limit: u32) -> Result<Vec<Value>> {
        self.inner.workflow_runs(&name, limit as usize).js()?.iter().map(camel).collect()
    }
}

/// Native group-commit appender for one event entity; wrapped by `Appender` in index.js.
#[napi]
pub struct NativeAppender {
    entity: segkit::Entity,
    /// `None` once closed (dropping the last clone ends core's writer task).
    inner: Mutex<Option<Appender>>,
}

impl NativeAppender {
    fn appender(&self) -> Result<Appender> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| invalid(format!("the appender of `{}` is closed", self.entity.name)))
    }

    async fn append(&self, batch: RecordBatch) -> Result<Value> {
        let receipt = self.appender()?.append(&self.entity.name, batch).await.js()?;
        camel(&receipt)
    }
}

#[napi]
impl NativeAppender {
    /// The event entity appended to.
    #[napi(getter)]
    pub fn entity(&self) -> String {
        self.entity.name.clone()
    }

    /// Appends plain objects (the JSON text of an array), decoded strictly against the entity (errors name the
    /// path, `rows[3].amount`); resolves to the receipt once the group commit holding them is done.
    #[napi]
    pub async fn append_rows(&self, rows_json: String) -> Result<Value> {
        let rows: Value = serde_json::from_str(&rows_json).map_err(|e| {
            if e.to_string().starts_with("recursion limit exceeded") {
                crate::to_napi(segkit::limits::value_depth_error("appended rows"))
            } else {
                invalid(format!("rows are not a JSON array: {e}"))
            }
        })?;
        segkit::limits::check_value_depth(&rows, "appended rows").js()?;
        let Value::Array(rows) = rows else { return Err(invalid("rows are not a JSON array")) };
        let batch = decode_rows(&self.entity, &rows, "rows").map_err(|e| crate::to_napi(e.into()))?;
        drop(rows);
        self.append(batch).await
    }

    /// Appends an Arrow IPC stream or file (its batches as one append).
    #[napi]
    pub async fn append_ipc(&self, data: Buffer) -> Result<Value> {
        let (schema, batches) = from_ipc(&data)?;
        let batch = arrow::compute::concat_batches(&schema, &batches).js()?;
        self.append(batch).await
    }

    /// Closes: later appends are refused. Appends already handed over still commit.
    #[napi]
    pub fn close(&self) -> Result<()> {
        guard(|| {
            *self.inner.lock().unwrap_or_else(|p| p.into_inner()) = None;
            Ok(())
        })
    }
}
