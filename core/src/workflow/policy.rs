//! Delivery policies that need no workspace: quiet hours, checks of frequency caps, and the token buckets that
//! rate-limit actions (see `docs/workflows.md`).
//!
//! - **Quiet hours** hold a delivery due inside them until they end (in the entity's time zone); it is not
//!   dropped, and the hold is not an attempt.
//! - **Frequency caps** count the deliveries on a channel to one entity in a sliding window across all
//!   workflows; a delivery over a cap is skipped with status `capped` (as Braze and Customer.io do: the message
//!   is not sent late) and the entity goes on to the next step.
//! - **Rate limits** (`rate_per_second` on a step, and the action's own
//!   [`max_rate_per_second`](crate::Action::max_rate_per_second)) are token buckets on the workspace clock:
//!   rows beyond the rate stay pending, due when a token is free.
//!
//! ```
//! use chrono::{NaiveTime, TimeZone, Utc};
//! use segkit::workflow::policy::quiet_until;
//! let (start, end) = (NaiveTime::from_hms_opt(22, 0, 0).unwrap(), NaiveTime::from_hms_opt(8, 0, 0).unwrap());
//! let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
//! // 23:30 in Berlin (CEST) is quiet until 08:00 the next morning.
//! let now = Utc.with_ymd_and_hms(2026, 7, 1, 21, 30, 0).unwrap();
//! assert_eq!(quiet_until(now, start, end, tz), Some(Utc.with_ymd_and_hms(2026, 7, 2, 6, 0, 0).unwrap()));
//! assert_eq!(quiet_until(Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap(), start, end, tz), None);
//! ```

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use super::steps::{next_local_time, parse_time_of_day, parse_zone};
use crate::error::{Error, Result};
use crate::limits::{MAX_CAP_WINDOW_SECONDS, MAX_FREQUENCY_CAPS, MAX_RATE_PER_SECOND};
use crate::model::normalize_name;
use crate::spec::workflow::{FrequencyCapSpec, PoliciesSpec, QuietHoursSpec};

/// When the quiet hours `start`–`end` (local times of day; `start` after `end` spans midnight) that contain
/// `now` in `tz` end, or `None` when `now` is outside them. The end is found with
/// [`next_local_time`], so a DST change inside the quiet hours makes them an hour shorter or longer.
pub fn quiet_until(now: DateTime<Utc>, start: NaiveTime, end: NaiveTime, tz: Tz) -> Option<DateTime<Utc>> {
    let t = now.with_timezone(&tz).time();
    let quiet = if start < end { start <= t && t < end } else { t >= start || t < end };
    (quiet && start != end).then(|| next_local_time(now, end, tz))
}

/// Parsed quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    /// Start, local time.
    pub start: NaiveTime,
    /// End, local time.
    pub end: NaiveTime,
}

impl QuietHours {
    /// Parses and checks a spec; `path` is its field path for errors.
    pub fn parse(spec: &QuietHoursSpec, path: &str) -> Result<QuietHours> {
        let start = parse_time_of_day(&spec.start, &format!("{path}.start"))?;
        let end = parse_time_of_day(&spec.end, &format!("{path}.end"))?;
        if start == end {
            return Err(Error::definition(path, "quiet hours that start when they end are empty; remove them"));
        }
        if let Some(z) = &spec.timezone {
            parse_zone(z, &format!("{path}.timezone"))?;
        }
        Ok(QuietHours { start, end })
    }
}

/// Checks and normalizes a workflow's policies beyond what serde checks (caps, quiet hours); `here` builds the
/// error path (`workflow w.` + field).
pub fn check_policies(p: &mut PoliciesSpec, here: &dyn Fn(&str) -> String) -> Result<()> {
    if p.frequency_caps.len() > MAX_FREQUENCY_CAPS {
        return Err(Error::definition(
            here("policies.frequency_caps"),
            format!("at most {MAX_FREQUENCY_CAPS} caps (limit MAX_FREQUENCY_CAPS), not {}", p.frequency_caps.len()),
        ));
    }
    for (i, cap) in p.frequency_caps.iter_mut().enumerate() {
        check_cap(cap, &here(&format!("policies.frequency_caps[{i}]")))?;
    }
    if let Some(q) = &p.quiet_hours {
        QuietHours::parse(q, &here("policies.quiet_hours"))?;
    }
    Ok(())
}

fn check_cap(cap: &mut FrequencyCapSpec, path: &str) -> Result<()> {
    cap.channel = normalize_name(&cap.channel);
    if cap.channel.is_empty() || cap.channel.len() > 64 {
        return Err(Error::definition(format!("{path}.channel"), "a channel name is 1 to 64 characters"));
    }
    if cap.max == 0 {
        return Err(Error::definition(format!("{path}.max"), "at least 1 (to stop a channel, suppress its keys)"));
    }
    if cap.seconds == 0 || cap.seconds > MAX_CAP_WINDOW_SECONDS {
        return Err(Error::definition(
            format!("{path}.seconds"),
            format!("1 to {MAX_CAP_WINDOW_SECONDS} (limit MAX_CAP_WINDOW_SECONDS), not {}", cap.seconds),
        ));
    }
    Ok(())
}

