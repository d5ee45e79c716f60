//! Monitoring: system tables, metrics and tracing spans.
//!
//! **System tables.** Every workspace's SQL session has a schema `segkit` with tables read from the catalog when
//! a query scans them (never a stale copy):
//!
//! | table | one row per | columns |
//! | --- | --- | --- |
//! | `segkit.runs` | segment run | segment, run, started_at, duration_ms, member_count, entered, exited, snapshot |
//! | `segkit.syncs` | sync or ingest | id, entity, source, named_source, mode, rows_read, rows_written, rows_quarantined, snapshot, duration_ms, created_at |
//! | `segkit.deliveries` | ledger row | id, idempotency_key, workflow, trigger, step, entity, entity_key, status, attempts, due_at, last_error, receipt, created_at, updated_at, channel, detail |
//! | `segkit.schedules` | schedule | name, cron, timezone, job_type, job, next_due, last_due, last_run_at, last_duration_ms, last_error, runs, failures |
//! | `segkit.audit` | audit log row | id, at, actor, action, target, detail |
//!
//! Times are `Timestamp(ms, UTC)`. A scan reads at most [`MAX_SYSTEM_TABLE_ROWS`] rows (a `LIMIT` DataFusion can
//! push down reads fewer); `status = '…'` and `workflow = '…'` filters on `segkit.deliveries` are applied in the
//! catalog read.
//!
//! **Metrics** go through the [`metrics`] facade: they cost nothing until the application installs a recorder
//! (with the `prometheus` feature, `install_prometheus_recorder`). Names and labels:
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | [`ROWS_INGESTED`] | counter | entity |
//! | [`ROWS_QUARANTINED`] | counter | entity |
//! | [`SEGMENT_MEMBERS`] | gauge | segment |
//! | [`EVALUATION_SECONDS`] | histogram | segment |
//! | [`DELIVERIES`] | counter | status, channel |
//! | [`DELIVERY_SECONDS`] | histogram | channel |
//! | [`DEAD_LETTERS`] | counter | workflow, channel |
//! | [`QUEUE_DEPTH`] | gauge | status (`pending`, `running`, `dead`) |
//! | [`SCHEDULED_JOBS`] | counter | schedule, outcome (`ok`, `error`) |
//! | [`FILES_SYNCED`] | counter | kind (the store directory: `data`, `segments`, `quarantine`, …) |
//!
//! **Tracing**: spans `sync` (source), `evaluate` (segment), `delivery` (id, workflow, step) and `schedule` (name,
//! due) wrap the work; failures are logged at `warn`.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::limits::MAX_SYSTEM_TABLE_ROWS;
use crate::workflow::{DeliveryFilter, Status};

/// The schema of the system tables.
pub const SYSTEM_SCHEMA: &str = "segkit";

/// Counter: rows written by ingests and syncs.
pub const ROWS_INGESTED: &str = "segkit_rows_ingested_total";
/// Counter: rows quarantined by ingests and syncs.
pub const ROWS_QUARANTINED: &str = "segkit_rows_quarantined_total";
/// Gauge: members of a segment at its last evaluation.
pub const SEGMENT_MEMBERS: &str = "segkit_segment_members";
/// Histogram: seconds one evaluation took.
pub const EVALUATION_SECONDS: &str = "segkit_evaluation_seconds";
/// Counter: delivery attempts by resulting status (`delivered`, `pending` = retry, `dead`, `suppressed`, `done`).
pub const DELIVERIES: &str = "segkit_deliveries_total";
/// Histogram: seconds one delivery attempt took.
pub const DELIVERY_SECONDS: &str = "segkit_delivery_seconds";
/// Counter: deliveries dead-lettered.
pub const DEAD_LETTERS: &str = "segkit_dead_letters_total";
/// Gauge: ledger rows by status after a dispatch pass.
pub const QUEUE_DEPTH: &str = "segkit_delivery_queue_depth";
/// Counter: scheduled jobs run.
pub const SCHEDULED_JOBS: &str = "segkit_scheduled_jobs_total";
/// Counter: Parquet files synced to disk before a durable commit referenced them
/// ([`WorkspaceOptions::durable_commits`](crate::WorkspaceOptions::durable_commits)), by `kind`: the store's top
/// directory (`data`, `segments`, `quarantine`, …).
pub const FILES_SYNCED: &str = "segkit_store_files_synced_total";

