//! Incremental file sources: a named CSV / NDJSON source (local path or glob) synced again reads only new files
//! and the bytes appended to a grown file, and a file changed in place is an error naming it (or re-read with
//! `on_change: reread`).

use std::io::Write;
use std::path::Path;

use segkit::deps::arrow::array::{AsArray, RecordBatch};
use segkit::deps::arrow::datatypes::Int64Type;
use segkit::testing::source_conformance_incremental;
use segkit::{Attribute, DataType, Entity, ErrorKind, IngestMode, Link, SourceDefinition, Workspace, WorkspaceOptions};
use serde_json::json;

async fn workspace(dir: &Path) -> Workspace {
    let opts = WorkspaceOptions::default().source_factory(segkit_connectors::registry());
    let ws = Workspace::open_with(dir.join("ws"), opts).await.unwrap();
    ws.define_entity(
        Entity::profile("user", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("name", DataType::String)),
    )
    .await
    .unwrap();
    ws.define_entity(
        Entity::event("event", "ts")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("ts", DataType::Timestamp))
            .attribute(Attribute::new("kind", DataType::String))
            .link(Link::new("id", "user")),
    )
    .await
    .unwrap();
    ws
}

async fn ids(ws: &Workspace, entity: &str) -> Vec<i64> {
    let b = ws.sql(&format!("SELECT id FROM {entity} ORDER BY id")).await.unwrap();
    b.iter().flat_map(|b: &RecordBatch| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect()
}

fn rows(from: i64, to: i64) -> String {
    (from..to).map(|i| format!("{i},2026-01-0{}T00:00:00Z,k{i}\n", 1 + i % 9)).collect()
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

fn cursor_files(ws: &Workspace, source: &str) -> Vec<(String, u64)> {
    let c = ws.source(source).unwrap().cursor.expect("a cursor");
    c["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let p = f["path"].as_str().unwrap();
            (p.rsplit('/').next().unwrap().to_string(), f["size"].as_u64().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn append_mode_resync_does_not_double_and_new_files_are_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("in");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("a.csv"), format!("id,ts,kind\n{}", rows(0, 3))).unwrap();
    let ws = workspace(dir.path()).await;
    let config = json!({"type": "csv", "path": format!("{}/*.csv", data.display())});
    ws.define_source(SourceDefinition::new("events", "event", config).mode(IngestMode::Append)).await.unwrap();
    let r = ws.sync("events").await.unwrap();
    assert_eq!((r.rows_read, r.rows_written), (3, 3));
    let r = ws.sync("events").await.unwrap();
    assert_eq!((r.rows_read, r.rows_written), (0, 0), "nothing new: nothing read");
    assert_eq!(ids(&ws, "event").await, [0, 1, 2]);

    std::fs::write(data.join("b.csv"), format!("id,ts,kind\n{}", rows(3, 5))).unwrap();
    let r = ws.sync("events").await.unwrap();
    assert_eq!((r.rows_read, r.rows_written), (2, 2), "only the new file");
    assert_eq!(ids(&ws, "event").await, [0, 1, 2, 3, 4]);
    let a_size = std::fs::metadata(data.join("a.csv")).unwrap().len();
    let b_size = std::fs::metadata(data.join("b.csv")).unwrap().len();
    assert_eq!(cursor_files(&ws, "events"), [("a.csv".to_string(), a_size), ("b.csv".to_string(), b_size)]);

    // Touching a file (new modification time, same bytes) is not a change.
    let f = std::fs::File::options().append(true).open(data.join("a.csv")).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
    let r = ws.sync("events").await.unwrap();
    assert_eq!(r.rows_read, 0);
    // A removed file leaves the cursor; the rows it gave stay.
    std::fs::remove_file(data.join("a.csv")).unwrap();
    ws.sync("events").await.unwrap();
    assert_eq!(cursor_files(&ws, "events"), [("b.csv".to_string(), b_size)]);
    assert_eq!(ids(&ws, "event").await, [0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn a_grown_csv_is_read_from_its_offset_without_its_header_and_with_true_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.csv");
    std::fs::write(&log, format!("id,ts,kind\n{}", rows(0, 2))).unwrap();
    let ws = workspace(dir.path()).await;
    ws.define_source(SourceDefinition::new("events", "event", json!({"type": "csv", "path": log}))).await.unwrap();
    assert_eq!(ws.sync("events").await.unwrap().rows_written, 2);
    let offset = std::fs::metadata(&log).unwrap().len();

    append(&log, &format!("{}9,bad,row,extra\n{}", rows(2, 4), rows(4, 5)));
    let r = ws.sync("events").await.unwrap();
    assert_eq!((r.rows_read, r.rows_written, r.rows_quarantined), (4, 3, 1), "{r:?}");
    assert_eq!(ids(&ws, "event").await, [0, 1, 2, 3, 4], "the header is not read as a row, nothing doubles");
    let q = ws.quarantine("event").await.unwrap();
    let reasons = q.column_by_name("reason").unwrap().as_string::<i32>();
    let third = rows(2, 4).len() as u64;
    assert_eq!(
        reasons.value(0),
        format!("malformed record: events.csv line 6, byte {}: 4 fields, expected 3", offset + third)
    );
    assert_eq!(cursor_files(&ws, "events"), [("events.csv".to_string(), std::fs::metadata(&log).unwrap().len())]);
    let c = ws.source("events").unwrap().cursor.unwrap();
    assert_eq!(c["files"][0]["lines"], 7);
    assert_eq!(ws.sync("events").await.unwrap().rows_read, 0);
}

#[tokio::test]
async fn a_grown_ndjson_file_is_read_from_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.ndjson");
    let line = |i: i64| format!("{}\n", json!({"id": i, "ts": "2026-01-01T00:00:00Z", "kind": "k"}));
    std::fs::write(&log, format!("{}{}", line(0), line(1))).unwrap();
    let ws = workspace(dir.path()).await;
    ws.define_source(SourceDefinition::new("events", "event", json!({"type": "ndjson", "path": log}))).await.unwrap();
    assert_eq!(ws.sync("events").await.unwrap().rows_written, 2);
    append(&log, &format!("{}not json\n", line(2)));
    let r = ws.sync("events").await.unwrap();
    assert_eq!((r.rows_read, r.rows_written, r.rows_quarantined), (2, 1, 1));
    let q = ws.quarantine("event").await.unwrap();
    let reason = q.column_by_name("reason").unwrap().as_string::<i32>().value(0).to_string();
    assert!(reason.starts_with("malformed record: events.ndjson line 4, byte "), "{reason}");
    assert_eq!(ids(&ws, "event").await, [0, 1, 2]);
}

#[tokio::test]
async fn a_file_changed_in_place_fails_the_sync_naming_it_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, z) = (dir.path().join("a.csv"), dir.path().join("z.csv.gz"));
    std::fs::write(&a, format!("id,ts,kind\n{}", rows(0, 3))).unwrap();
    let gz = |text: &str| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    std::fs::write(&z, gz(&format!("id,ts,kind\n{}", rows(10, 12)))).unwrap();
    let ws = workspace(dir.path()).await;
    let config = json!({"type": "csv", "path": format!("{}/*.csv*", dir.path().display())});
    ws.define_source(SourceDefinition::new("events", "event", config)).await.unwrap();
    assert_eq!(ws.sync("events").await.unwrap().rows_written, 5);
    let before = ws.source("events").unwrap();

    // The first bytes changed (a rewritten export).
    std::fs::write(&a, format!("id,ts,kind\n{}", rows(5, 9))).unwrap();
    let e = ws.sync("events").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ingest);
    let m = e.to_string();
    assert!(m.contains("a.csv` changed in place since the last sync: its first"), "{m}");
    assert!(m.contains("\"on_change\": \"reread\""), "{m}");
    // Shrunk.
    std::fs::write(&a, "id,ts,kind\n").unwrap();
    let m = ws.sync("events").await.unwrap_err().to_string();
    assert!(m.contains("it shrank from"), "{m}");
    // Back as it was (a new modification time, the same bytes): unchanged again.
    std::fs::write(&a, format!("id,ts,kind\n{}", rows(0, 3))).unwrap();
    assert_eq!(ws.source("events").unwrap().cursor, before.cursor, "failed syncs commit no cursor");
    assert_eq!(ids(&ws, "event").await, [0, 1, 2, 10, 11], "and no rows");
    // A gzip'd file that grew cannot be read from an offset.
    std::fs::write(&z, gz(&format!("id,ts,kind\n{}", rows(10, 13)))).unwrap();
    let m = ws.sync("events").await.unwrap_err().to_string();
    assert!(m.contains("z.csv.gz` changed in place"), "{m}");
    std::fs::remove_file(&z).unwrap();

    let b = dir.path().join("b.csv");
    std::fs::write(&b, format!("id,ts,kind\n{}", rows(20, 21).trim_end())).unwrap();
    assert_eq!(ws.sync("events").await.unwrap().rows_written, 1, "a last line without a line end is read");
    append(&b, "5,2026-01-01T00:00:00Z,x\n");
    let m = ws.sync("events").await.unwrap_err().to_string();
    assert!(m.contains("b.csv` changed in place") && m.contains("a last line without a line end"), "{m}");
}

#[tokio::test]
async fn on_change_reread_reads_a_replaced_file_again_for_upserts() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.csv");
    std::fs::write(&users, "id,name\n1,ann\n2,bob\n").unwrap();
    let ws = workspace(dir.path()).await;
    let config = json!({"type": "csv", "path": users, "on_change": "reread"});
    ws.define_source(SourceDefinition::new("users", "user", config)).await.unwrap();
    assert_eq!(ws.sync("users").await.unwrap().rows_written, 2);
    assert_eq!(ws.sync("users").await.unwrap().rows_read, 0, "unchanged: not read");
    std::fs::write(&users, "id,name\n2,bobby\n3,cy\n").unwrap();
    let r = ws.sync("users").await.unwrap();
    assert_eq!((r.rows_read, r.rows_inserted, r.rows_updated), (2, 1, 1));
    assert_eq!(ids(&ws, "user").await, [1, 2, 3]);

    let e = ws
        .define_source(SourceDefinition::new("bad", "user", json!({"type": "csv", "path": users, "on_change": "skip"})))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid definition of source.on_change: unknown value `skip` (expected `error` or `reread`)"
    );
}

