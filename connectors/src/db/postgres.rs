//! PostgreSQL backend (tokio-postgres): binary `COPY (…) TO STDOUT` for full scans, keyset pages over the
//! extended protocol (row streams) for incremental scans. Values are decoded from PostgreSQL's binary format.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, TimeUnit};
use async_trait::async_trait;
use futures::{pin_mut, StreamExt, TryStreamExt};
use serde_json::Value;
use tokio::sync::mpsc::Sender;
use tokio_postgres::binary_copy::BinaryCopyOutStream;
use tokio_postgres::config::SslMode;
use tokio_postgres::types::{FromSql, Kind, Type};
use tokio_postgres::{Client, NoTls};

use super::{cast_hint, Backend, Batcher, Cast, Col, ConnInfo, Dialect, Plan, Produced, RawColumn, ScanJob, Val};

const DIALECT: Dialect = Dialect { quote: '"' };
/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// The PostgreSQL side of a [`super::DbSource`].
#[derive(Debug)]
pub(crate) struct PgBackend {
    conn: ConnInfo,
}

impl PgBackend {
    pub(crate) fn new(conn: ConnInfo) -> Result<Self, String> {
        let config: tokio_postgres::Config =
            conn.url.parse().map_err(|e| conn.redact(format!("invalid PostgreSQL URL {}: {e}", conn.shown)))?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(format!(
                "{}: sslmode=require is not supported (segkit's PostgreSQL connector has no TLS); use a tunnel",
                conn.shown
            ));
        }
        Ok(PgBackend { conn })
    }

    async fn connect(&self) -> Result<Client, String> {
        let mut config: tokio_postgres::Config = self.conn.url.parse().map_err(|e| self.conn.redact(format!("{e}")))?;
        if let Some(p) = self.conn.password()? {
            config.password(p);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(15));
        }
        config.application_name("segkit");
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| self.conn.redact(format!("cannot connect to {}: {}", self.conn.shown, pg_msg(&e))))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        // Timestamps with time zone are decoded as UTC instants whatever the zone; text output of the server
        // is not used.
        Ok(client)
    }

    fn err(&self, what: &str, e: tokio_postgres::Error) -> String {
        self.conn.redact(format!("{what}: {}", pg_msg(&e)))
    }
}

/// The useful text of a tokio-postgres error (its `Display` is only "db error").
fn pg_msg(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut m = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            m += &format!(" ({d})");
        }
        if let Some(h) = db.hint() {
            m += &format!(" hint: {h}");
        }
        return m;
    }
    let mut m = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        m += &format!(": {c}");
        cur = c.source();
    }
    m
}