/// Equality filters (`column = 'text'`) pushed into a system table's catalog read.
type Pushed = std::collections::BTreeMap<String, String>;

type Fetch = fn(&Catalog, &Pushed, usize) -> Result<Vec<ArrayRef>>;

/// A table over catalog rows, read at scan time.
#[derive(Debug)]
struct SystemTable {
    schema: SchemaRef,
    catalog: Arc<Catalog>,
    fetch: Fetch,
    /// Columns whose `= 'text'` filters the catalog read can apply (DataFusion still applies them too).
    pushable: &'static [&'static str],
}

impl SystemTable {
    /// `column = 'text'` (either way round) on a pushable column.
    fn equality(&self, e: &Expr) -> Option<(String, String)> {
        let Expr::BinaryExpr(b) = e else { return None };
        if b.op != Operator::Eq {
            return None;
        }
        let (col, value) = match (b.left.as_ref(), b.right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => (c, v),
            _ => return None,
        };
        let text = match value {
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)) => s,
            _ => return None,
        };
        self.pushable.contains(&col.name.as_str()).then(|| (col.name.clone(), text.clone()))
    }
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match self.equality(f) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let limit = limit.unwrap_or(MAX_SYSTEM_TABLE_ROWS).min(MAX_SYSTEM_TABLE_ROWS);
        let mut pushed = Pushed::new();
        for (col, value) in filters.iter().filter_map(|f| self.equality(f)) {
            pushed.entry(col).or_insert(value);
        }
        let columns = (self.fetch)(&self.catalog, &pushed, limit)?;
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        Ok(MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema.clone(), projection.cloned())?)
    }
}

fn ts(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), nullable)
}

fn text(v: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

fn int(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}

fn float(v: Vec<Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from(v))
}

fn time(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC"))
}

fn rfc3339_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
}

fn runs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("segment", DataType::Utf8, false),
        Field::new("run", DataType::Int64, false),
        ts("started_at", true),
        Field::new("duration_ms", DataType::Float64, false),
        Field::new("member_count", DataType::Int64, false),
        Field::new("entered", DataType::Int64, false),
        Field::new("exited", DataType::Int64, false),
        Field::new("snapshot", DataType::Int64, false),
    ]))
}

fn runs(c: &Catalog, _pushed: &Pushed, limit: usize) -> Result<Vec<ArrayRef>> {
    let rows = c.all_runs(limit)?;
    Ok(vec![
        text(rows.iter().map(|r| Some(r.segment.clone())).collect()),
        int(rows.iter().map(|r| Some(r.run)).collect()),
        time(rows.iter().map(|r| rfc3339_ms(&r.started_at)).collect()),
        float(rows.iter().map(|r| Some(r.duration_ms)).collect()),
        int(rows.iter().map(|r| Some(r.member_count as i64)).collect()),
        int(rows.iter().map(|r| Some(r.entered as i64)).collect()),
        int(rows.iter().map(|r| Some(r.exited as i64)).collect()),
        int(rows.iter().map(|r| Some(r.snapshot)).collect()),
    ])
}

fn syncs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("entity", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("named_source", DataType::Utf8, true),
        Field::new("mode", DataType::Utf8, true),
        Field::new("rows_read", DataType::Int64, true),
        Field::new("rows_written", DataType::Int64, true),
        Field::new("rows_quarantined", DataType::Int64, true),
        Field::new("snapshot", DataType::Int64, true),
        Field::new("duration_ms", DataType::Float64, true),
        ts("created_at", true),
    ]))
}

