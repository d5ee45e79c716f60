//! `Workspace` and `SegmentRun`: thin wrappers over `segkit::Workspace` — argument conversion, the runtime
//! bridge and error mapping only.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyo3_arrow::PyTable;
use segkit::auth::AuditFilter;
use segkit::spec::entity::AttributeOptions;
use segkit::spec::{EntitySpec, IngestSpec, ScheduleSpec, SegmentSpec, TemplateSpec, WorkflowSpec};
use segkit::workflow::{DeliveryFilter, ServeOptions, Status};
use segkit::{FixedClock, SegmentDefinition, SystemClock, WorkspaceOptions};
use serde_json::Value;

use crate::convert::{batch_table, table, to_json, to_json_data, to_json_text, to_py};
use crate::error::IntoPy;
use crate::runtime::{serve_until_signal, wait_cancellable, wait_for_future};

/// A segkit workspace (native). Use `segkit.Workspace`, the typed wrapper.
#[pyclass(name = "Workspace", module = "segkit._segkit", frozen)]
pub struct PyWorkspace {
    ws: segkit::Workspace,
}

/// A dict of spec fields → the JSON object core's request model parses: each field converted on its own (so a
/// rule's nesting is counted from the rule), `None` meaning "not given", a `str` rule kept as its JSON text.
/// `what` names the spec in depth errors of fields other than `rule`.
fn spec_object(spec: &Bound<'_, PyDict>, what: &str) -> PyResult<Value> {
    let mut m = serde_json::Map::new();
    for (k, v) in spec.iter() {
        let k: String = k.extract()?;
        if v.is_none() {
            continue;
        }
        let v = if k == "rule" { to_json(&v)? } else { to_json_data(&v, &format!("{what} field `{k}`"))? };
        m.insert(k, v);
    }
    Ok(Value::Object(m))
}

fn segment_definition(spec: &Bound<'_, PyDict>) -> PyResult<SegmentDefinition> {
    segkit::spec::from_value::<SegmentSpec>(spec_object(spec, "segment spec")?)
        .and_then(SegmentSpec::into_definition)
        .py()
}

/// A ledger filter; `status` is a status name (`pending`, `running`, `delivered`, `done`, `suppressed`, `dead`).
fn delivery_filter(workflow: Option<String>, status: Option<&str>, ids: Option<Vec<i64>>) -> PyResult<DeliveryFilter> {
    let status = match status {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            crate::error::invalid_argument(format!(
                "unknown delivery status `{s}` (one of pending, running, delivered, done, suppressed, dead)"
            ))
        })?),
    };
    #[allow(clippy::needless_update)] // other filter fields may come; they default to "any"
    Ok(DeliveryFilter { workflow, status, ids, ..Default::default() })
}

