//! Type checking: a parsed [`Rule`] against an [`Entity`] becomes a [`Checked`] rule with typed literals.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

use super::ast::{AggFn, Aggregate, Behavior, BehaviorWindow, Condition, LinkedRule, Op, Rule, SegmentRef, Sequence};
use crate::error::{Error, Result};
use crate::model::{DataType, Entity};

/// A typed literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// Text.
    String(String),
    /// Any integer (range-checked against the attribute's width).
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since the epoch, UTC.
    Timestamp(i64),
}

/// Calendar units for relative windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// 60 seconds.
    Minutes,
    /// 60 minutes.
    Hours,
    /// 24 hours.
    Days,
    /// 7 days.
    Weeks,
    /// Calendar months (clamped to the month's last day).
    Months,
}

/// A relative window length, counted in the workspace's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// How many units.
    pub amount: i64,
    /// Which unit.
    pub unit: TimeUnit,
    /// Days, weeks and months are calendar units of this zone (a day across a DST change is 23 or 25 hours);
    /// minutes and hours are absolute.
    pub tz: chrono_tz::Tz,
}

/// Kinds of string pattern test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternKind {
    /// Substring.
    Contains,
    /// Prefix.
    StartsWith,
    /// Suffix.
    EndsWith,
}

/// How a list test combines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListMode {
    /// At least one element in common.
    Any,
    /// Every operand element present.
    All,
    /// No operand element present.
    None,
}

/// Binary comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `=`
    Eq,
    /// `<>`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// What a checked predicate tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    /// `attr cmp literal`.
    Compare(Cmp, Literal),
    /// `attr [NOT] BETWEEN lo AND hi`.
    Between {
        /// Lower bound (inclusive).
        lo: Literal,
        /// Upper bound (inclusive).
        hi: Literal,
        /// `NOT BETWEEN`.
        negated: bool,
    },
    /// `attr [NOT] IN (…)`.
    InList {
        /// Candidates (non-empty, no nulls).
        values: Vec<Literal>,
        /// `NOT IN`.
        negated: bool,
    },
    /// String pattern test.
    Pattern {
        /// Which test.
        kind: PatternKind,
        /// The literal text (no wildcards).
        needle: String,
        /// Negated.
        negated: bool,
    },
    /// Regular expression search.
    Matches(String),
    /// `IS [NOT] NULL`.
    IsNull {
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// List membership test.
    List {
        /// How elements combine.
        mode: ListMode,
        /// Operand elements (non-empty).
        values: Vec<Literal>,
    },
    /// Within `[now − window, now]`.
    WithinLast {
        /// Window length.
        window: Window,
        /// `not_within_last`.
        negated: bool,
    },
}

/// A type-checked rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    /// All hold.
    And(Vec<Checked>),
    /// One holds.
    Or(Vec<Checked>),
    /// Negation (three-valued).
    Not(Box<Checked>),
    /// A predicate on one attribute.
    Pred(Pred),
    /// A behavioural condition over a linked event entity (true or false, never unknown).
    Behavior(Box<CheckedBehavior>),
    /// Membership in another segment of the same entity (true or false, never unknown).
    InSegment(Box<CheckedSegmentRef>),
    /// A rule on the entity a link points to (unknown when the link is null).
    Linked(Box<CheckedLinked>),
    /// An ordered pair of events (true or false, never unknown).
    Sequence(Box<CheckedSequence>),
}

/// A checked sequence condition.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedSequence {
    /// The event entity.
    pub event: Entity,
    /// Its attribute linking to this profile.
    pub link: String,
    /// Its timestamp attribute.
    pub time: String,
    /// First step.
    pub first: Checked,
    /// Second step.
    pub then: Checked,
    /// Longest gap between the two.
    pub within: Option<Window>,
    /// Events that must not happen strictly between them.
    pub without: Option<Checked>,
    /// Only events in the last N units count.
    pub within_last: Option<Window>,
    /// `not_sequence`.
    pub negated: bool,
}

/// A checked rule on a linked entity.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedLinked {
    /// The link attribute of this entity.
    pub via: String,
    /// The linked entity.
    pub target: Entity,
    /// The attribute of the target the link holds (its key unless the link says otherwise).
    pub target_attribute: String,
    /// The rule over the target.
    pub rule: Checked,
}

/// A type-checked behavioural condition.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedBehavior {
    /// The event entity.
    pub event: Entity,
    /// The event attribute that holds this profile's key.
    pub link: String,
    /// The event time attribute (empty for a related entity without one; then there is no window).
    pub time: String,
    /// Filter over the event's attributes.
    pub filter: Option<Checked>,
    /// Time window.
    pub window: Option<CheckedWindow>,
    /// Thresholds, all of which must hold; each predicate is on the aggregate's column `alias`.
    pub having: Vec<CheckedAggregate>,
    /// `not_performed`.
    pub negated: bool,
}

impl CheckedBehavior {
    /// Whether an entity with no matching events satisfies the thresholds (e.g. `count < 3`).
    pub fn holds_without_events(&self) -> bool {
        self.having.iter().all(|a| {
            let empty = if matches!(a.func, AggFn::Count | AggFn::CountDistinct) { Some(0i64) } else { None };
            match (&a.pred.test, empty) {
                (Test::IsNull { negated }, e) => e.is_none() != *negated,
                (_, None) => false,
                (Test::Compare(c, Literal::Int(v)), Some(n)) => match c {
                    Cmp::Eq => n == *v,
                    Cmp::Ne => n != *v,
                    Cmp::Lt => n < *v,
                    Cmp::Le => n <= *v,
                    Cmp::Gt => n > *v,
                    Cmp::Ge => n >= *v,
                },
                (Test::Between { lo: Literal::Int(lo), hi: Literal::Int(hi), negated }, Some(n)) => {
                    (*lo <= n && n <= *hi) != *negated
                }
                (Test::InList { values, negated }, Some(n)) => values.contains(&Literal::Int(n)) != *negated,
                _ => false,
            }
        })
    }
}

