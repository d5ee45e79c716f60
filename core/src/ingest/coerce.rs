//! Coercion of source columns to attribute types, recording a reason for every row that cannot be coerced.

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanBuilder, Float64Array, GenericListArray, Int32Builder,
    Int64Builder, ListBuilder, StringArray, StringBuilder,
};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType as ArrowType, Field};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::error::{Error, Result};
use crate::model::{Attribute, DataType};
use crate::rules::{parse_date, parse_timestamp};

/// A per-row problem: (row index in the batch, reason).
pub type RowError = (usize, String);

/// Renders the value at `row` for a message, masking it when the attribute is personal data.
pub(crate) fn show(array: &dyn Array, row: usize, pii: bool) -> String {
    if pii {
        return "<pii masked>".to_string();
    }
    let fmt = ArrayFormatter::try_new(array, &FormatOptions::default());
    let mut s = match fmt {
        Ok(f) => f.value(row).to_string(),
        Err(_) => "<unprintable>".to_string(),
    };
    if s.chars().count() > 64 {
        s = s.chars().take(61).collect::<String>() + "...";
    }
    format!("{s:?}")
}

/// `s` without leading and trailing whitespace (as `str::trim`), answered from its first and last bytes when
/// those are visible ASCII characters (most values: no scan over Unicode characters).
#[inline]
pub(crate) fn trim(s: &str) -> &str {
    let plain = |b: Option<&u8>| b.is_some_and(u8::is_ascii_graphic);
    let b = s.as_bytes();
    if plain(b.first()) && plain(b.last()) {
        s
    } else {
        s.trim()
    }
}

/// A text that does not read as the type asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unreadable;

/// A field's text as the value an ingest coerces it to: `Ok(None)` when it is empty after trimming (null),
/// `Err` when it does not read as the type. The text → typed rules of [`coerce`], shared with the sources'
/// typed reading ([`super::typed`]).
pub(crate) type Read<T> = std::result::Result<Option<T>, Unreadable>;

/// An integer: the decimal text of one, or of a float with no fractional part (below 9e15 in magnitude).
#[inline]
pub(crate) fn read_int(s: &str) -> Read<i64> {
    let s = trim(s);
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<i64>()
        .ok()
        .or_else(|| s.parse::<f64>().ok().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64))
        .map(Some)
        .ok_or(Unreadable)
}

/// A float (NaN included: [`coerce`] stores it as null).
#[inline]
pub(crate) fn read_float(s: &str) -> Read<f64> {
    let s = trim(s);
    if s.is_empty() {
        return Ok(None);
    }
    s.parse::<f64>().map(Some).map_err(|_| Unreadable)
}

/// A boolean: `true`/`t`/`1`/`yes`/`y` or `false`/`f`/`0`/`no`/`n`, in any case.
#[inline]
pub(crate) fn read_bool(s: &str) -> Read<bool> {
    const TRUE: [&str; 5] = ["true", "t", "1", "yes", "y"];
    const FALSE: [&str; 5] = ["false", "f", "0", "no", "n"];
    match trim(s) {
        "" => Ok(None),
        s if TRUE.iter().any(|t| t.eq_ignore_ascii_case(s)) => Ok(Some(true)),
        s if FALSE.iter().any(|t| t.eq_ignore_ascii_case(s)) => Ok(Some(false)),
        _ => Err(Unreadable),
    }
}

/// A date (days since the epoch): `YYYY-MM-DD`, or the day of an instant.
#[inline]
pub(crate) fn read_date(s: &str) -> Read<i32> {
    let s = trim(s);
    if s.is_empty() {
        return Ok(None);
    }
    parse_date(s)
        .or_else(|| parse_timestamp(s).map(|us| us.div_euclid(86_400_000_000) as i32))
        .map(Some)
        .ok_or(Unreadable)
}

/// An instant (microseconds since the epoch). `minute` remembers the minute of the last value read in the
/// common exact form, so a column of nearby instants parses each date and time of day once (see [`MinuteCache`]).
#[inline]
pub(crate) fn read_timestamp(s: &str, minute: &mut MinuteCache) -> Read<i64> {
    let s = trim(s);
    if s.is_empty() {
        return Ok(None);
    }
    fast_timestamp(s, minute).or_else(|| parse_timestamp(s)).map(Some).ok_or(Unreadable)
}

