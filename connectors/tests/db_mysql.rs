//! The MySQL / MariaDB connector against a real server (`SEGKIT_TEST_MYSQL_URL`, started by
//! scripts/db-servers.sh).

mod db_common;

use db_common::*;
use mysql_async::prelude::Queryable;
use segkit::deps::arrow::array::{Array, RecordBatch};
use segkit::deps::arrow::datatypes::{DataType as ArrowType, TimeUnit};
use segkit::testing::source_conformance;
use segkit::{Attribute, DataType, Entity, ErrorKind, IngestOptions, ScanRequest, Workspace};
use serde_json::json;

fn url() -> String {
    server_url("SEGKIT_TEST_MYSQL_URL")
}

fn url_and_password() -> (String, String) {
    let mut u = url::Url::parse(&url()).unwrap();
    let p = u.password().unwrap().to_string();
    u.set_password(None).unwrap();
    (u.to_string(), p)
}

async fn exec(sql: &str) {
    let mut conn = mysql_async::Conn::from_url(url()).await.unwrap();
    for stmt in sql.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        conn.query_drop(stmt).await.unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
    conn.disconnect().await.unwrap();
}

#[tokio::test]
async fn every_type_maps_with_nulls_and_unsigned_integers() {
    let t = table("my_types");
    exec(&format!(
        "CREATE TABLE {t} (id BIGINT PRIMARY KEY, ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED,
           mi MEDIUMINT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED, fl FLOAT, db DOUBLE, dc DECIMAL(12, 3),
           bo BOOLEAN, bt BIT(1), vc VARCHAR(20), ch CHAR(3), tx TEXT, d DATE, tm TIME(6), dt DATETIME(6),
           ts TIMESTAMP(6) NULL DEFAULT NULL, j JSON, u UUID, bl BLOB, vb VARBINARY(8), e ENUM('sad', 'happy'),
           st SET('a', 'b'), yr YEAR);
         SET time_zone = '+02:00';
         INSERT INTO {t} VALUES (1, -128, 255, -32768, 65535, -8388608, 4294967295, -9223372036854775808,
           18446744073709551615, 1.5, -2.25, -12345.678, TRUE, b'1', 'héllo', 'ab', 'long text', '2024-02-29',
           '13:14:15.123456', '2024-03-01 12:34:56.789', '2024-03-01 12:34:56.789', '{{\"a\": [1, 2]}}',
           'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', x'0001ff', x'cafe', 'happy', 'a,b', 2024);
         INSERT INTO {t} (id) VALUES (2)"
    ))
    .await;
    let full = source(json!({"type": "mysql", "url": url(), "table": t}));
    let keyset =
        source(json!({"type": "mariadb", "url": url(), "table": t, "cursor": {"column": "id"}, "batch_size": 1}));
    let schema = full.schema().await.unwrap();
    let types: Vec<(String, ArrowType)> =
        schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
    let expected = [
        ("id", ArrowType::Int64),
        ("ti", ArrowType::Int8),
        ("tu", ArrowType::UInt8),
        ("si", ArrowType::Int16),
        ("su", ArrowType::UInt16),
        ("mi", ArrowType::Int32),
        ("iu", ArrowType::UInt32),
        ("bi", ArrowType::Int64),
        ("bu", ArrowType::UInt64),
        ("fl", ArrowType::Float32),
        ("db", ArrowType::Float64),
        ("dc", ArrowType::Decimal128(12, 3)),
        ("bo", ArrowType::Boolean),
        ("bt", ArrowType::Boolean),
        ("vc", ArrowType::Utf8),
        ("ch", ArrowType::Utf8),
        ("tx", ArrowType::Utf8),
        ("d", ArrowType::Date32),
        ("tm", ArrowType::Time64(TimeUnit::Microsecond)),
        ("dt", ArrowType::Timestamp(TimeUnit::Microsecond, None)),
        ("ts", ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))),
        ("j", ArrowType::Utf8),
        ("u", ArrowType::Utf8),
        ("bl", ArrowType::Binary),
        ("vb", ArrowType::Binary),
        ("e", ArrowType::Utf8),
        ("st", ArrowType::Utf8),
        ("yr", ArrowType::Int16),
    ];
    assert_eq!(types, expected.iter().map(|(n, t)| (n.to_string(), t.clone())).collect::<Vec<_>>());
    for (what, src) in [("stream", &full), ("keyset", &keyset)] {
        let batches = scan_all(src.as_ref(), &ScanRequest::all()).await;
        let b = segkit::deps::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(b.num_rows(), 2, "{what}");
        let row1 = [
            ("ti", "-128"),
            ("tu", "255"),
            ("si", "-32768"),
            ("su", "65535"),
            ("mi", "-8388608"),
            ("iu", "4294967295"),
            ("bi", "-9223372036854775808"),
            ("bu", "18446744073709551615"),
            ("fl", "1.5"),
            ("db", "-2.25"),
            ("dc", "-12345.678"),
            ("bo", "true"),
            ("bt", "true"),
            ("vc", "héllo"),
            ("ch", "ab"),
            ("tx", "long text"),
            ("d", "2024-02-29"),
            ("tm", "13:14:15.123456"),
            ("dt", "2024-03-01T12:34:56.789"),
            ("ts", "2024-03-01T10:34:56.789Z"),
            ("j", "{\"a\": [1, 2]}"),
            ("u", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            ("bl", "0001ff"),
            ("vb", "cafe"),
            ("e", "happy"),
            ("st", "a,b"),
            ("yr", "2024"),
        ];
        for (col, want) in row1 {
            assert_eq!(cell(std::slice::from_ref(&b), col, 0).as_deref(), Some(want), "{what}: column {col}");
        }
        for f in schema.fields().iter().skip(1) {
            assert!(b.column_by_name(f.name()).unwrap().is_null(1), "{what}: {} is NULL in row 2", f.name());
        }
    }
    source_conformance(full.as_ref()).await.unwrap();
    source_conformance(keyset.as_ref()).await.unwrap();
}