/// The raw binary value of any column.
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The Arrow type of a PostgreSQL column, or why there is none.
fn arrow_type(name: &str, ty: &Type, typmod: i32) -> Result<DataType, String> {
    let no = |why: String| Err(format!("column `{name}` has type {why}; {}", cast_hint(name)));
    match ty.kind() {
        Kind::Enum(_) => return Ok(DataType::Utf8),
        Kind::Domain(inner) => return arrow_type(name, inner, -1),
        Kind::Array(elem) => {
            if matches!(elem.kind(), Kind::Array(_)) {
                return no(format!("{} (nested arrays do not map)", ty.name()));
            }
            let inner =
                arrow_type(name, elem, -1).or_else(|_| no(format!("{} (its elements do not map)", ty.name())))?;
            if matches!(inner, DataType::Decimal128(..)) {
                return no(format!("{} (an array of numeric has no declared precision)", ty.name()));
            }
            return Ok(DataType::List(Arc::new(Field::new("item", inner, true))));
        }
        _ => {}
    }
    Ok(match *ty {
        Type::BOOL => DataType::Boolean,
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::OID => DataType::UInt32,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::NUMERIC => {
            if typmod < 4 {
                return no("numeric without precision and scale (unbounded), which does not map to a fixed \
                           Arrow decimal; declare numeric(p, s) in a query"
                    .to_string());
            }
            let p = ((typmod - 4) >> 16) & 0xffff;
            let s = (typmod - 4) & 0xffff;
            if p > 38 || s > p {
                return no(format!("numeric({p}, {s}), beyond Arrow's Decimal128 (precision ≤ 38)"));
            }
            DataType::Decimal128(p as u8, s as i8)
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::CHAR => DataType::Utf8,
        Type::JSON | Type::JSONB | Type::UUID => DataType::Utf8,
        Type::BYTEA => DataType::Binary,
        Type::DATE => DataType::Date32,
        Type::TIME => DataType::Time64(TimeUnit::Microsecond),
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        _ if ty.name() == "citext" => DataType::Utf8,
        _ => return no(ty.name().to_string()),
    })
}

fn be<const N: usize>(raw: &[u8]) -> Result<[u8; N], String> {
    raw.try_into().map_err(|_| format!("malformed binary value ({} bytes, expected {N})", raw.len()))
}

/// Decodes a binary `numeric` into an unscaled integer and its scale.
fn numeric(raw: &[u8]) -> Result<(i128, i32), String> {
    if raw.len() < 8 {
        return Err("malformed numeric".into());
    }
    let ndigits = u16::from_be_bytes([raw[0], raw[1]]) as usize;
    let weight = i16::from_be_bytes([raw[2], raw[3]]) as i32;
    let sign = u16::from_be_bytes([raw[4], raw[5]]);
    let dscale = u16::from_be_bytes([raw[6], raw[7]]) as i32;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("value NaN does not map to a decimal".into()),
        _ => return Err("value ±Infinity does not map to a decimal".into()),
    }
    if raw.len() != 8 + 2 * ndigits {
        return Err("malformed numeric".into());
    }
    if ndigits == 0 {
        return Ok((0, 0));
    }
    // value = Σ d_i · 10000^(weight - i); as an integer scaled by 10^dscale.
    let mut v: i128 = 0;
    let overflow = || "numeric value has more than 38 digits".to_string();
    for i in 0..ndigits {
        let d = u16::from_be_bytes([raw[8 + 2 * i], raw[9 + 2 * i]]) as i128;
        v = v.checked_mul(10_000).and_then(|v| v.checked_add(d)).ok_or_else(overflow)?;
    }
    // v is scaled by 10000^(ndigits - 1 - weight) = 10^(4·(ndigits - 1 - weight)).
    let scale = 4 * (ndigits as i32 - 1 - weight);
    let v = if sign == 0x4000 { -v } else { v };
    // Normalise to the display scale (trailing zero digit groups may exceed it).
    let (mut v, mut scale) = (v, scale);
    while scale > dscale && v % 10 == 0 {
        v /= 10;
        scale -= 1;
    }
    Ok((v, scale))
}

/// Pushes one binary value of type `ty` into `col`.
fn push(col: &mut Col, ty: &Type, raw: Option<&[u8]>) -> Result<(), String> {
    let Some(raw) = raw else {
        col.null();
        return Ok(());
    };
    match ty.kind() {
        Kind::Domain(inner) => return push(col, inner, Some(raw)),
        Kind::Enum(_) => {
            return col.push(Val::Str(std::str::from_utf8(raw).map_err(|_| "enum label is not UTF-8")?));
        }
        Kind::Array(elem) => return push_array(col, elem, raw),
        _ => {}
    }
    let v = match *ty {
        Type::BOOL => Val::Bool(be::<1>(raw)?[0] != 0),
        Type::INT2 => Val::Int(i16::from_be_bytes(be(raw)?) as i64),
        Type::INT4 => Val::Int(i32::from_be_bytes(be(raw)?) as i64),
        Type::INT8 => Val::Int(i64::from_be_bytes(be(raw)?)),
        Type::OID => Val::UInt(u32::from_be_bytes(be(raw)?) as u64),
        Type::FLOAT4 => Val::F32(f32::from_be_bytes(be(raw)?)),
        Type::FLOAT8 => Val::F64(f64::from_be_bytes(be(raw)?)),
        Type::NUMERIC => {
            let (v, s) = numeric(raw)?;
            Val::Dec(v, s)
        }
        Type::JSONB => match raw.split_first() {
            Some((1, rest)) => Val::Str(std::str::from_utf8(rest).map_err(|_| "jsonb is not UTF-8")?),
            _ => return Err("unknown jsonb format version".into()),
        },
        Type::UUID => {
            let b: [u8; 16] = be(raw)?;
            let s = uuid_text(&b);
            return col.push(Val::Str(&s));
        }
        Type::BYTEA => Val::Bytes(raw),
        Type::DATE => {
            let d = i32::from_be_bytes(be(raw)?);
            if d == i32::MAX || d == i32::MIN {
                return Err("value ±infinity does not map to a date".into());
            }
            Val::Date(d.checked_add(PG_EPOCH_DAYS).ok_or("date out of range")?)
        }
        Type::TIME => Val::Time(i64::from_be_bytes(be(raw)?)),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let t = i64::from_be_bytes(be(raw)?);
            if t == i64::MAX || t == i64::MIN {
                return Err("value ±infinity does not map to a timestamp".into());
            }
            Val::Ts(t.checked_add(PG_EPOCH_US).ok_or("timestamp out of range")?)
        }
        // text, varchar, char, name, json, citext: UTF-8 bytes.
        _ => Val::Str(std::str::from_utf8(raw).map_err(|_| "text is not UTF-8")?),
    };
    col.push(v)
}

