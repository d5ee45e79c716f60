//! Node.js binding of segkit (`segkit.node`), loaded by the npm package's `index.js`.
//!
//! Thin conversions only: JS values ⇄ segkit types, Arrow IPC buffers for bulk data, plain objects for small
//! results. Every segkit error goes through [`to_napi`], which encodes `{kind, causes}` as JSON in the napi error
//! reason behind [`ERROR_PREFIX`]; `index.js` rebuilds the matching `SegkitError` subclass from it.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType as ArrowType, Int32Type, Int64Type, SchemaRef};
use napi::bindgen_prelude::{BigInt, Buffer, Either3};
use napi_derive::napi;

// The #[napi] functions are only referenced by napi's registration, which test builds leave out.
#[cfg_attr(test, allow(dead_code))]
mod action;
// The #[napi] methods are only referenced by napi's registration, which test builds leave out.
#[cfg_attr(test, allow(dead_code))]
mod admin;
mod source;
// The #[napi] functions are only referenced by napi's registration, which test builds leave out.
#[cfg_attr(test, allow(dead_code))]
mod sources;
use serde_json::Value;
mod static_keys;
// The #[napi] methods are only referenced by napi's registration, which test builds leave out.
#[cfg_attr(test, allow(dead_code))]
mod project;
mod workflows;

use segkit::spec::{EntitySpec, IngestSpec, SegmentSpec};
use segkit::{Entity, Error as CoreError, IngestOptions, SegmentDefinition};

/// Marks a napi error reason that carries a JSON-encoded segkit error.
const ERROR_PREFIX: &str = "__segkit_error__:";

// ---------------------------------------------------------------------------------------------- errors

/// The one conversion point from segkit errors to JS: `{kind, causes}` as JSON behind [`ERROR_PREFIX`].
fn to_napi(e: CoreError) -> napi::Error {
    let payload = serde_json::json!({ "kind": e.kind().as_str(), "causes": e.chain() });
    napi::Error::new(napi::Status::GenericFailure, format!("{ERROR_PREFIX}{payload}"))
}

type Result<T> = std::result::Result<T, napi::Error>;

trait OrJs<T> {
    fn js(self) -> Result<T>;
}

impl<T, E: Into<CoreError>> OrJs<T> for std::result::Result<T, E> {
    fn js(self) -> Result<T> {
        self.map_err(|e| to_napi(e.into()))
    }
}

fn invalid(msg: impl Into<String>) -> napi::Error {
    to_napi(CoreError::InvalidArgument(msg.into()))
}

// ---------------------------------------------------------------------------------------------- JSON shapes

fn snake_to_camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut up = false;
    for c in s.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Renames the keys of a (serde) object to camelCase, and those of objects in arrays under it, one level deep.
fn camel_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::Array(a) => Value::Array(
                            a.into_iter()
                                .map(|x| match x {
                                    Value::Object(o) => {
                                        Value::Object(o.into_iter().map(|(k, v)| (snake_to_camel(&k), v)).collect())
                                    }
                                    other => other,
                                })
                                .collect(),
                        ),
                        other => other,
                    };
                    (snake_to_camel(&k), v)
                })
                .collect(),
        ),
        other => other,
    }
}

/// segkit `Entity` → JS plain object (attributes as an array in storage order, every flag explicit; index.js
/// keys it by name).
fn entity_to_js(e: &Entity) -> Value {
    segkit::spec::entity::explicit_json(e)
}

/// A segment as the JSON text of a plain object (text, not a napi value: napi converts at most 1,000,000 JSON
/// values, and a rule may hold 10,000,000 list values); index.js parses it.
fn segment_to_js(s: &SegmentDefinition) -> Result<String> {
    let mut v = serde_json::to_value(s).js()?;
    if let Value::Object(m) = &mut v {
        m.entry("description").or_insert(Value::Null);
        m.entry("split").or_insert(Value::Null);
    }
    Ok(v.to_string())
}

// ---------------------------------------------------------------------------------------------- Arrow

fn to_ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Buffer> {
    Ok(segkit::encode::to_ipc_stream(schema, batches).js()?.into())
}

pub(crate) fn from_ipc(bytes: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    segkit::encode::from_ipc(bytes).js()
}

