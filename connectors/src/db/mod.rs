//! Database connectors: PostgreSQL (feature `postgres`), MySQL / MariaDB (feature `mysql`) and SQLite (feature
//! `sqlite`), each a [`Source`] over a table or a query.
//!
//! Built from a JSON config tagged by `type` (see [`from_config`]):
//!
//! ```json
//! {"type": "postgres", "url": "postgres://app@127.0.0.1:5432/shop", "password": "env:PGPASS", "table": "users"}
//! {"type": "mysql", "url": "mysql://app@127.0.0.1:3306/shop", "password": "env:MYPASS",
//!  "query": "select id, email, updated_at from users where active",
//!  "cursor": {"column": "updated_at", "tie_breaker": "id"}, "batch_size": 5000}
//! {"type": "sqlite", "path": "shop.db", "table": "orders", "casts": {"amount": "string"}}
//! ```
//!
//! - **Full scans** stream the whole result (PostgreSQL: `COPY (…) TO STDOUT (FORMAT binary)`; MySQL: the
//!   binary-protocol row stream; SQLite: stepping the statement on a blocking thread) into batches of
//!   `batch_size` rows. A producer task sends batches through a channel of capacity one, so at most two batches
//!   are in memory whatever the table's size.
//! - **Incremental scans** (a `cursor` in the config) read in keyset pages, never with OFFSET:
//!   `… WHERE (c, id) > ($1, $2) ORDER BY c, id LIMIT batch_size`. [`Source::cursor`] reports the `(c, id)` of the
//!   last row yielded as `{"c": …, "id": …}`; passing it back in [`ScanRequest::cursor`] resumes after that row, so
//!   rows with equal cursor values across a batch boundary are neither lost nor doubled. Without a `tie_breaker`
//!   the cursor column alone must be unique. A NULL in a cursor column is an error (rows with NULL keys could
//!   never be reached by `>`): coalesce it in a query.
//! - **Types** map to Arrow: integers of every width (unsigned in MySQL), `numeric(p, s)` / `decimal(p, s)` to
//!   `Decimal128(p, s)` (p ≤ 38), floats, bool, text / varchar / char / enum, dates, time, timestamps (with time
//!   zone: UTC), json / jsonb and uuid as strings, arrays as lists (PostgreSQL), bytea / blob as binary. A column
//!   whose type does not map (unbounded `numeric`, `interval`, `money`, geometry, …) is an error naming the column
//!   and its database type, unless the config declares a cast for it: `"casts": {"col": "string" | "float64" |
//!   "int64"}`, done by the database (`CAST(col AS text)`).
//! - **Secrets**: `password` is a reference `env:NAME`, read when connecting. A password inside the URL is
//!   accepted and redacted (`***`) in [`Source::name`], `Debug` and every error.
//! - **TLS** is not built in (connections are plain TCP); use a loopback, a private network or an SSH / stunnel
//!   tunnel. `sslmode=require` in a PostgreSQL URL is refused rather than silently ignored.

// Shared helpers serve all three backends; with only some of the features on, parts go unused.
#![cfg_attr(
    not(all(feature = "postgres", feature = "mysql", feature = "sqlite")),
    allow(dead_code, unused_variables, unreachable_code)
)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::builder::NullBufferBuilder;
use arrow::array::ArrayBuilder;
use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder,
    Float64Builder, Int16Builder, Int32Builder, Int64Builder, Int8Builder, ListArray, RecordBatch, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder, UInt16Builder, UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use async_trait::async_trait;
use futures::StreamExt;
use segkit::{BatchStream, Error, Result, ScanRequest, Source, SourceCapabilities};
use serde::Deserialize;
use serde_json::Value;

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// Default rows per batch (and per keyset page).
pub const DEFAULT_BATCH_SIZE: usize = 8192;
/// Largest accepted `batch_size`.
pub const MAX_BATCH_SIZE: usize = 1_000_000;
/// Longest accepted `query` text, in bytes.
pub const MAX_QUERY_LEN: usize = 1 << 20;

/// Which database a [`DbSource`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DbKind {
    /// PostgreSQL (feature `postgres`).
    Postgres,
    /// MySQL or MariaDB (feature `mysql`).
    MySql,
    /// SQLite (feature `sqlite`).
    Sqlite,
}

impl DbKind {
    fn as_str(self) -> &'static str {
        match self {
            DbKind::Postgres => "postgres",
            DbKind::MySql => "mysql",
            DbKind::Sqlite => "sqlite",
        }
    }

    /// The `type` names that select this kind in a config.
    fn from_type(t: &str) -> Option<DbKind> {
        match t.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Some(DbKind::Postgres),
            "mysql" | "mariadb" => Some(DbKind::MySql),
            "sqlite" | "sqlite3" => Some(DbKind::Sqlite),
            _ => None,
        }
    }
}

/// A cast the database applies to a column before it is read (for types that do not map to Arrow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Cast {
    /// To text (`Utf8`).
    String,
    /// To a double (`Float64`).
    Float64,
    /// To a 64-bit integer (`Int64`).
    Int64,
}

impl Cast {
    fn data_type(self) -> DataType {
        match self {
            Cast::String => DataType::Utf8,
            Cast::Float64 => DataType::Float64,
            Cast::Int64 => DataType::Int64,
        }
    }
}

/// The cursor of an incremental source: a column that grows with each change, and a unique tie-breaker for
/// rows with equal values.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CursorConfig {
    /// The cursor column, e.g. `updated_at`.
    pub column: String,
    /// A unique column ordering rows with equal cursor values, e.g. `id`. Without it `column` must be unique.
    #[serde(default)]
    pub tie_breaker: Option<String>,
}

