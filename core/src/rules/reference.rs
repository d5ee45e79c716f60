//! Test-only row-by-row interpreter of checked rules: the oracle the DataFusion compilation is compared with.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use chrono::{DateTime, Utc};

use std::collections::HashMap;

use super::ast::AggFn;
use super::checked::{
    Checked, CheckedBehavior, CheckedSequence, CheckedWindow, Cmp, ListMode, Literal, PatternKind, Pred, Test,
};
use crate::model::DataType;

#[derive(Debug, Clone, PartialEq)]
enum Cell {
    S(String),
    I(i64),
    F(f64),
    B(bool),
    L(Vec<Option<Cell>>),
}

fn cell(a: &ArrayRef, row: usize) -> Option<Cell> {
    if a.is_null(row) {
        return None;
    }
    use arrow::datatypes::DataType as A;
    Some(match a.data_type() {
        A::Utf8 => Cell::S(a.as_string::<i32>().value(row).to_string()),
        A::Utf8View => Cell::S(a.as_string_view().value(row).to_string()),
        A::Int32 => Cell::I(a.as_primitive::<Int32Type>().value(row) as i64),
        A::Int64 => Cell::I(a.as_primitive::<Int64Type>().value(row)),
        A::Float64 => Cell::F(a.as_primitive::<Float64Type>().value(row)),
        A::Boolean => Cell::B(a.as_boolean().value(row)),
        A::Date32 => Cell::I(a.as_primitive::<Date32Type>().value(row) as i64),
        A::Timestamp(_, _) => Cell::I(a.as_primitive::<TimestampMicrosecondType>().value(row)),
        A::List(_) => {
            let l = a.as_list::<i32>().value(row);
            Cell::L((0..l.len()).map(|i| cell(&l, i)).collect())
        }
        other => panic!("reference interpreter: unsupported type {other}"),
    })
}

fn lit(l: &Literal) -> Cell {
    match l {
        Literal::String(s) => Cell::S(s.clone()),
        Literal::Int(i) | Literal::Timestamp(i) => Cell::I(*i),
        Literal::Date(d) => Cell::I(*d as i64),
        Literal::Float(f) => Cell::F(*f),
        Literal::Bool(b) => Cell::B(*b),
    }
}

fn ord(a: &Cell, b: &Cell) -> std::cmp::Ordering {
    match (a, b) {
        (Cell::S(x), Cell::S(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Cell::I(x), Cell::I(y)) => x.cmp(y),
        (Cell::F(x), Cell::F(y)) => x.total_cmp(y),
        (Cell::I(x), Cell::F(y)) => (*x as f64).total_cmp(y),
        (Cell::F(x), Cell::I(y)) => x.total_cmp(&(*y as f64)),
        (Cell::B(x), Cell::B(y)) => x.cmp(y),
        _ => panic!("reference interpreter: incomparable {a:?} {b:?}"),
    }
}

fn not(v: Option<bool>) -> Option<bool> {
    v.map(|b| !b)
}

/// Evaluates the rule for every row of `batch`: `Some(true)`, `Some(false)` or `None` (unknown).
pub(crate) fn eval(rule: &Checked, batch: &RecordBatch, now: DateTime<Utc>) -> Vec<Option<bool>> {
    let env = Env { now, key: "", events: &HashMap::new() };
    (0..batch.num_rows()).map(|row| eval_row(rule, batch, row, &env)).collect()
}

/// Like [`eval`], with event tables (by entity name) for behavioural nodes; `key` is the profile's key column.
pub(crate) fn eval_with(
    rule: &Checked,
    batch: &RecordBatch,
    now: DateTime<Utc>,
    key: &str,
    events: &HashMap<String, RecordBatch>,
) -> Vec<Option<bool>> {
    let env = Env { now, key, events };
    (0..batch.num_rows()).map(|row| eval_row(rule, batch, row, &env)).collect()
}

struct Env<'a> {
    now: DateTime<Utc>,
    key: &'a str,
    events: &'a HashMap<String, RecordBatch>,
}