/// A time window resolved against the event entity.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckedWindow {
    /// `[now − window, now]`.
    Last(Window),
    /// `[from, to]`, in the time attribute's type.
    Between(Literal, Literal),
    /// `[profile.attribute, now]`.
    Since(String),
}

/// One checked threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedAggregate {
    /// The function.
    pub func: AggFn,
    /// Its argument.
    pub attribute: Option<String>,
    /// The column name the aggregate is computed as (`__agg0`, …).
    pub alias: String,
    /// The predicate on that column.
    pub pred: Pred,
}

/// A checked segment reference.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedSegmentRef {
    /// The referenced segment.
    pub segment: String,
    /// `not_in_segment`.
    pub negated: bool,
    /// Read the latest stored membership instead of recomputing.
    pub stored: bool,
    /// The referenced segment's checked rule (used when recomputing).
    pub rule: Checked,
}

/// What type checking needs to know beyond the entity itself: other entities and segments.
pub trait Resolver {
    /// All entities.
    fn entities(&self) -> Vec<Entity>;
    /// A segment's entity and rule, if it exists.
    fn segment(&self, name: &str) -> Option<(String, Rule)>;
    /// Names of all segments (for suggestions).
    fn segment_names(&self) -> Vec<String>;
    /// The time zone calendar windows count in (default UTC).
    fn time_zone(&self) -> chrono_tz::Tz {
        chrono_tz::Tz::UTC
    }
}

/// A resolver that knows no other entities or segments.
struct NoResolver;

impl Resolver for NoResolver {
    fn entities(&self) -> Vec<Entity> {
        vec![]
    }
    fn segment(&self, _: &str) -> Option<(String, Rule)> {
        None
    }
    fn segment_names(&self) -> Vec<String> {
        vec![]
    }
}

/// A typed predicate.
#[derive(Debug, Clone, PartialEq)]
pub struct Pred {
    /// Attribute name.
    pub attribute: String,
    /// Its type.
    pub data_type: DataType,
    /// The test.
    pub test: Test,
}

impl Checked {
    /// Attributes the rule reads.
    pub fn attributes(&self) -> Vec<String> {
        let mut out = vec![];
        fn walk(c: &Checked, out: &mut Vec<String>) {
            match c {
                Checked::And(v) | Checked::Or(v) => v.iter().for_each(|x| walk(x, out)),
                Checked::Not(x) => walk(x, out),
                Checked::Pred(p) => {
                    if !out.contains(&p.attribute) {
                        out.push(p.attribute.clone())
                    }
                }
                Checked::Behavior(_) | Checked::InSegment(_) | Checked::Linked(_) | Checked::Sequence(_) => {}
            }
        }
        walk(self, &mut out);
        out
    }

    /// Visits this node and all nodes below it (segment references are not entered).
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Checked)) {
        f(self);
        match self {
            Checked::And(v) | Checked::Or(v) => v.iter().for_each(|x| x.walk(f)),
            Checked::Not(x) => x.walk(f),
            Checked::Pred(_)
            | Checked::Behavior(_)
            | Checked::InSegment(_)
            | Checked::Linked(_)
            | Checked::Sequence(_) => {}
        }
    }
}

/// Type-checks `rule` against `entity`.
///
/// Errors carry the path into the tree (`and[1].or[0]`) and, for unknown attributes, the closest name.
///
/// The result is simplified: a single-child `and`/`or` is its child and nested `and`s (or `or`s) are flattened,
/// so the same condition written in different dialects gives the same checked rule.
pub fn check(rule: &Rule, entity: &Entity) -> Result<Checked> {
    check_with(rule, entity, &NoResolver, &[])
}

/// Type-checks `rule` against `entity`, resolving event entities and referenced segments with `resolver`.
///
/// `defining` lists the segments being defined (the caller's own name): a reference back to one of them is a
/// cycle and an error.
pub fn check_with(rule: &Rule, entity: &Entity, resolver: &dyn Resolver, defining: &[String]) -> Result<Checked> {
    let mut cx = Cx { resolver, stack: defining.to_vec(), tz: resolver.time_zone() };
    Ok(simplify(cx.check_at(rule, entity, "")?))
}

struct Cx<'a> {
    resolver: &'a dyn Resolver,
    stack: Vec<String>,
    tz: chrono_tz::Tz,
}

fn simplify(c: Checked) -> Checked {
    match c {
        Checked::And(v) | Checked::Or(v) if v.len() == 1 => simplify(v.into_iter().next().expect("len 1")),
        Checked::And(v) => Checked::And(
            v.into_iter()
                .map(simplify)
                .flat_map(|x| match x {
                    Checked::And(inner) => inner,
                    other => vec![other],
                })
                .collect(),
        ),
        Checked::Or(v) => Checked::Or(
            v.into_iter()
                .map(simplify)
                .flat_map(|x| match x {
                    Checked::Or(inner) => inner,
                    other => vec![other],
                })
                .collect(),
        ),
        Checked::Not(x) => Checked::Not(Box::new(simplify(*x))),
        Checked::Behavior(mut b) => {
            b.filter = b.filter.map(simplify);
            Checked::Behavior(b)
        }
        other => other,
    }
}

fn join(path: &str, part: impl std::fmt::Display) -> String {
    if path.is_empty() {
        part.to_string()
    } else {
        format!("{path}.{part}")
    }
}

