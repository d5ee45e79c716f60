//! Ingestion: coercion, quarantine with row numbers and reasons, field mapping, upsert/append/full refresh,
//! schema evolution and atomic commits under failure.

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use segkit::deps::arrow::array::{ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use segkit::deps::arrow::datatypes::{DataType as ArrowType, Field, Int32Type, Schema, SchemaRef};
use segkit::{
    Attribute, BatchStream, DataType, Entity, Error, FieldMapping, IngestMode, IngestOptions, Link, Mapping,
    ScanRequest, Source, Transform, Workspace,
};
use serde_json::json;

fn text_batch(cols: &[(&str, Vec<Option<&str>>)]) -> RecordBatch {
    RecordBatch::try_from_iter(cols.iter().map(|(n, v)| (*n, Arc::new(StringArray::from(v.clone())) as ArrayRef)))
        .unwrap()
}

async fn typed_ws() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).await.unwrap();
    ws.define_entity(
        Entity::profile("u", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("i", DataType::Int32))
            .attribute(Attribute::new("f", DataType::Float64))
            .attribute(Attribute::new("b", DataType::Bool))
            .attribute(Attribute::new("d", DataType::Date))
            .attribute(Attribute::new("ts", DataType::Timestamp))
            .attribute(Attribute::new("j", DataType::Json))
            .attribute(Attribute::new("tags", "list<int64>".parse().unwrap()))
            .attribute(Attribute::new("email", DataType::String).pii().required()),
    )
    .await
    .unwrap();
    (dir, ws)
}

#[tokio::test]
async fn text_is_coerced_and_bad_rows_quarantined_with_reasons() {
    let (_dir, ws) = typed_ws().await;
    let b = text_batch(&[
        (
            "id",
            vec![
                Some("1"),
                Some("2"),
                Some("3"),
                Some("4"),
                Some("5"),
                Some("6"),
                Some("7"),
                None,
                Some("2"),
                Some("10"),
                Some("11"),
                Some("12"),
            ],
        ),
        (
            "i",
            vec![
                Some(" 42 "),
                Some("x"),
                Some("3000000000"),
                None,
                Some("7.0"),
                Some("7.5"),
                Some(""),
                Some("1"),
                Some("1"),
                None,
                None,
                None,
            ],
        ),
        ("f", vec![Some("1.5"), None, None, None, Some("1e3"), None, None, None, None, Some("abc"), None, None]),
        (
            "b",
            vec![Some("yes"), Some("FALSE"), None, Some("maybe"), Some("1"), None, None, None, None, None, None, None],
        ),
        ("d", vec![Some("2026-06-30"), None, None, None, Some("2026-02-30"), None, None, None, None, None, None, None]),
        (
            "ts",
            vec![
                Some("2026-06-30T10:00:00+02:00"),
                Some("2026-06-30 08:00:00"),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                Some("yesterday"),
                None,
            ],
        ),
        ("j", vec![Some("{\"a\": [1, 2]}"), Some("{bad"), None, None, None, None, None, None, None, None, None, None]),
        (
            "tags",
            vec![
                Some("1|2|3"),
                Some("[4, 5]"),
                Some("x|1"),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                Some("[1,"),
            ],
        ),
        (
            "email",
            vec![
                Some("a@x"),
                Some("b@x"),
                Some("c@x"),
                Some("d@x"),
                Some("e@x"),
                Some("f@x"),
                None,
                Some("h@x"),
                Some("i@x"),
                Some("j@x"),
                Some("k@x"),
                Some("l@x"),
            ],
        ),
        ("extra", vec![None; 12]),
    ]);
    let r = ws.ingest_batches("u", vec![b], IngestOptions::default()).await.unwrap();
    assert_eq!(r.rows_read, 12);
    assert_eq!(r.ignored_fields, vec!["extra".to_string()]);
    let reasons: Vec<(u64, String)> = r.quarantine_sample.iter().map(|q| (q.row, q.reason.clone())).collect();
    let expect: Vec<(u64, &str)> = vec![
        (2, "attribute `i`: cannot read \"x\" as int32"),
        (3, "attribute `i`: cannot read \"3000000000\" as int32 (out of range)"),
        (4, "attribute `b`: cannot read \"maybe\" as bool"),
        (5, "attribute `d`: cannot read \"2026-02-30\" as date"),
        (6, "attribute `i`: cannot read \"7.5\" as int32"),
        (7, "attribute `email` is required but missing"),
        (8, "missing key `id`"),
        (10, "attribute `f`: cannot read \"abc\" as float64"),
        (11, "attribute `ts`: cannot read \"yesterday\" as timestamp"),
        (12, "attribute `tags`: \"[1,\" is not a JSON array"),
    ];
    // Row 2 also has a bad `j`: the first attribute's reason is kept. Row 9 repeats key 2, but row 2 was
    // quarantined, so row 9 is the first good row with that key and is written.
    assert_eq!(reasons.len(), expect.len(), "{reasons:#?}");
    for ((row, reason), (erow, eneedle)) in reasons.iter().zip(&expect) {
        assert_eq!(row, erow, "{reasons:#?}");
        assert!(reason.starts_with(eneedle) || reason.contains(eneedle), "row {row}: {reason:?} vs {eneedle:?}");
    }
    assert_eq!((r.rows_written, r.rows_quarantined), (2, 10));
    let rows = ws.sql("SELECT id, i, f, b, d, ts, j, tags FROM u WHERE id = 1").await.unwrap();
    let b = &rows[0];
    assert_eq!(b.num_rows(), 1);
    assert_eq!(b.column(1).as_primitive::<Int32Type>().value(0), 42);
    let shown = segkit::deps::arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string();
    assert!(shown.contains("2026-06-30T08:00:00Z"), "{shown}");
    assert!(shown.contains("[1, 2, 3]"), "{shown}");
    let q = ws.quarantine("u").await.unwrap();
    assert_eq!(q.num_rows(), 10);
    let record = q.column_by_name("record").unwrap().as_string::<i32>().value(0);
    assert!(record.contains("\"j\":\"{bad\""), "{record}");
    assert_eq!(q.column_by_name("ingest_id").unwrap().as_string::<i32>().value(0), r.id);
}

