use std::sync::Arc;

use segkit::deps::arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use segkit::deps::arrow::datatypes::{DataType as ArrowType, Int64Type};
use segkit::testing::{collect_scan, source_conformance};
use segkit::{Attribute, DataType, Entity, ErrorKind, IngestOptions, ScanRequest, Source, Workspace};
use segkit_connectors::{from_config, open, FileFormat, FileSource, JsonRecordsSource, ERROR_COLUMN, RAW_COLUMN};
use serde_json::json;

async fn workspace(dir: &tempfile::TempDir) -> Workspace {
    let ws = Workspace::open(dir.path().join("ws")).await.unwrap();
    ws.define_entity(
        Entity::profile("user", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("name", DataType::String))
            .attribute(Attribute::new("age", DataType::Int32))
            .attribute(Attribute::new("score", DataType::Float64)),
    )
    .await
    .unwrap();
    ws
}

async fn rows(ws: &Workspace, sql: &str) -> Vec<RecordBatch> {
    ws.sql(sql).await.unwrap()
}

fn strings(batches: &[RecordBatch], col: usize) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let a = segkit::deps::arrow::compute::cast(b.column(col), &ArrowType::Utf8).unwrap();
            a.as_string::<i32>().iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>()
        })
        .collect()
}

fn total_rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

const USERS_CSV: &str = "id,name,age,score\n\
     1,\"Smith, Jane\",30,1.5\n\
     2,\"multi\nline \"\"quoted\"\"\",41,\n\
     3,too,many,fields,here\n\
     4,Bob,notanumber,2\n\
     5,,22,3.25\n\
     6,Short\n\
     7,Eve,19,0\n";

#[tokio::test]
async fn csv_delivers_text_quoted_fields_and_malformed_rows_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.csv");
    std::fs::write(&path, USERS_CSV).unwrap();
    let source = open(path.to_str().unwrap()).unwrap();
    assert_eq!(source.name(), "csv:users.csv");
    let schema = source.schema().await.unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "name", "age", "score", RAW_COLUMN, ERROR_COLUMN]);
    assert!(schema.fields().iter().all(|f| f.data_type() == &ArrowType::Utf8));
    let batches = collect_scan(source.as_ref(), &ScanRequest::all()).await.unwrap();
    assert_eq!(total_rows(&batches), 7);
    let ids = strings(&batches, 0);
    assert_eq!(
        ids,
        [Some("1".into()), Some("2".into()), None, Some("4".into()), Some("5".into()), None, Some("7".into())]
    );
    assert_eq!(strings(&batches, 1)[0].as_deref(), Some("Smith, Jane"));
    assert_eq!(strings(&batches, 1)[1].as_deref(), Some("multi\nline \"quoted\""));
    assert_eq!(strings(&batches, 3)[1], None, "empty field is null");
    assert_eq!(strings(&batches, 1)[4], None, "empty field is null");
    let raw = strings(&batches, 4);
    assert_eq!(raw, [None, None, Some("3,too,many,fields,here".into()), None, None, Some("6,Short".into()), None]);
    let why = strings(&batches, 5);
    assert_eq!(why[2].as_deref(), Some("users.csv line 5, byte 71: 5 fields, expected 4"));
    assert_eq!(why[5].as_deref(), Some("users.csv line 8, byte 124: 2 fields, expected 4"));
    source_conformance(source.as_ref()).await.unwrap();
}