impl Cx<'_> {
    fn check_at(&mut self, rule: &Rule, entity: &Entity, path: &str) -> Result<Checked> {
        let here = if path.is_empty() { "<root>" } else { path };
        Ok(match rule {
            Rule::And(v) => Checked::And(
                v.iter()
                    .enumerate()
                    .map(|(i, r)| self.check_at(r, entity, &join(path, format!("and[{i}]"))))
                    .collect::<Result<_>>()?,
            ),
            Rule::Or(v) => Checked::Or(
                v.iter()
                    .enumerate()
                    .map(|(i, r)| self.check_at(r, entity, &join(path, format!("or[{i}]"))))
                    .collect::<Result<_>>()?,
            ),
            Rule::Not(r) => Checked::Not(Box::new(self.check_at(r, entity, &join(path, "not"))?)),
            Rule::Condition(c) => Checked::Pred(check_condition(c, entity, here, self.tz)?),
            Rule::Performed(b) => {
                let key = if b.negated { "not_performed" } else { "performed" };
                Checked::Behavior(Box::new(self.check_behavior(b, entity, &join(path, key))?))
            }
            Rule::Sequence(q) => {
                let word = if q.negated { "not_sequence" } else { "sequence" };
                Checked::Sequence(Box::new(self.check_sequence(q, entity, &join(path, word))?))
            }
            Rule::Linked(l) => {
                let p = join(path, "linked");
                let Some(link) = entity.links.iter().find(|x| x.attribute == l.via) else {
                    let names: Vec<&str> = entity.links.iter().map(|x| x.attribute.as_str()).collect();
                    let hint = crate::error::hint(&l.via, names.iter().copied());
                    return Err(Error::rule(
                        join(&p, "via"),
                        format!("`{}` is not a link of entity `{}`{hint}", l.via, entity.name),
                    ));
                };
                let entities = self.resolver.entities();
                let target = entities
                    .iter()
                    .find(|e| e.name == link.entity)
                    .ok_or_else(|| {
                        Error::rule(join(&p, "via"), format!("linked entity `{}` is not defined", link.entity))
                    })?
                    .clone();
                let target_attribute = link.target.clone().or_else(|| target.key.clone()).unwrap_or_default();
                let rule = simplify(self.check_at(&l.rule, &target, &join(&p, "where"))?);
                Checked::Linked(Box::new(CheckedLinked { via: l.via.clone(), target, target_attribute, rule }))
            }
            Rule::InSegment(r) => {
                let key = if r.negated { "not_in_segment" } else { "in_segment" };
                let p = join(path, key);
                let Some((seg_entity, seg_rule)) = self.resolver.segment(&r.segment) else {
                    let names = self.resolver.segment_names();
                    let hint = crate::error::hint(&r.segment, names.iter().map(String::as_str));
                    return Err(Error::rule(p, format!("segment `{}` is not defined{hint}", r.segment)));
                };
                if seg_entity != entity.name {
                    return Err(Error::rule(
                        p,
                        format!("segment `{}` selects `{seg_entity}`, not `{}`", r.segment, entity.name),
                    ));
                }
                if let Some(i) = self.stack.iter().position(|s| s == &r.segment) {
                    let mut cycle = self.stack[i..].to_vec();
                    cycle.push(r.segment.clone());
                    return Err(Error::rule(p, format!("segment references form a cycle: {}", cycle.join(" → "))));
                }
                self.stack.push(r.segment.clone());
                let inner = self.check_at(&seg_rule, entity, "").map_err(|e| match e {
                    Error::Rule { path: ip, message } => {
                        Error::rule(&p, format!("in segment `{}` at {ip}: {message}", r.segment))
                    }
                    other => other,
                });
                self.stack.pop();
                Checked::InSegment(Box::new(CheckedSegmentRef {
                    segment: r.segment.clone(),
                    negated: r.negated,
                    stored: r.stored,
                    rule: simplify(inner?),
                }))
            }
        })
    }

    fn check_sequence(&mut self, q: &Sequence, profile: &Entity, path: &str) -> Result<CheckedSequence> {
        // Reuse the behavioural checks for the entity, link and time.
        let probe = Behavior { event: q.event.clone(), filter: None, window: None, having: vec![], negated: false };
        let b = self.check_behavior(&probe, profile, path)?;
        if b.event.attr(&b.time).map(|a| a.data_type.clone()).ok() != Some(DataType::Timestamp) {
            return Err(Error::rule(
                join(path, "event"),
                format!("a sequence needs a timestamp event time on `{}`", b.event.name),
            ));
        }
        let step = |cx: &mut Self, r: &Rule, k: &str| -> Result<Checked> {
            Ok(simplify(cx.check_at(r, &b.event, &join(path, k))?))
        };
        let first = step(self, &q.first, "first")?;
        let then = step(self, &q.then, "then")?;
        let without = match &q.without {
            Some(r) => Some(step(self, r, "without")?),
            None => None,
        };
        let within = q.within.as_ref().map(|v| window(v, &join(path, "within"), self.tz)).transpose()?;
        let within_last = q.within_last.as_ref().map(|v| window(v, &join(path, "within_last"), self.tz)).transpose()?;
        Ok(CheckedSequence {
            event: b.event,
            link: b.link,
            time: b.time,
            first,
            then,
            within,
            without,
            within_last,
            negated: q.negated,
        })
    }

    fn check_behavior(&mut self, b: &Behavior, profile: &Entity, path: &str) -> Result<CheckedBehavior> {
        let entities = self.resolver.entities();
        let Some(event) = entities.iter().find(|e| e.name == b.event) else {
            let hint = crate::error::hint(&b.event, entities.iter().map(|e| e.name.as_str()));
            return Err(Error::rule(join(path, "event"), format!("entity `{}` is not defined{hint}", b.event)));
        };
        let Some(key) = profile.key.clone() else {
            return Err(Error::rule(path, format!("entity `{}` has no key to link events to", profile.name)));
        };
        let Some(link) =
            event.links.iter().find(|l| l.entity == profile.name && l.target.as_ref().is_none_or(|t| t == &key))
        else {
            return Err(Error::rule(
                join(path, "event"),
                format!("entity `{}` has no link to `{}.{key}`", event.name, profile.name),
            ));
        };
        // A related profile entity (orders of a user, say) has no time: it can be counted, but not windowed.
        let (time, time_type) = match event.timestamp.clone() {
            Some(t) => {
                let tt = event.attr(&t)?.data_type.clone();
                (t, tt)
            }
            None if b.window.is_some() => {
                return Err(Error::rule(
                    join(path, "event"),
                    format!("entity `{}` has no timestamp attribute, so it takes no time window", event.name),
                ))
            }
            None => (String::new(), DataType::Timestamp),
        };
        let filter = match &b.filter {
            Some(f) => Some(simplify(self.check_at(f, event, &join(path, "where"))?)),
            None => None,
        };
        let window = match &b.window {
            None => None,
            Some(BehaviorWindow::Last(v)) => Some(CheckedWindow::Last(window(v, &join(path, "within_last"), self.tz)?)),
            Some(BehaviorWindow::Between(a, z)) => {
                let p = join(path, "between");
                let (lo, hi) = (literal(a, &time_type, &p)?, literal(z, &time_type, &p)?);
                if lit_gt(&lo, &hi) {
                    return Err(Error::rule(p, "the start is after the end"));
                }
                Some(CheckedWindow::Between(lo, hi))
            }
            Some(BehaviorWindow::Since(a)) => {
                let p = join(path, "since");
                let attr = profile.attr(a).map_err(|e| Error::rule(&p, e.to_string()))?;
                if attr.data_type != time_type {
                    return Err(Error::rule(
                        p,
                        format!("`{}` is {} but the event time `{time}` is {time_type}", attr.name, attr.data_type),
                    ));
                }
                Some(CheckedWindow::Since(attr.name.clone()))
            }
        };
        let defaults = [Aggregate { func: AggFn::Count, attribute: None, op: Op::Ge, value: Value::from(1) }];
        let having_src: &[Aggregate] = if b.having.is_empty() { &defaults } else { &b.having };
        let mut having = vec![];
        for (i, a) in having_src.iter().enumerate() {
            let p = join(path, format!("having[{i}]"));
            let input = match (&a.func, &a.attribute) {
                (AggFn::Count, None) => None,
                (AggFn::Count, Some(_)) => {
                    return Err(Error::rule(p, "count takes no attribute (use count_distinct)"));
                }
                (f, None) => return Err(Error::rule(p, format!("{} needs an attribute", f.name()))),
                (f, Some(attr)) => {
                    let at = event.attr(attr).map_err(|e| Error::rule(join(&p, f.name()), e.to_string()))?;
                    let ok = match f {
                        AggFn::Sum | AggFn::Avg => at.data_type.is_numeric(),
                        AggFn::Min | AggFn::Max => at.data_type.is_ordered(),
                        _ => !matches!(at.data_type, DataType::List(_) | DataType::Json),
                    };
                    if !ok {
                        return Err(Error::rule(
                            join(&p, f.name()),
                            format!("{} does not apply to `{}` of type {}", f.name(), at.name, at.data_type),
                        ));
                    }
                    Some(at.clone())
                }
            };
            let out_type = match (a.func, &input) {
                (AggFn::Count | AggFn::CountDistinct, _) => DataType::Int64,
                (AggFn::Avg, _) => DataType::Float64,
                (AggFn::Sum, Some(at)) if at.data_type == DataType::Float64 => DataType::Float64,
                (AggFn::Sum, _) => DataType::Int64,
                (_, Some(at)) => at.data_type.clone(),
                (_, None) => DataType::Int64,
            };
            if !matches!(
                a.op,
                Op::Eq
                    | Op::Ne
                    | Op::Lt
                    | Op::Le
                    | Op::Gt
                    | Op::Ge
                    | Op::Between
                    | Op::NotBetween
                    | Op::In
                    | Op::NotIn
                    | Op::IsNull
                    | Op::NotNull
                    | Op::Before
                    | Op::After
                    | Op::WithinLast
                    | Op::NotWithinLast
            ) {
                return Err(Error::rule(
                    join(&p, a.op.name()),
                    format!("operator `{}` does not apply to aggregates", a.op),
                ));
            }
            let alias = format!("__agg{i}");
            let synthetic = Entity {
                name: format!("{}({})", a.func.name(), a.attribute.as_deref().unwrap_or("*")),
                attributes: vec![crate::model::Attribute::new(alias.clone(), out_type)],
                ..Entity::profile("aggregate", alias.clone())
            };
            let cond = Condition { attribute: alias.clone(), op: a.op, value: a.value.clone() };
            let pred = check_condition(&cond, &synthetic, &p, self.tz).map_err(|e| match e {
                Error::Rule { path, message } => {
                    Error::rule(path.replace(".attribute", ""), message.replace(&alias, a.func.name()))
                }
                other => other,
            })?;
            having.push(CheckedAggregate { func: a.func, attribute: a.attribute.clone(), alias, pred });
        }
        Ok(CheckedBehavior {
            event: event.clone(),
            link: link.attribute.clone(),
            time,
            filter,
            window,
            having,
            negated: b.negated,
        })
    }
}

