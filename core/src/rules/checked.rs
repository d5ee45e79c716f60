//! The checked rule: what type checking produces and compilation consumes ([`Checked`], typed [`Literal`]s, windows).

use chrono::{DateTime, NaiveDate};
use serde_json::Value;

use super::ast::AggFn;
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

/// A node's id within one checked rule: assigned in order during checking (from 0, depth first), so the names a
/// plan derives from it (`__p{id}`, `__behavior_{id}`, `__in_{id}`) are the same on every run.
pub type NodeId = u32;

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
    /// The node id (see [`NodeId`]).
    pub id: NodeId,
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
    /// The node id (see [`NodeId`]).
    pub id: NodeId,
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
    /// The node id (see [`NodeId`]).
    pub id: NodeId,
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
    /// The node id (see [`NodeId`]).
    pub id: NodeId,
    /// The referenced segment.
    pub segment: String,
    /// `not_in_segment`.
    pub negated: bool,
    /// Read the latest stored membership instead of recomputing.
    pub stored: bool,
    /// The referenced segment is a static list of keys: its current list is read (whatever `stored` says) and
    /// `rule` is empty.
    pub static_list: bool,
    /// The referenced segment's checked rule (used when recomputing).
    pub rule: Checked,
}

/// A typed predicate.
#[derive(Debug, Clone, PartialEq)]
pub struct Pred {
    /// The node id (see [`NodeId`]).
    pub id: NodeId,
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
