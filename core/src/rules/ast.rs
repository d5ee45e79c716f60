//! The rule AST shared by every dialect.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// A rule tree: boolean combinations of conditions on one entity's attributes.
///
/// Values in conditions are kept as the JSON they arrived in; [`check`](crate::rules::check) types them against
/// the entity (so `"30"` from a UI and `30` from code become the same `int64` literal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub enum Rule {
    /// All children hold (an empty `and` holds for every entity).
    And(Vec<Rule>),
    /// At least one child holds (an empty `or` holds for none).
    Or(Vec<Rule>),
    /// The child does not hold (`not unknown` is unknown).
    Not(Box<Rule>),
    /// One condition on one attribute.
    Condition(Condition),
    /// A condition on the events of a linked event entity (`performed` / `not_performed`).
    Performed(Box<Behavior>),
    /// Membership in another segment of the same entity (`in_segment` / `not_in_segment`).
    InSegment(SegmentRef),
    /// A rule on the entity a link points to: `{"linked": {"via": "user_id", "where": rule}}` (an order whose
    /// user is in country CN).
    Linked(Box<LinkedRule>),
    /// An ordered pair of events: `{"sequence": {"event": "events", "first": rule, "then": rule, "within": "1
    /// day", "without": rule, "within_last": "30 days"}}` — a `first` event followed by a `then` event at most
    /// `within` later, with no `without` event strictly between them.
    Sequence(Box<Sequence>),
}

/// "A then B within T, with no C in between", over a linked event entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    /// The event entity.
    pub event: String,
    /// Rule of the first step.
    pub first: Rule,
    /// Rule of the second step.
    pub then: Rule,
    /// Longest time from the first to the second event (none: any time later).
    pub within: Option<Value>,
    /// Events that must not happen strictly between the two.
    pub without: Option<Rule>,
    /// Only events within the last N units of the workspace clock count.
    pub within_last: Option<Value>,
    /// `not_sequence`.
    pub negated: bool,
}

/// A rule on the entity that a link attribute of this entity points to.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkedRule {
    /// The link attribute of this entity.
    pub via: String,
    /// The rule over the linked entity.
    pub rule: Rule,
}

/// "Did X (matching a filter, in a window) with aggregates meeting thresholds": a behavioural condition.
///
/// Written as `{"performed": {"event": "events", "where": rule, "within_last": "30 days", "having":
/// [{"count": {"ge": 3}}, {"sum": "amount", "gt": 200}]}}`; see `docs/rules.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    /// The event entity (linked to this profile).
    pub event: String,
    /// A rule over the event's attributes (`None`: every event).
    pub filter: Option<Rule>,
    /// Which events count, by time.
    pub window: Option<BehaviorWindow>,
    /// Thresholds on aggregates over the matching events, all of which must hold (default: `count >= 1`).
    pub having: Vec<Aggregate>,
    /// `not_performed`: the negation (never unknown).
    pub negated: bool,
}

/// The time window of a behavioural condition, on the event entity's timestamp.
#[derive(Debug, Clone, PartialEq)]
pub enum BehaviorWindow {
    /// Within the last N units of the workspace clock (`"30 days"` or `{"amount": 30, "unit": "days"}`).
    Last(Value),
    /// Between two instants, inclusive.
    Between(Value, Value),
    /// Since the value of a profile attribute (e.g. `signup_at`), up to now.
    Since(String),
}

/// Aggregate functions over matching events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggFn {
    /// Number of matching events (0 when there are none).
    Count,
    /// Number of distinct values of an attribute (0 when there are no events).
    CountDistinct,
    /// Sum of an attribute (unknown when there are no events).
    Sum,
    /// Average of an attribute.
    Avg,
    /// Smallest value (e.g. the first time, for a timestamp).
    Min,
    /// Largest value (e.g. the last time).
    Max,
}

impl AggFn {
    /// Name in rules.
    pub fn name(self) -> &'static str {
        match self {
            AggFn::Count => "count",
            AggFn::CountDistinct => "count_distinct",
            AggFn::Sum => "sum",
            AggFn::Avg => "avg",
            AggFn::Min => "min",
            AggFn::Max => "max",
        }
    }
    /// All functions.
    pub const ALL: [AggFn; 6] = [AggFn::Count, AggFn::CountDistinct, AggFn::Sum, AggFn::Avg, AggFn::Min, AggFn::Max];
}

/// `agg(attribute) op value`, e.g. `sum(amount) > 200` or `min(ts) within_last 7 days`.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The function.
    pub func: AggFn,
    /// Its argument (`None` only for `count`).
    pub attribute: Option<String>,
    /// The comparison.
    pub op: Op,
    /// The operand.
    pub value: Value,
}

