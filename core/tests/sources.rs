//! Named sources: definition rules, incremental syncs with the cursor committed with the snapshot, secrets as
//! references, progress and cancellation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use segkit::deps::arrow::array::{AsArray, RecordBatch};
use segkit::deps::arrow::datatypes::Int64Type;
use segkit::sources::{CancellationToken, IngestControl, SourceRegistry};
use segkit::{
    Attribute, DataType, Entity, ErrorKind, IngestMode, Link, Mapping, SourceDefinition, Workspace, WorkspaceOptions,
};
use serde_json::json;

fn registry() -> SourceRegistry {
    let mut r = SourceRegistry::new();
    segkit::testing::register_sources(&mut r);
    r
}

async fn workspace(dir: &std::path::Path) -> Workspace {
    let ws =
        Workspace::open_with(dir.join("ws"), WorkspaceOptions::default().source_factory(registry())).await.unwrap();
    ws.define_entity(
        Entity::profile("user", "id")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("name", DataType::String)),
    )
    .await
    .unwrap();
    ws.define_entity(
        Entity::event("click", "ts")
            .attribute(Attribute::new("id", DataType::Int64))
            .attribute(Attribute::new("ts", DataType::Timestamp))
            .attribute(Attribute::new("page", DataType::String))
            .link(Link::new("id", "user")),
    )
    .await
    .unwrap();
    ws
}