fn check_condition(c: &Condition, entity: &Entity, path: &str, tz: chrono_tz::Tz) -> Result<Pred> {
    let Some(attr) = entity.get(&c.attribute) else {
        let hint = crate::error::hint(&c.attribute, entity.attributes.iter().map(|a| a.name.as_str()));
        return Err(Error::rule(
            join(path, "attribute"),
            format!("entity `{}` has no attribute `{}`{hint}", entity.name, c.attribute),
        ));
    };
    if !attr.filterable {
        return Err(Error::rule(join(path, "attribute"), format!("attribute `{}` is not filterable", attr.name)));
    }
    let t = &attr.data_type;
    let vpath = join(path, "value");
    let invalid =
        || Error::rule(join(path, "op"), format!("operator `{}` does not apply to `{}` of type {t}", c.op, attr.name));
    if !c.op.is_unary() && c.value.is_null() {
        return Err(Error::rule(
            vpath,
            format!("operator `{}` needs a value (to test for missing values use is_null / not_null)", c.op),
        ));
    }
    let scalar_ok = !matches!(t, DataType::List(_) | DataType::Json);
    let test = match c.op {
        Op::Eq | Op::Ne => {
            if !scalar_ok {
                return Err(invalid());
            }
            let cmp = if c.op == Op::Eq { Cmp::Eq } else { Cmp::Ne };
            Test::Compare(cmp, literal(&c.value, t, &vpath)?)
        }
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Before | Op::After => {
            let ok = match c.op {
                Op::Before | Op::After => t.is_temporal(),
                _ => t.is_ordered(),
            };
            if !ok {
                return Err(invalid());
            }
            let cmp = match c.op {
                Op::Lt | Op::Before => Cmp::Lt,
                Op::Le => Cmp::Le,
                Op::Gt | Op::After => Cmp::Gt,
                _ => Cmp::Ge,
            };
            Test::Compare(cmp, literal(&c.value, t, &vpath)?)
        }
        Op::Between | Op::NotBetween => {
            if !t.is_ordered() {
                return Err(invalid());
            }
            let items = list_items(&c.value, &vpath)?;
            if items.len() != 2 {
                return Err(Error::rule(
                    vpath,
                    format!("`{}` needs two bounds [low, high], found {}", c.op, items.len()),
                ));
            }
            let lo = literal(&items[0], t, &vpath)?;
            let hi = literal(&items[1], t, &vpath)?;
            if lit_gt(&lo, &hi) {
                return Err(Error::rule(vpath, "the low bound is greater than the high bound"));
            }
            Test::Between { lo, hi, negated: c.op == Op::NotBetween }
        }
        Op::In | Op::NotIn => {
            if !scalar_ok {
                return Err(invalid());
            }
            Test::InList { values: literals(&c.value, t, &vpath)?, negated: c.op == Op::NotIn }
        }
        Op::Contains | Op::NotContains if matches!(t, DataType::List(_)) => {
            let elem = t.element().expect("list");
            let v = literal(&c.value, elem, &vpath)?;
            let mode = if c.op == Op::Contains { ListMode::Any } else { ListMode::None };
            Test::List { mode, values: vec![v] }
        }
        Op::Contains | Op::NotContains | Op::StartsWith | Op::EndsWith => {
            if !matches!(t, DataType::String | DataType::Json) {
                return Err(invalid());
            }
            let needle = match &c.value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => return Err(Error::rule(vpath, format!("expected text, found {other}"))),
            };
            let kind = match c.op {
                Op::StartsWith => PatternKind::StartsWith,
                Op::EndsWith => PatternKind::EndsWith,
                _ => PatternKind::Contains,
            };
            Test::Pattern { kind, needle, negated: c.op == Op::NotContains }
        }
        Op::Matches => {
            if !matches!(t, DataType::String | DataType::Json) {
                return Err(invalid());
            }
            let Value::String(pattern) = &c.value else {
                return Err(Error::rule(vpath, "expected a regular expression string"));
            };
            regex::RegexBuilder::new(pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| Error::rule(&vpath, format!("invalid regular expression: {e}")))?;
            Test::Matches(pattern.clone())
        }
        Op::IsNull | Op::NotNull => {
            if !(c.value.is_null() || c.value == Value::String(String::new()) || c.value == Value::Bool(true)) {
                return Err(Error::rule(vpath, format!("`{}` takes no value", c.op)));
            }
            Test::IsNull { negated: c.op == Op::NotNull }
        }
        Op::HasAny | Op::HasAll | Op::HasNone => {
            let Some(elem) = t.element() else {
                return Err(invalid());
            };
            let mode = match c.op {
                Op::HasAny => ListMode::Any,
                Op::HasAll => ListMode::All,
                _ => ListMode::None,
            };
            Test::List { mode, values: literals(&c.value, elem, &vpath)? }
        }
        Op::WithinLast | Op::NotWithinLast => {
            if !t.is_temporal() {
                return Err(invalid());
            }
            Test::WithinLast { window: window(&c.value, &vpath, tz)?, negated: c.op == Op::NotWithinLast }
        }
    };
    Ok(Pred { attribute: attr.name.clone(), data_type: t.clone(), test })
}

