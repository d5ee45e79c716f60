//! Templates, workflow definitions, triggers, replay and suppression lists (see [`crate::workflow`]); the
//! dispatcher and dry runs are in `dispatch.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch, StringArray};
use datafusion::common::TableReference;
use datafusion::logical_expr::Expr;
use datafusion::prelude::{cast, ident, lit};
use futures::TryStreamExt;

use crate::action::Action;
use crate::catalog::{NewRow, RunRecord};
use crate::error::{Error, Result};
use crate::limits::{
    MAX_CACHED_ACTIONS, MAX_CAPTURED_CONTEXT_BYTES, MAX_CAPTURED_ROWS, MAX_LOOKUP_KEYS, MAX_TRIGGER_KEYS,
    MAX_WORKFLOW_STEPS,
};
use crate::model::{check_name, normalize_name};
use crate::rules::{check_with, Dialect, Rule};
use crate::workflow::dispatch::MAX_ATTEMPTS;
use crate::workflow::ledger::{DeliveryFilter, LedgerRow, NewDelivery, Reentry, WorkflowRun};
use crate::workflow::policy::{check_policies, check_rate};
use crate::workflow::steps::{due_at, parse_time_of_day, parse_zone, validate_graph};
use crate::workflow::template::{check_parts, render_parts};
use crate::workflow::{ReentrySpec, StepSpec, TemplateSpec, TriggerSpec, WorkflowSpec};

use super::captured::CapturedContexts;
use super::Workspace;

/// How many captured rows a segment run's trigger writes per insert call (per capturing workflow).
const CAPTURED_ROWS_PER_WRITE: usize = 8192;

/// Whether `w`'s rows carry the entered entities' attributes when segment `segment` runs: it starts on entering
/// that segment with an action step.
fn captures_attributes(w: &WorkflowSpec, segment: &str) -> bool {
    matches!(&w.trigger, TriggerSpec::Entered { segment: s } if s == segment)
        && matches!(w.steps.first(), Some(StepSpec::Action { .. }))
}

/// The entered keys of a segment run, to find scanned rows among them: by binary search when they are integers
/// in ascending order without nulls (as a run's entered keys of an integer key are: no copy), else by binary
/// search over their texts (4 bytes per key for the order).
enum EnteredKeys<'a> {
    /// Ascending integers.
    Sorted(&'a arrow::array::Int64Array),
    /// The keys as text, and the positions of the non-null ones in the order of their texts.
    Texts(StringArray, Vec<u32>),
}