/// Writes part `n` (atomically: temp name, then rename) holding ids `ids`.
fn write_part(dir: &std::path::Path, n: usize, ids: std::ops::Range<i64>) {
    let mut text = String::new();
    for i in ids {
        text.push_str(&json!({"id": i, "ts": format!("2026-01-01T00:00:{:02}Z", i % 60), "page": format!("p{i}"), "name": format!("n{i}")}).to_string());
        text.push('\n');
    }
    let tmp = dir.join(format!(".part-{n:05}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(format!("part-{n:05}.ndjson"))).unwrap();
}

fn parts_config(dir: &std::path::Path, delay_ms: u64) -> serde_json::Value {
    json!({"type": "testing_parts", "dir": dir, "fields": ["id", "ts", "page", "name"], "delay_ms": delay_ms})
}

async fn ids(ws: &Workspace, table: &str) -> Vec<i64> {
    let b = ws.sql(&format!("SELECT id FROM {table} ORDER BY id")).await.unwrap();
    b.iter().flat_map(|b: &RecordBatch| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect()
}

#[tokio::test]
async fn incremental_syncs_read_only_new_parts_and_commit_the_cursor_with_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let parts = tmp.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    let ws = workspace(tmp.path()).await;
    write_part(&parts, 1, 0..3);
    write_part(&parts, 2, 3..5);
    let def = ws
        .define_source(SourceDefinition::new("clicks", "click", parts_config(&parts, 0)).mode(IngestMode::Append))
        .await
        .unwrap();
    assert_eq!(def.name, "clicks");
    let info = ws.source("clicks").unwrap();
    assert_eq!((info.cursor.clone(), info.snapshot), (None, None));

    let r = ws.sync("clicks").await.unwrap();
    assert_eq!((r.rows_read, r.rows_written, r.snapshot), (5, 5, Some(1)));
    let info = ws.source("clicks").unwrap();
    assert_eq!(info.cursor, Some(json!({"file": "part-00002.ndjson"})));
    assert_eq!(info.snapshot, Some(1));
    assert_eq!(ids(&ws, "click").await, vec![0, 1, 2, 3, 4]);

    // Nothing new: nothing read, no snapshot, the cursor stays.
    let r = ws.sync("clicks").await.unwrap();
    assert_eq!((r.rows_read, r.snapshot), (0, None));
    assert_eq!(ws.source("clicks").unwrap().cursor, Some(json!({"file": "part-00002.ndjson"})));

    write_part(&parts, 3, 5..8);
    let r = ws.sync("clicks").await.unwrap();
    assert_eq!((r.rows_read, r.rows_written, r.snapshot), (3, 3, Some(2)));
    assert_eq!(ids(&ws, "click").await, (0..8).collect::<Vec<_>>(), "appended once, no doubles");
    let info = ws.source("clicks").unwrap();
    assert_eq!((info.cursor, info.snapshot), (Some(json!({"file": "part-00003.ndjson"})), Some(2)));

    // Redefining with the same config keeps the cursor; a changed config resets it.
    ws.define_source(SourceDefinition::new("clicks", "click", parts_config(&parts, 0)).mode(IngestMode::Append))
        .await
        .unwrap();
    assert!(ws.source("clicks").unwrap().cursor.is_some());
    ws.define_source(SourceDefinition::new("clicks", "click", parts_config(&parts, 1)).mode(IngestMode::Append))
        .await
        .unwrap();
    assert_eq!(ws.source("clicks").unwrap().cursor, None);

    // A profile source upserts: a full re-read is harmless.
    let users = SourceDefinition::new("users", "user", parts_config(&parts, 0))
        .mapping(Mapping::from_json(&json!({"name": "name"})).unwrap());
    ws.define_source(users).await.unwrap();
    assert_eq!(ws.sync("users").await.unwrap().rows_written, 8);
    assert_eq!(ids(&ws, "user").await, (0..8).collect::<Vec<_>>());

    assert_eq!(
        ws.sources().unwrap().iter().map(|s| s.definition.name.as_str()).collect::<Vec<_>>(),
        ["clicks", "users"]
    );
    ws.delete_source("users").await.unwrap();
    let e = ws.source("users").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(ids(&ws, "user").await.len(), 8, "deleting a source keeps its data");
    let e = ws.sync("userz").await.unwrap_err();
    assert_eq!(e.to_string(), "source `userz` not found");
    let e = ws.delete_source("users").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn definitions_are_validated_with_errors_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let parts = tmp.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    let ws = workspace(tmp.path()).await;
    let cfg = parts_config(&parts, 0);
    let err = |e: segkit::Error| (e.kind(), e.to_string());

    let e = ws.define_source(SourceDefinition::new("bad name", "click", cfg.clone())).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Definition);
    assert!(e.to_string().contains("must be 1–128 Unicode letters"), "{e}");
    let e = ws.define_source(SourceDefinition::new("s", "clik", cfg.clone())).await.unwrap_err();
    assert_eq!(
        err(e),
        (
            ErrorKind::Definition,
            "invalid definition of source s.entity: entity `clik` not found (did you mean `click`?)".into()
        )
    );
    let e =
        ws.define_source(SourceDefinition::new("s", "user", cfg.clone()).mode(IngestMode::Append)).await.unwrap_err();
    assert!(e.to_string().starts_with("invalid definition of source s.mode: `user` is a profile entity"), "{e}");
    let e =
        ws.define_source(SourceDefinition::new("s", "click", cfg.clone()).mode(IngestMode::Upsert)).await.unwrap_err();
    assert!(e.to_string().starts_with("invalid definition of source s.mode: `click` is an event entity"), "{e}");
    let m = Mapping::from_json(&json!({"pgae": "page"})).unwrap();
    let e = ws.define_source(SourceDefinition::new("s", "click", cfg.clone()).mapping(m)).await.unwrap_err();
    assert!(e.to_string().starts_with("invalid definition of source s.mapping.pgae:"), "{e}");
    assert!(e.to_string().contains("page"), "did-you-mean: {e}");

    let e = ws.define_source(SourceDefinition::new("s", "click", json!({"type": "testing_prts"}))).await.unwrap_err();
    assert_eq!(e.to_string(), "invalid definition of source.type: unknown source type `testing_prts` (did you mean `testing_parts`?) (registered: testing_parts)");
    let bad = json!({"type": "testing_parts", "dir": parts, "fields": ["id"], "delay_ms": "soon"});
    let e = ws.define_source(SourceDefinition::new("s", "click", bad)).await.unwrap_err();
    assert!(e.to_string().starts_with("invalid definition of source.delay_ms: invalid type: string \"soon\""), "{e}");
    let e = ws
        .define_source(SourceDefinition::new(
            "s",
            "click",
            json!({"type": "testing_parts", "dir": parts, "fields": ["id"], "password": "hunter2"}),
        ))
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("invalid definition of source.password: `password` looks like a secret"), "{e}");
    assert!(!e.to_string().contains("hunter2"));
    assert!(ws.sources().unwrap().is_empty(), "nothing stored by failed definitions");

    // Unicode names, NFC, case collisions (issue 11).
    let d = ws.define_source(SourceDefinition::new("订单_源", "click", cfg.clone())).await.unwrap();
    assert_eq!(ws.source("订单_源").unwrap().definition, d);
    let decomposed = "Cafe\u{301}";
    let d = ws.define_source(SourceDefinition::new(decomposed, "click", cfg.clone())).await.unwrap();
    assert_eq!(d.name, "Caf\u{e9}");
    assert_eq!(ws.source(decomposed).unwrap().definition.name, "Caf\u{e9}");
    let e = ws.define_source(SourceDefinition::new("CAFÉ", "click", cfg.clone())).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid definition of source: source names `Café` and `CAFÉ` differ only by case; names must differ by more"
    );
    let e = ws.source("Cafx").unwrap_err();
    assert_eq!(e.to_string(), "source `Cafx` not found (did you mean `Café`?)");

    // Without a factory.
    let plain = Workspace::open(tmp.path().join("ws")).await.unwrap();
    let e = plain.sync("订单_源").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("no source factory"), "{e}");
}

