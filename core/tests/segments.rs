//! Segments: define / update / delete / list, evaluation history with entered and exited keys, count,
//! preview with pii masked, stored membership versions.

mod common;

use std::sync::Arc;

use common::*;
use futures::TryStreamExt;
use segkit::deps::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use segkit::rules::Rule;
use segkit::{Error, FixedClock, IngestOptions, SegmentDefinition};
use serde_json::json;

fn rule(v: serde_json::Value) -> Rule {
    Rule::parse(&v, segkit::rules::Dialect::Auto).unwrap()
}

#[tokio::test]
async fn lifecycle_history_and_membership_versions() {
    let (dir, ws) = people_workspace().await;
    let cn = SegmentDefinition::new("cn", "people", rule(json!({"attribute": "country", "op": "eq", "value": "CN"})));
    ws.define_segment(cn.clone()).await.unwrap();
    assert_eq!(ws.segments().unwrap().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["cn"]);
    assert_eq!(ws.segment("cn").unwrap(), cn, "a canonical rule is stored as given");

    let r1 = ws.evaluate("cn").await.unwrap();
    assert_eq!((r1.run, r1.count), (1, 3));
    assert_eq!(ids(&r1.members), vec![1, 3, 7]);
    assert_eq!(ids(&r1.entered), vec![1, 3, 7]);
    assert_eq!(r1.exited.num_rows(), 0);
    assert_eq!(r1.members.schema().field(0).name(), "id");
    let chunks: Vec<RecordBatch> = r1.members_stream(2).try_collect().await.unwrap();
    assert_eq!(chunks.iter().map(|b| b.num_rows()).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(chunks.iter().flat_map(ids).collect::<Vec<_>>(), vec![1, 3, 7]);

    // Change data: 3 leaves CN, 5 gets CN, 9 is new in CN.
    let b = RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(vec!["3", "5", "9"])) as ArrayRef),
        ("country", Arc::new(StringArray::from(vec!["JP", "CN", "CN"])) as ArrayRef),
    ])
    .unwrap();
    ws.ingest_batches("people", vec![b], IngestOptions::default()).await.unwrap();
    let r2 = ws.evaluate("cn").await.unwrap();
    assert_eq!((r2.run, ids(&r2.members)), (2, vec![1, 5, 7, 9]));
    assert_eq!(ids(&r2.entered), vec![5, 9]);
    assert_eq!(ids(&r2.exited), vec![3]);
    assert_eq!(r2.snapshot, 2);

    // Updating the rule keeps the history; the next run diffs against the last membership.
    ws.define_segment(SegmentDefinition::new(
        "cn",
        "people",
        rule(json!({"attribute": "country", "op": "in", "value": ["CN", "JP"]})),
    ))
    .await
    .unwrap();
    let r3 = ws.evaluate("cn").await.unwrap();
    assert_eq!((ids(&r3.entered), ids(&r3.exited)), (vec![3], vec![]));

    let runs = ws.runs("cn").unwrap();
    assert_eq!(
        runs.iter().map(|r| (r.run, r.member_count, r.entered, r.exited)).collect::<Vec<_>>(),
        vec![(1, 3, 3, 0), (2, 4, 2, 1), (3, 5, 1, 0)]
    );
    let v1: Vec<RecordBatch> = ws.members("cn", Some(1)).await.unwrap().try_collect().await.unwrap();
    assert_eq!(v1.iter().flat_map(ids).collect::<Vec<_>>(), vec![1, 3, 7]);
    let latest: Vec<RecordBatch> = ws.members("cn", None).await.unwrap().try_collect().await.unwrap();
    assert_eq!(latest.iter().flat_map(ids).collect::<Vec<_>>(), vec![1, 3, 5, 7, 9]);
    assert!(matches!(ws.members("cn", Some(7)).await, Err(Error::NotFound { .. })));

    // Runs survive a reopen.
    drop(ws);
    let ws = segkit::Workspace::open(dir.path()).await.unwrap();
    assert_eq!(ws.runs("cn").unwrap().len(), 3);
    assert_eq!(ws.evaluate("cn").await.unwrap().run, 4);

    ws.delete_segment("cn").await.unwrap();
    assert!(ws.segments().unwrap().is_empty());
    let e = ws.evaluate("cn").await.unwrap_err();
    assert!(matches!(e, Error::NotFound { kind: "segment", .. }), "{e:?}");
    assert!(matches!(ws.delete_segment("cn").await, Err(Error::NotFound { .. })));
    assert!(
        !dir.path().join("segments/cn").read_dir().map(|mut d| d.next().is_some()).unwrap_or(false),
        "membership files removed"
    );
}