fn lit_gt(a: &Literal, b: &Literal) -> bool {
    match (a, b) {
        (Literal::String(a), Literal::String(b)) => a > b,
        (Literal::Int(a), Literal::Int(b)) => a > b,
        (Literal::Float(a), Literal::Float(b)) => a.total_cmp(b).is_gt(),
        (Literal::Date(a), Literal::Date(b)) => a > b,
        (Literal::Timestamp(a), Literal::Timestamp(b)) => a > b,
        _ => false,
    }
}

/// Items of a list operand: a JSON array or a comma-separated string (as UI builders send).
fn list_items(v: &Value, path: &str) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a.clone()),
        Value::String(s) => Ok(s.split(',').map(|x| Value::String(x.trim().to_string())).collect()),
        Value::Object(m) if m.contains_key("from") || m.contains_key("to") => {
            Ok(vec![m.get("from").cloned().unwrap_or(Value::Null), m.get("to").cloned().unwrap_or(Value::Null)])
        }
        other => Err(Error::rule(path, format!("expected a list (array or comma-separated text), found {other}"))),
    }
}

fn literals(v: &Value, t: &DataType, path: &str) -> Result<Vec<Literal>> {
    let items = list_items(v, path)?;
    if items.is_empty() {
        return Err(Error::rule(path, "the list of values is empty"));
    }
    let mut out: Vec<Literal> = Vec::with_capacity(items.len());
    for (i, x) in items.iter().enumerate() {
        let l = literal(x, t, &format!("{path}[{i}]"))?;
        if !out.contains(&l) {
            out.push(l);
        }
    }
    Ok(out)
}

