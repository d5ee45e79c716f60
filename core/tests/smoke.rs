use std::sync::Arc;

use segkit::deps::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use segkit::deps::arrow::datatypes::Int64Type;
use segkit::rules::Rule;
use segkit::{Attribute, DataType, Entity, IngestOptions, SegmentDefinition, Workspace};

#[tokio::test]
async fn ingest_evaluate_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open(dir.path()).await.unwrap();
    ws.define_entity(
        Entity::profile("user", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("country", DataType::String))
            .attribute(Attribute::new("age", DataType::Int32)),
    )
    .await
    .unwrap();
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![3, 1, 2, 4])) as _),
        ("country", Arc::new(StringArray::from(vec![Some("CN"), Some("US"), Some("CN"), None])) as _),
        ("age", Arc::new(StringArray::from(vec!["30", "41", "x", "22"])) as _),
    ])
    .unwrap();
    let report = ws.ingest_batches("user", vec![batch], IngestOptions::default()).await.unwrap();
    assert_eq!((report.rows_read, report.rows_written, report.rows_quarantined), (4, 3, 1));
    assert_eq!(report.quarantine_sample[0].row, 3);
    assert!(report.quarantine_sample[0].reason.contains("attribute `age`"), "{:?}", report.quarantine_sample);
    let rule = Rule::parse_str(r#"{"attribute": "country", "op": "eq", "value": "CN"}"#).unwrap();
    ws.define_segment(SegmentDefinition::new("cn", "user", rule)).await.unwrap();
    let run = ws.evaluate("cn").await.unwrap();
    assert_eq!(run.count, 1);
    assert_eq!(run.members.column(0).as_primitive::<Int64Type>().values().to_vec(), vec![3]);
    assert_eq!(run.entered.num_rows(), 1);
    drop(ws);
    let ws = Workspace::open(dir.path()).await.unwrap();
    assert_eq!(ws.count("cn").await.unwrap(), 1);
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![3, 5])) as _),
        ("country", Arc::new(StringArray::from(vec!["DE", "CN"])) as _),
    ])
    .unwrap();
    let report = ws.ingest_batches("user", vec![batch], IngestOptions::default()).await.unwrap();
    assert_eq!((report.rows_inserted, report.rows_updated), (1, 1));
    let run = ws.evaluate("cn").await.unwrap();
    assert_eq!(run.members.column(0).as_primitive::<Int64Type>().values().to_vec(), vec![5]);
    assert_eq!(run.exited.column(0).as_primitive::<Int64Type>().value(0), 3);
    let q = ws.quarantine("user").await.unwrap();
    assert_eq!(q.num_rows(), 1);
    assert_eq!(q.column(0).len(), 1);
}