fn syncs(c: &Catalog, _pushed: &Pushed, limit: usize) -> Result<Vec<ArrayRef>> {
    let rows = c.all_ingests(limit)?;
    let reports: Vec<serde_json::Value> =
        rows.iter().map(|r| serde_json::from_str(&r.report).unwrap_or(serde_json::Value::Null)).collect();
    let field_i = |name: &str| int(reports.iter().map(|r| r[name].as_i64()).collect());
    Ok(vec![
        text(rows.iter().map(|r| Some(r.id.clone())).collect()),
        text(rows.iter().map(|r| Some(r.entity.clone())).collect()),
        text(rows.iter().map(|r| Some(r.source.clone())).collect()),
        text(reports.iter().map(|r| r["sync"].as_str().map(str::to_string)).collect()),
        text(reports.iter().map(|r| r["mode"].as_str().map(str::to_string)).collect()),
        field_i("rows_read"),
        field_i("rows_written"),
        field_i("rows_quarantined"),
        int(rows.iter().map(|r| r.snapshot).collect()),
        float(reports.iter().map(|r| r["duration_ms"].as_f64()).collect()),
        time(rows.iter().map(|r| rfc3339_ms(&r.created_at)).collect()),
    ])
}

fn deliveries_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("idempotency_key", DataType::Utf8, false),
        Field::new("workflow", DataType::Utf8, false),
        Field::new("trigger", DataType::Utf8, false),
        Field::new("step", DataType::Utf8, false),
        Field::new("entity", DataType::Utf8, false),
        Field::new("entity_key", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("attempts", DataType::Int64, false),
        ts("due_at", false),
        Field::new("last_error", DataType::Utf8, true),
        Field::new("receipt", DataType::Utf8, true),
        ts("created_at", false),
        ts("updated_at", false),
        Field::new("channel", DataType::Utf8, true),
        Field::new("detail", DataType::Utf8, true),
    ]))
}

fn deliveries(c: &Catalog, pushed: &Pushed, limit: usize) -> Result<Vec<ArrayRef>> {
    let status = match pushed.get("status").map(|s| Status::parse(s)) {
        Some(None) => return deliveries_of(&[]), // no row has an unknown status
        Some(s) => s,
        None => None,
    };
    let filter = DeliveryFilter { workflow: pushed.get("workflow").cloned(), status, ..Default::default() };
    deliveries_of(&c.deliveries(&filter, limit)?)
}

fn deliveries_of(rows: &[crate::workflow::LedgerRow]) -> Result<Vec<ArrayRef>> {
    let s = |f: fn(&crate::workflow::LedgerRow) -> &str| text(rows.iter().map(|r| Some(f(r).to_string())).collect());
    Ok(vec![
        int(rows.iter().map(|r| Some(r.id)).collect()),
        s(|r| &r.idempotency_key),
        s(|r| &r.workflow),
        s(|r| &r.trigger),
        s(|r| &r.step),
        s(|r| &r.entity),
        s(|r| &r.entity_key),
        s(|r| r.status.as_str()),
        int(rows.iter().map(|r| Some(i64::from(r.attempts))).collect()),
        time(rows.iter().map(|r| Some(r.due_at)).collect()),
        text(rows.iter().map(|r| r.last_error.clone()).collect()),
        text(rows.iter().map(|r| r.receipt.clone()).collect()),
        time(rows.iter().map(|r| Some(r.created_at)).collect()),
        time(rows.iter().map(|r| Some(r.updated_at)).collect()),
        text(rows.iter().map(|r| r.channel.clone()).collect()),
        text(rows.iter().map(|r| r.detail.clone()).collect()),
    ])
}

fn schedules_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("cron", DataType::Utf8, false),
        Field::new("timezone", DataType::Utf8, true),
        Field::new("job_type", DataType::Utf8, false),
        Field::new("job", DataType::Utf8, false),
        ts("next_due", true),
        ts("last_due", true),
        ts("last_run_at", true),
        Field::new("last_duration_ms", DataType::Float64, true),
        Field::new("last_error", DataType::Utf8, true),
        Field::new("runs", DataType::Int64, false),
        Field::new("failures", DataType::Int64, false),
        Field::new("failing", DataType::Boolean, false),
    ]))
}

