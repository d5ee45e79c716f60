//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use segkit::deps::arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use segkit::deps::arrow::datatypes::Int64Type;
use segkit::{Attribute, DataType, Entity, FixedClock, IngestOptions, SegmentDefinition, Workspace};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");

/// Parses a simple CSV (no quoting) into an all-text batch: empty fields are nulls.
pub fn csv_batch(text: &str) -> RecordBatch {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.filter(|l| !l.is_empty()).map(|l| l.split(',').collect()).collect();
    let cols: Vec<(&str, ArrayRef)> = header
        .iter()
        .enumerate()
        .map(|(j, h)| {
            let a: StringArray = rows.iter().map(|r| r.get(j).filter(|v| !v.is_empty()).copied()).collect();
            (*h, Arc::new(a) as ArrayRef)
        })
        .collect();
    RecordBatch::try_from_iter(cols).unwrap()
}

pub fn people_entity() -> Entity {
    Entity::profile("people", "id")
        .attribute(Attribute::new("id", DataType::Int64))
        .attribute(Attribute::new("name", DataType::String).pii())
        .attribute(Attribute::new("country", DataType::String))
        .attribute(Attribute::new("age", DataType::Int32))
        .attribute(Attribute::new("plan", DataType::String))
        .attribute(Attribute::new("score", DataType::Float64))
        .attribute(Attribute::new("vip", DataType::Bool))
        .attribute(Attribute::new("joined", DataType::Timestamp))
        .attribute(Attribute::new("tags", DataType::List(Box::new(DataType::String))))
}

/// A workspace in a temp dir with `people.csv` ingested and the clock at 2026-06-30T00:00:00Z.
pub async fn people_workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).await.unwrap();
    ws.set_clock(Arc::new(FixedClock::parse("2026-06-30T00:00:00Z").unwrap()));
    ws.define_entity(people_entity()).await.unwrap();
    let text = std::fs::read_to_string(format!("{FIXTURES}/people.csv")).unwrap();
    let r = ws.ingest_batches("people", vec![csv_batch(&text)], IngestOptions::default()).await.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined), (8, 0), "{:?}", r.quarantine_sample);
    (dir, ws)
}

pub fn ids(batch: &RecordBatch) -> Vec<i64> {
    batch.column(0).as_primitive::<Int64Type>().values().to_vec()
}

/// Defines `rule` as a segment and returns its members.
pub async fn members(ws: &Workspace, name: &str, entity: &str, rule: serde_json::Value) -> segkit::Result<Vec<i64>> {
    let rule = segkit::rules::Rule::parse(&rule, segkit::rules::Dialect::Auto)?;
    ws.define_segment(SegmentDefinition::new(name, entity, rule)).await?;
    Ok(ids(&ws.evaluate(name).await?.members))
}
