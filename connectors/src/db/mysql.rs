//! MySQL / MariaDB backend (mysql_async): prepared statements over the binary protocol, rows read from the
//! socket as they arrive (a full scan is one streamed statement; incremental scans are keyset pages). The
//! session runs with `time_zone = '+00:00'`, so `TIMESTAMP` columns come back in UTC.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, TimeUnit};
use async_trait::async_trait;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;
use mysql_async::{Column, Conn, Opts, OptsBuilder, Params, Value as MyValue};
use serde_json::Value;
use tokio::sync::mpsc::Sender;

use super::{cast_hint, Backend, Batcher, Cast, Col, ConnInfo, Dialect, Plan, Produced, RawColumn, ScanJob, Val};

const DIALECT: Dialect = Dialect { quote: '`' };
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// MySQL's "binary" character set: the column holds bytes, not text.
const BINARY_CHARSET: u16 = 63;

/// The MySQL side of a [`super::DbSource`].
#[derive(Debug)]
pub(crate) struct MyBackend {
    conn: ConnInfo,
}

impl MyBackend {
    pub(crate) fn new(conn: ConnInfo) -> Result<Self, String> {
        Opts::from_url(&conn.url).map_err(|e| conn.redact(format!("invalid MySQL URL {}: {e}", conn.shown)))?;
        Ok(MyBackend { conn })
    }

    async fn connect(&self) -> Result<Conn, String> {
        let opts = Opts::from_url(&self.conn.url).map_err(|e| self.conn.redact(e.to_string()))?;
        let mut b = OptsBuilder::from_opts(opts)
            .init(vec!["SET time_zone = '+00:00'", "SET NAMES utf8mb4"])
            .prefer_socket(false);
        if let Some(p) = self.conn.password()? {
            b = b.pass(Some(p));
        }
        let fail = |m: String| self.conn.redact(format!("cannot connect to {}: {m}", self.conn.shown));
        match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(b)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(fail(e.to_string())),
            Err(_) => Err(fail(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))),
        }
    }

    fn err(&self, what: &str, e: mysql_async::Error) -> String {
        self.conn.redact(format!("{what}: {e}"))
    }
}

fn type_name(c: &Column) -> String {
    let t = format!("{:?}", c.column_type());
    let t = t.trim_start_matches("MYSQL_TYPE_").to_ascii_lowercase();
    if c.flags().contains(ColumnFlags::UNSIGNED_FLAG) {
        format!("{t} unsigned")
    } else {
        t
    }
}

/// The Arrow type of a MySQL column, or why there is none.
fn arrow_type(c: &Column) -> Result<DataType, String> {
    let name = c.name_str();
    let unsigned = c.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    let int = |s: DataType, u: DataType| if unsigned { u } else { s };
    Ok(match c.column_type() {
        ColumnType::MYSQL_TYPE_TINY if c.column_length() == 1 && !unsigned => DataType::Boolean,
        ColumnType::MYSQL_TYPE_TINY => int(DataType::Int8, DataType::UInt8),
        ColumnType::MYSQL_TYPE_SHORT => int(DataType::Int16, DataType::UInt16),
        ColumnType::MYSQL_TYPE_YEAR => DataType::Int16,
        ColumnType::MYSQL_TYPE_INT24 | ColumnType::MYSQL_TYPE_LONG => int(DataType::Int32, DataType::UInt32),
        ColumnType::MYSQL_TYPE_LONGLONG => int(DataType::Int64, DataType::UInt64),
        ColumnType::MYSQL_TYPE_FLOAT => DataType::Float32,
        ColumnType::MYSQL_TYPE_DOUBLE => DataType::Float64,
        ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => {
            let s = c.decimals() as u32;
            let p = c.column_length().saturating_sub(u32::from(s > 0) + u32::from(!unsigned));
            if p > 38 || p == 0 {
                return Err(format!(
                    "column `{name}` has type decimal({p}, {s}), beyond Arrow's Decimal128 (precision ≤ 38); {}",
                    cast_hint(&name)
                ));
            }
            DataType::Decimal128(p as u8, s as i8)
        }
        ColumnType::MYSQL_TYPE_BIT if c.column_length() == 1 => DataType::Boolean,
        ColumnType::MYSQL_TYPE_JSON => DataType::Utf8,
        ColumnType::MYSQL_TYPE_VARCHAR
        | ColumnType::MYSQL_TYPE_VAR_STRING
        | ColumnType::MYSQL_TYPE_STRING
        | ColumnType::MYSQL_TYPE_ENUM
        | ColumnType::MYSQL_TYPE_SET
        | ColumnType::MYSQL_TYPE_TINY_BLOB
        | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
        | ColumnType::MYSQL_TYPE_LONG_BLOB
        | ColumnType::MYSQL_TYPE_BLOB => {
            if c.character_set() == BINARY_CHARSET {
                DataType::Binary
            } else {
                DataType::Utf8
            }
        }
        ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => DataType::Date32,
        ColumnType::MYSQL_TYPE_TIME | ColumnType::MYSQL_TYPE_TIME2 => DataType::Time64(TimeUnit::Microsecond),
        ColumnType::MYSQL_TYPE_DATETIME | ColumnType::MYSQL_TYPE_DATETIME2 => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        ColumnType::MYSQL_TYPE_TIMESTAMP | ColumnType::MYSQL_TYPE_TIMESTAMP2 => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        _ => {
            return Err(format!("column `{name}` has type {}, which does not map; {}", type_name(c), cast_hint(&name)))
        }
    })
}

