//! Delivery benchmark (issue 9): a workflow on "entered" for N entities entering a segment, one webhook each to
//! a local receiver (`segkit-bench-receiver`) — or, with `--smtp`, one mail each to a local SMTP server
//! (`benches/delivery/smtp_sink.py`, aiosmtpd) — with the ledger in the workspace catalog. Prints one JSON line:
//! deliveries/s, p50/p99 from trigger (the evaluation that wrote the ledger rows) to receipt, peak RSS (of the
//! whole process, and from the trigger on: the high-water mark is reset after the setup).
//!
//!     segkit-dispatch-bench --receiver 127.0.0.1:PORT [--entities 100000] [--concurrency 64] [--batch 1000]
//!         [--durable] [--window W] [--dir /tmp/segkit-dispatch-ws]
//!     segkit-dispatch-bench --smtp 127.0.0.1:PORT --arrivals FILE [same options]
//!
//! `--durable` opens the catalog with `synchronous = FULL` (every commit reaches the disk before it returns).
//! With `--smtp`, FILE is the sink's log of `<message-id> <unix µs>` lines; the Message-ID carries the
//! idempotency key.

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

/// CPU time (user + system) this process has used so far, in seconds (`/proc/self/stat`, clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces): utime is the 12th, stime
    // the 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Resets the peak RSS (VmHWM) of this process (Linux `clear_refs` 5).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Arrivals (key, unix µs) logged by the SMTP sink, and how many lines it wrote.
fn smtp_arrivals(path: &str) -> Vec<(String, u64)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (id, t) = l.rsplit_once(' ')?;
            let key = id.trim_start_matches('<').split('@').next()?.to_string();
            Some((key, t.parse().ok()?))
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> segkit::Result<()> {
    // `--current-thread`: the whole bench (trigger and dispatch loop) on one runtime thread, like wrk's one
    // thread; by default tokio's multi-thread runtime (one worker per core).
    let rt = if std::env::args().any(|a| a == "--current-thread") {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    };
    let rt = rt.expect("a tokio runtime");
    // `--on-worker`: the bench runs as a task on a runtime worker (as in a server) instead of on the thread
    // that blocks on it, so what it spawns starts on that worker's own queue.
    if std::env::args().any(|a| a == "--on-worker") {
        return rt.block_on(async {
            tokio::spawn(bench()).await.map_err(|e| segkit::Error::InvalidArgument(format!("the bench task: {e}")))?
        });
    }
    rt.block_on(bench())
}

