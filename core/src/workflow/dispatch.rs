//! Dispatch arithmetic: retry backoff with jitter, and the report of one dispatch pass.

use std::time::Duration;

use sha2::{Digest, Sha256};

/// Default attempts per delivery.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Most attempts a workflow may ask for.
pub const MAX_ATTEMPTS: u32 = 20;
/// Default first retry delay.
pub const DEFAULT_BACKOFF_MS: u64 = 1000;
/// The longest delay between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long a claim lasts; a dispatcher killed mid-delivery loses its claims after this.
/// The default (see [`WorkspaceOptions::lease`](crate::WorkspaceOptions::lease)).
pub const LEASE: Duration = Duration::from_secs(60);
/// The shortest lease a workspace accepts.
pub const MIN_LEASE: Duration = Duration::from_millis(200);
/// The longest lease a workspace accepts: a day (a dispatcher killed mid-delivery holds its claims that long; and
/// a lease's milliseconds are added to instants in the catalog, which must not overflow).
pub const MAX_LEASE: Duration = Duration::from_secs(24 * 3600);

/// The delay before attempt `attempt + 1` after attempt `attempt` failed: `base · 2^(attempt-1)`, capped at
/// [`MAX_BACKOFF`], times a jitter factor in [0.5, 1) derived from the idempotency key and attempt (so
/// deliveries that failed together spread out, reproducibly), and never less than the receiver's
/// `retry_after`.
///
/// ```
/// use std::time::Duration;
/// use segkit::workflow::dispatch::backoff;
/// let d1 = backoff(1000, 1, "k", None);
/// let d3 = backoff(1000, 3, "k", None);
/// assert!(d1 >= Duration::from_millis(500) && d1 < Duration::from_millis(1000));
/// assert!(d3 >= Duration::from_millis(2000) && d3 < Duration::from_millis(4000));
/// assert_eq!(backoff(1000, 1, "k", Some(Duration::from_secs(30))), Duration::from_secs(30));
/// ```
pub fn backoff(base_ms: u64, attempt: u32, key: &str, retry_after: Option<Duration>) -> Duration {
    let exp = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(40));
    let capped = exp.min(MAX_BACKOFF.as_millis() as u64);
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(attempt.to_le_bytes());
    let b = h.finalize();
    let frac = u16::from_le_bytes([b[0], b[1]]) as f64 / 65536.0;
    let d = Duration::from_millis((capped as f64 * (0.5 + frac / 2.0)) as u64);
    match retry_after {
        Some(r) if r > d => r.min(MAX_BACKOFF),
        _ => d,
    }
}

/// What one dispatch pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DispatchReport {
    /// Rows claimed.
    pub claimed: u64,
    /// Deliveries the action confirmed.
    pub delivered: u64,
    /// Wait and exit steps completed.
    pub done: u64,
    /// Failed attempts scheduled again.
    pub retried: u64,
    /// Rows dead-lettered.
    pub dead: u64,
    /// Rows skipped because the key is suppressed on the channel.
    pub suppressed: u64,
    /// Rows skipped because a frequency cap was reached.
    pub capped: u64,
    /// Rows held (back to pending) until their quiet hours end.
    pub held: u64,
    /// Rows left pending because a rate limit was reached this pass.
    pub rate_limited: u64,
    /// Wait `until` rows whose instant was resolved (back to pending, due then).
    pub waiting: u64,
}
