//! A checked rule back to segkit's own dialect: the canonical form segments are stored in.

use serde_json::Value;

use super::ast::{Aggregate, Behavior, BehaviorWindow, LinkedRule, Op, Rule, SegmentRef, Sequence};
use super::checked::*;

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