fn schedules(c: &Catalog, _pushed: &Pushed, limit: usize) -> Result<Vec<ArrayRef>> {
    let mut rows = c.schedules()?;
    rows.truncate(limit);
    let job = |s: &crate::workflow::ScheduleInfo| serde_json::to_value(&s.spec.job).unwrap_or_default();
    let ms = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.timestamp_millis());
    Ok(vec![
        text(rows.iter().map(|r| Some(r.spec.name.clone())).collect()),
        text(rows.iter().map(|r| Some(r.spec.cron.clone())).collect()),
        text(rows.iter().map(|r| r.spec.timezone.clone()).collect()),
        text(rows.iter().map(|r| job(r)["type"].as_str().map(str::to_string)).collect()),
        text(rows.iter().map(|r| Some(job(r).to_string())).collect()),
        time(rows.iter().map(|r| ms(r.next_due)).collect()),
        time(rows.iter().map(|r| ms(r.last_due)).collect()),
        time(rows.iter().map(|r| ms(r.last_run_at)).collect()),
        float(rows.iter().map(|r| r.last_duration_ms).collect()),
        text(rows.iter().map(|r| r.last_error.clone()).collect()),
        int(rows.iter().map(|r| Some(r.runs as i64)).collect()),
        int(rows.iter().map(|r| Some(r.failures as i64)).collect()),
        Arc::new(BooleanArray::from(rows.iter().map(|r| r.last_error.is_some()).collect::<Vec<_>>())),
    ])
}

fn audit_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        ts("at", true),
        Field::new("actor", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("target", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, true),
    ]))
}

fn audit(c: &Catalog, _pushed: &Pushed, limit: usize) -> Result<Vec<ArrayRef>> {
    let rows = c.audit_log(limit, false)?;
    Ok(vec![
        int(rows.iter().map(|r| Some(r.id)).collect()),
        time(rows.iter().map(|r| rfc3339_ms(&r.at)).collect()),
        text(rows.iter().map(|r| Some(r.actor.clone())).collect()),
        text(rows.iter().map(|r| Some(r.action.clone())).collect()),
        text(rows.iter().map(|r| Some(r.target.clone())).collect()),
        text(rows.iter().map(|r| r.detail.clone()).collect()),
    ])
}

/// Registers the `segkit` schema and its tables in `ctx`'s default catalog.
pub(crate) fn register_system_tables(ctx: &SessionContext, catalog: Arc<Catalog>) -> Result<()> {
    let schema = Arc::new(MemorySchemaProvider::new());
    let tables: [(&str, SchemaRef, Fetch, &'static [&'static str]); 5] = [
        ("runs", runs_schema(), runs, &[]),
        ("syncs", syncs_schema(), syncs, &[]),
        ("deliveries", deliveries_schema(), deliveries, &["status", "workflow"]),
        ("schedules", schedules_schema(), schedules, &[]),
        ("audit", audit_schema(), audit, &[]),
    ];
    for (name, table_schema, fetch, pushable) in tables {
        let table = Arc::new(SystemTable { schema: table_schema, catalog: catalog.clone(), fetch, pushable });
        schema.register_table(name.to_string(), table)?;
    }
    let default = ctx.copied_config().options().catalog.default_catalog.clone();
    let cat = ctx
        .catalog(&default)
        .ok_or_else(|| Error::InvalidArgument(format!("the session has no catalog `{default}`")))?;
    cat.register_schema(SYSTEM_SCHEMA, schema)?;
    Ok(())
}

/// Installs a global metrics recorder that keeps every segkit metric in memory and renders them in the Prometheus
/// text format (`handle.render()`), for an application to serve on its own `/metrics` route. No HTTP server is
/// started. Fails if another recorder is installed already.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> segkit::Result<()> {
/// let handle = segkit::monitoring::install_prometheus_recorder()?;
/// let dir = tempfile::tempdir().unwrap();
/// let ws = segkit::Workspace::open(dir.path()).await?;
/// ws.dispatch_due(10, 1).await?; // sets the queue-depth gauges
/// let text = handle.render();
/// assert!(text.contains("segkit_delivery_queue_depth{status=\"pending\"} 0"), "{text}");
/// # Ok(()) }
/// ```
#[cfg(feature = "prometheus")]
pub fn install_prometheus_recorder() -> Result<metrics_exporter_prometheus::PrometheusHandle> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| Error::InvalidArgument(format!("cannot install the Prometheus recorder: {e}")))
}
