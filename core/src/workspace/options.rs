//! How a workspace is opened: [`WorkspaceOptions`] and store secrets.

use crate::error::{Error, Result};

/// How to open a workspace. Its `Debug` output never shows store option values (they may be secrets).
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct WorkspaceOptions {
    /// Keep entity data at this URL (`s3://bucket/prefix`, `file:///…`) instead of the workspace directory.
    pub store_url: Option<String>,
    /// Options for the store (e.g. `aws_region`, `aws_endpoint`); secrets may be given as `env:NAME`.
    pub store_options: Vec<(String, String)>,
    /// Query parallelism (default: the number of cores).
    pub target_partitions: Option<usize>,
    /// DataFusion configuration options (`datafusion.execution.parquet.pushdown_filters` = `true`, …).
    pub session_options: Vec<(String, String)>,
    /// IANA time zone that calendar windows (days, weeks, months) and "today" count in (default `UTC`).
    pub time_zone: Option<String>,
    /// Builds named sources from their configs (see [`crate::sources`]); `segkit_connectors::registry()` is the
    /// usual one. Without it, `define_source` and `sync` fail with a clear error.
    pub source_factory: Option<std::sync::Arc<dyn crate::sources::SourceFactory>>,
    /// Builds workflow actions from their configs (see [`crate::action`]); `segkit_actions::registry()` is the
    /// usual one. Without it, workflow steps can only name actions registered with
    /// [`Workspace::register_action`](crate::Workspace::register_action).
    pub action_factory: Option<std::sync::Arc<dyn crate::action::ActionFactory>>,
    /// How long a dispatcher's claim on a delivery lasts (default [`LEASE`](crate::workflow::dispatch::LEASE), at
    /// least [`MIN_LEASE`](crate::workflow::dispatch::MIN_LEASE), at most
    /// [`MAX_LEASE`](crate::workflow::dispatch::MAX_LEASE)): a dispatcher killed mid-delivery holds its
    /// deliveries this long, and an action gets half of it to answer. Every process sharing a workspace should
    /// use the same lease.
    pub lease: Option<std::time::Duration>,
    /// The most claimed deliveries a dispatch processes at once (at most
    /// [`MAX_DELIVERY_WINDOW`](crate::limits::MAX_DELIVERY_WINDOW)): at most this many are sent (or being sent)
    /// with their outcome not yet committed, which is what a process killed with SIGKILL may send again. With
    /// `durable_commits` each outcome waits for a sync to disk, so the window also bounds the rate, to about
    /// `window / (2 × sync time)`: a larger window trades more re-sends after a crash for more deliveries per
    /// second. A window smaller than `concurrency` also limits the sends.
    ///
    /// Default: `2 × concurrency`, and with `durable_commits` at least [`DEFAULT_DURABLE_DELIVERY_WINDOW`]
    /// (1,024; a sync to disk takes milliseconds on most disks, and `2 × concurrency` would hold the rate to a
    /// few thousand deliveries per second). Set it lower for channels whose receivers cannot deduplicate by the
    /// `Idempotency-Key` (e-mail, SMS) if fewer duplicates after a crash matter more than the rate.
    pub delivery_window: Option<usize>,
    /// The memory an ingest may use to sort new rows into storage order before it spills sorted runs to
    /// temporary files (default [`DEFAULT_INGEST_MEMORY`], at least 16 MiB): an ingest of any size holds about
    /// this much, not the whole input.
    pub ingest_memory: Option<usize>,
    /// Every catalog commit (snapshots, segment runs, the delivery ledger) waits until it is on disk, so even a
    /// power loss cannot undo one (SQLite `synchronous = FULL`), and every Parquet file a commit references
    /// (ingested data, uploads, appended events, compacted files, segment members, quarantined rows) is synced
    /// to disk with its directory before that commit ([`Store::durable`](crate::store::Store::durable), local
    /// stores). Off by default: commits then survive a crash of the process (`SIGKILL`, a panic) but not of the
    /// machine, and cost no disk flush each.
    pub durable_commits: bool,
}

/// The least default [`WorkspaceOptions::delivery_window`] of a workspace with `durable_commits`: 1,024
/// deliveries.
pub const DEFAULT_DURABLE_DELIVERY_WINDOW: usize = 1024;

/// The default of [`WorkspaceOptions::ingest_memory`]: 64 MiB.
pub const DEFAULT_INGEST_MEMORY: usize = 64 * 1024 * 1024;

impl std::fmt::Debug for WorkspaceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self.store_options.iter().map(|(k, _)| format!("{k}=<redacted>")).collect();
        f.debug_struct("WorkspaceOptions")
            .field("store_url", &self.store_url)
            .field("store_options", &keys)
            .field("target_partitions", &self.target_partitions)
            .field("session_options", &self.session_options)
            .field("time_zone", &self.time_zone)
            .field("source_factory", &self.source_factory)
            .field("action_factory", &self.action_factory)
            .field("lease", &self.lease)
            .field("delivery_window", &self.delivery_window)
            .field("ingest_memory", &self.ingest_memory)
            .field("durable_commits", &self.durable_commits)
            .finish()
    }
}

impl WorkspaceOptions {
    /// Data at `url`.
    pub fn store_url(mut self, url: impl Into<String>) -> Self {
        self.store_url = Some(url.into());
        self
    }
    /// Query parallelism.
    pub fn target_partitions(mut self, n: usize) -> Self {
        self.target_partitions = Some(n);
        self
    }
    /// Builds named sources with `factory`.
    pub fn source_factory(mut self, factory: impl crate::sources::SourceFactory + 'static) -> Self {
        self.source_factory = Some(std::sync::Arc::new(factory));
        self
    }
    /// Builds workflow actions with `factory`.
    pub fn action_factory(mut self, factory: impl crate::action::ActionFactory + 'static) -> Self {
        self.action_factory = Some(std::sync::Arc::new(factory));
        self
    }
    /// Sets the delivery lease (see [`WorkspaceOptions::lease`]).
    pub fn lease(mut self, lease: std::time::Duration) -> Self {
        self.lease = Some(lease);
        self
    }
    /// Sets the dispatcher's window of deliveries in flight (see [`WorkspaceOptions::delivery_window`]).
    pub fn delivery_window(mut self, deliveries: usize) -> Self {
        self.delivery_window = Some(deliveries);
        self
    }
    /// Lets an ingest sort `bytes` of new rows in memory before spilling (see the field).
    pub fn ingest_memory(mut self, bytes: usize) -> Self {
        self.ingest_memory = Some(bytes);
        self
    }
    /// Makes every catalog commit wait until it is on disk (see the field).
    pub fn durable_commits(mut self, durable: bool) -> Self {
        self.durable_commits = durable;
        self
    }
    /// Sets a DataFusion configuration option for the workspace's session.
    pub fn session_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.session_options.push((key.into(), value.into()));
        self
    }
}

pub(super) fn resolve_secret(v: &str) -> Result<String> {
    match v.strip_prefix("env:") {
        Some(name) => std::env::var(name).map_err(|_| {
            Error::InvalidArgument(format!("environment variable `{name}` (referenced as env:{name}) is not set"))
        }),
        None => Ok(v.to_string()),
    }
}