fn as_utf8(a: &ArrayRef) -> Result<StringArray> {
    Ok(cast_with_options(a, &ArrowType::Utf8, &CastOptions::default())?.as_string::<i32>().clone())
}

fn is_text(t: &ArrowType) -> bool {
    matches!(t, ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View)
}

/// Coerces `array` to the attribute's type. Rows that cannot be coerced become null and are reported.
///
/// `separator` splits text into list elements when the text is not a JSON array. Float NaN is stored as null
/// (missing): engines and SQL databases disagree on how NaN compares, while null semantics are the same everywhere.
pub fn coerce(array: &ArrayRef, attr: &Attribute, separator: &str) -> Result<(ArrayRef, Vec<RowError>)> {
    let (out, errors) = coerce_inner(array, attr, separator)?;
    Ok((nan_to_null(out)?, errors))
}

fn nan_to_null(a: ArrayRef) -> Result<ArrayRef> {
    match a.data_type() {
        ArrowType::Float64 => {
            let f = a.as_primitive::<arrow::datatypes::Float64Type>();
            if !f.values().iter().any(|v| v.is_nan()) {
                return Ok(a);
            }
            let nan = arrow::array::BooleanArray::from(f.values().iter().map(|v| v.is_nan()).collect::<Vec<_>>());
            Ok(arrow::compute::nullif(&a, &nan)?)
        }
        ArrowType::List(field) if field.data_type() == &ArrowType::Float64 => {
            let l = a.as_list::<i32>();
            let values = nan_to_null(l.values().clone())?;
            Ok(Arc::new(GenericListArray::<i32>::try_new(
                field.clone(),
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            )?))
        }
        _ => Ok(a),
    }
}