/// The config of a database source, as given in JSON (see the [module docs](self)).
#[derive(Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DbConfig {
    /// `postgres` / `postgresql`, `mysql` / `mariadb`, `sqlite` / `sqlite3`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Server URL (PostgreSQL, MySQL); a password inside it is redacted everywhere.
    #[serde(default)]
    pub url: Option<String>,
    /// Database file (SQLite).
    #[serde(default)]
    pub path: Option<String>,
    /// Password reference `env:NAME` (PostgreSQL, MySQL).
    #[serde(default)]
    pub password: Option<String>,
    /// A table (optionally `schema.table`) …
    #[serde(default)]
    pub table: Option<String>,
    /// … or a query (one `SELECT`), not both.
    #[serde(default)]
    pub query: Option<String>,
    /// Incremental reads by a cursor column.
    #[serde(default)]
    pub cursor: Option<CursorConfig>,
    /// Rows per batch and per keyset page (default 8192, at most 1 000 000).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Casts done by the database for columns whose type does not map.
    #[serde(default)]
    pub casts: BTreeMap<String, Cast>,
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("kind", &self.kind)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("path", &self.path)
            .field("password", &self.password.as_ref().map(|_| "env:…"))
            .field("table", &self.table)
            .field("query", &self.query)
            .field("cursor", &self.cursor)
            .field("batch_size", &self.batch_size)
            .field("casts", &self.casts)
            .finish()
    }
}

fn config_error(field: &str, message: impl Into<String>) -> Error {
    Error::Definition { path: format!("source.{field}"), message: message.into() }
}

/// `url` with its password (if any) replaced by `***`; a URL that does not parse is shown as its scheme only.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            // Query parameters may carry secrets too (`?password=`).
            if u.query().is_some() {
                u.set_query(Some("***"));
            }
            u.to_string()
        }
        Err(_) => match url.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://…"),
            None => "…".into(),
        },
    }
}

/// Builds a database source from a config tagged `postgres`, `mysql` / `mariadb` or `sqlite`; `Ok(None)` for
/// any other `type` (so the caller can try the other connector families).
pub fn from_config(config: &Value) -> Result<Option<Arc<dyn Source>>> {
    let Some(kind) = config.get("type").and_then(Value::as_str).and_then(DbKind::from_type) else {
        return Ok(None);
    };
    let cfg: DbConfig = serde_json::from_value(config.clone()).map_err(|e| {
        // serde's message names the offending key; it never contains values of other keys.
        config_error("", format!("invalid {} source config: {e}", kind.as_str()))
    })?;
    Ok(Some(Arc::new(DbSource::new(kind, cfg)?)))
}

/// What the source reads, in SQL.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Table(Vec<String>),
    Query(String),
}

/// SQL spelling of one database.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dialect {
    pub quote: char,
}

impl Dialect {
    pub(crate) fn ident(&self, name: &str) -> String {
        let q = self.quote;
        let escaped = name.replace(q, &format!("{q}{q}"));
        format!("{q}{escaped}{q}")
    }
}

/// Everything a backend needs to build its SQL; shared by all scans of a source.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub target: Target,
    pub keys: Vec<String>,
    pub casts: BTreeMap<String, Cast>,
    pub batch_size: usize,
}

/// One column of the described base result.
#[derive(Debug, Clone)]
pub(crate) struct RawColumn {
    pub name: String,
    /// How the database names its type (for messages).
    pub db_type: String,
    /// The Arrow type it maps to, or why it does not.
    pub mapped: std::result::Result<DataType, String>,
}

impl Plan {
    /// `SELECT * FROM table` or the query itself.
    pub(crate) fn base_sql(&self, d: Dialect) -> String {
        match &self.target {
            Target::Table(parts) => {
                format!("SELECT * FROM {}", parts.iter().map(|p| d.ident(p)).collect::<Vec<_>>().join("."))
            }
            Target::Query(q) => q.clone(),
        }
    }