/// Checks a step's `rate_per_second`.
pub fn check_rate(rate: f64, path: &str) -> Result<()> {
    if !(rate.is_finite() && rate > 0.0 && rate <= MAX_RATE_PER_SECOND) {
        return Err(Error::definition(
            path,
            format!("a rate is more than 0 and at most {MAX_RATE_PER_SECOND} per second (limit MAX_RATE_PER_SECOND)"),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last_ms: i64,
    /// When the next row turned away may come back: turned-away rows are spread one token apart, so they do
    /// not all return at the same instant.
    next_ms: i64,
}

/// Most buckets kept; past it the map is cleared (a bucket forgotten only starts full again).
const MAX_BUCKETS: usize = 10_000;

/// Token buckets by name (a workflow step, an action), refilled at their rate on the clock the caller passes —
/// the workspace clock, so a fixed clock gives deterministic limits. Each holds at most one second's worth of
/// tokens (at least one).
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Takes one token from every bucket in `limits` (name, rate per second) at `now_ms`, or none when one of
    /// them is empty: then `Err(ms)` says when to come back — when all have a token, later for each further
    /// row turned away (one token's time apart), so deferred rows return at the rate.
    ///
    /// ```
    /// let r = segkit::workflow::policy::RateLimiter::default();
    /// let lim = [("step".to_string(), 2.0)];
    /// assert!(r.try_take(&lim, 0).is_ok() && r.try_take(&lim, 0).is_ok());
    /// assert_eq!(r.try_take(&lim, 0), Err(500));
    /// assert_eq!(r.try_take(&lim, 0), Err(1000));
    /// assert!(r.try_take(&lim, 500).is_ok());
    /// ```
    pub fn try_take(&self, limits: &[(String, f64)], now_ms: i64) -> std::result::Result<(), i64> {
        if limits.is_empty() {
            return Ok(());
        }
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > MAX_BUCKETS {
            map.clear();
        }
        let mut wait = 0i64;
        for (name, rate) in limits {
            let burst = rate.max(1.0);
            let b = map.entry(name.clone()).or_insert(Bucket {
                rate: *rate,
                tokens: burst,
                last_ms: now_ms,
                next_ms: now_ms,
            });
            if b.rate != *rate {
                *b = Bucket { rate: *rate, tokens: burst, last_ms: now_ms, next_ms: now_ms };
            }
            let elapsed = (now_ms - b.last_ms).max(0) as f64 / 1000.0;
            b.tokens = (b.tokens + elapsed * rate).min(burst);
            b.last_ms = b.last_ms.max(now_ms);
            if b.tokens < 1.0 {
                let refill = (((1.0 - b.tokens) / rate) * 1000.0).ceil() as i64;
                wait = wait.max(refill.max(b.next_ms - now_ms));
            }
        }
        if wait > 0 {
            // Book the slot: the next row turned away comes back one token later.
            for (name, rate) in limits {
                if let Some(b) = map.get_mut(name) {
                    b.next_ms = now_ms + wait + (1000.0 / rate).ceil() as i64;
                }
            }
            return Err(wait.max(1));
        }
        for (name, _) in limits {
            if let Some(b) = map.get_mut(name) {
                b.tokens -= 1.0;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveTime {
        NaiveTime::parse_from_str(s, "%H:%M").unwrap()
    }

    #[test]
    fn quiet_hours_across_dst_in_berlin() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        // Night of the spring-forward (2026-03-29): 00:00 CET is quiet until 08:00 CEST = 06:00 UTC.
        assert_eq!(
            quiet_until(at("2026-03-28T23:00:00Z"), t("22:00"), t("08:00"), tz),
            Some(at("2026-03-29T06:00:00Z"))
        );
        // Night of the fall-back (2026-10-25): 01:00 CEST is quiet until 08:00 CET = 07:00 UTC.
        assert_eq!(
            quiet_until(at("2026-10-24T23:00:00Z"), t("22:00"), t("08:00"), tz),
            Some(at("2026-10-25T07:00:00Z"))
        );
        // Same-day quiet hours.
        assert_eq!(
            quiet_until(at("2026-07-01T11:30:00Z"), t("13:00"), t("14:00"), tz),
            Some(at("2026-07-01T12:00:00Z"))
        );
        assert_eq!(quiet_until(at("2026-07-01T12:00:00Z"), t("13:00"), t("14:00"), tz), None);
    }

    #[test]
    fn buckets_refill_on_the_given_clock() {
        let r = RateLimiter::default();
        let both = [("a".to_string(), 1.0), ("b".to_string(), 10.0)];
        assert!(r.try_take(&both, 0).is_ok());
        // `a` is empty: nothing is taken from `b` either.
        assert_eq!(r.try_take(&both, 0), Err(1000));
        // The next row turned away comes back a token later.
        assert_eq!(r.try_take(&both, 400), Err(1600));
        assert!(r.try_take(&both, 1000).is_ok());
        // A changed rate starts a new bucket.
        assert!(r.try_take(&[("a".to_string(), 3.0)], 1000).is_ok());
    }
}
