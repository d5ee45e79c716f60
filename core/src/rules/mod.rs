//! Rules: one AST ([`Rule`]), three JSON dialects ([`Dialect`]), type checking ([`check`]) and compilation to
//! DataFusion expressions ([`compile`]).
//!
//! # Null semantics
//! Rules use SQL's three-valued logic, the same whichever dialect a rule came in: an operator on a null attribute
//! is *unknown*; `and`/`or` follow Kleene logic (`false and unknown` is false, `true or unknown` is true); `not
//! unknown` is unknown; only entities for which the whole rule is *true* are members. `is_null` / `not_null`
//! test for missing values. Negated operators (`ne`, `not_in`, `not_between`, `not_contains`, `has_none`,
//! `not_within_last`) are exactly `not` of their positive form, so they are unknown on null too.
//! Float NaN is stored as null at ingestion (engines and databases disagree on how NaN compares).

mod ast;
mod check;
mod checked;
pub(crate) mod compile;
mod dialect;
mod list_set;
mod literal;
#[cfg(test)]
mod proptest;
#[cfg(test)]
pub(crate) mod reference;
mod schema;
mod sequence;
mod unparse;
mod window;

pub use ast::{AggFn, Aggregate, Behavior, BehaviorWindow, Condition, LinkedRule, Op, Rule, SegmentRef, Sequence};
pub use check::{check, check_with, Resolver};
pub use checked::{
    Checked, CheckedAggregate, CheckedBehavior, CheckedLinked, CheckedSegmentRef, CheckedSequence, CheckedWindow, Cmp,
    ListMode, Literal, NodeId, PatternKind, Pred, Test, TimeUnit, Window,
};
#[cfg(test)]
pub(crate) use compile::days;
pub use compile::{behavior_subquery, column, compile, compile_with, scalar, PlanSource, LARGE_LIST};
pub use dialect::Dialect;
pub use literal::{literal, parse_date, parse_timestamp};
pub use schema::rule_or_text;
pub use sequence::{matching_links, sequence_events, Witness};
