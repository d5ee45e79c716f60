//! Group commit of small appends to event entities.
//!
//! An ingest writes a Parquet file and commits a catalog snapshot; done once per small request (a web app
//! sending 1,000 behavioural events), that is a file and a sync to disk per request. The [`Appender`] hands
//! each [`append`](Appender::append) to one writer task, which takes every append waiting while it committed the
//! previous group (up to [`MAX_APPEND_GROUP_ROWS`] rows) and ingests them as ONE ingest per entity — one file,
//! one catalog commit (a sync to disk with [`crate::WorkspaceOptions::durable_commits`]). Each caller is answered
//! only after the commit holding its rows, so an answered append is committed. After a commit the writer runs
//! [`Workspace::compact`], which merges runs of small files so reads stay fast.
//!
//! [`decode_rows`] turns JSON objects into a batch of an entity's schema strictly, naming the path of a bad
//! field (`events[3].amount`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::ingest::{IngestMode, IngestOptions};
use crate::limits::{MAX_APPEND_GROUP_ROWS, MAX_APPEND_QUEUE, MAX_EVENT_BATCH};
use crate::model::{DataType, Entity, EntityKind};
use crate::Workspace;

/// The answer to one [`Appender::append`], given once its rows are committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppendReceipt {
    /// The entity appended to.
    pub entity: String,
    /// Rows of this append.
    pub rows: u64,
    /// The snapshot that holds them.
    pub snapshot: Option<i64>,
    /// The id of the ingest (in `segkit.ingests` / [`Workspace::ingest_history`]) that committed them.
    pub ingest_id: String,
    /// Rows committed together in that group (this append's and others').
    pub group_rows: u64,
    /// Appends committed together in that group.
    pub group_appends: usize,
    /// Rows of the group that the ingest quarantined (0 for rows from [`decode_rows`]).
    pub group_quarantined: u64,
}

struct Job {
    entity: String,
    batch: RecordBatch,
    done: oneshot::Sender<Result<AppendReceipt>>,
}

/// Appends batches to event entities with group commit (see the module documentation). Cheap to clone; the
/// writer task starts on the first append (on the calling tokio runtime) and ends when every clone is dropped.
#[derive(Clone)]
pub struct Appender {
    ws: Workspace,
    tx: Arc<OnceLock<mpsc::Sender<Job>>>,
}

impl std::fmt::Debug for Appender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender").finish_non_exhaustive()
    }
}

impl Appender {
    /// An appender over `ws`.
    pub fn new(ws: Workspace) -> Self {
        Appender { ws, tx: Arc::new(OnceLock::new()) }
    }

    /// Appends `batch` (at most [`MAX_EVENT_BATCH`] rows, in the entity's schema — see [`decode_rows`]) to the
    /// event entity `entity` and waits until the group commit holding it is done. An error of the group's ingest
    /// is every append's error in it: nothing of the group is committed then.
    pub async fn append(&self, entity: &str, batch: RecordBatch) -> Result<AppendReceipt> {
        let e = self.ws.entity(entity)?;
        if e.kind != EntityKind::Event {
            return Err(Error::InvalidArgument(format!(
                "`{}` is a profile entity; events are appended to event entities",
                e.name
            )));
        }
        if batch.num_rows() == 0 {
            return Err(Error::InvalidArgument("no events to append".into()));
        }
        if batch.num_rows() > MAX_EVENT_BATCH {
            return Err(Error::InvalidArgument(format!(
                "{} events in one append; at most {MAX_EVENT_BATCH} (limit MAX_EVENT_BATCH): send several",
                batch.num_rows()
            )));
        }
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(MAX_APPEND_QUEUE);
            tokio::spawn(writer(self.ws.clone(), rx));
            tx
        });
        let (done, wait) = oneshot::channel();
        let stopped = || Error::Ingest { entity: e.name.clone(), message: "the appender's writer has stopped".into() };
        tx.send(Job { entity: e.name.clone(), batch, done }).await.map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