fn coerce_inner(array: &ArrayRef, attr: &Attribute, separator: &str) -> Result<(ArrayRef, Vec<RowError>)> {
    let target = attr.data_type.to_arrow();
    let src = array.data_type();
    if *src == target {
        return Ok((array.clone(), vec![]));
    }
    let mut errors = vec![];
    let fail = |row: usize, what: &str| -> String {
        format!(
            "attribute `{}`: cannot read {} as {}{what}",
            attr.name,
            show(array.as_ref(), row, attr.pii),
            attr.data_type
        )
    };
    if is_text(src) {
        let text = as_utf8(array)?;
        let out: ArrayRef = match &attr.data_type {
            DataType::String => Arc::new(text),
            DataType::Json => {
                for (i, v) in text.iter().enumerate() {
                    if let Some(v) = v {
                        if serde_json::from_str::<serde_json::Value>(v).is_err() {
                            errors.push((i, fail(i, " (not valid JSON)")));
                        }
                    }
                }
                arrow::compute::nullif(&text, &mask(&errors, text.len()))?
            }
            DataType::Int32 | DataType::Int64 => {
                let mut b32 = Int32Builder::with_capacity(text.len());
                let mut b64 = Int64Builder::with_capacity(text.len());
                for (i, v) in text.iter().enumerate() {
                    let parsed = match v.map(read_int) {
                        None | Some(Ok(None)) => None,
                        Some(Ok(n)) => n,
                        Some(Err(Unreadable)) => {
                            errors.push((i, fail(i, "")));
                            None
                        }
                    };
                    if attr.data_type == DataType::Int32 {
                        let n = parsed.and_then(|n| {
                            let r = i32::try_from(n).ok();
                            if r.is_none() {
                                errors.push((i, fail(i, " (out of range)")));
                            }
                            r
                        });
                        b32.append_option(n);
                    } else {
                        b64.append_option(parsed);
                    }
                }
                if attr.data_type == DataType::Int32 {
                    Arc::new(b32.finish())
                } else {
                    Arc::new(b64.finish())
                }
            }
            DataType::Float64 => {
                let v: Float64Array = text
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match v.map(read_float) {
                        None => None,
                        Some(Ok(f)) => f,
                        Some(Err(Unreadable)) => {
                            errors.push((i, fail(i, "")));
                            None
                        }
                    })
                    .collect();
                Arc::new(v)
            }
            DataType::Bool => {
                let mut b = BooleanBuilder::with_capacity(text.len());
                for (i, v) in text.iter().enumerate() {
                    b.append_option(match v.map(read_bool) {
                        None => None,
                        Some(Ok(v)) => v,
                        Some(Err(Unreadable)) => {
                            errors.push((i, fail(i, "")));
                            None
                        }
                    });
                }
                Arc::new(b.finish())
            }
            DataType::Date => {
                let v: arrow::array::Date32Array = text
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match v.map(read_date) {
                        None => None,
                        Some(Ok(d)) => d,
                        Some(Err(Unreadable)) => {
                            errors.push((i, fail(i, " (expected YYYY-MM-DD)")));
                            None
                        }
                    })
                    .collect();
                Arc::new(v)
            }
            DataType::Timestamp => {
                let mut minute = MinuteCache::default();
                let v: arrow::array::TimestampMicrosecondArray = text
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match v.map(|v| read_timestamp(v, &mut minute)) {
                        None => None,
                        Some(Ok(t)) => t,
                        Some(Err(Unreadable)) => {
                            errors.push((i, fail(i, " (expected an RFC 3339 instant)")));
                            None
                        }
                    })
                    .collect();
                Arc::new(v.with_timezone(crate::model::UTC))
            }
            DataType::List(elem) => list_from_text(&text, attr, elem, separator, &mut errors)?,
        };
        return Ok((out, errors));
    }
    // Non-text sources: Arrow casts, with a check that no non-null input became null.
    if matches!(attr.data_type, DataType::Json) {
        let text = to_json_text(array)?;
        return Ok((Arc::new(text), vec![]));
    }
    if matches!((src, &attr.data_type), (ArrowType::Float32 | ArrowType::Float64, DataType::Int32 | DataType::Int64)) {
        let f = cast_with_options(array, &ArrowType::Float64, &CastOptions::default())?;
        let f = f.as_primitive::<arrow::datatypes::Float64Type>();
        for i in 0..f.len() {
            if f.is_valid(i) && f.value(i).fract() != 0.0 {
                errors.push((i, fail(i, " (has a fractional part)")));
            }
        }
    }
    if !arrow::compute::can_cast_types(src, &target) {
        return Err(Error::Definition {
            path: format!("attribute {}", attr.name),
            message: format!("source values of type {src} cannot be converted to {}", attr.data_type),
        });
    }
    let out = cast_with_options(array, &target, &CastOptions { safe: true, ..Default::default() })?;
    if out.null_count() > array.null_count() || !errors.is_empty() {
        let already = mask(&errors, out.len());
        for i in 0..out.len() {
            if array.is_valid(i) && out.is_null(i) && !already.value(i) {
                errors.push((i, fail(i, "")));
            }
        }
        let out = arrow::compute::nullif(&out, &mask(&errors, out.len()))?;
        return Ok((out, errors));
    }
    Ok((out, errors))
}

/// The minute (`YYYY-MM-DD[ T]HH:MM`, the first 16 bytes) of the last instant [`fast_timestamp`] read, with the
/// microseconds since the epoch at its start. Only a valid minute is kept, so a value starting with the same 16
/// bytes needs only its seconds and fraction read: event times come in order, many to a minute.
#[derive(Debug, Clone, Default)]
pub(crate) struct MinuteCache {
    /// The minute's text; `None` before the first instant read.
    text: Option<[u8; 16]>,
    /// Microseconds since the epoch at the start of the minute.
    start: i64,
}

/// Microseconds since the epoch of the common exact form `YYYY-MM-DD[ T]HH:MM:SS[.f]` with an optional `Z`
/// (1 to 9 fraction digits, seconds 00–59, a real calendar date from year 1), read without chrono; `None` for
/// anything else, which [`parse_timestamp`] then reads (it gives the same instant for every text this accepts).
/// The date and time of day are read only when the minute differs from `minute`'s, which is then updated.
fn fast_timestamp(s: &str, minute: &mut MinuteCache) -> Option<i64> {
    let b = s.as_bytes();
    let b = b.strip_suffix(b"Z").unwrap_or(b);
    if b.len() < 19 || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| decimal(&b[r]);
    let text: [u8; 16] = b[..16].try_into().ok()?;
    let start = match minute.text {
        Some(known) if known == text => minute.start,
        _ => {
            let start = minute_start(&text)?;
            *minute = MinuteCache { text: Some(text), start };
            start
        }
    };
    let second = num(17..19)?;
    if second > 59 {
        return None;
    }
    let micros = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let n = num(20..b.len())?;
            // Scale to nanoseconds, then truncate to microseconds (as chrono's `timestamp_micros` does).
            n * 10i64.pow(9 - digits.len() as u32) / 1000
        }
        _ => return None,
    };
    Some(start + second * 1_000_000 + micros)
}

