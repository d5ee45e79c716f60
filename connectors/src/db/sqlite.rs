//! SQLite backend (rusqlite): the file is opened read-only on a blocking thread and the statement stepped row by
//! row. SQLite is dynamically typed, so columns are typed by their declared type (`INTEGER`, `REAL`, `TEXT`,
//! `BLOB`, `BOOLEAN`, `DATE`, `DATETIME` / `TIMESTAMP` as text, `DECIMAL(p, s)`, `JSON`); an expression column of
//! a query has none and needs a cast. A value whose storage class does not fit its column's type is an error
//! naming the column.

use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};
use async_trait::async_trait;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use tokio::sync::mpsc::Sender;

use super::{cast_hint, Backend, Batcher, Cast, Col, Dialect, Plan, Produced, RawColumn, ScanJob, Val};

const DIALECT: Dialect = Dialect { quote: '"' };

/// The SQLite side of a [`super::DbSource`].
#[derive(Debug)]
pub(crate) struct SqliteBackend {
    path: String,
}

impl SqliteBackend {
    pub(crate) fn new(path: String) -> Self {
        SqliteBackend { path }
    }
}

fn open(path: &str) -> Result<Connection, String> {
    if !std::path::Path::new(path).is_file() {
        return Err(format!("database file {path} does not exist"));
    }
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| format!("cannot open {path}: {e}"))?;
    c.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| e.to_string())?;
    Ok(c)
}

/// The Arrow type of a column with declared type `decl`, or why there is none.
fn arrow_type(name: &str, decl: Option<&str>) -> Result<DataType, String> {
    let Some(decl) = decl else {
        return Err(format!("column `{name}` has no declared type (an expression in the query); {}", cast_hint(name)));
    };
    let u = decl.to_ascii_uppercase();
    let base = u.split('(').next().unwrap_or("").trim();
    Ok(match base {
        "BOOL" | "BOOLEAN" => DataType::Boolean,
        "DATE" => DataType::Date32,
        "DATETIME" | "TIMESTAMP" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "TIME" => DataType::Time64(TimeUnit::Microsecond),
        "JSON" | "JSONB" | "UUID" => DataType::Utf8,
        "DECIMAL" | "NUMERIC" => {
            let args: Vec<u32> = u
                .split_once('(')
                .and_then(|(_, r)| r.strip_suffix(')'))
                .map(|r| r.split(',').filter_map(|x| x.trim().parse().ok()).collect())
                .unwrap_or_default();
            match args[..] {
                [p, s] if (1..=38).contains(&p) && s <= p => DataType::Decimal128(p as u8, s as i8),
                [p] if (1..=38).contains(&p) => DataType::Decimal128(p as u8, 0),
                _ => {
                    return Err(format!(
                        "column `{name}` has type {decl} without a precision ≤ 38, which does not map to a fixed \
                         Arrow decimal; {}",
                        cast_hint(name)
                    ))
                }
            }
        }
        // SQLite's affinity rules (https://sqlite.org/datatype3.html#determination_of_column_affinity).
        _ if u.contains("INT") => DataType::Int64,
        _ if u.contains("CHAR") || u.contains("CLOB") || u.contains("TEXT") => DataType::Utf8,
        _ if u.contains("BLOB") => DataType::Binary,
        _ if u.contains("REAL") || u.contains("FLOA") || u.contains("DOUB") => DataType::Float64,
        _ => return Err(format!("column `{name}` has type {decl}, which does not map; {}", cast_hint(name))),
    })
}

fn parse_ts(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp_micros());
    }
    let t = t.strip_suffix('Z').unwrap_or(t);
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"] {
        if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(t, f) {
            return Ok(dt.and_utc().timestamp_micros());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_micros());
    }
    Err(format!("text {:?} is not a timestamp (YYYY-MM-DD HH:MM:SS[.fff])", super::truncate(s, 40)))
}

