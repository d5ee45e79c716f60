//! Static-list segments: a segment that is an uploaded list of keys, referenced by rules like any segment.

mod common;

use std::sync::Arc;

use common::*;
use segkit::deps::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, UInt64Array};
use segkit::deps::arrow::datatypes::{DataType as ArrowType, Field, Schema};
use segkit::{ErrorKind, IngestOptions, RecordBatchSource};
use serde_json::json;

fn keys(v: &[i64]) -> RecordBatch {
    RecordBatch::try_from_iter_with_nullable([("id", Arc::new(Int64Array::from(v.to_vec())) as ArrayRef, true)])
        .unwrap()
}

fn source(b: RecordBatch) -> RecordBatchSource {
    RecordBatchSource::new("keys", vec![b]).unwrap()
}

#[tokio::test]
async fn a_static_list_is_a_segment_with_runs_counts_references_and_explain() {
    let (dir, ws) = people_workspace().await;
    // 42 is no person (yet); 2 comes twice.
    let r =
        ws.define_static_segment_batches("vip_list", "people", vec![keys(&[7, 2, 42]), keys(&[2, 4])]).await.unwrap();
    assert_eq!(
        (r.version, r.operation.as_str(), r.keys_read, r.key_count, r.matched, r.unmatched),
        (1, "replace", 5, 4, 3, 1)
    );
    assert!(ws.is_static_segment("vip_list").unwrap());
    assert_eq!(ids(&ws.static_keys("vip_list").await.unwrap()), vec![2, 4, 7, 42]);
    // Stored as Parquet under static/, referenced by the catalog.
    let v = ws.static_list_versions("vip_list").unwrap();
    assert_eq!(v.len(), 1);
    assert!(v[0].file.starts_with("static/vip_list/") && dir.path().join(&v[0].file).is_file(), "{v:?}");

    let run = ws.evaluate("vip_list").await.unwrap();
    assert_eq!((ids(&run.members), ids(&run.entered), run.exited.num_rows()), (vec![2, 4, 7], vec![2, 4, 7], 0));
    assert_eq!(ws.count("vip_list").await.unwrap(), 3);

    // Rules reference it like any segment, in and not in, stored or not.
    let both = members(
        &ws,
        "cn_vips",
        "people",
        json!({"and": [{"in_segment": "vip_list"}, {"attribute": "country", "op": "eq", "value": "CN"}]}),
    )
    .await
    .unwrap();
    assert_eq!(both, vec![7]);
    let others = members(&ws, "others", "people", json!({"not_in_segment": "vip_list"})).await.unwrap();
    assert_eq!(others, vec![1, 3, 5, 6, 8]);
    let stored = members(&ws, "stored_ref", "people", json!({"in_segment": {"segment": "vip_list", "stored": true}}))
        .await
        .unwrap();
    assert_eq!(stored, vec![2, 4, 7]);
    // The canonical rule keeps the reference as written.
    assert_eq!(ws.segment("cn_vips").unwrap().rule.to_json()["and"][0], json!({"in_segment": "vip_list"}));
    let mut deps = ws.dependents("vip_list").unwrap();
    deps.sort();
    assert_eq!(deps, vec!["cn_vips", "others", "stored_ref"]);

    let e = ws.explain("vip_list", "4").await.unwrap();
    assert!(e.member, "{e}");
    assert!(e.to_string().contains("in_segment vip_list (static list)"), "{e}");
    let e = ws.explain("cn_vips", "2").await.unwrap();
    assert!(!e.member && e.root.children[0].value == Some(true), "{e}");

    // Adding and removing keys commits new versions; the next run reports who entered and exited.
    let r = ws.add_static_keys("vip_list", &source(keys(&[1, 42, 99]))).await.unwrap();
    assert_eq!((r.version, r.key_count, r.matched, r.unmatched), (2, 6, 4, 2));
    let r = ws.remove_static_keys("vip_list", &source(keys(&[7, 1000]))).await.unwrap();
    assert_eq!((r.version, r.operation.as_str(), r.key_count, r.matched), (3, "remove", 5, 3));
    let run = ws.evaluate("vip_list").await.unwrap();
    assert_eq!((run.run, ids(&run.members), ids(&run.entered), ids(&run.exited)), (2, vec![1, 2, 4], vec![1], vec![7]));

    // A listed key without a person becomes a member when the person is ingested.
    let more = csv_batch("id,name,country,age,plan,score,vip,joined,tags\n42,Zed,DE,33,pro,1.0,true,,\n");
    ws.ingest_batches("people", vec![more], IngestOptions::default()).await.unwrap();
    let run = ws.evaluate("vip_list").await.unwrap();
    assert_eq!((ids(&run.members), ids(&run.entered)), (vec![1, 2, 4, 42], vec![42]));

    // Replacing starts from the new keys only.
    let r = ws.define_static_segment_batches("vip_list", "people", vec![keys(&[5])]).await.unwrap();
    assert_eq!((r.version, r.key_count), (4, 1));
    let run = ws.evaluate("vip_list").await.unwrap();
    assert_eq!((ids(&run.members), ids(&run.exited)), (vec![5], vec![1, 2, 4, 42]));
    // Dependents see the new list.
    assert_eq!(ids(&ws.evaluate("others").await.unwrap().members), vec![1, 2, 3, 4, 6, 7, 8, 42]);

    // Durable: a reopened workspace has the list, its versions and its runs.
    drop(ws);
    let ws = segkit::Workspace::open(dir.path()).await.unwrap();
    assert_eq!(ids(&ws.static_keys("vip_list").await.unwrap()), vec![5]);
    assert_eq!(ws.static_list_versions("vip_list").unwrap().len(), 4);
    assert_eq!(ws.count("vip_list").await.unwrap(), 1);
    assert_eq!(ws.runs("vip_list").unwrap().len(), 4);

    // Vacuum keeps the latest versions' files and removes the older ones.
    let before: Vec<String> = ws.static_list_versions("vip_list").unwrap().into_iter().map(|v| v.file).collect();
    ws.vacuum(1).await.unwrap();
    let after = ws.static_list_versions("vip_list").unwrap();
    assert_eq!(after.len(), 1);
    assert!(dir.path().join(&after[0].file).is_file());
    assert!(!dir.path().join(&before[0]).exists());
    assert_eq!(ws.count("vip_list").await.unwrap(), 1);

    // Defining a rule segment under the name turns it back into a rule segment and forgets the list.
    ws.define_segment(segkit::SegmentDefinition::new(
        "vip_list",
        "people",
        segkit::rules::Rule::parse(
            &json!({"attribute": "vip", "op": "eq", "value": true}),
            segkit::rules::Dialect::Auto,
        )
        .unwrap(),
    ))
    .await
    .unwrap();
    assert!(!ws.is_static_segment("vip_list").unwrap());
    assert!(!dir.path().join(&after[0].file).exists());
    assert_eq!(ws.count("vip_list").await.unwrap(), 5, "4 people and Zed are vip");
    let e = ws.static_keys("vip_list").await.unwrap_err();
    assert!(e.to_string().contains("is a rule segment, not a static list"), "{e}");

    // Deleting a static segment removes its key files.
    ws.define_static_segment_batches("gone", "people", vec![keys(&[1])]).await.unwrap();
    let f = ws.static_list_versions("gone").unwrap()[0].file.clone();
    ws.delete_segment("gone").await.unwrap();
    assert!(!dir.path().join(f).exists());
}