fn eval_row(rule: &Checked, batch: &RecordBatch, row: usize, env: &Env<'_>) -> Option<bool> {
    match rule {
        Checked::And(v) => {
            let mut out = Some(true);
            for r in v {
                match eval_row(r, batch, row, env) {
                    Some(false) => return Some(false),
                    None => out = None,
                    Some(true) => {}
                }
            }
            out
        }
        Checked::Or(v) => {
            let mut out = Some(false);
            for r in v {
                match eval_row(r, batch, row, env) {
                    Some(true) => return Some(true),
                    None => out = None,
                    Some(false) => {}
                }
            }
            out
        }
        Checked::Not(r) => not(eval_row(r, batch, row, env)),
        Checked::Pred(p) => pred(p, cell(batch.column_by_name(&p.attribute).expect("column"), row), env.now),
        Checked::InSegment(r) => {
            assert!(!r.stored, "the reference interpreter recomputes references");
            Some((eval_row(&r.rule, batch, row, env) == Some(true)) != r.negated)
        }
        Checked::Behavior(b) => Some(behavior(b, batch, row, env) != b.negated),
        Checked::Sequence(q) => Some(sequence(q, batch, row, env) != q.negated),
        Checked::Linked(l) => {
            let via = cell(batch.column_by_name(&l.via).expect("via"), row)?;
            let target = env.events.get(&l.target.name).expect("linked table");
            let col = target.column_by_name(&l.target_attribute).expect("target attribute");
            let inner = Env { now: env.now, key: l.target.key.as_deref().unwrap_or(""), events: env.events };
            let hit = (0..target.num_rows())
                .any(|t| cell(col, t).as_ref() == Some(&via) && eval_row(&l.rule, target, t, &inner) == Some(true));
            Some(hit)
        }
    }
}

/// Whether the profile at `row` performed `b`: aggregates over its matching events meet every threshold.
fn behavior(b: &CheckedBehavior, profile: &RecordBatch, row: usize, env: &Env<'_>) -> bool {
    let events = env.events.get(&b.event.name).expect("event table");
    let Some(k) = cell(profile.column_by_name(env.key).expect("key"), row) else { return false };
    let link = events.column_by_name(&b.link).expect("link");
    let time = events.column_by_name(&b.time);
    let (lo, hi): (Option<i64>, Option<i64>) = match &b.window {
        None => (None, None),
        Some(CheckedWindow::Last(w)) => match b.event.attr(&b.time).expect("time").data_type {
            DataType::Date => (
                Some(super::days(w.local_date(w.start(env.now))) as i64),
                Some(super::days(w.local_date(env.now)) as i64),
            ),
            _ => (Some(w.start(env.now).timestamp_micros()), Some(env.now.timestamp_micros())),
        },
        Some(CheckedWindow::Between(a, z)) => {
            let (Cell::I(a), Cell::I(z)) = (lit(a), lit(z)) else { panic!("temporal bounds") };
            (Some(a), Some(z))
        }
        Some(CheckedWindow::Since(attr)) => match cell(profile.column_by_name(attr).expect("since"), row) {
            Some(Cell::I(s)) => (Some(s), Some(env.now.timestamp_micros())),
            _ => return false_with_empty(b),
        },
    };
    let mut matching = vec![];
    for e in 0..events.num_rows() {
        if cell(link, e).as_ref() != Some(&k) {
            continue;
        }
        if let Some(f) = &b.filter {
            if eval_row(f, events, e, env) != Some(true) {
                continue;
            }
        }
        if lo.is_some() || hi.is_some() {
            let Some(Cell::I(t)) = cell(time.expect("windows need a time"), e) else { continue };
            if lo.is_some_and(|l| t < l) || hi.is_some_and(|h| t > h) {
                continue;
            }
        }
        matching.push(e);
    }
    b.having.iter().all(|a| {
        let values: Vec<Cell> = match &a.attribute {
            None => vec![],
            Some(attr) => {
                let c = events.column_by_name(attr).expect("agg column");
                matching.iter().filter_map(|e| cell(c, *e)).collect()
            }
        };
        let agg: Option<Cell> = match a.func {
            AggFn::Count => Some(Cell::I(matching.len() as i64)),
            AggFn::CountDistinct => {
                let mut distinct: Vec<&Cell> = vec![];
                for v in &values {
                    if !distinct.iter().any(|d| ord(d, v).is_eq()) {
                        distinct.push(v);
                    }
                }
                Some(Cell::I(distinct.len() as i64))
            }
            AggFn::Sum => {
                if values.is_empty() {
                    None
                } else if values.iter().all(|v| matches!(v, Cell::I(_))) {
                    Some(Cell::I(values.iter().map(|v| if let Cell::I(i) = v { *i } else { 0 }).sum()))
                } else {
                    Some(Cell::F(
                        values
                            .iter()
                            .map(|v| match v {
                                Cell::F(f) => *f,
                                Cell::I(i) => *i as f64,
                                _ => 0.0,
                            })
                            .sum(),
                    ))
                }
            }
            AggFn::Avg => {
                if values.is_empty() {
                    None
                } else {
                    let s: f64 = values
                        .iter()
                        .map(|v| match v {
                            Cell::F(f) => *f,
                            Cell::I(i) => *i as f64,
                            _ => 0.0,
                        })
                        .sum();
                    Some(Cell::F(s / values.len() as f64))
                }
            }
            AggFn::Min => values.iter().min_by(|x, y| ord(x, y)).cloned(),
            AggFn::Max => values.iter().max_by(|x, y| ord(x, y)).cloned(),
        };
        pred(&a.pred, agg, env.now) == Some(true)
    })
}

