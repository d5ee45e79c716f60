//! Helpers shared by the database-connector tests (real servers, see scripts/db-servers.sh).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use segkit::deps::arrow::array::{Array, AsArray, RecordBatch};
use segkit::deps::arrow::datatypes::{DataType as ArrowType, Int64Type};
use segkit::{ScanRequest, Source};
use serde_json::{json, Value};

/// The URL in `var`, or a failure that says how to start the servers (never a silent pass).
pub fn server_url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: these tests need real PostgreSQL and MariaDB servers. Start them with \
             `eval \"$(scripts/db-servers.sh start)\"` (installs postgresql / mariadb-server when missing, as root) \
             or run scripts/test-all.sh, which does it"
        )
    })
}

/// A table name unique to this test run and test.
pub fn table(prefix: &str) -> String {
    format!("{prefix}_{}_{}", std::process::id(), rand_suffix())
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

pub fn source(config: Value) -> Arc<dyn Source> {
    segkit_connectors::from_config(&config).unwrap()
}

pub async fn scan_all(source: &dyn Source, request: &ScanRequest) -> Vec<RecordBatch> {
    let mut s = source.scan(request).await.unwrap();
    let mut out = vec![];
    while let Some(b) = s.next().await {
        out.push(b.unwrap());
    }
    out
}

pub fn ids(batches: &[RecordBatch], col: &str) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = segkit::deps::arrow::compute::cast(b.column_by_name(col).unwrap(), &ArrowType::Int64).unwrap();
            c.as_primitive::<Int64Type>().values().to_vec()
        })
        .collect()
}

/// Reads an incremental source the way a sync does, but stops after `take` batches (an interrupted sync), and
/// resumes from the reported cursor until the end. Returns the ids read and the cursors seen.
pub async fn read_interrupted(source: &dyn Source, take: usize, start: Option<Value>) -> (Vec<i64>, Option<Value>) {
    let mut got = vec![];
    let mut request = ScanRequest::all();
    request.cursor = start;
    {
        let mut s = source.scan(&request).await.unwrap();
        for _ in 0..take {
            match s.next().await {
                Some(b) => got.extend(ids(&[b.unwrap()], "id")),
                None => break,
            }
        }
    }
    let cursor = source.cursor().await.unwrap();
    let mut request = ScanRequest::all();
    request.cursor = cursor.clone();
    let rest = scan_all(source, &request).await;
    got.extend(ids(&rest, "id"));
    (got, source.cursor().await.unwrap())
}

/// No duplicates, and exactly `expected`.
pub fn assert_exactly(got: &[i64], expected: impl IntoIterator<Item = i64>) {
    let set: BTreeSet<i64> = got.iter().copied().collect();
    assert_eq!(set.len(), got.len(), "rows doubled: {got:?}");
    let want: BTreeSet<i64> = expected.into_iter().collect();
    assert_eq!(set, want, "rows lost or extra");
}

pub fn err_text(e: &segkit::Error) -> String {
    e.chain().join(" | ")
}

pub fn cursor_of(column: &str, tie: &str) -> Value {
    json!({"column": column, "tie_breaker": tie})
}

/// Row `i` of column `name` rendered as text (via an Arrow cast), or `None` for NULL.
pub fn cell(batches: &[RecordBatch], name: &str, i: usize) -> Option<String> {
    let mut i = i;
    for b in batches {
        if i < b.num_rows() {
            let c = b.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
            if c.is_null(i) {
                return None;
            }
            let s = segkit::deps::arrow::util::display::array_value_to_string(c, i).unwrap();
            return Some(s);
        }
        i -= b.num_rows();
    }
    panic!("row {i} out of range")
}