#[tokio::test]
async fn duplicate_keys_within_one_ingest_are_quarantined() {
    let (_dir, ws) = typed_ws().await;
    let b = text_batch(&[
        ("id", vec![Some("5"), Some("6"), Some("5"), Some("5")]),
        ("email", vec![Some("a"), Some("b"), Some("c"), Some("d")]),
    ]);
    let r = ws.ingest_batches("u", vec![b.clone(), b], IngestOptions::default()).await.unwrap();
    assert_eq!((r.rows_read, r.rows_written, r.rows_quarantined), (8, 2, 6));
    assert_eq!(r.quarantine_sample[0].row, 3);
    assert_eq!(r.quarantine_sample[0].reason, "duplicate key \"5\" (first seen at row 1)");
    assert_eq!(r.quarantine_sample[2].row, 5, "row numbers continue across batches");
}

#[tokio::test]
async fn pii_values_never_appear_in_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).await.unwrap();
    ws.define_entity(
        Entity::profile("p", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("birth", DataType::Date).pii()),
    )
    .await
    .unwrap();
    let b = text_batch(&[("id", vec![Some("1")]), ("birth", vec![Some("secret-1984")])]);
    let r = ws.ingest_batches("p", vec![b], IngestOptions::default()).await.unwrap();
    let reason = &r.quarantine_sample[0].reason;
    assert!(reason.contains("<pii masked>") && !reason.contains("secret"), "{reason}");
}

#[tokio::test]
async fn typed_arrow_input_is_cast_and_checked() {
    let (_dir, ws) = typed_ws().await;
    let b = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
        ("i", Arc::new(Float64Array::from(vec![Some(1.0), Some(2.5), Some(1e12)])) as ArrayRef),
        ("email", Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef),
    ])
    .unwrap();
    let r = ws.ingest_batches("u", vec![b], IngestOptions::default()).await.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined), (1, 2));
    assert!(r.quarantine_sample[0].reason.contains("fractional"), "{:?}", r.quarantine_sample);
    assert_eq!(r.quarantine_sample[1].row, 3);
}