/// A factory whose source needs a secret: the config holds `env:NAME`, the source gets the value.
#[derive(Debug)]
struct SecretSeen(Arc<Mutex<Vec<String>>>);

impl segkit::SourceFactory for SecretSeen {
    fn build(&self, config: &serde_json::Value) -> segkit::Result<Arc<dyn segkit::Source>> {
        let token = config["token"].as_str().unwrap_or_default();
        let value = segkit::sources::resolve_secret("token", token)?;
        self.0.lock().unwrap().push(value);
        let b = RecordBatch::try_from_iter([(
            "id",
            Arc::new(segkit::deps::arrow::array::StringArray::from(vec!["1"])) as _,
        )])
        .unwrap();
        Ok(Arc::new(segkit::RecordBatchSource::new("secretive", vec![b])?))
    }
}

#[tokio::test]
async fn secrets_are_stored_as_references_and_resolved_only_when_built() {
    let tmp = tempfile::tempdir().unwrap();
    let seen = Arc::new(Mutex::new(vec![]));
    let opts = WorkspaceOptions::default().source_factory(SecretSeen(seen.clone()));
    let ws = Workspace::open_with(tmp.path(), opts).await.unwrap();
    ws.define_entity(Entity::profile("u", "id").attribute(Attribute::new("id", DataType::Int64))).await.unwrap();
    let var = "SEGKIT_TEST_SOURCES_TOKEN";
    let e = ws
        .define_source(SourceDefinition::new("api", "u", json!({"type": "x", "token": format!("env:{var}")})))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "invalid definition of source.token: environment variable `{var}` (referenced as env:{var}) is not set"
        )
    );
    std::env::set_var(var, "s3cr3t-value");
    ws.define_source(SourceDefinition::new("api", "u", json!({"type": "x", "token": format!("env:{var}")})))
        .await
        .unwrap();
    assert_eq!(ws.sync("api").await.unwrap().rows_written, 1);
    assert_eq!(*seen.lock().unwrap(), vec!["s3cr3t-value", "s3cr3t-value"], "resolved at define and at sync");
    let info = ws.source("api").unwrap();
    assert_eq!(info.definition.config["token"], format!("env:{var}"));
    assert!(!format!("{info:?}").contains("s3cr3t"));
    assert!(!format!("{ws:?}").contains("s3cr3t"));
    drop(ws);
    let catalog = std::fs::read(tmp.path().join("segkit.db")).unwrap();
    let wal = std::fs::read(tmp.path().join("segkit.db-wal")).unwrap_or_default();
    for bytes in [catalog, wal] {
        assert!(!bytes.windows(6).any(|w| w == b"s3cr3t"), "the secret never reaches the catalog");
    }
}

