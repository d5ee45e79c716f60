//! The PostgreSQL connector against a real server (`SEGKIT_TEST_PG_URL`, started by scripts/db-servers.sh).

mod db_common;

use db_common::*;
use segkit::deps::arrow::array::{Array, AsArray, RecordBatch};
use segkit::deps::arrow::datatypes::{DataType as ArrowType, Int32Type, TimeUnit};
use segkit::testing::source_conformance;
use segkit::{Attribute, DataType, Entity, ErrorKind, IngestOptions, ScanRequest, Workspace};
use serde_json::json;
use tokio_postgres::NoTls;

fn url() -> String {
    server_url("SEGKIT_TEST_PG_URL")
}

/// The URL without its password, and the password.
fn url_and_password() -> (String, String) {
    let mut u = url::Url::parse(&url()).unwrap();
    let p = u.password().unwrap().to_string();
    u.set_password(None).unwrap();
    (u.to_string(), p)
}

async fn exec(sql: &str) {
    let (client, conn) = tokio_postgres::connect(&url(), NoTls).await.unwrap();
    tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap();
}

#[tokio::test]
async fn every_type_maps_with_nulls_in_full_and_keyset_scans() {
    let t = table("pg_types");
    exec(&format!(
        "CREATE TYPE {t}_mood AS ENUM ('sad', 'happy');
         CREATE TABLE {t} (id int8 PRIMARY KEY, i2 int2, i4 int4, f4 float4, f8 float8, n numeric(12, 3),
           b bool, tx text, vc varchar(10), ch char(3), d date, tm time, ts timestamp, tstz timestamptz,
           j json, jb jsonb, ia int4[], ta text[], u uuid, by bytea, e {t}_mood, big numeric(38, 0));
         SET TIME ZONE 'Europe/Berlin';
         INSERT INTO {t} VALUES (1, -7, 2147483647, 1.5, -2.25, -12345.678, true, 'héllo', 'vc', 'ab',
           '2024-02-29', '13:14:15.123456', '2024-03-01 12:34:56.789', '2024-03-01 12:34:56.789+02',
           '{{\"a\": [1, 2]}}', '{{\"b\": null}}', '{{1,NULL,3}}', '{{\"x\",\"y z\"}}',
           'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x0001ff', 'happy', 12345678901234567890123456789012345678);
         INSERT INTO {t} (id) VALUES (2);
         INSERT INTO {t} (id, ia, ta) VALUES (3, '{{}}', '{{NULL}}');"
    ))
    .await;
    let full = source(json!({"type": "postgres", "url": url(), "table": t}));
    let keyset =
        source(json!({"type": "postgres", "url": url(), "table": t, "cursor": {"column": "id"}, "batch_size": 2}));
    let schema = full.schema().await.unwrap();
    let types: Vec<(String, ArrowType)> =
        schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
    let list = |t: ArrowType| {
        ArrowType::List(std::sync::Arc::new(segkit::deps::arrow::datatypes::Field::new("item", t, true)))
    };
    let expected = vec![
        ("id", ArrowType::Int64),
        ("i2", ArrowType::Int16),
        ("i4", ArrowType::Int32),
        ("f4", ArrowType::Float32),
        ("f8", ArrowType::Float64),
        ("n", ArrowType::Decimal128(12, 3)),
        ("b", ArrowType::Boolean),
        ("tx", ArrowType::Utf8),
        ("vc", ArrowType::Utf8),
        ("ch", ArrowType::Utf8),
        ("d", ArrowType::Date32),
        ("tm", ArrowType::Time64(TimeUnit::Microsecond)),
        ("ts", ArrowType::Timestamp(TimeUnit::Microsecond, None)),
        ("tstz", ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))),
        ("j", ArrowType::Utf8),
        ("jb", ArrowType::Utf8),
        ("ia", list(ArrowType::Int32)),
        ("ta", list(ArrowType::Utf8)),
        ("u", ArrowType::Utf8),
        ("by", ArrowType::Binary),
        ("e", ArrowType::Utf8),
        ("big", ArrowType::Decimal128(38, 0)),
    ];
    assert_eq!(types, expected.iter().map(|(n, t)| (n.to_string(), t.clone())).collect::<Vec<_>>());
    for (what, src) in [("COPY", &full), ("keyset", &keyset)] {
        let batches = scan_all(src.as_ref(), &ScanRequest::all()).await;
        let b = segkit::deps::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        assert_eq!(b.num_rows(), 3, "{what}");
        let row1 = [
            ("id", "1"),
            ("i2", "-7"),
            ("i4", "2147483647"),
            ("f4", "1.5"),
            ("f8", "-2.25"),
            ("n", "-12345.678"),
            ("b", "true"),
            ("tx", "héllo"),
            ("vc", "vc"),
            ("ch", "ab "),
            ("d", "2024-02-29"),
            ("tm", "13:14:15.123456"),
            ("ts", "2024-03-01T12:34:56.789"),
            ("tstz", "2024-03-01T10:34:56.789Z"),
            ("j", "{\"a\": [1, 2]}"),
            ("jb", "{\"b\": null}"),
            ("u", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            ("by", "0001ff"),
            ("e", "happy"),
            ("big", "12345678901234567890123456789012345678"),
        ];
        for (col, want) in row1 {
            assert_eq!(cell(std::slice::from_ref(&b), col, 0).as_deref(), Some(want), "{what}: column {col}");
        }
        for f in schema.fields().iter().skip(1) {
            assert!(b.column_by_name(f.name()).unwrap().is_null(1), "{what}: {} is NULL in row 2", f.name());
        }
        let ia = b.column_by_name("ia").unwrap().as_list::<i32>();
        let first = ia.value(0);
        let first = first.as_primitive::<Int32Type>();
        assert_eq!(first.iter().collect::<Vec<_>>(), vec![Some(1), None, Some(3)], "{what}");
        assert_eq!(ia.value(2).len(), 0, "{what}: an empty array is an empty list");
        let ta = b.column_by_name("ta").unwrap().as_list::<i32>();
        assert_eq!(ta.value(0).as_string::<i32>().iter().collect::<Vec<_>>(), vec![Some("x"), Some("y z")]);
        assert!(ta.value(2).is_null(0), "{what}: a NULL element");
    }
    source_conformance(full.as_ref()).await.unwrap();
    source_conformance(keyset.as_ref()).await.unwrap();
}