#[tokio::test]
async fn csv_ingests_with_quoting_nulls_and_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.csv");
    std::fs::write(&path, USERS_CSV).unwrap();
    let ws = workspace(&dir).await;
    let source = open(path.to_str().unwrap()).unwrap();
    let report = ws.ingest("user", source.as_ref(), IngestOptions::default()).await.unwrap();
    assert_eq!(report.rows_read, 7, "{report:?}");
    assert_eq!(report.rows_written, 4, "{report:?}");
    assert_eq!(report.rows_quarantined, 3);
    let q: Vec<u64> = report.quarantine_sample.iter().map(|r| r.row).collect();
    assert_eq!(q, [3, 4, 6], "{:?}", report.quarantine_sample);
    assert_eq!(
        report.quarantine_sample[0].reason, "malformed record: users.csv line 5, byte 71: 5 fields, expected 4",
        "{:?}",
        report.quarantine_sample
    );
    assert!(report.quarantine_sample[1].reason.contains("attribute `age`"), "{:?}", report.quarantine_sample);

    // The malformed record's raw text is kept in the quarantine.
    let quarantine = ws.quarantine("user").await.unwrap();
    let record_col = quarantine.schema().index_of("record").unwrap();
    let records = strings(std::slice::from_ref(&quarantine), record_col);
    assert!(records[0].as_deref().unwrap().contains("3,too,many,fields,here"), "{records:?}");

    let out = rows(&ws, "SELECT id, name, age, score FROM \"user\" ORDER BY id").await;
    let ids: Vec<i64> = out.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
    assert_eq!(ids, [1, 2, 5, 7]);
    assert_eq!(
        strings(&out, 1),
        [Some("Smith, Jane".into()), Some("multi\nline \"quoted\"".into()), None, Some("Eve".into())]
    );
    let scores = out[0].column(3).as_any().downcast_ref::<Float64Array>().unwrap();
    assert_eq!(scores.value(0), 1.5);
    assert!(scores.is_null(1), "empty field is null");
}

#[tokio::test]
async fn csv_good_rows_ingest_into_a_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("good.csv");
    std::fs::write(&path, "id,name,age,score\n1,\"Smith, Jane\",30,1.5\n2,\"two\nlines\",,\n3,Bo,x,2\n").unwrap();
    let ws = workspace(&dir).await;
    let source = open(path.to_str().unwrap()).unwrap();
    let report = ws.ingest("user", source.as_ref(), IngestOptions::default()).await.unwrap();
    assert_eq!((report.rows_read, report.rows_written, report.rows_quarantined), (3, 2, 1), "{report:?}");
    assert_eq!(report.quarantine_sample[0].row, 3);
    assert!(report.quarantine_sample[0].reason.contains("attribute `age`"), "{:?}", report.quarantine_sample);
    assert!(report.ignored_fields.is_empty(), "{:?}", report.ignored_fields);
    let out = rows(&ws, "SELECT id, name, age FROM \"user\" ORDER BY id").await;
    assert_eq!(strings(&out, 1), [Some("Smith, Jane".into()), Some("two\nlines".into())]);
    assert_eq!(strings(&out, 2), [Some("30".into()), None]);
    assert_eq!(ws.sql("SELECT * FROM \"user\"").await.unwrap().iter().map(|b| b.num_rows()).sum::<usize>(), 2);
}

#[tokio::test]
async fn csv_streams_in_batches_and_keeps_row_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.tsv");
    let mut text = String::from("id\tname\r\n");
    for i in 0..1000 {
        text.push_str(&format!("{i}\tn{i}\r\n"));
    }
    std::fs::write(&path, text).unwrap();
    let source = FileSource::new(path.to_str().unwrap(), FileFormat::from_extension("x.tsv").unwrap())
        .unwrap()
        .with_batch_size(128);
    assert_eq!(source.name(), "tsv:big.tsv");
    let batches = collect_scan(&source, &ScanRequest::all()).await.unwrap();
    assert_eq!(batches.len(), 8);
    assert!(batches[..7].iter().all(|b| b.num_rows() == 128));
    let ids = strings(&batches, 0);
    assert_eq!(ids, (0..1000).map(|i| Some(i.to_string())).collect::<Vec<_>>());
    assert!(strings(&batches, 2).iter().all(Option::is_none), "no malformed rows");
    let projected = collect_scan(&source, &ScanRequest::all().with_projection(vec!["name".into()])).await.unwrap();
    assert_eq!(projected[0].schema().field(0).name(), "name");
    assert_eq!(projected[0].num_columns(), 1);
    source_conformance(&source).await.unwrap();
}