#[tokio::test]
async fn mapping_renames_constants_and_transforms() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).await.unwrap();
    ws.define_entity(
        Entity::profile("c", "id")
            .attribute(Attribute::new("id", DataType::String))
            .attribute(Attribute::new("country", DataType::String))
            .attribute(Attribute::new("source", DataType::String))
            .attribute(Attribute::new("seen", DataType::Timestamp))
            .attribute(Attribute::new("n", DataType::Int64)),
    )
    .await
    .unwrap();
    let mapping = Mapping::from_json(&json!({
        "id": {"source": "Customer ID", "transforms": ["trim", "lower"]},
        "country": {"source": "cc", "transforms": ["upper"]},
        "source": {"constant": "crm"},
        "seen": {"source": "Seen", "transforms": [{"parse_timestamp": "%d/%m/%Y %H:%M"}]},
        "n": {"source": "N", "transforms": [{"cast": "float64"}]}
    }))
    .unwrap();
    let b = text_batch(&[
        ("Customer ID", vec![Some("  ABC "), Some("def")]),
        ("cc", vec![Some("cn"), Some("us")]),
        ("Seen", vec![Some("30/06/2026 14:05"), Some("2026-06-30")]),
        ("N", vec![Some("3"), Some("4")]),
    ]);
    let r = ws.ingest_batches("c", vec![b], IngestOptions::default().mapping(mapping)).await.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined), (1, 1));
    assert!(r.quarantine_sample[0].reason.contains("does not match the timestamp format"), "{:?}", r.quarantine_sample);
    let out = ws.sql("SELECT id, country, source, CAST(seen AS VARCHAR) AS seen, n FROM c").await.unwrap();
    let s = segkit::deps::arrow::util::pretty::pretty_format_batches(&out).unwrap().to_string();
    assert!(s.contains("| abc | CN      | crm    | 2026-06-30T14:05:00Z | 3 |"), "{s}");

    let e = Mapping::from_json(&json!({"id": {"source": "x", "transforms": ["shout"]}})).unwrap_err();
    assert!(
        e.to_string().contains("mapping.id.transforms[0]") && e.to_string().contains("unknown transform `shout`"),
        "{e}"
    );
    let bad = Mapping::from_json(&json!({"id": "Custmer ID"})).unwrap();
    let b = text_batch(&[("Customer ID", vec![Some("x")])]);
    let e = ws.ingest_batches("c", vec![b.clone()], IngestOptions::default().mapping(bad)).await.unwrap_err();
    assert!(e.to_string().contains("mapping.id") && e.to_string().contains("did you mean `Customer ID`"), "{e}");
    let e = ws
        .ingest_batches(
            "c",
            vec![b],
            IngestOptions::default().mapping(Mapping::new().map("nope", FieldMapping::from_field("x"))),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("mapping.nope"), "{e}");
    let _ = Transform::Trim;
}

/// The `user` profile: `id` and `v`.
fn user_entity() -> Entity {
    Entity::profile("user", "id")
        .attribute(Attribute::new("id", DataType::Int64))
        .attribute(Attribute::new("v", DataType::String))
}

/// A `click` event stream whose `link` attribute (of type `link_type`) points to `target`.
fn click_entity(link: &str, link_type: DataType, target: &str) -> Entity {
    Entity::event("click", "at")
        .attribute(Attribute::new(link, link_type))
        .attribute(Attribute::new("at", DataType::Timestamp))
        .link(Link::new(link, target))
}

/// Rows of `user` with these ids, all with `v`.
fn users(ids: &[&str], v: &str) -> RecordBatch {
    text_batch(&[("id", ids.iter().map(|x| Some(*x)).collect()), ("v", vec![Some(v); ids.len()])])
}

/// A workspace with a `user` profile (`id`, `v`) and a `click` event stream linked to it.
async fn user_and_click() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).await.unwrap();
    ws.define_entity(user_entity()).await.unwrap();
    ws.define_entity(click_entity("user_id", DataType::Int64, "user")).await.unwrap();
    (dir, ws)
}

#[tokio::test]
async fn upsert_append_and_full_refresh() {
    let (_dir, ws) = user_and_click().await;
    let r = ws.ingest_batches("user", vec![users(&["1", "2"], "a")], IngestOptions::default()).await.unwrap();
    assert_eq!((r.rows_inserted, r.rows_updated, r.snapshot), (2, 0, Some(1)));
    let r = ws.ingest_batches("user", vec![users(&["2", "3"], "b")], IngestOptions::default()).await.unwrap();
    assert_eq!((r.rows_inserted, r.rows_updated, r.snapshot), (1, 1, Some(2)));
    let out = ws.sql("SELECT id, v FROM \"user\" ORDER BY id").await.unwrap();
    let s = segkit::deps::arrow::util::pretty::pretty_format_batches(&out).unwrap().to_string();
    assert!(s.contains("| 1  | a |") && s.contains("| 2  | b |") && s.contains("| 3  | b |"), "{s}");
    let e = ws
        .ingest_batches("user", vec![users(&["9"], "c")], IngestOptions::default().mode(IngestMode::Append))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("upsert or full_refresh"), "{e}");
    let r = ws
        .ingest_batches("user", vec![users(&["7"], "z")], IngestOptions::default().mode(IngestMode::FullRefresh))
        .await
        .unwrap();
    assert_eq!(r.snapshot, Some(3));
    assert_eq!(ws.snapshot("user").unwrap().row_count, 1);

    let clicks = text_batch(&[
        ("user_id", vec![Some("1"), Some("1")]),
        ("at", vec![Some("2026-01-01T00:00:00Z"), Some("2026-01-02T00:00:00Z")]),
    ]);
    ws.ingest_batches("click", vec![clicks.clone()], IngestOptions::default()).await.unwrap();
    let r = ws.ingest_batches("click", vec![clicks], IngestOptions::default()).await.unwrap();
    assert_eq!(r.rows_inserted, 2);
    assert_eq!(ws.snapshot("click").unwrap().row_count, 4, "events append, duplicates included");
    let e = ws
        .ingest_batches("click", vec![users(&["1"], "x")], IngestOptions::default().mode(IngestMode::Upsert))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
}

