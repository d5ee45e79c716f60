use std::sync::Arc;

use segkit::FixedClock;
use segkit_actions::{Action, Delivery, JsonlFileAction, Outcome};
use serde_json::{json, Value};

fn delivery(i: usize) -> Delivery {
    let mut attributes = serde_json::Map::new();
    attributes.insert("email".into(), json!(format!("u{i}@example.com")));
    attributes.insert("age".into(), json!(30 + i));
    let mut d = Delivery::new(format!("wf:1:0:{i}"), "welcome", "user", i.to_string());
    d.attributes = attributes;
    d.step = "0".into();
    d.channel = "audit".into();
    if i.is_multiple_of(2) {
        d.content.insert("text".into(), format!("Hello \"{i}\"\nline two"));
    }
    d
}

fn read_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("malformed line {l:?}: {e}")))
        .collect()
}

#[tokio::test]
async fn deliveries_are_written_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/out.jsonl");
    let clock = FixedClock::parse("2026-01-02T03:04:05Z").unwrap();
    let action = JsonlFileAction::new(&path).with_clock(Arc::new(clock));
    assert_eq!(action.kind(), "jsonl");
    let first = action.execute(&delivery(0)).await;
    assert_eq!(first, Outcome::Delivered { receipt: Some("0".into()) });
    let second = action.execute(&delivery(1)).await;
    let line0_len = std::fs::read_to_string(&path).unwrap().lines().next().unwrap().len() + 1;
    assert_eq!(second, Outcome::Delivered { receipt: Some(line0_len.to_string()) });

    let lines = read_lines(&path);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["idempotency_key"], "wf:1:0:0");
    assert_eq!(lines[0]["origin"], "welcome");
    assert_eq!(lines[0]["entity"], "user");
    assert_eq!(lines[0]["entity_key"], "0");
    assert_eq!(lines[0]["attributes"], json!({"email": "u0@example.com", "age": 30}));
    assert_eq!(lines[0]["content"], json!({"text": "Hello \"0\"\nline two"}));
    assert_eq!(lines[0]["step"], "0");
    assert_eq!(lines[0]["channel"], "audit");
    assert_eq!(lines[0]["attempt"], 1);
    assert_eq!(lines[0]["delivered_at"], "2026-01-02T03:04:05.000000Z");
    assert_eq!(lines[1]["content"], json!({}));
    let keys: Vec<&str> = lines[1].as_object().unwrap().keys().map(String::as_str).collect();
    for k in ["idempotency_key", "origin", "entity", "entity_key", "attributes", "content", "attempt", "delivered_at"] {
        assert!(keys.contains(&k), "missing {k} in {keys:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_executes_produce_well_formed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let action = Arc::new(JsonlFileAction::new(&path));
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let a = action.clone();
            tokio::spawn(async move { a.execute(&delivery(i)).await })
        })
        .collect();
    let mut offsets = vec![];
    for t in tasks {
        match t.await.unwrap() {
            Outcome::Delivered { receipt: Some(r) } => offsets.push(r.parse::<u64>().unwrap()),
            other => panic!("unexpected {other:?}"),
        }
    }
    let lines = read_lines(&path);
    assert_eq!(lines.len(), 200);
    let mut keys: Vec<String> = lines.iter().map(|l| l["entity_key"].as_str().unwrap().to_string()).collect();
    keys.sort_by_key(|k| k.parse::<u32>().unwrap());
    assert_eq!(keys, (0..200).map(|i| i.to_string()).collect::<Vec<_>>());
    // Receipts are distinct line starts.
    offsets.sort_unstable();
    offsets.dedup();
    assert_eq!(offsets.len(), 200);
    let text = std::fs::read(&path).unwrap();
    for o in offsets {
        assert!(o == 0 || text[o as usize - 1] == b'\n', "offset {o} is not a line start");
    }
}

#[tokio::test]
async fn unwritable_path_is_retryable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("regular-file");
    std::fs::write(&file, "not a directory").unwrap();
    let action = JsonlFileAction::new(file.join("sub/out.jsonl"));
    match action.execute(&delivery(0)).await {
        Outcome::Retryable { reason, retry_after } => {
            assert!(reason.contains("cannot append to"), "{reason}");
            assert_eq!(retry_after, None);
        }
        other => panic!("expected Retryable, got {other:?}"),
    }
}