#[pymethods]
impl PyWorkspace {
    #[staticmethod]
    #[pyo3(signature = (path, store_url=None, store_options=None, durable_commits=false, delivery_window=None,
        lease_seconds=None, ingest_memory=None))]
    #[allow(clippy::too_many_arguments)] // one per `WorkspaceOptions` field the Python wrapper takes by keyword
    fn open(
        py: Python<'_>,
        path: PathBuf,
        store_url: Option<String>,
        store_options: Option<HashMap<String, String>>,
        durable_commits: bool,
        delivery_window: Option<usize>,
        lease_seconds: Option<f64>,
        ingest_memory: Option<usize>,
    ) -> PyResult<Self> {
        crate::error::guard(|| {
            let mut options = WorkspaceOptions::default();
            if let Some(url) = store_url {
                options = options.store_url(url);
            }
            let mut store_options: Vec<(String, String)> = store_options.unwrap_or_default().into_iter().collect();
            store_options.sort();
            options.store_options = store_options;
            options = options.durable_commits(durable_commits);
            if let Some(w) = delivery_window {
                options = options.delivery_window(w);
            }
            if let Some(s) = lease_seconds {
                let lease = std::time::Duration::try_from_secs_f64(s).map_err(|_| {
                    crate::error::invalid_argument(format!(
                        "lease must be a finite, non-negative number of seconds, got {s}"
                    ))
                })?;
                options = options.lease(lease);
            }
            if let Some(bytes) = ingest_memory {
                options = options.ingest_memory(bytes);
            }
            options.source_factory = Some(crate::sources::factory());
            options.action_factory = Some(crate::action::factory());
            let ws = wait_for_future(py, move || segkit::Workspace::open_with(path, options))?.py()?;
            Ok(PyWorkspace { ws })
        })
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.ws.path().to_path_buf()
    }

    /// Whether commits wait until they are on disk (`WorkspaceOptions::durable_commits`).
    #[getter]
    fn durable_commits(&self) -> bool {
        self.ws.durable_commits()
    }

    /// How many claimed deliveries a dispatch with `concurrency` send slots processes at once
    /// (`Workspace::delivery_window`).
    fn delivery_window(&self, concurrency: usize) -> usize {
        self.ws.delivery_window(concurrency)
    }

    /// `instant`: RFC 3339 text, or None for the system clock.
    #[pyo3(signature = (instant=None))]
    fn set_clock(&self, instant: Option<&str>) -> PyResult<()> {
        crate::error::guard(|| {
            match instant {
                None => self.ws.set_clock(Arc::new(SystemClock)),
                Some(s) => self.ws.set_clock(Arc::new(FixedClock::parse(s).py()?)),
            }
            Ok(())
        })
    }

    /// Sets the IANA time zone calendar windows count in.
    fn set_time_zone(&self, name: &str) -> PyResult<()> {
        crate::error::guard(|| self.ws.set_time_zone(name).py())
    }

    /// The workspace clock's current instant (RFC 3339).
    fn now(&self) -> String {
        self.ws.now().to_rfc3339()
    }

    // -------------------------------------------------------------------------------------------- entities

    /// `definition`: an entity spec (`segkit::spec::EntitySpec`: `name`, `kind`, `key`, `timestamp`, `links`,
    /// `attributes` as a dict of name → type or `{type, pii, …}` or a list of `{name, type, …}`, `description`).
    fn define_entity<'py>(&self, py: Python<'py>, definition: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let text = to_json_text(definition, "entity spec")?;
            let entity = segkit::spec::from_json_text::<EntitySpec>(&text).and_then(EntitySpec::into_entity).py()?;
            let ws = self.ws.clone();
            let out = wait_for_future(py, move || async move { ws.define_entity(entity).await })?.py()?;
            to_py(py, &out)
        })
    }

    fn entity<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let e = py.detach(|| self.ws.entity(name)).py()?;
            to_py(py, &e)
        })
    }

    fn entities<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let e = py.detach(|| self.ws.entities()).py()?;
            to_py(py, &e)
        })
    }

    /// `spec`: one attribute with its name (`segkit::spec::entity::AttributeOptions`: `name`, `type`,
    /// `nullable`, `filterable`, `pii`, `indexed`, `description`). Returns the entity.
    fn add_attribute<'py>(
        &self,
        py: Python<'py>,
        entity: String,
        spec: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let text = to_json_text(spec, "attribute spec")?;
            let attribute = segkit::spec::from_json_text::<AttributeOptions>(&text)
                .and_then(AttributeOptions::into_named_attribute)
                .py()?;
            let ws = self.ws.clone();
            let e = wait_for_future(py, move || async move { ws.add_attribute(&entity, attribute).await })?.py()?;
            to_py(py, &e)
        })
    }

    /// `{segments, sources, workflows, templates, linked_from}` naming what depends on entity `name`.
    fn entity_dependents<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let d = py.detach(|| self.ws.entity_dependents(name)).py()?;
            to_py(py, &d)
        })
    }

    /// Deletes entity `name` with its data; returns what was deleted along with it.
    #[pyo3(signature = (name, force=false))]
    fn delete_entity<'py>(&self, py: Python<'py>, name: String, force: bool) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            let d = wait_for_future(py, move || async move { ws.delete_entity(&name, force).await })?.py()?;
            to_py(py, &d)
        })
    }

    /// A group-commit appender for the event entity `entity`.
    fn appender(&self, py: Python<'_>, entity: &str) -> PyResult<crate::appender::PyAppender> {
        crate::error::guard(|| py.detach(|| crate::appender::PyAppender::new(&self.ws, entity)))
    }

    /// Merges runs of small files of an event entity: `{files_merged, files_written, rows, snapshot}`.
    fn compact<'py>(&self, py: Python<'py>, entity: String) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            let report = wait_for_future(py, move || async move { ws.compact(&entity).await })?.py()?;
            to_py(py, &report)
        })
    }

    // -------------------------------------------------------------------------------------------- monitoring

    /// Every sync and ingest, oldest first, at most `limit`: ingest report fields plus `named_source` and
    /// `created_at`.
    #[pyo3(signature = (limit=1000))]
    fn syncs<'py>(&self, py: Python<'py>, limit: usize) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let rows = py.detach(|| self.ws.syncs(limit)).py()?;
            to_py(py, &rows)
        })
    }

    /// Audit rows matching the filter, at most `limit`.
    #[pyo3(signature = (actor=None, action=None, target=None, after_id=None, before_id=None, newest_first=false, limit=1000))]
    #[allow(clippy::too_many_arguments)] // keyword arguments of Workspace.audit_entries
    fn audit_entries<'py>(
        &self,
        py: Python<'py>,
        actor: Option<String>,
        action: Option<String>,
        target: Option<String>,
        after_id: Option<i64>,
        before_id: Option<i64>,
        newest_first: bool,
        limit: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let filter = AuditFilter { actor, action, target, after_id, before_id, newest_first };
            let rows = py.detach(|| self.ws.audit_entries(&filter, limit)).py()?;
            to_py(py, &rows)
        })
    }

    /// Appends a row to the audit log at the workspace clock's now.
    #[pyo3(signature = (actor, action, target, detail=None))]
    fn audit(&self, py: Python<'_>, actor: &str, action: &str, target: &str, detail: Option<&str>) -> PyResult<()> {
        crate::error::guard(|| py.detach(|| self.ws.audit(actor, action, target, detail)).py())
    }

    /// The starts of workflow `name`, newest first, at most `limit`, with their ledger rows counted by status.
    #[pyo3(signature = (name, limit=100))]
    fn workflow_runs<'py>(&self, py: Python<'py>, name: &str, limit: usize) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let runs = py.detach(|| self.ws.workflow_runs(name, limit)).py()?;
            to_py(py, &runs)
        })
    }

    // -------------------------------------------------------------------------------------------- ingest

    /// `source`: a path or URL, a connector config dict, or an Arrow PyCapsule exporter. `options`: an ingest
    /// spec (`segkit::spec::IngestSpec`: `mapping`, `mode`).
    fn ingest<'py>(
        &self,
        py: Python<'py>,
        entity: String,
        source: &Bound<'py, PyAny>,
        options: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let options = segkit::spec::from_value::<IngestSpec>(spec_object(options, "ingest options")?)
                .and_then(IngestSpec::into_options)
                .py()?;
            let source = crate::source::resolve(source)?;
            let ws = self.ws.clone();
            let report =
                wait_for_future(py, move || async move { ws.ingest(&entity, source.as_ref(), options).await })?.py()?;
            to_py(py, &report)
        })
    }

    fn ingest_history<'py>(&self, py: Python<'py>, entity: &str) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let h = py.detach(|| self.ws.ingest_history(entity)).py()?;
            to_py(py, &h)
        })
    }

    fn quarantine(&self, py: Python<'_>, entity: String) -> PyResult<PyTable> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            let b = wait_for_future(py, move || async move { ws.quarantine(&entity).await })?.py()?;
            batch_table(b)
        })
    }

    fn clear_quarantine(&self, py: Python<'_>, entity: String) -> PyResult<u64> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            wait_for_future(py, move || async move { ws.clear_quarantine(&entity).await })?.py()
        })
    }

    #[pyo3(signature = (keep_snapshots=2))]
    fn vacuum<'py>(&self, py: Python<'py>, keep_snapshots: usize) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            let report = wait_for_future(py, move || async move { ws.vacuum(keep_snapshots).await })?.py()?;
            to_py(py, &report)
        })
    }

    // -------------------------------------------------------------------------------------------- named sources

    /// `config`: a connector config dict tagged by `type`; `mapping` as for `ingest`; `mode` a mode name.
    #[pyo3(signature = (name, entity, config, mapping=None, mode=None))]
    fn define_source<'py>(
        &self,
        py: Python<'py>,
        name: String,
        entity: String,
        config: &Bound<'py, PyAny>,
        mapping: Option<&Bound<'py, PyAny>>,
        mode: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let mut def = segkit::SourceDefinition::new(name, entity, to_json_data(config, "source config")?);
            if let Some(m) = mapping.filter(|m| !m.is_none()) {
                def = def.mapping(segkit::Mapping::from_json(&to_json_data(m, "source mapping")?).py()?);
            }
            if let Some(m) = mode {
                def = def.mode(m.parse::<segkit::IngestMode>().py()?);
            }
            let ws = self.ws.clone();
            let out = wait_for_future(py, move || async move { ws.define_source(def).await })?.py()?;
            to_py(py, &out)
        })
    }

    fn source<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let s = py.detach(|| self.ws.source(name)).py()?;
            to_py(py, &s)
        })
    }

    fn sources<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let s = py.detach(|| self.ws.sources()).py()?;
            to_py(py, &s)
        })
    }

    fn delete_source(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let ws = self.ws.clone();
        wait_for_future(py, move || async move { ws.delete_source(&name).await })?.py()
    }

    /// `progress`: a callable taking a progress dict, or None. Ctrl-C (or the callable raising) cancels the
    /// sync; the previous snapshot and cursor stay.
    #[pyo3(signature = (name, progress=None))]
    fn sync<'py>(&self, py: Python<'py>, name: String, progress: Option<Py<PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let token = segkit::CancellationToken::new();
            let (control, failed) = crate::sources::control(progress.filter(|p| !p.is_none(py)), token.clone());
            let ws = self.ws.clone();
            let report = wait_cancellable(py, token, move || async move { ws.sync_with(&name, &control).await })?;
            if let Some(e) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(e);
            }
            to_py(py, &report.py()?)
        })
    }

    // -------------------------------------------------------------------------------------------- segments

    /// `spec`: a segment spec (`segkit::spec::SegmentSpec`: `name`, `entity`, `rule` as a dict/list or JSON
    /// text, `dialect`, `description`, `split`, `keep_runs`).
    fn define_segment<'py>(&self, py: Python<'py>, spec: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let def = segment_definition(spec)?;
            let ws = self.ws.clone();
            let out = wait_for_future(py, move || async move { ws.define_segment(def).await })?.py()?;
            to_py(py, &out)
        })
    }

    /// What `define_segment` + `evaluate` would do, without saving: (count, members, would_enter, would_exit,
    /// run compared with).
    /// `spec`: as for `define_segment`.
    fn dry_run<'py>(
        &self,
        py: Python<'py>,
        spec: &Bound<'py, PyDict>,
    ) -> PyResult<(u64, PyTable, PyTable, PyTable, Option<i64>)> {
        crate::error::guard(|| {
            let def = segment_definition(spec)?;
            let ws = self.ws.clone();
            let d = wait_for_future(py, move || async move { ws.dry_run(def).await })?.py()?;
            Ok((
                d.count,
                batch_table(d.members)?,
                batch_table(d.would_enter)?,
                batch_table(d.would_exit)?,
                d.against_run,
            ))
        })
    }

    /// Stored members of the latest run that started at or before `instant` (RFC 3339).
    fn members_as_of(&self, py: Python<'_>, name: String, instant: &str) -> PyResult<PyTable> {
        crate::error::guard(|| {
            let at = FixedClock::parse(instant).py()?.0;
            let ws = self.ws.clone();
            let (batches, schema) = wait_for_future(py, move || async move {
                let batches: Vec<_> = ws.members_as_of(&name, at).await?.try_collect().await?;
                segkit::Result::Ok((batches, ws.members_schema(&name)?))
            })?
            .py()?;
            table(batches, schema)
        })
    }

    /// `(text, explanation as a dict)` for entity `key` (int or str) in segment `name`.
    fn explain<'py>(
        &self,
        py: Python<'py>,
        name: String,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<(String, Bound<'py, PyAny>)> {
        crate::error::guard(|| {
            let key = match key.extract::<i64>() {
                Ok(i) => i.to_string(),
                Err(_) => key.extract::<String>()?,
            };
            let ws = self.ws.clone();
            let e = wait_for_future(py, move || async move { ws.explain(&name, &key).await })?.py()?;
            Ok((e.to_string(), to_py(py, &e)?))
        })
    }

    /// The per-run log of entered / exited keys.
    fn changes(&self, py: Python<'_>, name: String) -> PyResult<PyTable> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            let b = wait_for_future(py, move || async move { ws.changes(&name).await })?.py()?;
            batch_table(b)
        })
    }

    fn segment<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let s = py.detach(|| self.ws.segment(name)).py()?;
            to_py(py, &s)
        })
    }

    fn segments<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let s = py.detach(|| self.ws.segments()).py()?;
            to_py(py, &s)
        })
    }

    fn delete_segment(&self, py: Python<'_>, name: String) -> PyResult<()> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            wait_for_future(py, move || async move { ws.delete_segment(&name).await })?.py()
        })
    }

    // ---------------------------------------------------------------------------- static-list segments

    /// `keys`: see `static_keys::resolve`.
    fn define_static_segment<'py>(
        &self,
        py: Python<'py>,
        name: String,
        entity: String,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let keys = crate::static_keys::resolve(keys)?;
        let ws = self.ws.clone();
        let r =
            wait_for_future(py, move || async move { ws.define_static_segment(&name, &entity, keys.as_ref()).await })?
                .py()?;
        to_py(py, &r)
    }

    fn add_static_keys<'py>(
        &self,
        py: Python<'py>,
        name: String,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let keys = crate::static_keys::resolve(keys)?;
        let ws = self.ws.clone();
        let r = wait_for_future(py, move || async move { ws.add_static_keys(&name, keys.as_ref()).await })?.py()?;
        to_py(py, &r)
    }

    fn remove_static_keys<'py>(
        &self,
        py: Python<'py>,
        name: String,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let keys = crate::static_keys::resolve(keys)?;
        let ws = self.ws.clone();
        let r = wait_for_future(py, move || async move { ws.remove_static_keys(&name, keys.as_ref()).await })?.py()?;
        to_py(py, &r)
    }

    fn static_keys(&self, py: Python<'_>, name: String) -> PyResult<PyTable> {
        let ws = self.ws.clone();
        let b = wait_for_future(py, move || async move { ws.static_keys(&name).await })?.py()?;
        batch_table(b)
    }

    fn static_list_versions<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let v = py.detach(|| self.ws.static_list_versions(name)).py()?;
        to_py(py, &v)
    }

    fn evaluate(&self, py: Python<'_>, name: String) -> PyResult<PySegmentRun> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            let run = wait_for_future(py, move || async move { ws.evaluate(&name).await })?.py()?;
            Ok(PySegmentRun { run })
        })
    }

    fn count(&self, py: Python<'_>, name: String) -> PyResult<u64> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            wait_for_future(py, move || async move { ws.count(&name).await })?.py()
        })
    }

    #[pyo3(signature = (name, n=10))]
    fn preview(&self, py: Python<'_>, name: String, n: usize) -> PyResult<PyTable> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            let b = wait_for_future(py, move || async move { ws.preview(&name, n).await })?.py()?;
            batch_table(b)
        })
    }

    #[pyo3(signature = (name, run=None))]
    fn members(&self, py: Python<'_>, name: String, run: Option<i64>) -> PyResult<PyTable> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            let (batches, schema) = wait_for_future(py, move || async move {
                let batches: Vec<_> = ws.members(&name, run).await?.try_collect().await?;
                segkit::Result::Ok((batches, ws.members_schema(&name)?))
            })?
            .py()?;
            table(batches, schema)
        })
    }

    /// One page of a run's stored member keys: (run, keys, more).
    #[pyo3(signature = (name, run=None, offset=0, limit=1000))]
    fn members_page(
        &self,
        py: Python<'_>,
        name: String,
        run: Option<i64>,
        offset: usize,
        limit: usize,
    ) -> PyResult<(i64, PyTable, bool)> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            let p =
                wait_for_future(py, move || async move { ws.members_page(&name, run, offset, limit).await })?.py()?;
            Ok((p.run, table(p.batches, p.schema)?, p.more))
        })
    }

    fn runs<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let r = py.detach(|| self.ws.runs(name)).py()?;
            to_py(py, &r)
        })
    }

    fn sql(&self, py: Python<'_>, query: String) -> PyResult<PyTable> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            let (batches, schema) = wait_for_future(py, move || async move {
                let df = ws.session().sql(&query).await?;
                let schema = Arc::new(df.schema().as_arrow().clone());
                let batches = df.collect().await?;
                segkit::Result::Ok((batches, schema))
            })?
            .py()?;
            table(batches, schema)
        })
    }

    // -------------------------------------------------------------------------------------------- workflows
    // One thin method per core method: specs go to core's request model as JSON, results come back as dicts.

    /// `action`: a config dict or a custom action object (see `crate::action::resolve`).
    #[pyo3(signature = (name, action, parts=None, max_rate_per_second=None))]
    fn register_action(
        &self,
        name: &str,
        action: &Bound<'_, PyAny>,
        parts: Option<Vec<String>>,
        max_rate_per_second: Option<f64>,
    ) -> PyResult<()> {
        crate::error::guard(|| {
            let action = crate::action::resolve(action, parts, max_rate_per_second)?;
            self.ws.register_action(name, action).py()
        })
    }

    // -------------------------------------------------------------------------------------- config-as-code

    /// Plans (`apply` false) or applies a project: `project` is a path to a file or directory, or TOML / YAML
    /// text. Returns the plan as a dict (`changes`, `blocked`, `applied`).
    #[pyo3(signature = (project, apply, allow_destructive, prune))]
    fn reconcile<'py>(
        &self,
        py: Python<'py>,
        project: &str,
        apply: bool,
        allow_destructive: bool,
        prune: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let p = py.detach(|| segkit::Project::from_path_or_text(project)).py()?;
            let options = segkit::ApplyOptions { allow_destructive, prune };
            let ws = self.ws.clone();
            let plan = wait_for_future(py, move || async move {
                if apply {
                    ws.apply(&p, options).await
                } else {
                    ws.plan_with(&p, options).await
                }
            })?
            .py()?;
            to_py(py, &plan)
        })
    }

    /// The workspace's definitions as project text (`format`: `toml` or `yaml`).
    fn export(&self, py: Python<'_>, format: &str) -> PyResult<String> {
        crate::error::guard(|| py.detach(|| self.ws.export().and_then(|p| p.to_text(format))).py())
    }

    /// `spec`: a template spec (`segkit::spec::TemplateSpec`: `name`, `channel`, `parts`, `entity`).
    fn define_template<'py>(&self, py: Python<'py>, spec: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let spec = segkit::spec::from_value::<TemplateSpec>(spec_object(spec, "template spec")?).py()?;
            let ws = self.ws.clone();
            let out = wait_for_future(py, move || async move { ws.define_template(spec).await })?.py()?;
            to_py(py, &out)
        })
    }

    fn template<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let t = py.detach(|| self.ws.template(name)).py()?;
            to_py(py, &t)
        })
    }

    /// The rendered parts of `template` for the entity with key `key` (as text); `pii` values as `***` when
    /// `mask_pii`.
    #[pyo3(signature = (template, key, mask_pii=false))]
    fn render<'py>(
        &self,
        py: Python<'py>,
        template: String,
        key: String,
        mask_pii: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            let parts =
                wait_for_future(py, move || async move { ws.render_masked(&template, &key, mask_pii).await })?.py()?;
            to_py(py, &parts)
        })
    }

    /// `spec`: a workflow spec (`segkit::spec::WorkflowSpec`: `name`, `trigger`, `steps`, `policies`).
    fn define_workflow<'py>(&self, py: Python<'py>, spec: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let spec = segkit::spec::from_value::<WorkflowSpec>(spec_object(spec, "workflow spec")?).py()?;
            let ws = self.ws.clone();
            let out = wait_for_future(py, move || async move { ws.define_workflow(spec).await })?.py()?;
            to_py(py, &out)
        })
    }

    fn workflow<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let w = py.detach(|| self.ws.workflow(name)).py()?;
            to_py(py, &w)
        })
    }

    fn workflows<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let w = py.detach(|| self.ws.workflows()).py()?;
            to_py(py, &w)
        })
    }

    fn delete_workflow(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        crate::error::guard(|| py.detach(|| self.ws.delete_workflow(name)).py())
    }

    /// Keys as text (the wrapper converts ints); None: every current member / entity.
    #[pyo3(signature = (name, keys=None))]
    fn trigger(&self, py: Python<'_>, name: String, keys: Option<Vec<String>>) -> PyResult<u64> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            wait_for_future(py, move || async move { ws.trigger(&name, keys).await })?.py()
        })
    }

    fn dispatch_due<'py>(&self, py: Python<'py>, limit: usize, concurrency: usize) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            let report = wait_for_future(py, move || async move { ws.dispatch_due(limit, concurrency).await })?.py()?;
            to_py(py, &report)
        })
    }

    fn dispatch_backlog<'py>(&self, py: Python<'py>, batch: usize, concurrency: usize) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            let report =
                wait_for_future(py, move || async move { ws.dispatch_backlog(batch, concurrency).await })?.py()?;
            to_py(py, &report)
        })
    }

    #[pyo3(signature = (workflow=None, status=None, ids=None, limit=1000))]
    fn deliveries<'py>(
        &self,
        py: Python<'py>,
        workflow: Option<String>,
        status: Option<&str>,
        ids: Option<Vec<i64>>,
        limit: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let filter = delivery_filter(workflow, status, ids)?;
            let rows = py.detach(|| self.ws.deliveries(&filter, limit)).py()?;
            to_py(py, &rows)
        })
    }

    #[pyo3(signature = (workflow=None, ids=None))]
    fn replay(&self, py: Python<'_>, workflow: Option<String>, ids: Option<Vec<i64>>) -> PyResult<u64> {
        crate::error::guard(|| {
            let filter = delivery_filter(workflow, None, ids)?;
            py.detach(|| self.ws.replay(&filter)).py()
        })
    }

    fn suppress(&self, py: Python<'_>, channel: &str, keys: Vec<String>) -> PyResult<u64> {
        crate::error::guard(|| py.detach(|| self.ws.suppress(channel, &keys)).py())
    }

    fn unsuppress(&self, py: Python<'_>, channel: &str, keys: Vec<String>) -> PyResult<u64> {
        crate::error::guard(|| py.detach(|| self.ws.unsuppress(channel, &keys)).py())
    }

    /// `spec`: a schedule spec (`segkit::spec::ScheduleSpec`: `name`, `cron`, `timezone`, `job`).
    fn schedule<'py>(&self, py: Python<'py>, spec: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let spec = segkit::spec::from_value::<ScheduleSpec>(spec_object(spec, "schedule spec")?).py()?;
            let ws = self.ws.clone();
            let out = wait_for_future(py, move || async move { ws.schedule(spec).await })?.py()?;
            to_py(py, &out)
        })
    }

    fn schedule_info<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let s = py.detach(|| self.ws.schedule_info(name)).py()?;
            to_py(py, &s)
        })
    }

    fn schedules<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let s = py.detach(|| self.ws.schedules()).py()?;
            to_py(py, &s)
        })
    }

    fn delete_schedule(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        crate::error::guard(|| py.detach(|| self.ws.delete_schedule(name)).py())
    }

    /// `now`: RFC 3339 text, or None for the workspace clock's now.
    #[pyo3(signature = (now=None))]
    fn run_due<'py>(&self, py: Python<'py>, now: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let now = match now {
                Some(s) => FixedClock::parse(s).py()?.0,
                None => self.ws.now(),
            };
            let ws = self.ws.clone();
            let report = wait_for_future(py, move || async move { ws.run_due(now).await })?.py()?;
            to_py(py, &report)
        })
    }

    /// Runs the scheduler with the GIL released until a signal handler raises (Ctrl-C: KeyboardInterrupt), then
    /// shuts it down gracefully and returns its report.
    fn serve_forever<'py>(&self, py: Python<'py>, poll_interval_ms: u64, grace_ms: u64) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let options = ServeOptions::default()
                .poll_interval(Duration::from_millis(poll_interval_ms))
                .grace(Duration::from_millis(grace_ms));
            let (ws, token) = (self.ws.clone(), segkit::CancellationToken::new());
            let t = token.clone();
            let report = serve_until_signal(py, token, Duration::from_millis(grace_ms), move || async move {
                ws.serve(options, t).await
            })?
            .py()?;
            to_py(py, &report)
        })
    }

    /// Keys as text (the wrapper converts ints); None: the trigger's default entities. `pii` values rendered as
    /// `***` when `mask_pii`.
    #[pyo3(signature = (name, keys=None, limit=100, mask_pii=false))]
    fn dry_run_workflow<'py>(
        &self,
        py: Python<'py>,
        name: String,
        keys: Option<Vec<String>>,
        limit: usize,
        mask_pii: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::error::guard(|| {
            let ws = self.ws.clone();
            let rows =
                wait_for_future(
                    py,
                    move || async move { ws.dry_run_workflow_with(&name, keys, limit, mask_pii).await },
                )?
                .py()?;
            to_py(py, &rows)
        })
    }

    fn __repr__(&self) -> String {
        format!("Workspace({:?})", self.ws.path())
    }
}

