//! Turning a checked rule into a DataFusion plan: stored memberships, materialised behaviour, sequences.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::prelude::DataFrame;

use crate::error::{Error, Result};
use crate::model::Entity;
use crate::rules::{check_with, column, compile_with, Checked, CheckedSequence, PlanSource};
use crate::segment::SegmentDefinition;
use chrono::{DateTime, Utc};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};

use super::Workspace;

/// How many checked rules [`Workspace::compiled`] keeps.
const COMPILED_KEPT: usize = 256;

/// A segment ready to plan: its definition, entity and checked rule.
pub(crate) struct Compiled {
    /// The stored definition text it was made from.
    text: Arc<str>,
    /// The entity's definition version it was checked against.
    entity_version: i64,
    /// The workspace time zone it was checked in (calendar windows depend on it).
    time_zone: chrono_tz::Tz,
    pub def: SegmentDefinition,
    pub entity: Entity,
    pub checked: Checked,
}

impl Workspace {
    /// A segment's definition, entity and checked rule. A checked rule that reads only the entity's own
    /// attributes is kept per segment and reused while the stored definition text and the entity's definition
    /// version are unchanged, so a rule with a million literal values is not parsed and checked again on every
    /// evaluation. Rules that reach other segments or entities are checked each time (those may change); a
    /// change of the workspace time zone checks again too.
    pub(super) fn compiled(&self, name: &str) -> Result<Arc<Compiled>> {
        let name = crate::model::normalize_name(name);
        let text = self.inner.catalog.segment_text(&name)?;
        let Some(text) = text else {
            // `segment` names the known segments; a segment defined meanwhile is a plain not-found here.
            return Err(self.segment(&name).err().unwrap_or_else(|| Error::not_found("segment", &name)));
        };
        let lookup = |entity: &str| -> Result<i64> { Ok(self.inner.catalog.entity(entity)?.map(|e| e.1).unwrap_or(0)) };
        if let Some(c) = self.inner.compiled.lock().unwrap_or_else(|p| p.into_inner()).get(&name) {
            if *c.text == *text && c.time_zone == self.time_zone() && lookup(&c.entity.name)? == c.entity_version {
                return Ok(c.clone());
            }
        }
        let def: SegmentDefinition = serde_json::from_str(&text)?;
        let entity = self.entity(&def.entity)?;
        let entity_version = lookup(&entity.name)?;
        let (checked, reusable) = if self.inner.catalog.static_list(&def.name)?.is_some() {
            (super::static_lists::own_checked(&def.name), false)
        } else {
            let checked = check_with(&def.rule, &entity, self, std::slice::from_ref(&def.name))?;
            let mut own_attributes_only = true;
            checked.walk(&mut |n| {
                own_attributes_only &=
                    matches!(n, Checked::And(_) | Checked::Or(_) | Checked::Not(_) | Checked::Pred(_))
            });
            (checked, own_attributes_only)
        };
        let time_zone = self.time_zone();
        let c = Arc::new(Compiled { text: text.into(), entity_version, time_zone, def, entity, checked });
        let mut kept = self.inner.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if reusable {
            if kept.len() >= COMPILED_KEPT {
                kept.clear();
            }
            kept.insert(name, c.clone());
        } else {
            kept.remove(&name);
        }
        Ok(c)
    }