#[tokio::test]
async fn bad_keys_are_refused_with_clear_errors_and_nothing_committed() {
    let (_d, ws) = people_workspace().await;
    let nulls = RecordBatch::try_from_iter_with_nullable([(
        "id",
        Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
        true,
    )])
    .unwrap();
    let e = ws.define_static_segment_batches("l", "people", vec![keys(&[3]), nulls]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("row 3 is null; a static list holds keys of `people`, never null"), "{e}");
    let text = RecordBatch::try_from_iter([("id", Arc::new(StringArray::from(vec!["1"])) as ArrayRef)]).unwrap();
    let e = ws.define_static_segment_batches("l", "people", vec![text]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("the key column has type Utf8, but the key `id` of `people` is int64"), "{e}");
    let huge =
        RecordBatch::try_from_iter([("id", Arc::new(UInt64Array::from(vec![1, u64::MAX])) as ArrayRef)]).unwrap();
    let e = ws.define_static_segment_batches("l", "people", vec![huge]).await.unwrap_err();
    assert!(e.to_string().contains("row 2 does not fit the int64 key `id`"), "{e}");
    let two = RecordBatch::try_from_iter([
        ("a", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("b", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
    ])
    .unwrap();
    let e = ws.define_static_segment_batches("l", "people", vec![two]).await.unwrap_err();
    assert!(e.to_string().contains("expected one column, or a column named `id`; got `a`, `b`"), "{e}");
    let e = ws.define_static_segment_batches("l", "nobody", vec![keys(&[1])]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Definition);
    assert!(e.to_string().contains("nobody"), "{e}");
    assert!(ws.segment("l").is_err(), "nothing was committed");
    // Other integer widths are accepted for an int64 key; a column named after the key is found among others.
    let named = RecordBatch::try_from_iter([
        ("note", Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef),
        ("id", Arc::new(Int32Array::from(vec![8, 1])) as ArrayRef),
    ])
    .unwrap();
    let r = ws.define_static_segment_batches("l", "people", vec![named]).await.unwrap();
    assert_eq!((r.key_count, r.matched), (2, 2));
    // Changing keys of a rule segment, or of a missing one, is refused.
    let e = ws.add_static_keys("others", &source(keys(&[1]))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    members(&ws, "cn", "people", json!({"attribute": "country", "op": "eq", "value": "CN"})).await.unwrap();
    let e = ws.add_static_keys("cn", &source(keys(&[1]))).await.unwrap_err();
    assert!(e.to_string().contains("segment `cn` is a rule segment, not a static list"), "{e}");
    // A name differing only by case from another segment is refused.
    let e = ws.define_static_segment_batches("CN", "people", vec![keys(&[1])]).await.unwrap_err();
    assert!(e.to_string().contains("differ only by case"), "{e}");
    // An empty upload makes an empty list.
    let empty =
        RecordBatchSource::empty("keys", Arc::new(Schema::new(vec![Field::new("id", ArrowType::Int64, false)])));
    let r = ws.define_static_segment("empty", "people", &empty).await.unwrap();
    assert_eq!((r.key_count, r.matched), (0, 0));
    assert_eq!(ws.evaluate("empty").await.unwrap().count, 0);
}

/// Text keys (an entity keyed by a string) and an int32 key's range check.
#[tokio::test]
async fn string_and_int32_keys() {
    let dir = tempfile::tempdir().unwrap();
    let ws = segkit::Workspace::open(dir.path()).await.unwrap();
    use segkit::{Attribute, DataType, Entity};
    ws.define_entity(Entity::profile("acct", "code").attribute(Attribute::new("code", DataType::String)))
        .await
        .unwrap();
    ws.define_entity(Entity::profile("small", "n").attribute(Attribute::new("n", DataType::Int32))).await.unwrap();
    let codes =
        RecordBatch::try_from_iter([("code", Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef)]).unwrap();
    ws.ingest_batches("acct", vec![codes], IngestOptions::default()).await.unwrap();
    let list =
        RecordBatch::try_from_iter([("k", Arc::new(StringArray::from(vec!["c", "zz", "a"])) as ArrayRef)]).unwrap();
    let r = ws.define_static_segment_batches("some", "acct", vec![list]).await.unwrap();
    assert_eq!((r.key_count, r.matched), (3, 2));
    let run = ws.evaluate("some").await.unwrap();
    let got = run.members.column(0).as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(got.iter().flatten().collect::<Vec<_>>(), vec!["a", "c"]);
    let wide = RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![1, 1 << 40])) as ArrayRef)]).unwrap();
    let e = ws.define_static_segment_batches("s", "small", vec![wide]).await.unwrap_err();
    assert!(e.to_string().contains("row 2 does not fit the int32 key `n`"), "{e}");
}