/// The options of one ingest (`segkit::spec::IngestSpec`, as JSON text from index.js).
pub(crate) fn ingest_options(options_json: Option<String>) -> Result<IngestOptions> {
    match options_json {
        None => Ok(IngestOptions::default()),
        Some(t) => segkit::spec::from_json_text::<IngestSpec>(&t).and_then(IngestSpec::into_options).js(),
    }
}

/// A segment spec (`segkit::spec::SegmentSpec`, as JSON text from index.js) → its definition.
fn segment_definition(spec_json: &str) -> Result<SegmentDefinition> {
    segkit::spec::from_json_text::<SegmentSpec>(spec_json).and_then(SegmentSpec::into_definition).js()
}

/// Runs the body of a synchronous native call so that a Rust panic becomes an `InternalError` in JS (a panic
/// unwinding out of a napi callback would abort the process). Async calls are covered by napi itself, which
/// rejects with "Panic in async function"; index.js maps both.
fn guard<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        let message = format!("internal error (a Rust panic inside segkit; please report it): {what}");
        let payload = serde_json::json!({ "kind": "internal", "causes": [message] });
        Err(napi::Error::new(napi::Status::GenericFailure, format!("{ERROR_PREFIX}{payload}")))
    })
}

/// Plain JS objects, as the JSON text of an array, → a source (non-objects become quarantined rows). Rows nest
/// at most `MAX_RULE_DEPTH` levels, as from Python.
fn records_source(json: &str) -> Result<Arc<dyn segkit::Source>> {
    let rows: Value = serde_json::from_str(json).map_err(|e| {
        if e.to_string().starts_with("recursion limit exceeded") {
            to_napi(segkit::limits::value_depth_error("ingested rows"))
        } else {
            invalid(format!("records are not a JSON array: {e}"))
        }
    })?;
    segkit::limits::check_value_depth(&rows, "ingested rows").js()?;
    let Value::Array(rows) = rows else { return Err(invalid("records are not a JSON array")) };
    if rows.is_empty() {
        return Err(invalid("no records to ingest"));
    }
    Ok(Arc::new(segkit_connectors::JsonRecordsSource::new("records", rows)))
}

/// JS value of one key: a number, a BigInt beyond ±2^53, or a string.
type JsKey = Either3<f64, BigInt, String>;

const MAX_SAFE: i64 = (1 << 53) - 1;