    pub(super) async fn filtered(&self, entity: &Entity, checked: &Checked) -> Result<DataFrame> {
        let key = entity.key.clone().unwrap_or_default();
        let now = self.now();
        let mut sources = PlanSources::new(self, self.load_stored_members(checked).await?);
        self.match_sequences(checked, now, &mut sources).await?;
        // Run each behavioural subquery first and keep its keys in memory: the main query then joins against a
        // table of known (usually small) size, and the planner builds the hash table on it instead of on the
        // whole profile table.
        let mut behaviors: Vec<&crate::rules::CheckedBehavior> = vec![];
        fn collect<'a>(c: &'a Checked, out: &mut Vec<&'a crate::rules::CheckedBehavior>) {
            c.walk(&mut |n| match n {
                Checked::Behavior(b) => out.push(b),
                Checked::InSegment(r) if !r.stored => collect(&r.rule, out),
                _ => {}
            });
        }
        collect(checked, &mut behaviors);
        for b in behaviors {
            let plan = crate::rules::behavior_subquery(b, now, &key, &entity.name, &sources)?;
            let df = DataFrame::new(self.inner.ctx.state(), plan);
            // The keys are never null (null links are filtered out): saying so lets the planner use a plain
            // (not null-aware) anti join for `not_performed`, with the hash table on this small side.
            let schema: SchemaRef = Arc::new(Schema::new(
                df.schema()
                    .as_arrow()
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(false))
                    .collect::<Vec<_>>(),
            ));
            let batches = df
                .collect()
                .await?
                .into_iter()
                .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
                .collect::<Result<Vec<_>, _>>()?;
            let table: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(schema, vec![batches])?);
            sources.materialized.insert(b.id, table);
        }
        let expr = compile_with(checked, now, &key, &entity.name, &sources)?;
        let df = self.inner.ctx.table(TableReference::bare(entity.name.as_str())).await?;
        Ok(df.filter(expr)?)
    }

    /// Reads the latest stored membership of every segment the rule references with `stored: true`, and the
    /// current keys of every static list it references.
    pub(super) async fn load_stored_members(
        &self,
        checked: &Checked,
    ) -> Result<HashMap<String, Arc<dyn TableProvider>>> {
        fn collect(c: &Checked, out: &mut Vec<String>) {
            c.walk(&mut |n| match n {
                Checked::InSegment(r) if r.stored || r.static_list => out.push(r.segment.clone()),
                Checked::InSegment(r) => collect(&r.rule, out),
                Checked::Behavior(b) => {
                    if let Some(f) = &b.filter {
                        collect(f, out)
                    }
                }
                _ => {}
            });
        }
        let mut names = vec![];
        collect(checked, &mut names);
        let mut out: HashMap<String, Arc<dyn TableProvider>> = HashMap::new();
        for name in names {
            if out.contains_key(&name) {
                continue;
            }
            if let Some(list) = self.inner.catalog.static_list(&name)? {
                out.insert(name.clone(), self.static_table(&name, &list).await?);
                continue;
            }
            let Some(run) = self.inner.catalog.last_run(&name)? else {
                return Err(Error::rule(
                    format!("in_segment {name}"),
                    format!("segment `{name}` has no stored run yet; evaluate it first or use stored: false"),
                ));
            };
            // Only the key column (a split adds `variant`).
            let batches = self
                .inner
                .store
                .read_all(&run.membership_file)
                .await?
                .iter()
                .map(|b| b.project(&[0]))
                .collect::<Result<Vec<_>, _>>()?;
            let schema = match batches.first() {
                Some(b) => b.schema(),
                None => Arc::new(self.members_schema(&name)?.project(&[0])?),
            };
            out.insert(name, Arc::new(MemTable::try_new(schema, vec![batches])?));
        }
        Ok(out)
    }

    /// The physical query plan `evaluate` would run for a segment, as indented text (for tuning and bug reports).
    pub async fn query_plan(&self, name: &str) -> Result<String> {
        let c = self.compiled(name)?;
        let (entity, checked) = (&c.entity, &c.checked);
        let key = entity.key.clone().expect("checked on define");
        let df = self.filtered(entity, checked).await?.select(vec![column(&key)])?;
        let plan = df.create_physical_plan().await?;
        let text = datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string();
        Ok(text)
    }
}

pub(super) struct PlanSources<'a> {
    ws: &'a Workspace,
    stored: HashMap<String, Arc<dyn TableProvider>>,
    /// Materialised behavioural subqueries, by the address of their node in the checked rule being compiled.
    materialized: HashMap<crate::rules::NodeId, Arc<dyn TableProvider>>,
    /// The keys matching each sequence node, by the address of the node.
    sequences: HashMap<crate::rules::NodeId, Arc<dyn TableProvider>>,
}

impl<'a> PlanSources<'a> {
    pub(super) fn new(ws: &'a Workspace, stored: HashMap<String, Arc<dyn TableProvider>>) -> Self {
        PlanSources { ws, stored, materialized: HashMap::new(), sequences: HashMap::new() }
    }
}

