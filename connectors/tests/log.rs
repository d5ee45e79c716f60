//! The log connector against real files in a tempdir and a real workspace: presets, quarantined lines, tail
//! mode across syncs, rename and copy-truncate rotation, gzip'd rotated files, globs, bad configs.

use std::io::Write;
use std::path::Path;

use segkit::deps::arrow::array::{Array, AsArray, RecordBatch};
use segkit::{Attribute, DataType, Entity, ErrorKind, ScanRequest, SourceDefinition, Workspace, WorkspaceOptions};
use serde_json::json;

fn nginx(i: u32) -> String {
    format!(
        "10.0.0.{} - alice [10/Oct/2026:13:55:{:02} -0700] \"GET /p/{i} HTTP/1.1\" 200 {} \"-\" \"curl/8\"\n",
        i % 250,
        i % 60,
        100 + i
    )
}

fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
}

fn gz(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

async fn workspace(dir: &Path) -> Workspace {
    let opts = WorkspaceOptions::default().source_factory(segkit_connectors::registry());
    let ws = Workspace::open_with(dir.join("ws"), opts).await.unwrap();
    ws.define_entity(
        Entity::profile("visitor", "remote_addr").attribute(Attribute::new("remote_addr", DataType::String)),
    )
    .await
    .unwrap();
    ws.define_entity(
        Entity::event("request", "time_local")
            .attribute(Attribute::new("time_local", DataType::Timestamp))
            .attribute(Attribute::new("remote_addr", DataType::String))
            .attribute(Attribute::new("path", DataType::String))
            .attribute(Attribute::new("status", DataType::Int64))
            .attribute(Attribute::new("body_bytes_sent", DataType::Int64))
            .link(segkit::Link::new("remote_addr", "visitor")),
    )
    .await
    .unwrap();
    ws
}

/// The sorted `path` values of the stored requests (so a lost or doubled line shows).
async fn paths(ws: &Workspace) -> Vec<String> {
    let b = ws.sql("SELECT path FROM request ORDER BY path").await.unwrap();
    let mut out: Vec<String> =
        b.iter().flat_map(|b| b.column(0).as_string::<i32>().iter().map(|v| v.unwrap().to_string())).collect();
    out.sort();
    out
}

fn expected(range: impl IntoIterator<Item = u32>) -> Vec<String> {
    let mut v: Vec<String> = range.into_iter().map(|i| format!("/p/{i}")).collect();
    v.sort();
    v
}

#[tokio::test]
async fn nginx_lines_sync_incrementally_with_bad_lines_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    append(&log, &format!("{}this is not a log line\n{}", nginx(1), nginx(2)));
    let ws = workspace(dir.path()).await;
    ws.define_source(SourceDefinition::new("web", "request", json!({"type": "log", "path": log, "format": "nginx"})))
        .await
        .unwrap();
    let r = ws.sync("web").await.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined, r.source.as_str()), (2, 1, "log:access.log"));
    let q = &r.quarantine_sample[0];
    assert_eq!(q.row, 2);
    assert!(q.reason.contains("access.log line 2, byte 87: does not match the nginx combined format"), "{}", q.reason);
    let t = ws.sql("SELECT CAST(time_local AS VARCHAR), status, body_bytes_sent FROM request ORDER BY path").await;
    let t = &t.unwrap()[0];
    let text =
        segkit::deps::arrow::compute::cast(t.column(0), &segkit::deps::arrow::datatypes::DataType::Utf8).unwrap();
    assert_eq!(text.as_string::<i32>().value(0), "2026-10-10T20:55:01Z", "-0700 normalised to UTC");
    assert_eq!(t.column(1).as_primitive::<segkit::deps::arrow::datatypes::Int64Type>().value(0), 200);

    // Appended lines, one still being written (no `\n` yet): only the complete ones are read.
    let partial = nginx(4);
    append(&log, &format!("{}{}", nginx(3), &partial[..20]));
    let r = ws.sync("web").await.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined), (1, 0));
    let r = ws.sync("web").await.unwrap();
    assert_eq!(r.rows_written, 0, "nothing new");
    append(&log, &partial[20..]);
    let r = ws.sync("web").await.unwrap();
    assert_eq!(r.rows_written, 1, "the finished line");
    assert_eq!(paths(&ws).await, expected(1..=4));
    let cursor = ws.source("web").unwrap().cursor.unwrap();
    let size = std::fs::metadata(&log).unwrap().len();
    assert_eq!(cursor["files"][0]["offset"], json!(size), "{cursor}");
    assert_eq!(cursor["files"][0]["line"], json!(5));
}