fn keys_to_js(b: &RecordBatch) -> Vec<JsKey> {
    if b.num_columns() == 0 {
        return vec![];
    }
    let col = b.column(0);
    match col.data_type() {
        ArrowType::Int64 => {
            col.as_primitive::<Int64Type>()
                .values()
                .iter()
                .map(|&v| {
                    if (-MAX_SAFE..=MAX_SAFE).contains(&v) {
                        Either3::A(v as f64)
                    } else {
                        Either3::B(BigInt::from(v))
                    }
                })
                .collect()
        }
        ArrowType::Int32 => col.as_primitive::<Int32Type>().values().iter().map(|&v| Either3::A(v as f64)).collect(),
        ArrowType::Utf8 => {
            col.as_string::<i32>().iter().map(|v| Either3::C(v.unwrap_or_default().to_string())).collect()
        }
        ArrowType::LargeUtf8 => {
            col.as_string::<i64>().iter().map(|v| Either3::C(v.unwrap_or_default().to_string())).collect()
        }
        ArrowType::Utf8View => {
            col.as_string_view().iter().map(|v| Either3::C(v.unwrap_or_default().to_string())).collect()
        }
        _ => {
            let s = arrow::compute::cast(col, &ArrowType::Utf8).ok();
            match s {
                Some(s) => s.as_string::<i32>().iter().map(|v| Either3::C(v.unwrap_or_default().to_string())).collect(),
                None => vec![],
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------- Workspace

/// Awaits a core future; kept as one place to adapt core futures to napi's `Send + 'static` bound.
async fn on_runtime<T, F, Fut>(f: F) -> segkit::Result<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = segkit::Result<T>> + Send,
    T: Send + 'static,
{
    f().await
}

fn ingest_on_runtime(
    ws: &segkit::Workspace,
    entity: &str,
    source: Arc<dyn segkit::Source>,
    opts: IngestOptions,
    control: segkit::IngestControl,
) -> impl std::future::Future<Output = segkit::Result<segkit::IngestReport>> + Send + 'static {
    let ws = ws.clone();
    let entity = entity.to_string();
    on_runtime(move || async move { ws.ingest_with(&entity, source.as_ref(), opts, &control).await })
}

/// The result of `Workspace.dryRun`.
#[napi(object)]
pub struct DryRunResult {
    /// Members the edited definition selects now.
    pub count: f64,
    /// The run compared with (null: never evaluated).
    pub against_run: Option<i64>,
    /// Keys that would enter.
    pub would_enter: Vec<JsKey>,
    /// Keys that would exit.
    pub would_exit: Vec<JsKey>,
    /// The members as an Arrow IPC stream.
    pub members_ipc: Buffer,
}

/// The result of `Workspace.membersPage`.
#[napi(object)]
pub struct MembersPageResult {
    /// The run read (pass it back to keep paging the same run).
    pub run: i64,
    /// The page's member keys as an Arrow IPC stream, in stored order.
    pub members_ipc: Buffer,
    /// Whether rows follow this page.
    pub more: bool,
}

/// Native workspace handle; wrapped by `Workspace` in index.js.
#[napi]
pub struct NativeWorkspace {
    inner: segkit::Workspace,
}

impl NativeWorkspace {
    /// A stored membership as Arrow IPC, typed even when it has no rows.
    async fn members_buffer(&self, name: &str, stream: segkit::BatchStream) -> Result<Buffer> {
        let schema = self.inner.members_schema(name).js()?;
        let batches: Vec<RecordBatch> = futures::TryStreamExt::try_collect(stream).await.js()?;
        to_ipc(&schema, &batches)
    }
}

/// Opens (or creates) a workspace. `options`: `{storeUrl, storeOptions, targetPartitions}`.
/// `segkit::limits::MAX_RULE_DEPTH`: the deepest nesting (objects and arrays) a rule may have.
#[napi]
pub fn max_rule_depth() -> u32 {
    segkit::limits::MAX_RULE_DEPTH as u32
}

/// The bounds core enforces on rules (`segkit::limits`), camelCased: `{maxRuleDepth, maxRuleNodes, …}`.
#[napi]
pub fn rule_limits() -> Value {
    use segkit::limits::*;
    serde_json::json!({
        "maxRuleDepth": MAX_RULE_DEPTH,
        "maxRuleNodes": MAX_RULE_NODES,
        "maxExplainConditions": MAX_EXPLAIN_CONDITIONS,
        "maxRuleListValues": MAX_RULE_LIST_VALUES,
        "maxRuleStringBytes": MAX_RULE_STRING_BYTES,
        "maxRegexPatternBytes": MAX_REGEX_PATTERN_BYTES,
        "maxRegexProgramBytes": MAX_REGEX_PROGRAM_BYTES,
    })
}

/// Test hook: panics inside an async native call, to check that it reaches JS as an error (not an abort or a hang).
#[napi(js_name = "__panicInTask")]
pub async fn panic_in_task(message: String) -> Result<()> {
    panic!("{message}")
}

/// Test hook: panics inside a synchronous native call, to check that it reaches JS as an `InternalError` (not an
/// abort).
#[napi(js_name = "__panicSync")]
pub fn panic_sync(message: String) -> Result<()> {
    guard(|| panic!("{message}"))
}

/// A workspace option that must be a positive whole number (JS numbers beyond 32 bits arrive as floats).
fn positive(option: &str, n: &serde_json::Number) -> Result<usize> {
    let whole = n
        .as_u64()
        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 1.0 && *f <= u64::MAX as f64).map(|f| f as u64));
    whole
        .filter(|n| *n > 0)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| invalid(format!("{option} must be a positive whole number, got {n}")))
}