/// A source that yields one good batch and then fails.
#[derive(Debug)]
struct FailingSource {
    schema: SchemaRef,
    good: RecordBatch,
}

#[async_trait]
impl Source for FailingSource {
    fn name(&self) -> String {
        "failing".into()
    }
    async fn schema(&self) -> segkit::Result<SchemaRef> {
        Ok(self.schema.clone())
    }
    async fn scan(&self, _: &ScanRequest) -> segkit::Result<BatchStream> {
        let good = self.good.clone();
        Ok(futures::stream::iter(vec![Ok(good), Err(Error::source_error("failing", "connection reset by peer"))])
            .boxed())
    }
}

#[tokio::test]
async fn a_failure_mid_ingest_leaves_the_previous_snapshot() {
    let (dir, ws) = user_and_click().await;
    ws.ingest_batches(
        "user",
        vec![text_batch(&[("id", vec![Some("1")]), ("v", vec![Some("before")])])],
        IngestOptions::default(),
    )
    .await
    .unwrap();
    ws.ingest_batches(
        "click",
        vec![text_batch(&[("user_id", vec![Some("1")]), ("at", vec![Some("2026-01-01")])])],
        IngestOptions::default(),
    )
    .await
    .unwrap();
    let files_before = count_files(dir.path());

    let schema =
        Arc::new(Schema::new(vec![Field::new("id", ArrowType::Utf8, true), Field::new("v", ArrowType::Utf8, true)]));
    let good = text_batch(&[("id", vec![Some("1"), Some("2")]), ("v", vec![Some("after"), Some("new")])]);
    let e = ws.ingest("user", &FailingSource { schema, good }, IngestOptions::default()).await.unwrap_err();
    assert!(matches!(e, Error::Source { .. }), "{e:?}");
    assert!(e.to_string().contains("connection reset by peer"), "{e}");
    let out = ws.sql("SELECT id, v FROM \"user\"").await.unwrap();
    assert_eq!(
        segkit::deps::arrow::util::pretty::pretty_format_batches(&out).unwrap().to_string().matches("before").count(),
        1
    );
    assert_eq!(ws.snapshot("user").unwrap().version, 1);

    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", ArrowType::Utf8, true),
        Field::new("at", ArrowType::Utf8, true),
    ]));
    let good = text_batch(&[("user_id", vec![Some("1")]), ("at", vec![Some("2026-02-01")])]);
    ws.ingest("click", &FailingSource { schema, good }, IngestOptions::default()).await.unwrap_err();
    assert_eq!(ws.snapshot("click").unwrap().row_count, 1);
    assert_eq!(count_files(dir.path()), files_before, "no orphan files after an aborted ingest");

    // A reopened workspace sees the same state.
    drop(ws);
    let ws = Workspace::open(dir.path()).await.unwrap();
    assert_eq!(ws.snapshot("click").unwrap().version, 1);
    assert_eq!(ws.sql("SELECT * FROM click").await.unwrap().iter().map(|b| b.num_rows()).sum::<usize>(), 1);
}