/// The writer: one group commit per entity for everything waiting, then compaction.
async fn writer(ws: Workspace, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut rows = first.batch.num_rows();
        let mut jobs = vec![first];
        while rows < MAX_APPEND_GROUP_ROWS {
            match rx.try_recv() {
                Ok(j) => {
                    rows += j.batch.num_rows();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        // One group per entity and schema (a definition may change between two appends).
        let mut groups: Vec<Vec<Job>> = vec![];
        for j in jobs {
            match groups.iter_mut().find(|g| g[0].entity == j.entity && g[0].batch.schema() == j.batch.schema()) {
                Some(g) => g.push(j),
                None => groups.push(vec![j]),
            }
        }
        for group in groups {
            let entity = group[0].entity.clone();
            commit_group(&ws, &entity, group).await;
            if let Err(e) = ws.compact(&entity).await {
                tracing::warn!(entity, error = %e, "compaction after a group commit failed");
            }
        }
    }
}

async fn commit_group(ws: &Workspace, entity: &str, group: Vec<Job>) {
    let batches: Vec<RecordBatch> = group.iter().map(|j| j.batch.clone()).collect();
    let group_rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let n = group.len();
    let result = ws.ingest_batches(entity, batches, IngestOptions::default().mode(IngestMode::Append)).await;
    for j in group {
        let answer = match &result {
            Ok(report) => Ok(AppendReceipt {
                entity: entity.to_string(),
                rows: j.batch.num_rows() as u64,
                snapshot: report.snapshot,
                ingest_id: report.id.clone(),
                group_rows,
                group_appends: n,
                group_quarantined: report.rows_quarantined,
            }),
            Err(e) => Err(copy_error(e)),
        };
        let _ = j.done.send(answer);
    }
}

/// A copy of a group's error for each of its appends (the kind is kept: a conflict stays a conflict).
fn copy_error(e: &Error) -> Error {
    match e {
        Error::Conflict { what, message } => Error::Conflict { what: what.clone(), message: message.clone() },
        Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
        Error::NotFound { kind, name, .. } => Error::NotFound { kind, name: name.clone(), hint: Default::default() },
        Error::Ingest { entity, message } => Error::Ingest { entity: entity.clone(), message: message.clone() },
        other => Error::Ingest { entity: String::new(), message: other.to_string() },
    }
}

/// A bad value in rows given as JSON: where (`events[3].amount`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The path of the bad value in the request.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Error::InvalidArgument(e.to_string())
    }
}

/// Decodes JSON objects into one batch of `entity`'s schema, strictly: every field must be an attribute, every
/// value of its type (integers without a fraction and in range, timestamps as RFC 3339 text, dates as
/// `YYYY-MM-DD`, `json` attributes any JSON), and the key and timestamp present. The first bad value is
/// reported with its path, `{path}[{row}].{field}` (rows from 0). Values are not coerced: this is for machine
/// clients; files with messy data go through an ingest, which quarantines rows instead.
pub fn decode_rows(entity: &Entity, rows: &[Value], path: &str) -> std::result::Result<RecordBatch, FieldError> {
    let attrs: HashMap<&str, &crate::model::Attribute> =
        entity.attributes.iter().map(|a| (a.name.as_str(), a)).collect();
    let required: Vec<&str> = entity
        .attributes
        .iter()
        .filter(|a| !a.nullable || Some(&a.name) == entity.key.as_ref() || Some(&a.name) == entity.timestamp.as_ref())
        .map(|a| a.name.as_str())
        .collect();
    let has_json = entity.attributes.iter().any(|a| contains_json(&a.data_type));
    let mut fixed: Vec<Value> = vec![];
    for (i, row) in rows.iter().enumerate() {
        let obj = row.as_object().ok_or_else(|| FieldError {
            path: format!("{path}[{i}]"),
            message: format!("an event must be a JSON object, not {}", kind_of(row)),
        })?;
        for (k, v) in obj {
            let here = || format!("{path}[{i}].{k}");
            let a = attrs.get(k.as_str()).ok_or_else(|| FieldError {
                path: here(),
                message: format!(
                    "entity `{}` has no attribute `{k}`{}",
                    entity.name,
                    crate::error::hint(k, entity.attributes.iter().map(|a| a.name.as_str()))
                ),
            })?;
            if v.is_null() {
                if required.contains(&k.as_str()) {
                    return Err(FieldError { path: here(), message: "must not be null".into() });
                }
                continue;
            }
            check_value(&a.data_type, v, &here)?;
        }
        for r in &required {
            if obj.get(*r).is_none_or(Value::is_null) {
                return Err(FieldError { path: format!("{path}[{i}].{r}"), message: "is required".into() });
            }
        }
        if has_json {
            // `json` attributes are stored as their text.
            let mut o = obj.clone();
            for (k, v) in o.iter_mut() {
                if attrs.get(k.as_str()).is_some_and(|a| a.data_type == DataType::Json) && !v.is_null() {
                    *v = Value::String(v.to_string());
                }
            }
            fixed.push(Value::Object(o));
        }
    }
    let schema = entity.schema();
    let reason = |e: arrow::error::ArrowError| FieldError { path: path.to_string(), message: e.to_string() };
    let mut decoder =
        arrow::json::ReaderBuilder::new(schema.clone()).with_strict_mode(true).build_decoder().map_err(reason)?;
    if has_json {
        decoder.serialize(&fixed).map_err(reason)?;
    } else {
        decoder.serialize(rows).map_err(reason)?;
    }
    Ok(decoder.flush().map_err(reason)?.unwrap_or_else(|| RecordBatch::new_empty(schema)))
}

