//! The workspace: one directory (or store URL) holding a catalog, entity data and segment memberships,
//! and the DataFusion session that queries them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::execution::context::SessionContext;
use datafusion::prelude::{DataFrame, SessionConfig};

use crate::catalog::{Catalog, RunRecord, Snapshot};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::ingest::pipeline::{self, quarantine_schema};
use crate::ingest::{IngestOptions, IngestReport};
use crate::model::{check_name, Entity, EntityKind};
use crate::rules::{check_with, column, compile_with, Checked, CheckedSequence, PlanSource, Resolver};
use crate::segment::{diff_sorted, sort_keys, DryRun, SegmentDefinition, SegmentRun};
use crate::source::{BatchStream, RecordBatchSource, Source};
use crate::store::Store;
use chrono::{DateTime, Utc};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};

mod explain;
pub use explain::{ExplainNode, Explanation};

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
}

impl std::fmt::Debug for WorkspaceOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<String> = self.store_options.iter().map(|(k, _)| format!("{k}=<redacted>")).collect();
        f.debug_struct("WorkspaceOptions")
            .field("store_url", &self.store_url)
            .field("store_options", &keys)
            .field("target_partitions", &self.target_partitions)
            .field("session_options", &self.session_options)
            .field("time_zone", &self.time_zone)
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
    /// Sets a DataFusion configuration option for the workspace's session.
    pub fn session_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.session_options.push((key.into(), value.into()));
        self
    }
}

