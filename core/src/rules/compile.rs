//! Compilation of a [`Checked`] rule to a DataFusion [`Expr`]. Values become typed literals, never SQL text.

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::common::{Column, ScalarValue};
use datafusion::functions_nested::expr_fn::{array_has, array_has_all, array_has_any, make_array};
use datafusion::logical_expr::expr::{InList, Like};
use datafusion::logical_expr::{binary_expr, lit, Between, Expr, Operator};

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field as ArrowField, Schema as ArrowSchema};
use datafusion::common::TableReference;
use datafusion::datasource::{provider_as_source, MemTable};
use datafusion::logical_expr::expr::InSubquery;
use datafusion::logical_expr::Subquery;

use datafusion::common::JoinType;
use datafusion::functions_aggregate::expr_fn::{avg, count, count_distinct, max, min, sum};
use datafusion::logical_expr::{in_subquery, LogicalPlan, LogicalPlanBuilder};

use super::ast::AggFn;
use super::checked::{
    Checked, CheckedBehavior, CheckedSequence, CheckedWindow, Cmp, ListMode, Literal, PatternKind, Pred, Test,
};
use crate::error::{Error, Result};
use crate::model::{DataType, UTC};

/// Combines the operands of a group pairwise into a balanced tree (`(a ∧ b) ∧ (c ∧ d)`), so a group of
/// `MAX_RULE_NODES` conditions is an expression about 17 deep, not 100,000 (a left-deep chain from `reduce`
/// overflows the stack in DataFusion's recursive expression walks).
fn balanced(mut v: Vec<Expr>, op: fn(Expr, Expr) -> Expr) -> Option<Expr> {
    while v.len() > 1 {
        let mut next = Vec::with_capacity(v.len().div_ceil(2));
        let mut it = v.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => op(a, b),
                None => a,
            });
        }
        v = next;
    }
    v.pop()
}

/// Compiles a checked rule to a boolean expression over the entity's columns; `now` resolves relative windows.
///
/// Three-valued logic is DataFusion's (SQL's): a comparison with a null attribute is unknown, `not unknown` is
/// unknown, and only rows where the expression is true are members.
///
/// For rules without behavioural conditions or segment references; [`compile_with`] handles those.
pub fn compile(rule: &Checked, now: DateTime<Utc>) -> Expr {
    match rule {
        Checked::And(v) => {
            balanced(v.iter().map(|r| compile(r, now)).collect(), Expr::and).unwrap_or_else(|| lit(true))
        }
        Checked::Or(v) => balanced(v.iter().map(|r| compile(r, now)).collect(), Expr::or).unwrap_or_else(|| lit(false)),
        Checked::Not(r) => Expr::Not(Box::new(compile(r, now))),
        Checked::Pred(p) => compile_pred(p, now),
        Checked::Behavior(_) | Checked::InSegment(_) | Checked::Linked(_) | Checked::Sequence(_) => {
            panic!("compile() got a behavioural, segment, linked or sequence node; use compile_with()")
        }
    }
}

/// Where [`compile_with`] gets the plans of other tables from.
pub trait PlanSource {
    /// A scan of an entity's table.
    fn scan(&self, entity: &str) -> Result<LogicalPlanBuilder>;
    /// The stored members (one key column) of a segment's latest run, or the current keys of a static list.
    fn stored_members(&self, segment: &str) -> Result<LogicalPlanBuilder>;
    /// The already computed result of a behavioural node's subquery ([`behavior_subquery`]), if the caller
    /// materialised it (so the planner knows its exact size and builds the join on it).
    fn materialized(&self, _behavior: &CheckedBehavior) -> Option<LogicalPlanBuilder> {
        None
    }
    /// The keys (one column) of the entities matching a sequence node, found by [`super::matching_links`].
    /// Without them a rule with a sequence does not compile.
    fn sequence_matches(&self, _sequence: &CheckedSequence) -> Option<LogicalPlanBuilder> {
        None
    }
}