#[tokio::test]
async fn rename_rotation_reads_the_remainder_then_the_new_file_and_gzip_copies_are_not_reread() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let log = logs.join("access.log");
    append(&log, &(1..=3).map(nginx).collect::<String>());
    let ws = workspace(dir.path()).await;
    let config = json!({"type": "log", "path": format!("{}/access.log*", logs.display()), "format": "nginx"});
    ws.define_source(SourceDefinition::new("web", "request", config)).await.unwrap();
    assert_eq!(ws.sync("web").await.unwrap().rows_written, 3);
    // Lines written after the sync, then logrotate's rename + a new file.
    append(&log, &(4..=5).map(nginx).collect::<String>());
    std::fs::rename(&log, logs.join("access.log.1")).unwrap();
    append(&log, &(6..=7).map(nginx).collect::<String>());
    let r = ws.sync("web").await.unwrap();
    assert_eq!(r.rows_written, 4, "the renamed file's remainder and the new file");
    assert_eq!(paths(&ws).await, expected(1..=7));
    // The next rotation compresses access.log.1 (a new inode with the same content).
    let old = std::fs::read_to_string(logs.join("access.log.1")).unwrap();
    std::fs::write(logs.join("access.log.1.gz"), gz(&old)).unwrap();
    std::fs::remove_file(logs.join("access.log.1")).unwrap();
    append(&log, &nginx(8));
    let r = ws.sync("web").await.unwrap();
    assert_eq!(r.rows_written, 1, "the gzip'd copy is recognised by its first bytes");
    assert_eq!(ws.sync("web").await.unwrap().rows_written, 0);
    assert_eq!(paths(&ws).await, expected(1..=8));
}

#[tokio::test]
async fn copy_truncate_rotation_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, &(1..=3).map(nginx).collect::<String>());
    let ws = workspace(dir.path()).await;
    let glob = format!("{}/app.log*", dir.path().display());
    ws.define_source(SourceDefinition::new("web", "request", json!({"type": "log", "path": glob, "format": "nginx"})))
        .await
        .unwrap();
    assert_eq!(ws.sync("web").await.unwrap().rows_written, 3);
    append(&log, &nginx(4));
    // copytruncate: copy, then truncate in place (same inode), then the writer goes on.
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    append(&log, &(5..=6).map(nginx).collect::<String>());
    let r = ws.sync("web").await.unwrap();
    assert_eq!(r.rows_written, 3, "line 4 from the copy, 5 and 6 from the truncated file");
    assert_eq!(paths(&ws).await, expected(1..=6));

    // Truncated without a copy, then written past the old offset: the first bytes differ, so from 0.
    std::fs::remove_file(dir.path().join("app.log.1")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    append(&log, &(7..=12).map(nginx).collect::<String>());
    assert_eq!(ws.sync("web").await.unwrap().rows_written, 6);
    assert_eq!(paths(&ws).await, expected(1..=12));
}

async fn scan(config: serde_json::Value, cursor: Option<serde_json::Value>) -> (Vec<RecordBatch>, serde_json::Value) {
    let source = segkit_connectors::log::from_config(&config).unwrap();
    let schema = source.schema().await.unwrap();
    let batches = segkit::testing::collect_scan(source.as_ref(), &ScanRequest::all().with_cursor(cursor)).await;
    let batches = batches.unwrap();
    assert!(batches.iter().all(|b| b.schema() == schema));
    (batches, source.cursor().await.unwrap().unwrap_or(json!(null)))
}

fn column(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name(name).unwrap().as_string::<i32>().clone();
            (0..c.len()).map(move |i| c.is_valid(i).then(|| c.value(i).to_string()))
        })
        .collect()
}