#[napi]
pub async fn open_workspace(path: String, options: Option<Value>) -> Result<NativeWorkspace> {
    let mut opts = segkit::WorkspaceOptions::default();
    if let Some(Value::Object(m)) = options {
        for (k, v) in m {
            match (k.as_str(), v) {
                (_, Value::Null) => {}
                ("storeUrl", Value::String(s)) => opts = opts.store_url(s),
                ("storeOptions", Value::Object(o)) => {
                    for (k, v) in o {
                        let v = match v {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        opts.store_options.push((k, v));
                    }
                }
                ("durableCommits", Value::Bool(b)) => opts = opts.durable_commits(b),
                ("targetPartitions", Value::Number(n)) => opts = opts.target_partitions(positive(&k, &n)?),
                ("deliveryWindow", Value::Number(n)) => opts = opts.delivery_window(positive(&k, &n)?),
                ("leaseMs", Value::Number(n)) => {
                    opts = opts.lease(std::time::Duration::from_millis(positive(&k, &n)? as u64))
                }
                ("ingestMemory", Value::Number(n)) => opts = opts.ingest_memory(positive(&k, &n)?),
                (other, _) => {
                    return Err(invalid(format!(
                        "unknown or mistyped workspace option `{other}` (expected storeUrl: string, storeOptions: object, targetPartitions: number, durableCommits: boolean, deliveryWindow: number, leaseMs: number, ingestMemory: number)"
                    )))
                }
            }
        }
    }
    opts.source_factory = Some(sources::factory());
    opts.action_factory = Some(action::factory());
    let inner = segkit::Workspace::open_with(path, opts).await.js()?;
    Ok(NativeWorkspace { inner })
}

#[napi]
impl NativeWorkspace {
    /// The workspace directory.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.inner.path().to_string_lossy().into_owned()
    }

    /// Whether commits wait until they are on disk (`WorkspaceOptions::durable_commits`).
    #[napi(getter)]
    pub fn durable_commits(&self) -> bool {
        self.inner.durable_commits()
    }

    /// How many claimed deliveries a dispatch with `concurrency` send slots processes at once
    /// (`Workspace::delivery_window`).
    #[napi]
    pub fn delivery_window(&self, concurrency: u32) -> u32 {
        self.inner.delivery_window(concurrency as usize) as u32
    }

    /// Sets the IANA time zone calendar windows count in.
    #[napi]
    pub fn set_time_zone(&self, name: String) -> Result<()> {
        guard(|| self.inner.set_time_zone(&name).js())
    }

    /// Fixes "now" at an RFC 3339 instant, or goes back to the system clock with `null`.
    #[napi]
    pub fn set_clock(&self, instant: Option<String>) -> Result<()> {
        guard(|| {
            match instant {
                Some(s) => self.inner.set_clock(Arc::new(segkit::FixedClock::parse(&s).js()?)),
                None => self.inner.set_clock(Arc::new(segkit::SystemClock)),
            }
            Ok(())
        })
    }

    /// The current instant of the workspace clock (RFC 3339).
    #[napi]
    pub fn now(&self) -> String {
        self.inner.now().to_rfc3339()
    }

    /// Defines (or evolves) an entity from its spec (`segkit::spec::EntitySpec`) as JSON text, which keeps the
    /// attribute order.
    #[napi]
    pub async fn define_entity(&self, spec_json: String) -> Result<Value> {
        let e = segkit::spec::from_json_text::<EntitySpec>(&spec_json).and_then(EntitySpec::into_entity).js()?;
        let e = self.inner.define_entity(e).await.js()?;
        Ok(entity_to_js(&e))
    }

    #[napi]
    pub fn entity(&self, name: String) -> Result<Value> {
        guard(|| Ok(entity_to_js(&self.inner.entity(&name).js()?)))
    }

    #[napi]
    pub fn entities(&self) -> Result<Vec<Value>> {
        guard(|| Ok(self.inner.entities().js()?.iter().map(entity_to_js).collect()))
    }

    /// Ingests from a path or URL (format from the extension).
    #[napi]
    pub async fn ingest_location(
        &self,
        entity: String,
        location: String,
        options_json: Option<String>,
        on_progress: Option<sources::ProgressFn>,
        cancel: Option<u32>,
    ) -> Result<Value> {
        let opts = ingest_options(options_json)?;
        let control = sources::control(on_progress, cancel)?;
        let source = segkit_connectors::open(&location).js()?;
        let report = ingest_on_runtime(&self.inner, &entity, source, opts, control).await.js()?;
        Ok(camel_keys(serde_json::to_value(report).js()?))
    }

    /// Ingests from a source written in JavaScript (index.js passes its three adapter functions).
    #[napi]
    #[allow(clippy::too_many_arguments)] // positional arguments of the JS adapter
    pub async fn ingest_js_source(
        &self,
        entity: String,
        name: String,
        schema_fn: source::SchemaFn,
        open_fn: source::OpenFn,
        next_fn: source::NextFn,
        options_json: Option<String>,
        on_progress: Option<sources::ProgressFn>,
        cancel: Option<u32>,
    ) -> Result<Value> {
        let opts = ingest_options(options_json)?;
        let control = sources::control(on_progress, cancel)?;
        let source: Arc<dyn segkit::Source> = Arc::new(source::JsSource::new(name, schema_fn, open_fn, next_fn));
        let report = ingest_on_runtime(&self.inner, &entity, source, opts, control).await.js()?;
        Ok(camel_keys(serde_json::to_value(report).js()?))
    }

    /// Ingests from a connector config `{type, ...}`.
    #[napi]
    pub async fn ingest_config(
        &self,
        entity: String,
        config: Value,
        options_json: Option<String>,
        on_progress: Option<sources::ProgressFn>,
        cancel: Option<u32>,
    ) -> Result<Value> {
        let opts = ingest_options(options_json)?;
        let control = sources::control(on_progress, cancel)?;
        let source = segkit_connectors::from_config(&config).js()?;
        let report = ingest_on_runtime(&self.inner, &entity, source, opts, control).await.js()?;
        Ok(camel_keys(serde_json::to_value(report).js()?))
    }

    /// Ingests an Arrow IPC stream or file.
    #[napi]
    pub async fn ingest_ipc(
        &self,
        entity: String,
        data: Buffer,
        options_json: Option<String>,
        on_progress: Option<sources::ProgressFn>,
        cancel: Option<u32>,
    ) -> Result<Value> {
        let opts = ingest_options(options_json)?;
        let control = sources::control(on_progress, cancel)?;
        let (schema, mut batches) = from_ipc(&data)?;
        if batches.is_empty() {
            batches.push(RecordBatch::new_empty(schema));
        }
        let source: Arc<dyn segkit::Source> = Arc::new(segkit::RecordBatchSource::new("arrow", batches).js()?);
        let report = ingest_on_runtime(&self.inner, &entity, source, opts, control).await.js()?;
        Ok(camel_keys(serde_json::to_value(report).js()?))
    }

    /// Ingests plain objects, given as the JSON text of an array.
    #[napi]
    pub async fn ingest_records(
        &self,
        entity: String,
        records_json: String,
        options_json: Option<String>,
        on_progress: Option<sources::ProgressFn>,
        cancel: Option<u32>,
    ) -> Result<Value> {
        let opts = ingest_options(options_json)?;
        let control = sources::control(on_progress, cancel)?;
        let source = records_source(&records_json)?;
        let report = ingest_on_runtime(&self.inner, &entity, source, opts, control).await.js()?;
        Ok(camel_keys(serde_json::to_value(report).js()?))
    }

    /// Past ingest reports of an entity, oldest first.
    #[napi]
    pub fn ingest_history(&self, entity: String) -> Result<Vec<Value>> {
        guard(|| {
            self.inner
                .ingest_history(&entity)
                .js()?
                .into_iter()
                .map(|r| Ok(camel_keys(serde_json::to_value(r).js()?)))
                .collect()
        })
    }

    /// Quarantined rows as an Arrow IPC stream.
    #[napi]
    pub async fn quarantine(&self, entity: String) -> Result<Buffer> {
        let b = self.inner.quarantine(&entity).await.js()?;
        to_ipc(&b.schema(), &[b])
    }

    /// Forgets an entity's quarantined rows; returns how many.
    #[napi]
    pub async fn clear_quarantine(&self, entity: String) -> Result<f64> {
        Ok(self.inner.clear_quarantine(&entity).await.js()? as f64)
    }

    /// Deletes data files only snapshots older than each entity's latest `keep_snapshots` use.
    #[napi]
    pub async fn vacuum(&self, keep_snapshots: u32) -> Result<Value> {
        let report = self.inner.vacuum(keep_snapshots as usize).await.js()?;
        Ok(camel_keys(serde_json::to_value(report).js()?))
    }

    /// Defines a segment from its spec (`segkit::spec::SegmentSpec`) as JSON text.
    #[napi]
    pub async fn define_segment(&self, spec_json: String) -> Result<String> {
        let def = segment_definition(&spec_json)?;
        let def = self.inner.define_segment(def).await.js()?;
        segment_to_js(&def)
    }

    #[napi]
    pub fn segment(&self, name: String) -> Result<String> {
        guard(|| segment_to_js(&self.inner.segment(&name).js()?))
    }

    #[napi]
    pub fn segments(&self) -> Result<String> {
        guard(|| {
            let all = self.inner.segments().js()?.iter().map(segment_to_js).collect::<Result<Vec<_>>>()?;
            Ok(format!("[{}]", all.join(",")))
        })
    }

    #[napi]
    pub async fn delete_segment(&self, name: String) -> Result<()> {
        self.inner.delete_segment(&name).await.js()
    }

    #[napi]
    pub async fn evaluate(&self, name: String) -> Result<NativeSegmentRun> {
        let ws = self.inner.clone();
        let run = on_runtime(move || async move { ws.evaluate(&name).await }).await.js()?;
        Ok(NativeSegmentRun { run })
    }

    #[napi]
    pub async fn count(&self, name: String) -> Result<f64> {
        Ok(self.inner.count(&name).await.js()? as f64)
    }

    /// Up to `n` member rows (pii masked) as an Arrow IPC stream.
    #[napi]
    pub async fn preview(&self, name: String, n: u32) -> Result<Buffer> {
        let b = self.inner.preview(&name, n as usize).await.js()?;
        to_ipc(&b.schema(), &[b])
    }

    /// Up to `n` member rows (pii masked) as plain objects.
    #[napi]
    pub async fn preview_rows(&self, name: String, n: u32) -> Result<String> {
        let b = self.inner.preview(&name, n as usize).await.js()?;
        segkit::encode::to_json_rows(std::slice::from_ref(&b)).js()
    }

    /// Stored member keys of the latest run (or run `run`) as an Arrow IPC stream.
    #[napi]
    pub async fn members(&self, name: String, run: Option<i64>) -> Result<Buffer> {
        let stream = self.inner.members(&name, run).await.js()?;
        self.members_buffer(&name, stream).await
    }

    /// Up to `limit` stored member keys of the latest run (or run `run`) from position `offset`.
    #[napi]
    pub async fn members_page(
        &self,
        name: String,
        run: Option<i64>,
        offset: i64,
        limit: i64,
    ) -> Result<MembersPageResult> {
        let (offset, limit) = match (usize::try_from(offset), usize::try_from(limit)) {
            (Ok(o), Ok(l)) => (o, l),
            _ => return Err(segkit::Error::InvalidArgument("offset and limit must not be negative".into())).js(),
        };
        let p = self.inner.members_page(&name, run, offset, limit).await.js()?;
        Ok(MembersPageResult { run: p.run, members_ipc: to_ipc(&p.schema, &p.batches)?, more: p.more })
    }

    /// Evaluates an edited (or new) segment without saving anything.
    #[napi]
    pub async fn dry_run(&self, spec_json: String) -> Result<DryRunResult> {
        let def = segment_definition(&spec_json)?;
        let d = self.inner.dry_run(def).await.js()?;
        Ok(DryRunResult {
            count: d.count as f64,
            against_run: d.against_run,
            would_enter: keys_to_js(&d.would_enter),
            would_exit: keys_to_js(&d.would_exit),
            members_ipc: to_ipc(&d.members.schema(), std::slice::from_ref(&d.members))?,
        })
    }

    /// Stored members of the latest run that started at or before `instant` (RFC 3339), as Arrow IPC.
    #[napi]
    pub async fn members_as_of(&self, name: String, instant: String) -> Result<Buffer> {
        let at = segkit::FixedClock::parse(&instant).js()?.0;
        let stream = self.inner.members_as_of(&name, at).await.js()?;
        self.members_buffer(&name, stream).await
    }

    /// Why entity `key` is or is not a member: `{segment, key, member, root, text}`.
    #[napi]
    pub async fn explain(&self, name: String, key: String) -> Result<Value> {
        let e = self.inner.explain(&name, &key).await.js()?;
        let mut v = serde_json::to_value(&e).js()?;
        if let Value::Object(m) = &mut v {
            m.insert("text".into(), Value::String(e.to_string()));
        }
        Ok(v)
    }

    /// The per-run log of entered / exited keys, as Arrow IPC.
    #[napi]
    pub async fn changes(&self, name: String) -> Result<Buffer> {
        let b = self.inner.changes(&name).await.js()?;
        to_ipc(&b.schema(), std::slice::from_ref(&b))
    }

    /// The run history of a segment, oldest first.
    #[napi]
    pub fn runs(&self, name: String) -> Result<Vec<Value>> {
        guard(|| {
            self.inner.runs(&name).js()?.into_iter().map(|r| Ok(camel_keys(serde_json::to_value(r).js()?))).collect()
        })
    }

    /// Runs SQL over the entity tables; the result as an Arrow IPC stream (typed even when empty).
    #[napi]
    pub async fn sql(&self, query: String) -> Result<Buffer> {
        let df = self.inner.session().sql(&query).await.js()?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.js()?;
        to_ipc(&schema, &batches)
    }
}