#[tokio::test]
async fn what_does_not_map_is_an_error_naming_the_column_or_a_declared_cast() {
    let t = table("pg_nomap");
    exec(&format!(
        "CREATE TABLE {t} (id int8, amount numeric, iv interval, m int4[][]);
         INSERT INTO {t} VALUES (1, 12.50, '1 day 2 hours', '{{{{1,2}},{{3,4}}}}');"
    ))
    .await;
    let cfg = |casts: serde_json::Value| json!({"type": "postgres", "url": url(), "table": t, "casts": casts});
    let e = source(cfg(json!({}))).schema().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ingest);
    let m = e.to_string();
    assert!(m.contains("column `amount` has type numeric without precision and scale"), "{m}");
    assert!(m.contains("\"casts\": {\"amount\": \"string\"}"), "the error says how to fix it: {m}");
    let m = source(cfg(json!({"amount": "string"}))).schema().await.unwrap_err().to_string();
    assert!(m.contains("column `iv` has type interval"), "{m}");
    // int4[][] is the same type as int4[]: a multi-dimensional value is refused when read, naming the column.
    let s = source(cfg(json!({"amount": "float64", "iv": "string"})));
    use futures::StreamExt;
    let e = s.scan(&ScanRequest::all()).await.unwrap().next().await.unwrap().unwrap_err();
    assert!(e.to_string().contains("column `m` (_int4): a 2-dimensional array does not map"), "{e}");
    let s = source(cfg(json!({"amount": "float64", "iv": "string", "m": "string"})));
    let b = scan_all(s.as_ref(), &ScanRequest::all()).await;
    assert_eq!(cell(&b, "amount", 0).as_deref(), Some("12.5"));
    assert_eq!(cell(&b, "iv", 0).as_deref(), Some("1 day 02:00:00"));
    assert_eq!(cell(&b, "m", 0).as_deref(), Some("{{1,2},{3,4}}"));
    let m = source(cfg(json!({"nope": "string"}))).schema().await.unwrap_err().to_string();
    assert!(m.contains("`casts` names column `nope`"), "{m}");
    let e = segkit_connectors::from_config(&cfg(json!({"amount": "decimal"}))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Definition, "{e}");
}