/// Compiles any checked rule over entity `profile` (whose key column is `key`). Behavioural conditions become
/// `key [NOT] IN (aggregating subquery over the event table)`, segment references the referenced rule inlined
/// (or `key IN (stored members)`). Both are two-valued: true or false, never unknown.
pub fn compile_with(
    rule: &Checked,
    now: DateTime<Utc>,
    key: &str,
    profile: &str,
    tables: &dyn PlanSource,
) -> Result<Expr> {
    compile_polar(rule, now, key, profile, tables, true)
}

/// `positive` is false under an odd number of `not`s. In positive positions an unknown and a false operand
/// select the same rows, so a referenced rule can be inlined as is (keeping it visible to predicate pushdown and
/// subquery decorrelation); under `not` it is wrapped in `IS TRUE` unless it is two-valued anyway.
fn compile_polar(
    rule: &Checked,
    now: DateTime<Utc>,
    key: &str,
    profile: &str,
    tables: &dyn PlanSource,
    positive: bool,
) -> Result<Expr> {
    let rec = |r: &Checked, p: bool| compile_polar(r, now, key, profile, tables, p);
    Ok(match rule {
        Checked::And(v) => v
            .iter()
            .map(|r| rec(r, positive))
            .collect::<Result<Vec<_>>>()
            .map(|v| balanced(v, Expr::and))?
            .unwrap_or_else(|| lit(true)),
        Checked::Or(v) => v
            .iter()
            .map(|r| rec(r, positive))
            .collect::<Result<Vec<_>>>()
            .map(|v| balanced(v, Expr::or))?
            .unwrap_or_else(|| lit(false)),
        Checked::Not(r) => Expr::Not(Box::new(rec(r, !positive)?)),
        Checked::Pred(p) => compile_pred(p, now),
        Checked::InSegment(r) => {
            let inner_positive = positive != r.negated;
            let inner = if r.stored || r.static_list {
                let plan = tables.stored_members(&r.segment)?.build()?;
                unique_in(column(key), plan, r.id)?
            } else if inner_positive || two_valued(&r.rule) {
                rec(&r.rule, inner_positive)?
            } else {
                Expr::IsTrue(Box::new(rec(&r.rule, inner_positive)?))
            };
            if r.negated {
                Expr::Not(Box::new(inner))
            } else {
                inner
            }
        }
        Checked::Sequence(q) => {
            let plan = tables
                .sequence_matches(q)
                .ok_or_else(|| {
                    Error::InvalidArgument(
                        "sequence conditions are matched before planning (see rules::sequence_events and \
                         rules::matching_links); this PlanSource did not provide the matches"
                            .into(),
                    )
                })?
                .build()?;
            let test = unique_in(column(key), plan, q.id)?;
            if q.negated {
                Expr::Not(Box::new(test))
            } else {
                test
            }
        }
        Checked::Linked(l) => {
            let target_key = l.target.key.clone().unwrap_or_default();
            let inner = compile_polar(&l.rule, now, &target_key, &l.target.name, tables, true)?;
            let plan =
                tables.scan(&l.target.name)?.filter(inner)?.project(vec![column(&l.target_attribute)])?.build()?;
            let test = unique_in(column(&l.via), plan, l.id)?;
            // A null link makes the condition unknown. `via IN (…)` is unknown for a null only when the subquery
            // is not empty, which is enough in positive positions (unknown and false select the same rows); under
            // `not`, where unknown and true are alike, a null link is made true explicitly.
            if positive {
                test
            } else {
                column(&l.via).is_null().or(test)
            }
        }
        Checked::Behavior(b) => {
            let performed = compile_behavior(b, now, key, profile, tables)?;
            if b.negated {
                Expr::Not(Box::new(performed))
            } else {
                performed
            }
        }
    })
}

/// Whether a rule is never unknown (so `IS TRUE` around it changes nothing).
fn two_valued(rule: &Checked) -> bool {
    match rule {
        Checked::And(v) | Checked::Or(v) => v.iter().all(two_valued),
        Checked::Not(r) => two_valued(r),
        Checked::Pred(p) => matches!(p.test, Test::IsNull { .. }),
        Checked::Behavior(_) | Checked::InSegment(_) | Checked::Sequence(_) => true,
        Checked::Linked(_) => false,
    }
}