#[tokio::test]
async fn csv_without_header_and_custom_delimiter_via_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.txt");
    std::fs::write(&path, "1;a\n2;b\n").unwrap();
    let source = from_config(&json!({"type": "csv", "path": path, "delimiter": ";", "header": false})).unwrap();
    let schema = source.schema().await.unwrap();
    assert_eq!(schema.field(0).name(), "column_1");
    assert_eq!(schema.field(1).name(), "column_2");
    let batches = collect_scan(source.as_ref(), &ScanRequest::all()).await.unwrap();
    assert_eq!(strings(&batches, 1), [Some("a".into()), Some("b".into())]);
    source_conformance(source.as_ref()).await.unwrap();
}

const USERS_JSONL: &str = concat!(
    "{\"id\": 1, \"name\": \"Ann\", \"age\": 30, \"tags\": [\"a\", \"b\"]}\n",
    "{\"id\": 2, \"name\": null, \"score\": 2.5, \"vip\": true, \"meta\": {\"k\": 1}}\n",
    "\n",
    "{\"id\": 3, \"name\": \"broken\n",
    "[1, 2, 3]\n",
    "{\"id\": \"4\", \"age\": \"x\"}\n",
    "{\"name\": \"Zed\", \"id\": 5}"
);

#[tokio::test]
async fn ndjson_delivers_text_and_malformed_lines_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.jsonl");
    std::fs::write(&path, USERS_JSONL).unwrap();
    let source = open(path.to_str().unwrap()).unwrap();
    assert_eq!(source.name(), "ndjson:users.jsonl");
    let schema = source.schema().await.unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "name", "age", "tags", "score", "vip", "meta", RAW_COLUMN, ERROR_COLUMN]);

    let batches = collect_scan(source.as_ref(), &ScanRequest::all()).await.unwrap();
    assert_eq!(total_rows(&batches), 6, "blank line skipped");
    assert_eq!(strings(&batches, 3)[0].as_deref(), Some("[\"a\",\"b\"]"));
    assert_eq!(strings(&batches, 5)[1].as_deref(), Some("true"));
    assert_eq!(strings(&batches, 6)[1].as_deref(), Some("{\"k\":1}"));
    assert_eq!(strings(&batches, 7)[2].as_deref(), Some("{\"id\": 3, \"name\": \"broken"));
    assert_eq!(strings(&batches, 7)[3].as_deref(), Some("[1, 2, 3]"));
    let why = strings(&batches, 8);
    assert!(why[2].as_deref().unwrap().starts_with("users.jsonl line 4, byte 126: not valid JSON"), "{why:?}");
    assert_eq!(why[3].as_deref(), Some("users.jsonl line 5, byte 152: not a JSON object"));

    source_conformance(source.as_ref()).await.unwrap();
}

#[tokio::test]
async fn ndjson_quarantines_malformed_lines_in_a_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.jsonl");
    std::fs::write(&path, USERS_JSONL).unwrap();
    let ws = workspace(&dir).await;
    let source = open(path.to_str().unwrap()).unwrap();
    let report = ws.ingest("user", source.as_ref(), IngestOptions::default()).await.unwrap();
    assert_eq!((report.rows_read, report.rows_written, report.rows_quarantined), (6, 3, 3), "{report:?}");
    let q: Vec<u64> = report.quarantine_sample.iter().map(|r| r.row).collect();
    assert_eq!(q, [3, 4, 5]);
    let out = rows(&ws, "SELECT id, name, score FROM \"user\" ORDER BY id").await;
    let ids: Vec<i64> = out.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
    assert_eq!(ids, [1, 2, 5]);
    assert_eq!(strings(&out, 1), [Some("Ann".into()), None, Some("Zed".into())]);
    assert_eq!(strings(&out, 2)[1].as_deref(), Some("2.5"));
    source_conformance(source.as_ref()).await.unwrap();
}