fn push(col: &mut Col, v: ValueRef<'_>) -> Result<(), String> {
    let text = |b: &[u8]| std::str::from_utf8(b).map(str::to_string).map_err(|_| "text is not valid UTF-8".to_string());
    let val = match (v, &*col) {
        (ValueRef::Null, _) => {
            col.null();
            return Ok(());
        }
        (ValueRef::Integer(i), Col::Ts(..)) => Val::Ts(i.checked_mul(1_000_000).ok_or("unix time out of range")?),
        (ValueRef::Integer(i), _) => Val::Int(i),
        (ValueRef::Real(f), Col::Dec(..)) => {
            let (v, s) = super::parse_decimal(&f.to_string())?;
            Val::Dec(v, s)
        }
        (ValueRef::Real(f), _) => Val::F64(f),
        (ValueRef::Text(b), Col::Date(_)) => {
            let s = text(b)?;
            let d = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .map_err(|_| format!("text {:?} is not a date (YYYY-MM-DD)", super::truncate(&s, 40)))?;
            Val::Date((d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days() as i32)
        }
        (ValueRef::Text(b), Col::Ts(..)) => Val::Ts(parse_ts(&text(b)?)?),
        (ValueRef::Text(b), Col::Time(_)) => {
            let s = text(b)?;
            let t = chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M:%S%.f")
                .map_err(|_| format!("text {:?} is not a time (HH:MM:SS)", super::truncate(&s, 40)))?;
            Val::Time((t - chrono::NaiveTime::MIN).num_microseconds().ok_or("time out of range")?)
        }
        (ValueRef::Text(b), Col::Dec(..)) => {
            let (v, s) = super::parse_decimal(&text(b)?)?;
            Val::Dec(v, s)
        }
        (ValueRef::Text(b), Col::Str(_) | Col::Bin(_)) => Val::Bytes(b),
        (ValueRef::Text(b), _) => {
            return Err(format!(
                "text {:?} does not convert to {}",
                super::truncate(&text(b)?, 40),
                "the column's type"
            ))
        }
        (ValueRef::Blob(b), _) => Val::Bytes(b),
    };
    match (val, &*col) {
        (Val::Bytes(b), Col::Str(_)) => {
            let s = std::str::from_utf8(b).map_err(|_| "text is not valid UTF-8".to_string())?;
            col.push(Val::Str(s))
        }
        (val, _) => col.push(val),
    }
}

fn cast_sql(col: &str, cast: Cast) -> String {
    match cast {
        Cast::String => format!("CAST({col} AS TEXT)"),
        Cast::Float64 => format!("CAST({col} AS REAL)"),
        Cast::Int64 => format!("CAST({col} AS INTEGER)"),
    }
}

fn raw_json(v: ValueRef<'_>) -> Result<Value, String> {
    Ok(match v {
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => Value::from(f),
        ValueRef::Text(b) => Value::from(std::str::from_utf8(b).map_err(|_| "cursor text is not UTF-8")?),
        ValueRef::Null => Value::Null,
        ValueRef::Blob(_) => return Err("a BLOB cursor value is not supported".into()),
    })
}

fn to_sql(v: &Value) -> Result<rusqlite::types::Value, String> {
    Ok(match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => rusqlite::types::Value::Integer(i),
            None => rusqlite::types::Value::Real(n.as_f64().ok_or("cursor number out of range")?),
        },
        Value::String(s) => rusqlite::types::Value::Text(s.clone()),
        other => return Err(format!("cursor value {other} is not a number or a string")),
    })
}

