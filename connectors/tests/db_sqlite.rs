//! The SQLite connector on a real database file.

mod db_common;

use db_common::*;
use segkit::deps::arrow::array::{Array, RecordBatch};
use segkit::deps::arrow::datatypes::{DataType as ArrowType, TimeUnit};
use segkit::testing::source_conformance;
use segkit::{Attribute, DataType, Entity, ErrorKind, IngestOptions, ScanRequest, Workspace};
use serde_json::json;

fn db(dir: &tempfile::TempDir, sql: &str) -> String {
    let path = dir.path().join("shop.db");
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(sql).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test]
async fn declared_types_map_with_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(
        &dir,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n BIGINT, f REAL, dc DECIMAL(10, 2), b BOOLEAN, s VARCHAR(10),
           d DATE, tm TIME, ts DATETIME, j JSON, bl BLOB);
         INSERT INTO t VALUES (1, -5, 1.5, '12.30', 1, 'héllo', '2024-02-29', '13:14:15.5', '2024-03-01 12:34:56.789',
           '{\"a\": 1}', x'00ff');
         INSERT INTO t (id) VALUES (2);
         INSERT INTO t (id, dc, ts) VALUES (3, 7, '2024-03-01T10:00:00Z');",
    );
    let full = source(json!({"type": "sqlite", "path": path, "table": "t"}));
    let keyset =
        source(json!({"type": "sqlite3", "path": path, "table": "t", "cursor": {"column": "id"}, "batch_size": 2}));
    let schema = full.schema().await.unwrap();
    let types: Vec<ArrowType> = schema.fields().iter().map(|f| f.data_type().clone()).collect();
    assert_eq!(
        types,
        vec![
            ArrowType::Int64,
            ArrowType::Int64,
            ArrowType::Float64,
            ArrowType::Decimal128(10, 2),
            ArrowType::Boolean,
            ArrowType::Utf8,
            ArrowType::Date32,
            ArrowType::Time64(TimeUnit::Microsecond),
            ArrowType::Timestamp(TimeUnit::Microsecond, None),
            ArrowType::Utf8,
            ArrowType::Binary,
        ]
    );
    for (what, src) in [("full", &full), ("keyset", &keyset)] {
        let batches = scan_all(src.as_ref(), &ScanRequest::all()).await;
        let b = vec![segkit::deps::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()];
        for (col, want) in [
            ("n", "-5"),
            ("f", "1.5"),
            ("dc", "12.30"),
            ("b", "true"),
            ("s", "héllo"),
            ("d", "2024-02-29"),
            ("tm", "13:14:15.500"),
            ("ts", "2024-03-01T12:34:56.789"),
            ("j", "{\"a\": 1}"),
            ("bl", "00ff"),
        ] {
            assert_eq!(cell(&b, col, 0).as_deref(), Some(want), "{what}: {col}");
            assert_eq!(cell(&b, col, 1), None, "{what}: {col} NULL");
        }
        assert_eq!(cell(&b, "dc", 2).as_deref(), Some("7.00"));
        assert_eq!(cell(&b, "ts", 2).as_deref(), Some("2024-03-01T10:00:00"));
    }
    source_conformance(full.as_ref()).await.unwrap();
    source_conformance(keyset.as_ref()).await.unwrap();
}

#[tokio::test]
async fn expressions_need_a_cast_and_bad_values_name_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(
        &dir,
        "CREATE TABLE t (id INTEGER, n INTEGER, amount NUMERIC); INSERT INTO t VALUES (1, 2, 3.5), (2, 'x', 1);",
    );
    let q = |casts: serde_json::Value| {
        source(
            json!({"type": "sqlite", "path": path, "query": "select id, n * 2 as twice from t where id = 1", "casts": casts}),
        )
    };
    let m = q(json!({})).schema().await.unwrap_err().to_string();
    assert!(m.contains("column `twice` has no declared type") && m.contains("\"casts\""), "{m}");
    let b = scan_all(q(json!({"twice": "int64"})).as_ref(), &ScanRequest::all()).await;
    assert_eq!(cell(&b, "twice", 0).as_deref(), Some("4"));
    let m = source(json!({"type": "sqlite", "path": path, "table": "t"})).schema().await.unwrap_err().to_string();
    assert!(m.contains("column `amount` has type NUMERIC without a precision"), "{m}");
    // A text value in an INTEGER column is an error naming the column.
    let s = source(json!({"type": "sqlite", "path": path, "table": "t", "casts": {"amount": "float64"}}));
    use futures::StreamExt;
    let e = s.scan(&ScanRequest::all()).await.unwrap().next().await.unwrap().unwrap_err();
    assert!(e.to_string().contains("column `n` (INTEGER)") && e.to_string().contains("\"x\""), "{e}");
    let s =
        source(json!({"type": "sqlite", "path": path, "table": "t", "casts": {"amount": "float64", "n": "string"}}));
    let b = scan_all(s.as_ref(), &ScanRequest::all()).await;
    assert_eq!((cell(&b, "n", 1).as_deref(), cell(&b, "amount", 0).as_deref()), (Some("x"), Some("3.5")));
}