fn uuid_text(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// Decodes a one-dimensional binary array into a list value.
fn push_array(col: &mut Col, elem: &Type, raw: &[u8]) -> Result<(), String> {
    let malformed = || "malformed array".to_string();
    let rd = |at: usize| -> Result<i32, String> {
        raw.get(at..at + 4).map(|b| i32::from_be_bytes(b.try_into().expect("4 bytes"))).ok_or_else(malformed)
    };
    let ndim = rd(0)?;
    let mut at = 12;
    let count = match ndim {
        0 => 0,
        1 => {
            let n = rd(at)?;
            at += 8;
            usize::try_from(n).map_err(|_| malformed())?
        }
        _ => return Err(format!("a {ndim}-dimensional array does not map to a list (only one dimension does)")),
    };
    let values = col.list_values().ok_or("not a list column")?;
    for _ in 0..count {
        let len = rd(at)?;
        at += 4;
        if len < 0 {
            values.null();
        } else {
            let end = at.checked_add(len as usize).filter(|&e| e <= raw.len()).ok_or_else(malformed)?;
            push(values, elem, Some(&raw[at..end]))?;
            at = end;
        }
    }
    col.list_end()
}

fn cast_sql(col: &str, cast: Cast) -> String {
    match cast {
        Cast::String => format!("CAST({col} AS text)"),
        Cast::Float64 => format!("CAST({col} AS float8)"),
        Cast::Int64 => format!("CAST({col} AS int8)"),
    }
}

fn qualified(ty: &Type) -> String {
    format!("{}.{}", DIALECT.ident(ty.schema()), DIALECT.ident(ty.name()))
}

fn text_param(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl Backend for PgBackend {
    async fn describe(&self, plan: &Plan) -> Result<Vec<RawColumn>, String> {
        let client = self.connect().await?;
        let sql = format!("SELECT * FROM ({}) AS segkit_q", plan.base_sql(DIALECT));
        let stmt = client.prepare(&sql).await.map_err(|e| self.err("cannot read the columns", e))?;
        Ok(stmt
            .columns()
            .iter()
            .map(|c| RawColumn {
                name: c.name().to_string(),
                db_type: c.type_().name().to_string(),
                mapped: arrow_type(c.name(), c.type_(), c.type_modifier()),
            })
            .collect())
    }

    async fn scan(&self, plan: Arc<Plan>, job: ScanJob, tx: Sender<Produced>) {
        let result = self.scan_inner(&plan, job, &tx).await;
        if let Err(m) = result {
            let _ = tx.send(Err(m)).await;
        }
    }
}

impl PgBackend {
    async fn scan_inner(&self, plan: &Plan, job: ScanJob, tx: &Sender<Produced>) -> Result<(), String> {
        let client = self.connect().await?;
        let mut batcher = Batcher::new(job.schema.clone())?;
        if plan.keys.is_empty() {
            // Full scan: binary COPY of the whole result, cut into batches as it streams.
            let sql = plan.scan_sql(DIALECT, &job.columns, cast_sql, None);
            let stmt = client.prepare(&sql).await.map_err(|e| self.err("cannot prepare the scan", e))?;
            let types: Vec<Type> = stmt.columns().iter().map(|c| c.type_().clone()).collect();
            let copy = client
                .copy_out(&format!("COPY ({sql}) TO STDOUT (FORMAT binary)"))
                .await
                .map_err(|e| self.err("COPY failed", e))?;
            let rows = BinaryCopyOutStream::new(copy, &types);
            pin_mut!(rows);
            while let Some(row) = rows.try_next().await.map_err(|e| self.err("COPY failed", e))? {
                for (i, ty) in types.iter().enumerate() {
                    let Raw(raw) = row.try_get::<Raw>(i).map_err(|e| self.err("COPY failed", e))?;
                    push(&mut batcher.cols[i], ty, raw).map_err(|why| batcher.column_error(i, ty.name(), &why))?;
                }
                if batcher.rows() >= plan.batch_size && tx.send(Ok((batcher.take()?, None))).await.is_err() {
                    return Ok(());
                }
            }
            if batcher.rows() > 0 {
                let _ = tx.send(Ok((batcher.take()?, None))).await;
            }
            return Ok(());
        }
        // Incremental: keyset pages, each one batch.
        let key_pos: Vec<usize> =
            plan.keys.iter().map(|k| job.columns.iter().position(|c| c == k).expect("keys are read")).collect();
        let first = client
            .prepare(&plan.scan_sql(DIALECT, &job.columns, cast_sql, None))
            .await
            .map_err(|e| self.err("cannot prepare the scan", e))?;
        let types: Vec<Type> = first.columns().iter().map(|c| c.type_().clone()).collect();
        let after: Vec<String> = key_pos
            .iter()
            .enumerate()
            .map(|(n, &i)| format!("CAST(${}::text AS {})", n + 1, qualified(&types[i])))
            .collect();
        let next = client
            .prepare(&plan.scan_sql(DIALECT, &job.columns, cast_sql, Some(&after)))
            .await
            .map_err(|e| self.err("cannot prepare the scan", e))?;
        let mut cursor: Option<Vec<String>> = job.after.as_ref().map(|v| v.iter().map(text_param).collect());
        loop {
            let rows = match &cursor {
                None => client.query_raw(&first, std::iter::empty::<String>()).await,
                Some(params) => client.query_raw(&next, params.iter()).await,
            }
            .map_err(|e| self.err("the scan failed", e))?;
            pin_mut!(rows);
            while let Some(row) = rows.next().await {
                let row = row.map_err(|e| self.err("the scan failed", e))?;
                for (i, ty) in types.iter().enumerate() {
                    let Raw(raw) = row.try_get::<_, Raw>(i).map_err(|e| self.err("the scan failed", e))?;
                    push(&mut batcher.cols[i], ty, raw).map_err(|why| batcher.column_error(i, ty.name(), &why))?;
                }
            }
            let n = batcher.rows();
            if n == 0 {
                return Ok(());
            }
            let batch = batcher.take()?;
            let mut last = vec![];
            for &i in &key_pos {
                if batch.column(i).is_null(n - 1) {
                    break; // reported by the caller
                }
                last.push(text_param(&super::json_at(batch.column(i), n - 1).map_err(|e| e.to_string())?));
            }
            if tx.send(Ok((batch, None))).await.is_err() || n < plan.batch_size || last.len() < key_pos.len() {
                return Ok(());
            }
            cursor = Some(last);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numerics_decode() {
        // 123.45: ndigits 2, weight 0, pos, dscale 2, digits [123, 4500]
        let raw = [0, 2, 0, 0, 0, 0, 0, 2, 0, 123, 0x11, 0x94];
        assert_eq!(numeric(&raw).unwrap(), (12345, 2));
        // -0.5: ndigits 1, weight -1, neg, dscale 1, digits [5000]
        let raw = [0, 1, 0xff, 0xff, 0x40, 0, 0, 1, 0x13, 0x88];
        assert_eq!(numeric(&raw).unwrap(), (-5, 1));
        // 0 with dscale 2: ndigits 0
        assert_eq!(numeric(&[0, 0, 0, 0, 0, 0, 0, 2]).unwrap(), (0, 0));
        assert!(numeric(&[0, 0, 0, 0, 0xC0, 0, 0, 0]).unwrap_err().contains("NaN"));
    }
}