    /// The SQL of one scan: the selected `columns` (casts applied), for incremental scans ordered by the keys,
    /// after the key values given by `after` (placeholder expressions, one per key) and limited to one page.
    pub(crate) fn scan_sql(
        &self,
        d: Dialect,
        columns: &[String],
        cast_sql: impl Fn(&str, Cast) -> String,
        after: Option<&[String]>,
    ) -> String {
        let select = columns
            .iter()
            .map(|c| {
                let col = format!("segkit_q.{}", d.ident(c));
                match self.casts.get(c) {
                    Some(cast) => format!("{} AS {}", cast_sql(&col, *cast), d.ident(c)),
                    None => col,
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut sql = format!("SELECT {select} FROM ({}) AS segkit_q", self.base_sql(d));
        if self.keys.is_empty() {
            return sql;
        }
        let keys: Vec<String> = self.keys.iter().map(|k| format!("segkit_q.{}", d.ident(k))).collect();
        if let Some(after) = after {
            if keys.len() == 1 {
                sql += &format!(" WHERE {} > {}", keys[0], after[0]);
            } else {
                sql += &format!(" WHERE ({}) > ({})", keys.join(", "), after.join(", "));
            }
        }
        sql += &format!(" ORDER BY {} LIMIT {}", keys.join(", "), self.batch_size);
        sql
    }
}

/// A scan as a backend runs it.
pub(crate) struct ScanJob {
    /// The final SQL (see [`Plan::scan_sql`]); `after` holds the key values of the previous page, if any.
    pub columns: Vec<String>,
    /// Arrow schema of the selected columns.
    pub schema: SchemaRef,
    /// Key values to resume after (JSON, one per key), for incremental scans.
    pub after: Option<Vec<Value>>,
}

/// One item a backend produces: a batch and, where the backend knows it better than the Arrow values (SQLite's
/// dynamic types), the raw key values of its last row.
pub(crate) type Produced = std::result::Result<(RecordBatch, Option<Vec<Value>>), String>;

/// The part of a connector that talks to one kind of database.
#[async_trait]
pub(crate) trait Backend: Send + Sync + fmt::Debug + 'static {
    /// The columns of the base result (`SELECT * FROM (base)`), without reading rows.
    async fn describe(&self, plan: &Plan) -> std::result::Result<Vec<RawColumn>, String>;
    /// Runs a scan, sending batches into `tx` until done, an error, or the receiver is dropped.
    async fn scan(&self, plan: Arc<Plan>, job: ScanJob, tx: tokio::sync::mpsc::Sender<Produced>);
}

#[derive(Debug, Default)]
struct State {
    schema: Option<SchemaRef>,
    cursor: Option<Value>,
}

/// A database table or query as a [`Source`]; build it with [`from_config`].
pub struct DbSource {
    kind: DbKind,
    name: String,
    plan: Arc<Plan>,
    backend: Arc<dyn Backend>,
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for DbSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbSource").field("name", &self.name).field("plan", &self.plan).finish_non_exhaustive()
    }
}

impl DbSource {
    /// Validates `cfg` and builds the source (no connection is made until [`Source::schema`] or a scan).
    pub fn new(kind: DbKind, cfg: DbConfig) -> Result<Self> {
        let target = match (cfg.table.as_deref(), cfg.query.as_deref()) {
            (Some(_), Some(_)) => return Err(config_error("query", "give either `table` or `query`, not both")),
            (None, None) => return Err(config_error("table", "missing `table` (or `query`)")),
            (Some(t), None) => {
                let parts: Vec<String> = t.split('.').map(str::to_string).collect();
                if t.len() > 1024 || parts.len() > 3 || parts.iter().any(|p| p.is_empty() || p.contains('\0')) {
                    return Err(config_error("table", format!("`table` must be `name` or `schema.name`, got {t:?}")));
                }
                Target::Table(parts)
            }
            (None, Some(q)) => {
                let q = q.trim().trim_end_matches(';').trim_end();
                if q.is_empty() {
                    return Err(config_error("query", "`query` is empty"));
                }
                if q.len() > MAX_QUERY_LEN || q.contains('\0') {
                    return Err(config_error("query", format!("`query` must be under {MAX_QUERY_LEN} bytes, no NUL")));
                }
                Target::Query(q.to_string())
            }
        };
        let batch_size = match cfg.batch_size {
            None => DEFAULT_BATCH_SIZE,
            Some(n) if (1..=MAX_BATCH_SIZE).contains(&n) => n,
            Some(n) => {
                return Err(config_error("batch_size", format!("`batch_size` must be 1 to {MAX_BATCH_SIZE}, got {n}")))
            }
        };
        let keys = match &cfg.cursor {
            None => vec![],
            Some(c) => {
                let mut keys = vec![c.column.clone()];
                if let Some(t) = &c.tie_breaker {
                    if t == &c.column {
                        return Err(config_error("cursor.tie_breaker", "`tie_breaker` must differ from `column`"));
                    }
                    keys.push(t.clone());
                }
                if let Some(k) = keys.iter().find(|k| cfg.casts.contains_key(*k)) {
                    return Err(config_error("casts", format!("cursor column `{k}` cannot have a cast")));
                }
                keys
            }
        };
        let password = match cfg.password.as_deref() {
            None => None,
            Some(p) => match p.strip_prefix("env:") {
                Some(var) if !var.is_empty() => Some(var.to_string()),
                _ => {
                    return Err(config_error(
                        "password",
                        "`password` must be a reference `env:NAME` (the variable holding it), not the password",
                    ))
                }
            },
        };
        let (backend, shown): (Arc<dyn Backend>, String) = match kind {
            DbKind::Postgres | DbKind::MySql => {
                if cfg.path.is_some() {
                    return Err(config_error(
                        "path",
                        format!("`path` applies to sqlite sources; give `url` for {}", kind.as_str()),
                    ));
                }
                let url = cfg.url.clone().ok_or_else(|| config_error("url", "missing `url`"))?;
                let shown = redact_url(&url);
                let conn = ConnInfo { url, password_env: password, shown: shown.clone() };
                let backend: Arc<dyn Backend> = match kind {
                    #[cfg(feature = "postgres")]
                    DbKind::Postgres => Arc::new(postgres::PgBackend::new(conn).map_err(|m| config_error("url", m))?),
                    #[cfg(feature = "mysql")]
                    DbKind::MySql => Arc::new(mysql::MyBackend::new(conn).map_err(|m| config_error("url", m))?),
                    other => {
                        let _ = conn;
                        return Err(config_error(
                            "type",
                            format!("segkit-connectors was built without the `{}` feature", other.as_str()),
                        ));
                    }
                };
                (backend, shown)
            }
            DbKind::Sqlite => {
                if cfg.url.is_some() || password.is_some() {
                    return Err(config_error("url", "sqlite sources take a `path`, not `url` / `password`"));
                }
                let path = cfg.path.clone().ok_or_else(|| config_error("path", "missing `path`"))?;
                #[cfg(feature = "sqlite")]
                {
                    (Arc::new(sqlite::SqliteBackend::new(path.clone())) as Arc<dyn Backend>, path)
                }
                #[cfg(not(feature = "sqlite"))]
                {
                    let _ = path;
                    return Err(config_error("type", "segkit-connectors was built without the `sqlite` feature"));
                }
            }
        };
        let what = match &target {
            Target::Table(p) => format!("table {}", p.join(".")),
            Target::Query(_) => "query".to_string(),
        };
        let name = format!("{}:{shown} ({what})", kind.as_str());
        let plan = Plan { target, keys, casts: cfg.casts.clone(), batch_size };
        Ok(DbSource { kind, name, plan: Arc::new(plan), backend, state: Arc::default() })
    }