#[tokio::test]
async fn json_records_share_the_ndjson_convention() {
    let source = JsonRecordsSource::new(
        "records",
        vec![json!({"id": 1, "name": "a", "flags": [1, 2]}), json!({"id": 2, "extra": false}), json!("not an object")],
    )
    .with_batch_size(2);
    assert_eq!(source.len(), 3);
    let schema = source.schema().await.unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["flags", "id", "name", "extra", RAW_COLUMN, ERROR_COLUMN]);
    let batches = collect_scan(&source, &ScanRequest::all()).await.unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(strings(&batches, 0)[0].as_deref(), Some("[1,2]"));
    assert_eq!(strings(&batches, 3)[1].as_deref(), Some("false"));
    assert_eq!(strings(&batches, 4), [None, None, Some("\"not an object\"".into())]);
    assert_eq!(strings(&batches, 5)[2].as_deref(), Some("records element 3: not a JSON object"));
    source_conformance(&source).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(&dir).await;
    let good = JsonRecordsSource::new(
        "records",
        vec![json!({"id": 1, "age": "x"}), json!({"id": "2", "age": 7, "score": 1.25})],
    );
    let report = ws.ingest("user", &good, IngestOptions::default()).await.unwrap();
    assert_eq!((report.rows_written, report.rows_quarantined), (1, 1), "{report:?}");
    assert_eq!(report.quarantine_sample[0].row, 1);
    let out = rows(&ws, "SELECT id, age, score FROM \"user\"").await;
    assert_eq!(strings(&out, 0), [Some("2".into())]);
    assert_eq!(strings(&out, 1), [Some("7".into())]);
    assert_eq!(strings(&out, 2), [Some("1.25".into())]);
}

fn write_parquet(path: &std::path::Path) {
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(Int64Array::from(vec![10, 20, 30])) as _),
        ("name", Arc::new(StringArray::from(vec![Some("x"), None, Some("z")])) as _),
        ("score", Arc::new(Float64Array::from(vec![0.5, 1.5, 2.5])) as _),
        ("age", Arc::new(Int64Array::from(vec![Some(1), Some(2), None])) as _),
    ])
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(2)).build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[tokio::test]
async fn parquet_is_typed_projected_and_ingested() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.parquet");
    write_parquet(&path);
    let url = format!("file://{}", path.display());
    let source = open(&url).unwrap();
    assert_eq!(source.name(), "parquet:users.parquet");
    assert!(source.capabilities().projection);
    let schema = source.schema().await.unwrap();
    assert_eq!(schema.field(0).data_type(), &ArrowType::Int64);
    assert_eq!(schema.field(2).data_type(), &ArrowType::Float64);

    let projected =
        collect_scan(source.as_ref(), &ScanRequest::all().with_projection(vec!["score".into(), "id".into()]))
            .await
            .unwrap();
    assert_eq!(projected[0].num_columns(), 2);
    assert_eq!(projected[0].schema().field(0).name(), "score");
    assert_eq!(projected[0].schema().field(1).name(), "id");
    let ids: Vec<i64> =
        projected.iter().flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec()).collect();
    assert_eq!(ids, [10, 20, 30], "row order of the file");
    let err =
        collect_scan(source.as_ref(), &ScanRequest::all().with_projection(vec!["nope".into()])).await.unwrap_err();
    assert!(err.to_string().contains("no field `nope`"), "{err}");

    let ws = workspace(&dir).await;
    let report = ws.ingest("user", source.as_ref(), IngestOptions::default()).await.unwrap();
    assert_eq!((report.rows_written, report.rows_quarantined), (3, 0), "{report:?}");
    let out = rows(&ws, "SELECT count(*) AS n, sum(score) AS s FROM \"user\" WHERE name IS NOT NULL").await;
    assert_eq!(out[0].column(0).as_primitive::<Int64Type>().value(0), 2);
    source_conformance(source.as_ref()).await.unwrap();

    let via_config = from_config(&json!({"type": "parquet", "path": path.to_str().unwrap()})).unwrap();
    source_conformance(via_config.as_ref()).await.unwrap();
}