#[tokio::test]
async fn empty_segments_and_empty_entities_stay_typed() {
    let (_dir, ws) = people_workspace().await;
    ws.define_segment(SegmentDefinition::new(
        "none",
        "people",
        rule(json!({"attribute": "age", "op": "gt", "value": 200})),
    ))
    .await
    .unwrap();
    let r = ws.evaluate("none").await.unwrap();
    assert_eq!(r.count, 0);
    assert_eq!(r.members.schema().field(0).data_type(), &segkit::deps::arrow::datatypes::DataType::Int64);
    assert_eq!(ws.evaluate("none").await.unwrap().run, 2);
    ws.define_entity(
        segkit::Entity::profile("empty", "k").attribute(segkit::Attribute::new("k", segkit::DataType::String)),
    )
    .await
    .unwrap();
    ws.define_segment(SegmentDefinition::new("e", "empty", rule(json!({"and": []})))).await.unwrap();
    let r = ws.evaluate("e").await.unwrap();
    assert_eq!((r.count, r.members.schema().field(0).name().as_str()), (0, "k"));
}

#[tokio::test]
async fn count_and_preview() {
    let (_dir, ws) = people_workspace().await;
    ws.define_segment(SegmentDefinition::new(
        "adults",
        "people",
        rule(json!({"attribute": "age", "op": "ge", "value": 30})),
    ))
    .await
    .unwrap();
    assert_eq!(ws.count("adults").await.unwrap(), 5);
    assert!(ws.runs("adults").unwrap().is_empty(), "count stores nothing");
    let p = ws.preview("adults", 2).await.unwrap();
    assert_eq!(p.num_rows(), 2);
    let names = p.column_by_name("name").unwrap().as_string::<i32>();
    assert_eq!((names.value(0), names.value(1)), ("***", "***"), "pii attribute masked");
    assert_eq!(ids(&p.project(&[0]).unwrap()), vec![1, 2]);
    assert_eq!(p.column_by_name("country").unwrap().as_string::<i32>().value(0), "CN");
    assert!(p.column_by_name("joined").unwrap().data_type().is_temporal());
}

#[tokio::test]
async fn relative_rules_follow_the_workspace_clock() {
    let (_dir, ws) = people_workspace().await;
    ws.define_segment(SegmentDefinition::new(
        "recent",
        "people",
        rule(json!({"attribute": "joined", "op": "within_last", "value": "7 days"})),
    ))
    .await
    .unwrap();
    assert_eq!(ids(&ws.evaluate("recent").await.unwrap().members), vec![4]);
    ws.set_clock(Arc::new(FixedClock::parse("2026-06-05T00:00:00Z").unwrap()));
    let r = ws.evaluate("recent").await.unwrap();
    assert_eq!((ids(&r.members), ids(&r.entered), ids(&r.exited)), (vec![1], vec![1], vec![4]));
    assert_eq!(r.started_at.to_rfc3339(), "2026-06-05T00:00:00+00:00");
}