fn compile_behavior(
    b: &CheckedBehavior,
    now: DateTime<Utc>,
    key: &str,
    profile: &str,
    tables: &dyn PlanSource,
) -> Result<Expr> {
    let without_events = b.holds_without_events();
    let sub = match tables.materialized(b) {
        Some(m) => m.build()?,
        None => behavior_subquery(b, now, key, profile, tables)?,
    };
    let test = unique_in(column(key), sub, b.id)?;
    Ok(if without_events { Expr::Not(Box::new(test)) } else { test })
}

/// The subquery of a behavioural node: the keys (one column, named after the event's link attribute) of the
/// entities whose matching events meet the thresholds — or, when entities without events satisfy them
/// ([`CheckedBehavior::holds_without_events`]), of those whose events fail them.
pub fn behavior_subquery(
    b: &CheckedBehavior,
    now: DateTime<Utc>,
    key: &str,
    profile: &str,
    tables: &dyn PlanSource,
) -> Result<LogicalPlan> {
    let plan = behavior_events(b, now, key, profile, tables)?;
    let having = b.having.iter().map(|a| compile_pred(&a.pred, now)).reduce(Expr::and).unwrap_or_else(|| lit(true));
    // Entities with no matching events never reach the subquery: when they satisfy the thresholds, select the
    // complement (groups that fail) and negate.
    let group_filter = if b.holds_without_events() { Expr::IsNotTrue(Box::new(having)) } else { having };
    Ok(plan
        .aggregate(vec![column(&b.link)], behavior_aggregates(b))?
        .filter(group_filter)?
        .project(vec![column(&b.link)])?
        .build()?)
}

/// The aggregates of a behavioural node, each aliased to its [`CheckedAggregate::alias`](super::CheckedAggregate).
pub(crate) fn behavior_aggregates(b: &CheckedBehavior) -> Vec<Expr> {
    b.having
        .iter()
        .map(|a| {
            let arg = a.attribute.as_deref().map(column);
            let e = match (a.func, arg) {
                (AggFn::Count, _) => count(lit(1i64)),
                (AggFn::CountDistinct, Some(x)) => count_distinct(x),
                (AggFn::Sum, Some(x)) => sum(x),
                (AggFn::Avg, Some(x)) => avg(x),
                (AggFn::Min, Some(x)) => min(x),
                (AggFn::Max, Some(x)) => max(x),
                (f, None) => unreachable!("{} without attribute passed the checker", f.name()),
            };
            e.alias(&a.alias)
        })
        .collect()
}

/// The events a behavioural node counts: linked, matching its filter, inside its window.
pub(crate) fn behavior_events(
    b: &CheckedBehavior,
    now: DateTime<Utc>,
    key: &str,
    profile: &str,
    tables: &dyn PlanSource,
) -> Result<LogicalPlanBuilder> {
    let time = column(&b.time);
    let time_type = if b.time.is_empty() { DataType::Timestamp } else { b.event.attr(&b.time)?.data_type.clone() };
    let tz = match &b.window {
        Some(CheckedWindow::Last(w)) => w.tz,
        _ => chrono_tz::Tz::UTC,
    };
    let bound = |t: DateTime<Utc>| match time_type {
        DataType::Date => Expr::Literal(ScalarValue::Date32(Some(days(t.with_timezone(&tz).date_naive()))), None),
        _ => Expr::Literal(ScalarValue::TimestampMicrosecond(Some(t.timestamp_micros()), Some(UTC.into())), None),
    };
    // Events without a link belong to no entity.
    let mut preds = vec![column(&b.link).is_not_null()];
    let event_key = b.event.key.clone().unwrap_or_default();
    if let Some(f) = &b.filter {
        preds.push(compile_with(f, now, &event_key, &b.event.name, tables)?);
    }
    let mut plan = tables.scan(&b.event.name)?;
    match &b.window {
        None => {}
        Some(CheckedWindow::Last(w)) => preds.push(Expr::Between(Between::new(
            Box::new(time.clone()),
            false,
            Box::new(bound(w.start(now))),
            Box::new(bound(now)),
        ))),
        Some(CheckedWindow::Between(lo, hi)) => preds.push(Expr::Between(Between::new(
            Box::new(time.clone()),
            false,
            Box::new(Expr::Literal(scalar(lo, &time_type), None)),
            Box::new(Expr::Literal(scalar(hi, &time_type), None)),
        ))),
        Some(CheckedWindow::Since(attr)) => {
            let since = tables
                .scan(profile)?
                .project(vec![column(key).alias("__p_key"), column(attr).alias("__p_since")])?
                .build()?;
            plan = plan.join(
                since,
                JoinType::Inner,
                (vec![Column::new_unqualified(&b.link)], vec![Column::new_unqualified("__p_key")]),
                None,
            )?;
            preds.push(time.clone().gt_eq(column("__p_since")));
            preds.push(time.clone().lt_eq(bound(now)));
        }
    }
    if let Some(p) = preds.into_iter().reduce(Expr::and) {
        plan = plan.filter(p)?;
    }
    Ok(plan)
}