/// The result of one segment evaluation (native).
#[pyclass(name = "SegmentRun", module = "segkit._segkit", frozen)]
pub struct PySegmentRun {
    run: segkit::SegmentRun,
}

#[pymethods]
impl PySegmentRun {
    #[getter]
    fn segment(&self) -> &str {
        &self.run.segment
    }
    #[getter]
    fn run(&self) -> i64 {
        self.run.run
    }
    #[getter]
    fn count(&self) -> u64 {
        self.run.count
    }
    #[getter]
    fn duration_ms(&self) -> f64 {
        self.run.duration.as_secs_f64() * 1000.0
    }
    #[getter]
    fn snapshot(&self) -> i64 {
        self.run.snapshot
    }
    #[getter]
    fn started_at(&self) -> String {
        self.run.started_at.to_rfc3339()
    }
    #[getter]
    fn entered(&self) -> PyResult<PyTable> {
        crate::error::guard(|| batch_table(self.run.entered.clone()))
    }
    #[getter]
    fn exited(&self) -> PyResult<PyTable> {
        crate::error::guard(|| batch_table(self.run.exited.clone()))
    }
    fn members(&self) -> PyResult<PyTable> {
        crate::error::guard(|| batch_table(self.run.members.clone()))
    }
    fn __repr__(&self) -> String {
        format!(
            "SegmentRun(segment={:?}, run={}, count={}, entered={}, exited={})",
            self.run.segment,
            self.run.run,
            self.run.count,
            self.run.entered.num_rows(),
            self.run.exited.num_rows()
        )
    }
}