#[tokio::test]
async fn bad_segment_definitions_are_refused() {
    let (_dir, ws) = people_workspace().await;
    let e = ws.define_segment(SegmentDefinition::new("x", "peeple", rule(json!({"and": []})))).await.unwrap_err();
    assert!(e.to_string().contains("segment x.entity") && e.to_string().contains("did you mean `people`"), "{e}");
    let e =
        ws.define_segment(SegmentDefinition::new("bad name", "people", rule(json!({"and": []})))).await.unwrap_err();
    assert!(matches!(e, Error::Definition { .. }), "{e}");
    let e = ws
        .define_segment(SegmentDefinition::new(
            "x",
            "people",
            rule(json!({"or": [{"attribute": "agee", "op": "gt", "value": 1}]})),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "rule error at or[0].attribute: entity `people` has no attribute `agee` (did you mean `age`?)"
    );
    let e = ws.count("nope").await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }));
    let _ = Array::len(&StringArray::from(vec!["x"]));
}

#[tokio::test]
async fn splits_assign_stable_variants_stored_with_the_membership() {
    use segkit::deps::arrow::array::Int64Array;
    use segkit::Split;
    let dir = tempfile::tempdir().unwrap();
    let ws = segkit::Workspace::open(dir.path()).await.unwrap();
    ws.define_entity(
        segkit::Entity::profile("u", "id")
            .attribute(segkit::Attribute::new("id", segkit::DataType::Int64))
            .attribute(segkit::Attribute::new("n", segkit::DataType::Int64)),
    )
    .await
    .unwrap();
    let ids: Vec<i64> = (0..20_000).collect();
    let b = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(ids.clone())) as ArrayRef),
        ("n", Arc::new(Int64Array::from(ids.iter().map(|i| i % 10).collect::<Vec<_>>())) as ArrayRef),
    ])
    .unwrap();
    ws.ingest_batches("u", vec![b], IngestOptions::default()).await.unwrap();
    let all = rule(json!({"attribute": "n", "op": "ge", "value": 0}));
    let split = Split::new(20.0).variant("A", 40.0).variant("B", 40.0);
    ws.define_segment(SegmentDefinition::new("ab", "u", all.clone()).with_split(split)).await.unwrap();
    let variants = |batch: &RecordBatch| -> Vec<String> {
        batch.column_by_name("variant").unwrap().as_string::<i32>().iter().map(|v| v.unwrap().to_string()).collect()
    };
    let r1 = ws.evaluate("ab").await.unwrap();
    let v1 = variants(&r1.members);
    let share = |v: &[String], g: &str| v.iter().filter(|x| *x == g).count() as f64 / v.len() as f64;
    assert!((share(&v1, "holdout") - 0.2).abs() < 0.02 && (share(&v1, "A") - 0.4).abs() < 0.02, "{}", share(&v1, "A"));
    assert_eq!(variants(&r1.entered), v1, "entered carries the variant");
    let r2 = ws.evaluate("ab").await.unwrap();
    assert_eq!(variants(&r2.members), v1, "stable across runs");
    // Shrink B and add C: members only leave B or move into C.
    let split = Split::new(20.0).variant("A", 40.0).variant("B", 20.0).variant("C", 20.0);
    ws.define_segment(SegmentDefinition::new("ab", "u", all.clone()).with_split(split)).await.unwrap();
    let v3 = variants(&ws.evaluate("ab").await.unwrap().members);
    for (before, after) in v1.iter().zip(&v3) {
        assert!(before == after || before == "B" || after == "C", "{before} -> {after}");
    }
    assert!((share(&v3, "C") - 0.2).abs() < 0.02);
    // The stored membership has the column; stored references still read the keys.
    let stored: Vec<RecordBatch> = ws.members("ab", None).await.unwrap().try_collect().await.unwrap();
    assert_eq!(stored[0].schema().field(1).name(), "variant");
    ws.define_segment(SegmentDefinition::new(
        "ref",
        "u",
        rule(json!({"in_segment": {"segment": "ab", "stored": true}})),
    ))
    .await
    .unwrap();
    assert_eq!(ws.evaluate("ref").await.unwrap().count, 20_000);
    // Bad splits are refused with the path.
    let e = ws
        .define_segment(SegmentDefinition::new("bad", "u", all).with_split(Split::new(10.0).variant("A", 50.0)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("segment bad.split"), "{e}");
}

