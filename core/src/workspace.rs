//! The workspace: one directory (or store URL) holding a catalog, entity data and segment memberships,
//! and the DataFusion session that queries them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use arrow::array::RecordBatch;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::execution::context::SessionContext;
use datafusion::prelude::SessionConfig;

use crate::catalog::{Catalog, Snapshot};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::model::Entity;
use crate::store::Store;
use crate::workflow::dispatch::{MAX_LEASE, MIN_LEASE};

mod auth;
mod captured;
mod compaction;
mod dispatch;
mod entities;
mod evaluation;
mod explain;
mod group_commit;
mod ingest;
mod options;
mod pages;
mod planning;
mod schedules;
mod segments;
mod sources;
mod static_lists;
mod vacuum;
mod workflows;

pub use compaction::CompactReport;
pub use entities::EntityDependents;
pub use evaluation::{MembersPage, MembersRun};
pub use explain::{ExplainNode, Explanation};
pub use ingest::SyncRecord;
use options::resolve_secret;
pub use options::{WorkspaceOptions, DEFAULT_DURABLE_DELIVERY_WINDOW, DEFAULT_INGEST_MEMORY};
pub use pages::{ChangeKind, ChangesQuery, PageRequest, QuarantineQuery, QuarantineSort, RowsPage};
use planning::PlanSources;
pub use static_lists::StaticListReport;
pub use vacuum::{VacuumReport, ORPHAN_GRACE};

struct Inner {
    dir: PathBuf,
    catalog: Arc<Catalog>,
    store: Store,
    ctx: SessionContext,
    clock: RwLock<Arc<dyn Clock>>,
    time_zone: RwLock<chrono_tz::Tz>,
    entity_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The table provider registered for each entity (kept here so rule compilation can build scans without
    /// going through the async catalog API).
    providers: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
    source_factory: Option<Arc<dyn crate::sources::SourceFactory>>,
    action_factory: Option<Arc<dyn crate::action::ActionFactory>>,
    /// Actions registered by name ([`Workspace::register_action`]).
    actions: RwLock<HashMap<String, Arc<dyn crate::action::Action>>>,
    /// How long a dispatcher's claim on a delivery lasts ([`WorkspaceOptions::lease`]).
    lease: std::time::Duration,
    /// [`WorkspaceOptions::delivery_window`] (`None`: the default, see [`Workspace::delivery_window`]).
    delivery_window: Option<usize>,
    /// [`WorkspaceOptions::ingest_memory`].
    ingest_memory: usize,
    /// Decoded static-list versions, oldest first (see `Workspace::static_table`).
    static_tables: Mutex<Vec<Arc<static_lists::DecodedList>>>,
    /// Checked rules by segment (see `Workspace::compiled`).
    compiled: Mutex<HashMap<String, Arc<planning::Compiled>>>,
    /// Token buckets of workflow rate limits, on the workspace clock.
    rate_limits: crate::workflow::policy::RateLimiter,
    /// Action configs the dispatcher built, by their JSON text (see `Workspace::dispatch_action`).
    built_actions: Mutex<HashMap<String, Arc<dyn crate::action::Action>>>,
    /// API keys verified since `api_keys` last changed (see `Workspace::authenticate_api_key`).
    auth_cache: Mutex<auth::AuthCache>,
    /// When the queue-depth gauges were last counted (see `Workspace::record_queue_depth`).
    queue_depth_at: Mutex<Option<std::time::Instant>>,
    #[cfg(test)]
    fail_before_commit: std::sync::atomic::AtomicBool,
}

/// A segkit workspace. Cheap to clone; all clones share one catalog, store and session.
///
/// ```no_run
/// # async fn demo() -> segkit::Result<()> {
/// let ws = segkit::Workspace::open("./ws").await?;
/// for e in ws.entities()? { println!("{}", e.name); }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Workspace {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("dir", &self.inner.dir)
            .field("store", &self.inner.store.url().as_str())
            .finish()
    }
}