async fn bench() -> segkit::Result<()> {
    let smtp = arg("--smtp");
    let arrivals_file = arg("--arrivals");
    let receiver = arg("--receiver").unwrap_or_default();
    assert!(
        smtp.is_some() == receiver.is_empty(),
        "give --receiver HOST:PORT (webhook) or --smtp HOST:PORT --arrivals FILE"
    );
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
    // `--window W`: the dispatcher's window of deliveries in flight (default `Workspace::delivery_window`: twice
    // the concurrency, at least 1,024 with `--durable`).
    let window: Option<usize> = arg("--window").map(|v| v.parse().expect("--window W"));
    if let Some(w) = window {
        options = options.delivery_window(w);
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
    let (parts, action) = match &smtp {
        None => (
            vec![("body", r#"{"user": {{ entity.user_id }}, "name": "{{ entity.name }}"}"#)],
            json!({"type": "webhook", "url": format!("http://{receiver}/hook")}),
        ),
        Some(addr) => {
            let (host, port) = addr.rsplit_once(':').expect("--smtp HOST:PORT");
            (
                vec![
                    ("subject", "Welcome, {{ entity.name }}"),
                    ("text", "Hello {{ entity.name }}, user {{ entity.user_id }}."),
                ],
                json!({"type": "smtp", "host": host, "port": port.parse::<u16>().expect("port"), "tls": "none",
                       "from": "bench@example.org"}),
            )
        }
    };
    ws.define_template(TemplateSpec {
        name: "hello".into(),
        channel: if smtp.is_some() { "email".into() } else { "webhook".into() },
        entity: Some("user".into()),
        parts: parts.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    })
    .await?;
    let spec: WorkflowSpec = serde_json::from_value(json!({
        "name": "welcome",
        "trigger": {"type": "entered", "segment": "everyone"},
        "steps": [{"name": "hook", "type": "action", "template": "hello", "action": action}],
        "policies": {"reentry": {"type": "always"}}
    }))?;
    ws.define_workflow(spec).await?;
    match &arrivals_file {
        Some(f) if smtp.is_some() => std::fs::write(f, "").expect("truncate the arrivals file"),
        _ => {
            get(&receiver, "/reset");
        }
    }
    let setup_peak_mib = status_mib("VmHWM");
    let reset = reset_peak_rss();
    let before_mib = status_mib("VmRSS");

    let trigger_us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64;
    let t0 = Instant::now();
    let trigger_cpu_before = cpu_seconds();
    let run = ws.evaluate("everyone").await?;
    let evaluated = t0.elapsed();
    let trigger_cpu_s = cpu_seconds() - trigger_cpu_before;
    // The trigger (the evaluation writing N ledger rows in one transaction) holds its N rows; the dispatch loop
    // should not grow with N: its own peak is measured from here.
    let trigger_peak_mib = status_mib("VmHWM");
    // `--trigger-only`: the trigger's figures alone (e.g. to profile it), no dispatch.
    if std::env::args().any(|a| a == "--trigger-only") {
        let out = json!({
            "entities": n,
            "entered": run.entered.num_rows(),
            "durable": durable,
            "evaluate_s": evaluated.as_secs_f64(),
            "trigger_cpu_us_per_entity": trigger_cpu_s * 1e6 / n.max(1) as f64,
            "setup_peak_rss_mib": setup_peak_mib,
            "rss_before_trigger_mib": before_mib,
            "trigger_peak_rss_mib": if reset { json!(trigger_peak_mib) } else { json!(null) },
            "rss_anon_after_trigger_mib": status_mib("RssAnon"),
        });
        println!("{out}");
        return Ok(());
    }
    let reset_after_trigger = reset_peak_rss();
    let cpu_before = cpu_seconds();
    let loop_started = Instant::now();
    let mut delivered = 0u64;
    // `--passes`: one `dispatch_due` pass after another (each drains to zero in flight before the next claim);
    // by default `dispatch_backlog`, which claims the next batch while the previous one's last deliveries run.
    let passes = std::env::args().any(|a| a == "--passes");
    loop {
        let r = if passes {
            ws.dispatch_due(batch, concurrency).await?
        } else {
            ws.dispatch_backlog(batch, concurrency).await?
        };
        delivered += r.delivered;
        if r.claimed == 0 {
            break;
        }
    }
    let total = t0.elapsed();
    let loop_cpu_s = cpu_seconds() - cpu_before;
    let loop_wall_s = loop_started.elapsed().as_secs_f64();
    // Peak RSS before anything reads the whole ledger back for the report.
    let dispatch_peak_mib = status_mib("VmHWM");
    let rss_after_mib = status_mib("VmRSS");
    let (arrivals, posts, distinct) = match &smtp {
        None => {
            let stats: serde_json::Value = serde_json::from_str(&get(&receiver, "/stats"))?;
            let a: Vec<u64> = stats["arrivals"]
                .as_array()
                .map(|a| a.iter().map(|x| x[1].as_u64().unwrap_or(0)).collect())
                .unwrap_or_default();
            (a, stats["posts"].clone(), stats["distinct"].clone())
        }
        Some(_) => {
            // The sink flushes each line; give it a moment to write the last ones.
            std::thread::sleep(std::time::Duration::from_millis(500));
            let a = smtp_arrivals(arrivals_file.as_deref().expect("--arrivals FILE"));
            let distinct = a.iter().map(|(k, _)| k.as_str()).collect::<std::collections::HashSet<_>>().len();
            (a.iter().map(|(_, t)| *t).collect(), json!(a.len()), json!(distinct))
        }
    };
    let mut latencies: Vec<f64> = arrivals.iter().map(|t| t.saturating_sub(trigger_us) as f64 / 1000.0).collect();
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let by_status: HashMap<String, usize> =
        ws.deliveries(&Default::default(), usize::MAX)?.iter().fold(HashMap::new(), |mut m, r| {
            *m.entry(r.status.as_str().to_string()).or_default() += 1;
            m
        });
    let out = json!({
        "mode": if smtp.is_some() { "smtp" } else { "webhook" },
        "entities": n,
        "entered": run.entered.num_rows(),
        "durable": durable,
        "concurrency": concurrency,
        "batch": batch,
        "window": ws.delivery_window(concurrency),
        "evaluate_s": evaluated.as_secs_f64(),
        "total_s": total.as_secs_f64(),
        "delivered": delivered,
        "deliveries_per_s": delivered as f64 / total.as_secs_f64(),
        // The dispatch loop alone (after the trigger's evaluation wrote the N ledger rows).
        "dispatch_per_s": delivered as f64 / (total - evaluated).as_secs_f64(),
        // CPU (user + system, all threads) the dispatch loop used per delivery, and the cores it kept busy: on a
        // loaded machine the rate is what the dispatcher got, the CPU per delivery what it needs.
        "dispatch_cpu_us_per_delivery": loop_cpu_s * 1e6 / delivered.max(1) as f64,
        "dispatch_cores_busy": loop_cpu_s / loop_wall_s,
        // The trigger's CPU (the evaluation writing the N ledger rows) per entered entity, and both together.
        "trigger_cpu_us_per_entity": trigger_cpu_s * 1e6 / n.max(1) as f64,
        "total_cpu_us_per_delivery": (trigger_cpu_s + loop_cpu_s) * 1e6 / delivered.max(1) as f64,
        "current_thread": std::env::args().any(|a| a == "--current-thread"),
        "on_worker": std::env::args().any(|a| a == "--on-worker"),
        "passes": passes,
        "received": posts,
        "received_distinct": distinct,
        "ledger_by_status": by_status,
        "trigger_to_receipt_ms": {"p50": percentile(&latencies, 0.5), "p99": percentile(&latencies, 0.99)},
        "peak_rss_mib": setup_peak_mib.max(trigger_peak_mib).max(dispatch_peak_mib),
        "setup_peak_rss_mib": setup_peak_mib,
        "rss_before_trigger_mib": before_mib,
        "trigger_peak_rss_mib": if reset { json!(trigger_peak_mib) } else { json!(null) },
        "dispatch_loop_peak_rss_mib": if reset_after_trigger { json!(dispatch_peak_mib) } else { json!(null) },
        "rss_after_mib": rss_after_mib,
    });
    println!("{out}");
    Ok(())
}
