//! Delivery benchmark (issue 9): a workflow on "entered" for N entities entering a segment, one webhook each to
//! a local receiver (`segkit-bench-receiver`), with the ledger in the workspace catalog. Prints one JSON line:
//! deliveries/s, p50/p99 from trigger (the evaluation that wrote the ledger rows) to receipt, peak RSS.
//!
//!     segkit-dispatch-bench --receiver 127.0.0.1:PORT [--entities 100000] [--concurrency 64] [--batch 1000]
//!         [--durable] [--dir /tmp/segkit-dispatch-ws]
//!
//! `--durable` opens the catalog with `synchronous = FULL` (every commit reaches the disk before it returns).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use segkit::deps::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use segkit::rules::Rule;
use segkit::workflow::{TemplateSpec, WorkflowSpec};
use segkit::{Attribute, DataType, Entity, IngestOptions, SegmentDefinition, Workspace, WorkspaceOptions};
use serde_json::json;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn status_mib(field: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("receiver");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    // The receiver keeps connections open: read the head, then Content-Length bytes.
    let mut buf = vec![];
    let mut chunk = [0u8; 65536];
    loop {
        let n = s.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(i) = text.find("\r\n\r\n") {
            let len: usize = text[..i]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0);
            if buf.len() >= i + 4 + len {
                out = String::from_utf8_lossy(&buf[i + 4..i + 4 + len]).to_string();
                break;
            }
        }
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> segkit::Result<()> {
    let receiver = arg("--receiver").expect("--receiver HOST:PORT");
    let n: i64 = arg("--entities").map(|v| v.parse().unwrap()).unwrap_or(100_000);
    let concurrency: usize = arg("--concurrency").map(|v| v.parse().unwrap()).unwrap_or(64);
    let batch: usize = arg("--batch").map(|v| v.parse().unwrap()).unwrap_or(1000);
    let durable = std::env::args().any(|a| a == "--durable");
    let dir = std::path::PathBuf::from(arg("--dir").unwrap_or_else(|| "/tmp/segkit-dispatch-ws".into()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut options = WorkspaceOptions::default().action_factory(segkit_actions::registry());
    if durable {
        options = options.durable_commits(true);
    }
    let ws = Workspace::open_with(&dir, options).await?;
    ws.define_entity(
        Entity::profile("user", "user_id")
            .attribute(Attribute::new("user_id", DataType::Int64))
            .attribute(Attribute::new("email", DataType::String).pii())
            .attribute(Attribute::new("name", DataType::String)),
    )
    .await?;
    let ids: Vec<i64> = (1..=n).collect();
    let emails: Vec<String> = ids.iter().map(|i| format!("u{i}@example.org")).collect();
    let names: Vec<String> = ids.iter().map(|i| format!("User {i}")).collect();
    let rows = RecordBatch::try_from_iter([
        ("user_id", Arc::new(Int64Array::from(ids)) as ArrayRef),
        ("email", Arc::new(StringArray::from(emails)) as ArrayRef),
        ("name", Arc::new(StringArray::from(names)) as ArrayRef),
    ])?;
    ws.ingest_batches("user", vec![rows], IngestOptions::default()).await?;
    ws.define_segment(SegmentDefinition::new(
        "everyone",
        "user",
        Rule::parse_str(r#"{"attribute": "user_id", "op": "ge", "value": 0}"#)?,
    ))
    .await?;
    ws.define_template(TemplateSpec {
        name: "hello".into(),
        channel: "webhook".into(),
        entity: Some("user".into()),
        parts: [("body".to_string(), r#"{"user": {{ entity.user_id }}, "name": "{{ entity.name }}"}"#.to_string())]
            .into_iter()
            .collect(),
    })
    .await?;
    let spec: WorkflowSpec = serde_json::from_value(json!({
        "name": "welcome",
        "trigger": {"type": "entered", "segment": "everyone"},
        "steps": [{"name": "hook", "type": "action", "template": "hello",
                   "action": {"type": "webhook", "url": format!("http://{receiver}/hook")}}],
        "policies": {"reentry": {"type": "always"}}
    }))?;
    ws.define_workflow(spec).await?;
    get(&receiver, "/reset");
    let before_mib = status_mib("VmRSS");

    let trigger_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
    let t0 = Instant::now();
    let run = ws.evaluate("everyone").await?;
    let evaluated = t0.elapsed();
    let mut delivered = 0u64;
    loop {
        let r = ws.dispatch_due(batch, concurrency).await?;
        delivered += r.delivered;
        if r.claimed == 0 {
            break;
        }
    }
    let total = t0.elapsed();
    let stats: serde_json::Value = serde_json::from_str(&get(&receiver, "/stats"))?;
    let mut latencies: Vec<f64> = stats["arrivals"]
        .as_array()
        .map(|a| a.iter().map(|x| (x[1].as_u64().unwrap_or(0).saturating_sub(trigger_us)) as f64 / 1000.0).collect())
        .unwrap_or_default();
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let by_status: HashMap<String, usize> =
        ws.deliveries(&Default::default(), usize::MAX)?.iter().fold(HashMap::new(), |mut m, r| {
            *m.entry(r.status.as_str().to_string()).or_default() += 1;
            m
        });
    let out = json!({
        "entities": n,
        "entered": run.entered.num_rows(),
        "durable": durable,
        "concurrency": concurrency,
        "batch": batch,
        "evaluate_s": evaluated.as_secs_f64(),
        "total_s": total.as_secs_f64(),
        "delivered": delivered,
        "deliveries_per_s": delivered as f64 / total.as_secs_f64(),
        "received_posts": stats["posts"],
        "received_distinct": stats["distinct"],
        "ledger_by_status": by_status,
        "trigger_to_receipt_ms": {"p50": percentile(&latencies, 0.5), "p99": percentile(&latencies, 0.99)},
        "rss_before_mib": before_mib,
        "peak_rss_mib": status_mib("VmHWM"),
    });
    println!("{out}");
    Ok(())
}
