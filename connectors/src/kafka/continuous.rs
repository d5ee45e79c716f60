//! Continuous mode: one sync (one snapshot, one catalog commit) per micro-batch, until cancelled.

use std::time::Duration;

use segkit::sources::IngestControl;
use segkit::{Error, Result, Workspace};

use super::KafkaSource;

/// How [`sync_continuous`] paces its micro-batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContinuousOptions {
    /// Pause after a sync that read nothing, before polling again (default 1 s).
    pub idle: Duration,
    /// Stop after this many committed syncs (default: none, run until cancelled).
    pub max_syncs: Option<u64>,
}

impl Default for ContinuousOptions {
    fn default() -> Self {
        ContinuousOptions { idle: Duration::from_secs(1), max_syncs: None }
    }
}

impl ContinuousOptions {
    /// Sets [`ContinuousOptions::idle`].
    pub fn idle(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }
    /// Sets [`ContinuousOptions::max_syncs`].
    pub fn max_syncs(mut self, n: u64) -> Self {
        self.max_syncs = Some(n);
        self
    }
}

/// What [`sync_continuous`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContinuousReport {
    /// Syncs that committed (each one snapshot and its cursor).
    pub syncs: u64,
    /// Records read by those syncs.
    pub rows_read: u64,
    /// Records quarantined by those syncs.
    pub rows_quarantined: u64,
    /// Whether the loop ended because the token was cancelled (a micro-batch in flight then commits nothing).
    pub cancelled: bool,
}

/// Runs [`Workspace::sync_with`] on the named source again and again — each call a micro-batch ending in one
/// commit — until the [`IngestControl`]'s cancellation token fires (or `options.max_syncs` syncs committed).
/// Cap the micro-batch size with the source's `max_messages`; a sync that read nothing waits `options.idle`.
///
/// A `kafka` source in consumer-group mode has its catalog cursor committed to the group after every
/// committed sync, so the group's lag stays current between scans.
///
/// Cancelling ends the loop with `Ok` and [`ContinuousReport::cancelled`] set: the sync in flight fails with
/// `Cancelled` and commits nothing, every earlier one is committed. Any other error ends the loop with that
/// error (the syncs before it stay committed).
pub async fn sync_continuous(
    ws: &Workspace,
    name: &str,
    control: &IngestControl,
    options: ContinuousOptions,
) -> Result<ContinuousReport> {
    let mut report = ContinuousReport::default();
    let token = control.cancellation_token();
    loop {
        if control.is_cancelled() {
            report.cancelled = true;
            return Ok(report);
        }
        match ws.sync_with(name, control).await {
            Ok(r) => {
                report.syncs += 1;
                report.rows_read += r.rows_read;
                report.rows_quarantined += r.rows_quarantined;
                let info = ws.source(name)?;
                if info
                    .definition
                    .config
                    .get("type")
                    .and_then(|t| t.as_str())
                    .is_some_and(|t| t.eq_ignore_ascii_case("kafka"))
                    && info.definition.config.get("group_id").is_some()
                {
                    KafkaSource::from_config(&info.definition.config)?
                        .commit_group_offsets(info.cursor.as_ref())
                        .await?;
                }
                if options.max_syncs.is_some_and(|n| report.syncs >= n) {
                    return Ok(report);
                }
                if r.rows_read == 0 {
                    match &token {
                        Some(t) => {
                            tokio::select! {
                                _ = t.cancelled() => {}
                                _ = tokio::time::sleep(options.idle) => {}
                            }
                        }
                        None => tokio::time::sleep(options.idle).await,
                    }
                }
            }
            Err(Error::Cancelled { .. }) => {
                report.cancelled = true;
                return Ok(report);
            }
            Err(e) => return Err(e),
        }
    }
}
