//! The workspace clock: the one source of "now" for relative time windows.
//!
//! ```
//! use segkit::{Clock, FixedClock};
//! let clock = FixedClock::parse("2026-06-30T00:00:00Z").unwrap();
//! assert_eq!(clock.now().to_rfc3339(), "2026-06-30T00:00:00+00:00");
//! ```

use std::fmt::Debug;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};

/// A source of the current instant.
pub trait Clock: Send + Sync + Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock frozen at one instant, for tests and reproducible runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedClock(pub DateTime<Utc>);

impl FixedClock {
    /// Parses an RFC 3339 instant such as `2026-06-30T00:00:00Z`.
    pub fn parse(s: &str) -> Result<Self> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| FixedClock(t.with_timezone(&Utc)))
            .map_err(|e| Error::InvalidArgument(format!("clock instant {s:?} is not RFC 3339: {e}")))
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}