/// A reference to another segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentRef {
    /// The referenced segment.
    pub segment: String,
    /// `not_in_segment`.
    pub negated: bool,
    /// Use the stored membership of its latest run (`true`) or recompute its rule now (`false`, the default).
    pub stored: bool,
}

/// `attribute op value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The attribute tested.
    pub attribute: String,
    /// The operator.
    pub op: Op,
    /// The operand as JSON (`null` for operators without one).
    pub value: Value,
}

impl Rule {
    /// The segments this rule references (`in_segment` / `not_in_segment`, also inside behaviours and
    /// links), in the order written.
    pub fn segment_refs(&self) -> Vec<String> {
        fn walk(r: &Rule, out: &mut Vec<String>) {
            match r {
                Rule::And(v) | Rule::Or(v) => v.iter().for_each(|x| walk(x, out)),
                Rule::Not(x) => walk(x, out),
                Rule::InSegment(s) => out.push(s.segment.clone()),
                Rule::Performed(b) => {
                    if let Some(f) = &b.filter {
                        walk(f, out)
                    }
                }
                Rule::Linked(l) => walk(&l.rule, out),
                Rule::Sequence(_) | Rule::Condition(_) => {}
            }
        }
        let mut out = vec![];
        walk(self, &mut out);
        out
    }

    /// `attribute op value`.
    pub fn condition(attribute: impl Into<String>, op: Op, value: impl Into<Value>) -> Rule {
        Rule::Condition(Condition { attribute: attribute.into(), op, value: value.into() })
    }
    /// Conjunction.
    pub fn and(rules: impl IntoIterator<Item = Rule>) -> Rule {
        Rule::And(rules.into_iter().collect())
    }
    /// Disjunction.
    pub fn or(rules: impl IntoIterator<Item = Rule>) -> Rule {
        Rule::Or(rules.into_iter().collect())
    }
    /// Negation.
    #[allow(clippy::should_implement_trait)]
    pub fn not(rule: Rule) -> Rule {
        Rule::Not(Box::new(rule))
    }

    /// Visits every condition on the rule's own entity.
    pub fn conditions(&self) -> Vec<&Condition> {
        let mut out = vec![];
        fn walk<'a>(r: &'a Rule, out: &mut Vec<&'a Condition>) {
            match r {
                Rule::And(v) | Rule::Or(v) => v.iter().for_each(|c| walk(c, out)),
                Rule::Not(c) => walk(c, out),
                Rule::Condition(c) => out.push(c),
                Rule::Performed(_) | Rule::InSegment(_) | Rule::Linked(_) | Rule::Sequence(_) => {}
            }
        }
        walk(self, &mut out);
        out
    }
}

/// Comparison and test operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
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
    /// Inclusive range `[lo, hi]`.
    Between,
    /// Outside the inclusive range.
    NotBetween,
    /// Equal to one of a list.
    In,
    /// Equal to none of a list.
    NotIn,
    /// Substring (strings) or element (lists).
    Contains,
    /// Not a substring / element.
    NotContains,
    /// Prefix.
    StartsWith,
    /// Suffix.
    EndsWith,
    /// Regular expression search (Rust `regex` syntax, unanchored).
    Matches,
    /// The value is missing.
    IsNull,
    /// The value is present.
    NotNull,
    /// The list shares at least one element with the operand.
    HasAny,
    /// The list contains every element of the operand.
    HasAll,
    /// The list contains no element of the operand.
    HasNone,
    /// Strictly before an instant or date.
    Before,
    /// Strictly after an instant or date.
    After,
    /// Within `[now − N units, now]` of the workspace clock.
    WithinLast,
    /// Not within `[now − N units, now]`.
    NotWithinLast,
}

impl Op {
    /// All operators, in documentation order.
    pub const ALL: [Op; 24] = [
        Op::Eq,
        Op::Ne,
        Op::Lt,
        Op::Le,
        Op::Gt,
        Op::Ge,
        Op::Between,
        Op::NotBetween,
        Op::In,
        Op::NotIn,
        Op::Contains,
        Op::NotContains,
        Op::StartsWith,
        Op::EndsWith,
        Op::Matches,
        Op::IsNull,
        Op::NotNull,
        Op::HasAny,
        Op::HasAll,
        Op::HasNone,
        Op::Before,
        Op::After,
        Op::WithinLast,
        Op::NotWithinLast,
    ];