fn days(y: u16, m: u8, d: u8) -> Result<i32, String> {
    let date = chrono::NaiveDate::from_ymd_opt(y as i32, m as u32, d as u32)
        .ok_or_else(|| format!("invalid date {y:04}-{m:02}-{d:02} (a MySQL zero date?)"))?;
    Ok((date - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days() as i32)
}

fn push(col: &mut Col, v: &MyValue) -> Result<(), String> {
    let val = match v {
        MyValue::NULL => {
            col.null();
            return Ok(());
        }
        MyValue::Int(i) => Val::Int(*i),
        MyValue::UInt(u) => Val::UInt(*u),
        MyValue::Float(f) => Val::F32(*f),
        MyValue::Double(f) => Val::F64(*f),
        MyValue::Bytes(b) => match col {
            Col::Dec(..) => {
                let s = std::str::from_utf8(b).map_err(|_| "decimal is not text")?;
                let (v, s) = super::parse_decimal(s)?;
                Val::Dec(v, s)
            }
            // BIT(1) arrives as one byte.
            Col::Bool(_) if b.len() == 1 => Val::Bool(b[0] != 0),
            _ => Val::Bytes(b),
        },
        MyValue::Date(y, m, d, h, mi, s, us) => match col {
            Col::Date(_) => Val::Date(days(*y, *m, *d)?),
            _ => {
                let day = days(*y, *m, *d)? as i64;
                Val::Ts(
                    day * 86_400_000_000 + (*h as i64 * 3600 + *mi as i64 * 60 + *s as i64) * 1_000_000 + *us as i64,
                )
            }
        },
        MyValue::Time(neg, d, h, m, s, us) => {
            if *neg || *d > 0 {
                return Err(format!(
                    "TIME value {}{}h{m}m{s}s is outside one day and does not map to Time64",
                    if *neg { "-" } else { "" },
                    *d as u64 * 24 + *h as u64
                ));
            }
            Val::Time((*h as i64 * 3600 + *m as i64 * 60 + *s as i64) * 1_000_000 + *us as i64)
        }
    };
    col.push(val)
}

fn cast_sql(col: &str, cast: Cast) -> String {
    match cast {
        Cast::String => format!("CAST({col} AS CHAR)"),
        Cast::Float64 => format!("CAST({col} AS DOUBLE)"),
        Cast::Int64 => format!("CAST({col} AS SIGNED)"),
    }
}

/// A cursor value (JSON) as a statement parameter for a key column of Arrow type `dt`.
fn param(v: &Value, dt: &DataType) -> Result<MyValue, String> {
    let bad = || format!("cursor value {v} does not fit a {dt} column");
    Ok(match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                MyValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                MyValue::UInt(u)
            } else {
                MyValue::Double(n.as_f64().ok_or_else(bad)?)
            }
        }
        Value::String(s) => match dt {
            DataType::Date32 => {
                let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
                use chrono::Datelike;
                MyValue::Date(d.year() as u16, d.month() as u8, d.day() as u8, 0, 0, 0, 0)
            }
            DataType::Timestamp(..) => {
                let t = chrono::NaiveDateTime::parse_from_str(s.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f")
                    .map_err(|_| bad())?;
                use chrono::{Datelike, Timelike};
                MyValue::Date(
                    t.year() as u16,
                    t.month() as u8,
                    t.day() as u8,
                    t.hour() as u8,
                    t.minute() as u8,
                    t.second() as u8,
                    t.nanosecond() / 1000,
                )
            }
            _ => MyValue::Bytes(s.as_bytes().to_vec()),
        },
        _ => return Err(bad()),
    })
}