/// Coerces one JSON value to a literal of type `t` (accepting UI-style strings such as `"30"`).
pub fn literal(v: &Value, t: &DataType, path: &str) -> Result<Literal> {
    let bad = |why: &str| Error::rule(path, format!("{v} is not a valid {t}{why}"));
    if v.is_null() {
        return Err(Error::rule(path, "null is not a value here (use is_null / not_null)"));
    }
    match t {
        DataType::String | DataType::Json => match v {
            Value::String(s) => Ok(Literal::String(s.clone())),
            Value::Number(n) => Ok(Literal::String(n.to_string())),
            Value::Bool(b) => Ok(Literal::String(b.to_string())),
            _ => Err(bad("")),
        },
        DataType::Int32 | DataType::Int64 => {
            let n = match v {
                Value::Number(n) => {
                    n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64))
                }
                Value::String(s) => {
                    let s = s.trim();
                    s.parse::<i64>().ok().or_else(|| {
                        s.parse::<f64>().ok().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64)
                    })
                }
                _ => None,
            }
            .ok_or_else(|| bad(""))?;
            if *t == DataType::Int32 && i32::try_from(n).is_err() {
                return Err(bad(" (out of range for int32)"));
            }
            Ok(Literal::Int(n))
        }
        DataType::Float64 => match v {
            Value::Number(n) => n.as_f64().map(Literal::Float).ok_or_else(|| bad("")),
            Value::String(s) => {
                s.trim().parse::<f64>().ok().filter(|f| f.is_finite()).map(Literal::Float).ok_or_else(|| bad(""))
            }
            _ => Err(bad("")),
        },
        DataType::Bool => match v {
            Value::Bool(b) => Ok(Literal::Bool(*b)),
            Value::Number(n) if n.as_i64() == Some(1) => Ok(Literal::Bool(true)),
            Value::Number(n) if n.as_i64() == Some(0) => Ok(Literal::Bool(false)),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "t" | "y" => Ok(Literal::Bool(true)),
                "false" | "0" | "no" | "f" | "n" => Ok(Literal::Bool(false)),
                _ => Err(bad("")),
            },
            _ => Err(bad("")),
        },
        DataType::Date => {
            let Value::String(s) = v else {
                return Err(bad(" (write dates as \"YYYY-MM-DD\")"));
            };
            parse_date(s).map(Literal::Date).ok_or_else(|| bad(" (write dates as \"YYYY-MM-DD\")"))
        }
        DataType::Timestamp => {
            let Value::String(s) = v else {
                return Err(bad(" (write instants as RFC 3339 text)"));
            };
            parse_timestamp(s)
                .map(Literal::Timestamp)
                .ok_or_else(|| bad(" (write instants as RFC 3339 text, e.g. 2026-06-30T00:00:00Z)"))
        }
        DataType::List(_) => {
            Err(Error::rule(path, format!("cannot compare a whole {t}; use has_any / has_all / has_none")))
        }
    }
}

/// Days since the epoch of a `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Option<i32> {
    let d = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    Some((d - NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as i32)
}

/// Microseconds since the epoch of an RFC 3339 instant, a `YYYY-MM-DD[ T]HH:MM:SS[.f]` UTC time or a date.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc).timestamp_micros());
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc).timestamp_micros());
        }
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    if let Some(rest) = s.strip_suffix('Z') {
        for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(t) = NaiveDateTime::parse_from_str(rest, f) {
                return Some(t.and_utc().timestamp_micros());
            }
        }
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

fn window(v: &Value, path: &str, tz: chrono_tz::Tz) -> Result<Window> {
    let bad = || {
        Error::rule(path, format!("{v} is not a window; write {{\"amount\": 30, \"unit\": \"days\"}} or \"30 days\""))
    };
    let (amount, unit) = match v {
        Value::Number(n) => (n.as_i64().ok_or_else(bad)?, "days".to_string()),
        Value::String(s) => {
            let s = s.trim();
            let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
            let rest = s[digits.len()..].trim();
            (digits.parse::<i64>().map_err(|_| bad())?, if rest.is_empty() { "days".into() } else { rest.to_string() })
        }
        Value::Object(m) => {
            let amount = m
                .get("amount")
                .and_then(|a| a.as_i64().or_else(|| a.as_str().and_then(|s| s.trim().parse().ok())))
                .ok_or_else(bad)?;
            let unit = m.get("unit").and_then(Value::as_str).unwrap_or("days").to_string();
            (amount, unit)
        }
        Value::Array(a) if a.len() == 2 => (a[0].as_i64().ok_or_else(bad)?, a[1].as_str().ok_or_else(bad)?.to_string()),
        _ => return Err(bad()),
    };
    if !(0..=1_000_000).contains(&amount) {
        return Err(Error::rule(path, format!("window amount {amount} is out of range 0..=1000000")));
    }
    let unit = match unit.to_ascii_lowercase().trim_end_matches('s') {
        "m" | "min" | "minute" => TimeUnit::Minutes,
        "h" | "hour" => TimeUnit::Hours,
        "d" | "day" => TimeUnit::Days,
        "w" | "week" => TimeUnit::Weeks,
        "mo" | "month" => TimeUnit::Months,
        other => {
            return Err(Error::rule(
                path,
                format!("unknown time unit `{other}`; use minutes, hours, days, weeks or months"),
            ))
        }
    };
    Ok(Window { amount, unit, tz })
}