fn count_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            n += count_files(&p);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn definitions_persist_and_evolve() {
    let dir = tempfile::tempdir().unwrap();
    {
        let ws = Workspace::open(dir.path()).await.unwrap();
        ws.define_entity(user_entity()).await.unwrap();
        ws.ingest_batches(
            "user",
            vec![text_batch(&[("id", vec![Some("1")]), ("v", vec![Some("x")])])],
            IngestOptions::default(),
        )
        .await
        .unwrap();
    }
    let ws = Workspace::open(dir.path()).await.unwrap();
    let user = ws.entity("user").unwrap();
    assert_eq!(user.attributes.len(), 2);
    assert!(!user.attributes[0].nullable, "keys are never nullable");
    // Adding a nullable attribute to a populated entity works; old rows read it as null.
    let evolved = user.clone().attribute(Attribute::new("city", DataType::String).describe("home city"));
    ws.define_entity(evolved.clone()).await.unwrap();
    let out = ws.sql("SELECT id, city FROM \"user\" WHERE city IS NULL").await.unwrap();
    assert_eq!(out[0].num_rows(), 1);
    ws.ingest_batches(
        "user",
        vec![text_batch(&[("id", vec![Some("2")]), ("city", vec![Some("Paris")])])],
        IngestOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(ws.snapshot("user").unwrap().row_count, 2);
    // Incompatible changes are refused and name the culprit.
    let mut retyped = evolved.clone();
    retyped.attributes[1].data_type = DataType::Int64;
    let e = ws.define_entity(retyped).await.unwrap_err();
    assert!(matches!(e, Error::IncompatibleChange { .. }));
    assert_eq!(
        e.to_string(),
        "incompatible change to entity user.attribute v: type cannot change from string to int64"
    );
    let e = ws.define_entity(evolved.clone().with_key("v")).await.unwrap_err();
    assert!(e.to_string().contains("entity user.key"), "{e}");
    let e = ws
        .define_entity(evolved.clone().attribute(Attribute::new("must", DataType::Int64).required()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("entity user.attribute must"), "{e}");
    // Links are checked against the catalog.
    let e = ws.define_entity(click_entity("uid", DataType::String, "usr")).await.unwrap_err();
    assert!(e.to_string().contains("entity click.links[0]") && e.to_string().contains("did you mean `user`"), "{e}");
    let e = ws.define_entity(click_entity("uid", DataType::String, "user")).await.unwrap_err();
    assert!(e.to_string().contains("`uid` is string but `user.id` is int64"), "{e}");
    let e = ws.entity("usr").unwrap_err();
    assert_eq!(e.to_string(), "entity `usr` not found (did you mean `user`?)");
}

#[tokio::test]
async fn vacuum_deletes_only_what_old_snapshots_alone_use() {
    let (dir, ws) = user_and_click().await;
    let clicks = |day: &str| text_batch(&[("user_id", vec![Some("1")]), ("at", vec![Some(day)])]);
    for (ids, v) in [(&["1", "2"][..], "a"), (&["2"][..], "b"), (&["3"][..], "c")] {
        ws.ingest_batches("user", vec![users(ids, v)], IngestOptions::default()).await.unwrap();
    }
    for day in ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"] {
        ws.ingest_batches("click", vec![clicks(day)], IngestOptions::default()).await.unwrap();
    }
    ws.define_segment(segkit::SegmentDefinition::new(
        "b_or_c",
        "user",
        segkit::rules::Rule::parse(
            &json!({"attribute": "v", "op": "in", "value": ["b", "c"]}),
            segkit::rules::Dialect::Segkit,
        )
        .unwrap(),
    ))
    .await
    .unwrap();
    let before = count_files(dir.path());
    let current: usize = ["user", "click"].iter().map(|e| ws.snapshot(e).unwrap().files.len()).sum();
    assert!(before > current, "old snapshots hold files of their own: {before} vs {current}");

    let e = ws.vacuum(0).await.unwrap_err();
    assert_eq!(e.to_string(), "invalid argument: vacuum keeps at least 1 snapshot (the current one)");
    let r = ws.vacuum(1).await.unwrap();
    // user: snapshots 1 and 2 go, with their files (each upsert rewrote the profiles); click: snapshot 1 goes,
    // but its file is still read by snapshot 2 (an append adds files).
    assert_eq!(r.snapshots_removed, 3);
    assert_eq!(count_files(dir.path()), current, "exactly the current snapshots' files remain");
    assert_eq!(r.files_deleted as usize, before - current);
    assert!(r.bytes_freed > 0);
    assert_eq!(ws.vacuum(1).await.unwrap(), segkit::VacuumReport::default(), "nothing left to do");

    // Orphans (files a crashed writer left, which no snapshot refers to) go once they are older than the grace
    // period; a young one may be a write in flight in another process and stays.
    let old_orphan = dir.path().join("data/user/orphan-old.parquet");
    let young_orphan = dir.path().join("data/user/orphan-young.parquet");
    for p in [&old_orphan, &young_orphan] {
        std::fs::write(p, b"not really parquet").unwrap();
    }
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
    std::fs::File::options().write(true).open(&old_orphan).unwrap().set_modified(long_ago).unwrap();
    let r = ws.vacuum(1).await.unwrap();
    assert_eq!((r.snapshots_removed, r.files_deleted, r.orphans_deleted, r.bytes_freed), (0, 0, 1, 18));
    assert!(!old_orphan.exists() && young_orphan.exists());
    std::fs::remove_file(&young_orphan).unwrap();

    // Everything still reads, also after reopening.
    drop(ws);
    let ws = Workspace::open(dir.path()).await.unwrap();
    assert_eq!(ws.evaluate("b_or_c").await.unwrap().count, 2);
    assert_eq!(ws.sql("SELECT * FROM click").await.unwrap().iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    ws.ingest_batches("user", vec![users(&["4"], "b")], IngestOptions::default()).await.unwrap();
    assert_eq!(ws.evaluate("b_or_c").await.unwrap().count, 3);
    assert_eq!(ws.vacuum(2).await.unwrap().snapshots_removed, 0, "two snapshots of user are kept");
}

#[tokio::test]
async fn clear_quarantine_forgets_the_raw_records() {
    let (dir, ws) = user_and_click().await;
    let bad = text_batch(&[("id", vec![Some("1"), Some("not a number")]), ("v", vec![Some("a"), Some("secret")])]);
    let r = ws.ingest_batches("user", vec![bad], IngestOptions::default()).await.unwrap();
    assert_eq!(r.rows_quarantined, 1);
    assert_eq!(ws.quarantine("user").await.unwrap().num_rows(), 1);
    assert!(
        format!("{:?}", ws.ingest_history("user").unwrap()).contains("not a number"),
        "the sample quotes the value"
    );
    assert_eq!(ws.clear_quarantine("user").await.unwrap(), 1);
    assert_eq!(ws.quarantine("user").await.unwrap().num_rows(), 0);
    let report = ws.ingest_history("user").unwrap().pop().unwrap();
    assert_eq!((report.rows_quarantined, report.quarantine_file, report.quarantine_sample.len()), (1, None, 0));
    assert!(!format!("{:?}", ws.ingest_history("user").unwrap()).contains("not a number"));
    assert_eq!(count_files(&dir.path().join("quarantine")), 0);
    assert_eq!(ws.clear_quarantine("user").await.unwrap(), 0);
    let e = ws.clear_quarantine("usr").await.unwrap_err();
    assert!(e.to_string().contains("`usr`"), "{e}");
}

/// Reads a stored data file in row order.
fn read_file(dir: &std::path::Path, rel: &str) -> Vec<RecordBatch> {
    let f = std::fs::File::open(dir.join(rel)).unwrap();
    segkit::deps::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

#[tokio::test]
async fn upserts_merge_into_sorted_files_without_losing_or_repeating_rows() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).await.unwrap();
    ws.define_entity(
        Entity::profile("p", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("grp", DataType::String).indexed())
            .attribute(Attribute::new("n", DataType::Int64)),
    )
    .await
    .unwrap();
    let mut model: std::collections::BTreeMap<i64, (Option<String>, i64)> = Default::default();
    let mut x: u64 = 7;
    let mut rand = |n: u64| {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    // A first load big enough for several stored batches, then upserts of new and existing keys (group null too).
    for (round, size) in [30_000usize, 4_000, 4_000, 1].into_iter().enumerate() {
        let mut ids = vec![];
        let mut grps = vec![];
        let mut ns = vec![];
        let mut seen = std::collections::HashSet::new();
        while ids.len() < size {
            let id = rand(60_000) as i64;
            if !seen.insert(id) {
                continue;
            }
            let g = match rand(6) {
                0 => None,
                k => Some(format!("g{k}")),
            };
            ids.push(id);
            grps.push(g.clone());
            ns.push(round as i64);
            model.insert(id, (g, round as i64));
        }
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(ids.clone())) as ArrayRef),
            ("grp", Arc::new(StringArray::from(grps)) as ArrayRef),
            ("n", Arc::new(Int64Array::from(ns)) as ArrayRef),
        ])
        .unwrap();
        let r = ws.ingest_batches("p", vec![batch], IngestOptions::default()).await.unwrap();
        assert_eq!(r.rows_inserted + r.rows_updated, size as u64);

        // The stored files, in order, hold exactly the model, sorted by (grp nulls last, id).
        let mut stored = vec![];
        for f in ws.snapshot("p").unwrap().files {
            for b in read_file(dir.path(), &f.path) {
                let (id, g, n) = (
                    b.column_by_name("id").unwrap().as_primitive::<segkit::deps::arrow::datatypes::Int64Type>(),
                    b.column_by_name("grp").unwrap().as_string::<i32>(),
                    b.column_by_name("n").unwrap().as_primitive::<segkit::deps::arrow::datatypes::Int64Type>(),
                );
                for i in 0..b.num_rows() {
                    let grp = segkit::deps::arrow::array::Array::is_valid(g, i).then(|| g.value(i).to_string());
                    stored.push((id.value(i), grp, n.value(i)));
                }
            }
        }
        let sort_key = |r: &(i64, Option<String>, i64)| (r.1.is_none(), r.1.clone(), r.0);
        assert!(stored.windows(2).all(|w| sort_key(&w[0]) < sort_key(&w[1])), "round {round}: not in storage order");
        let mut got: Vec<(i64, Option<String>, i64)> = stored;
        got.sort_by_key(|r| r.0);
        let want: Vec<(i64, Option<String>, i64)> = model.iter().map(|(k, (g, n))| (*k, g.clone(), *n)).collect();
        assert_eq!(got, want, "round {round}");
    }
}