struct Inner {
    dir: PathBuf,
    catalog: Catalog,
    store: Store,
    ctx: SessionContext,
    clock: RwLock<Arc<dyn Clock>>,
    time_zone: RwLock<chrono_tz::Tz>,
    entity_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The table provider registered for each entity (kept here so rule compilation can build scans without
    /// going through the async catalog API).
    providers: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
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

fn resolve_secret(v: &str) -> Result<String> {
    match v.strip_prefix("env:") {
        Some(name) => std::env::var(name).map_err(|_| {
            Error::InvalidArgument(format!("environment variable `{name}` (referenced as env:{name}) is not set"))
        }),
        None => Ok(v.to_string()),
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
        let catalog = Catalog::open(&dir.join("segkit.db"))?;
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
        };
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

    /// The workspace directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// The DataFusion session; every entity is a table named after it.
    pub fn session(&self) -> &SessionContext {
        &self.inner.ctx
    }

    /// Runs SQL over the entity tables and collects the result.
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

    // ------------------------------------------------------------------------------------------ entities

    /// Defines an entity, or evolves an existing one (adding nullable attributes, changing flags).
    ///
    /// Incompatible changes (a type change, a different key, dropping an attribute, making a populated
    /// attribute required) are refused with [`Error::IncompatibleChange`].
    pub async fn define_entity(&self, entity: Entity) -> Result<Entity> {
        let entity = entity.normalized()?;
        for (i, l) in entity.links.iter().enumerate() {
            let p = format!("entity {}.links[{i}]", entity.name);
            let Some((target, _)) = self.inner.catalog.entity(&l.entity)? else {
                let known: Vec<String> = self.inner.catalog.entities()?.into_iter().map(|e| e.name).collect();
                let hint = crate::error::hint(&l.entity, known.iter().map(String::as_str));
                return Err(Error::definition(p, format!("linked entity `{}` is not defined{hint}", l.entity)));
            };
            if target.kind != EntityKind::Profile {
                return Err(Error::definition(
                    p,
                    format!("linked entity `{}` is an event entity; links point to profiles", l.entity),
                ));
            }
            let tattr = match &l.target {
                Some(t) => target.attr(t).map_err(|e| Error::definition(&p, e.to_string()))?,
                None => target.key_attribute().expect("profiles have keys"),
            };
            let mine = entity.attr(&l.attribute)?;
            if mine.data_type != tattr.data_type {
                return Err(Error::definition(
                    p,
                    format!(
                        "`{}` is {} but `{}.{}` is {}",
                        mine.name, mine.data_type, target.name, tattr.name, tattr.data_type
                    ),
                ));
            }
        }
        let _guard = self.entity_lock(&entity.name).lock_owned().await;
        let snap = match self.inner.catalog.entity(&entity.name)? {
            Some((old, v)) => {
                let snap = self.inner.catalog.snapshot(&entity.name, v)?;
                entity.check_evolution(&old, snap.row_count > 0)?;
                if old == entity {
                    return Ok(entity);
                }
                snap
            }
            None => Snapshot::default(),
        };
        self.inner.catalog.put_entity(&entity)?;
        self.register(&entity, &snap)?;
        Ok(entity)
    }

    /// An entity definition.
    pub fn entity(&self, name: &str) -> Result<Entity> {
        match self.inner.catalog.entity(name)? {
            Some((e, _)) => Ok(e),
            None => {
                let known = self.inner.catalog.entities()?;
                Err(Error::not_found_among("entity", name, known.iter().map(|x| x.name.as_str())))
            }
        }
    }

    /// All entities.
    pub fn entities(&self) -> Result<Vec<Entity>> {
        self.inner.catalog.entities()
    }

    /// The current snapshot of an entity.
    pub fn snapshot(&self, entity: &str) -> Result<Snapshot> {
        self.entity(entity)?;
        let (_, v) = self.inner.catalog.entity(entity)?.expect("checked");
        self.inner.catalog.snapshot(entity, v)
    }

    fn entity_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.inner.entity_locks.lock().unwrap_or_else(|p| p.into_inner()).entry(name.to_string()).or_default().clone()
    }

    // ------------------------------------------------------------------------------------------ ingest

    /// Ingests everything `source` yields into `entity`.
    ///
    /// Bad rows are quarantined (see [`IngestReport::rows_quarantined`]); the good rows commit atomically as a
    /// new snapshot. If the source or the store fails, nothing is committed and the previous snapshot stays.
    pub async fn ingest(&self, entity: &str, source: &dyn Source, options: IngestOptions) -> Result<IngestReport> {
        let e = self.entity(entity)?;
        let _guard = self.entity_lock(entity).lock_owned().await;
        let (_, version) = self.inner.catalog.entity(entity)?.expect("checked");
        let current = self.inner.catalog.snapshot(entity, version)?;
        let id = uuid::Uuid::new_v4().to_string();
        let staged = pipeline::stage(&self.inner.store, &e, &current, source, &options, &id).await?;
        let mut report = staged.report;
        let changed = staged.files != current.files || matches!(report.mode, crate::ingest::IngestMode::FullRefresh);
        let result = async {
            #[cfg(test)]
            if self.inner.fail_before_commit.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Error::ingest(entity, "injected failure before commit"));
            }
            if changed {
                report.snapshot = Some(version + 1);
                let json = serde_json::to_value(&report)?;
                let snap = self.inner.catalog.commit_snapshot(
                    entity,
                    version,
                    &staged.files,
                    &format!("{:?}", report.mode).to_lowercase(),
                    Some((&id, &report.source, &json)),
                )?;
                self.register(&e, &snap)?;
            } else {
                self.inner.catalog.record_ingest(&id, entity, &report.source, &serde_json::to_value(&report)?)?;
            }
            Ok(())
        }
        .await;
        if let Err(err) = result {
            let orphans: Vec<String> =
                staged.written.iter().map(|f| f.path.clone()).chain(staged.quarantine_file.clone()).collect();
            self.inner.store.delete(&orphans).await;
            return Err(err);
        }
        Ok(report)
    }

    /// Ingests in-memory Arrow batches.
    pub async fn ingest_batches(
        &self,
        entity: &str,
        batches: Vec<RecordBatch>,
        options: IngestOptions,
    ) -> Result<IngestReport> {
        if batches.is_empty() {
            return Err(Error::InvalidArgument("no batches to ingest".into()));
        }
        let source = RecordBatchSource::new("arrow", batches)?;
        self.ingest(entity, &source, options).await
    }

    /// Past ingest reports of an entity, oldest first.
    pub fn ingest_history(&self, entity: &str) -> Result<Vec<IngestReport>> {
        self.entity(entity)?;
        self.inner.catalog.ingests(entity)?.into_iter().map(|v| Ok(serde_json::from_value(v)?)).collect()
    }

    /// Quarantined rows of an entity across all ingests: `ingest_id`, `row` (1-based), `reason`, `record` (the
    /// raw source fields as JSON text; as sensitive as the data itself).
    pub async fn quarantine(&self, entity: &str) -> Result<RecordBatch> {
        let schema = Arc::new(Schema::new(
            std::iter::once(Arc::new(Field::new("ingest_id", ArrowType::Utf8, false)))
                .chain(quarantine_schema().fields().iter().cloned())
                .collect::<Vec<_>>(),
        ));
        let mut out = vec![];
        for r in self.ingest_history(entity)? {
            if let Some(f) = &r.quarantine_file {
                for b in self.inner.store.read_all(f).await? {
                    let id: ArrayRef = Arc::new(StringArray::from(vec![r.id.as_str(); b.num_rows()]));
                    let mut cols = vec![id];
                    cols.extend(b.columns().iter().cloned());
                    out.push(RecordBatch::try_new(schema.clone(), cols)?);
                }
            }
        }
        Ok(concat_batches(&schema, &out)?)
    }

    /// Forgets the quarantined rows of `entity` (after they were looked at, or to erase the raw records they
    /// hold): deletes the quarantine files and the sample rows kept in the ingest reports; the counts stay.
    /// Returns how many rows were forgotten.
    pub async fn clear_quarantine(&self, entity: &str) -> Result<u64> {
        self.entity(entity)?;
        let _guard = self.entity_lock(entity).lock_owned().await;
        let (files, rows) = self.inner.catalog.clear_quarantine(entity)?;
        self.inner.store.delete(&files).await;
        Ok(rows)
    }

    /// Deletes the data files that only old snapshots use: for each entity, the snapshots older than its latest
    /// `keep_snapshots` are forgotten and the files no kept snapshot reads are removed from the store.
    ///
    /// Ingests never overwrite files — an upsert writes the changed profiles to new files — so replaced and
    /// deleted records stay on disk until this runs: call it after erasing someone's data, or on a schedule.
    /// Keep at least 2 when other processes may still be reading the previous snapshot.
    ///
    /// It also collects orphans: files under the workspace's data, quarantine and segment directories that the
    /// catalog does not refer to (left by a process that crashed before committing) and that are older than
    /// [`ORPHAN_GRACE`], so a write in flight in another process is never touched.
    ///
    /// ```no_run
    /// # async fn f(ws: segkit::Workspace) -> segkit::Result<()> {
    /// let report = ws.vacuum(2).await?;
    /// println!("{} files, {} bytes freed", report.files_deleted, report.bytes_freed);
    /// # Ok(()) }
    /// ```
    pub async fn vacuum(&self, keep_snapshots: usize) -> Result<VacuumReport> {
        if keep_snapshots == 0 {
            return Err(Error::InvalidArgument("vacuum keeps at least 1 snapshot (the current one)".into()));
        }
        let mut report = VacuumReport::default();
        let entities = self.entities()?;
        for entity in &entities {
            let _guard = self.entity_lock(&entity.name).lock_owned().await;
            let (removed, files) = self.inner.catalog.prune_snapshots(&entity.name, keep_snapshots)?;
            report.snapshots_removed += removed;
            report.files_deleted += files.len() as u64;
            report.bytes_freed += files.iter().map(|f| f.bytes).sum::<u64>();
            let paths: Vec<String> = files.into_iter().map(|f| f.path).collect();
            self.inner.store.delete(&paths).await;
        }
        let referenced = self.inner.catalog.referenced_files()?;
        let cutoff = chrono::Utc::now() - ORPHAN_GRACE;
        let dirs = entities
            .iter()
            .flat_map(|e| [format!("data/{}/", e.name), format!("quarantine/{}/", e.name)])
            .chain(self.segments()?.into_iter().map(|s| format!("segments/{}/", s.name)));
        for dir in dirs {
            let orphans: Vec<crate::store::StoredFile> = self
                .inner
                .store
                .list(&dir)
                .await?
                .into_iter()
                .filter(|f| f.modified < cutoff && !referenced.contains(&f.path))
                .collect();
            report.orphans_deleted += orphans.len() as u64;
            report.bytes_freed += orphans.iter().map(|f| f.bytes).sum::<u64>();
            let paths: Vec<String> = orphans.into_iter().map(|f| f.path).collect();
            self.inner.store.delete(&paths).await;
        }
        Ok(report)
    }

    // ------------------------------------------------------------------------------------------ segments

    /// Defines (or replaces) a segment after type-checking its rule against the entity.
    ///
    /// The rule is stored in canonical form (see [`Checked::to_rule`]); the stored definition is returned.
    pub async fn define_segment(&self, segment: SegmentDefinition) -> Result<SegmentDefinition> {
        check_name(&segment.name, "segment")?;
        let entity = self
            .entity(&segment.entity)
            .map_err(|e| Error::definition(format!("segment {}.entity", segment.name), e.to_string()))?;
        if entity.key.is_none() {
            return Err(Error::definition(
                format!("segment {}.entity", segment.name),
                format!("entity `{}` has no key; segments select keyed entities", entity.name),
            ));
        }
        let checked = check_with(&segment.rule, &entity, self, std::slice::from_ref(&segment.name))?;
        if let Some(split) = &segment.split {
            split.validate(&format!("segment {}.split", segment.name))?;
        }
        let segment = SegmentDefinition { rule: checked.to_rule(), ..segment };
        self.inner.catalog.put_segment(&segment)?;
        Ok(segment)
    }

    /// A segment definition.
    pub fn segment(&self, name: &str) -> Result<SegmentDefinition> {
        match self.inner.catalog.segment(name)? {
            Some(s) => Ok(s),
            None => {
                let known = self.inner.catalog.segments()?;
                Err(Error::not_found_among("segment", name, known.iter().map(|x| x.name.as_str())))
            }
        }
    }

    /// All segments.
    pub fn segments(&self) -> Result<Vec<SegmentDefinition>> {
        self.inner.catalog.segments()
    }

    /// Deletes a segment and its membership history.
    pub async fn delete_segment(&self, name: &str) -> Result<()> {
        let files = self.inner.catalog.delete_segment(name)?;
        self.inner.store.delete(&files).await;
        Ok(())
    }

    fn compiled(&self, name: &str) -> Result<(SegmentDefinition, Entity, Checked)> {
        let def = self.segment(name)?;
        let entity = self.entity(&def.entity)?;
        let checked = check_with(&def.rule, &entity, self, std::slice::from_ref(&def.name))?;
        Ok((def, entity, checked))
    }

    async fn filtered(&self, entity: &Entity, checked: &Checked) -> Result<DataFrame> {
        let key = entity.key.clone().unwrap_or_default();
        let now = self.now();
        let mut sources = PlanSources::new(self, self.load_stored_members(checked).await?);
        self.match_sequences(checked, now, &mut sources).await?;
        // Run each behavioural subquery first and keep its keys in memory: the main query then joins against a
        // table of known (usually small) size, and the planner builds the hash table on it instead of on the
        // whole profile table.
        let mut behaviors: Vec<&crate::rules::CheckedBehavior> = vec![];
        fn collect<'a>(c: &'a Checked, out: &mut Vec<&'a crate::rules::CheckedBehavior>) {
            c.walk(&mut |n| match n {
                Checked::Behavior(b) => out.push(b),
                Checked::InSegment(r) if !r.stored => collect(&r.rule, out),
                _ => {}
            });
        }
        collect(checked, &mut behaviors);
        for b in behaviors {
            let plan = crate::rules::behavior_subquery(b, now, &key, &entity.name, &sources)?;
            let df = DataFrame::new(self.inner.ctx.state(), plan);
            // The keys are never null (null links are filtered out): saying so lets the planner use a plain
            // (not null-aware) anti join for `not_performed`, with the hash table on this small side.
            let schema: SchemaRef = Arc::new(Schema::new(
                df.schema()
                    .as_arrow()
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(false))
                    .collect::<Vec<_>>(),
            ));
            let batches = df
                .collect()
                .await?
                .into_iter()
                .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
                .collect::<Result<Vec<_>, _>>()?;
            let table: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(schema, vec![batches])?);
            sources.materialized.insert(b as *const _ as usize, table);
        }
        let expr = compile_with(checked, now, &key, &entity.name, &sources)?;
        let df = self.inner.ctx.table(TableReference::bare(entity.name.as_str())).await?;
        Ok(df.filter(expr)?)
    }

    /// Reads the latest stored membership of every segment the rule references with `stored: true`.
    async fn load_stored_members(&self, checked: &Checked) -> Result<HashMap<String, Arc<dyn TableProvider>>> {
        fn collect(c: &Checked, out: &mut Vec<String>) {
            c.walk(&mut |n| match n {
                Checked::InSegment(r) if r.stored => out.push(r.segment.clone()),
                Checked::InSegment(r) => collect(&r.rule, out),
                Checked::Behavior(b) => {
                    if let Some(f) = &b.filter {
                        collect(f, out)
                    }
                }
                _ => {}
            });
        }
        let mut names = vec![];
        collect(checked, &mut names);
        let mut out: HashMap<String, Arc<dyn TableProvider>> = HashMap::new();
        for name in names {
            if out.contains_key(&name) {
                continue;
            }
            let Some(run) = self.inner.catalog.last_run(&name)? else {
                return Err(Error::rule(
                    format!("in_segment {name}"),
                    format!("segment `{name}` has no stored run yet; evaluate it first or use stored: false"),
                ));
            };
            // Only the key column (a split adds `variant`).
            let batches = self
                .inner
                .store
                .read_all(&run.membership_file)
                .await?
                .iter()
                .map(|b| b.project(&[0]))
                .collect::<Result<Vec<_>, _>>()?;
            let schema = match batches.first() {
                Some(b) => b.schema(),
                None => Arc::new(self.members_schema(&name)?.project(&[0])?),
            };
            out.insert(name, Arc::new(MemTable::try_new(schema, vec![batches])?));
        }
        Ok(out)
    }

    /// Members (sorted keys, plus `variant` with a split) of a checked segment, and their schema.
    async fn compute_members(
        &self,
        def: &SegmentDefinition,
        entity: &Entity,
        checked: &Checked,
    ) -> Result<(RecordBatch, SchemaRef)> {
        let key = entity.key.clone().expect("checked on define");
        let df = self.filtered(entity, checked).await?.select(vec![column(&key)])?;
        let key_schema: SchemaRef =
            Arc::new(Schema::new(vec![Field::new(&key, entity.attr(&key)?.data_type.to_arrow(), false)]));
        let batches = df.collect().await?;
        let keys = sort_keys(concat_batches(&key_schema, &batches)?)?;
        // With a split, each membership version carries the variant of every member next to its key.
        Ok(match &def.split {
            None => (keys, key_schema),
            Some(split) => {
                let schema: SchemaRef = Arc::new(Schema::new(vec![
                    key_schema.field(0).clone(),
                    Field::new("variant", ArrowType::Utf8, true),
                ]));
                let variants = split.assign(&def.name, keys.column(0))?;
                (RecordBatch::try_new(schema.clone(), vec![keys.column(0).clone(), Arc::new(variants)])?, schema)
            }
        })
    }

    /// The stored membership of a run (empty without one), shaped like `schema`.
    async fn membership(&self, run: Option<&RunRecord>, schema: &SchemaRef) -> Result<RecordBatch> {
        match run {
            Some(r) => {
                let b = self.inner.store.read_all(&r.membership_file).await?;
                let b = b.iter().map(|b| pipeline::conform(b, schema)).collect::<Result<Vec<_>>>()?;
                Ok(concat_batches(schema, &b)?)
            }
            None => Ok(RecordBatch::new_empty(schema.clone())),
        }
    }

    /// Evaluates an edited (or new) segment definition without saving anything: who would be members, and who
    /// would enter and exit compared with the latest stored run of the segment with that name.
    pub async fn dry_run(&self, segment: SegmentDefinition) -> Result<DryRun> {
        check_name(&segment.name, "segment")?;
        let entity = self
            .entity(&segment.entity)
            .map_err(|e| Error::definition(format!("segment {}.entity", segment.name), e.to_string()))?;
        let checked = check_with(&segment.rule, &entity, self, std::slice::from_ref(&segment.name))?;
        if let Some(split) = &segment.split {
            split.validate(&format!("segment {}.split", segment.name))?;
        }
        let (members, schema) = self.compute_members(&segment, &entity, &checked).await?;
        let last = self.inner.catalog.last_run(&segment.name)?;
        let before = self.membership(last.as_ref(), &schema).await?;
        let (would_enter, would_exit) = diff_sorted(&before, &members)?;
        Ok(DryRun {
            count: members.num_rows() as u64,
            members,
            would_enter,
            would_exit,
            against_run: last.map(|r| r.run),
        })
    }

    /// The schema of a segment's stored memberships: the entity key, plus `variant` when the segment has a split
    /// (a membership without rows yields no batches; this keeps such results typed).
    pub fn members_schema(&self, name: &str) -> Result<SchemaRef> {
        let def = self.segment(name)?;
        let entity = self.entity(&def.entity)?;
        let key = entity.key.clone().expect("segments select keyed entities");
        let mut fields = vec![Field::new(&key, entity.attr(&key)?.data_type.to_arrow(), false)];
        if def.split.is_some() {
            fields.push(Field::new("variant", ArrowType::Utf8, true));
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The stored members of the latest run that started at or before `instant` (workspace clock).
    pub async fn members_as_of(&self, name: &str, instant: chrono::DateTime<chrono::Utc>) -> Result<BatchStream> {
        let runs = self.runs(name)?;
        let run = runs
            .iter()
            .rev()
            .find(|r| chrono::DateTime::parse_from_rfc3339(&r.started_at).is_ok_and(|t| t <= instant))
            .ok_or_else(|| Error::not_found("run", format!("{name} at or before {}", instant.to_rfc3339())))?;
        self.inner.store.read(&run.membership_file).await
    }

    /// The log of membership changes: one row per key that entered or exited, per stored run (`run`,
    /// `started_at`, the key, `change` = `entered` / `exited`), oldest first. With `keep_runs`, the log starts
    /// after the oldest kept run.
    pub async fn changes(&self, name: &str) -> Result<RecordBatch> {
        let def = self.segment(name)?;
        let entity = self.entity(&def.entity)?;
        let key = entity.key.clone().expect("segments select keyed entities");
        let key_field = Field::new(&key, entity.attr(&key)?.data_type.to_arrow(), false);
        let key_schema: SchemaRef = Arc::new(Schema::new(vec![key_field.clone()]));
        let out_schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("run", ArrowType::Int64, false),
            Field::new("started_at", ArrowType::Utf8, false),
            key_field,
            Field::new("change", ArrowType::Utf8, false),
        ]));
        let mut out = vec![];
        let mut before = RecordBatch::new_empty(key_schema.clone());
        let runs = self.runs(name)?;
        // Runs deleted by retention leave the first kept run without its predecessor: it starts the log.
        let first = runs.first().map(|r| r.run).unwrap_or(1);
        for r in runs {
            let now = self.membership(Some(&r), &key_schema).await?;
            if r.run == first && first > 1 {
                before = now;
                continue;
            }
            let (entered, exited) = diff_sorted(&before, &now)?;
            for (batch, change) in [(entered, "entered"), (exited, "exited")] {
                let n = batch.num_rows();
                if n == 0 {
                    continue;
                }
                out.push(RecordBatch::try_new(
                    out_schema.clone(),
                    vec![
                        Arc::new(arrow::array::Int64Array::from(vec![r.run; n])),
                        Arc::new(StringArray::from(vec![r.started_at.as_str(); n])),
                        batch.column(0).clone(),
                        Arc::new(StringArray::from(vec![change; n])),
                    ],
                )?);
            }
            before = now;
        }
        Ok(concat_batches(&out_schema, &out)?)
    }

    /// Evaluates a segment: computes its members, stores them as a new membership version and returns who
    /// entered and exited since the previous run.
    pub async fn evaluate(&self, name: &str) -> Result<SegmentRun> {
        let started = Instant::now();
        let started_at = self.now();
        let (def, entity, checked) = self.compiled(name)?;
        let key = entity.key.clone().expect("checked on define");
        let snapshot = self.snapshot(&entity.name)?.version;
        let (members, membership_schema) = self.compute_members(&def, &entity, &checked).await?;
        let previous = self.inner.catalog.last_run(name)?;
        let before = self.membership(previous.as_ref(), &membership_schema).await?;
        let (entered, exited) = diff_sorted(&before, &members)?;
        let run = previous.map(|r| r.run + 1).unwrap_or(1);
        // One file per run (an empty membership still gets a typed file to diff against next time).
        let mut writer =
            self.inner.store.writer(&format!("segments/{}", def.name), membership_schema, Some(&key)).single_file();
        if let Err(e) = writer.write(&members).await {
            writer.abort().await;
            return Err(e);
        }
        let membership_file = writer.finish().await?.remove(0).path;
        let duration = started.elapsed();
        let record = RunRecord {
            segment: def.name.clone(),
            run,
            started_at: started_at.to_rfc3339(),
            duration_ms: duration.as_secs_f64() * 1000.0,
            member_count: members.num_rows() as u64,
            entered: entered.num_rows() as u64,
            exited: exited.num_rows() as u64,
            membership_file: membership_file.clone(),
            snapshot,
        };
        if let Err(e) = self.inner.catalog.insert_run(&record) {
            self.inner.store.delete(std::slice::from_ref(&membership_file)).await;
            return Err(e);
        }
        if let Some(keep) = def.keep_runs {
            let old = self.inner.catalog.delete_runs_before(&def.name, run - i64::from(keep.max(1)) + 1)?;
            self.inner.store.delete(&old).await;
        }
        Ok(SegmentRun {
            segment: def.name,
            run,
            count: members.num_rows() as u64,
            members,
            entered,
            exited,
            started_at,
            duration,
            snapshot,
        })
    }

    /// Segments that reference `name` through `in_segment` / `not_in_segment`, directly or transitively, in an
    /// order where every segment comes after the segments it references.
    pub fn dependents(&self, name: &str) -> Result<Vec<String>> {
        self.segment(name)?;
        let defs = self.segments()?;
        let refs = |r: &crate::rules::Rule| {
            let mut out = vec![];
            fn walk(r: &crate::rules::Rule, out: &mut Vec<String>) {
                use crate::rules::Rule;
                match r {
                    Rule::And(v) | Rule::Or(v) => v.iter().for_each(|x| walk(x, out)),
                    Rule::Not(x) => walk(x, out),
                    Rule::InSegment(s) => out.push(s.segment.clone()),
                    Rule::Performed(b) => {
                        if let Some(f) = &b.filter {
                            walk(f, out)
                        }
                    }
                    Rule::Linked(l) => walk(&l.rule, out),
                    Rule::Sequence(_) => {}
                    Rule::Condition(_) => {}
                }
            }
            walk(r, &mut out);
            out
        };
        let graph: HashMap<String, Vec<String>> = defs.iter().map(|d| (d.name.clone(), refs(&d.rule))).collect();
        // Depth-first post-order over "is referenced by" gives a reverse topological order.
        let mut order = vec![];
        let mut seen = std::collections::HashSet::new();
        fn visit(
            n: &str,
            graph: &HashMap<String, Vec<String>>,
            seen: &mut std::collections::HashSet<String>,
            order: &mut Vec<String>,
        ) {
            for (d, uses) in graph {
                if uses.iter().any(|u| u == n) && seen.insert(d.clone()) {
                    visit(d, graph, seen, order);
                    order.push(d.clone());
                }
            }
        }
        visit(name, &graph, &mut seen, &mut order);
        order.reverse();
        // A segment must come after every segment it references: sort the collected set topologically.
        let set: std::collections::HashSet<&String> = order.iter().collect();
        let mut done: Vec<String> = vec![];
        while done.len() < order.len() {
            let before = done.len();
            for d in &order {
                if done.contains(d) {
                    continue;
                }
                if graph[d].iter().all(|u| !set.contains(u) || done.contains(u)) {
                    done.push(d.clone());
                }
            }
            if done.len() == before {
                return Err(Error::Conflict { what: format!("segment `{name}`"), message: "reference cycle".into() });
            }
        }
        Ok(done)
    }

    /// Evaluates `name` and then every segment that depends on it, in dependency order.
    pub async fn evaluate_with_dependents(&self, name: &str) -> Result<Vec<SegmentRun>> {
        let mut runs = vec![self.evaluate(name).await?];
        for d in self.dependents(name)? {
            runs.push(self.evaluate(&d).await?);
        }
        Ok(runs)
    }

    /// The physical query plan `evaluate` would run for a segment, as indented text (for tuning and bug reports).
    pub async fn query_plan(&self, name: &str) -> Result<String> {
        let (_, entity, checked) = self.compiled(name)?;
        let key = entity.key.clone().expect("checked on define");
        let df = self.filtered(&entity, &checked).await?.select(vec![column(&key)])?;
        let plan = df.create_physical_plan().await?;
        let text = datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string();
        Ok(text)
    }

    /// Counts a segment's members now, without materialising or storing them.
    pub async fn count(&self, name: &str) -> Result<u64> {
        let (_, entity, checked) = self.compiled(name)?;
        Ok(self.filtered(&entity, &checked).await?.count().await? as u64)
    }

    /// Up to `n` current member rows with every attribute; `pii` attributes are masked as `"***"`.
    pub async fn preview(&self, name: &str, n: usize) -> Result<RecordBatch> {
        let (_, entity, checked) = self.compiled(name)?;
        let key = entity.key.clone().expect("checked on define");
        let df =
            self.filtered(&entity, &checked).await?.sort(vec![column(&key).sort(true, false)])?.limit(0, Some(n))?;
        let batch = concat_batches(&entity.schema(), &df.collect().await?)?;
        let mut fields = vec![];
        let mut cols = vec![];
        for (attr, col) in entity.attributes.iter().zip(batch.columns()) {
            if attr.pii {
                let masked: StringArray = (0..col.len()).map(|i| col.is_valid(i).then_some("***")).collect();
                fields.push(Field::new(&attr.name, ArrowType::Utf8, true));
                cols.push(Arc::new(masked) as ArrayRef);
            } else {
                fields.push(batch.schema().field_with_name(&attr.name)?.clone());
                cols.push(col.clone());
            }
        }
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?)
    }

    /// The stored members of a segment's latest run (or of run `run`), as a stream of key batches.
    pub async fn members(&self, name: &str, run: Option<i64>) -> Result<BatchStream> {
        self.segment(name)?;
        let runs = self.inner.catalog.runs(name)?;
        let r = match run {
            None => runs.last(),
            Some(n) => runs.iter().find(|r| r.run == n),
        }
        .ok_or_else(|| {
            Error::not_found("run", format!("{name}#{}", run.map(|r| r.to_string()).unwrap_or_else(|| "latest".into())))
        })?;
        self.inner.store.read(&r.membership_file).await
    }

    /// The run history of a segment, oldest first.
    pub fn runs(&self, name: &str) -> Result<Vec<RunRecord>> {
        self.segment(name)?;
        self.inner.catalog.runs(name)
    }
}