#[tokio::test]
async fn incremental_reads_with_ties_lose_and_double_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut sql = "CREATE TABLE ev (id INTEGER PRIMARY KEY, updated_at TEXT NOT NULL, v TEXT);".to_string();
    for i in (1..=20).rev() {
        sql += &format!("INSERT INTO ev VALUES ({i}, '2024-01-01 00:00:0{}', 'v{i}');", i / 4);
    }
    let path = db(&dir, &sql);
    let s = source(json!({"type": "sqlite", "path": path, "table": "ev",
                          "cursor": {"column": "updated_at", "tie_breaker": "id"}, "batch_size": 3}));
    let all = scan_all(s.as_ref(), &ScanRequest::all()).await;
    assert!(all.iter().all(|b| b.num_rows() <= 3));
    assert_eq!(ids(&all, "id"), (1..=20).collect::<Vec<_>>());
    let end = s.cursor().await.unwrap().unwrap();
    assert_eq!(end, json!({"updated_at": "2024-01-01 00:00:05", "id": 20}));
    for take in 0..=7 {
        let (got, cursor) = read_interrupted(s.as_ref(), take, None).await;
        assert_exactly(&got, 1..=20);
        assert_eq!(cursor, Some(end.clone()));
    }
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(
        "INSERT INTO ev VALUES (21, '2024-01-01 00:00:05', 't'), (22, '2024-01-01 00:00:05', 't');
         UPDATE ev SET updated_at = '2024-01-02 00:00:00' WHERE id = 3;",
    )
    .unwrap();
    let mut resume = ScanRequest::all();
    resume.cursor = Some(end);
    assert_eq!(ids(&scan_all(s.as_ref(), &resume).await, "id"), vec![21, 22, 3]);
    source_conformance(s.as_ref()).await.unwrap();
}

#[tokio::test]
async fn a_big_table_streams_in_bounded_batches() {
    let dir = tempfile::tempdir().unwrap();
    let n = 100_000i64;
    let path = db(
        &dir,
        &format!(
            "CREATE TABLE big (id INTEGER PRIMARY KEY, g TEXT, x REAL);
             WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})
             INSERT INTO big SELECT i, 'g' || (i % 7), i * 0.5 FROM s;"
        ),
    );
    for (cfg, max) in [
        (json!({"type": "sqlite", "path": path, "table": "big", "batch_size": 1000}), 1000),
        (json!({"type": "sqlite", "path": path, "table": "big", "batch_size": 4096, "cursor": {"column": "id"}}), 4096),
    ] {
        let s = source(cfg);
        let batches = scan_all(s.as_ref(), &ScanRequest::all()).await;
        assert!(batches.iter().all(|b| b.num_rows() <= max && b.num_rows() > 0));
        let got = ids(&batches, "id");
        assert_eq!((got.len() as i64, got.iter().sum::<i64>()), (n, n * (n + 1) / 2));
    }
}

#[tokio::test]
async fn errors_name_the_source_and_ingest_works_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(
        &dir,
        "CREATE TABLE c (id INTEGER PRIMARY KEY, name TEXT, score REAL, active BOOLEAN, signed_up TIMESTAMP);
         INSERT INTO c VALUES (1, 'a', 10, 0, '2024-01-01 00:00:00'), (2, 'b', 60, 1, '2024-01-02 00:00:00'),
           (3, 'c', 70, 1, NULL), (4, 'd', 40, 1, NULL);",
    );
    let missing = dir.path().join("nope.db");
    let e = source(json!({"type": "sqlite", "path": missing, "table": "c"})).schema().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ingest);
    assert!(e.to_string().contains("does not exist") && e.to_string().contains("source `sqlite:"), "{e}");
    assert!(!missing.exists(), "a missing file is not created");
    let m = source(json!({"type": "sqlite", "path": path, "table": "nope"})).schema().await.unwrap_err().to_string();
    assert!(m.contains("no such table: nope"), "{m}");
    let m = source(json!({"type": "sqlite", "path": path, "table": "c", "cursor": {"column": "zz"}}))
        .schema()
        .await
        .unwrap_err()
        .to_string();
    assert!(m.contains("cursor column `zz` is not in the result"), "{m}");
    let e =
        segkit_connectors::from_config(&json!({"type": "sqlite", "path": path, "url": "x", "table": "c"})).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Definition);

    let ws = Workspace::open(dir.path().join("ws")).await.unwrap();
    ws.define_entity(
        Entity::profile("customer", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("name", DataType::String))
            .attribute(Attribute::new("score", DataType::Float64))
            .attribute(Attribute::new("active", DataType::Bool))
            .attribute(Attribute::new("signed_up", DataType::Timestamp)),
    )
    .await
    .unwrap();
    let s = source(json!({"type": "sqlite", "path": path, "table": "c"}));
    let report = ws.ingest("customer", s.as_ref(), IngestOptions::default()).await.unwrap();
    assert_eq!((report.rows_written, report.rows_quarantined), (4, 0));
    ws.define_segment(segkit::SegmentDefinition::new(
        "active_high",
        "customer",
        segkit::rules::Rule::parse(
            &json!({"and": [{"attribute": "active", "op": "eq", "value": true},
                            {"attribute": "score", "op": "gt", "value": 50}]}),
            segkit::rules::Dialect::Segkit,
        )
        .unwrap(),
    ))
    .await
    .unwrap();
    ws.evaluate("active_high").await.unwrap();
    assert_eq!(ws.count("active_high").await.unwrap(), 2);
    let rows: Vec<RecordBatch> = ws.sql("SELECT count(*) FROM customer WHERE signed_up IS NULL").await.unwrap();
    assert_eq!(rows[0].column(0).len(), 1);
}
