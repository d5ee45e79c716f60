//! Literals: JSON operands coerced to typed values, and the date and time forms rules accept.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

use super::checked::*;
use crate::error::{Error, Result};
use crate::model::DataType;

pub(super) fn lit_gt(a: &Literal, b: &Literal) -> bool {
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
pub(super) fn list_items(v: &Value, path: &str) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a.clone()),
        Value::String(s) => Ok(s.split(',').map(|x| Value::String(x.trim().to_string())).collect()),
        Value::Object(m) if m.contains_key("from") || m.contains_key("to") => {
            Ok(vec![m.get("from").cloned().unwrap_or(Value::Null), m.get("to").cloned().unwrap_or(Value::Null)])
        }
        other => Err(Error::rule(path, format!("expected a list (array or comma-separated text), found {other}"))),
    }
}

pub(super) fn literals(v: &Value, t: &DataType, path: &str) -> Result<Vec<Literal>> {
    let items = list_items(v, path)?;
    if items.is_empty() {
        return Err(Error::rule(path, "the list of values is empty"));
    }
    let mut out: Vec<Literal> = Vec::with_capacity(items.len());
    // Duplicates are dropped through a hash set (a linear `contains` made a 1 M-value list quadratic).
    let mut seen: std::collections::HashSet<LiteralKey> = std::collections::HashSet::with_capacity(items.len());
    for (i, x) in items.iter().enumerate() {
        let l = literal(x, t, &format!("{path}[{i}]"))?;
        if seen.insert(literal_key(&l, i)) {
            out.push(l);
        }
    }
    Ok(out)
}

/// A hashable stand-in for a [`Literal`] with the same equality (`0.0 == -0.0`; a NaN equals nothing).
#[derive(PartialEq, Eq, Hash)]
enum LiteralKey {
    String(String),
    Int(i64),
    Float(u64),
    /// NaN: unequal to every literal, so each one is kept (numbered by position).
    Nan(usize),
    Bool(bool),
    Date(i32),
    Timestamp(i64),
}

fn literal_key(l: &Literal, position: usize) -> LiteralKey {
    match l {
        Literal::String(s) => LiteralKey::String(s.clone()),
        Literal::Int(i) => LiteralKey::Int(*i),
        Literal::Float(f) if f.is_nan() => LiteralKey::Nan(position),
        Literal::Float(f) => LiteralKey::Float(if *f == 0.0 { 0 } else { f.to_bits() }),
        Literal::Bool(b) => LiteralKey::Bool(*b),
        Literal::Date(d) => LiteralKey::Date(*d),
        Literal::Timestamp(t) => LiteralKey::Timestamp(*t),
    }
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