/// The number written by `digits` (ASCII digits only, else `None`).
#[inline]
fn decimal(digits: &[u8]) -> Option<i64> {
    digits.iter().try_fold(0i64, |n, &c| c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0')))
}

/// Microseconds since the epoch at the start of the minute `YYYY-MM-DD[ T]HH:MM` (a real calendar date from
/// year 1, hour 00–23, minute 00–59), `None` for anything else.
fn minute_start(b: &[u8; 16]) -> Option<i64> {
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b' ' | b'T') || b[13] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| decimal(&b[r]);
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute) = (num(11..13)?, num(14..16)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if year < 1 || day < 1 || day > month_days || hour > 23 || minute > 59 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000_000)
}

fn list_from_text(
    text: &StringArray,
    attr: &Attribute,
    elem: &DataType,
    separator: &str,
    errors: &mut Vec<RowError>,
) -> Result<ArrayRef> {
    // Split into string elements first, then coerce the flat elements with the scalar rules.
    let mut lb = ListBuilder::new(StringBuilder::new());
    for (i, v) in text.iter().enumerate() {
        match v.map(trim) {
            None | Some("") => lb.append_null(),
            Some(s) if s.starts_with('[') => match serde_json::from_str::<Vec<serde_json::Value>>(s) {
                Ok(items) => {
                    for it in items {
                        match it {
                            serde_json::Value::Null => lb.values().append_null(),
                            serde_json::Value::String(x) => lb.values().append_value(x),
                            other => lb.values().append_value(other.to_string()),
                        }
                    }
                    lb.append(true);
                }
                Err(_) => {
                    errors.push((
                        i,
                        format!("attribute `{}`: {} is not a JSON array", attr.name, show(text, i, attr.pii)),
                    ));
                    lb.append_null();
                }
            },
            Some(s) => {
                for part in s.split(separator) {
                    lb.values().append_value(trim(part));
                }
                lb.append(true);
            }
        }
    }
    let strings: GenericListArray<i32> = lb.finish();
    let elem_attr = Attribute { name: attr.name.clone(), data_type: elem.clone(), ..attr.clone() };
    let values: ArrayRef = strings.values().clone();
    let (coerced, elem_errors) = coerce(&values, &elem_attr, separator)?;
    let offsets = strings.offsets().clone();
    let mut bad_rows = vec![false; strings.len()];
    for (j, reason) in elem_errors {
        // Map the flat element index back to its row.
        let row = offsets.partition_point(|&o| o as usize <= j) - 1;
        if !bad_rows[row] {
            bad_rows[row] = true;
            errors.push((row, reason));
        }
    }
    let field = Arc::new(Field::new("item", elem.to_arrow(), true));
    let nulls = arrow::buffer::NullBuffer::from(
        (0..strings.len()).map(|i| strings.is_valid(i) && !bad_rows[i]).collect::<Vec<_>>(),
    );
    Ok(Arc::new(GenericListArray::<i32>::try_new(field, offsets, coerced, Some(nulls))?))
}

fn to_json_text(array: &ArrayRef) -> Result<StringArray> {
    let mut out = StringBuilder::new();
    let batch = arrow::array::RecordBatch::try_from_iter([("v", array.clone())])?;
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
        w.write(&batch)?;
        w.finish()?;
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.lines();
    for i in 0..array.len() {
        let line = lines.next().unwrap_or("{}");
        if array.is_null(i) {
            out.append_null();
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)?;
        match v.get("v") {
            Some(x) => out.append_value(x.to_string()),
            None => out.append_null(),
        }
    }
    Ok(out.finish())
}

fn mask(errors: &[RowError], len: usize) -> arrow::array::BooleanArray {
    let mut m = vec![false; len];
    for (i, _) in errors {
        m[*i] = true;
    }
    arrow::array::BooleanArray::from(m)
}

