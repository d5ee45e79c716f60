//! Exactly-once across kills: a sync process killed with SIGKILL at random points, then run again, neither loses
//! nor doubles a row — because the source's cursor commits in the same catalog transaction as the snapshot.
//!
//! The parent test re-executes this test binary (`child_sync`, ignored when run directly) as a child process that
//! syncs an incremental source over a directory of NDJSON parts (slowed down by a per-batch delay), kills it after
//! a random delay, checks that the committed data matches the committed cursor exactly, appends more parts, and
//! repeats; at the end a clean sync must leave every row exactly once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use segkit::deps::arrow::array::{AsArray, RecordBatch};
use segkit::deps::arrow::datatypes::Int64Type;
use segkit::sources::SourceRegistry;
use segkit::{Attribute, DataType, Entity, IngestMode, Link, SourceDefinition, Workspace, WorkspaceOptions};
use serde_json::json;

const ROWS_PER_PART: i64 = 40;

fn registry() -> SourceRegistry {
    let mut r = SourceRegistry::new();
    segkit::testing::register_sources(&mut r);
    r
}

async fn open(dir: &Path) -> Workspace {
    Workspace::open_with(dir, WorkspaceOptions::default().source_factory(registry())).await.unwrap()
}

fn write_part(dir: &Path, n: i64) {
    let mut text = String::new();
    for i in n * ROWS_PER_PART..(n + 1) * ROWS_PER_PART {
        text.push_str(&json!({"id": i, "ts": "2026-01-01T00:00:00Z", "name": format!("user {i}")}).to_string());
        text.push('\n');
    }
    let tmp = dir.join(format!(".part-{n:05}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(format!("part-{n:05}.ndjson"))).unwrap();
}

/// The ids of the parts up to and including `cursor`'s file (all parts are `part-NNNNN.ndjson`).
fn ids_up_to(cursor: &Option<serde_json::Value>) -> Vec<i64> {
    let Some(c) = cursor else { return vec![] };
    let file = c["file"].as_str().unwrap();
    let n: i64 = file.trim_start_matches("part-").trim_end_matches(".ndjson").parse().unwrap();
    (0..(n + 1) * ROWS_PER_PART).collect()
}

async fn ids(ws: &Workspace, table: &str) -> Vec<i64> {
    let b = ws.sql(&format!("SELECT id FROM {table} ORDER BY id")).await.unwrap();
    b.iter().flat_map(|b: &RecordBatch| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect()
}

/// A tiny xorshift generator (seeded from the clock, printed for reproduction).
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test]
#[ignore = "the child half of a_sync_killed_at_random_points_neither_loses_nor_doubles_rows"]
async fn child_sync() {
    let ws_dir = std::env::var("SEGKIT_KILL_WS").expect("run by the parent test only");
    let source = std::env::var("SEGKIT_KILL_SOURCE").unwrap();
    let ws = open(Path::new(&ws_dir)).await;
    ws.sync(&source).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_at_random_points_neither_loses_nor_doubles_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let (ws_dir, parts): (PathBuf, PathBuf) = (tmp.path().join("ws"), tmp.path().join("parts"));
    std::fs::create_dir(&parts).unwrap();
    {
        let ws = open(&ws_dir).await;
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
                .link(Link::new("id", "user")),
        )
        .await
        .unwrap();
        let config = json!({"type": "testing_parts", "dir": parts, "fields": ["id", "ts", "name"], "delay_ms": 8});
        ws.define_source(SourceDefinition::new("clicks", "click", config.clone()).mode(IngestMode::Append))
            .await
            .unwrap();
        ws.define_source(SourceDefinition::new("users", "user", config)).await.unwrap();
    }
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().unwrap();
    let (mut next_part, mut killed, mut finished, mut killed_after_commit) = (0i64, 0, 0, 0);
    let mut committed: Vec<Option<serde_json::Value>> = vec![None, None];
    // Round 0 runs to completion to measure how long a sync process takes; later kills land uniformly within
    // that time (process start, catalog open, scan, Parquet write, commit) and a little after.
    let mut span = Duration::from_secs(3600);
    let mut round = 0;
    while killed < 12 || round < 16 {
        assert!(round < 60, "could not kill 12 syncs mid-way in 60 rounds (seed {seed})");
        for _ in 0..3 {
            write_part(&parts, next_part);
            next_part += 1;
        }
        let source = if round % 2 == 0 { "clicks" } else { "users" };
        let mut child = Command::new(&exe)
            .args(["--exact", "child_sync", "--ignored", "--nocapture", "--test-threads=1"])
            .env("SEGKIT_KILL_WS", &ws_dir)
            .env("SEGKIT_KILL_SOURCE", source)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Up to 1.25× the measured time, so some kills land after the commit, some syncs finish.
        let delay =
            if round == 0 { span } else { Duration::from_millis(rng.below(span.as_millis() as u64 * 5 / 4 + 1)) };
        let started = Instant::now();
        let mut done = None;
        while started.elapsed() < delay {
            if let Some(status) = child.try_wait().unwrap() {
                done = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        match done {
            Some(status) => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                assert!(status.success(), "round {round} (seed {seed}): the child failed: {err}");
                finished += 1;
                if round == 0 {
                    span = started.elapsed();
                } else {
                    span = span.max(started.elapsed());
                }
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                let status = child.wait().unwrap();
                if status.success() {
                    finished += 1;
                } else {
                    killed += 1;
                }
            }
        }
        // Whatever the point of the kill, committed data and committed cursor agree exactly.
        let ws = open(&ws_dir).await;
        for (i, (src, table)) in [("clicks", "click"), ("users", "user")].into_iter().enumerate() {
            let cursor = ws.source(src).unwrap().cursor;
            if cursor != committed[i] && done.is_none() {
                killed_after_commit += 1;
            }
            committed[i] = cursor.clone();
            let got = ids(&ws, table).await;
            assert_eq!(
                got,
                ids_up_to(&cursor),
                "round {round} (seed {seed}, kill after {delay:?}): `{table}` does not hold exactly the rows up to the \
                 committed cursor {cursor:?}"
            );
        }
        round += 1;
    }
    // Run to completion: every row exactly once, in both modes.
    let ws = open(&ws_dir).await;
    ws.sync("clicks").await.unwrap();
    ws.sync("users").await.unwrap();
    let all: Vec<i64> = (0..next_part * ROWS_PER_PART).collect();
    let clicks = ids(&ws, "click").await;
    assert_eq!(clicks.len(), all.len(), "appends must not double (seed {seed})");
    assert_eq!(clicks, all, "seed {seed}");
    assert_eq!(clicks.iter().collect::<BTreeSet<_>>().len(), clicks.len());
    assert_eq!(ids(&ws, "user").await, all, "seed {seed}");
    eprintln!(
        "sync_kill: seed {seed}: {killed} sync processes killed ({killed_after_commit} of them after their commit), \
         {finished} finished before the kill"
    );
}