#[async_trait]
impl Backend for MyBackend {
    async fn describe(&self, plan: &Plan) -> Result<Vec<RawColumn>, String> {
        let mut conn = self.connect().await?;
        let sql = format!("SELECT * FROM ({}) AS segkit_q", plan.base_sql(DIALECT));
        let stmt = conn.prep(&sql).await.map_err(|e| self.err("cannot read the columns", e))?;
        let cols = stmt
            .columns()
            .iter()
            .map(|c| RawColumn { name: c.name_str().to_string(), db_type: type_name(c), mapped: arrow_type(c) })
            .collect();
        let _ = conn.close(stmt).await;
        let _ = conn.disconnect().await;
        Ok(cols)
    }

    async fn scan(&self, plan: Arc<Plan>, job: ScanJob, tx: Sender<Produced>) {
        if let Err(m) = self.scan_inner(&plan, job, &tx).await {
            let _ = tx.send(Err(m)).await;
        }
    }
}

impl MyBackend {
    async fn scan_inner(&self, plan: &Plan, job: ScanJob, tx: &Sender<Produced>) -> Result<(), String> {
        let mut conn = self.connect().await?;
        let mut batcher = Batcher::new(job.schema.clone())?;
        let key_pos: Vec<usize> =
            plan.keys.iter().map(|k| job.columns.iter().position(|c| c == k).expect("keys are read")).collect();
        let first = conn
            .prep(plan.scan_sql(DIALECT, &job.columns, cast_sql, None))
            .await
            .map_err(|e| self.err("cannot prepare the scan", e))?;
        let names: Vec<String> = first.columns().iter().map(type_name).collect();
        let next = if key_pos.is_empty() {
            None
        } else {
            let after: Vec<String> = key_pos.iter().map(|_| "?".to_string()).collect();
            Some(
                conn.prep(plan.scan_sql(DIALECT, &job.columns, cast_sql, Some(&after)))
                    .await
                    .map_err(|e| self.err("cannot prepare the scan", e))?,
            )
        };
        let key_type = |n: usize| job.schema.field(key_pos[n]).data_type().clone();
        let mut cursor: Option<Vec<MyValue>> = match &job.after {
            None => None,
            Some(vals) => Some(vals.iter().enumerate().map(|(n, v)| param(v, &key_type(n))).collect::<Result<_, _>>()?),
        };
        loop {
            let (stmt, params) = match &cursor {
                None => (&first, Params::Empty),
                Some(p) => (next.as_ref().expect("incremental"), Params::Positional(p.clone())),
            };
            let mut result = conn.exec_iter(stmt, params).await.map_err(|e| self.err("the scan failed", e))?;
            let mut page_rows = 0usize;
            while let Some(row) = result.next().await.map_err(|e| self.err("the scan failed", e))? {
                page_rows += 1;
                for (i, v) in row.unwrap().iter().enumerate() {
                    push(&mut batcher.cols[i], v).map_err(|why| batcher.column_error(i, &names[i], &why))?;
                }
                if key_pos.is_empty()
                    && batcher.rows() >= plan.batch_size
                    && tx.send(Ok((batcher.take()?, None))).await.is_err()
                {
                    return Ok(());
                }
            }
            drop(result);
            if key_pos.is_empty() {
                if batcher.rows() > 0 {
                    let _ = tx.send(Ok((batcher.take()?, None))).await;
                }
                return Ok(());
            }
            let n = batcher.rows();
            if n == 0 {
                return Ok(());
            }
            let batch = batcher.take()?;
            let mut last = vec![];
            for (k, &i) in key_pos.iter().enumerate() {
                if batch.column(i).is_null(n - 1) {
                    break; // reported by the caller
                }
                let v = super::json_at(batch.column(i), n - 1).map_err(|e| e.to_string())?;
                last.push(param(&v, &key_type(k))?);
            }
            if tx.send(Ok((batch, None))).await.is_err() || page_rows < plan.batch_size || last.len() < key_pos.len() {
                return Ok(());
            }
            cursor = Some(last);
        }
    }
}