async fn ties_table() -> String {
    let t = table("pg_ties");
    // 20 rows, updated_at in groups of four equal values; ids not in cursor order within the table.
    exec(&format!(
        "CREATE TABLE {t} (id int8 PRIMARY KEY, updated_at timestamptz NOT NULL, v text);
         INSERT INTO {t} SELECT i, '2024-01-01 00:00:00+00'::timestamptz + (i / 4) * interval '1 second', 'v' || i
           FROM generate_series(20, 1, -1) AS i;"
    ))
    .await;
    t
}

#[tokio::test]
async fn incremental_reads_with_ties_lose_and_double_nothing_across_batch_boundaries() {
    let t = ties_table().await;
    let s = source(json!({"type": "postgres", "url": url(), "table": t,
                          "cursor": {"column": "updated_at", "tie_breaker": "id"}, "batch_size": 3}));
    assert!(s.capabilities().incremental);
    let all = scan_all(s.as_ref(), &ScanRequest::all()).await;
    assert!(all.iter().all(|b| b.num_rows() <= 3));
    assert_eq!(ids(&all, "id"), (1..=20).collect::<Vec<_>>(), "keyset order is (updated_at, id)");
    let end = s.cursor().await.unwrap().unwrap();
    assert_eq!(end, json!({"updated_at": "2024-01-01T00:00:05.000000Z", "id": 20}));
    for take in 0..=7 {
        let (got, cursor) = read_interrupted(s.as_ref(), take, None).await;
        assert_exactly(&got, 1..=20);
        assert_eq!(cursor, Some(end.clone()), "after {take} batches and a resume");
    }
    // New rows tied with the last cursor value, and a row updated later, are read exactly once on resume.
    exec(&format!(
        "INSERT INTO {t} VALUES (21, '2024-01-01 00:00:05+00', 'tie'), (22, '2024-01-01 00:00:05+00', 'tie');
         UPDATE {t} SET updated_at = '2024-01-02 00:00:00+00' WHERE id = 3;"
    ))
    .await;
    let mut resume = ScanRequest::all();
    resume.cursor = Some(end);
    let more = scan_all(s.as_ref(), &resume).await;
    assert_eq!(ids(&more, "id"), vec![21, 22, 3]);
    assert_eq!(s.cursor().await.unwrap(), Some(json!({"updated_at": "2024-01-02T00:00:00.000000Z", "id": 3})));
    // Nothing new: the cursor stays where it was.
    let mut again = ScanRequest::all();
    again.cursor = s.cursor().await.unwrap();
    assert!(ids(&scan_all(s.as_ref(), &again).await, "id").is_empty());
    assert_eq!(s.cursor().await.unwrap(), again.cursor);
    // A cursor that does not fit is refused.
    let mut bad = ScanRequest::all();
    bad.cursor = Some(json!({"updated_at": "2024-01-01T00:00:00Z"}));
    let e = s.scan(&bad).await.err().expect("a cursor without the tie-breaker is refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("`updated_at` and `id`"), "{e}");
    source_conformance(s.as_ref()).await.unwrap();
}

#[tokio::test]
async fn a_query_source_reads_projected_and_incrementally() {
    let t = ties_table().await;
    let q = format!("select id, upper(v) as v_up, updated_at from {t} where id % 2 = 0;");
    let s = source(json!({"type": "postgresql", "url": url(), "query": q,
                          "cursor": {"column": "updated_at", "tie_breaker": "id"}, "batch_size": 4}));
    assert!(s.name().ends_with("(query)"), "{}", s.name());
    let all = scan_all(s.as_ref(), &ScanRequest::all()).await;
    assert_eq!(ids(&all, "id"), (1..=10).map(|i| i * 2).collect::<Vec<_>>());
    assert_eq!(cell(&all, "v_up", 0).as_deref(), Some("V2"));
    // Projection without the cursor columns still reads in cursor order and reports the cursor.
    let p = scan_all(s.as_ref(), &ScanRequest::all().with_projection(vec!["v_up".into()])).await;
    assert_eq!(p[0].schema().fields().len(), 1);
    assert_eq!(p.iter().map(RecordBatch::num_rows).sum::<usize>(), 10);
    assert_eq!(cell(&p, "v_up", 9).as_deref(), Some("V20"));
    assert_eq!(s.cursor().await.unwrap(), Some(json!({"updated_at": "2024-01-01T00:00:05.000000Z", "id": 20})));
    let e = s.scan(&ScanRequest::all().with_projection(vec!["nope".into()])).await.err().unwrap();
    assert!(e.to_string().contains("has no field `nope`"), "{e}");
    // A full (COPY) query source.
    let full =
        source(json!({"type": "postgres", "url": url(), "query": format!("select count(*)::int8 as n from {t}")}));
    assert_eq!(ids(&scan_all(full.as_ref(), &ScanRequest::all()).await, "n"), vec![20]);
    source_conformance(s.as_ref()).await.unwrap();
}

#[tokio::test]
async fn a_big_table_streams_in_bounded_batches() {
    let t = table("pg_big");
    let n = 120_000i64;
    exec(&format!(
        "CREATE TABLE {t} (id int8 PRIMARY KEY, g text, x float8);
         INSERT INTO {t} SELECT i, 'g' || (i % 7), i * 0.5 FROM generate_series(1, {n}) AS i;"
    ))
    .await;
    for (cfg, max) in [
        (json!({"type": "postgres", "url": url(), "table": t, "batch_size": 1000}), 1000),
        (json!({"type": "postgres", "url": url(), "table": t, "batch_size": 4096, "cursor": {"column": "id"}}), 4096),
    ] {
        let s = source(cfg);
        let batches = scan_all(s.as_ref(), &ScanRequest::all()).await;
        assert!(batches.iter().all(|b| b.num_rows() <= max && b.num_rows() > 0));
        assert!(batches.len() as i64 >= n / max as i64);
        let got = ids(&batches, "id");
        assert_eq!(got.len() as i64, n);
        assert_eq!(got.iter().sum::<i64>(), n * (n + 1) / 2);
    }
    // A consumer that stops early does not make the producer read the rest into memory: dropping the stream
    // ends the scan (the next scan on the same source works).
    let s = source(json!({"type": "postgres", "url": url(), "table": t, "batch_size": 100}));
    {
        let mut st = s.scan(&ScanRequest::all()).await.unwrap();
        use futures::StreamExt;
        assert_eq!(st.next().await.unwrap().unwrap().num_rows(), 100);
    }
    assert_eq!(ids(&scan_all(s.as_ref(), &ScanRequest::all()).await, "id").len() as i64, n);
}

#[tokio::test]
async fn errors_name_the_source_and_never_show_the_password() {
    let t = ties_table().await;
    let (bare, password) = url_and_password();
    // Wrong password inside the URL.
    let mut u = url::Url::parse(&bare).unwrap();
    u.set_password(Some("wrong-Secret-4711")).unwrap();
    let s = source(json!({"type": "postgres", "url": u.as_str(), "table": t}));
    assert!(!s.name().contains("wrong-Secret-4711") && s.name().contains("***"), "{}", s.name());
    assert!(!format!("{s:?}").contains("wrong-Secret-4711"));
    let e = s.schema().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ingest);
    let m = err_text(&e);
    assert!(m.contains("password authentication failed"), "{m}");
    assert!(m.contains(&s.name()) && !m.contains("wrong-Secret-4711"), "{m}");
    // Wrong password from the environment.
    std::env::set_var("SEGKIT_TEST_PG_BAD_PW", "other-Secret-0815");
    let s = source(json!({"type": "postgres", "url": bare, "password": "env:SEGKIT_TEST_PG_BAD_PW", "table": t}));
    let m = err_text(&s.schema().await.unwrap_err());
    assert!(m.contains("password authentication failed") && !m.contains("other-Secret-0815"), "{m}");
    // The right one from the environment works.
    std::env::set_var("SEGKIT_TEST_PG_PW", &password);
    let s = source(json!({"type": "postgres", "url": bare, "password": "env:SEGKIT_TEST_PG_PW", "table": t}));
    assert_eq!(ids(&scan_all(s.as_ref(), &ScanRequest::all()).await, "id").len(), 20);
    assert!(!format!("{s:?}").contains(&password) && !s.name().contains(&password));
    // An unset variable.
    let s = source(json!({"type": "postgres", "url": bare, "password": "env:SEGKIT_TEST_PG_UNSET_PW", "table": t}));
    let m = s.schema().await.unwrap_err().to_string();
    assert!(m.contains("environment variable `SEGKIT_TEST_PG_UNSET_PW`"), "{m}");
    // Unreachable server (a closed port).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s = source(
        json!({"type": "postgres", "url": format!("postgres://segkit:pw-Hidden-1@127.0.0.1:{closed}/segkit"), "table": t}),
    );
    let m = err_text(&s.schema().await.unwrap_err());
    assert!(
        m.contains("cannot connect") && m.contains(&format!("127.0.0.1:{closed}")) && !m.contains("pw-Hidden-1"),
        "{m}"
    );
    // Missing table, missing cursor column.
    let m = source(json!({"type": "postgres", "url": url(), "table": "no_such_table"}))
        .schema()
        .await
        .unwrap_err()
        .to_string();
    assert!(m.contains("relation \"no_such_table\" does not exist") && m.contains("source `postgres:"), "{m}");
    let m = source(
        json!({"type": "postgres", "url": url(), "table": t, "cursor": {"column": "nope", "tie_breaker": "id"}}),
    )
    .schema()
    .await
    .unwrap_err()
    .to_string();
    assert!(m.contains("cursor column `nope` is not in the result"), "{m}");
    // Config errors.
    let def = |c: serde_json::Value| segkit_connectors::from_config(&c).unwrap_err();
    let e = def(json!({"type": "postgres", "url": bare, "password": "hunter2", "table": t}));
    assert_eq!(e.kind(), ErrorKind::Definition);
    assert!(e.to_string().contains("source.password") && !e.to_string().contains("hunter2"), "{e}");
    assert!(def(json!({"type": "postgres", "url": bare, "table": t, "query": "select 1"}))
        .to_string()
        .contains("not both"));
    assert!(def(json!({"type": "postgres", "url": bare})).to_string().contains("missing `table`"));
    assert!(def(json!({"type": "postgres", "url": bare, "table": t, "batch_size": 0}))
        .to_string()
        .contains("batch_size"));
    assert!(def(json!({"type": "postgres", "url": bare, "table": t, "tabel": 1})).to_string().contains("tabel"));
    assert!(def(json!({"type": "postgres", "url": format!("{bare}?sslmode=require"), "table": t}))
        .to_string()
        .contains("sslmode=require is not supported"));
    let cursor_wrong =
        def(json!({"type": "postgres", "url": bare, "table": t, "cursor": {"column": "id", "tie_breaker": "id"}}));
    assert!(cursor_wrong.to_string().contains("tie_breaker"), "{cursor_wrong}");
}