// ---------------------------------------------------------------------------------------------- SegmentRun

/// Native result of one evaluation; wrapped by `SegmentRun` in index.js.
#[napi]
pub struct NativeSegmentRun {
    run: segkit::SegmentRun,
}

#[napi]
impl NativeSegmentRun {
    #[napi(getter)]
    pub fn segment(&self) -> String {
        self.run.segment.clone()
    }
    #[napi(getter)]
    pub fn run(&self) -> i64 {
        self.run.run
    }
    #[napi(getter)]
    pub fn count(&self) -> f64 {
        self.run.count as f64
    }
    #[napi(getter)]
    pub fn duration_ms(&self) -> f64 {
        self.run.duration.as_secs_f64() * 1000.0
    }
    #[napi(getter)]
    pub fn snapshot(&self) -> i64 {
        self.run.snapshot
    }
    #[napi(getter)]
    pub fn started_at(&self) -> String {
        self.run.started_at.to_rfc3339()
    }
    #[napi(getter)]
    pub fn entered(&self) -> Vec<JsKey> {
        keys_to_js(&self.run.entered)
    }
    #[napi(getter)]
    pub fn exited(&self) -> Vec<JsKey> {
        keys_to_js(&self.run.exited)
    }
    #[napi]
    pub fn member_keys(&self) -> Vec<JsKey> {
        keys_to_js(&self.run.members)
    }
    #[napi]
    pub fn members_ipc(&self) -> Result<Buffer> {
        guard(|| to_ipc(&self.run.members.schema(), std::slice::from_ref(&self.run.members)))
    }
    #[napi]
    pub fn entered_ipc(&self) -> Result<Buffer> {
        guard(|| to_ipc(&self.run.entered.schema(), std::slice::from_ref(&self.run.entered)))
    }
    #[napi]
    pub fn exited_ipc(&self) -> Result<Buffer> {
        guard(|| to_ipc(&self.run.exited.schema(), std::slice::from_ref(&self.run.exited)))
    }
}

