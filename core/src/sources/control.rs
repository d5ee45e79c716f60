//! Progress reporting and cancellation of long ingests and syncs.

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use tokio_util::sync::CancellationToken;

/// How far an ingest or sync has got. Handed to the progress callback of [`IngestControl`].
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct Progress {
    /// Records read from the source so far.
    pub rows_read: u64,
    /// Of those, records rejected (quarantined) so far.
    pub rows_rejected: u64,
    /// Bytes of Arrow data read from the source so far (in-memory size of the batches, a measure of volume
    /// comparable across sources, not the size on the wire).
    pub bytes_read: u64,
    /// Batches read so far.
    pub batches: u64,
    /// Time since the ingest started.
    #[serde(serialize_with = "millis")]
    pub elapsed: Duration,
    /// True on the last call: every record has been read (the commit follows).
    pub done: bool,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl Progress {
    /// Records per second so far.
    pub fn rows_per_second(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.rows_read as f64 / s
        } else {
            0.0
        }
    }
}

/// A progress callback. Called from the task running the ingest: keep it quick.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How the caller follows and stops a long ingest or sync: a progress callback and a cancellation token.
///
/// The callback is called at most once per [`IngestControl::progress_interval`] (default 200 ms) while
/// batches arrive, and once more at the end with [`Progress::done`] set. Cancelling the token makes the
/// ingest stop at the next batch (or while it waits for one) with [`Error::Cancelled`](crate::Error::Cancelled):
/// files it wrote are deleted, and the previous snapshot and source cursor stay as they were. A token fired
/// after the data was read but before the commit still cancels; once the commit has started it completes.
///
/// ```
/// use segkit::sources::{CancellationToken, IngestControl};
/// let token = CancellationToken::new();
/// let control = IngestControl::new()
///     .on_progress(|p| eprintln!("{} rows, {} rejected", p.rows_read, p.rows_rejected))
///     .cancel_with(token.clone());
/// token.cancel(); // from another task or a signal handler
/// # let _ = control;
/// ```
#[derive(Clone, Default)]
pub struct IngestControl {
    pub(crate) progress: Option<ProgressFn>,
    pub(crate) cancel: Option<CancellationToken>,
    pub(crate) interval: Option<Duration>,
}

impl std::fmt::Debug for IngestControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestControl")
            .field("progress", &self.progress.is_some())
            .field("cancellable", &self.cancel.is_some())
            .field("interval", &self.interval)
            .finish()
    }
}

/// The default minimum time between two progress calls.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

impl IngestControl {
    /// No callback, not cancellable.
    pub fn new() -> Self {
        Self::default()
    }
    /// Calls `f` with the progress (see the type documentation for how often).
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }
    /// Cancels when `token` is cancelled.
    pub fn cancel_with(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }
    /// Minimum time between two progress calls (zero: after every batch).
    pub fn progress_interval(mut self, every: Duration) -> Self {
        self.interval = Some(every);
        self
    }
    /// The cancellation token, if one was given (for loops that wait between syncs, such as a connector's
    /// continuous mode).
    pub fn cancellation_token(&self) -> Option<&CancellationToken> {
        self.cancel.as_ref()
    }
    /// Whether the token has fired.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|t| t.is_cancelled())
    }
}

/// The running state behind an [`IngestControl`] during one ingest.
pub(crate) struct Tracker<'a> {
    control: &'a IngestControl,
    started: Instant,
    last: Option<Instant>,
    pub(crate) progress: Progress,
}

impl<'a> Tracker<'a> {
    pub(crate) fn new(control: &'a IngestControl) -> Self {
        Tracker { control, started: Instant::now(), last: None, progress: Progress::default() }
    }

    /// Counts one batch read from the source, of which `rejected` rows were quarantined.
    pub(crate) fn batch(&mut self, rows: usize, bytes: usize, rejected: usize) {
        self.progress.rows_read += rows as u64;
        self.progress.rows_rejected += rejected as u64;
        self.progress.bytes_read += bytes as u64;
        self.progress.batches += 1;
        let Some(f) = &self.control.progress else { return };
        let now = Instant::now();
        let every = self.control.interval.unwrap_or(PROGRESS_INTERVAL);
        if self.last.is_none_or(|t| now.duration_since(t) >= every) {
            self.last = Some(now);
            self.progress.elapsed = now.duration_since(self.started);
            f(&self.progress);
        }
    }

    /// The final call, after the source is exhausted.
    pub(crate) fn done(&mut self) {
        self.progress.done = true;
        self.progress.elapsed = self.started.elapsed();
        if let Some(f) = &self.control.progress {
            f(&self.progress);
        }
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.control.is_cancelled()
    }

    /// Waits for `fut` unless the token fires first (then `None`).
    pub(crate) async fn or_cancel<F: std::future::Future>(&self, fut: F) -> Option<F::Output> {
        match &self.control.cancel {
            None => Some(fut.await),
            Some(t) => tokio::select! {
                biased;
                _ = t.cancelled() => None,
                out = fut => Some(out),
            },
        }
    }
}
