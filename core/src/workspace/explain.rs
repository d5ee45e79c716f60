//! `Workspace::explain`: one entity's rule tree annotated with every node's value.

use std::collections::HashMap;
use std::fmt;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::TableReference;
use datafusion::logical_expr::{lit, Expr};
use datafusion::prelude::DataFrame;

use super::{PlanSources, Workspace};
use crate::error::{Error, Result};
use crate::limits::MAX_EXPLAIN_CONDITIONS;
use crate::model::Entity;
use crate::rules::{column, literal, scalar, Checked, CheckedBehavior, Rule};

/// One node of an explained rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct ExplainNode {
    /// What the node tests, e.g. `country eq "CN"` or `and`.
    pub label: String,
    /// Its value for the entity: `Some(true)`, `Some(false)` or `None` (unknown).
    pub value: Option<bool>,
    /// What was compared: the attribute's value (masked for `pii`), or the aggregates of a behavioural node.
    pub detail: Option<String>,
    /// Child nodes.
    pub children: Vec<ExplainNode>,
}

/// Why one entity is or is not a member of a segment.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Explanation {
    /// The segment.
    pub segment: String,
    /// The entity's key, as text.
    pub key: String,
    /// Whether the entity is a member now.
    pub member: bool,
    /// The annotated rule.
    pub root: ExplainNode,
}

fn mark(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "true",
        Some(false) => "false",
        None => "unknown",
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {} a member of `{}`", self.key, if self.member { "is" } else { "is not" }, self.segment)?;
        fn node(f: &mut fmt::Formatter<'_>, n: &ExplainNode, depth: usize) -> fmt::Result {
            write!(f, "{}[{}] {}", "  ".repeat(depth), mark(n.value), n.label)?;
            if let Some(d) = &n.detail {
                write!(f, "  ({d})")?;
            }
            writeln!(f)?;
            n.children.iter().try_for_each(|c| node(f, c, depth + 1))
        }
        node(f, &self.root, 0)
    }
}

fn rule_label(r: &Rule) -> String {
    match r {
        Rule::Condition(c) if c.value.is_null() => format!("{} {}", c.attribute, c.op),
        Rule::Condition(c) => format!("{} {} {}", c.attribute, c.op, c.value),
        other => other.to_json().to_string(),
    }
}

fn and3(vals: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    let mut out = Some(true);
    for v in vals {
        match v {
            Some(false) => return Some(false),
            None => out = None,
            Some(true) => {}
        }
    }
    out
}

fn or3(vals: impl IntoIterator<Item = Option<bool>>) -> Option<bool> {
    let mut out = Some(false);
    for v in vals {
        match v {
            Some(true) => return Some(true),
            None => out = None,
            Some(false) => {}
        }
    }
    out
}

fn cell(batch: &RecordBatch, name: &str) -> Result<Option<String>> {
    let col = batch.column_by_name(name).ok_or_else(|| Error::InvalidArgument(format!("missing column {name}")))?;
    if col.is_null(0) {
        return Ok(None);
    }
    Ok(Some(ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default())?.value(0).to_string()))
}

fn bool_cell(batch: &RecordBatch, name: &str) -> Result<Option<bool>> {
    let col = batch.column_by_name(name).ok_or_else(|| Error::InvalidArgument(format!("missing column {name}")))?;
    Ok(if col.is_null(0) { None } else { Some(col.as_boolean().value(0)) })
}

/// Predicates evaluated per query by [`Workspace::explain`].
const EXPLAIN_COLUMNS_PER_QUERY: usize = 256;