/// `expr IN (plan)`, with the subquery's one column renamed after the node (`id`): DataFusion's subquery
/// decorrelation fails on two subqueries in one filter that produce the same column name.
fn unique_in(expr: Expr, plan: LogicalPlan, id: super::NodeId) -> Result<Expr> {
    let name = plan.schema().field(0).name().clone();
    let plan = LogicalPlanBuilder::from(plan).project(vec![column(&name).alias(format!("__in_{id}"))])?.build()?;
    Ok(in_subquery(expr, Arc::new(plan)))
}

/// Above this many values an `in` / `not_in` list compiles to a semi (anti) join against an in-memory table
/// of the values instead of an `InList` expression: DataFusion's logical passes over an `InList` grow faster than
/// linearly with its length (a 1 M-value list did not plan in two minutes). Smaller lists stay `InList`s, which
/// prune Parquet row groups by statistics. `has_any` / `has_all` / `has_none` lists above it compile to one hash
/// set of the values (`rules::list_set`), in filters and in `explain` alike.
pub const LARGE_LIST: usize = 1024;

/// `c [NOT] IN (table of values)`. The values are never null, so the three-valued semantics equal `InList`'s:
/// a null `c` is unknown either way (the table is never empty).
fn large_in(c: Expr, values: &[Literal], t: &DataType, negated: bool, id: usize) -> Expr {
    let array = ScalarValue::iter_to_array(values.iter().map(|v| scalar(v, t)))
        .expect("literals of one checked attribute share one type");
    let schema =
        Arc::new(ArrowSchema::new(vec![ArrowField::new(format!("__list_{id}"), array.data_type().clone(), false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![array]).expect("one column matching its schema");
    let table = MemTable::try_new(schema, vec![vec![batch]]).expect("batches match the schema");
    let plan = LogicalPlanBuilder::scan(
        TableReference::bare(format!("__list_table_{id}")),
        provider_as_source(Arc::new(table)),
        None,
    )
    .and_then(|b| b.build())
    .expect("a scan of an in-memory table");
    let sub = Subquery { subquery: Arc::new(plan), outer_ref_columns: vec![], spans: Default::default() };
    Expr::InSubquery(InSubquery::new(Box::new(c), sub, negated))
}

/// An unqualified column reference (names are validated identifiers; no parsing of dots or case folding).
pub fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// The DataFusion scalar for a literal of attribute type `t`.
pub fn scalar(l: &Literal, t: &DataType) -> ScalarValue {
    match (l, t) {
        (Literal::String(s), _) => ScalarValue::Utf8(Some(s.clone())),
        (Literal::Int(i), DataType::Int32) => ScalarValue::Int32(Some(*i as i32)),
        (Literal::Int(i), DataType::Float64) => ScalarValue::Float64(Some(*i as f64)),
        (Literal::Int(i), _) => ScalarValue::Int64(Some(*i)),
        (Literal::Float(f), _) => ScalarValue::Float64(Some(*f)),
        (Literal::Bool(b), _) => ScalarValue::Boolean(Some(*b)),
        (Literal::Date(d), _) => ScalarValue::Date32(Some(*d)),
        (Literal::Timestamp(t), _) => ScalarValue::TimestampMicrosecond(Some(*t), Some(UTC.into())),
    }
}

fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn compile_pred(p: &Pred, now: DateTime<Utc>) -> Expr {
    compile_pred_as(p, now, true)
}

/// [`compile_pred`] for projections (`explain`), where DataFusion plans no subqueries: a large list stays an
/// `InList` (slower to plan, but `explain` looks at one row).
pub(crate) fn compile_pred_inline(p: &Pred, now: DateTime<Utc>) -> Expr {
    compile_pred_as(p, now, false)
}

fn compile_pred_as(p: &Pred, now: DateTime<Utc>, joins: bool) -> Expr {
    let c = column(&p.attribute);
    let t = &p.data_type;
    let elem = t.element().cloned().unwrap_or(DataType::String);
    let l = |x: &Literal| Expr::Literal(scalar(x, t), None);
    match &p.test {
        Test::Compare(cmp, v) => {
            let op = match cmp {
                Cmp::Eq => Operator::Eq,
                Cmp::Ne => Operator::NotEq,
                Cmp::Lt => Operator::Lt,
                Cmp::Le => Operator::LtEq,
                Cmp::Gt => Operator::Gt,
                Cmp::Ge => Operator::GtEq,
            };
            binary_expr(c, op, l(v))
        }
        Test::Between { lo, hi, negated } => {
            Expr::Between(Between::new(Box::new(c), *negated, Box::new(l(lo)), Box::new(l(hi))))
        }
        Test::InList { values, negated } => {
            if values.len() == 1 {
                let op = if *negated { Operator::NotEq } else { Operator::Eq };
                binary_expr(c, op, l(&values[0]))
            } else if joins && values.len() > LARGE_LIST {
                large_in(c, values, t, *negated, p.id as usize)
            } else {
                Expr::InList(InList::new(Box::new(c), values.iter().map(l).collect(), *negated))
            }
        }
        Test::Pattern { kind, needle, negated } => {
            let e = like_escape(needle);
            let pattern = match kind {
                PatternKind::Contains => format!("%{e}%"),
                PatternKind::StartsWith => format!("{e}%"),
                PatternKind::EndsWith => format!("%{e}"),
            };
            Expr::Like(Like::new(*negated, Box::new(c), Box::new(lit(pattern)), Some('\\'), false))
        }
        Test::Matches(pattern) => binary_expr(c, Operator::RegexMatch, lit(pattern.clone())),
        Test::IsNull { negated } => {
            if *negated {
                c.is_not_null()
            } else {
                c.is_null()
            }
        }
        // Above the threshold a hash set of the values (O(elements + values), also inside `explain`).
        Test::List { mode, values } if values.len() > LARGE_LIST => super::list_set::list_match(c, *mode, values),
        Test::List { mode, values } => {
            let items = || make_array(values.iter().map(|v| Expr::Literal(scalar(v, &elem), None)).collect());
            let any = || {
                if values.len() == 1 {
                    array_has(c.clone(), Expr::Literal(scalar(&values[0], &elem), None))
                } else {
                    array_has_any(c.clone(), items())
                }
            };
            match mode {
                ListMode::Any => any(),
                ListMode::None => Expr::Not(Box::new(any())),
                ListMode::All => {
                    if values.len() == 1 {
                        any()
                    } else {
                        array_has_all(c.clone(), items())
                    }
                }
            }
        }
        Test::WithinLast { window, negated } => {
            let start = window.start(now);
            let (lo, hi) = match t {
                DataType::Date => (
                    ScalarValue::Date32(Some(days(window.local_date(start)))),
                    ScalarValue::Date32(Some(days(window.local_date(now)))),
                ),
                _ => (
                    ScalarValue::TimestampMicrosecond(Some(start.timestamp_micros()), Some(UTC.into())),
                    ScalarValue::TimestampMicrosecond(Some(now.timestamp_micros()), Some(UTC.into())),
                ),
            };
            Expr::Between(Between::new(
                Box::new(c),
                *negated,
                Box::new(Expr::Literal(lo, None)),
                Box::new(Expr::Literal(hi, None)),
            ))
        }
    }
}

/// Days since the epoch.
pub(crate) fn days(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32
}
