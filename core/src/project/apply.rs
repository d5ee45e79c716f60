//! Plan and apply: the project reconciled with the workspace inside one catalog transaction.
//!
//! Both run every definition through the workspace's own `define_*` methods inside a catalog transaction scope
//! (see `catalog/scope.rs`), so a plan validates exactly what an apply would do, against the state the earlier
//! objects of the same project leave. Each object is defined behind a savepoint and compared with what was stored
//! before: when nothing changed the savepoint is rolled back (a schedule keeps its next due time). A plan always
//! rolls the transaction back; an apply commits it — all changes or none.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::load::in_file;
use super::model::{ObjectKind, Project};
use crate::catalog::TxScope;
use crate::error::{Error, Result};
use crate::model::{normalize_name, Entity};
use crate::Workspace;

/// What applying does to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The object does not exist yet.
    Create,
    /// The object exists and its definition changes.
    Update,
    /// The object exists and is not in the project (only with [`ApplyOptions::prune`]).
    Delete,
    /// The object exists as the project defines it.
    Unchanged,
}

/// One object's entry in a [`Plan`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// What kind of object.
    pub kind: ObjectKind,
    /// Its name.
    pub name: String,
    /// What applying does to it.
    pub action: Action,
    /// Whether the change loses data (see [`ApplyOptions::allow_destructive`]).
    pub destructive: bool,
    /// What changes, for people (`changed: rule, description`; empty when unchanged).
    pub detail: String,
}

/// What applying a project does (or did), object by object in apply order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The changes, deletions first, then entities, sources, static segments, segments, templates, workflows and
    /// schedules.
    pub changes: Vec<Change>,
    /// Destructive changes are present and not allowed: apply refuses the whole project.
    pub blocked: bool,
    /// Whether the changes were committed ([`Workspace::apply`]) or only planned.
    pub applied: bool,
}

impl Plan {
    /// Whether applying changes nothing.
    pub fn is_noop(&self) -> bool {
        self.changes.iter().all(|c| c.action == Action::Unchanged)
    }

    /// How many objects get `action`.
    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }

    /// The destructive changes.
    pub fn destructive(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.destructive)
    }
}

impl fmt::Display for Plan {
    /// One line per change (`+` create, `~` update, `-` delete, `=` unchanged; `!` marks a destructive change),
    /// then a summary.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.changes {
            let sign = match c.action {
                Action::Create => "+",
                Action::Update => "~",
                Action::Delete => "-",
                Action::Unchanged => "=",
            };
            let bang = if c.destructive { " !destructive" } else { "" };
            write!(f, "{sign} {} {}{bang}", c.kind, c.name)?;
            if !c.detail.is_empty() {
                write!(f, ": {}", c.detail)?;
            }
            writeln!(f)?;
        }
        write!(
            f,
            "{} to create, {} to update, {} to delete, {} unchanged",
            self.count(Action::Create),
            self.count(Action::Update),
            self.count(Action::Delete),
            self.count(Action::Unchanged)
        )?;
        if self.blocked {
            write!(f, "; refused: destructive changes need allow_destructive")?;
        } else if self.applied {
            write!(f, "; applied")?;
        }
        Ok(())
    }
}

/// How [`Workspace::apply`] treats what the project does not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Apply destructive entity changes: an attribute dropped, an attribute's type, the key, the kind or the
    /// event time changed on an entity that holds data (the entity is recreated empty), an entity holding data
    /// deleted by `prune`, a static list turned into a rule segment (its keys are dropped). Without it a plan
    /// marks them and an apply refuses the whole project.
    pub allow_destructive: bool,
    /// Delete the workspace's objects that the project does not define. Without it they are left alone (and not
    /// listed in the plan).
    pub prune: bool,
}

impl Workspace {
    /// What [`apply`](Self::apply) with default options would do; validates every definition against the
    /// workspace and changes nothing.
    pub async fn plan(&self, project: &Project) -> Result<Plan> {
        self.plan_with(project, ApplyOptions::default()).await
    }