#[tokio::test]
async fn dry_run_history_and_as_of() {
    let (_dir, ws) = people_workspace().await;
    let cn = rule(json!({"attribute": "country", "op": "eq", "value": "CN"}));
    ws.define_segment(SegmentDefinition::new("cn", "people", cn.clone())).await.unwrap();
    ws.set_clock(Arc::new(FixedClock::parse("2026-07-01T00:00:00Z").unwrap()));
    ws.evaluate("cn").await.unwrap();
    // Dry run of an edit: nothing is saved.
    let edited = SegmentDefinition::new(
        "cn",
        "people",
        rule(json!({"attribute": "country", "op": "in", "value": ["CN", "US"]})),
    );
    let d = ws.dry_run(edited).await.unwrap();
    assert_eq!((d.count, ids(&d.would_enter), ids(&d.would_exit), d.against_run), (5, vec![2, 6], vec![], Some(1)));
    assert_eq!(ws.segment("cn").unwrap().rule, cn, "dry run saves nothing");
    assert_eq!(ws.runs("cn").unwrap().len(), 1);
    let d = ws.dry_run(SegmentDefinition::new("fresh", "people", cn.clone())).await.unwrap();
    assert_eq!((d.against_run, ids(&d.would_enter)), (None, vec![1, 3, 7]));
    let e = ws
        .dry_run(SegmentDefinition::new("x", "people", rule(json!({"attribute": "cuntry", "op": "eq", "value": 1}))))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("did you mean `country`"), "{e}");
    // A second run after a change, at a later instant.
    let b = RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(vec!["1", "5"])) as ArrayRef),
        ("country", Arc::new(StringArray::from(vec!["US", "CN"])) as ArrayRef),
    ])
    .unwrap();
    ws.ingest_batches("people", vec![b], IngestOptions::default()).await.unwrap();
    ws.set_clock(Arc::new(FixedClock::parse("2026-07-02T00:00:00Z").unwrap()));
    ws.evaluate("cn").await.unwrap();
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
    let first: Vec<RecordBatch> =
        ws.members_as_of("cn", at("2026-07-01T12:00:00Z")).await.unwrap().try_collect().await.unwrap();
    assert_eq!(first.iter().flat_map(ids).collect::<Vec<_>>(), vec![1, 3, 7]);
    let second: Vec<RecordBatch> =
        ws.members_as_of("cn", at("2026-07-05T00:00:00Z")).await.unwrap().try_collect().await.unwrap();
    assert_eq!(second.iter().flat_map(ids).collect::<Vec<_>>(), vec![3, 5, 7]);
    assert!(matches!(ws.members_as_of("cn", at("2026-06-01T00:00:00Z")).await, Err(Error::NotFound { .. })));
    let log = ws.changes("cn").await.unwrap();
    let runs = log.column(0).as_primitive::<segkit::deps::arrow::datatypes::Int64Type>().values().to_vec();
    let keys = ids(&log.project(&[2]).unwrap());
    let change: Vec<&str> = log.column(3).as_string::<i32>().iter().map(|v| v.unwrap()).collect();
    assert_eq!(runs, vec![1, 1, 1, 2, 2]);
    assert_eq!(keys, vec![1, 3, 7, 5, 1]);
    assert_eq!(change, vec!["entered", "entered", "entered", "entered", "exited"]);
}