#[tokio::test]
async fn progress_is_reported_and_cancellation_keeps_the_snapshot_and_cursor() {
    let tmp = tempfile::tempdir().unwrap();
    let parts = tmp.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    let ws = workspace(tmp.path()).await;
    write_part(&parts, 1, 0..2);
    ws.define_source(SourceDefinition::new("clicks", "click", parts_config(&parts, 20))).await.unwrap();
    let calls = Arc::new(Mutex::new(vec![]));
    let c = calls.clone();
    let control =
        IngestControl::new().progress_interval(Duration::ZERO).on_progress(move |p| c.lock().unwrap().push(*p));
    ws.sync_with("clicks", &control).await.unwrap();
    let seen = calls.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one batch, then done: {seen:?}");
    assert_eq!((seen[0].rows_read, seen[0].batches, seen[0].done), (2, 1, false));
    assert!(seen[0].bytes_read > 0);
    assert!(seen[1].done && seen[1].rows_read == 2 && seen[1].rows_rejected == 0);
    let before = (ws.snapshot("click").unwrap(), ws.source("clicks").unwrap().cursor);

    // A bad row counts as rejected.
    std::fs::write(parts.join("part-00002.ndjson"), "{\"id\": \"x\", \"ts\": \"2026-01-01T00:00:00Z\"}\n").unwrap();
    for n in 3..8 {
        write_part(&parts, n, n as i64 * 10..n as i64 * 10 + 3);
    }
    // Cancel after the third batch: the sync fails, nothing is committed, no data file is left behind.
    let token = CancellationToken::new();
    let batches = Arc::new(AtomicU64::new(0));
    let last = Arc::new(Mutex::new(None));
    let (t, b, l) = (token.clone(), batches.clone(), last.clone());
    let control =
        IngestControl::new().progress_interval(Duration::ZERO).cancel_with(token.clone()).on_progress(move |p| {
            *l.lock().unwrap() = Some(*p);
            if b.fetch_add(1, Ordering::SeqCst) == 2 {
                t.cancel();
            }
        });
    let files_before = std::fs::read_dir(tmp.path().join("ws/data/click")).unwrap().count();
    let e = ws.sync_with("clicks", &control).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert_eq!(e.to_string(), "sync of source `clicks` was cancelled; nothing was committed");
    let p = last.lock().unwrap().unwrap();
    assert_eq!((p.rows_read, p.rows_rejected, p.done), (7, 1, false));
    assert_eq!((ws.snapshot("click").unwrap(), ws.source("clicks").unwrap().cursor), before);
    assert_eq!(std::fs::read_dir(tmp.path().join("ws/data/click")).unwrap().count(), files_before);
    assert_eq!(ids(&ws, "click").await, vec![0, 1]);

    // A token cancelled before the sync starts stops it at once; a fresh sync then reads everything once.
    let control = IngestControl::new().cancel_with(token);
    assert_eq!(ws.sync_with("clicks", &control).await.unwrap_err().kind(), ErrorKind::Cancelled);
    let r = ws.sync("clicks").await.unwrap();
    assert_eq!((r.rows_read, r.rows_written, r.rows_quarantined), (16, 15, 1));
    assert_eq!(ids(&ws, "click").await.len(), 17);

    // Plain ingest takes the same control.
    let control = IngestControl::new().cancel_with({
        let t = CancellationToken::new();
        t.cancel();
        t
    });
    let src = segkit::testing::PartsSource::new(&parts, &["id", "ts"], Duration::ZERO);
    let e = ws.ingest_with("click", &src, Default::default(), &control).await.unwrap_err();
    assert_eq!(e.to_string(), "ingest into `click` was cancelled; nothing was committed");
}

#[tokio::test]
async fn the_parts_source_passes_the_incremental_conformance_suite() {
    let tmp = tempfile::tempdir().unwrap();
    write_part(tmp.path(), 1, 0..3);
    write_part(tmp.path(), 2, 3..4);
    let src = segkit::testing::PartsSource::new(tmp.path(), &["id", "page"], Duration::ZERO);
    segkit::testing::source_conformance_incremental(&src, || async {
        write_part(tmp.path(), 3, 4..9);
        Ok(())
    })
    .await
    .unwrap();
}

/// A source that claims incremental reads but ignores the cursor fails the suite with a clear message.
#[derive(Debug)]
struct IgnoresCursor(segkit::testing::PartsSource);

#[async_trait::async_trait]
impl segkit::Source for IgnoresCursor {
    fn name(&self) -> String {
        "ignores_cursor".into()
    }
    async fn schema(&self) -> segkit::Result<segkit::deps::arrow::datatypes::SchemaRef> {
        self.0.schema().await
    }
    async fn scan(&self, _request: &segkit::ScanRequest) -> segkit::Result<segkit::BatchStream> {
        self.0.scan(&segkit::ScanRequest::all()).await
    }
    fn capabilities(&self) -> segkit::SourceCapabilities {
        self.0.capabilities()
    }
    async fn cursor(&self) -> segkit::Result<Option<serde_json::Value>> {
        self.0.cursor().await
    }
}

#[tokio::test]
async fn a_source_that_ignores_its_cursor_fails_conformance() {
    let tmp = tempfile::tempdir().unwrap();
    write_part(tmp.path(), 1, 0..3);
    let src = IgnoresCursor(segkit::testing::PartsSource::new(tmp.path(), &["id"], Duration::ZERO));
    let e = segkit::testing::source_conformance(&src).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Ingest);
    assert!(e.to_string().contains("conformance: a scan resumed from the cursor {\"file\":\"part-00001.ndjson\"} of a complete scan yielded 3 rows, expected none"), "{e}");
}