    /// Which database this source reads.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    fn err(&self, message: impl Into<String>) -> Error {
        Error::Source { source_name: self.name.clone(), message: message.into(), cause: None }
    }

    async fn schema_inner(&self) -> Result<SchemaRef> {
        if let Some(s) = self.state.lock().expect("state lock").schema.clone() {
            return Ok(s);
        }
        let raw = self.backend.describe(&self.plan).await.map_err(|m| self.err(m))?;
        for name in self.plan.casts.keys() {
            if !raw.iter().any(|c| &c.name == name) {
                return Err(self.err(format!("`casts` names column `{name}`, which the result does not have")));
            }
        }
        let mut fields = vec![];
        for c in &raw {
            let dt = match self.plan.casts.get(&c.name) {
                Some(cast) => cast.data_type(),
                None => c.mapped.clone().map_err(|why| self.err(why))?,
            };
            if fields.iter().any(|f: &Field| f.name() == &c.name) {
                return Err(self.err(format!("the result has two columns named `{}`; alias one of them", c.name)));
            }
            fields.push(Field::new(&c.name, dt, true));
        }
        for k in &self.plan.keys {
            let Some(f) = fields.iter().find(|f| f.name() == k) else {
                return Err(self.err(format!("cursor column `{k}` is not in the result")));
            };
            if !is_key_type(f.data_type()) {
                let db = raw.iter().find(|c| &c.name == k).map(|c| c.db_type.clone()).unwrap_or_default();
                return Err(self.err(format!(
                    "cursor column `{k}` has type {db}; a cursor needs an integer, decimal, text, date or timestamp"
                )));
            }
        }
        let schema = Arc::new(Schema::new(fields));
        self.state.lock().expect("state lock").schema = Some(schema.clone());
        Ok(schema)
    }

    fn parse_cursor(&self, cursor: &Value) -> Result<Vec<Value>> {
        let bad = || {
            Error::InvalidArgument(format!(
                "cursor {} does not fit source `{}`: expected an object with {}",
                truncate(&cursor.to_string(), 200),
                self.name,
                self.plan.keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(" and ")
            ))
        };
        let Value::Object(m) = cursor else { return Err(bad()) };
        if m.len() != self.plan.keys.len() {
            return Err(bad());
        }
        self.plan
            .keys
            .iter()
            .map(|k| match m.get(k) {
                Some(v @ (Value::Number(_) | Value::String(_))) => Ok(v.clone()),
                _ => Err(bad()),
            })
            .collect()
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        return s.to_string();
    }
    let mut end = n;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn is_key_type(dt: &DataType) -> bool {
    dt.is_integer()
        || dt.is_floating()
        || matches!(dt, DataType::Utf8 | DataType::Date32 | DataType::Decimal128(..) | DataType::Timestamp(..))
}

#[async_trait]
impl Source for DbSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn schema(&self) -> Result<SchemaRef> {
        self.schema_inner().await
    }