    /// What [`apply`](Self::apply) with `options` would do; changes nothing.
    pub async fn plan_with(&self, project: &Project, options: ApplyOptions) -> Result<Plan> {
        self.reconcile(project, options, false).await
    }

    /// Applies a project in one catalog transaction: every change is committed or none is (an invalid object
    /// anywhere leaves the catalog as it was). Destructive changes are refused with
    /// [`Error::IncompatibleChange`] unless `options.allow_destructive`; with `options.prune` objects the project
    /// does not define are deleted. Returns the plan that was applied.
    pub async fn apply(&self, project: &Project, options: ApplyOptions) -> Result<Plan> {
        self.reconcile(project, options, true).await
    }

    async fn reconcile(&self, project: &Project, options: ApplyOptions, commit: bool) -> Result<Plan> {
        let scope = self.catalog().begin_scope()?;
        let mut touched = Vec::new();
        let result = scope.run(self.reconcile_in(project, options, &scope, &mut touched)).await;
        match result {
            Ok(mut plan) if commit && !plan.blocked => {
                let files = match scope.commit() {
                    Ok(files) => files,
                    Err(e) => {
                        let _ = scope.rollback();
                        let _ = self.refresh_tables(&touched);
                        return Err(e);
                    }
                };
                self.delete_files_now(&files).await;
                self.refresh_tables(&touched)?;
                plan.applied = true;
                Ok(plan)
            }
            Ok(plan) => {
                scope.rollback()?;
                self.refresh_tables(&touched)?;
                if commit {
                    let list: Vec<String> =
                        plan.destructive().map(|c| format!("{} {} ({})", c.kind, c.name, c.detail)).collect();
                    return Err(Error::IncompatibleChange {
                        path: "project".into(),
                        message: format!(
                            "destructive changes refused (apply with allow_destructive to make them): {}",
                            list.join("; ")
                        ),
                    });
                }
                Ok(plan)
            }
            Err(e) => {
                let _ = scope.rollback();
                let _ = self.refresh_tables(&touched);
                Err(e)
            }
        }
    }

