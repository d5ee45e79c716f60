//! Pages of the logs kept in Parquet (`Workspace::changes_page`, `Workspace::quarantine_page`) against the whole
//! logs (`changes`, `quarantine`) filtered, stably sorted and sliced here: every filter, both sort fields, both
//! directions and windows across run and file boundaries, with a run dropped by retention and a clock that goes
//! back (so `started_at` order is not run order).

use std::collections::HashSet;
use std::sync::Arc;

use segkit::deps::arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use segkit::deps::arrow::datatypes::Int64Type;
use segkit::rules::{Dialect, Rule};
use segkit::{
    Attribute, ChangeKind, ChangesQuery, DataType, Entity, FixedClock, IngestOptions, PageRequest, QuarantineQuery,
    QuarantineSort, SegmentDefinition, Workspace,
};
use serde_json::json;

const KEYS: i64 = 240;

/// `(run, started_at, key, change)` rows of a change log.
fn change_rows(b: &RecordBatch) -> Vec<(i64, String, i64, String)> {
    (0..b.num_rows())
        .map(|i| {
            (
                b.column(0).as_primitive::<Int64Type>().value(i),
                b.column(1).as_string::<i32>().value(i).to_string(),
                b.column(2).as_primitive::<Int64Type>().value(i),
                b.column(3).as_string::<i32>().value(i).to_string(),
            )
        })
        .collect()
}

/// `(ingest_id, row, reason, record)` rows of quarantined rows.
fn quarantine_rows(b: &RecordBatch) -> Vec<(String, i64, String, String)> {
    (0..b.num_rows())
        .map(|i| {
            (
                b.column(0).as_string::<i32>().value(i).to_string(),
                b.column(1).as_primitive::<Int64Type>().value(i),
                b.column(2).as_string::<i32>().value(i).to_string(),
                b.column(3).as_string::<i32>().value(i).to_string(),
            )
        })
        .collect()
}

fn windows() -> Vec<(usize, usize)> {
    vec![(0, 7), (5, 100), (95, 10), (0, 1000), (250, 30), (119, 2), (10_000, 5)]
}

#[tokio::test]
async fn change_pages_are_the_filtered_sorted_slices_of_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).await.unwrap();
    ws.define_entity(
        Entity::profile("p", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("v", DataType::Int64)),
    )
    .await
    .unwrap();
    let rule = Rule::parse(&json!({"attribute": "v", "op": "ge", "value": 5}), Dialect::Auto).unwrap();
    ws.define_segment(SegmentDefinition::new("hi", "p", rule).keep_runs(5)).await.unwrap();
    // Six runs (the first dropped by retention), the clock going back and forth.
    let clocks = ["2026-06-03", "2026-06-01", "2026-06-05", "2026-06-01", "2026-06-02", "2026-06-04"];
    for (k, day) in clocks.iter().enumerate() {
        let ids: Vec<i64> = (0..KEYS).collect();
        let v: Vec<i64> = ids.iter().map(|i| (i * 7 + k as i64 * 13 + (i / 17) * k as i64) % 10).collect();
        let b = RecordBatch::try_from_iter([
            ("id", Arc::new(Int64Array::from(ids)) as ArrayRef),
            ("v", Arc::new(Int64Array::from(v)) as ArrayRef),
        ])
        .unwrap();
        ws.ingest_batches("p", vec![b], IngestOptions::default()).await.unwrap();
        ws.set_clock(Arc::new(FixedClock::parse(&format!("{day}T00:00:00Z")).unwrap()));
        ws.evaluate("hi").await.unwrap();
    }
    assert_eq!(ws.runs("hi").unwrap().first().unwrap().run, 2, "run 1 dropped by retention");
    let whole = change_rows(&ws.changes("hi").await.unwrap());
    assert!(whole.len() > 300, "a log longer than the pages: {}", whole.len());

    let mut checked = 0;
    for run in [None, Some(4), Some(2), Some(1)] {
        for change in [None, Some(ChangeKind::Entered), Some(ChangeKind::Exited)] {
            for by_started_at in [false, true] {
                for descending in [false, true] {
                    let mut want: Vec<_> = whole
                        .iter()
                        .filter(|r| run.is_none_or(|n| r.0 == n) && change.is_none_or(|c| r.3 == c.as_str()))
                        .cloned()
                        .collect();
                    want.sort_by(|a, b| {
                        let o = if by_started_at { a.1.cmp(&b.1) } else { a.0.cmp(&b.0) };
                        if descending {
                            o.reverse()
                        } else {
                            o
                        }
                    });
                    for (offset, limit) in windows() {
                        let page = PageRequest { offset, limit, descending };
                        let q = ChangesQuery { run, change, by_started_at, page };
                        let got = ws.changes_page("hi", &q).await.unwrap();
                        assert_eq!(got.total as usize, want.len(), "{q:?}");
                        let slice: Vec<_> = want.iter().skip(offset).take(limit).cloned().collect();
                        assert_eq!(change_rows(&got.batch), slice, "{q:?}");
                        checked += slice.len();
                    }
                }
            }
        }
    }
    assert!(checked > 5000, "{checked}");
    // Run 1 (dropped) and the first kept run (no predecessor) have no changes; a segment without runs neither.
    let q = |run| ChangesQuery {
        run: Some(run),
        change: None,
        by_started_at: false,
        page: PageRequest { offset: 0, limit: 10, descending: false },
    };
    assert_eq!(ws.changes_page("hi", &q(2)).await.unwrap().total, 0);
    assert!(ws.changes_page("hi", &q(3)).await.unwrap().total > 0);

    // Bad windows and names are errors that say why.
    let bad = |offset, limit| ChangesQuery { page: PageRequest { offset, limit, descending: false }, ..q(3) };
    let e = ws.changes_page("hi", &bad(0, 0)).await.unwrap_err();
    assert!(e.to_string().contains("at least 1"), "{e}");
    let e = ws.changes_page("hi", &bad(segkit::limits::MAX_LOG_PAGE_END, 1)).await.unwrap_err();
    assert!(e.to_string().contains("MAX_LOG_PAGE_END"), "{e}");
    let e = ws.changes_page("hi", &bad(usize::MAX, 2)).await.unwrap_err();
    assert!(e.to_string().contains("MAX_LOG_PAGE_END"), "{e}");
    let e = ws.changes_page("nope", &q(1)).await.unwrap_err();
    assert!(matches!(e, segkit::Error::NotFound { .. }), "{e}");
    assert!("left".parse::<ChangeKind>().unwrap_err().to_string().contains("`left` is not `entered` or `exited`"));
}