fn contains_json(t: &DataType) -> bool {
    match t {
        DataType::Json => true,
        DataType::List(inner) => contains_json(inner),
        _ => false,
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_value(t: &DataType, v: &Value, here: &dyn Fn() -> String) -> std::result::Result<(), FieldError> {
    let bad = |m: String| Err(FieldError { path: here(), message: m });
    match t {
        DataType::Json => Ok(()),
        DataType::String => match v {
            Value::String(_) => Ok(()),
            other => bad(format!("expected a string, got {}", kind_of(other))),
        },
        DataType::Bool => match v {
            Value::Bool(_) => Ok(()),
            other => bad(format!("expected true or false, got {}", kind_of(other))),
        },
        DataType::Float64 => match v {
            Value::Number(_) => Ok(()),
            other => bad(format!("expected a number, got {}", kind_of(other))),
        },
        DataType::Int32 | DataType::Int64 => match v.as_i64() {
            Some(n) if *t == DataType::Int64 || i32::try_from(n).is_ok() => Ok(()),
            Some(n) => bad(format!("{n} is out of range for int32")),
            None => bad(format!(
                "expected an integer ({}), got {}",
                t,
                if v.is_number() { v.to_string() } else { kind_of(v).to_string() }
            )),
        },
        DataType::Timestamp => match v {
            Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => Ok(()),
            Value::String(s) => bad(format!("`{s}` is not an RFC 3339 timestamp (e.g. 2026-06-30T12:00:00Z)")),
            other => bad(format!("expected an RFC 3339 timestamp string, got {}", kind_of(other))),
        },
        DataType::Date => match v {
            Value::String(s) if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() => Ok(()),
            Value::String(s) => bad(format!("`{s}` is not a date (YYYY-MM-DD)")),
            other => bad(format!("expected a date string (YYYY-MM-DD), got {}", kind_of(other))),
        },
        DataType::List(inner) => match v {
            Value::Array(items) => {
                for (j, item) in items.iter().enumerate() {
                    if !item.is_null() {
                        check_value(inner, item, &|| format!("{}[{j}]", here()))?;
                    }
                }
                Ok(())
            }
            other => bad(format!("expected an array, got {}", kind_of(other))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Attribute;
    use serde_json::json;

    fn clicks() -> Entity {
        Entity::event("click", "ts")
            .attribute(Attribute::new("user_id", DataType::Int64))
            .attribute(Attribute::new("ts", DataType::Timestamp))
            .attribute(Attribute::new("n", DataType::Int32))
            .attribute(Attribute::new("tags", DataType::List(Box::new(DataType::String))))
            .attribute(Attribute::new("extra", DataType::Json))
            .link(crate::model::Link::new("user_id", "u"))
    }

    #[test]
    fn good_rows_decode_and_bad_ones_name_their_path() {
        let e = clicks();
        let rows = vec![
            json!({"user_id": 1, "ts": "2026-06-30T12:00:00Z", "n": 3, "tags": ["a"], "extra": {"k": [1]}}),
            json!({"user_id": 2, "ts": "2026-06-30T12:00:01+08:00"}),
        ];
        let b = decode_rows(&e, &rows, "events").unwrap();
        assert_eq!((b.num_rows(), b.schema()), (2, e.schema()));
        let err = |row: Value| decode_rows(&e, &[rows[0].clone(), row], "events").unwrap_err().to_string();
        assert_eq!(
            err(json!({"user_id": 1.5, "ts": "2026-06-30T12:00:00Z"})),
            "events[1].user_id: expected an integer (int64), got 1.5"
        );
        assert_eq!(
            err(json!({"user_id": 1, "ts": 5})),
            "events[1].ts: expected an RFC 3339 timestamp string, got a number"
        );
        assert_eq!(err(json!({"user_id": 1})), "events[1].ts: is required");
        assert_eq!(
            err(json!({"user_id": 1, "ts": "2026-06-30T12:00:00Z", "n": 1e10})).split(':').next(),
            Some("events[1].n")
        );
        assert_eq!(
            err(json!({"user_id": 1, "ts": "2026-06-30T12:00:00Z", "n": 3_000_000_000i64})),
            "events[1].n: 3000000000 is out of range for int32"
        );
        assert_eq!(
            err(json!({"user_id": 1, "ts": "2026-06-30T12:00:00Z", "tags": ["a", 2]})),
            "events[1].tags[1]: expected a string, got a number"
        );
        assert!(err(json!({"user_idd": 1, "ts": "2026-06-30T12:00:00Z"}))
            .starts_with("events[1].user_idd: entity `click` has no attribute `user_idd`"));
        assert_eq!(err(json!([1])), "events[1]: an event must be a JSON object, not an array");
    }

    async fn count(ws: &Workspace) -> i64 {
        let b = ws.sql("SELECT count(*) AS n FROM click").await.unwrap();
        b[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().unwrap().value(0)
    }

    fn batch(e: &Entity, from: i64, n: i64) -> RecordBatch {
        let rows: Vec<Value> =
            (from..from + n).map(|i| json!({"user_id": i, "ts": "2026-06-30T12:00:00Z", "n": 1})).collect();
        decode_rows(e, &rows, "events").unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_all_commit_and_small_files_are_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::open(dir.path()).await.unwrap();
        ws.define_entity(Entity::profile("u", "id").attribute(Attribute::new("id", DataType::Int64))).await.unwrap();
        let e = ws.define_entity(clicks()).await.unwrap();
        let appender = Appender::new(ws.clone());
        // 40 appends of 25 rows from 40 tasks at once.
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let (a, b) = (appender.clone(), batch(&e, i * 25, 25));
                tokio::spawn(async move { a.append("click", b).await })
            })
            .collect();
        let mut groups = std::collections::BTreeSet::new();
        for t in tasks {
            let r = t.await.unwrap().unwrap();
            assert_eq!((r.rows, r.entity.as_str(), r.group_quarantined), (25, "click", 0));
            assert!(r.snapshot.is_some() && r.group_rows >= 25 && r.group_appends >= 1);
            groups.insert(r.ingest_id);
        }
        assert_eq!(count(&ws).await, 1000);
        // One ingest per group: each answered append names a committed ingest.
        let history: Vec<String> = ws.ingest_history("click").unwrap().into_iter().map(|r| r.id).collect();
        assert!(groups.iter().all(|g| history.contains(g)), "{groups:?} vs {history:?}");
        // Sequential small appends: after COMPACT_MIN_FILES small files the writer merges them.
        for i in 0..(crate::limits::COMPACT_MIN_FILES as i64 * 2) {
            appender.append("click", batch(&e, 10_000 + i * 10, 10)).await.unwrap();
        }
        let n = 1000 + crate::limits::COMPACT_MIN_FILES as i64 * 20;
        assert_eq!(count(&ws).await, n);
        let files = ws.data_files("click").unwrap();
        assert!(files.len() < crate::limits::COMPACT_MIN_FILES, "compacted: {} files", files.len());
        assert_eq!(files.iter().map(|f| f.rows as i64).sum::<i64>(), n);
        // Nothing left to merge; a profile is refused; an empty or oversized batch is refused.
        assert_eq!(ws.compact("click").await.unwrap().files_merged, 0);
        let empty = RecordBatch::new_empty(e.schema());
        assert!(appender.append("click", empty).await.unwrap_err().to_string().contains("no events"));
        let big = batch(&e, 0, crate::limits::MAX_EVENT_BATCH as i64 + 1);
        assert!(appender.append("click", big).await.unwrap_err().to_string().contains("MAX_EVENT_BATCH"));
        let b = RecordBatch::try_new(
            ws.entity("u").unwrap().schema(),
            vec![std::sync::Arc::new(arrow::array::Int64Array::from(vec![1]))],
        )
        .unwrap();
        assert!(appender.append("u", b).await.unwrap_err().to_string().contains("profile entity"));
    }
}
