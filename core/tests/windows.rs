//! Relative time windows at their boundaries, in time zones and across DST changes, with a fixed clock.

mod common;

use std::sync::Arc;

use common::*;
use segkit::deps::arrow::array::{ArrayRef, RecordBatch, StringArray};
use segkit::{Attribute, DataType, Entity, FixedClock, IngestOptions, Workspace};
use serde_json::json;

async fn workspace(rows: &[(&str, &str, &str)]) -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).await.unwrap();
    ws.define_entity(
        Entity::profile("t", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("at", DataType::Timestamp))
            .attribute(Attribute::new("day", DataType::Date)),
    )
    .await
    .unwrap();
    let b = RecordBatch::try_from_iter([
        ("id", Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())) as ArrayRef),
        ("at", Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())) as ArrayRef),
        ("day", Arc::new(StringArray::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())) as ArrayRef),
    ])
    .unwrap();
    let r = ws.ingest_batches("t", vec![b], IngestOptions::default()).await.unwrap();
    assert_eq!(r.rows_quarantined, 0, "{:?}", r.quarantine_sample);
    (dir, ws)
}

async fn within(ws: &Workspace, name: &str, attr: &str, window: &str) -> Vec<i64> {
    members(ws, name, "t", json!({"attribute": attr, "op": "within_last", "value": window})).await.unwrap()
}

#[tokio::test]
async fn a_day_across_spring_forward_is_23_hours_in_the_local_zone() {
    // Berlin moves from CET to CEST on 2026-03-29 at 01:00 UTC.
    let (_d, ws) = workspace(&[
        ("1", "2026-03-28T12:30:00Z", "2026-03-28"),
        ("2", "2026-03-28T13:00:00Z", "2026-03-28"),
        ("3", "2026-03-29T12:00:00Z", "2026-03-29"),
        ("4", "2026-03-29T12:00:01Z", "2026-03-29"),
    ])
    .await;
    ws.set_clock(Arc::new(FixedClock::parse("2026-03-29T12:00:00Z").unwrap()));
    assert_eq!(
        within(&ws, "utc_day", "at", "1 day").await,
        vec![1, 2, 3],
        "UTC: [now − 24 h, now], both ends included"
    );
    ws.set_time_zone("Europe/Berlin").unwrap();
    assert_eq!(
        within(&ws, "berlin_day", "at", "1 day").await,
        vec![2, 3],
        "14:00 CEST back to 14:00 CET the day before"
    );
    assert_eq!(within(&ws, "berlin_hours", "at", "24 hours").await, vec![1, 2, 3], "hours stay absolute");
}

#[tokio::test]
async fn a_day_across_fall_back_is_25_hours_and_gaps_move_forward() {
    let (_d, ws) = workspace(&[
        ("1", "2026-10-24T11:30:00Z", "2026-10-24"),
        ("2", "2026-03-29T00:45:00Z", "2026-03-29"),
        ("3", "2026-03-29T01:00:00Z", "2026-03-29"),
    ])
    .await;
    ws.set_time_zone("Europe/Berlin").unwrap();
    // 2026-10-25 13:00 CET back one calendar day is 2026-10-24 13:00 CEST = 11:00 UTC: a 25-hour window.
    ws.set_clock(Arc::new(FixedClock::parse("2026-10-25T12:00:00Z").unwrap()));
    assert_eq!(within(&ws, "fall", "at", "1 day").await, vec![1]);
    ws.set_time_zone("UTC").unwrap();
    assert_eq!(within(&ws, "fall_utc", "at", "1 day").await, Vec::<i64>::new());
    // 2026-03-30 02:30 CEST back one day is 2026-03-29 02:30, which does not exist in Berlin: it moves forward to
    // 03:00 CEST (01:00 UTC), included.
    ws.set_time_zone("Europe/Berlin").unwrap();
    ws.set_clock(Arc::new(FixedClock::parse("2026-03-30T00:30:00Z").unwrap()));
    assert_eq!(within(&ws, "gap", "at", "1 day").await, vec![3]);
}

#[tokio::test]
async fn dates_compare_with_the_local_date() {
    let (_d, ws) =
        workspace(&[("1", "2026-06-30T00:00:00Z", "2026-06-30"), ("2", "2026-07-01T00:00:00Z", "2026-07-01")]).await;
    ws.set_clock(Arc::new(FixedClock::parse("2026-06-30T23:30:00Z").unwrap()));
    assert_eq!(within(&ws, "today_utc", "day", "0 days").await, vec![1]);
    ws.set_time_zone("Asia/Shanghai").unwrap();
    assert_eq!(within(&ws, "today_shanghai", "day", "0 days").await, vec![2], "it is already 1 July in Shanghai");
    assert_eq!(within(&ws, "month_shanghai", "day", "1 month").await, vec![1, 2]);
    let e = ws.set_time_zone("Mars/Olympus").unwrap_err();
    assert!(e.to_string().contains("unknown time zone \"Mars/Olympus\""), "{e}");
}