    /// The canonical name used in segkit's dialect.
    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Lt => "lt",
            Op::Le => "le",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Between => "between",
            Op::NotBetween => "not_between",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::Contains => "contains",
            Op::NotContains => "not_contains",
            Op::StartsWith => "starts_with",
            Op::EndsWith => "ends_with",
            Op::Matches => "matches",
            Op::IsNull => "is_null",
            Op::NotNull => "not_null",
            Op::HasAny => "has_any",
            Op::HasAll => "has_all",
            Op::HasNone => "has_none",
            Op::Before => "before",
            Op::After => "after",
            Op::WithinLast => "within_last",
            Op::NotWithinLast => "not_within_last",
        }
    }

    /// Whether the operator takes no operand.
    pub fn is_unary(self) -> bool {
        matches!(self, Op::IsNull | Op::NotNull)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Op {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let alias = match s {
            "=" | "==" => Some(Op::Eq),
            "!=" | "<>" => Some(Op::Ne),
            "<" => Some(Op::Lt),
            "<=" => Some(Op::Le),
            ">" => Some(Op::Gt),
            ">=" => Some(Op::Ge),
            _ => None,
        };
        if let Some(op) = alias {
            return Ok(op);
        }
        let lower = s.to_ascii_lowercase();
        Op::ALL.into_iter().find(|o| o.name() == lower).ok_or_else(|| {
            let hint = crate::error::hint(s, Op::ALL.iter().map(|o| o.name()));
            Error::rule("op", format!("unknown operator `{s}`{hint}"))
        })
    }
}

impl From<Rule> for Value {
    fn from(r: Rule) -> Value {
        r.to_json()
    }
}

impl TryFrom<Value> for Rule {
    type Error = Error;
    fn try_from(v: Value) -> Result<Rule> {
        crate::limits::check_rule_value(&v)?;
        crate::rules::dialect::parse_native(&v, "")
    }
}

impl Rule {
    /// The rule in segkit's own JSON dialect.
    pub fn to_json(&self) -> Value {
        match self {
            Rule::And(v) => {
                serde_json::json!({"and": v.iter().map(Rule::to_json).collect::<Vec<_>>()})
            }
            Rule::Or(v) => {
                serde_json::json!({"or": v.iter().map(Rule::to_json).collect::<Vec<_>>()})
            }
            Rule::Not(r) => serde_json::json!({"not": r.to_json()}),
            Rule::Performed(b) => {
                let mut m = serde_json::Map::new();
                m.insert("event".into(), Value::String(b.event.clone()));
                if let Some(f) = &b.filter {
                    m.insert("where".into(), f.to_json());
                }
                match &b.window {
                    Some(BehaviorWindow::Last(v)) => {
                        m.insert("within_last".into(), v.clone());
                    }
                    Some(BehaviorWindow::Between(a, z)) => {
                        m.insert("between".into(), Value::Array(vec![a.clone(), z.clone()]));
                    }
                    Some(BehaviorWindow::Since(a)) => {
                        m.insert("since".into(), Value::String(a.clone()));
                    }
                    None => {}
                }
                if !b.having.is_empty() {
                    let having = b
                        .having
                        .iter()
                        .map(|a| {
                            let mut cmp = serde_json::Map::new();
                            cmp.insert(a.op.name().into(), a.value.clone());
                            match &a.attribute {
                                // `{"count": {"ge": 3}}`: no null, so the rule survives formats without one (TOML).
                                None => serde_json::json!({ a.func.name(): Value::Object(cmp) }),
                                Some(attr) => {
                                    cmp.insert(a.func.name().into(), Value::String(attr.clone()));
                                    Value::Object(cmp)
                                }
                            }
                        })
                        .collect();
                    m.insert("having".into(), Value::Array(having));
                }
                let key = if b.negated { "not_performed" } else { "performed" };
                serde_json::json!({ key: Value::Object(m) })
            }
            Rule::Linked(l) => serde_json::json!({"linked": {"via": l.via, "where": l.rule.to_json()}}),
            Rule::Sequence(q) => {
                let mut m = serde_json::Map::new();
                m.insert("event".into(), Value::String(q.event.clone()));
                m.insert("first".into(), q.first.to_json());
                m.insert("then".into(), q.then.to_json());
                if let Some(w) = &q.within {
                    m.insert("within".into(), w.clone());
                }
                if let Some(w) = &q.without {
                    m.insert("without".into(), w.to_json());
                }
                if let Some(w) = &q.within_last {
                    m.insert("within_last".into(), w.clone());
                }
                let key = if q.negated { "not_sequence" } else { "sequence" };
                serde_json::json!({ key: Value::Object(m) })
            }
            Rule::InSegment(r) => {
                let key = if r.negated { "not_in_segment" } else { "in_segment" };
                if r.stored {
                    serde_json::json!({ key: {"segment": r.segment, "stored": true} })
                } else {
                    serde_json::json!({ key: r.segment })
                }
            }
            Rule::Condition(c) => {
                let mut m = serde_json::Map::new();
                m.insert("attribute".into(), Value::String(c.attribute.clone()));
                m.insert("op".into(), Value::String(c.op.name().into()));
                if !c.value.is_null() {
                    m.insert("value".into(), c.value.clone());
                }
                Value::Object(m)
            }
        }
    }
}