/// The blocking scan: sends batches into `tx`.
fn scan_blocking(path: &str, plan: &Plan, job: ScanJob, tx: &Sender<Produced>) -> Result<(), String> {
    let conn = open(path)?;
    let mut batcher = Batcher::new(job.schema.clone())?;
    let key_pos: Vec<usize> =
        plan.keys.iter().map(|k| job.columns.iter().position(|c| c == k).expect("keys are read")).collect();
    let mut first = conn
        .prepare(&plan.scan_sql(DIALECT, &job.columns, cast_sql, None))
        .map_err(|e| format!("cannot prepare the scan: {e}"))?;
    let decl: Vec<String> = first.columns().iter().map(|c| c.decl_type().unwrap_or("expression").to_string()).collect();
    let after: Vec<String> = (1..=key_pos.len()).map(|n| format!("?{n}")).collect();
    let mut next = if key_pos.is_empty() {
        None
    } else {
        Some(
            conn.prepare(&plan.scan_sql(DIALECT, &job.columns, cast_sql, Some(&after)))
                .map_err(|e| format!("cannot prepare the scan: {e}"))?,
        )
    };
    let mut cursor: Option<Vec<rusqlite::types::Value>> = match &job.after {
        None => None,
        Some(v) => Some(v.iter().map(to_sql).collect::<Result<_, _>>()?),
    };
    let ncols = job.columns.len();
    loop {
        let mut rows = match (&cursor, next.as_mut()) {
            (Some(params), Some(stmt)) => stmt.query(rusqlite::params_from_iter(params.iter())),
            _ => first.query([]),
        }
        .map_err(|e| format!("the scan failed: {e}"))?;
        let mut page_rows = 0usize;
        let mut last_keys: Option<Vec<Value>> = None;
        while let Some(row) = rows.next().map_err(|e| format!("the scan failed: {e}"))? {
            page_rows += 1;
            for (i, d) in decl.iter().enumerate().take(ncols) {
                let v = row.get_ref(i).map_err(|e| e.to_string())?;
                push(&mut batcher.cols[i], v).map_err(|why| batcher.column_error(i, d, &why))?;
            }
            if key_pos.is_empty() {
                if batcher.rows() >= plan.batch_size && tx.blocking_send(Ok((batcher.take()?, None))).is_err() {
                    return Ok(());
                }
            } else if page_rows == plan.batch_size {
                let keys = key_pos
                    .iter()
                    .map(|&i| raw_json(row.get_ref(i).map_err(|e| e.to_string())?))
                    .collect::<Result<Vec<_>, _>>()?;
                last_keys = Some(keys);
            }
        }
        drop(rows);
        if key_pos.is_empty() {
            if batcher.rows() > 0 {
                let _ = tx.blocking_send(Ok((batcher.take()?, None)));
            }
            return Ok(());
        }
        if page_rows == 0 {
            return Ok(());
        }
        let batch = batcher.take()?;
        // Raw key values of the last row (also when the page was short).
        let keys = match last_keys {
            Some(k) => k,
            None => {
                let n = batch.num_rows() - 1;
                key_pos
                    .iter()
                    .map(|&i| super::json_at(batch.column(i), n).map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        let full = page_rows == plan.batch_size;
        let params = keys.iter().map(to_sql).collect::<Result<Vec<_>, _>>();
        if tx.blocking_send(Ok((batch, Some(keys)))).is_err() || !full {
            return Ok(());
        }
        cursor = Some(params?);
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn describe(&self, plan: &Plan) -> Result<Vec<RawColumn>, String> {
        let path = self.path.clone();
        let sql = format!("SELECT * FROM ({}) AS segkit_q", plan.base_sql(DIALECT));
        tokio::task::spawn_blocking(move || {
            let conn = open(&path)?;
            let stmt = conn.prepare(&sql).map_err(|e| format!("cannot read the columns: {e}"))?;
            Ok(stmt
                .columns()
                .iter()
                .map(|c| RawColumn {
                    name: c.name().to_string(),
                    db_type: c.decl_type().unwrap_or("expression").to_string(),
                    mapped: arrow_type(c.name(), c.decl_type()),
                })
                .collect())
        })
        .await
        .map_err(|e| format!("the SQLite thread failed: {e}"))?
    }

    async fn scan(&self, plan: Arc<Plan>, job: ScanJob, tx: Sender<Produced>) {
        let path = self.path.clone();
        let tx2 = tx.clone();
        let done = tokio::task::spawn_blocking(move || {
            if let Err(m) = scan_blocking(&path, &plan, job, &tx2) {
                let _ = tx2.blocking_send(Err(m));
            }
        })
        .await;
        if let Err(e) = done {
            let _ = tx.send(Err(format!("the SQLite thread failed: {e}"))).await;
        }
    }
}