#[tokio::test]
async fn file_url_form_for_csv() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("with space.csv");
    std::fs::write(&path, "id,name\n1,a\n").unwrap();
    let url = url::Url::from_file_path(&path).unwrap();
    assert!(url.as_str().contains("%20"));
    let source = open(url.as_str()).unwrap();
    assert_eq!(source.name(), "csv:with space.csv");
    let ws = workspace(&dir).await;
    let report = ws.ingest("user", source.as_ref(), IngestOptions::default()).await.unwrap();
    assert_eq!(report.rows_written, 1);
}

#[tokio::test]
async fn missing_file_is_a_source_error() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["missing.csv", "missing.ndjson", "missing.parquet"] {
        let source = open(dir.path().join(name).to_str().unwrap()).unwrap();
        let err = source.schema().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Ingest, "{err}");
        assert!(err.to_string().contains(name), "{err}");
        let err = source.scan(&ScanRequest::all()).await.err().expect("scan of a missing file fails");
        assert!(matches!(err, segkit::Error::Source { .. }), "{err:?}");
    }
    let ws = workspace(&dir).await;
    let source = open(dir.path().join("missing.csv").to_str().unwrap()).unwrap();
    let err = ws.ingest("user", source.as_ref(), IngestOptions::default()).await.unwrap_err();
    assert!(err.chain().join(" / ").contains("missing.csv"), "{err}");
}

#[tokio::test]
async fn open_rejects_unknown_extensions() {
    let err = open("data.xml").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains(".csv"), "{err}");
}

#[test]
fn from_config_errors_name_the_field() {
    let def = |v: serde_json::Value| -> String {
        let err = from_config(&v).expect_err("config should be rejected");
        assert_eq!(err.kind(), ErrorKind::Definition, "{err}");
        err.to_string()
    };
    assert!(def(json!({"type": "xml", "path": "a.xml"})).contains("source.type"));
    assert!(def(json!({"type": "xml", "path": "a.xml"})).contains("unknown source type `xml`"));
    let m = def(json!({"type": "csv", "path": "a.csv", "delimeter": ";"}));
    assert!(m.contains("source.delimeter") && m.contains("unknown key"), "{m}");
    assert!(def(json!({"type": "csv"})).contains("missing `path`"));
    assert!(def(json!({"type": "csv", "path": "a.csv", "url": "file:///a.csv"})).contains("not both"));
    assert!(def(json!({"type": "csv", "path": "a.csv", "delimiter": ";;"})).contains("source.delimiter"));
    assert!(def(json!({"type": "csv", "path": "a.csv", "header": "yes"})).contains("source.header"));
    assert!(def(json!({"type": "parquet", "path": "a.parquet", "header": true})).contains("csv sources only"));
    assert!(def(json!({"type": "csv", "path": "a.csv", "sheet": 1})).contains("source.sheet"));
    assert!(def(json!({"type": "csv", "path": "a.csv", "encoding": "klingon"})).contains("unknown encoding"));
    let m = def(json!({"type": "csv", "path": "a.csv", "null_values": [1]}));
    assert!(m.contains("source.null_values"), "{m}");
    assert!(def(json!({"type": "csv", "path": "a.csv", "batch_size": 0})).contains("source.batch_size"));
    assert!(def(json!({"type": "csv", "path": "a.csv", "options": []})).contains("source.options"));
    assert!(def(json!({"path": "a.dat"})).contains("cannot be inferred"));
    assert!(def(json!("a.csv")).contains("expected a JSON object"));
    // An unset secret reference is an argument error naming the option and the variable, not the value.
    let err = from_config(&json!({"type": "csv", "path": "a.csv", "options": {"token": "env:SEGKIT_TEST_UNSET_VAR"}}))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("SEGKIT_TEST_UNSET_VAR") && err.to_string().contains("token"), "{err}");
}