/// A static segment's own evaluation reads its list's key index in one pass over the entity's keys; a rule
/// that references the list plans a join. Both must select the same members, for every key type, in key order,
/// across entity changes (keys that appear, keys that go).
#[tokio::test]
async fn own_evaluation_agrees_with_a_rule_referencing_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let ws = segkit::Workspace::open(dir.path()).await.unwrap();
    use segkit::{Attribute, DataType, Entity};
    ws.define_entity(Entity::profile("big", "id").attribute(Attribute::new("id", DataType::Int64))).await.unwrap();
    // Keys spread over a range too wide for a bitset of it: the list is looked up by hash.
    ws.define_entity(Entity::profile("sparse", "sid").attribute(Attribute::new("sid", DataType::Int64))).await.unwrap();
    ws.define_entity(Entity::profile("small", "n").attribute(Attribute::new("n", DataType::Int32))).await.unwrap();
    ws.define_entity(Entity::profile("acct", "code").attribute(Attribute::new("code", DataType::String)))
        .await
        .unwrap();
    // Entities: every third number below 30 000 (in descending order, so storage order is not list order).
    let present: Vec<i64> = (0..30_000).rev().filter(|i| i % 3 == 0).collect();
    let batch = |name: &str, v: &[i64]| -> RecordBatch {
        let col: ArrayRef = match name {
            "id" => Arc::new(Int64Array::from(v.to_vec())),
            "sid" => Arc::new(Int64Array::from(v.iter().map(|x| x * 1_000_003 - (1 << 40)).collect::<Vec<_>>())),
            "n" => Arc::new(Int32Array::from(v.iter().map(|&x| x as i32).collect::<Vec<_>>())),
            _ => Arc::new(StringArray::from(v.iter().map(|x| format!("c{x}")).collect::<Vec<_>>())),
        };
        RecordBatch::try_from_iter([(name, col)]).unwrap()
    };
    // The list: every other number below 40 000 (a quarter of them present), with duplicates and strangers.
    let listed: Vec<i64> = (0..40_000).rev().filter(|i| i % 2 == 0).chain([6, 6, 12]).collect();
    for (entity, key) in [("big", "id"), ("sparse", "sid"), ("small", "n"), ("acct", "code")] {
        ws.ingest_batches(entity, vec![batch(key, &present)], IngestOptions::default()).await.unwrap();
        let list = format!("{entity}_list");
        ws.define_static_segment_batches(&list, entity, vec![batch(key, &listed)]).await.unwrap();
        let rule = segkit::rules::Rule::parse(&json!({"in_segment": list}), segkit::rules::Dialect::Auto).unwrap();
        let by_rule = format!("{entity}_rule");
        ws.define_segment(segkit::SegmentDefinition::new(&by_rule, entity, rule)).await.unwrap();
        let own = ws.evaluate(&list).await.unwrap();
        let joined = ws.evaluate(&by_rule).await.unwrap();
        assert_eq!(own.count, 5_000, "{entity}: multiples of 6 below 30 000");
        assert_eq!(own.members.column(0), joined.members.column(0), "{entity}");
        // The members are in ascending key order (the diff against the next run relies on it).
        let sorted = segkit::deps::arrow::compute::sort(own.members.column(0), None).unwrap();
        assert_eq!(&sorted, own.members.column(0), "{entity}");
        // Entities change: 6 and 12 go; 30 000 (even, so listed) arrives.
        let refresh = IngestOptions { mode: Some(segkit::IngestMode::FullRefresh), ..IngestOptions::default() };
        let now: Vec<i64> = present.iter().copied().filter(|&x| x != 6 && x != 12).chain([30_000]).collect();
        ws.ingest_batches(entity, vec![batch(key, &now)], refresh).await.unwrap();
        let own = ws.evaluate(&list).await.unwrap();
        let joined = ws.evaluate(&by_rule).await.unwrap();
        assert_eq!(own.members.column(0), joined.members.column(0), "{entity}");
        assert_eq!((own.count, own.entered.num_rows(), own.exited.num_rows()), (4_999, 1, 2), "{entity}");
    }
}