impl Resolver for Workspace {
    fn entities(&self) -> Vec<Entity> {
        self.inner.catalog.entities().unwrap_or_default()
    }
    fn segment(&self, name: &str) -> Option<(String, crate::rules::Rule)> {
        self.inner.catalog.segment(name).ok().flatten().map(|s| (s.entity, s.rule))
    }
    fn segment_names(&self) -> Vec<String> {
        self.inner.catalog.segments().unwrap_or_default().into_iter().map(|s| s.name).collect()
    }
    fn time_zone(&self) -> chrono_tz::Tz {
        Workspace::time_zone(self)
    }
}

/// What [`Workspace::vacuum`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct VacuumReport {
    /// Snapshots forgotten.
    pub snapshots_removed: u64,
    /// Data files deleted from the store.
    pub files_deleted: u64,
    /// Files no snapshot, ingest or run refers to (left by a crash) that were deleted.
    pub orphans_deleted: u64,
    /// The total size of all deleted files.
    pub bytes_freed: u64,
}

/// How old a file the catalog does not know must be before [`Workspace::vacuum`] deletes it: a write in another
/// process commits well within this.
pub const ORPHAN_GRACE: chrono::Duration = chrono::Duration::hours(1);

struct PlanSources<'a> {
    ws: &'a Workspace,
    stored: HashMap<String, Arc<dyn TableProvider>>,
    /// Materialised behavioural subqueries, by the address of their node in the checked rule being compiled.
    materialized: HashMap<usize, Arc<dyn TableProvider>>,
    /// The keys matching each sequence node, by the address of the node.
    sequences: HashMap<usize, Arc<dyn TableProvider>>,
}