#[test]
fn secrets_are_resolved_and_never_printed() {
    std::env::set_var("SEGKIT_TEST_SECRET", "s3cr3t-from-env");
    let source = from_config(&json!({
        "type": "parquet",
        "url": "s3://bucket/events/2026.parquet?x=1",
        "options": {
            "aws_region": "eu-west-1",
            "aws_access_key_id": "AKIDPLAINTEXT",
            "aws_secret_access_key": "env:SEGKIT_TEST_SECRET",
            "aws_endpoint": "http://127.0.0.1:1"
        }
    }))
    .unwrap();
    assert_eq!(source.name(), "parquet:2026.parquet");
    let debug = format!("{source:?}");
    assert!(!debug.contains("s3cr3t") && !debug.contains("AKIDPLAINTEXT") && !debug.contains("eu-west-1"), "{debug}");
    assert!(debug.contains("aws_secret_access_key=<redacted>"), "{debug}");
    assert!(debug.contains("s3://bucket/events/2026.parquet") && !debug.contains("x=1"), "{debug}");
}

/// Named sources over the built-in connectors: `segkit_connectors::registry()` builds them from their configs.
#[tokio::test]
async fn named_file_sources_sync_through_the_registry() {
    use segkit::{SourceDefinition, WorkspaceOptions};
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("users.csv");
    std::fs::write(&csv, "id,name\n1,ann\n2,bob\n").unwrap();
    let opts = WorkspaceOptions::default().source_factory(segkit_connectors::registry());
    let ws = segkit::Workspace::open_with(dir.path().join("ws"), opts).await.unwrap();
    ws.define_entity(
        segkit::Entity::profile("user", "id")
            .attribute(segkit::Attribute::new("id", segkit::DataType::Int64))
            .attribute(segkit::Attribute::new("name", segkit::DataType::String)),
    )
    .await
    .unwrap();
    let config = serde_json::json!({"type": "csv", "path": csv});
    ws.define_source(SourceDefinition::new("users_csv", "user", config)).await.unwrap();
    let r = ws.sync("users_csv").await.unwrap();
    assert_eq!((r.rows_written, r.source.as_str()), (2, "csv:users.csv"));
    std::fs::write(&csv, "id,name\n1,ann\n2,bob\n3,cy\n").unwrap();
    let r = ws.sync("users_csv").await.unwrap();
    assert_eq!((r.rows_read, r.rows_inserted, r.rows_updated), (1, 1, 0), "file sources are incremental");
    assert!(ws.source("users_csv").unwrap().cursor.is_some());

    let e = ws
        .define_source(SourceDefinition::new(
            "bad",
            "user",
            serde_json::json!({"type": "csv", "path": csv, "delimter": ";"}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), segkit::ErrorKind::Definition);
    assert!(e.to_string().starts_with("invalid definition of source.delimter: unknown key `delimter`"), "{e}");
    let e = ws
        .define_source(SourceDefinition::new("bad", "user", serde_json::json!({"type": "parqet", "path": csv})))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown source type `parqet` (did you mean `parquet`?)"), "{e}");
    let missing = serde_json::json!({"type": "parquet", "path": dir.path().join("nope.parquet")});
    ws.define_source(SourceDefinition::new("later", "user", missing)).await.unwrap();
    let e = ws.sync("later").await.unwrap_err();
    assert_eq!(e.kind(), segkit::ErrorKind::Ingest);
    assert!(e.to_string().contains("nope.parquet"), "{e}");
    assert_eq!(ws.sources().unwrap().len(), 2);
}