/// A null column of the attribute's type.
pub fn nulls(attr: &Attribute, len: usize) -> ArrayRef {
    new_null_array(&attr.data_type.to_arrow(), len)
}

#[cfg(test)]
mod tests {
    use super::{fast_timestamp, MinuteCache};
    use crate::rules::parse_timestamp;
    use proptest::prelude::*;

    /// The fast path with nothing remembered.
    fn fast_alone(s: &str) -> Option<i64> {
        fast_timestamp(s, &mut MinuteCache::default())
    }

    /// The calendar date (year, month, day) of a day number since the epoch (Howard Hinnant's algorithm).
    fn civil(days: i64) -> (i64, i64, i64) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (yoe + era * 400 + i64::from(m <= 2), m, d)
    }

    /// Edge cases: the fast path agrees with the general parser where it answers, and leaves the rest to it.
    #[test]
    fn fast_timestamps_agree_with_the_general_parser() {
        let fast = [
            "2020-08-10 13:33:58.011017Z",
            "2020-08-10T13:33:58Z",
            "2020-08-10 13:33:58",
            "1970-01-01 00:00:00Z",
            "1969-12-31 23:59:59.999999999Z",
            "0001-01-01 00:00:00Z",
            "9999-12-31 23:59:59.5",
            "2024-02-29 12:00:00.1234567Z",
            "2000-02-29 00:00:00Z",
        ];
        for s in fast {
            assert!(fast_alone(s).is_some(), "{s}");
            assert_eq!(fast_alone(s), parse_timestamp(s), "{s}");
        }
        assert_eq!(fast_alone("1970-01-01 00:00:01.5Z"), Some(1_500_000));
        let general = [
            "2023-02-29 00:00:00Z",
            "1900-02-29 00:00:00Z",
            "2020-13-01 00:00:00Z",
            "2020-08-10 24:00:00Z",
            "2020-08-10 13:33:60Z",
            "2020-08-10 13:33:58.Z",
            "2020-08-10 13:33:58.0123456789Z",
            "2020-08-10 13:33:58+02:00",
            "2020-08-10",
            "2020-08-10 13:33",
            "2020/08/10 13:33:58Z",
            "2020-08-10 1a:33:58Z",
            "+2020-08-10 13:33:58",
            "0000-01-01 00:00:00Z",
        ];
        for s in general {
            assert_eq!(fast_alone(s), None, "{s}");
        }
    }

    /// A remembered minute changes no answer: value by value, a sequence read with one cache gives what each
    /// value gives alone, through changes of date, hour and minute, the `T` and space forms of one minute, and
    /// invalid values that share a valid value's minute (or whose own minute is invalid) between valid ones.
    #[test]
    fn remembered_minutes_change_no_answer() {
        let sequence = [
            "2026-01-01 00:00:01.472921Z",
            "2026-01-01 00:00:02.125616Z",
            "2026-01-01 00:00:59Z",
            "2026-01-01 00:00:60Z",
            "2026-01-01 00:00:5x.1Z",
            "2026-01-01 00:00:05.Z",
            "2026-01-01 00:00",
            "2026-01-01 00:00:05+02:00",
            "2026-01-01 00:00:07.5",
            "2026-01-01T00:00:07.5",
            "2026-01-01 00:01:00Z",
            "2026-01-01 01:01:00Z",
            "2026-01-02 01:01:00Z",
            "2026-02-30 01:01:00Z",
            "2026-02-30 01:01:01Z",
            "2026-01-02 01:01:03Z",
            "2026-01-02 24:01:03Z",
            "2026-01-02 01:01:03.1234567890Z",
            "2025-12-31 23:59:59.999999Z",
            "2026-01-01 00:00:00Z",
            "",
            "2026-01-01 00:00:00ZZ",
        ];
        let mut minute = MinuteCache::default();
        for s in sequence {
            let alone = fast_alone(s);
            assert_eq!(fast_timestamp(s, &mut minute), alone, "{s}");
            if let Some(t) = alone {
                assert_eq!(Some(t), parse_timestamp(s), "{s}");
            }
        }
        assert_eq!(fast_timestamp("2026-01-01 00:00:00.5Z", &mut minute), Some(1_767_225_600_500_000));
        // Through the reader: the same instants and the same refusals as without a remembered minute.
        let mut remembered = MinuteCache::default();
        for s in sequence {
            assert_eq!(
                super::read_timestamp(s, &mut remembered),
                super::read_timestamp(s, &mut MinuteCache::default())
            );
        }
    }

    /// The quick trim is `str::trim`, for ASCII and Unicode whitespace at either end or none.
    #[test]
    fn quick_trim_is_trim() {
        for s in
            ["", " ", "a", " a", "a ", "\ta\n", "\u{a0}a", "a\u{2003}", "é", " é ", "a b", "\u{85}x\u{85}", "\x0b1\x0c"]
        {
            assert_eq!(super::trim(s), s.trim(), "{s:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any date-time in the fast form: the same instant as the general parser.
        #[test]
        fn fast_timestamps_equal_parse_timestamp(y in 1i64..=9999, mo in 1u32..=12, d in 1u32..=31, h in 0u32..24,
                                                 mi in 0u32..60, se in 0u32..60, frac in 0u64..1_000_000_000,
                                                 digits in 0usize..=9, t in any::<bool>(), z in any::<bool>()) {
            let mut s = format!("{y:04}-{mo:02}-{d:02}{}{h:02}:{mi:02}:{se:02}", if t { 'T' } else { ' ' });
            if digits > 0 {
                s.push_str(&format!(".{frac:09}")[..digits + 1]);
            }
            if z {
                s.push('Z');
            }
            let fast = fast_alone(&s);
            prop_assert_eq!(fast.is_some(), parse_timestamp(&s).is_some(), "{}", s);
            if fast.is_some() {
                prop_assert_eq!(fast, parse_timestamp(&s), "{}", s);
            }
        }

        /// Any sequence of instants near each other (same or other minute, hour, day; some values broken by one
        /// character): read with one remembered minute, each gives what it gives alone.
        #[test]
        fn remembered_minutes_agree_on_sequences(steps in proptest::collection::vec(
                (0i64..200_000_000, any::<bool>(), 0usize..27, proptest::char::range('/', ':')), 1..40),
                                                 start in 0i64..4_000_000_000) {
            let mut minute = MinuteCache::default();
            let mut at = start;
            for (step, broken, where_, c) in steps {
                at += step;
                let secs = at / 1000;
                let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
                let (y, m, d) = civil(days);
                let mut s: Vec<char> = format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}123Z",
                                              rest / 3600, rest / 60 % 60, rest % 60, at % 1000).chars().collect();
                if broken {
                    s[where_] = c;
                }
                let s: String = s.into_iter().collect();
                prop_assert_eq!(fast_timestamp(&s, &mut minute), fast_alone(&s), "{}", s);
                if let Some(t) = fast_alone(&s) {
                    prop_assert_eq!(Some(t), parse_timestamp(&s), "{}", s);
                }
            }
        }

        /// Any text, hostile included (other digits, multi-byte characters, cut or stretched forms, one
        /// character of a valid form replaced): the fast path never panics and answers only where the general
        /// parser gives the same instant.
        #[test]
        fn fast_timestamps_of_any_text_agree(noise in "[0-9: TZ.\\-+/٣é]{0,40}|\\PC{0,30}", at in 0usize..28,
                                             c in prop_oneof![any::<char>(), proptest::char::range('0', '9'),
                                                              Just(' '), Just('T'), Just('.'), Just('Z')]) {
            let mut changed: Vec<char> = "2024-02-29 23:59:59.123456Z".chars().collect();
            changed[at % 27] = c;
            let changed: String = changed.into_iter().collect();
            for s in [noise.as_str(), changed.as_str()] {
                if let Some(t) = fast_alone(s) {
                    prop_assert_eq!(Some(t), parse_timestamp(s), "{}", s);
                }
            }
            // The same after the valid form's minute was remembered (a changed value shares its first bytes).
            let mut minute = MinuteCache::default();
            prop_assert!(fast_timestamp("2024-02-29 23:59:59.123456Z", &mut minute).is_some());
            for s in [noise.as_str(), changed.as_str()] {
                prop_assert_eq!(fast_timestamp(s, &mut minute), fast_alone(s), "{}", s);
            }
        }
    }
}