#[tokio::test]
async fn a_null_cursor_value_is_an_error_not_a_lost_row() {
    let t = table("pg_nullcur");
    exec(&format!("CREATE TABLE {t} (id int8, c int8); INSERT INTO {t} VALUES (1, 1), (2, NULL);")).await;
    let s =
        source(json!({"type": "postgres", "url": url(), "table": t, "cursor": {"column": "c", "tie_breaker": "id"}}));
    use futures::StreamExt;
    let mut st = s.scan(&ScanRequest::all()).await.unwrap();
    let e = st.next().await.unwrap().unwrap_err();
    assert!(e.to_string().contains("cursor column `c` is NULL"), "{e}");
}

#[tokio::test]
async fn ingest_end_to_end_into_an_entity_and_a_segment() {
    let t = table("pg_e2e");
    exec(&format!(
        "CREATE TABLE {t} (id int8 PRIMARY KEY, name text, score float8, active bool, signed_up timestamptz, tags text[]);
         INSERT INTO {t} SELECT i, 'user ' || i, i * 10.0, i % 2 = 0, '2024-01-01+00'::timestamptz + i * interval '1 day',
           ARRAY['t' || (i % 3)] FROM generate_series(1, 10) AS i;"
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
            .attribute(Attribute::new("signed_up", DataType::Timestamp))
            .attribute(Attribute::new("tags", DataType::List(Box::new(DataType::String)))),
    )
    .await
    .unwrap();
    let s = source(json!({"type": "postgres", "url": url(), "table": t, "batch_size": 3}));
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
    assert_eq!(ws.count("active_high").await.unwrap(), 3, "ids 6, 8, 10");
    // A failing source commits nothing.
    let bad = source(json!({"type": "postgres", "url": url(), "table": "no_such_table"}));
    let e = ws.ingest("customer", bad.as_ref(), IngestOptions::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ingest);
    assert_eq!(ws.ingest_history("customer").unwrap().len(), 1);
}