#[tokio::test]
async fn retention_keeps_the_last_runs() {
    let (dir, ws) = people_workspace().await;
    let cn = rule(json!({"attribute": "country", "op": "eq", "value": "CN"}));
    ws.define_segment(SegmentDefinition::new("cn", "people", cn).keep_runs(2)).await.unwrap();
    for _ in 0..4 {
        ws.evaluate("cn").await.unwrap();
    }
    assert_eq!(ws.runs("cn").unwrap().iter().map(|r| r.run).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(std::fs::read_dir(dir.path().join("segments/cn")).unwrap().count(), 2, "old membership files deleted");
    assert!(matches!(ws.members("cn", Some(1)).await, Err(Error::NotFound { .. })));
    assert_eq!(ws.changes("cn").await.unwrap().num_rows(), 0, "nothing changed between the kept runs");
    assert_eq!(ws.evaluate("cn").await.unwrap().entered.num_rows(), 0);
}

/// A checked rule is reused between evaluations, but never past a change of its definition — including a change
/// another handle (another process) makes to the same catalog.
#[tokio::test]
async fn a_reused_checked_rule_follows_changes_from_another_handle() {
    let (dir, ws) = people_workspace().await;
    let big: Vec<i64> = (0..5000).chain([1, 3]).collect(); // above LARGE_LIST: the join form
    ws.define_segment(SegmentDefinition::new(
        "picked",
        "people",
        rule(json!({"attribute": "id", "op": "in", "value": big})),
    ))
    .await
    .unwrap();
    assert_eq!(ids(&ws.evaluate("picked").await.unwrap().members), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(ws.count("picked").await.unwrap(), 8);
    // Another handle on the same directory redefines the segment.
    let other = segkit::Workspace::open(dir.path()).await.unwrap();
    other
        .define_segment(SegmentDefinition::new(
            "picked",
            "people",
            rule(json!({"attribute": "id", "op": "in", "value": [3, 5]})),
        ))
        .await
        .unwrap();
    assert_eq!(ws.count("picked").await.unwrap(), 2, "the first handle sees the new rule");
    assert_eq!(ids(&ws.evaluate("picked").await.unwrap().members), vec![3, 5]);
}

/// Calendar windows count in the workspace time zone, and a reused checked rule follows a change of it.
#[tokio::test]
async fn a_reused_checked_rule_follows_the_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    let ws = segkit::Workspace::open(dir.path()).await.unwrap();
    ws.define_entity(
        segkit::Entity::profile("t", "id")
            .attribute(segkit::Attribute::new("id", segkit::DataType::Int64))
            .attribute(segkit::Attribute::new("at", segkit::DataType::Timestamp)),
    )
    .await
    .unwrap();
    let b = RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(vec!["1", "2"])) as ArrayRef),
        ("at", Arc::new(StringArray::from(vec!["2026-03-28T12:30:00Z", "2026-03-28T13:00:00Z"])) as ArrayRef),
    ])
    .unwrap();
    ws.ingest_batches("t", vec![b], IngestOptions::default()).await.unwrap();
    ws.set_clock(Arc::new(FixedClock::parse("2026-03-29T12:00:00Z").unwrap()));
    ws.define_segment(SegmentDefinition::new(
        "day",
        "t",
        rule(json!({"attribute": "at", "op": "within_last", "value": "1 day"})),
    ))
    .await
    .unwrap();
    assert_eq!(ids(&ws.evaluate("day").await.unwrap().members), vec![1, 2]);
    // In Berlin the day before 14:00 on the 29th (DST day, 23 hours) starts at 13:00Z on the 28th.
    ws.set_time_zone("Europe/Berlin").unwrap();
    assert_eq!(ids(&ws.evaluate("day").await.unwrap().members), vec![2]);
}