impl<'a> EnteredKeys<'a> {
    fn new(keys: &'a arrow::array::ArrayRef) -> Result<Self> {
        if let Some(ints) = keys.as_any().downcast_ref::<arrow::array::Int64Array>() {
            if ints.null_count() == 0 && ints.values().windows(2).all(|w| w[0] < w[1]) {
                return Ok(EnteredKeys::Sorted(ints));
            }
        }
        let texts = arrow::compute::cast(keys, &arrow::datatypes::DataType::Utf8)?;
        let texts = texts
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| Error::InvalidArgument("the entered keys do not read as text".into()))?
            .clone();
        let mut order: Vec<u32> = (0..texts.len() as u32).filter(|&i| texts.is_valid(i as usize)).collect();
        // Stable: of equal texts the first position comes first.
        order.sort_by(|a, b| texts.value(*a as usize).cmp(texts.value(*b as usize)));
        Ok(EnteredKeys::Texts(texts, order))
    }

    fn len(&self) -> usize {
        match self {
            EnteredKeys::Sorted(a) => a.len(),
            EnteredKeys::Texts(t, _) => t.len(),
        }
    }

    fn is_valid(&self, p: usize) -> bool {
        match self {
            EnteredKeys::Sorted(_) => true,
            EnteredKeys::Texts(t, _) => t.is_valid(p),
        }
    }

    /// The text of entered key `p` (as the key cast to text reads).
    fn text(&self, p: u32) -> String {
        match self {
            EnteredKeys::Sorted(a) => a.value(p as usize).to_string(),
            EnteredKeys::Texts(t, _) => t.value(p as usize).to_string(),
        }
    }

    /// Calls `found(position among the entered keys, row)` for each row of the scanned key column `column`
    /// whose key is an entered one.
    fn find(&self, column: &arrow::array::ArrayRef, mut found: impl FnMut(u32, u32)) -> Result<()> {
        match self {
            EnteredKeys::Sorted(sorted) => {
                let ints = arrow::compute::cast(column, &arrow::datatypes::DataType::Int64)?;
                let Some(ints) = ints.as_any().downcast_ref::<arrow::array::Int64Array>() else { return Ok(()) };
                for (j, v) in ints.iter().enumerate() {
                    if let Some(p) = v.and_then(|v| sorted.values().binary_search(&v).ok()) {
                        found(p as u32, j as u32);
                    }
                }
            }
            EnteredKeys::Texts(entered, order) => {
                let texts = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8)?;
                let Some(texts) = texts.as_any().downcast_ref::<StringArray>() else { return Ok(()) };
                for (j, k) in texts.iter().enumerate() {
                    let Some(k) = k else { continue };
                    // The first of equal texts.
                    let at = order.partition_point(|&p| entered.value(p as usize) < k);
                    if let Some(&p) = order.get(at).filter(|&&p| entered.value(p as usize) == k) {
                        found(p, j as u32);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The first-step row of workflow `w` for entity `key` of a segment run (trigger version `trigger`).
fn run_row<'a>(
    w: &'a WorkflowSpec,
    trigger: &'a str,
    entity: &'a str,
    key: &'a str,
    context: Option<&'a str>,
    now: i64,
) -> NewRow<'a> {
    NewRow {
        workflow: &w.name,
        trigger,
        step: w.steps[0].name(),
        entity,
        entity_key: key,
        due_at: due_at(&w.steps[0], now),
        context,
    }
}

/// Most ids one `replay` may name.
const MAX_REPLAY_IDS: usize = 10_000;

pub(super) fn ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn reentry(spec: &WorkflowSpec, now: i64) -> Option<Reentry> {
    let first_step = spec.steps.first()?.name().to_string();
    match spec.policies.reentry {
        ReentrySpec::Never {} => Some(Reentry { first_step, since: i64::MIN }),
        ReentrySpec::Cooldown { seconds } => {
            Some(Reentry { first_step, since: now.saturating_sub((seconds.min(i64::MAX as u64 / 1000) * 1000) as i64) })
        }
        ReentrySpec::Always {} => None,
    }
}

/// A rule error inside a workflow step, its path prefixed with the step's path.
fn at_path(err: Error, path: &str) -> Error {
    match err {
        Error::Rule { path: p, message } if p.is_empty() || p == "<root>" => Error::Rule { path: path.into(), message },
        Error::Rule { path: p, message } => Error::Rule { path: format!("{path}.{p}"), message },
        other => Error::definition(path, other.to_string()),
    }
}

/// The keys of column 0 of `batches` as text.
pub(super) fn keys_of(batches: &[RecordBatch]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for b in batches {
        if b.num_columns() == 0 {
            continue;
        }
        let col = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
        let s = col.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
        out.extend((0..s.len()).filter(|&i| s.is_valid(i)).map(|i| s.value(i).to_string()));
    }
    Ok(out)
}

impl Workspace {
    /// Registers a named action (a custom action, or a built one) that workflow steps can name in `action`.
    pub fn register_action(&self, name: &str, action: Arc<dyn Action>) -> Result<()> {
        let name = normalize_name(name);
        check_name(&name, "action")?;
        self.inner.actions.write().unwrap_or_else(|p| p.into_inner()).insert(name, action);
        Ok(())
    }

    pub(super) fn action_for(&self, spec: &serde_json::Value, path: &str) -> Result<Arc<dyn Action>> {
        match spec {
            serde_json::Value::String(name) => {
                let actions = self.inner.actions.read().unwrap_or_else(|p| p.into_inner());
                actions.get(&normalize_name(name)).cloned().ok_or_else(|| {
                    Error::definition(
                        path,
                        format!(
                            "no action named `{name}`{} (registered: {})",
                            crate::error::hint(name, actions.keys().map(String::as_str)),
                            actions.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    )
                })
            }
            config @ serde_json::Value::Object(_) => {
                let factory = self.inner.action_factory.as_ref().ok_or_else(|| {
                    Error::definition(
                        path,
                        "this workspace has no action factory: open it with WorkspaceOptions::action_factory \
                         (e.g. segkit_actions::registry()) or name a registered action",
                    )
                })?;
                factory.build(config)
            }
            _ => Err(Error::definition(path, "`action` is the name of a registered action or an action config")),
        }
    }

    /// The action of a step for the dispatcher: a registered one, or a config built once and kept (with its
    /// HTTP client, so connections are reused across deliveries and passes) until a workflow is defined or
    /// deleted, at most [`MAX_CACHED_ACTIONS`] configs.
    pub(super) fn dispatch_action(&self, spec: &serde_json::Value, path: &str) -> Result<Arc<dyn Action>> {
        if !spec.is_object() {
            return self.action_for(spec, path);
        }
        let text = spec.to_string();
        if let Some(a) = self.inner.built_actions.lock().unwrap_or_else(|p| p.into_inner()).get(&text) {
            return Ok(a.clone());
        }
        let built = self.action_for(spec, path)?;
        let mut cache = self.inner.built_actions.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_ACTIONS {
            cache.clear();
        }
        Ok(cache.entry(text).or_insert(built).clone())
    }

    fn forget_built_actions(&self) {
        self.inner.built_actions.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Defines (or replaces) a message template. Its parts are parsed and bounded now; with `entity`, every
    /// `entity.<attribute>` it reads must be an attribute of that entity.
    pub async fn define_template(&self, mut spec: TemplateSpec) -> Result<TemplateSpec> {
        spec.name = normalize_name(&spec.name);
        check_name(&spec.name, "template")?;
        let attrs = match &spec.entity {
            Some(e) => {
                let entity = self
                    .entity(e)
                    .map_err(|err| Error::definition(format!("template {}.entity", spec.name), err.to_string()))?;
                spec.entity = Some(entity.name.clone());
                Some(entity.attributes.iter().map(|a| a.name.clone()).collect::<Vec<_>>())
            }
            None => None,
        };
        let names: Option<Vec<&str>> = attrs.as_ref().map(|a| a.iter().map(String::as_str).collect());
        check_parts(&spec.name, &spec.parts, names.as_deref())?;
        self.inner.catalog.put_template(&spec.name, &spec.channel, &serde_json::to_string(&spec)?)?;
        Ok(spec)
    }

    /// All stored templates, by name.
    pub fn templates(&self) -> Result<Vec<TemplateSpec>> {
        self.inner.catalog.template_names()?.iter().map(|n| self.template(n)).collect()
    }

    /// Deletes a template (workflows naming it fail to dispatch until it is defined again).
    pub fn delete_template(&self, name: &str) -> Result<()> {
        let t = self.template(name)?;
        self.inner.catalog.delete_template(&t.name)?;
        Ok(())
    }

    /// A stored template.
    pub fn template(&self, name: &str) -> Result<TemplateSpec> {
        match self.inner.catalog.template(&normalize_name(name))? {
            Some((_, json)) => Ok(serde_json::from_str(&json)?),
            None => {
                let known = self.inner.catalog.template_names()?;
                Err(Error::not_found_among("template", name, known.iter().map(String::as_str)))
            }
        }
    }

    /// Previews a template for one entity (the template must name its `entity`): the rendered parts.
    pub async fn render(&self, template: &str, entity_key: &str) -> Result<BTreeMap<String, String>> {
        self.render_masked(template, entity_key, false).await
    }

    /// [`render`](Self::render), with the values of `pii` attributes replaced by `***` when `mask_pii` (for
    /// callers not allowed to read them).
    pub async fn render_masked(
        &self,
        template: &str,
        entity_key: &str,
        mask_pii: bool,
    ) -> Result<BTreeMap<String, String>> {
        let t = self.template(template)?;
        let entity = t
            .entity
            .clone()
            .ok_or_else(|| Error::InvalidArgument(format!("template `{}` names no entity to preview with", t.name)))?;
        let mut attrs = self
            .entity_attributes(&entity, entity_key)
            .await?
            .ok_or_else(|| Error::not_found("entity", format!("{entity} with key {entity_key}")))?;
        if mask_pii {
            attrs = self.masked(&entity, attrs)?;
        }
        let ctx = serde_json::json!({"entity": attrs, "key": entity_key, "workflow": "", "step": "", "segment": ""});
        render_parts(&t.parts, &ctx)
    }

    /// `attrs` of an `entity` with the values of its `pii` attributes replaced by `***`.
    pub(super) fn masked(
        &self,
        entity: &str,
        mut attrs: serde_json::Map<String, serde_json::Value>,
    ) -> Result<serde_json::Map<String, serde_json::Value>> {
        for a in self.entity(entity)?.attributes.iter().filter(|a| a.pii) {
            if let Some(v) = attrs.get_mut(&a.name).filter(|v| !v.is_null()) {
                *v = serde_json::Value::String("***".into());
            }
        }
        Ok(attrs)
    }

    /// The attributes of the entity `entity` with key `key` (as text), or `None` when there is none.
    pub(super) async fn entity_attributes(
        &self,
        entity: &str,
        key: &str,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
        let e = self.entity(entity)?;
        let key_attr = e.key.clone().ok_or_else(|| Error::InvalidArgument(format!("`{entity}` has no key")))?;
        let batches = self
            .inner
            .ctx
            .table(TableReference::bare(e.name.as_str()))
            .await?
            .filter(cast(ident(key_attr), arrow::datatypes::DataType::Utf8).eq(lit(key.to_string())))?
            .limit(0, Some(1))?
            .collect()
            .await?;
        let rows: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_str(&crate::encode::to_json_rows(&batches)?)?;
        Ok(rows.into_iter().next())
    }

    /// The attributes of the entities `entity` with the given keys (as text), by key: one query per
    /// [`MAX_LOOKUP_KEYS`] keys, matching a key exactly as [`entity_attributes`](Self::entity_attributes) does
    /// (the key attribute cast to text). A key with no entity is absent; of duplicate rows the first is kept.
    pub(super) async fn entity_attributes_many(
        &self,
        entity: &str,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, serde_json::Map<String, serde_json::Value>>> {
        let e = self.entity(entity)?;
        let key_attr = e.key.clone().ok_or_else(|| Error::InvalidArgument(format!("`{entity}` has no key")))?;
        let mut out = std::collections::HashMap::with_capacity(keys.len());
        let mut distinct: Vec<&String> = keys.iter().collect();
        distinct.sort();
        distinct.dedup();
        let key_type = e.attr(&key_attr)?.data_type.clone();
        for chunk in distinct.chunks(MAX_LOOKUP_KEYS) {
            let filter = match typed_keys(chunk, &key_type) {
                // The keys as values of the key's type, and their range: the range lets the Parquet reader skip
                // the pages (and row groups) whose statistics lie outside it, so a lookup reads about as many
                // pages as its keys span, not the whole table (an `IN` list of many values prunes nothing).
                Some(mut values) => {
                    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
                    let (lo, hi) = (values[0].clone(), values[values.len() - 1].clone());
                    let list = values.into_iter().map(|v| Expr::Literal(v, None)).collect();
                    let key = ident(&key_attr);
                    key.clone()
                        .gt_eq(Expr::Literal(lo, None))
                        .and(key.clone().lt_eq(Expr::Literal(hi, None)))
                        .and(key.in_list(list, false))
                }
                None => {
                    let list = chunk.iter().map(|k| lit(k.to_string())).collect();
                    cast(ident(&key_attr), arrow::datatypes::DataType::Utf8).in_list(list, false)
                }
            };
            let wanted: std::collections::HashSet<&str> = chunk.iter().map(|k| k.as_str()).collect();
            let batches =
                self.inner.ctx.table(TableReference::bare(e.name.as_str())).await?.filter(filter)?.collect().await?;
            for b in &batches {
                let Some(i) = b.schema().column_with_name(&key_attr).map(|(i, _)| i) else { continue };
                let texts = arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Utf8)?;
                let texts = texts.as_any().downcast_ref::<StringArray>().ok_or_else(|| {
                    Error::InvalidArgument(format!("`{entity}`: the key `{key_attr}` does not read as text"))
                })?;
                let rows: Vec<serde_json::Map<String, serde_json::Value>> =
                    serde_json::from_str(&crate::encode::to_json_rows(std::slice::from_ref(b))?)?;
                for (j, attrs) in rows.into_iter().enumerate() {
                    // A typed match is kept only when the key reads back as the text asked for.
                    if texts.is_valid(j) && wanted.contains(texts.value(j)) {
                        out.entry(texts.value(j).to_string()).or_insert(attrs);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The entity type a workflow's trigger is about.
    pub(super) fn trigger_entity(&self, trigger: &TriggerSpec) -> Result<String> {
        match trigger {
            TriggerSpec::Entered { segment } | TriggerSpec::Exited { segment } | TriggerSpec::Schedule { segment } => {
                Ok(self.segment(segment)?.entity)
            }
            TriggerSpec::Manual { entity } => Ok(self.entity(entity)?.name),
        }
    }

    /// Defines (or replaces) a workflow. Its trigger's segment or entity must exist, its steps must be 1 to
    /// [`MAX_WORKFLOW_STEPS`] with distinct names, each action must resolve (a registered name or a config the
    /// action factory builds) and each template must exist and suit the trigger's entity.
    pub async fn define_workflow(&self, mut spec: WorkflowSpec) -> Result<WorkflowSpec> {
        spec.name = normalize_name(&spec.name);
        check_name(&spec.name, "workflow")?;
        let wname = spec.name.clone();
        let here = |f: &str| format!("workflow {wname}.{f}");
        match &mut spec.trigger {
            TriggerSpec::Entered { segment } | TriggerSpec::Exited { segment } | TriggerSpec::Schedule { segment } => {
                *segment =
                    self.segment(segment).map_err(|e| Error::definition(here("trigger.segment"), e.to_string()))?.name
            }
            TriggerSpec::Manual { entity } => {
                *entity =
                    self.entity(entity).map_err(|e| Error::definition(here("trigger.entity"), e.to_string()))?.name
            }
        }
        let entity = self.trigger_entity(&spec.trigger)?;
        if spec.steps.is_empty() || spec.steps.len() > MAX_WORKFLOW_STEPS {
            return Err(Error::definition(
                here("steps"),
                format!(
                    "a workflow has 1 to {MAX_WORKFLOW_STEPS} steps (limit MAX_WORKFLOW_STEPS), not {}",
                    spec.steps.len()
                ),
            ));
        }
        if let Some(n) = spec.policies.max_attempts {
            if n == 0 || n > MAX_ATTEMPTS {
                return Err(Error::definition(here("policies.max_attempts"), format!("1 to {MAX_ATTEMPTS}, not {n}")));
            }
        }
        check_policies(&mut spec.policies, &here)?;
        if let Some(a) = spec.policies.quiet_hours.as_ref().and_then(|q| q.timezone_attribute.as_ref()) {
            let e = self.entity(&entity)?;
            if e.get(a).is_none() {
                let hint = crate::error::hint(a, e.attributes.iter().map(|x| x.name.as_str()));
                return Err(Error::definition(
                    here("policies.quiet_hours.timezone_attribute"),
                    format!("`{entity}` has no attribute `{a}`{hint}"),
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, step) in spec.steps.iter_mut().enumerate() {
            let path = here(&format!("steps[{i}]"));
            let name = normalize_name(step.name());
            check_name(&name, &format!("{path}.name"))?;
            if !seen.insert(name.clone()) {
                return Err(Error::definition(format!("{path}.name"), format!("step name `{name}` is used twice")));
            }
            self.check_step(step, name, &entity, &path).await?;
        }
        validate_graph(&spec, &here)?;
        self.inner.catalog.put_workflow(&spec.name, &serde_json::to_string(&spec)?)?;
        self.forget_built_actions();
        Ok(spec)
    }

    /// Checks and normalizes one step (its name already checked as `name`) of a workflow about `entity`.
    async fn check_step(&self, step: &mut StepSpec, name: String, entity: &str, path: &str) -> Result<()> {
        let attr_exists = |attr: &str, field: &str| -> Result<()> {
            let e = self.entity(entity)?;
            if e.get(attr).is_none() {
                let hint = crate::error::hint(attr, e.attributes.iter().map(|a| a.name.as_str()));
                return Err(Error::definition(
                    format!("{path}.{field}"),
                    format!("`{entity}` has no attribute `{attr}`{hint}"),
                ));
            }
            Ok(())
        };
        match step {
            StepSpec::Action { name: n, action, template, rate_per_second, .. } => {
                *n = name;
                self.action_for(action, &format!("{path}.action"))?;
                if let Some(rate) = rate_per_second {
                    check_rate(*rate, &format!("{path}.rate_per_second"))?;
                }
                if let Some(t) = template {
                    let tpl =
                        self.template(t).map_err(|e| Error::definition(format!("{path}.template"), e.to_string()))?;
                    if tpl.entity.as_ref().is_some_and(|e| e != entity) {
                        return Err(Error::definition(
                            format!("{path}.template"),
                            format!(
                                "template `{}` renders `{}`, but the workflow is about `{entity}`",
                                tpl.name,
                                tpl.entity.unwrap_or_default()
                            ),
                        ));
                    }
                    *t = tpl.name;
                }
            }
            StepSpec::Wait { name: n, seconds, until, timezone_attribute, timezone } => {
                *n = name;
                match (seconds.is_some(), until) {
                    (true, None) => {
                        if *seconds == Some(0) {
                            return Err(Error::definition(
                                format!("{path}.seconds"),
                                "a wait of 0 seconds does nothing (and would let a loop run without pause)",
                            ));
                        }
                        if timezone_attribute.is_some() || timezone.is_some() {
                            return Err(Error::definition(
                                format!("{path}.timezone_attribute"),
                                "a time zone only applies to a wait `until` a time of day",
                            ));
                        }
                    }
                    (false, Some(u)) => {
                        parse_time_of_day(u, &format!("{path}.until"))?;
                        if let Some(a) = timezone_attribute {
                            attr_exists(a, "timezone_attribute")?;
                        }
                        if let Some(z) = timezone {
                            parse_zone(z, &format!("{path}.timezone"))?;
                        }
                    }
                    _ => {
                        return Err(Error::definition(
                            path,
                            "a wait has either `seconds` or `until` (a local time of day such as \"09:00\")",
                        ))
                    }
                }
            }
            StepSpec::Branch { name: n, rule, dialect, then, otherwise } => {
                *n = name;
                *then = normalize_name(then);
                *otherwise = normalize_name(otherwise);
                let e = self.entity(entity)?;
                if e.key.is_none() {
                    return Err(Error::definition(
                        format!("{path}.rule"),
                        format!("entity `{entity}` has no key; a branch tests one keyed entity"),
                    ));
                }
                let d: Dialect = match dialect.as_deref() {
                    Some(d) => d.parse().map_err(|err: Error| {
                        Error::definition(format!("{path}.dialect"), crate::spec::bare_message(&err))
                    })?,
                    None => Dialect::Auto,
                };
                let value = match &*rule {
                    serde_json::Value::String(text) => crate::limits::parse_rule_text(text)?,
                    v => v.clone(),
                };
                let parsed = Rule::parse(&value, d).map_err(|err| at_path(err, &format!("{path}.rule")))?;
                let checked =
                    check_with(&parsed, &e, self, &[]).map_err(|err| at_path(err, &format!("{path}.rule")))?;
                *rule = checked.to_rule().to_json();
                *dialect = Some("segkit".into());
            }
            StepSpec::Split { name: n, branches } => {
                *n = name;
                for b in branches.iter_mut() {
                    b.step = normalize_name(&b.step);
                }
            }
            StepSpec::Exit { name: n } => *n = name,
        }
        Ok(())
    }

    /// A stored workflow.
    pub fn workflow(&self, name: &str) -> Result<WorkflowSpec> {
        match self.inner.catalog.workflow(&normalize_name(name))? {
            Some(json) => Ok(serde_json::from_str(&json)?),
            None => {
                let known = self.workflows()?;
                Err(Error::not_found_among("workflow", name, known.iter().map(|w| w.name.as_str())))
            }
        }
    }

    /// All workflows, by name.
    pub fn workflows(&self) -> Result<Vec<WorkflowSpec>> {
        self.inner.catalog.workflow_definitions()?.iter().map(|j| Ok(serde_json::from_str(j)?)).collect()
    }

    /// Deletes a workflow; its ledger rows stay (pending ones are dead-lettered when claimed).
    pub fn delete_workflow(&self, name: &str) -> Result<()> {
        let w = self.workflow(name)?;
        self.inner.catalog.delete_workflow(&w.name)?;
        self.forget_built_actions();
        Ok(())
    }

    /// Triggers a workflow by hand for `keys` (all current members of its segment, or all entities of a
    /// manual workflow's entity, when `None`): one new trigger version, its first-step rows written in one
    /// transaction. Returns how many rows were added (the re-entry policy may skip keys).
    pub async fn trigger(&self, name: &str, keys: Option<Vec<String>>) -> Result<u64> {
        let spec = self.workflow(name)?;
        let entity = self.trigger_entity(&spec.trigger)?;
        let keys = match keys {
            Some(k) => k,
            None => match &spec.trigger {
                TriggerSpec::Entered { segment }
                | TriggerSpec::Exited { segment }
                | TriggerSpec::Schedule { segment } => {
                    keys_of(&self.members(segment, None).await?.try_collect::<Vec<_>>().await?)?
                }
                TriggerSpec::Manual { .. } => {
                    let e = self.entity(&entity)?;
                    let key = e.key.clone().unwrap_or_default();
                    keys_of(
                        &self
                            .inner
                            .ctx
                            .table(TableReference::bare(e.name.as_str()))
                            .await?
                            .select(vec![ident(key)])?
                            .collect()
                            .await?,
                    )?
                }
            },
        };
        if keys.len() > MAX_TRIGGER_KEYS {
            return Err(Error::InvalidArgument(format!(
                "{} keys, more than {MAX_TRIGGER_KEYS} per trigger (limit MAX_TRIGGER_KEYS)",
                keys.len()
            )));
        }
        let now = ms(self.now());
        let first = &spec.steps[0];
        let (_, added) =
            self.inner.catalog.trigger_manual(&spec.name, reentry(&spec, now).as_ref(), now, |trigger| {
                let (trigger, spec) = (trigger.to_string(), &spec);
                keys.iter().map(move |k| NewDelivery {
                    workflow: spec.name.clone(),
                    trigger: trigger.clone(),
                    step: first.name().to_string(),
                    entity: entity.clone(),
                    entity_key: k.clone(),
                    due_at: due_at(first, now),
                    context: None,
                })
            })?;
        Ok(added)
    }

    /// Records a segment run together with the first-step rows of every workflow it triggers (entered or
    /// exited keys), in ONE catalog transaction: all of them are committed or none. A workflow on entering the
    /// segment whose first step is an action step gets the entered entities' attributes (the JSON text of an
    /// object) in its rows (see [`NewDelivery::context`]): that step's first attempt renders and sends with them
    /// instead of reading each entity again at send time.
    ///
    /// The attributes are read in one scan of the entity table **before** the transaction begins, and spilled
    /// as the scan yields them to an unnamed temporary file (see `captured.rs`); the transaction then writes the
    /// rows from that file chunk by chunk. So the trigger holds one scanned batch or one chunk of attributes at
    /// a time, not every entered entity's, and the catalog's write lock is held only while the rows are written,
    /// not while the entity table is scanned. Those workflows' rows are written in the scan's order (within a
    /// batch, in the order of `entered`); entered keys the scan does not find get rows without attributes (read
    /// at send time), after them. Nothing is captured when more than [`MAX_CAPTURED_ROWS`] entered or when the
    /// caller already runs in a transaction scope; an entity whose attributes exceed
    /// [`MAX_CAPTURED_CONTEXT_BYTES`] is read at send time.
    pub(super) async fn commit_run(
        &self,
        record: &RunRecord,
        entity: &crate::model::Entity,
        entered: &RecordBatch,
        exited: &RecordBatch,
    ) -> Result<()> {
        let now = ms(self.now());
        let specs = self.workflows()?;
        let capture = specs.iter().any(|w| captures_attributes(w, &record.segment))
            && entered.num_rows() > 0
            && entered.num_rows() <= MAX_CAPTURED_ROWS
            && entered.num_columns() > 0
            && entity.key.is_some()
            && !self.inner.catalog.in_scope();
        if !capture {
            let groups = self.run_deliveries(record, entered, exited, &specs, false, now)?;
            return self.inner.catalog.insert_run_with(record, groups, now);
        }
        let keys = EnteredKeys::new(entered.column(0))?;
        let (captured, written) = self.capture_attributes(entity, &keys).await?;
        let scope = self.inner.catalog.begin_scope()?;
        let rows = scope.run(async {
            self.write_captured_run(record, entity, (&keys, captured, &written), entered, exited, &specs, now)
        });
        match rows.await.and_then(|()| scope.commit()) {
            // Nothing in this transaction defers a file deletion.
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = scope.rollback();
                Err(e)
            }
        }
    }

    /// Scans the entity table for the entered keys and spills each one's attributes (the first row of a key,
    /// JSON text) in the scan's order; returns the spill and which entered keys were found.
    async fn capture_attributes(
        &self,
        entity: &crate::model::Entity,
        keys: &EnteredKeys<'_>,
    ) -> Result<(CapturedContexts, Vec<bool>)> {
        let key_attr = entity.key.as_deref().expect("checked by commit_run");
        let mut captured = CapturedContexts::new()?;
        // `written[i]`: entered key i was found.
        let mut written = vec![false; keys.len()];
        let mut stream =
            self.inner.ctx.table(TableReference::bare(entity.name.as_str())).await?.execute_stream().await?;
        let mut lines = Vec::new();
        while let Some(batch) = stream.try_next().await? {
            let Some(i) = batch.schema().column_with_name(key_attr).map(|(i, _)| i) else { continue };
            // The batch's rows of entered keys not found yet (of duplicate rows, the first), in entered order.
            let mut picked: Vec<(u32, u32)> = Vec::new();
            keys.find(batch.column(i), |p, j| {
                if !written[p as usize] {
                    written[p as usize] = true;
                    picked.push((p, j));
                }
            })?;
            if picked.is_empty() {
                continue;
            }
            picked.sort_unstable();
            let take = arrow::array::UInt32Array::from_iter_values(picked.iter().map(|(_, j)| *j));
            let rows = arrow::compute::take_record_batch(&batch, &take)?;
            lines.clear();
            let mut w = arrow::json::WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, arrow::json::writer::LineDelimited>(&mut lines);
            w.write(&rows)?;
            w.finish()?;
            drop(w);
            // One line per row: JSON text escapes the line breaks inside values.
            for ((p, _), line) in picked.iter().zip(lines.split(|b| *b == b'\n')) {
                let context = (line.len() <= MAX_CAPTURED_CONTEXT_BYTES).then(|| std::str::from_utf8(line).ok());
                captured.push(*p, context.flatten())?;
            }
        }
        Ok((captured, written))
    }

    /// The inside of [`commit_run`](Self::commit_run)'s transaction scope when attributes are captured: the run's
    /// record, the capturing workflows' rows from the spill (then rows without attributes for the entered keys
    /// the scan did not find), the other workflows' rows.
    #[allow(clippy::too_many_arguments)]
    fn write_captured_run(
        &self,
        record: &RunRecord,
        entity: &crate::model::Entity,
        (keys, captured, written): (&EnteredKeys<'_>, CapturedContexts, &[bool]),
        entered: &RecordBatch,
        exited: &RecordBatch,
        specs: &[WorkflowSpec],
        now: i64,
    ) -> Result<()> {
        let catalog = &self.inner.catalog;
        catalog.insert_run(record)?;
        let trigger = format!("run:{}:{}", record.segment, record.run);
        // The workflows whose rows carry the attributes, with their re-entry filters.
        let capturing: Vec<(&WorkflowSpec, Option<Reentry>)> =
            specs.iter().filter(|w| captures_attributes(w, &record.segment)).map(|w| (w, reentry(w, now))).collect();
        let mut reader = captured.into_reader()?;
        loop {
            let chunk = reader.next_chunk(CAPTURED_ROWS_PER_WRITE)?;
            if chunk.is_empty() {
                break;
            }
            let texts: Vec<String> = chunk.iter().map(|(p, _)| keys.text(*p)).collect();
            for (w, re) in &capturing {
                let made = texts
                    .iter()
                    .zip(&chunk)
                    .map(|(k, (_, c))| run_row(w, &trigger, &entity.name, k, c.as_deref(), now));
                catalog.insert_deliveries_in(made, re.as_ref(), now)?;
            }
        }
        // Entered keys the scan did not find: rows without attributes.
        let missing: Vec<String> =
            (0..keys.len()).filter(|&p| !written[p] && keys.is_valid(p)).map(|p| keys.text(p as u32)).collect();
        for (w, re) in &capturing {
            let made = missing.iter().map(|k| run_row(w, &trigger, &entity.name, k, None, now));
            catalog.insert_deliveries_in(made, re.as_ref(), now)?;
        }
        // The other workflows this run triggers.
        let others = self.run_deliveries(record, entered, exited, specs, true, now)?;
        for (rows, re) in others {
            catalog.insert_deliveries_in(rows, re.as_ref(), now)?;
        }
        Ok(())
    }

    /// The first-step rows (without captured attributes) of the workflows of `specs` that segment run `record`
    /// triggers, per workflow with its re-entry filter; each row is made as it is written, so the trigger holds
    /// the keys, not the rows. `skip_capturing`: leave out the workflows whose rows [`commit_run`] writes with
    /// captured attributes.
    ///
    /// [`commit_run`]: Self::commit_run
    #[allow(clippy::type_complexity)]
    fn run_deliveries(
        &self,
        record: &RunRecord,
        entered: &RecordBatch,
        exited: &RecordBatch,
        specs: &[WorkflowSpec],
        skip_capturing: bool,
        now: i64,
    ) -> Result<Vec<(Box<dyn Iterator<Item = NewDelivery>>, Option<Reentry>)>> {
        let mut groups: Vec<(Box<dyn Iterator<Item = NewDelivery>>, Option<Reentry>)> = Vec::new();
        for spec in specs {
            let keys = match &spec.trigger {
                TriggerSpec::Entered { segment } if *segment == record.segment => entered,
                TriggerSpec::Exited { segment } if *segment == record.segment => exited,
                _ => continue,
            };
            if skip_capturing && captures_attributes(spec, &record.segment) {
                continue;
            }
            // The keys as text (one Arrow array); each row is made as it is written.
            let texts = match keys.num_columns() {
                0 => None,
                _ => Some(arrow::compute::cast(keys.column(0), &arrow::datatypes::DataType::Utf8)?),
            };
            let first = spec.steps[0].clone();
            let trigger = format!("run:{}:{}", record.segment, record.run);
            let entity = self.trigger_entity(&spec.trigger)?;
            let re = reentry(spec, now);
            let workflow = spec.name.clone();
            let n = texts.as_ref().map_or(0, |t| t.len());
            let rows = (0..n).filter_map(move |i| {
                let s = texts.as_ref()?.as_any().downcast_ref::<StringArray>()?;
                s.is_valid(i).then(|| NewDelivery {
                    workflow: workflow.clone(),
                    trigger: trigger.clone(),
                    step: first.name().to_string(),
                    entity: entity.clone(),
                    entity_key: s.value(i).to_string(),
                    due_at: due_at(&first, now),
                    context: None,
                })
            });
            groups.push((Box::new(rows), re));
        }
        Ok(groups)
    }

    /// Ledger rows matching `filter`, oldest first, at most `limit`.
    pub fn deliveries(&self, filter: &DeliveryFilter, limit: usize) -> Result<Vec<LedgerRow>> {
        self.inner.catalog.deliveries(filter, limit)
    }

    /// The starts of workflow `name` (one per trigger version: a segment run, a manual trigger, a schedule's
    /// due instant), newest first, at most `limit`, each with its ledger rows counted by status.
    pub fn workflow_runs(&self, name: &str, limit: usize) -> Result<Vec<WorkflowRun>> {
        let spec = self.workflow(name)?;
        self.inner.catalog.workflow_runs(&spec.name, limit)
    }

    /// Sends dead-lettered deliveries again: the dead rows matching `filter` (ids, workflow) become pending,
    /// due now, with a fresh attempt count and the same idempotency key. Returns how many.
    pub fn replay(&self, filter: &DeliveryFilter) -> Result<u64> {
        if filter.ids.as_ref().is_some_and(|ids| ids.len() > MAX_REPLAY_IDS) {
            return Err(Error::InvalidArgument(format!("replay takes at most {MAX_REPLAY_IDS} ids at once")));
        }
        self.inner.catalog.replay_deliveries(filter, ms(self.now()))
    }

    /// Puts keys on `channel`'s suppression list: their deliveries on it are skipped (status `suppressed`).
    pub fn suppress(&self, channel: &str, keys: &[String]) -> Result<u64> {
        self.inner.catalog.suppress(&normalize_name(channel), keys)
    }

    /// Takes keys off `channel`'s suppression list.
    pub fn unsuppress(&self, channel: &str, keys: &[String]) -> Result<u64> {
        self.inner.catalog.unsuppress(&normalize_name(channel), keys)
    }
}

/// `keys` as values of the key attribute's type `t` when every one of them is the canonical text of such a value
/// (an integer's decimal digits, any string), so filtering the typed key on them matches exactly the entities
/// whose key cast to text is one of them; `None` otherwise (or for other key types).
fn typed_keys(keys: &[&String], t: &crate::model::DataType) -> Option<Vec<datafusion::scalar::ScalarValue>> {
    use crate::model::DataType as T;
    use datafusion::scalar::ScalarValue as S;
    if keys.is_empty() {
        return None;
    }
    keys.iter()
        .map(|k| match t {
            T::String => Some(S::Utf8(Some(k.to_string()))),
            T::Int64 => k.parse::<i64>().ok().filter(|n| n.to_string() == **k).map(|n| S::Int64(Some(n))),
            T::Int32 => k.parse::<i32>().ok().filter(|n| n.to_string() == **k).map(|n| S::Int32(Some(n))),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{typed_keys, EnteredKeys};
    use crate::model::DataType;
    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use datafusion::scalar::ScalarValue;
    use std::sync::Arc;

    /// (entered position, scanned row) of each scanned key found among the entered ones.
    fn found(keys: &EnteredKeys, scanned: ArrayRef) -> Vec<(u32, u32)> {
        let mut out = vec![];
        keys.find(&scanned, |p, j| out.push((p, j))).unwrap();
        out
    }

    #[test]
    fn entered_keys_are_found_by_value_whether_sorted_integers_or_texts() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![-5, 3, 10, 42]));
        let k = EnteredKeys::new(&ints).unwrap();
        assert!(matches!(k, EnteredKeys::Sorted(_)), "ascending integers need no copy");
        let scanned: ArrayRef = Arc::new(Int64Array::from(vec![Some(42), None, Some(4), Some(-5), Some(3)]));
        assert_eq!(found(&k, scanned), vec![(3, 0), (0, 3), (1, 4)]);
        assert_eq!((k.text(0), k.text(3), k.len(), k.is_valid(2)), ("-5".into(), "42".into(), 4, true));

        // Unsorted integers (or with nulls) go by their texts, as do string keys.
        let unsorted: ArrayRef = Arc::new(Int64Array::from(vec![Some(10), None, Some(3)]));
        let k = EnteredKeys::new(&unsorted).unwrap();
        assert!(matches!(k, EnteredKeys::Texts(..)));
        let scanned: ArrayRef = Arc::new(Int64Array::from(vec![3, 7, 10]));
        assert_eq!(found(&k, scanned), vec![(2, 0), (0, 2)]);
        assert_eq!((k.text(0), k.is_valid(1), k.is_valid(2)), ("10".into(), false, true));

        let texts: ArrayRef = Arc::new(StringArray::from(vec![Some("b"), Some("a"), None, Some("ü"), Some("a")]));
        let k = EnteredKeys::new(&texts).unwrap();
        let scanned: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), Some("ü"), Some("c"), None, Some("b")]));
        // Of equal entered texts, the first position.
        assert_eq!(found(&k, scanned), vec![(1, 0), (3, 1), (0, 4)]);
    }

    #[test]
    fn only_canonical_key_texts_become_typed_values() {
        let (a, b, c) = ("42".to_string(), "-7".to_string(), "042".to_string());
        assert_eq!(
            typed_keys(&[&a, &b], &DataType::Int64),
            Some(vec![ScalarValue::Int64(Some(42)), ScalarValue::Int64(Some(-7))])
        );
        // "042" casts to text as "42": a typed filter would match an entity the text lookup does not.
        assert_eq!(typed_keys(&[&a, &c], &DataType::Int64), None);
        assert_eq!(typed_keys(&[&"99999999999".to_string()], &DataType::Int32), None);
        assert_eq!(typed_keys(&[&c], &DataType::String), Some(vec![ScalarValue::Utf8(Some("042".into()))]));
        assert_eq!(typed_keys(&[&a], &DataType::Float64), None);
        assert_eq!(typed_keys(&[], &DataType::Int64), None);
    }
}