impl<'a> PlanSources<'a> {
    fn new(ws: &'a Workspace, stored: HashMap<String, Arc<dyn TableProvider>>) -> Self {
        PlanSources { ws, stored, materialized: HashMap::new(), sequences: HashMap::new() }
    }
}

impl Workspace {
    /// Matches every sequence node of `checked` (also in inlined segment references, linked rules and
    /// behavioural filters; inner ones first) and keeps the matching keys in `sources`.
    async fn match_sequences(
        &self,
        checked: &Checked,
        now: DateTime<Utc>,
        sources: &mut PlanSources<'_>,
    ) -> Result<()> {
        fn collect<'a>(c: &'a Checked, out: &mut Vec<&'a CheckedSequence>) {
            c.walk(&mut |n| match n {
                Checked::InSegment(r) if !r.stored => collect(&r.rule, out),
                Checked::Linked(l) => collect(&l.rule, out),
                Checked::Behavior(b) => {
                    if let Some(f) = &b.filter {
                        collect(f, out)
                    }
                }
                Checked::Sequence(q) => {
                    for step in [Some(&q.first), Some(&q.then), q.without.as_ref()].into_iter().flatten() {
                        collect(step, out);
                    }
                    out.push(q);
                }
                _ => {}
            });
        }
        let mut found = vec![];
        collect(checked, &mut found);
        for q in found {
            let (keys, _) = self.match_sequence(q, now, sources, None).await?;
            let schema = Arc::new(Schema::new(vec![Field::new(&q.link, keys.data_type().clone(), false)]));
            let batch = RecordBatch::try_new(schema.clone(), vec![keys])?;
            sources.sequences.insert(q as *const _ as usize, Arc::new(MemTable::try_new(schema, vec![vec![batch]])?));
        }
        Ok(())
    }

    /// The keys (and earliest witnesses) of the entities matching sequence `q`, optionally of one entity only.
    async fn match_sequence(
        &self,
        q: &CheckedSequence,
        now: DateTime<Utc>,
        sources: &PlanSources<'_>,
        only: Option<Expr>,
    ) -> Result<(ArrayRef, Vec<crate::rules::Witness>)> {
        let plan = crate::rules::sequence_events(q, now, sources, only)?;
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let batches = DataFrame::new(self.inner.ctx.state(), plan).collect().await?;
        let within = q.within;
        // A CPU-bound pass (sorting the candidates): off the async workers.
        let threads = self.inner.ctx.state().config().target_partitions();
        match tokio::task::spawn_blocking(move || {
            crate::rules::matching_links(&schema, &batches, within.as_ref(), threads)
        })
        .await
        {
            Ok(found) => found,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(datafusion::error::DataFusionError::External(Box::new(e)).into()),
        }
    }
}

