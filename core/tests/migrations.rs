//! Catalog schema migrations: a workspace written by an older segkit opens in this one; a newer one is refused.

mod common;

use std::path::Path;

use common::*;
use futures::TryStreamExt;
use segkit::catalog::{Catalog, SCHEMA_VERSION};
use segkit::deps::arrow::array::RecordBatch;
use segkit::{Error, Workspace};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn v1_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&Path::new(FIXTURES).join("workspace-v1"), dir.path());
    dir
}

#[tokio::test]
async fn a_v1_workspace_opens_migrated_with_its_data_segments_and_runs() {
    let dir = v1_copy();
    let ws = Workspace::open(dir.path()).await.unwrap();

    let e = ws.entity("people").unwrap();
    assert_eq!((e.key.as_deref(), e.attributes.len()), (Some("id"), 9));
    let snap = ws.snapshot("people").unwrap();
    assert_eq!((snap.version, snap.row_count), (2, 3));
    let history = ws.ingest_history("people").unwrap();
    assert_eq!(history.iter().map(|r| (r.rows_written, r.rows_quarantined)).collect::<Vec<_>>(), vec![(3, 1), (1, 0)]);
    assert_eq!(ws.quarantine("people").await.unwrap().num_rows(), 1);

    assert_eq!(ws.segments().unwrap().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), vec!["cn"]);
    let runs = ws.runs("cn").unwrap();
    assert_eq!(
        runs.iter().map(|r| (r.run, r.member_count, r.snapshot)).collect::<Vec<_>>(),
        vec![(1, 2, 1), (2, 3, 2)]
    );
    let v1: Vec<RecordBatch> = ws.members("cn", Some(1)).await.unwrap().try_collect().await.unwrap();
    assert_eq!(v1.iter().flat_map(ids).collect::<Vec<_>>(), vec![1, 4]);

    // Evaluating again works and diffs against the run stored by the old version.
    let r3 = ws.evaluate("cn").await.unwrap();
    assert_eq!((r3.run, ids(&r3.members), r3.entered.num_rows(), r3.exited.num_rows()), (3, vec![1, 2, 4], 0, 0));
    drop(ws);

    let cat = Catalog::open(&dir.path().join("segkit.db")).unwrap();
    assert_eq!(cat.schema_version().unwrap(), SCHEMA_VERSION);
    drop(cat);
    // Reopening an up-to-date catalog is a no-op.
    let ws = Workspace::open(dir.path()).await.unwrap();
    assert_eq!(ws.runs("cn").unwrap().len(), 3);
}

#[tokio::test]
async fn a_new_catalog_is_at_the_latest_version() {
    let dir = tempfile::tempdir().unwrap();
    let cat = Catalog::open(&dir.path().join("segkit.db")).unwrap();
    assert_eq!(cat.schema_version().unwrap(), SCHEMA_VERSION);
}

#[tokio::test]
async fn a_catalog_from_a_newer_segkit_is_refused() {
    let dir = v1_copy();
    let db = dir.path().join("segkit.db");
    drop(Catalog::open(&db).unwrap());
    // Simulate a newer segkit: bump user_version past what this build knows, through SQLite's own header field
    // (bytes 60..64 of the file, big-endian), so the test needs no SQLite access of its own.
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[60..64].copy_from_slice(&(SCHEMA_VERSION + 1).to_be_bytes());
    std::fs::write(&db, bytes).unwrap();
    let e = Workspace::open(dir.path()).await.unwrap_err();
    assert!(matches!(e, Error::Definition { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains(&format!("schema version {} was written by a newer segkit", SCHEMA_VERSION + 1)), "{msg}");
    assert!(msg.contains(&format!("up to {SCHEMA_VERSION}")), "{msg}");
}