/// Whether the profile at `row` has a `first` event followed by a `then` event (within the gap) with no
/// `without` event strictly between — checked pair by pair.
fn sequence(q: &CheckedSequence, profile: &RecordBatch, row: usize, env: &Env<'_>) -> bool {
    let events = env.events.get(&q.event.name).expect("event table");
    let Some(k) = cell(profile.column_by_name(env.key).expect("key"), row) else { return false };
    let (link, time) = (events.column_by_name(&q.link).expect("link"), events.column_by_name(&q.time).expect("time"));
    let start = q.within_last.map(|w| w.start(env.now).timestamp_micros());
    let times = |rule: &Checked| -> Vec<i64> {
        (0..events.num_rows())
            .filter(|e| cell(link, *e).as_ref() == Some(&k))
            .filter_map(|e| match cell(time, e) {
                Some(Cell::I(t)) if eval_row(rule, events, e, env) == Some(true) => Some(t),
                _ => None,
            })
            .filter(|t| start.is_none_or(|s| s <= *t && *t <= env.now.timestamp_micros()))
            .collect()
    };
    let (a, b) = (times(&q.first), times(&q.then));
    let c = q.without.as_ref().map(times).unwrap_or_default();
    a.iter().any(|ta| {
        let limit = q.within.map(|w| w.after(DateTime::from_timestamp_micros(*ta).expect("time")).timestamp_micros());
        b.iter().any(|tb| tb > ta && limit.is_none_or(|l| *tb <= l) && !c.iter().any(|tc| tc > ta && tc < tb))
    })
}

/// A behavioural node for an entity whose window cannot be placed (a null `since` attribute): no events match.
fn false_with_empty(b: &CheckedBehavior) -> bool {
    b.holds_without_events()
}

fn pred(p: &Pred, v: Option<Cell>, now: DateTime<Utc>) -> Option<bool> {
    if let Test::IsNull { negated } = p.test {
        return Some(v.is_none() != negated);
    }
    let v = v?;
    Some(match &p.test {
        Test::Compare(cmp, l) => {
            let o = ord(&v, &lit(l));
            match cmp {
                Cmp::Eq => o.is_eq(),
                Cmp::Ne => o.is_ne(),
                Cmp::Lt => o.is_lt(),
                Cmp::Le => o.is_le(),
                Cmp::Gt => o.is_gt(),
                Cmp::Ge => o.is_ge(),
            }
        }
        Test::Between { lo, hi, negated } => {
            let inside = ord(&v, &lit(lo)).is_ge() && ord(&v, &lit(hi)).is_le();
            inside != *negated
        }
        Test::InList { values, negated } => values.iter().any(|l| ord(&v, &lit(l)).is_eq()) != *negated,
        Test::Pattern { kind, needle, negated } => {
            let Cell::S(s) = &v else { panic!("pattern on non-string") };
            let hit = match kind {
                PatternKind::Contains => s.contains(needle.as_str()),
                PatternKind::StartsWith => s.starts_with(needle.as_str()),
                PatternKind::EndsWith => s.ends_with(needle.as_str()),
            };
            hit != *negated
        }
        Test::Matches(pattern) => {
            let Cell::S(s) = &v else { panic!("regex on non-string") };
            regex::Regex::new(pattern).expect("checked").is_match(s)
        }
        Test::IsNull { .. } => unreachable!(),
        Test::List { mode, values } => {
            let Cell::L(items) = &v else { panic!("list test on non-list") };
            let has = |l: &Literal| items.iter().any(|i| i.as_ref().is_some_and(|i| ord(i, &lit(l)).is_eq()));
            match mode {
                ListMode::Any => values.iter().any(has),
                ListMode::All => values.iter().all(has),
                ListMode::None => !values.iter().any(has),
            }
        }
        Test::WithinLast { window, negated } => {
            let start = window.start(now);
            let (lo, hi) = match p.data_type {
                DataType::Date => {
                    (super::days(window.local_date(start)) as i64, super::days(window.local_date(now)) as i64)
                }
                _ => (start.timestamp_micros(), now.timestamp_micros()),
            };
            let Cell::I(x) = v else { panic!("window on non-temporal") };
            (lo <= x && x <= hi) != *negated
        }
    })
}