#[tokio::test]
async fn quarantine_pages_are_the_filtered_sorted_slices_of_the_whole_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).await.unwrap();
    ws.define_entity(
        Entity::profile("q", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("n", DataType::Int64)),
    )
    .await
    .unwrap();
    let empty = QuarantineQuery {
        ingest_ids: None,
        sort: QuarantineSort::Row,
        page: PageRequest { offset: 0, limit: 10, descending: false },
    };
    let none = ws.quarantine_page("q", &empty).await.unwrap();
    assert_eq!((none.total, none.batch.num_rows(), none.batch.num_columns()), (0, 0, 4));
    // Four ingests with different numbers of bad rows (one with none), as text to coerce.
    for (k, bad_every) in [3usize, 5, 0, 2].into_iter().enumerate() {
        let ids: Vec<String> = (0..150).map(|i| format!("{}", k * 1000 + i)).collect();
        let n: Vec<String> = (0..150)
            .map(|i| if bad_every > 0 && i % bad_every == 0 { format!("bad{i}") } else { i.to_string() })
            .collect();
        let b = RecordBatch::try_from_iter([
            ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
            ("n", Arc::new(StringArray::from(n)) as ArrayRef),
        ])
        .unwrap();
        ws.ingest_batches("q", vec![b], IngestOptions::default()).await.unwrap();
    }
    let history: Vec<String> = ws.ingest_history("q").unwrap().into_iter().map(|r| r.id).collect();
    let seq = |id: &str| history.iter().position(|h| h == id).unwrap();
    let whole = quarantine_rows(&ws.quarantine("q").await.unwrap());
    assert_eq!(whole.len(), 50 + 30 + 75);

    for ids in [None, Some(HashSet::from([history[1].clone(), history[3].clone()])), Some(HashSet::new())] {
        for sort in [QuarantineSort::Row, QuarantineSort::IngestId] {
            for descending in [false, true] {
                let mut want: Vec<_> =
                    whole.iter().filter(|r| ids.as_ref().is_none_or(|s| s.contains(&r.0))).cloned().collect();
                // Documented order: the sort field, then the older ingest, then the row.
                want.sort_by(|a, b| {
                    let o = match sort {
                        QuarantineSort::Row => a.1.cmp(&b.1),
                        QuarantineSort::IngestId => a.0.cmp(&b.0),
                    };
                    let o = if descending { o.reverse() } else { o };
                    o.then(seq(&a.0).cmp(&seq(&b.0))).then(a.1.cmp(&b.1))
                });
                for (offset, limit) in windows() {
                    let q = QuarantineQuery {
                        ingest_ids: ids.clone(),
                        sort,
                        page: PageRequest { offset, limit, descending },
                    };
                    let got = ws.quarantine_page("q", &q).await.unwrap();
                    assert_eq!(got.total as usize, want.len(), "{q:?}");
                    let slice: Vec<_> = want.iter().skip(offset).take(limit).cloned().collect();
                    assert_eq!(quarantine_rows(&got.batch), slice, "{q:?}");
                }
            }
        }
    }
    let e = ws
        .quarantine_page(
            "q",
            &QuarantineQuery { page: PageRequest { offset: 0, limit: 0, descending: false }, ..empty.clone() },
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("at least 1"), "{e}");
    assert!(matches!(ws.quarantine_page("nope", &empty).await.unwrap_err(), segkit::Error::NotFound { .. }));
    // After clearing, nothing is left to page.
    ws.clear_quarantine("q").await.unwrap();
    assert_eq!(ws.quarantine_page("q", &empty).await.unwrap().total, 0);
}