impl PlanSource for PlanSources<'_> {
    fn scan(&self, entity: &str) -> Result<LogicalPlanBuilder> {
        let provider = self.ws.inner.providers.read().unwrap_or_else(|p| p.into_inner()).get(entity).cloned();
        let provider = provider.ok_or_else(|| Error::not_found("entity", entity))?;
        Ok(LogicalPlanBuilder::scan(TableReference::bare(entity), provider_as_source(provider), None)?)
    }
    fn stored_members(&self, segment: &str) -> Result<LogicalPlanBuilder> {
        let provider =
            self.stored.get(segment).cloned().ok_or_else(|| Error::not_found("stored run of segment", segment))?;
        let name = format!("__members_{segment}");
        Ok(LogicalPlanBuilder::scan(TableReference::bare(name.as_str()), provider_as_source(provider), None)?)
    }
    fn materialized(&self, behavior: &crate::rules::CheckedBehavior) -> Option<LogicalPlanBuilder> {
        let provider = self.materialized.get(&(behavior as *const _ as usize))?.clone();
        let name = format!("__behavior_{}", behavior as *const _ as usize);
        LogicalPlanBuilder::scan(TableReference::bare(name.as_str()), provider_as_source(provider), None).ok()
    }
    fn sequence_matches(&self, sequence: &CheckedSequence) -> Option<LogicalPlanBuilder> {
        let provider = self.sequences.get(&(sequence as *const _ as usize))?.clone();
        let name = format!("__sequence_{}", sequence as *const _ as usize);
        LogicalPlanBuilder::scan(TableReference::bare(name.as_str()), provider_as_source(provider), None).ok()
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