/// The conformance suite's incremental checks on a glob of CSV files (new data: a new file and a grown file).
#[tokio::test]
async fn a_csv_glob_passes_the_incremental_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), format!("id,ts,kind\n{}", rows(0, 3))).unwrap();
    std::fs::write(dir.path().join("b.csv"), format!("id,ts,kind\n{}", rows(3, 4))).unwrap();
    let source =
        segkit_connectors::from_config(&json!({"type": "csv", "path": format!("{}/*.csv", dir.path().display())}))
            .unwrap();
    let d = dir.path().to_path_buf();
    source_conformance_incremental(source.as_ref(), || async move {
        std::fs::write(d.join("c.csv"), format!("id,ts,kind\n{}", rows(4, 6))).unwrap();
        append(&d.join("b.csv"), &rows(6, 8));
        Ok(())
    })
    .await
    .unwrap();
}

/// The same over `s3://` (a real S3 server on loopback: moto, started by scripts/test-all.sh): new objects are
/// read, unchanged ones skipped by ETag, a longer object with the same first bytes is read from its offset
/// (a ranged GET), and an object replaced by other bytes is an error.
#[tokio::test]
async fn s3_objects_are_read_incrementally() {
    use object_store::ObjectStoreExt;
    let Ok(endpoint) = std::env::var("SEGKIT_TEST_S3_ENDPOINT") else {
        assert!(std::env::var_os("CI").is_none(), "CI must run this test: scripts/test-all.sh starts an S3 server");
        eprintln!("skipped: set SEGKIT_TEST_S3_ENDPOINT (scripts/test-all.sh does) to run against an S3 server");
        return;
    };
    let options = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "testing"),
        ("aws_secret_access_key", "testing"),
        ("aws_allow_http", "true"),
    ];
    let url = url::Url::parse("s3://segkit-test/").unwrap();
    let (store, _) =
        object_store::parse_url_opts(&url, options.iter().map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
    let prefix = format!("incremental-{}", std::process::id());
    let put = |name: &str, body: String| {
        let path = object_store::path::Path::from(format!("{prefix}/{name}"));
        let store = &store;
        async move { store.put(&path, body.into_bytes().into()).await.unwrap() }
    };
    let a = format!("id,ts,kind\n{}", rows(0, 2));
    put("a.csv", a.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let ws = workspace(dir.path()).await;
    // A named source takes secrets as env: references only.
    std::env::set_var("SEGKIT_INCREMENTAL_TEST_S3_SECRET", "testing");
    let mut opts: serde_json::Map<String, serde_json::Value> =
        options.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    opts.insert("aws_secret_access_key".into(), json!("env:SEGKIT_INCREMENTAL_TEST_S3_SECRET"));
    let config = json!({"type": "csv", "url": format!("s3://segkit-test/{prefix}/*.csv"), "options": opts});
    ws.define_source(SourceDefinition::new("events", "event", config)).await.unwrap();
    assert_eq!(ws.sync("events").await.unwrap().rows_read, 2);
    assert_eq!(ws.sync("events").await.unwrap().rows_read, 0);
    put("b.csv", format!("id,ts,kind\n{}", rows(2, 3))).await;
    put("a.csv", format!("{a}{}", rows(3, 5))).await;
    let r = ws.sync("events").await.unwrap();
    assert_eq!((r.rows_read, r.rows_written), (3, 3), "b.csv and the two rows appended to a.csv");
    assert_eq!(ids(&ws, "event").await, [0, 1, 2, 3, 4]);
    put("b.csv", format!("id,ts,kind\n{}", rows(7, 8))).await;
    let m = ws.sync("events").await.unwrap_err().to_string();
    assert!(m.contains("b.csv` changed in place") && m.contains("differ"), "{m}");
}

/// Cancelling a file source's sync (through the API's token, here from the progress callback after two rows)
/// commits nothing: the previous snapshot and cursor stay, and the next sync reads the new file exactly once.
#[tokio::test]
async fn a_cancelled_file_sync_keeps_the_previous_snapshot_and_cursor() {
    use segkit::sources::{CancellationToken, IngestControl};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("in");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("a.csv"), format!("id,ts,kind\n{}", rows(0, 2))).unwrap();
    let ws = workspace(dir.path()).await;
    let config = json!({"type": "csv", "path": format!("{}/*.csv", data.display()), "batch_size": 1});
    ws.define_source(SourceDefinition::new("events", "event", config)).await.unwrap();
    ws.sync("events").await.unwrap();
    let before = ws.source("events").unwrap();
    std::fs::write(data.join("b.csv"), format!("id,ts,kind\n{}", rows(2, 8))).unwrap();
    let token = CancellationToken::new();
    let t = token.clone();
    let control =
        IngestControl::new().progress_interval(std::time::Duration::ZERO).cancel_with(token).on_progress(move |p| {
            if p.rows_read >= 2 && !p.done {
                t.cancel();
            }
        });
    let e = ws.sync_with("events", &control).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    let after = ws.source("events").unwrap();
    assert_eq!((after.cursor, after.snapshot), (before.cursor, before.snapshot));
    assert_eq!(ids(&ws, "event").await, [0, 1]);
    assert_eq!(ws.sync("events").await.unwrap().rows_written, 6);
    assert_eq!(ids(&ws, "event").await, (0..8).collect::<Vec<_>>());
}