#[tokio::test]
async fn what_does_not_map_is_an_error_naming_the_column_or_a_declared_cast() {
    let t = table("my_nomap");
    exec(&format!(
        "CREATE TABLE {t} (id BIGINT, huge DECIMAL(50, 2), g POINT, long_time TIME, flag TINYINT(1));
         INSERT INTO {t} VALUES (1, 123456789012345678901234567890123456789012345.67, POINT(1, 2), '30:00:00', 2)"
    ))
    .await;
    let cfg = |casts: serde_json::Value| json!({"type": "mysql", "url": url(), "table": t, "casts": casts});
    let m = source(cfg(json!({}))).schema().await.unwrap_err().to_string();
    assert!(m.contains("column `huge` has type decimal(50, 2)") && m.contains("\"casts\""), "{m}");
    let m = source(cfg(json!({"huge": "string"}))).schema().await.unwrap_err().to_string();
    assert!(m.contains("column `g` has type geometry"), "{m}");
    // Geometry has no text cast in MariaDB; leave it out with a query.
    let q = format!("select id, huge, long_time, flag from {t}");
    let cfg = |casts: serde_json::Value| json!({"type": "mysql", "url": url(), "query": q, "casts": casts});
    let s = source(cfg(json!({"huge": "string"})));
    // A TIME beyond one day, and 2 in a TINYINT(1) (read as bool), are refused when read, naming the column.
    use futures::StreamExt;
    let e = s.scan(&ScanRequest::all()).await.unwrap().next().await.unwrap().unwrap_err();
    assert!(e.to_string().contains("column `long_time`") && e.to_string().contains("outside one day"), "{e}");
    let s = source(cfg(json!({"huge": "string", "long_time": "string"})));
    let e = s.scan(&ScanRequest::all()).await.unwrap().next().await.unwrap().unwrap_err();
    assert!(e.to_string().contains("column `flag`") && e.to_string().contains("Boolean"), "{e}");
    let s = source(cfg(json!({"huge": "string", "long_time": "string", "flag": "int64"})));
    let b = scan_all(s.as_ref(), &ScanRequest::all()).await;
    assert_eq!(cell(&b, "huge", 0).as_deref(), Some("123456789012345678901234567890123456789012345.67"));
    assert_eq!(cell(&b, "long_time", 0).as_deref(), Some("30:00:00"));
    assert_eq!(cell(&b, "flag", 0).as_deref(), Some("2"));
}