    async fn scan(&self, request: &ScanRequest) -> Result<BatchStream> {
        let schema = self.schema_inner().await?;
        let after = match &request.cursor {
            None => None,
            Some(_) if self.plan.keys.is_empty() => {
                return Err(Error::InvalidArgument(format!(
                    "source `{}` has no `cursor` in its config; it cannot resume from a cursor",
                    self.name
                )))
            }
            Some(c) => Some(self.parse_cursor(c)?),
        };
        // Columns read: the projection (in its order) plus the keys it lacks; output: the projection.
        let wanted: Vec<String> = match &request.projection {
            None => schema.fields().iter().map(|f| f.name().clone()).collect(),
            Some(p) => {
                for c in p {
                    if schema.field_with_name(c).is_err() {
                        return Err(Error::InvalidArgument(format!(
                            "source `{}` has no field `{c}` (it has: {})",
                            self.name,
                            schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                        )));
                    }
                }
                p.clone()
            }
        };
        let mut columns = wanted.clone();
        for k in &self.plan.keys {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
        let read_schema = Arc::new(Schema::new(
            columns.iter().map(|c| schema.field_with_name(c).expect("checked").clone()).collect::<Vec<_>>(),
        ));
        let out_idx: Vec<usize> = (0..wanted.len()).collect();
        let key_idx: Vec<usize> =
            self.plan.keys.iter().map(|k| columns.iter().position(|c| c == k).expect("added")).collect();
        {
            let mut st = self.state.lock().expect("state lock");
            st.cursor = request.cursor.clone();
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Produced>(1);
        let job = ScanJob { columns, schema: read_schema, after };
        let backend = self.backend.clone();
        let plan = self.plan.clone();
        tokio::spawn(async move { backend.scan(plan, job, tx).await });
        let name = self.name.clone();
        let keys = self.plan.keys.clone();
        let state = self.state.clone();
        let stream = futures::stream::unfold((rx, false), move |(mut rx, done)| {
            let (name, keys, state, out_idx, key_idx) =
                (name.clone(), keys.clone(), state.clone(), out_idx.clone(), key_idx.clone());
            async move {
                if done {
                    return None;
                }
                let item = rx.recv().await?;
                let err = |m: String| Error::Source { source_name: name.clone(), message: m, cause: None };
                let result = item.map_err(err).and_then(|(batch, raw_keys)| {
                    if !keys.is_empty() && batch.num_rows() > 0 {
                        let last = batch.num_rows() - 1;
                        for (k, &i) in keys.iter().zip(&key_idx) {
                            if batch.column(i).null_count() > 0 {
                                return Err(err(format!(
                                    "cursor column `{k}` is NULL in a row; incremental reads need non-null cursor \
                                     values (coalesce it in a query)"
                                )));
                            }
                        }
                        let values = match raw_keys {
                            Some(v) => v,
                            None => key_idx.iter().map(|&i| json_at(batch.column(i), last)).collect::<Result<_>>()?,
                        };
                        let obj: serde_json::Map<String, Value> = keys.iter().cloned().zip(values).collect();
                        state.lock().expect("state lock").cursor = Some(Value::Object(obj));
                    }
                    Ok(batch.project(&out_idx)?)
                });
                let failed = result.is_err();
                Some((result, (rx, failed)))
            }
        });
        Ok(stream.boxed())
    }

    fn capabilities(&self) -> SourceCapabilities {
        let mut c = SourceCapabilities::default();
        c.projection = true;
        c.incremental = !self.plan.keys.is_empty();
        c
    }

    async fn cursor(&self) -> Result<Option<Value>> {
        Ok(self.state.lock().expect("state lock").cursor.clone())
    }
}

/// Connection details of a server-based backend.
#[derive(Clone)]
pub(crate) struct ConnInfo {
    pub url: String,
    pub password_env: Option<String>,
    /// The redacted URL, for messages.
    pub shown: String,
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl ConnInfo {
    /// The password from the environment, if configured.
    pub(crate) fn password(&self) -> std::result::Result<Option<String>, String> {
        match &self.password_env {
            None => Ok(None),
            Some(var) => std::env::var(var)
                .map(Some)
                .map_err(|_| format!("environment variable `{var}` (from `password: env:{var}`) is not set")),
        }
    }

    /// `message` with every secret of this connection (URL password, env password) replaced by `***`.
    pub(crate) fn redact(&self, message: impl Into<String>) -> String {
        let mut m: String = message.into();
        let mut secrets = vec![];
        if let Ok(u) = url::Url::parse(&self.url) {
            if let Some(p) = u.password() {
                secrets.push(p.to_string());
                if let Ok(d) = urlencoding_decode(p) {
                    secrets.push(d);
                }
            }
        }
        if let Ok(Some(p)) = self.password() {
            secrets.push(p);
        }
        m = m.replace(&self.url, &self.shown);
        for s in secrets.into_iter().filter(|s| !s.is_empty()) {
            m = m.replace(&s, "***");
        }
        m
    }
}

fn urlencoding_decode(s: &str) -> std::result::Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let h = std::str::from_utf8(&bytes[i + 1..i + 3]).map_err(|_| ())?;
            out.push(u8::from_str_radix(h, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// The JSON cursor value of row `i` of a key column.
fn json_at(a: &ArrayRef, i: usize) -> Result<Value> {
    use arrow::datatypes::*;
    let v = match a.data_type() {
        DataType::Int8 => Value::from(a.as_primitive::<Int8Type>().value(i)),
        DataType::Int16 => Value::from(a.as_primitive::<Int16Type>().value(i)),
        DataType::Int32 => Value::from(a.as_primitive::<Int32Type>().value(i)),
        DataType::Int64 => Value::from(a.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => Value::from(a.as_primitive::<UInt8Type>().value(i)),
        DataType::UInt16 => Value::from(a.as_primitive::<UInt16Type>().value(i)),
        DataType::UInt32 => Value::from(a.as_primitive::<UInt32Type>().value(i)),
        DataType::UInt64 => Value::from(a.as_primitive::<UInt64Type>().value(i)),
        DataType::Float32 => Value::from(a.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => Value::from(a.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => Value::from(a.as_string::<i32>().value(i)),
        DataType::Date32 => {
            let d = a.as_primitive::<Date32Type>().value(i);
            Value::from(date_text(d))
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            let us = a.as_primitive::<TimestampMicrosecondType>().value(i);
            Value::from(timestamp_text(us, tz.is_some()))
        }
        DataType::Decimal128(_, _) => Value::from(a.as_primitive::<Decimal128Type>().value_as_string(i)),
        other => return Err(Error::InvalidArgument(format!("a cursor column of type {other} is not supported"))),
    };
    Ok(v)
}

pub(crate) fn date_text(days: i32) -> String {
    chrono::DateTime::from_timestamp(days as i64 * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| days.to_string())
}

/// ISO 8601 with microseconds; `Z` for time-zone-aware (UTC) values.
pub(crate) fn timestamp_text(us: i64, utc: bool) -> String {
    match chrono::DateTime::from_timestamp_micros(us) {
        Some(t) if utc => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        Some(t) => t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
        None => us.to_string(),
    }
}

/// A value as a backend decodes it, before it goes into an Arrow column.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Val<'a> {
    Bool(bool),
    Int(i64),
    UInt(u64),
    F32(f32),
    F64(f64),
    /// An unscaled integer and its scale (`12345, 2` = 123.45).
    Dec(i128, i32),
    Str(&'a str),
    Bytes(&'a [u8]),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since 1970-01-01 00:00 (UTC for time-zone-aware columns).
    Ts(i64),
}

impl Val<'_> {
    fn describe(&self) -> String {
        match self {
            Val::Bool(b) => b.to_string(),
            Val::Int(v) => v.to_string(),
            Val::UInt(v) => v.to_string(),
            Val::F32(v) => v.to_string(),
            Val::F64(v) => v.to_string(),
            Val::Dec(v, s) => format!("{v}e-{s}"),
            Val::Str(s) => format!("{:?}", truncate(s, 40)),
            Val::Bytes(b) => format!("{} bytes", b.len()),
            Val::Date(d) => date_text(*d),
            Val::Time(t) => format!("{t} µs"),
            Val::Ts(t) => timestamp_text(*t, false),
        }
    }
}

/// An Arrow column being built.
pub(crate) enum Col {
    Bool(BooleanBuilder),
    I8(Int8Builder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Dec(Decimal128Builder, u8, i8),
    Str(StringBuilder),
    Bin(BinaryBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Ts(TimestampMicrosecondBuilder, Option<Arc<str>>),
    List { field: FieldRef, values: Box<Col>, offsets: Vec<i32>, nulls: NullBufferBuilder },
}

fn int_range<T: TryFrom<i128>>(v: i128, ty: &str) -> std::result::Result<T, String> {
    T::try_from(v).map_err(|_| format!("value {v} is out of range for {ty}"))
}

impl Col {
    /// A builder for `dt` (one of the types the connectors produce).
    pub(crate) fn new(dt: &DataType) -> std::result::Result<Col, String> {
        Ok(match dt {
            DataType::Boolean => Col::Bool(BooleanBuilder::new()),
            DataType::Int8 => Col::I8(Int8Builder::new()),
            DataType::Int16 => Col::I16(Int16Builder::new()),
            DataType::Int32 => Col::I32(Int32Builder::new()),
            DataType::Int64 => Col::I64(Int64Builder::new()),
            DataType::UInt8 => Col::U8(UInt8Builder::new()),
            DataType::UInt16 => Col::U16(UInt16Builder::new()),
            DataType::UInt32 => Col::U32(UInt32Builder::new()),
            DataType::UInt64 => Col::U64(UInt64Builder::new()),
            DataType::Float32 => Col::F32(Float32Builder::new()),
            DataType::Float64 => Col::F64(Float64Builder::new()),
            DataType::Decimal128(p, s) => {
                Col::Dec(Decimal128Builder::new().with_precision_and_scale(*p, *s).map_err(|e| e.to_string())?, *p, *s)
            }
            DataType::Utf8 => Col::Str(StringBuilder::new()),
            DataType::Binary => Col::Bin(BinaryBuilder::new()),
            DataType::Date32 => Col::Date(Date32Builder::new()),
            DataType::Time64(TimeUnit::Microsecond) => Col::Time(Time64MicrosecondBuilder::new()),
            DataType::Timestamp(TimeUnit::Microsecond, tz) => Col::Ts(TimestampMicrosecondBuilder::new(), tz.clone()),
            DataType::List(field) => Col::List {
                field: field.clone(),
                values: Box::new(Col::new(field.data_type())?),
                offsets: vec![0],
                nulls: NullBufferBuilder::new(0),
            },
            other => return Err(format!("no column builder for {other}")),
        })
    }

    /// Appends a NULL.
    pub(crate) fn null(&mut self) {
        match self {
            Col::Bool(b) => b.append_null(),
            Col::I8(b) => b.append_null(),
            Col::I16(b) => b.append_null(),
            Col::I32(b) => b.append_null(),
            Col::I64(b) => b.append_null(),
            Col::U8(b) => b.append_null(),
            Col::U16(b) => b.append_null(),
            Col::U32(b) => b.append_null(),
            Col::U64(b) => b.append_null(),
            Col::F32(b) => b.append_null(),
            Col::F64(b) => b.append_null(),
            Col::Dec(b, ..) => b.append_null(),
            Col::Str(b) => b.append_null(),
            Col::Bin(b) => b.append_null(),
            Col::Date(b) => b.append_null(),
            Col::Time(b) => b.append_null(),
            Col::Ts(b, _) => b.append_null(),
            Col::List { offsets, nulls, .. } => {
                offsets.push(*offsets.last().expect("starts with 0"));
                nulls.append_null();
            }
        }
    }

    /// Ends one list value whose elements were pushed into [`Col::list_values`].
    pub(crate) fn list_end(&mut self) -> std::result::Result<(), String> {
        match self {
            Col::List { values, offsets, nulls, .. } => {
                let n = i32::try_from(values.len()).map_err(|_| "a list column exceeds 2^31 elements in one batch")?;
                offsets.push(n);
                nulls.append_non_null();
                Ok(())
            }
            _ => Err("not a list column".into()),
        }
    }

    /// The element builder of a list column.
    pub(crate) fn list_values(&mut self) -> Option<&mut Col> {
        match self {
            Col::List { values, .. } => Some(values),
            _ => None,
        }
    }

    fn len(&self) -> usize {
        match self {
            Col::Bool(b) => b.len(),
            Col::I8(b) => b.len(),
            Col::I16(b) => b.len(),
            Col::I32(b) => b.len(),
            Col::I64(b) => b.len(),
            Col::U8(b) => b.len(),
            Col::U16(b) => b.len(),
            Col::U32(b) => b.len(),
            Col::U64(b) => b.len(),
            Col::F32(b) => b.len(),
            Col::F64(b) => b.len(),
            Col::Dec(b, ..) => b.len(),
            Col::Str(b) => b.len(),
            Col::Bin(b) => b.len(),
            Col::Date(b) => b.len(),
            Col::Time(b) => b.len(),
            Col::Ts(b, _) => b.len(),
            Col::List { offsets, .. } => offsets.len() - 1,
        }
    }

    /// Appends a value, converting it to the column's type exactly or failing with the reason.
    pub(crate) fn push(&mut self, v: Val<'_>) -> std::result::Result<(), String> {
        let mismatch = |what: &str| format!("value {} does not convert to {what}", v.describe());
        match (self, v) {
            (Col::Bool(b), Val::Bool(x)) => b.append_value(x),
            (Col::Bool(b), Val::Int(x)) if x == 0 || x == 1 => b.append_value(x == 1),
            (Col::Bool(b), Val::UInt(x)) if x == 0 || x == 1 => b.append_value(x == 1),
            (Col::I8(b), Val::Int(x)) => b.append_value(int_range(x as i128, "Int8")?),
            (Col::I16(b), Val::Int(x)) => b.append_value(int_range(x as i128, "Int16")?),
            (Col::I32(b), Val::Int(x)) => b.append_value(int_range(x as i128, "Int32")?),
            (Col::I64(b), Val::Int(x)) => b.append_value(x),
            (Col::I64(b), Val::UInt(x)) => b.append_value(int_range(x as i128, "Int64")?),
            (Col::U8(b), Val::Int(x)) => b.append_value(int_range(x as i128, "UInt8")?),
            (Col::U16(b), Val::Int(x)) => b.append_value(int_range(x as i128, "UInt16")?),
            (Col::U32(b), Val::Int(x)) => b.append_value(int_range(x as i128, "UInt32")?),
            (Col::U64(b), Val::Int(x)) => b.append_value(int_range(x as i128, "UInt64")?),
            (Col::U8(b), Val::UInt(x)) => b.append_value(int_range(x as i128, "UInt8")?),
            (Col::U16(b), Val::UInt(x)) => b.append_value(int_range(x as i128, "UInt16")?),
            (Col::U32(b), Val::UInt(x)) => b.append_value(int_range(x as i128, "UInt32")?),
            (Col::U64(b), Val::UInt(x)) => b.append_value(x),
            (Col::F32(b), Val::F32(x)) => b.append_value(x),
            (Col::F64(b), Val::F64(x)) => b.append_value(x),
            (Col::F64(b), Val::F32(x)) => b.append_value(x as f64),
            (Col::F64(b), Val::Int(x)) if x.unsigned_abs() <= 1 << 53 => b.append_value(x as f64),
            (Col::Dec(b, p, s), Val::Dec(x, xs)) => {
                let (p, s) = (*p, *s as i32);
                let scaled = if xs <= s {
                    10i128.checked_pow((s - xs) as u32).and_then(|m| x.checked_mul(m))
                } else {
                    let m = 10i128.checked_pow((xs - s) as u32);
                    m.filter(|m| x % m == 0).map(|m| x / m)
                };
                let limit = 10i128.pow(p as u32);
                match scaled {
                    Some(v) if v.abs() < limit => b.append_value(v),
                    _ => return Err(format!("value {} does not fit decimal({p}, {s})", dec_text(x, xs))),
                }
            }
            (Col::Dec(b, p, s), Val::Int(x)) => {
                let (p, s) = (*p, *s);
                match 10i128.checked_pow(s as u32).and_then(|m| (x as i128).checked_mul(m)) {
                    Some(v) if v.abs() < 10i128.pow(p as u32) => b.append_value(v),
                    _ => return Err(format!("value {x} does not fit decimal({p}, {s})")),
                }
            }
            (Col::Str(b), Val::Str(x)) => b.append_value(x),
            (Col::Str(b), Val::Bytes(x)) => {
                b.append_value(std::str::from_utf8(x).map_err(|_| "text is not valid UTF-8".to_string())?)
            }
            (Col::Str(b), Val::Int(x)) => b.append_value(x.to_string()),
            (Col::Str(b), Val::F64(x)) => b.append_value(x.to_string()),
            (Col::Bin(b), Val::Bytes(x)) => b.append_value(x),
            (Col::Bin(b), Val::Str(x)) => b.append_value(x.as_bytes()),
            (Col::Date(b), Val::Date(x)) => b.append_value(x),
            (Col::Time(b), Val::Time(x)) => b.append_value(x),
            (Col::Ts(b, _), Val::Ts(x)) => b.append_value(x),
            (c, _) => return Err(mismatch(&c.type_name())),
        }
        Ok(())
    }

    fn type_name(&self) -> String {
        match self {
            Col::Bool(_) => "Boolean".into(),
            Col::I8(_) => "Int8".into(),
            Col::I16(_) => "Int16".into(),
            Col::I32(_) => "Int32".into(),
            Col::I64(_) => "Int64".into(),
            Col::U8(_) => "UInt8".into(),
            Col::U16(_) => "UInt16".into(),
            Col::U32(_) => "UInt32".into(),
            Col::U64(_) => "UInt64".into(),
            Col::F32(_) => "Float32".into(),
            Col::F64(_) => "Float64".into(),
            Col::Dec(_, p, s) => format!("Decimal128({p}, {s})"),
            Col::Str(_) => "Utf8".into(),
            Col::Bin(_) => "Binary".into(),
            Col::Date(_) => "Date32".into(),
            Col::Time(_) => "Time64(µs)".into(),
            Col::Ts(..) => "Timestamp(µs)".into(),
            Col::List { .. } => "List".into(),
        }
    }

    /// The built array; the builder is left empty for the next batch.
    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Bool(b) => Arc::new(b.finish()),
            Col::I8(b) => Arc::new(b.finish()),
            Col::I16(b) => Arc::new(b.finish()),
            Col::I32(b) => Arc::new(b.finish()),
            Col::I64(b) => Arc::new(b.finish()),
            Col::U8(b) => Arc::new(b.finish()),
            Col::U16(b) => Arc::new(b.finish()),
            Col::U32(b) => Arc::new(b.finish()),
            Col::U64(b) => Arc::new(b.finish()),
            Col::F32(b) => Arc::new(b.finish()),
            Col::F64(b) => Arc::new(b.finish()),
            Col::Dec(b, p, s) => Arc::new(b.finish().with_precision_and_scale(*p, *s).expect("checked at build")),
            Col::Str(b) => Arc::new(b.finish()),
            Col::Bin(b) => Arc::new(b.finish()),
            Col::Date(b) => Arc::new(b.finish()),
            Col::Time(b) => Arc::new(b.finish()),
            Col::Ts(b, tz) => Arc::new(b.finish().with_timezone_opt(tz.clone())),
            Col::List { field, values, offsets, nulls } => {
                let child = values.finish();
                let offs = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let nb = nulls.finish();
                Arc::new(ListArray::new(field.clone(), offs, child, nb))
            }
        }
    }
}

fn dec_text(x: i128, scale: i32) -> String {
    if scale <= 0 {
        return format!("{x}{}", "0".repeat((-scale) as usize));
    }
    let s = x.unsigned_abs().to_string();
    let s = format!("{s:0>width$}", width = scale as usize + 1);
    let (i, f) = s.split_at(s.len() - scale as usize);
    format!("{}{i}.{f}", if x < 0 { "-" } else { "" })
}

/// Parses a decimal in text (`-123.4500`, `1e3`) into an unscaled integer and its scale.
pub(crate) fn parse_decimal(s: &str) -> std::result::Result<(i128, i32), String> {
    let bad = || format!("{:?} is not a decimal number", truncate(s, 40));
    let t = s.trim();
    let (mant, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (t, 0),
    };
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant.strip_prefix('+').unwrap_or(mant)),
    };
    let (ip, fp) = mant.split_once('.').unwrap_or((mant, ""));
    if ip.is_empty() && fp.is_empty() || !ip.bytes().chain(fp.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let digits = format!("{ip}{fp}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 38 {
        return Err(format!("{:?} has more than 38 significant digits", truncate(s, 40)));
    }
    let v: i128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| bad())? };
    let scale = fp.len() as i32 - exp;
    Ok((if neg { -v } else { v }, scale))
}

/// Accumulates rows into batches of one schema.
pub(crate) struct Batcher {
    schema: SchemaRef,
    pub cols: Vec<Col>,
}

impl Batcher {
    pub(crate) fn new(schema: SchemaRef) -> std::result::Result<Self, String> {
        let cols = schema.fields().iter().map(|f| Col::new(f.data_type())).collect::<std::result::Result<_, _>>()?;
        Ok(Batcher { schema, cols })
    }

    /// Rows so far in the current batch.
    pub(crate) fn rows(&self) -> usize {
        self.cols.first().map(Col::len).unwrap_or(0)
    }

    /// The current batch; the builders start over.
    pub(crate) fn take(&mut self) -> std::result::Result<RecordBatch, String> {
        let rows = self.rows();
        let cols: Vec<ArrayRef> = self.cols.iter_mut().map(Col::finish).collect();
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            cols,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| e.to_string())
    }

    /// The error for a value of column `i` that failed to convert.
    pub(crate) fn column_error(&self, i: usize, db_type: &str, why: &str) -> String {
        format!("column `{}` ({db_type}): {why}", self.schema.field(i).name())
    }
}

/// Standard hint appended to "does not map" messages.
pub(crate) fn cast_hint(column: &str) -> String {
    format!("declare a cast in the config, e.g. \"casts\": {{\"{column}\": \"string\"}} (or \"float64\" / \"int64\")")
}

/// The JSON Schema of this config for `types` (see [`segkit::spec::config_schema`]).
pub(crate) fn config_schema_variant(types: &[&str]) -> serde_json::Value {
    segkit::spec::config_schema::variant::<DbConfig>(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("-123.4500").unwrap(), (-1234500, 4));
        assert_eq!(parse_decimal("1e3").unwrap(), (1, -3));
        assert_eq!(parse_decimal("0.00").unwrap(), (0, 2));
        assert!(parse_decimal("12a").unwrap_err().contains("not a decimal"));
        assert!(parse_decimal("").is_err());
        assert_eq!(dec_text(-1234500, 4), "-123.4500");
        assert_eq!(dec_text(5, 3), "0.005");
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("postgres://u:s3cret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("mysql://u@h/db?password=x"), "mysql://u@h/db?***");
        assert!(!redact_url("not a url s3cret").contains("s3cret"));
        let c = ConnInfo {
            url: "postgres://u:p%40ss@h/db".into(),
            password_env: None,
            shown: redact_url("postgres://u:p%40ss@h/db"),
        };
        assert_eq!(c.redact("failed for p@ss and p%40ss"), "failed for *** and ***");
    }

    #[test]
    fn decimal_columns_rescale_exactly_or_refuse() {
        let mut c = Col::new(&DataType::Decimal128(5, 2)).unwrap();
        c.push(Val::Dec(12345, 3)).unwrap_err();
        c.push(Val::Dec(1234, 1)).unwrap();
        let e = c.push(Val::Dec(123456, 2)).unwrap_err();
        assert!(e.contains("does not fit decimal(5, 2)"), "{e}");
        let a = c.finish();
        assert_eq!(a.as_primitive::<arrow::datatypes::Decimal128Type>().value(0), 12340);
    }
}