impl Window {
    /// Moves `t` by `sign` × this window: minutes and hours as absolute durations, days, weeks and months on the
    /// calendar of [`Window::tz`] (the local wall-clock time is kept; a time that does not exist because of a
    /// DST change moves forward to the next one that does).
    fn shift(&self, t: DateTime<Utc>, sign: i64) -> DateTime<Utc> {
        use chrono::{Duration, Months, TimeZone};
        let n = self.amount * sign;
        let local = || t.with_timezone(&self.tz).naive_local();
        let back = |naive: NaiveDateTime| -> DateTime<Utc> {
            let mut probe = naive;
            for _ in 0..4 {
                if let Some(x) = self.tz.from_local_datetime(&probe).earliest() {
                    return x.with_timezone(&Utc);
                }
                probe += Duration::minutes(30);
            }
            naive.and_utc()
        };
        match self.unit {
            TimeUnit::Minutes => t + Duration::minutes(n),
            TimeUnit::Hours => t + Duration::hours(n),
            TimeUnit::Days => back(local() + Duration::days(n)),
            TimeUnit::Weeks => back(local() + Duration::weeks(n)),
            TimeUnit::Months => {
                let m = Months::new(self.amount.unsigned_abs() as u32);
                let shifted = if sign < 0 { local().checked_sub_months(m) } else { local().checked_add_months(m) };
                shifted.map(back).unwrap_or(if sign < 0 { DateTime::<Utc>::MIN_UTC } else { DateTime::<Utc>::MAX_UTC })
            }
        }
    }

    /// The instant this long after `t`.
    pub fn after(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        self.shift(t, 1)
    }

    /// The start of the window ending at `now`.
    pub fn start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.shift(now, -1)
    }

    /// The calendar date of an instant in the window's time zone (for `date` attributes).
    pub fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }
}

impl Literal {
    /// The canonical JSON of this literal (dates as `YYYY-MM-DD`, instants as RFC 3339 in UTC).
    pub fn to_json(&self) -> Value {
        match self {
            Literal::String(s) => Value::String(s.clone()),
            Literal::Int(i) => Value::from(*i),
            Literal::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
            Literal::Bool(b) => Value::Bool(*b),
            Literal::Date(d) => Value::String(
                (NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch") + chrono::Duration::days(*d as i64))
                    .format("%Y-%m-%d")
                    .to_string(),
            ),
            Literal::Timestamp(us) => Value::String(
                DateTime::from_timestamp_micros(*us)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                    .unwrap_or_default(),
            ),
        }
    }
}

impl TimeUnit {
    /// The unit's name in rules.
    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::Minutes => "minutes",
            TimeUnit::Hours => "hours",
            TimeUnit::Days => "days",
            TimeUnit::Weeks => "weeks",
            TimeUnit::Months => "months",
        }
    }
}