#[tokio::test]
async fn regex_json_and_syslog_formats_with_globs_gzip_and_long_lines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.log"), "2026-01-02 03:04:05 INFO started\n2026-13-02 00:00:00 WARN bad month\n")
        .unwrap();
    let long = format!("2026-01-02 03:04:06 INFO {}\n", "x".repeat(300));
    std::fs::write(dir.path().join("b.log.gz"), gz(&format!("{long}2026-01-02 03:04:07 ERROR last, no newline")))
        .unwrap();
    let config = json!({"type": "log", "path": format!("{}/*.log*", dir.path().display()),
        "pattern": r"^(?P<ts>\S+ \S+) (?P<level>[A-Z]+) (?P<msg>.*)$", "time_fields": ["ts"],
        "time_format": "%Y-%m-%d %H:%M:%S", "max_line_bytes": 128, "file_column": true});
    let (b, cursor) = scan(config.clone(), None).await;
    assert_eq!(
        column(&b, "ts"),
        vec![Some("2026-01-02T03:04:05Z".into()), None, None, Some("2026-01-02T03:04:07Z".into())]
    );
    let errors = column(&b, "_error");
    assert!(errors[1].as_deref().unwrap().starts_with("a.log line 2, byte 33: column `ts`: `2026-13-02 00:00:00`"));
    assert_eq!(
        errors[2].as_deref(),
        Some("b.log.gz line 1, byte 0: a line of 325 bytes is longer than max_line_bytes (128)")
    );
    assert!(column(&b, "_raw")[2].as_deref().unwrap().len() < 200, "the evidence is bounded");
    assert!(column(&b, "_file")[3].as_deref().unwrap().ends_with("b.log.gz"));
    // A second scan from the cursor reads nothing; an appended line alone.
    let (b2, cursor) = scan(config.clone(), Some(cursor)).await;
    assert_eq!(b2.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    append(&dir.path().join("a.log"), "2026-01-03 00:00:00 INFO more\n");
    let (b3, _) = scan(config, Some(cursor)).await;
    assert_eq!(column(&b3, "msg"), vec![Some("more".into())]);

    std::fs::write(dir.path().join("e.jsonl"), "{\"user\": 7, \"ok\": true}\n[1]\n\n{\"user\": \"x\"}\n").unwrap();
    let (b, _) = scan(
        json!({"type": "log", "path": dir.path().join("e.jsonl"), "format": "json", "fields": ["user", "ok"]}),
        None,
    )
    .await;
    assert_eq!(column(&b, "user"), vec![Some("7".into()), None, Some("x".into())]);
    assert!(column(&b, "_error")[1].as_deref().unwrap().ends_with("line 2, byte 24: not a JSON object"));

    std::fs::write(
        dir.path().join("sys.log"),
        "<34>Oct 11 22:14:15 mymachine su[1]: 'su root' failed\n<13>1 2026-02-01T10:00:00.5+01:00 h app - - - hi\n",
    )
    .unwrap();
    let (b, _) = scan(json!({"type": "log", "path": dir.path().join("sys.log"), "format": "syslog"}), None).await;
    assert_eq!(column(&b, "hostname"), vec![Some("mymachine".into()), None]);
    let (b, _) =
        scan(json!({"type": "log", "path": dir.path().join("sys.log"), "format": "syslog_rfc5424"}), None).await;
    assert_eq!(column(&b, "timestamp")[1].as_deref(), Some("2026-02-01T09:00:00.500Z"));
    assert_eq!(column(&b, "procid")[1], None, "`-` is nil");
    assert_eq!(column(&b, "severity")[1].as_deref(), Some("5"));
}

#[tokio::test]
async fn bad_configs_are_definition_errors_naming_the_field() {
    let cases = [
        (json!({"type": "log", "path": "x.log"}), "source.format", "give a `format`"),
        (json!({"type": "log", "path": "x.log", "format": "nginks"}), "source.format", "unknown log format `nginks`"),
        (json!({"type": "log", "path": "x.log", "pattern": "(?P<a>x"}), "source.pattern", "invalid regex"),
        (
            json!({"type": "log", "path": "x.log", "pattern": r"(?P<a>\w{500}){500}"}),
            "source.pattern",
            "MAX_REGEX_PROGRAM_BYTES",
        ),
        (json!({"type": "log", "path": "x.log", "pattern": "x".repeat(9000)}), "source.pattern", "more than the 8192"),
        (
            json!({"type": "log", "path": "x.log", "format": "nginx", "max_line_bytes": 0}),
            "source.max_line_bytes",
            "out of range",
        ),
        (
            json!({"type": "log", "path": "x.log", "format": "nginx", "encoding": "utf-16"}),
            "source.encoding",
            "not ASCII-compatible",
        ),
        (
            json!({"type": "log", "path": "x.log", "format": "nginx", "time_fields": ["nope"]}),
            "source.time_fields",
            "`nope` is not a column",
        ),
        (json!({"type": "log", "path": "x.log", "format": "nginx", "tial": true}), "source", "unknown field `tial`"),
        (json!({"type": "log", "path": "s3://b/x.log", "format": "nginx"}), "source.path", "local paths only"),
    ];
    for (config, path, message) in cases {
        let e = segkit_connectors::log::from_config(&config).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Definition, "{e}");
        let s = e.to_string();
        assert!(s.contains(path) && s.contains(message), "{config}: {s}");
    }
    let dir = tempfile::tempdir().unwrap();
    let source = segkit_connectors::log::from_config(
        &json!({"type": "log", "path": dir.path().join("missing.log"), "format": "nginx"}),
    )
    .unwrap();
    let Err(e) = source.scan(&ScanRequest::all()).await else { panic!("a missing file is an error") };
    assert_eq!(e.kind(), ErrorKind::Ingest);
    assert!(e.to_string().contains("missing.log"), "{e}");
}