/// An ingest far larger than the workspace's `ingest_memory` spills sorted runs and merges them: the stored rows
/// come out in key order across all files, every key once, and a key repeated in different runs is quarantined
/// with the row of its first occurrence — the same answers as an ingest that fits in memory.
#[tokio::test]
async fn an_ingest_beyond_its_memory_budget_spills_and_keeps_every_answer() {
    spilling_ingest(false).await;
}

/// The same with an indexed attribute: rows are stored by (attribute, key), and the repeated keys come from a
/// second sort of (key, row) beside the first.
#[tokio::test]
async fn an_indexed_ingest_beyond_its_memory_budget_spills_and_keeps_every_answer() {
    spilling_ingest(true).await;
}

async fn spilling_ingest(indexed: bool) {
    use segkit::deps::arrow::datatypes::Int64Type;
    let dir = tempfile::tempdir().unwrap();
    let options = segkit::WorkspaceOptions::default().ingest_memory(16 * 1024 * 1024);
    let ws = Workspace::open_with(dir.path(), options).await.unwrap();
    ws.define_entity(
        Entity::profile("p", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("note", DataType::String))
            .attribute({
                let mut a = Attribute::new("grp", DataType::Int64);
                a.indexed = indexed;
                a
            }),
    )
    .await
    .unwrap();
    // 400k rows (about 35 MB as Arrow, over the 16 MiB budget) in scrambled key order; every 1000th row from
    // 60k to 120k repeats the key of the row 60k earlier, so the repeat lands in another spilled run.
    const N: i64 = 400_000;
    let key_of = |row: i64| -> i64 {
        if row % 1000 == 999 && row > 60_000 && row < 120_000 {
            ((row - 60_000) * 7_919) % 1_000_003
        } else {
            (row * 7_919) % 1_000_003
        }
    };
    let batches: Vec<RecordBatch> = (0..N)
        .step_by(5000)
        .map(|start| {
            let ids: Vec<i64> = (start..start + 5000).map(key_of).collect();
            let notes: Vec<String> =
                (start..start + 5000).map(|r| format!("row {r} and some text to make it wide")).collect();
            RecordBatch::try_from_iter([
                ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
                ("note", Arc::new(StringArray::from(notes)) as ArrayRef),
            ])
            .unwrap()
        })
        .collect();
    let r = ws.ingest_batches("p", batches, IngestOptions::default()).await.unwrap();
    let repeats: Vec<i64> = (0..N).filter(|r| r % 1000 == 999 && *r > 60_000 && *r < 120_000).collect();
    assert_eq!(r.rows_read, N as u64);
    assert_eq!(r.rows_quarantined, repeats.len() as u64);
    assert_eq!(r.rows_written, N as u64 - repeats.len() as u64);
    // The sample is in source row order, and names the first occurrence (1-based rows).
    let first = repeats[0];
    assert_eq!(r.quarantine_sample[0].row, first as u64 + 1);
    assert_eq!(
        r.quarantine_sample[0].reason,
        format!("duplicate key \"{}\" (first seen at row {})", key_of(first), first - 60_000 + 1)
    );
    assert!(r.quarantine_sample.windows(2).all(|w| w[0].row < w[1].row));
    // The kept row of a repeated key is its first one.
    let b = ws.sql(&format!("SELECT note FROM p WHERE id = {}", key_of(first))).await.unwrap();
    assert_eq!(
        b[0].column(0).as_string::<i32>().value(0),
        format!("row {} and some text to make it wide", first - 60_000)
    );
    // Stored in storage order ((grp, id) when grp is indexed, else id) across every file, each key once.
    let snap = ws.snapshot("p").unwrap();
    assert!(!snap.files.is_empty());
    let mut stored: Vec<(i64, i64)> = vec![];
    for f in &snap.files {
        let path = dir.path().join(&f.path);
        let reader = segkit::deps::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&path).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for b in reader {
            let b = b.unwrap();
            let id = b.column_by_name("id").unwrap().as_primitive::<Int64Type>().values().to_vec();
            let grp = b.column_by_name("grp").unwrap().as_primitive::<Int64Type>().values().to_vec();
            stored.extend(grp.into_iter().zip(id).map(|(g, i)| if indexed { (g, i) } else { (0, i) }));
        }
    }
    assert_eq!(stored.len() as u64, r.rows_written);
    assert!(stored.windows(2).all(|w| w[0] < w[1]), "storage order ascending across files");
    let mut keys: Vec<i64> = stored.iter().map(|(_, i)| *i).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len() as u64, r.rows_written, "each key once");
    let q = ws.quarantine("p").await.unwrap();
    assert_eq!(q.num_rows(), repeats.len());
    let record = q.column_by_name("record").unwrap().as_string::<i32>().value(0);
    assert!(record.contains(&format!("row {first} and")), "{record}");
}