/// `members_page`: pages of any size concatenate to the run's full member list in stored order, `more` is true
/// exactly when rows follow, an offset past the end is an empty last page, an older run stays readable by number,
/// and a missing segment or run, or a bad page size, is a clear error.
#[tokio::test]
async fn members_pages_concatenate_to_the_full_membership() {
    use segkit::deps::arrow::array::Int64Array;
    let dir = tempfile::tempdir().unwrap();
    let ws = segkit::Workspace::open(dir.path()).await.unwrap();
    ws.define_entity(
        segkit::Entity::profile("u", "id")
            .attribute(segkit::Attribute::new("id", segkit::DataType::Int64))
            .attribute(segkit::Attribute::new("n", segkit::DataType::Int64)),
    )
    .await
    .unwrap();
    let keys: Vec<i64> = (0..5_000).map(|i| i * 3).collect();
    let b = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(keys.clone())) as ArrayRef),
        ("n", Arc::new(Int64Array::from(keys.iter().map(|i| i % 7).collect::<Vec<_>>())) as ArrayRef),
    ])
    .unwrap();
    ws.ingest_batches("u", vec![b], IngestOptions::default()).await.unwrap();
    ws.define_segment(SegmentDefinition::new("most", "u", rule(json!({"attribute": "n", "op": "ne", "value": 0}))))
        .await
        .unwrap();
    let run1 = ws.evaluate("most").await.unwrap();
    let want: Vec<i64> = keys.iter().copied().filter(|k| k % 7 != 0).collect();
    assert_eq!(ids(&run1.members), want);
    assert!(want.len() > 4_000);

    let page_keys = |p: &segkit::MembersPage| p.batches.iter().flat_map(ids).collect::<Vec<_>>();
    for size in [1, 7, 1_000, want.len() - 1, want.len(), want.len() + 1, 100_000] {
        let (mut got, mut offset, mut pages) = (vec![], 0, 0);
        loop {
            let p = ws.members_page("most", None, offset, size).await.unwrap();
            assert_eq!(p.run, 1);
            assert_eq!(p.schema.field(0).name(), "id");
            let rows = page_keys(&p);
            assert!(rows.len() <= size, "page of {size}: {} rows", rows.len());
            offset += rows.len();
            got.extend(rows);
            pages += 1;
            if !p.more {
                break;
            }
            assert_eq!(p.batches.iter().map(|b| b.num_rows()).sum::<usize>(), size, "a page before the last is full");
            assert!(pages <= want.len(), "pagination of {size} does not end");
        }
        assert_eq!(got, want, "pages of {size}");
        assert_eq!(pages, want.len().div_ceil(size), "pages of {size}");
    }
    // Past the end: an empty last page with the key schema.
    for offset in [want.len(), want.len() + 10, usize::MAX / 2] {
        let p = ws.members_page("most", None, offset, 10).await.unwrap();
        assert!(page_keys(&p).is_empty() && !p.more, "offset {offset}");
        assert_eq!(p.schema.field(0).name(), "id");
    }
    // A later run with other members; run 1 stays readable by number, the default is the latest.
    ws.define_segment(SegmentDefinition::new("most", "u", rule(json!({"attribute": "n", "op": "eq", "value": 0}))))
        .await
        .unwrap();
    ws.evaluate("most").await.unwrap();
    let latest = ws.members_page("most", None, 0, 3).await.unwrap();
    assert_eq!((latest.run, page_keys(&latest), latest.more), (2, vec![0, 21, 42], true));
    let old = ws.members_page("most", Some(1), 2, 3).await.unwrap();
    assert_eq!((old.run, page_keys(&old)), (1, want[2..5].to_vec()));
    // Errors: a run that does not exist, a segment that does not exist, a page size out of bounds.
    let e = ws.members_page("most", Some(9), 0, 10).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("most#9"), "{e}");
    let e = ws.members_page("nope", None, 0, 10).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }) && e.to_string().contains("nope"), "{e}");
    ws.define_segment(SegmentDefinition::new("never", "u", rule(json!({"attribute": "n", "op": "eq", "value": 1}))))
        .await
        .unwrap();
    let e = ws.members_page("never", None, 0, 10).await.unwrap_err();
    assert!(e.to_string().contains("evaluate the segment first"), "{e}");
    for limit in [0, segkit::limits::MAX_PAGE_ROWS + 1] {
        let e = ws.members_page("most", None, 0, limit).await.unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("MAX_PAGE_ROWS"), "{e}");
    }
}
