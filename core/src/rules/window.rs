//! Relative windows (`"30 days"`): parsing and calendar arithmetic in the workspace time zone.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

use super::checked::*;
use crate::error::{Error, Result};

pub(super) fn window(v: &Value, path: &str, tz: chrono_tz::Tz) -> Result<Window> {
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