/// Ingest futures are `Send`, so they run on any multi-threaded runtime (the Node binding requires it).
#[test]
fn ingest_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_dir, ws) = rt.block_on(typed_ws());
    let f = ws.ingest_batches("u", vec![], IngestOptions::default());
    send(&f);
    let b = rt.block_on(f).unwrap_err();
    assert!(!b.to_string().is_empty());
}

/// An event stream with an indexed attribute over several files: each file's rows are sorted (on the blocking
/// pool, while the next file's rows are read) by (attribute, timestamp); the files follow each other in arrival
/// order and together hold every row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_files_are_each_sorted_and_follow_arrival_order() {
    use segkit::deps::arrow::array::TimestampMicrosecondArray;
    use segkit::deps::arrow::datatypes::Int64Type;
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).await.unwrap();
    ws.define_entity(user_entity()).await.unwrap();
    ws.define_entity(
        Entity::event("ev", "at")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("grp", DataType::Int64).indexed())
            .attribute(Attribute::new("at", DataType::Timestamp))
            .link(Link::new("id", "user")),
    )
    .await
    .unwrap();
    // 2.5 files' worth of rows (1 Mi rows a file); `at` ascending, `grp` cycling, `id` the arrival position.
    const N: i64 = 2_600_000;
    let batches: Vec<RecordBatch> = (0..N)
        .step_by(100_000)
        .map(|start| {
            let ids: Vec<i64> = (start..start + 100_000).collect();
            RecordBatch::try_from_iter([
                ("id", Arc::new(Int64Array::from(ids.clone())) as ArrayRef),
                ("grp", Arc::new(Int64Array::from(ids.iter().map(|i| (i * 7) % 5).collect::<Vec<_>>())) as ArrayRef),
                ("at", {
                    let at = TimestampMicrosecondArray::from(ids.iter().map(|i| i / 3).collect::<Vec<_>>());
                    Arc::new(at.with_timezone("UTC")) as ArrayRef
                }),
            ])
            .unwrap()
        })
        .collect();
    let r = ws.ingest_batches("ev", batches, IngestOptions::default()).await.unwrap();
    assert_eq!((r.rows_read, r.rows_written), (N as u64, N as u64));
    let snap = ws.snapshot("ev").unwrap();
    assert_eq!(snap.files.len(), 3);
    let file_rows = 1 << 20;
    let mut all = vec![];
    for (k, f) in snap.files.iter().enumerate() {
        let reader = segkit::deps::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(dir.path().join(&f.path)).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        let mut rows: Vec<(i64, i64, i64)> = vec![];
        for b in reader {
            let b = b.unwrap();
            let col = |n: &str| {
                let c = segkit::deps::arrow::compute::cast(b.column_by_name(n).unwrap(), &ArrowType::Int64).unwrap();
                c.as_primitive::<Int64Type>().values().to_vec()
            };
            let (grp, at, id) = (col("grp"), col("at"), col("id"));
            rows.extend((0..b.num_rows()).map(|i| (grp[i], at[i], id[i])));
        }
        assert!(rows.windows(2).all(|w| w[0] <= w[1]), "file {k} sorted by (grp, at)");
        let mut ids: Vec<i64> = rows.iter().map(|r| r.2).collect();
        ids.sort_unstable();
        let from = k as i64 * file_rows;
        assert_eq!(ids, (from..(from + file_rows).min(N)).collect::<Vec<_>>(), "file {k} holds its arrivals");
        all.extend(ids);
    }
    assert_eq!(all.len() as i64, N);
}
