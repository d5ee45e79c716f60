//! Compilation of a [`Checked`] rule to a DataFusion [`Expr`]. Values become typed literals, never SQL text.

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::common::{Column, ScalarValue};
use datafusion::functions_nested::expr_fn::{array_has, array_has_all, array_has_any, make_array};
use datafusion::logical_expr::expr::{InList, Like};
use datafusion::logical_expr::{binary_expr, lit, Between, Expr, Operator};

use super::check::{Checked, Cmp, ListMode, Literal, PatternKind, Pred, Test};
use crate::model::{DataType, UTC};

/// Compiles a checked rule to a boolean expression over the entity's columns; `now` resolves relative windows.
///
/// Three-valued logic is DataFusion's (SQL's): a comparison with a null attribute is unknown, `not unknown` is
/// unknown, and only rows where the expression is true are members.
pub fn compile(rule: &Checked, now: DateTime<Utc>) -> Expr {
    match rule {
        Checked::And(v) => v.iter().map(|r| compile(r, now)).reduce(Expr::and).unwrap_or_else(|| lit(true)),
        Checked::Or(v) => v.iter().map(|r| compile(r, now)).reduce(Expr::or).unwrap_or_else(|| lit(false)),
        Checked::Not(r) => Expr::Not(Box::new(compile(r, now))),
        Checked::Pred(p) => compile_pred(p, now),
    }
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

fn compile_pred(p: &Pred, now: DateTime<Utc>) -> Expr {
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
                    ScalarValue::Date32(Some(days(start.date_naive()))),
                    ScalarValue::Date32(Some(days(now.date_naive()))),
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