impl Workspace {
    /// Explains why the entity with key `key` (as text) is or is not a member of `segment` now: the rule tree
    /// with each node's value (true / false / unknown), the attribute values compared (`pii` ones masked) and,
    /// for behavioural nodes, the aggregates compared. `to_string()` gives a readable tree.
    pub async fn explain(&self, segment: &str, key: &str) -> Result<Explanation> {
        let c = self.compiled(segment)?;
        let (def, entity, checked) = (&c.def, &c.entity, &c.checked);
        let key_attr = entity.key.clone().expect("segments select keyed entities");
        let key_type = entity.attr(&key_attr)?.data_type.clone();
        let key_value = literal(&serde_json::Value::String(key.to_string()), &key_type, "key")
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let key_expr = Expr::Literal(scalar(&key_value, &key_type), None);
        let now = self.now();
        let mut sources = PlanSources::new(self, self.load_stored_members(checked).await?);
        self.match_sequences(checked, now, &mut sources).await?;

        // Every attribute predicate (also those of inlined segment references) as a column of one row.
        let mut preds = vec![];
        fn collect<'a>(c: &'a Checked, out: &mut Vec<&'a crate::rules::Pred>) {
            match c {
                Checked::And(v) | Checked::Or(v) => v.iter().for_each(|x| collect(x, out)),
                Checked::Not(x) => collect(x, out),
                Checked::Pred(p) => out.push(p),
                Checked::InSegment(r) if !r.stored => collect(&r.rule, out),
                _ => {}
            }
        }
        collect(checked, &mut preds);
        if preds.len() > MAX_EXPLAIN_CONDITIONS {
            return Err(Error::InvalidArgument(format!(
                "explain shows at most {MAX_EXPLAIN_CONDITIONS} conditions and segment `{}` has {} (limit \
                 MAX_EXPLAIN_CONDITIONS = {MAX_EXPLAIN_CONDITIONS}); count and evaluate are not limited",
                def.name,
                preds.len()
            )));
        }
        let df = self.inner.ctx.table(TableReference::bare(entity.name.as_str())).await?;
        let row = df.filter(column(&key_attr).eq(key_expr.clone()))?;
        if concat(row.clone().select(vec![lit(true).alias("__exists")])?).await?.num_rows() == 0 {
            return Err(Error::not_found("entity key", format!("{}.{key_attr} = {key}", entity.name)));
        }
        // The predicates' values, a bounded number of columns per query: DataFusion's projection pushdown is
        // quadratic in the number of columns of one projection.
        let mut pred_values = HashMap::new();
        for chunk in preds.chunks(EXPLAIN_COLUMNS_PER_QUERY) {
            let mut select = vec![];
            for p in chunk {
                select.push(crate::rules::compile::compile_pred_inline(p, now).alias(format!("__p{}", p.id)));
                select.push(column(&p.attribute).alias(format!("__v{}", p.id)));
            }
            let values = concat(row.clone().select(select)?).await?;
            if values.num_rows() == 0 {
                return Err(Error::not_found("entity key", format!("{}.{key_attr} = {key}", entity.name)));
            }
            for p in chunk {
                let shown = cell(&values, &format!("__v{}", p.id))?;
                let pii = entity.get(&p.attribute).is_some_and(|a| a.pii);
                let detail = match shown {
                    None => format!("{} is null", p.attribute),
                    Some(_) if pii => format!("{} = *** (pii)", p.attribute),
                    Some(v) => format!("{} = {v}", p.attribute),
                };
                pred_values.insert(p.id, (bool_cell(&values, &format!("__p{}", p.id))?, detail));
            }
        }

        let ctx = Cx { ws: self, sources: &sources, now, key_attr: &key_attr, entity, key_expr, pred_values };
        let root = ctx.node(checked).await?;
        Ok(Explanation { segment: def.name.clone(), key: key.to_string(), member: root.value == Some(true), root })
    }
}

struct Cx<'a> {
    ws: &'a Workspace,
    sources: &'a PlanSources<'a>,
    now: chrono::DateTime<chrono::Utc>,
    key_attr: &'a str,
    entity: &'a Entity,
    key_expr: Expr,
    pred_values: HashMap<crate::rules::NodeId, (Option<bool>, String)>,
}