impl Workspace {
    /// Opens the workspace in directory `path`, creating it if needed (catalog `segkit.db`, data beside it).
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, WorkspaceOptions::default()).await
    }

    /// Opens with options (a remote store, parallelism).
    pub async fn open_with(path: impl AsRef<Path>, options: WorkspaceOptions) -> Result<Self> {
        let dir = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        crate::memory::tune_allocator();
        let catalog = Catalog::open(&dir.join("segkit.db"))?;
        if options.durable_commits {
            catalog.set_durable_commits(true)?;
        }
        let catalog = Arc::new(catalog);
        let lease = options.lease.unwrap_or(crate::workflow::dispatch::LEASE);
        if lease < MIN_LEASE {
            return Err(Error::InvalidArgument(format!(
                "the delivery lease is {} ms, shorter than {} ms (MIN_LEASE)",
                lease.as_millis(),
                MIN_LEASE.as_millis()
            )));
        }
        if lease > MAX_LEASE {
            return Err(Error::InvalidArgument(format!(
                "the delivery lease is {} ms, longer than {} ms (MAX_LEASE)",
                lease.as_millis(),
                MAX_LEASE.as_millis()
            )));
        }
        if let Some(w) = options.delivery_window.filter(|w| !(1..=crate::limits::MAX_DELIVERY_WINDOW).contains(w)) {
            return Err(Error::InvalidArgument(format!(
                "the delivery window is {w} deliveries; it must be between 1 and {} (MAX_DELIVERY_WINDOW)",
                crate::limits::MAX_DELIVERY_WINDOW
            )));
        }
        let store = match &options.store_url {
            None => Store::local(&dir)?,
            Some(url) => {
                let opts = options
                    .store_options
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), resolve_secret(v)?)))
                    .collect::<Result<Vec<_>>>()?;
                Store::from_url(url, &opts)?
            }
        }
        .durable(options.durable_commits);
        let partitions = options
            .target_partitions
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
        let mut config = SessionConfig::new().with_target_partitions(partitions).with_information_schema(true);
        config.options_mut().execution.parquet.pushdown_filters = false;
        for (k, v) in &options.session_options {
            config
                .options_mut()
                .set(k, v)
                .map_err(|e| Error::InvalidArgument(format!("session option {k}={v}: {e}")))?;
        }
        let ctx = SessionContext::new_with_config(config);
        crate::monitoring::register_system_tables(&ctx, catalog.clone())?;
        if store.url().scheme() != "file" {
            ctx.register_object_store(&store.registration_url(), store.object_store());
        }
        let ws = Workspace {
            inner: Arc::new(Inner {
                dir,
                catalog,
                store,
                ctx,
                clock: RwLock::new(Arc::new(SystemClock)),
                time_zone: RwLock::new(chrono_tz::Tz::UTC),
                entity_locks: Mutex::new(HashMap::new()),
                providers: RwLock::new(HashMap::new()),
                source_factory: options.source_factory.clone(),
                action_factory: options.action_factory.clone(),
                actions: RwLock::new(HashMap::new()),
                lease,
                delivery_window: options.delivery_window,
                ingest_memory: options.ingest_memory.unwrap_or(DEFAULT_INGEST_MEMORY).max(16 * 1024 * 1024),
                static_tables: Mutex::new(Vec::new()),
                compiled: Mutex::new(HashMap::new()),
                rate_limits: Default::default(),
                built_actions: Default::default(),
                auth_cache: Default::default(),
                queue_depth_at: Default::default(),
                #[cfg(test)]
                fail_before_commit: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        if let Some(tz) = &options.time_zone {
            ws.set_time_zone(tz)?;
        }
        for e in ws.inner.catalog.entities()? {
            let (_, v) = ws.inner.catalog.entity(&e.name)?.expect("listed");
            let snap = ws.inner.catalog.snapshot(&e.name, v)?;
            ws.register(&e, &snap)?;
        }
        Ok(ws)
    }

    /// Whether every catalog commit waits until it is on disk and every Parquet file it references is synced
    /// first ([`WorkspaceOptions::durable_commits`]).
    pub fn durable_commits(&self) -> bool {
        self.inner.store.is_durable()
    }

    /// The workspace directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// The DataFusion session; every entity is a table named after it.
    pub fn session(&self) -> &SessionContext {
        &self.inner.ctx
    }

    /// Runs SQL over the entity tables and the system tables (`segkit.runs`, `segkit.syncs`, `segkit.deliveries`,
    /// `segkit.schedules`: see [`crate::monitoring`]) and collects the result.
    pub async fn sql(&self, query: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.inner.ctx.sql(query).await?.collect().await?)
    }

    /// Replaces the clock used for relative time windows (e.g. a [`FixedClock`](crate::FixedClock)).
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        *self.inner.clock.write().unwrap_or_else(|p| p.into_inner()) = clock;
    }

    /// Sets the IANA time zone (`Europe/Berlin`, `Asia/Shanghai`, `UTC`) that calendar windows count in: "within
    /// the last 1 day" across a DST change is then 23 or 25 hours, and `date` attributes compare with the local date.
    pub fn set_time_zone(&self, name: &str) -> Result<()> {
        let tz: chrono_tz::Tz = name.parse().map_err(|_| {
            Error::InvalidArgument(format!("unknown time zone {name:?}; use an IANA name such as Europe/Berlin"))
        })?;
        *self.inner.time_zone.write().unwrap_or_else(|p| p.into_inner()) = tz;
        Ok(())
    }

    /// The workspace time zone.
    pub fn time_zone(&self) -> chrono_tz::Tz {
        *self.inner.time_zone.read().unwrap_or_else(|p| p.into_inner())
    }

    /// How long a dispatcher's claim on a delivery lasts before another dispatcher may take it (see
    /// [`WorkspaceOptions::lease`]).
    pub fn lease(&self) -> std::time::Duration {
        self.inner.lease
    }

    /// The current instant according to the workspace clock.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.read().unwrap_or_else(|p| p.into_inner()).now()
    }

    fn register(&self, entity: &Entity, snap: &Snapshot) -> Result<()> {
        let schema = entity.schema();
        let provider: Arc<dyn TableProvider> = if snap.files.is_empty() {
            Arc::new(MemTable::try_new(schema, vec![vec![]])?)
        } else {
            let urls = snap
                .files
                .iter()
                .map(|f| Ok(ListingTableUrl::parse(self.inner.store.file_url(&f.path)?.as_str())?))
                .collect::<Result<Vec<_>>>()?;
            let format = ParquetFormat::default().with_enable_pruning(true);
            let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
            let config =
                ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema);
            Arc::new(ListingTable::try_new(config)?)
        };
        self.inner.ctx.deregister_table(TableReference::bare(entity.name.as_str()))?;
        self.inner.ctx.register_table(TableReference::bare(entity.name.as_str()), provider.clone())?;
        self.inner.providers.write().unwrap_or_else(|p| p.into_inner()).insert(entity.name.clone(), provider);
        Ok(())
    }

    /// The catalog (for [`crate::project`]).
    pub(crate) fn catalog(&self) -> &Arc<Catalog> {
        &self.inner.catalog
    }

    /// Deletes store files now, or — inside a catalog transaction scope — once it commits.
    pub(crate) async fn delete_files(&self, files: &[String]) {
        if !self.inner.catalog.defer_delete(files) {
            self.inner.store.delete(files).await;
        }
    }

    /// Deletes store files now (after a scope committed).
    pub(crate) async fn delete_files_now(&self, files: &[String]) {
        self.inner.store.delete(files).await;
    }

    /// Makes the query session's table of each of `entities` match the committed catalog again: registered with
    /// its definition and snapshot, or dropped when the entity no longer exists (after a scope rolled back or
    /// deleted entities).
    pub(crate) fn refresh_tables(&self, entities: &[String]) -> Result<()> {
        for name in entities {
            match self.inner.catalog.entity(name)? {
                Some((e, v)) => {
                    let snap = self.inner.catalog.snapshot(name, v)?;
                    self.register(&e, &snap)?;
                }
                None => {
                    self.inner.ctx.deregister_table(TableReference::bare(name.as_str()))?;
                    self.inner.providers.write().unwrap_or_else(|p| p.into_inner()).remove(name);
                }
            }
        }
        Ok(())
    }

    fn entity_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.inner.entity_locks.lock().unwrap_or_else(|p| p.into_inner()).entry(name.to_string()).or_default().clone()
    }
}