impl Checked {
    /// The canonical rule in segkit's dialect: typed values, lists as arrays, windows as objects.
    ///
    /// Segments are stored in this form, so the same condition written in any dialect is stored the same way.
    pub fn to_rule(&self) -> Rule {
        match self {
            Checked::And(v) => Rule::And(v.iter().map(Checked::to_rule).collect()),
            Checked::Or(v) => Rule::Or(v.iter().map(Checked::to_rule).collect()),
            Checked::Not(x) => Rule::not(x.to_rule()),
            Checked::InSegment(r) => {
                Rule::InSegment(SegmentRef { segment: r.segment.clone(), negated: r.negated, stored: r.stored })
            }
            Checked::Linked(l) => Rule::Linked(Box::new(LinkedRule { via: l.via.clone(), rule: l.rule.to_rule() })),
            Checked::Sequence(q) => {
                let w = |w: &Window| serde_json::json!({"amount": w.amount, "unit": w.unit.name()});
                Rule::Sequence(Box::new(Sequence {
                    event: q.event.name.clone(),
                    first: q.first.to_rule(),
                    then: q.then.to_rule(),
                    within: q.within.as_ref().map(w),
                    without: q.without.as_ref().map(Checked::to_rule),
                    within_last: q.within_last.as_ref().map(w),
                    negated: q.negated,
                }))
            }
            Checked::Behavior(b) => {
                let window = b.window.as_ref().map(|w| match w {
                    CheckedWindow::Last(w) => {
                        BehaviorWindow::Last(serde_json::json!({"amount": w.amount, "unit": w.unit.name()}))
                    }
                    CheckedWindow::Between(lo, hi) => BehaviorWindow::Between(lo.to_json(), hi.to_json()),
                    CheckedWindow::Since(a) => BehaviorWindow::Since(a.clone()),
                });
                let having = b
                    .having
                    .iter()
                    .map(|a| {
                        let Rule::Condition(c) = Checked::Pred(a.pred.clone()).to_rule() else {
                            unreachable!("aggregate predicates are plain conditions")
                        };
                        Aggregate { func: a.func, attribute: a.attribute.clone(), op: c.op, value: c.value }
                    })
                    .collect();
                Rule::Performed(Box::new(Behavior {
                    event: b.event.name.clone(),
                    filter: b.filter.as_ref().map(Checked::to_rule),
                    window,
                    having,
                    negated: b.negated,
                }))
            }
            Checked::Pred(p) => {
                let list = |v: &[Literal]| Value::Array(v.iter().map(Literal::to_json).collect());
                let (op, value) = match &p.test {
                    Test::Compare(c, l) => {
                        let op = match c {
                            Cmp::Eq => Op::Eq,
                            Cmp::Ne => Op::Ne,
                            Cmp::Lt => Op::Lt,
                            Cmp::Le => Op::Le,
                            Cmp::Gt => Op::Gt,
                            Cmp::Ge => Op::Ge,
                        };
                        (op, l.to_json())
                    }
                    Test::Between { lo, hi, negated } => (
                        if *negated { Op::NotBetween } else { Op::Between },
                        Value::Array(vec![lo.to_json(), hi.to_json()]),
                    ),
                    Test::InList { values, negated } => (if *negated { Op::NotIn } else { Op::In }, list(values)),
                    Test::Pattern { kind, needle, negated } => {
                        let op = match (kind, negated) {
                            (PatternKind::Contains, false) => Op::Contains,
                            (PatternKind::Contains, true) => Op::NotContains,
                            (PatternKind::StartsWith, _) => Op::StartsWith,
                            (PatternKind::EndsWith, _) => Op::EndsWith,
                        };
                        let rule = Rule::condition(p.attribute.clone(), op, needle.clone());
                        if *negated && *kind != PatternKind::Contains {
                            return Rule::not(rule);
                        }
                        return rule;
                    }
                    Test::Matches(r) => (Op::Matches, Value::String(r.clone())),
                    Test::IsNull { negated } => (if *negated { Op::NotNull } else { Op::IsNull }, Value::Null),
                    Test::List { mode, values } => {
                        let op = match mode {
                            ListMode::Any => Op::HasAny,
                            ListMode::All => Op::HasAll,
                            ListMode::None => Op::HasNone,
                        };
                        (op, list(values))
                    }
                    Test::WithinLast { window, negated } => (
                        if *negated { Op::NotWithinLast } else { Op::WithinLast },
                        serde_json::json!({"amount": window.amount, "unit": window.unit.name()}),
                    ),
                };
                Rule::condition(p.attribute.clone(), op, value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attribute;
    use crate::rules::Dialect;
    use serde_json::json;

    fn user() -> Entity {
        Entity::profile("user", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("age", DataType::Int32))
            .attribute(Attribute::new("country", DataType::String))
            .attribute(Attribute::new("tags", "list<string>".parse().unwrap()))
            .attribute(Attribute::new("signup_at", DataType::Timestamp))
            .attribute(Attribute::new("secret", DataType::String).not_filterable())
    }

    fn chk(v: Value) -> Result<Checked> {
        check(&Rule::parse(&v, Dialect::Auto)?, &user())
    }

    #[test]
    fn ui_strings_are_coerced() {
        let a = chk(json!({"combinator": "and", "rules": [{"field": "age", "operator": "between", "value": "25,40"}, {"field": "country", "operator": "in", "value": "CN, US"}]})).unwrap();
        let b = chk(json!({"and": [{"attribute": "age", "op": "between", "value": [25, 40]}, {"attribute": "country", "op": "in", "value": ["CN", "US"]}]})).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn errors_name_the_path_and_suggest() {
        let e = chk(json!({"and": [{"attribute": "age", "op": "gt", "value": 1}, {"or": [{"attribute": "contry", "op": "eq", "value": "CN"}]}]})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rule error at and[1].or[0].attribute: entity `user` has no attribute `contry` (did you mean `country`?)"
        );
        let e = chk(json!({"attribute": "age", "op": "gt", "value": "old"})).unwrap_err();
        assert_eq!(e.to_string(), "rule error at <root>.value: \"old\" is not a valid int32");
        let e = chk(json!({"attribute": "age", "op": "gt", "value": 3_000_000_000i64})).unwrap_err();
        assert!(e.to_string().contains("out of range for int32"), "{e}");
        let e = chk(json!({"attribute": "tags", "op": "gt", "value": 1})).unwrap_err();
        assert!(e.to_string().contains("does not apply to `tags` of type list<string>"), "{e}");
        let e = chk(json!({"attribute": "country", "op": "matches", "value": "(unclosed"})).unwrap_err();
        assert!(e.to_string().contains("invalid regular expression"), "{e}");
        let e = chk(json!({"attribute": "secret", "op": "eq", "value": "x"})).unwrap_err();
        assert!(e.to_string().contains("not filterable"), "{e}");
        let e = chk(json!({"attribute": "age", "op": "between", "value": [40, 25]})).unwrap_err();
        assert!(e.to_string().contains("greater than the high bound"), "{e}");
        let e = chk(json!({"attribute": "age", "op": "in", "value": []})).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = chk(json!({"attribute": "age", "op": "eq", "value": null})).unwrap_err();
        assert!(e.to_string().contains("is_null"), "{e}");
        let e = chk(json!({"attribute": "signup_at", "op": "within_last", "value": "3 fortnights"})).unwrap_err();
        assert!(e.to_string().contains("unknown time unit"), "{e}");
        let e = chk(json!({"attribute": "signup_at", "op": "after", "value": "yesterday"})).unwrap_err();
        assert!(e.to_string().contains("RFC 3339"), "{e}");
    }

    #[test]
    fn windows_parse() {
        let c = chk(json!({"attribute": "signup_at", "op": "within_last", "value": "2 weeks"})).unwrap();
        assert!(matches!(
            c,
            Checked::Pred(Pred {
                test: Test::WithinLast { window: Window { amount: 2, unit: TimeUnit::Weeks, .. }, negated: false },
                ..
            })
        ));
        let c = chk(json!({"attribute": "signup_at", "op": "within_last", "value": {"amount": 3, "unit": "months"}}))
            .unwrap();
        let Checked::Pred(Pred { test: Test::WithinLast { window, .. }, .. }) = c else { panic!() };
        let now = DateTime::parse_from_rfc3339("2026-05-31T12:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(window.start(now).to_rfc3339(), "2026-02-28T12:00:00+00:00");
    }

    #[test]
    fn timestamps_parse_in_many_forms() {
        let want = parse_timestamp("2026-06-30T00:00:00Z").unwrap();
        for s in ["2026-06-30 00:00:00", "2026-06-30T02:00:00+02:00", "2026-06-30", "2026-06-30 00:00:00.000000Z"] {
            assert_eq!(parse_timestamp(s), Some(want), "{s}");
        }
        assert_eq!(parse_timestamp("30/06/2026"), None);
    }
}