async fn concat(df: DataFrame) -> Result<RecordBatch> {
    let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

impl Cx<'_> {
    fn node<'b>(&'b self, c: &'b Checked) -> futures::future::BoxFuture<'b, Result<ExplainNode>> {
        Box::pin(async move {
            Ok(match c {
                Checked::And(v) | Checked::Or(v) => {
                    let mut children = vec![];
                    for x in v {
                        children.push(self.node(x).await?);
                    }
                    let vals = children.iter().map(|n| n.value);
                    let (label, value) =
                        if matches!(c, Checked::And(_)) { ("and", and3(vals)) } else { ("or", or3(vals)) };
                    ExplainNode { label: label.into(), value, detail: None, children }
                }
                Checked::Not(x) => {
                    let child = self.node(x).await?;
                    ExplainNode {
                        label: "not".into(),
                        value: child.value.map(|b| !b),
                        detail: None,
                        children: vec![child],
                    }
                }
                Checked::Pred(p) => {
                    let (value, detail) = self.pred_values.get(&p.id).cloned().unwrap_or((None, String::new()));
                    ExplainNode {
                        label: rule_label(&Checked::Pred(p.clone()).to_rule()),
                        value,
                        detail: Some(detail),
                        children: vec![],
                    }
                }
                Checked::InSegment(r) => {
                    let word = if r.negated { "not_in_segment" } else { "in_segment" };
                    if r.stored || r.static_list {
                        let plan = self.sources_stored(&r.segment)?;
                        let hit = concat(
                            DataFrame::new(self.ws.inner.ctx.state(), plan)
                                .filter(column(self.key_attr).eq(self.key_expr.clone()))?,
                        )
                        .await?
                        .num_rows()
                            > 0;
                        let (tag, what) = if r.static_list {
                            ("static list", "the static list")
                        } else {
                            ("stored", "the latest stored run")
                        };
                        ExplainNode {
                            label: format!("{word} {} ({tag})", r.segment),
                            value: Some(hit != r.negated),
                            detail: Some(format!("{} {what}", if hit { "in" } else { "not in" })),
                            children: vec![],
                        }
                    } else {
                        let child = self.node(&r.rule).await?;
                        let member = child.value == Some(true);
                        ExplainNode {
                            label: format!("{word} {}", r.segment),
                            value: Some(member != r.negated),
                            detail: None,
                            children: vec![child],
                        }
                    }
                }
                Checked::Behavior(b) => self.behavior(b).await?,
                Checked::Sequence(q) => {
                    let (_, witness) =
                        self.ws.match_sequence(q, self.now, self.sources, Some(self.key_expr.clone())).await?;
                    let at = |t: i64| {
                        chrono::DateTime::from_timestamp_micros(t)
                            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                            .unwrap_or_default()
                    };
                    ExplainNode {
                        label: rule_label(&Checked::Sequence(q.clone()).to_rule()),
                        value: self.three_valued(c).await?,
                        detail: Some(match witness.first() {
                            Some((a, b)) => format!("first step at {}, then at {}", at(*a), at(*b)),
                            None => "no first step followed by a then step as required".into(),
                        }),
                        children: vec![],
                    }
                }
                Checked::Linked(l) => {
                    let df = self.ws.inner.ctx.table(TableReference::bare(self.entity.name.as_str())).await?;
                    let row = concat(
                        df.filter(column(self.key_attr).eq(self.key_expr.clone()))?
                            .select(vec![column(&l.via).alias("__via")])?,
                    )
                    .await?;
                    ExplainNode {
                        label: format!("linked via {} where {}", l.via, l.rule.to_rule().to_json()),
                        value: self.three_valued(c).await?,
                        detail: Some(match cell(&row, "__via")? {
                            Some(v) => format!("{} = {v}", l.via),
                            None => format!("{} is null", l.via),
                        }),
                        children: vec![],
                    }
                }
            })
        })
    }

    /// The value of a node that compiles to a subquery, found by filtering (subqueries are planned in filters,
    /// not in projections): true if the entity passes it, false if it passes its negation, else unknown.
    async fn three_valued(&self, c: &Checked) -> Result<Option<bool>> {
        let expr = crate::rules::compile_with(c, self.now, self.key_attr, &self.entity.name, self.sources)?;
        for (e, v) in [(expr.clone(), true), (Expr::Not(Box::new(expr)), false)] {
            let df = self.ws.inner.ctx.table(TableReference::bare(self.entity.name.as_str())).await?;
            let hit = df.filter(column(self.key_attr).eq(self.key_expr.clone()).and(e))?.count().await?;
            if hit > 0 {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    fn sources_stored(&self, segment: &str) -> Result<datafusion::logical_expr::LogicalPlan> {
        use crate::rules::PlanSource;
        Ok(self.sources.stored_members(segment)?.build()?)
    }

    async fn behavior(&self, b: &CheckedBehavior) -> Result<ExplainNode> {
        let events =
            crate::rules::compile::behavior_events(b, self.now, self.key_attr, &self.entity.name, self.sources)?;
        let mut project = vec![];
        for (j, a) in b.having.iter().enumerate() {
            project.push(column(&a.alias));
            project.push(crate::rules::compile::compile_pred_inline(&a.pred, self.now).alias(format!("__h{j}")));
        }
        let plan = events
            .filter(column(&b.link).eq(self.key_expr.clone()))?
            .aggregate(Vec::<Expr>::new(), crate::rules::compile::behavior_aggregates(b))?
            .project(project)?
            .build()?;
        let row = concat(DataFrame::new(self.ws.inner.ctx.state(), plan)).await?;
        let mut details = vec![];
        let mut all = true;
        for (j, a) in b.having.iter().enumerate() {
            let name = match &a.attribute {
                Some(x) => format!("{}({x})", a.func.name()),
                None => a.func.name().to_string(),
            };
            let v = cell(&row, &a.alias)?.unwrap_or_else(|| "null".into());
            let holds = bool_cell(&row, &format!("__h{j}"))?;
            let Rule::Condition(cond) = Checked::Pred(a.pred.clone()).to_rule() else { unreachable!() };
            details.push(format!("{name} = {v} → {name} {} {}: {}", cond.op, cond.value, mark(holds)));
            all &= holds == Some(true);
        }
        let word = if b.negated { "not_performed" } else { "performed" };
        let mut label = format!("{word} {}", b.event.name);
        if let Some(f) = &b.filter {
            label.push_str(&format!(" where {}", f.to_rule().to_json()));
        }
        Ok(ExplainNode { label, value: Some(all != b.negated), detail: Some(details.join("; ")), children: vec![] })
    }
}