async fn ties_table() -> String {
    let t = table("my_ties");
    exec(&format!(
        "CREATE TABLE {t} (id BIGINT PRIMARY KEY, updated_at DATETIME(6) NOT NULL, v TEXT);
         INSERT INTO {t} SELECT 21 - seq, TIMESTAMPADD(SECOND, (21 - seq) DIV 4, '2024-01-01 00:00:00'), CONCAT('v', 21 - seq)
           FROM seq_1_to_20"
    ))
    .await;
    t
}

#[tokio::test]
async fn incremental_reads_with_ties_lose_and_double_nothing_across_batch_boundaries() {
    let t = ties_table().await;
    let s = source(json!({"type": "mysql", "url": url(), "table": t,
                          "cursor": {"column": "updated_at", "tie_breaker": "id"}, "batch_size": 3}));
    let all = scan_all(s.as_ref(), &ScanRequest::all()).await;
    assert!(all.iter().all(|b| b.num_rows() <= 3));
    assert_eq!(ids(&all, "id"), (1..=20).collect::<Vec<_>>());
    let end = s.cursor().await.unwrap().unwrap();
    assert_eq!(end, json!({"updated_at": "2024-01-01T00:00:05.000000", "id": 20}));
    for take in 0..=7 {
        let (got, cursor) = read_interrupted(s.as_ref(), take, None).await;
        assert_exactly(&got, 1..=20);
        assert_eq!(cursor, Some(end.clone()), "after {take} batches and a resume");
    }
    exec(&format!(
        "INSERT INTO {t} VALUES (21, '2024-01-01 00:00:05', 'tie'), (22, '2024-01-01 00:00:05', 'tie');
         UPDATE {t} SET updated_at = '2024-01-02 00:00:00' WHERE id = 3"
    ))
    .await;
    let mut resume = ScanRequest::all();
    resume.cursor = Some(end);
    assert_eq!(ids(&scan_all(s.as_ref(), &resume).await, "id"), vec![21, 22, 3]);
    assert_eq!(s.cursor().await.unwrap(), Some(json!({"updated_at": "2024-01-02T00:00:00.000000", "id": 3})));
    source_conformance(s.as_ref()).await.unwrap();
}

#[tokio::test]
async fn a_query_source_reads_projected_and_incrementally() {
    let t = ties_table().await;
    let s = source(json!({"type": "mysql", "url": url(),
                          "query": format!("select id, upper(v) as v_up, updated_at from {t} where id % 2 = 0"),
                          "cursor": {"column": "updated_at", "tie_breaker": "id"}, "batch_size": 4}));
    let all = scan_all(s.as_ref(), &ScanRequest::all()).await;
    assert_eq!(ids(&all, "id"), (1..=10).map(|i| i * 2).collect::<Vec<_>>());
    assert_eq!(cell(&all, "v_up", 0).as_deref(), Some("V2"));
    let p = scan_all(s.as_ref(), &ScanRequest::all().with_projection(vec!["v_up".into()])).await;
    assert_eq!((p[0].num_columns(), p.iter().map(RecordBatch::num_rows).sum::<usize>()), (1, 10));
    source_conformance(s.as_ref()).await.unwrap();
}