impl Workspace {
    /// Matches every sequence node of `checked` (also in inlined segment references, linked rules and
    /// behavioural filters; inner ones first) and keeps the matching keys in `sources`.
    pub(super) async fn match_sequences(
        &self,
        checked: &Checked,
        now: DateTime<Utc>,
        sources: &mut PlanSources<'_>,
    ) -> Result<()> {
        fn collect<'a>(c: &'a Checked, out: &mut Vec<&'a CheckedSequence>) {
            c.walk(&mut |n| match n {
                Checked::InSegment(r) if !r.stored => collect(&r.rule, out),
                Checked::Linked(l) => collect(&l.rule, out),
                Checked::Behavior(b) => {
                    if let Some(f) = &b.filter {
                        collect(f, out)
                    }
                }
                Checked::Sequence(q) => {
                    for step in [Some(&q.first), Some(&q.then), q.without.as_ref()].into_iter().flatten() {
                        collect(step, out);
                    }
                    out.push(q);
                }
                _ => {}
            });
        }
        let mut found = vec![];
        collect(checked, &mut found);
        for q in found {
            let (keys, _) = self.match_sequence(q, now, sources, None).await?;
            let schema = Arc::new(Schema::new(vec![Field::new(&q.link, keys.data_type().clone(), false)]));
            let batch = RecordBatch::try_new(schema.clone(), vec![keys])?;
            sources.sequences.insert(q.id, Arc::new(MemTable::try_new(schema, vec![vec![batch]])?));
        }
        Ok(())
    }

    /// The keys (and earliest witnesses) of the entities matching sequence `q`, optionally of one entity only.
    pub(super) async fn match_sequence(
        &self,
        q: &CheckedSequence,
        now: DateTime<Utc>,
        sources: &PlanSources<'_>,
        only: Option<Expr>,
    ) -> Result<(ArrayRef, Vec<crate::rules::Witness>)> {
        let plan = crate::rules::sequence_events(q, now, sources, only)?;
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let batches = DataFrame::new(self.inner.ctx.state(), plan).collect().await?;
        let within = q.within;
        // A CPU-bound pass (sorting the candidates): off the async workers.
        let threads = self.inner.ctx.state().config().target_partitions();
        match tokio::task::spawn_blocking(move || {
            crate::rules::matching_links(&schema, &batches, within.as_ref(), threads)
        })
        .await
        {
            Ok(found) => found,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(datafusion::error::DataFusionError::External(Box::new(e)).into()),
        }
    }
}

impl PlanSource for PlanSources<'_> {
    fn scan(&self, entity: &str) -> Result<LogicalPlanBuilder> {
        let provider = self.ws.inner.providers.read().unwrap_or_else(|p| p.into_inner()).get(entity).cloned();
        let provider = provider.ok_or_else(|| Error::not_found("entity", entity))?;
        Ok(LogicalPlanBuilder::scan(TableReference::bare(entity), provider_as_source(provider), None)?)
    }
    fn stored_members(&self, segment: &str) -> Result<LogicalPlanBuilder> {
        let provider =
            self.stored.get(segment).cloned().ok_or_else(|| Error::not_found("stored run of segment", segment))?;
        let name = format!("__members_{segment}");
        Ok(LogicalPlanBuilder::scan(TableReference::bare(name.as_str()), provider_as_source(provider), None)?)
    }
    fn materialized(&self, behavior: &crate::rules::CheckedBehavior) -> Option<LogicalPlanBuilder> {
        let provider = self.materialized.get(&behavior.id)?.clone();
        let name = format!("__behavior_{}", behavior.id);
        LogicalPlanBuilder::scan(TableReference::bare(name.as_str()), provider_as_source(provider), None).ok()
    }
    fn sequence_matches(&self, sequence: &CheckedSequence) -> Option<LogicalPlanBuilder> {
        let provider = self.sequences.get(&sequence.id)?.clone();
        let name = format!("__sequence_{}", sequence.id);
        LogicalPlanBuilder::scan(TableReference::bare(name.as_str()), provider_as_source(provider), None).ok()
    }
}