/// The version of the native module.
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel() {
        assert_eq!(snake_to_camel("rows_quarantined"), "rowsQuarantined");
        assert_eq!(snake_to_camel("id"), "id");
    }
}

/// Proposes an entity from a sample of a path/URL (`location`) or a source config (`config`); see
/// `segkit_connectors::infer_entity`. The result is `{entity, mapping, fields, sampledRows, notes}`.
#[napi]
pub async fn infer_entity(
    location: Option<String>,
    config: Option<Value>,
    name: String,
    key: Option<String>,
    sample_rows: Option<u32>,
) -> Result<Value> {
    let source = match (location, config) {
        (Some(l), None) => segkit_connectors::open(&l).js()?,
        (None, Some(c)) => segkit_connectors::from_config(&c).js()?,
        _ => return Err(invalid("inferEntity needs a path/URL string or a source config object")),
    };
    let mut options = segkit_connectors::InferOptions::default().sample_rows(sample_rows.unwrap_or(10_000) as usize);
    options.key = key;
    let p = segkit_connectors::infer_entity(source.as_ref(), &name, &options).await.js()?;
    let mut v = p.to_json();
    if let Some(n) = v.as_object_mut().and_then(|o| o.remove("sampled_rows")) {
        v["sampledRows"] = n;
    }
    Ok(v)
}

/// Runs segkit's `Source` conformance checks on a source written in JavaScript.
#[napi]
pub async fn check_js_source(
    name: String,
    schema_fn: source::SchemaFn,
    open_fn: source::OpenFn,
    next_fn: source::NextFn,
) -> Result<()> {
    let source = source::JsSource::new(name, schema_fn, open_fn, next_fn);
    segkit::testing::source_conformance(&source).await.js()
}