#[tokio::test]
async fn a_big_table_streams_in_bounded_batches() {
    let t = table("my_big");
    let n = 100_000i64;
    exec(&format!(
        "CREATE TABLE {t} (id BIGINT PRIMARY KEY, g VARCHAR(4), x DOUBLE);
         INSERT INTO {t} SELECT seq, CONCAT('g', seq % 7), seq * 0.5 FROM seq_1_to_{n}"
    ))
    .await;
    for (cfg, max) in [
        (json!({"type": "mysql", "url": url(), "table": t, "batch_size": 1000}), 1000),
        (json!({"type": "mysql", "url": url(), "table": t, "batch_size": 4096, "cursor": {"column": "id"}}), 4096),
    ] {
        let s = source(cfg);
        let batches = scan_all(s.as_ref(), &ScanRequest::all()).await;
        assert!(batches.iter().all(|b| b.num_rows() <= max && b.num_rows() > 0));
        let got = ids(&batches, "id");
        assert_eq!(got.len() as i64, n);
        assert_eq!(got.iter().sum::<i64>(), n * (n + 1) / 2);
    }
}

#[tokio::test]
async fn errors_name_the_source_and_never_show_the_password() {
    let t = ties_table().await;
    let (bare, password) = url_and_password();
    let mut u = url::Url::parse(&bare).unwrap();
    u.set_password(Some("wrong-Secret-4711")).unwrap();
    let s = source(json!({"type": "mysql", "url": u.as_str(), "table": t}));
    assert!(!s.name().contains("wrong-Secret-4711") && !format!("{s:?}").contains("wrong-Secret-4711"));
    let e = s.schema().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ingest);
    let m = err_text(&e);
    assert!(m.contains("Access denied") && m.contains(&s.name()) && !m.contains("wrong-Secret-4711"), "{m}");
    std::env::set_var("SEGKIT_TEST_MY_PW", &password);
    let s = source(json!({"type": "mysql", "url": bare, "password": "env:SEGKIT_TEST_MY_PW", "table": t}));
    assert_eq!(ids(&scan_all(s.as_ref(), &ScanRequest::all()).await, "id").len(), 20);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s = source(
        json!({"type": "mysql", "url": format!("mysql://segkit:pw-Hidden-1@127.0.0.1:{closed}/segkit"), "table": t}),
    );
    let m = err_text(&s.schema().await.unwrap_err());
    assert!(m.contains("cannot connect") && !m.contains("pw-Hidden-1"), "{m}");
    let m = source(json!({"type": "mysql", "url": url(), "table": "no_such_table"}))
        .schema()
        .await
        .unwrap_err()
        .to_string();
    assert!(m.contains("no_such_table") && m.contains("doesn't exist") && m.contains("source `mysql:"), "{m}");
    let m = source(json!({"type": "mysql", "url": url(), "query": format!("select nope from {t}")}))
        .schema()
        .await
        .unwrap_err()
        .to_string();
    assert!(m.contains("Unknown column 'nope'"), "{m}");
}

#[tokio::test]
async fn ingest_end_to_end_into_an_entity_and_a_segment() {
    let t = table("my_e2e");
    exec(&format!(
        "CREATE TABLE {t} (id BIGINT PRIMARY KEY, name VARCHAR(40), score DOUBLE, active BOOLEAN, signed_up TIMESTAMP(6) NULL);
         INSERT INTO {t} SELECT seq, CONCAT('user ', seq), seq * 10, seq % 2 = 0, TIMESTAMPADD(DAY, seq, '2024-01-01')
           FROM seq_1_to_10"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
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
    let s = source(json!({"type": "mysql", "url": url(), "table": t, "batch_size": 3}));
    let report = ws.ingest("customer", s.as_ref(), IngestOptions::default()).await.unwrap();
    assert_eq!((report.rows_written, report.rows_quarantined), (10, 0), "{report:?}");
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
    assert_eq!(ws.count("active_high").await.unwrap(), 3);
}