    async fn reconcile_in(
        &self,
        project: &Project,
        options: ApplyOptions,
        scope: &Arc<TxScope>,
        touched: &mut Vec<String>,
    ) -> Result<Plan> {
        let mut changes = Vec::new();
        let wanted =
            |kind: ObjectKind| -> HashSet<String> { project.names(kind).iter().map(|n| normalize_name(n)).collect() };
        let file = |kind: ObjectKind, name: &str| project.origin(kind, name).map(str::to_string);
        let at = |kind: ObjectKind, name: &str| format!("{}.{name}", kind.table());

        if options.prune {
            let keep = wanted(ObjectKind::Schedule);
            for s in self.schedules()? {
                if !keep.contains(&s.spec.name) {
                    self.delete_schedule(&s.spec.name)?;
                    changes.push(change(ObjectKind::Schedule, &s.spec.name, Action::Delete, false, ""));
                }
            }
            let keep = wanted(ObjectKind::Workflow);
            for w in self.workflows()? {
                if !keep.contains(&w.name) {
                    self.delete_workflow(&w.name)?;
                    changes.push(change(ObjectKind::Workflow, &w.name, Action::Delete, false, ""));
                }
            }
            let keep = wanted(ObjectKind::Template);
            for t in self.templates()? {
                if !keep.contains(&t.name) {
                    self.delete_template(&t.name)?;
                    changes.push(change(ObjectKind::Template, &t.name, Action::Delete, false, ""));
                }
            }
            let keep: HashSet<String> =
                wanted(ObjectKind::Segment).union(&wanted(ObjectKind::StaticSegment)).cloned().collect();
            for s in self.segments()? {
                if !keep.contains(&s.name) {
                    let kind =
                        if self.is_static_segment(&s.name)? { ObjectKind::StaticSegment } else { ObjectKind::Segment };
                    self.delete_segment(&s.name).await?;
                    changes.push(change(kind, &s.name, Action::Delete, false, "with its run history"));
                }
            }
            let keep = wanted(ObjectKind::Source);
            for s in self.sources()? {
                if !keep.contains(&s.definition.name) {
                    self.delete_source(&s.definition.name).await?;
                    changes.push(change(ObjectKind::Source, &s.definition.name, Action::Delete, false, ""));
                }
            }
            let keep = wanted(ObjectKind::Entity);
            for e in self.entities()? {
                if !keep.contains(&e.name) {
                    if let Some(other) = self.entities()?.into_iter().find(|o| {
                        o.name != e.name && keep.contains(&o.name) && o.links.iter().any(|l| l.entity == e.name)
                    }) {
                        return Err(Error::definition(
                            format!("entities.{}", e.name),
                            format!("entity `{}` links to it: the project cannot delete it", other.name),
                        ));
                    }
                    let rows = self.snapshot(&e.name)?.row_count;
                    let files = self.catalog().delete_entity(&e.name)?;
                    self.delete_files(&files).await;
                    touched.push(e.name.clone());
                    let detail = if rows > 0 { format!("drops its {rows} rows") } else { String::new() };
                    changes.push(change(ObjectKind::Entity, &e.name, Action::Delete, rows > 0, &detail));
                }
            }
        }

        // Entities, link targets first.
        let current: HashMap<String, Entity> = self.entities()?.into_iter().map(|e| (e.name.clone(), e)).collect();
        let mut specs = Vec::new();
        for spec in &project.entities {
            let f = file(ObjectKind::Entity, &spec.name);
            let e = spec
                .clone()
                .into_entity()
                .and_then(|e| e.normalized())
                .map_err(|err| in_file(err, f.as_deref(), &at(ObjectKind::Entity, &spec.name)))?;
            specs.push((e, f));
        }
        for (new, f) in
            order_by(specs, |(e, _)| e.name.clone(), |(e, _)| e.links.iter().map(|l| l.entity.clone()).collect())
        {
            let name = new.name.clone();
            let err = |e: Error| in_file(e, f.as_deref(), &at(ObjectKind::Entity, &name));
            match current.get(&name) {
                None => {
                    self.define_entity(new).await.map_err(err)?;
                    touched.push(name.clone());
                    changes.push(change(ObjectKind::Entity, &name, Action::Create, false, ""));
                }
                Some(old) => {
                    if let Err(why) = new.check_evolution(old, false) {
                        let rows = self.snapshot(&name)?.row_count;
                        let why = crate::spec::bare_message(&why);
                        let detail = if rows > 0 {
                            format!("{why}: recreates it, dropping its {rows} rows")
                        } else {
                            format!("{why}: recreates it (it holds no data)")
                        };
                        let files = self.catalog().delete_entity(&name)?;
                        self.delete_files(&files).await;
                        touched.push(name.clone());
                        self.define_entity(new).await.map_err(err)?;
                        changes.push(change(ObjectKind::Entity, &name, Action::Update, rows > 0, &detail));
                        continue;
                    }
                    let before = serde_json::to_value(old)?;
                    scope.savepoint()?;
                    let after = self.define_entity(new).await.map_err(err)?;
                    touched.push(name.clone());
                    let after = serde_json::to_value(&after)?;
                    changes.push(settle(scope, ObjectKind::Entity, &name, &before, &after)?);
                }
            }
        }

        for def in &project.sources {
            let f = file(ObjectKind::Source, &def.name);
            let before = self.source(&def.name).ok().map(|s| serde_json::to_value(s.definition)).transpose()?;
            scope.savepoint()?;
            let after = self
                .define_source(def.clone())
                .await
                .map_err(|e| in_file(e, f.as_deref(), &at(ObjectKind::Source, &def.name)))?;
            let after = serde_json::to_value(&after)?;
            changes.push(compare(scope, ObjectKind::Source, &after, before.as_ref())?);
        }

        for s in &project.static_segments {
            let f = file(ObjectKind::StaticSegment, &s.name);
            let here = |field: &str| {
                crate::project::load::located(f.as_deref(), &format!("static_segments.{}.{field}", s.name))
            };
            let name = normalize_name(&s.name);
            match self.segment(&name).ok() {
                None => {
                    let entity =
                        self.entity(&s.entity).map_err(|e| Error::definition(here("entity"), e.to_string()))?;
                    let key = entity.key_attribute().ok_or_else(|| {
                        Error::definition(here("entity"), format!("entity `{}` has no key", entity.name))
                    })?;
                    let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
                        &key.name,
                        key.data_type.to_arrow(),
                        false,
                    )]));
                    let keys = crate::RecordBatchSource::empty("no keys", schema);
                    self.define_static_segment(&name, &entity.name, &keys)
                        .await
                        .map_err(|e| in_file(e, f.as_deref(), &here("")))?;
                    changes.push(change(ObjectKind::StaticSegment, &name, Action::Create, false, "an empty key list"));
                }
                Some(def) if self.is_static_segment(&name)? => {
                    if def.entity != normalize_name(&s.entity) {
                        return Err(Error::definition(
                            here("entity"),
                            format!(
                                "static segment `{name}` lists keys of `{}`, not `{}`; its keys are data: delete it and \
                                 define it again",
                                def.entity, s.entity
                            ),
                        ));
                    }
                    changes.push(change(ObjectKind::StaticSegment, &name, Action::Unchanged, false, ""));
                }
                Some(_) => {
                    return Err(Error::definition(
                        here("entity"),
                        format!("`{name}` is a rule segment; a static list's keys are data: delete it first"),
                    ))
                }
            }
        }

        let mut defs = Vec::new();
        for spec in &project.segments {
            let f = file(ObjectKind::Segment, &spec.name);
            let def = spec
                .clone()
                .into_definition()
                .map_err(|e| in_file(e, f.as_deref(), &at(ObjectKind::Segment, &spec.name)))?;
            defs.push((def, f));
        }
        for (mut def, f) in order_by(defs, |(d, _)| normalize_name(&d.name), |(d, _)| d.rule.segment_refs()) {
            def.name = normalize_name(&def.name);
            let name = def.name.clone();
            let before = self.segment(&name).ok().map(|d| serde_json::to_value(&d)).transpose()?;
            let was_static = before.is_some() && self.is_static_segment(&name)?;
            scope.savepoint()?;
            let after = self
                .define_segment(def)
                .await
                .map_err(|e| in_file(e, f.as_deref(), &at(ObjectKind::Segment, &name)))?;
            let after = serde_json::to_value(&after)?;
            let mut c = compare(scope, ObjectKind::Segment, &after, before.as_ref())?;
            if was_static {
                c.destructive = true;
                c.detail = "a static list becomes a rule segment, dropping its keys".into();
            }
            changes.push(c);
        }

        for spec in &project.templates {
            let f = file(ObjectKind::Template, &spec.name);
            let before = self.template(&spec.name).ok().map(|t| serde_json::to_value(&t)).transpose()?;
            scope.savepoint()?;
            let after = self
                .define_template(spec.clone())
                .await
                .map_err(|e| in_file(e, f.as_deref(), &at(ObjectKind::Template, &spec.name)))?;
            changes.push(compare(scope, ObjectKind::Template, &serde_json::to_value(&after)?, before.as_ref())?);
        }

        for spec in &project.workflows {
            let f = file(ObjectKind::Workflow, &spec.name);
            let before = self.workflow(&spec.name).ok().map(|w| serde_json::to_value(&w)).transpose()?;
            scope.savepoint()?;
            let after = self
                .define_workflow(spec.clone())
                .await
                .map_err(|e| in_file(e, f.as_deref(), &at(ObjectKind::Workflow, &spec.name)))?;
            changes.push(compare(scope, ObjectKind::Workflow, &serde_json::to_value(&after)?, before.as_ref())?);
        }

        for spec in &project.schedules {
            let f = file(ObjectKind::Schedule, &spec.name);
            let before = self.schedule_info(&spec.name).ok().map(|s| serde_json::to_value(&s.spec)).transpose()?;
            scope.savepoint()?;
            let after = self
                .schedule(spec.clone())
                .await
                .map_err(|e| in_file(e, f.as_deref(), &at(ObjectKind::Schedule, &spec.name)))?;
            changes.push(compare(scope, ObjectKind::Schedule, &serde_json::to_value(&after.spec)?, before.as_ref())?);
        }

        let blocked = !options.allow_destructive && changes.iter().any(|c| c.destructive);
        Ok(Plan { changes, blocked, applied: false })
    }
}

