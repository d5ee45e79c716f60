//! The same workspace code on an S3 store (a real S3-protocol server on loopback: `moto_server`, started by
//! `scripts/test-all.sh`, which sets `SEGKIT_TEST_S3_ENDPOINT` and creates the bucket `segkit-test`).

mod common;

use common::*;
use segkit::{IngestOptions, Workspace, WorkspaceOptions};
use serde_json::json;

fn s3_options(endpoint: &str, prefix: &str) -> WorkspaceOptions {
    let mut o = WorkspaceOptions::default().store_url(format!("s3://segkit-test/{prefix}"));
    for (k, v) in [
        ("aws_endpoint", endpoint),
        ("aws_region", "us-east-1"),
        ("aws_access_key_id", "testing"),
        ("aws_secret_access_key", "env:SEGKIT_TEST_S3_SECRET"),
        ("aws_allow_http", "true"),
    ] {
        o.store_options.push((k.to_string(), v.to_string()));
    }
    o
}

#[tokio::test]
async fn a_workspace_on_s3_ingests_evaluates_and_reopens() {
    let Ok(endpoint) = std::env::var("SEGKIT_TEST_S3_ENDPOINT") else {
        assert!(std::env::var_os("CI").is_none(), "CI must run this test: scripts/test-all.sh starts an S3 server");
        eprintln!("skipped: set SEGKIT_TEST_S3_ENDPOINT (scripts/test-all.sh does) to run against an S3 server");
        return;
    };
    std::env::set_var("SEGKIT_TEST_S3_SECRET", "testing");
    let prefix = format!("ws-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::open_with(dir.path(), s3_options(&endpoint, &prefix)).await.unwrap();
    ws.define_entity(people_entity()).await.unwrap();
    let text = std::fs::read_to_string(format!("{FIXTURES}/people.csv")).unwrap();
    let r = ws.ingest_batches("people", vec![csv_batch(&text)], IngestOptions::default()).await.unwrap();
    assert_eq!(r.rows_written, 8);
    let files = ws.snapshot("people").unwrap().files;
    assert!(!files.is_empty() && files.iter().all(|f| f.path.starts_with("data/people/")));
    assert!(std::fs::read_dir(dir.path()).unwrap().all(|e| e.unwrap().file_name() != "data"), "no data on local disk");
    let got = members(&ws, "cn", "people", json!({"attribute": "country", "op": "eq", "value": "CN"})).await.unwrap();
    assert_eq!(got, vec![1, 3, 7]);
    drop(ws);
    let ws = Workspace::open_with(dir.path(), s3_options(&endpoint, &prefix)).await.unwrap();
    let run = ws.evaluate("cn").await.unwrap();
    assert_eq!((run.run, run.count, run.entered.num_rows()), (2, 3, 0));
    // A second ingest rewrites the profiles; vacuum deletes the first snapshot's files from the bucket, and the
    // store's listing (paths relative to the workspace prefix) shows exactly the current files.
    let first = ws.snapshot("people").unwrap().files;
    ws.ingest_batches("people", vec![csv_batch(&text)], IngestOptions::default()).await.unwrap();
    let v = ws.vacuum(1).await.unwrap();
    assert_eq!((v.snapshots_removed, v.files_deleted as usize, v.orphans_deleted), (1, first.len(), 0));
    let store = segkit::store::Store::from_url(
        &format!("s3://segkit-test/{prefix}"),
        &[
            ("aws_endpoint".to_string(), endpoint.clone()),
            ("aws_region".to_string(), "us-east-1".to_string()),
            ("aws_access_key_id".to_string(), "testing".to_string()),
            ("aws_secret_access_key".to_string(), "testing".to_string()),
            ("aws_allow_http".to_string(), "true".to_string()),
        ],
    )
    .unwrap();
    let mut listed: Vec<String> = store.list("data/people/").await.unwrap().into_iter().map(|f| f.path).collect();
    listed.sort();
    let mut current: Vec<String> = ws.snapshot("people").unwrap().files.into_iter().map(|f| f.path).collect();
    current.sort();
    assert_eq!(listed, current);
    let q = ws.sql("SELECT count(*) FROM people WHERE age IS NULL").await.unwrap();
    assert_eq!(
        segkit::deps::arrow::util::pretty::pretty_format_batches(&q).unwrap().to_string().matches("| 1 ").count(),
        1
    );
}