#[cfg(test)]
impl Workspace {
    pub(crate) fn fail_next_commits(&self, on: bool) {
        self.inner.fail_before_commit.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attribute, DataType};
    use crate::source::Source;
    use crate::IngestOptions;
    use arrow::array::{ArrayRef, StringArray};

    #[test]
    fn options_debug_redacts_store_secrets() {
        let mut o = WorkspaceOptions::default().store_url("s3://bucket/ws");
        o.store_options.push(("aws_secret_access_key".into(), "hunter2".into()));
        let shown = format!("{o:?}");
        assert!(shown.contains("aws_secret_access_key=<redacted>") && !shown.contains("hunter2"), "{shown}");
    }

    #[tokio::test]
    async fn missing_env_secret_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = WorkspaceOptions::default().store_url("s3://bucket/ws");
        o.store_options.push(("aws_secret_access_key".into(), "env:SEGKIT_TEST_SURELY_UNSET".into()));
        let e = Workspace::open_with(dir.path(), o).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid argument: environment variable `SEGKIT_TEST_SURELY_UNSET` (referenced as env:SEGKIT_TEST_SURELY_UNSET) is not set"
        );
    }

    #[allow(dead_code)]
    fn futures_are_send(ws: &Workspace, source: &dyn Source) {
        fn send<T: Send>(_: T) {}
        send(ws.ingest("u", source, IngestOptions::default()));
        send(ws.evaluate("s"));
        send(ws.count("s"));
        send(ws.preview("s", 1));
        send(ws.define_entity(Entity::profile("u", "id")));
        send(ws.quarantine("u"));
    }

    fn batch(ids: &[&str]) -> RecordBatch {
        RecordBatch::try_from_iter([("id", Arc::new(StringArray::from(ids.to_vec())) as ArrayRef)]).unwrap()
    }

    #[tokio::test]
    async fn a_failure_at_commit_leaves_the_snapshot_and_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).await.unwrap();
        ws.define_entity(Entity::profile("u", "id").attribute(Attribute::new("id", DataType::Int64))).await.unwrap();
        ws.ingest_batches("u", vec![batch(&["1", "2"])], IngestOptions::default()).await.unwrap();
        let before = ws.snapshot("u").unwrap();
        ws.fail_next_commits(true);
        // A quarantined row too, so a quarantine file is written and must be cleaned up as well.
        let e = ws.ingest_batches("u", vec![batch(&["3", "x"])], IngestOptions::default()).await.unwrap_err();
        assert!(e.to_string().contains("injected failure before commit"), "{e}");
        assert_eq!(ws.snapshot("u").unwrap(), before);
        assert_eq!(ws.sql("SELECT count(*) AS n FROM u").await.unwrap()[0].column(0).as_ref().len(), 1);
        let n: i64 = ws.sql("SELECT count(*) AS n FROM u").await.unwrap()[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(n, 2);
        let files: Vec<_> = std::fs::read_dir(dir.path().join("data/u")).unwrap().collect();
        assert_eq!(files.len(), before.files.len(), "new data files were removed");
        assert!(std::fs::read_dir(dir.path().join("quarantine/u")).map(|d| d.count()).unwrap_or(0) == 0);
        assert!(ws.ingest_history("u").unwrap().len() == 1, "the failed ingest is not recorded");
        ws.fail_next_commits(false);
        let r = ws.ingest_batches("u", vec![batch(&["3"])], IngestOptions::default()).await.unwrap();
        assert_eq!(r.snapshot, Some(2));
    }
}