fn change(kind: ObjectKind, name: &str, action: Action, destructive: bool, detail: &str) -> Change {
    Change { kind, name: name.to_string(), action, destructive, detail: detail.to_string() }
}

/// The change of an object just defined behind a savepoint: created, updated (savepoint kept) or unchanged
/// (savepoint rolled back, so nothing — not even a timestamp — is written).
fn compare(scope: &TxScope, kind: ObjectKind, after: &Value, before: Option<&Value>) -> Result<Change> {
    let name = after.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
    match before {
        None => {
            scope.release()?;
            Ok(change(kind, &name, Action::Create, false, ""))
        }
        Some(before) => settle(scope, kind, &name, before, after),
    }
}

fn settle(scope: &TxScope, kind: ObjectKind, name: &str, before: &Value, after: &Value) -> Result<Change> {
    if before == after {
        scope.rollback_to()?;
        return Ok(change(kind, name, Action::Unchanged, false, ""));
    }
    scope.release()?;
    Ok(change(kind, name, Action::Update, false, &describe(kind, before, after)))
}

/// `changed: rule, description` (for entities: attributes added and changed by name).
fn describe(kind: ObjectKind, before: &Value, after: &Value) -> String {
    let empty = serde_json::Map::new();
    let (b, a) = (before.as_object().unwrap_or(&empty), after.as_object().unwrap_or(&empty));
    let mut fields: Vec<&str> = b.keys().chain(a.keys()).map(String::as_str).collect();
    fields.sort();
    fields.dedup();
    let mut parts = vec![];
    for field in fields {
        if b.get(field) == a.get(field) {
            continue;
        }
        if kind == ObjectKind::Entity && field == "attributes" {
            let names = |v: Option<&Value>| -> Vec<(String, Value)> {
                v.and_then(Value::as_array)
                    .map(|xs| {
                        xs.iter()
                            .map(|x| (x.get("name").and_then(Value::as_str).unwrap_or_default().to_string(), x.clone()))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (old, new) = (names(b.get(field)), names(a.get(field)));
            for (n, v) in &new {
                match old.iter().find(|(o, _)| o == n) {
                    None => parts.push(format!("adds attribute {n}")),
                    Some((_, ov)) if ov != v => parts.push(format!("changes attribute {n}")),
                    _ => {}
                }
            }
            continue;
        }
        parts.push(format!("changes {field}"));
    }
    parts.join(", ")
}

/// The items in an order where each comes after the items (of the same list) it depends on; items in a cycle keep
/// their given order (defining them reports the problem).
fn order_by<T>(items: Vec<T>, name: impl Fn(&T) -> String, deps: impl Fn(&T) -> Vec<String>) -> Vec<T> {
    let names: HashSet<String> = items.iter().map(|i| normalize_name(&name(i))).collect();
    let mut pending: Vec<(String, Vec<String>, T)> = items
        .into_iter()
        .map(|i| {
            let n = normalize_name(&name(&i));
            let d = deps(&i).into_iter().map(|d| normalize_name(&d)).filter(|d| names.contains(d) && *d != n).collect();
            (n, d, i)
        })
        .collect();
    let mut placed: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|(_, d, _)| d.iter().all(|x| placed.contains(x))).unwrap_or(0);
        let (n, _, item) = pending.remove(ready);
        placed.insert(n);
        out.push(item);
    }
    out
}
