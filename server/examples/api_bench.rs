//! The library side of `benches/api.sh`: sets up a workspace over the bench data (`../shared/bench`, 5 M users /
//! 50 M events) and times, called directly in the library, the operations the script times over HTTP with wrk:
//! the count of an unsaved rule, a members page, and appends of 1,000-event batches through the group-commit
//! appender (what `POST /api/v1/events` calls).
//!
//! ```text
//! api_bench setup DATA_DIR WS_DIR KEY_FILE     # ingest users/events, define + evaluate `bench_members`, write an editor key
//! api_bench lib WS_DIR SECONDS CONCURRENCY [all|members]   # prints JSON: p50/p99/rate/CPU per operation
//! api_bench body FILE                          # writes the POST /api/v1/events body of 1,000 events
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use segkit::appender::{decode_rows, Appender};
use segkit::auth::Role;
use segkit::rules::Rule;
use segkit::{Attribute, DataType, Entity, IngestOptions, Link, SegmentDefinition};
use serde_json::{json, Value};

/// The rule counted (the bench's S1, unsaved).
pub const COUNT_RULE: &str = r#"{"and": [{"attribute": "country", "op": "in", "value": ["CN", "US", "DE"]},
    {"attribute": "age", "op": "between", "value": [25, 40]}, {"attribute": "plan", "op": "ne", "value": "free"},
    {"attribute": "ltv", "op": "gt", "value": 100}]}"#;

fn users() -> Entity {
    Entity::profile("users", "user_id")
        .attribute(Attribute::new("user_id", DataType::Int64))
        .attribute(Attribute::new("email", DataType::String).pii())
        .attribute(Attribute::new("country", DataType::String))
        .attribute(Attribute::new("age", DataType::Int32))
        .attribute(Attribute::new("plan", DataType::String))
        .attribute(Attribute::new("ltv", DataType::Float64))
        .attribute(Attribute::new("signup_at", DataType::Timestamp))
        .attribute(Attribute::new("is_active", DataType::Bool))
        .attribute(Attribute::new("tags", DataType::List(Box::new(DataType::String))))
}

fn events() -> Entity {
    Entity::event("events", "ts")
        .with_key("event_id")
        .attribute(Attribute::new("event_id", DataType::Int64))
        .attribute(Attribute::new("user_id", DataType::Int64))
        .attribute(Attribute::new("event_type", DataType::String).indexed())
        .attribute(Attribute::new("ts", DataType::Timestamp))
        .attribute(Attribute::new("amount", DataType::Float64))
        .link(Link::new("user_id", "users"))
}

/// 1,000 events as the JSON objects `POST /api/v1/events` carries.
fn batch_events(seed: i64) -> Vec<Value> {
    const TYPES: [&str; 4] = ["page_view", "cart_add", "purchase", "signup"];
    (0..1000)
        .map(|i| {
            let n = seed * 1000 + i;
            json!({"event_id": 1_000_000_000 + n, "user_id": 100_000 + (n * 7919) % 5_000_000,
                "event_type": TYPES[(n % 4) as usize], "ts": format!("2026-06-29T{:02}:{:02}:{:02}Z", (n / 3600) % 24, (n / 60) % 60, n % 60),
                "amount": if n % 4 == 2 { json!((n % 1000) as f64 / 10.0) } else { Value::Null }})
        })
        .collect()
}

/// This process's CPU time (user + system) so far, in seconds (Linux: /proc/self/stat; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // The clock tick is 100 Hz on the Linux systems this runs on (`getconf CLK_TCK`).
    f.get(11).zip(f.get(12)).map(|(u, s)| (u + s) / 100.0).unwrap_or(0.0)
}

/// Latency percentiles, rates and CPU per operation; `cpu0` is [`cpu_seconds`] when the timing began.
fn stats_cpu(d: Vec<Duration>, elapsed: Duration, rows_per_op: f64, cpu0: f64) -> Value {
    let n = d.len().max(1) as f64;
    let mut v = stats(d, elapsed, rows_per_op);
    v["cpu_us_per_op"] = json!((cpu_seconds() - cpu0) * 1e6 / n);
    v
}

fn stats(mut d: Vec<Duration>, elapsed: Duration, rows_per_op: f64) -> Value {
    d.sort();
    let q = |p: f64| {
        d.get(((d.len() as f64 * p) as usize).min(d.len().saturating_sub(1))).map(|x| x.as_secs_f64() * 1000.0)
    };
    json!({"ops": d.len(), "ops_per_s": d.len() as f64 / elapsed.as_secs_f64(),
        "rows_per_s": d.len() as f64 * rows_per_op / elapsed.as_secs_f64(), "p50_ms": q(0.5), "p99_ms": q(0.99)})
}

async fn setup(data: &str, dir: &str, key_file: &str) -> segkit::Result<()> {
    let ws = segkit_server::open_workspace(std::path::Path::new(dir)).await?;
    ws.define_entity(users()).await?;
    ws.define_entity(events()).await?;
    for (entity, file) in [("users", "users.parquet"), ("events", "events.parquet")] {
        if ws.ingest_history(entity)?.iter().any(|r| r.rows_written > 0) {
            continue;
        }
        let t = Instant::now();
        let source = segkit_connectors::open(&format!("{data}/{file}"))?;
        let r = ws.ingest(entity, source.as_ref(), IngestOptions::default()).await?;
        eprintln!("ingested {} {entity} in {:.1} s", r.rows_written, t.elapsed().as_secs_f64());
    }
    let rule = Rule::parse_str(COUNT_RULE)?;
    ws.define_segment(SegmentDefinition::new("bench_members", "users", rule)).await?;
    let run = ws.evaluate("bench_members").await?;
    eprintln!("bench_members: run {} with {} members", run.run, run.count);
    let key = ws.create_api_key("bench", Role::Editor, "api_bench")?;
    std::fs::write(key_file, key.secret)?;
    Ok(())
}

async fn lib(dir: &str, seconds: f64, concurrency: usize, only_members: bool) -> segkit::Result<Value> {
    let ws = segkit_server::open_workspace_with(
        std::path::Path::new(dir),
        segkit::WorkspaceOptions::default().durable_commits(true),
    )
    .await?;
    let budget = Duration::from_secs_f64(seconds);
    let members = members(&ws, budget).await?;
    if only_members {
        return Ok(members);
    }
    // The count of an unsaved rule, one call at a time (wrk runs it with one connection).
    let spec: Value = json!({"name": "draft", "entity": "users", "rule": serde_json::from_str::<Value>(COUNT_RULE)?});
    let def = segkit::spec::from_value::<segkit::spec::SegmentSpec>(spec)?.into_definition()?;
    let mut lat = vec![];
    let t0 = Instant::now();
    let mut count = 0;
    while t0.elapsed() < budget {
        let t = Instant::now();
        count = ws.count_definition(def.clone()).await?;
        lat.push(t.elapsed());
    }
    let count_stats = stats(lat, t0.elapsed(), 1.0);
    // Appends of 1,000 events from `concurrency` callers at once, through the appender (group commit).
    let appender = Appender::new(ws.clone());
    let entity = Arc::new(ws.entity("events")?);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|c| {
            let (appender, entity) = (appender.clone(), entity.clone());
            tokio::spawn(async move {
                let mut lat = vec![];
                let mut seed = 1_000_000 + c as i64 * 100_000;
                while t0.elapsed() < budget {
                    let evs = batch_events(seed);
                    seed += 1;
                    let t = Instant::now();
                    let b = decode_rows(&entity, &evs, "events").map_err(segkit::Error::from)?;
                    appender.append("events", b).await?;
                    lat.push(t.elapsed());
                }
                Ok::<_, segkit::Error>(lat)
            })
        })
        .collect();
    let mut lat = vec![];
    for t in tasks {
        lat.extend(t.await.map_err(|e| segkit::Error::InvalidArgument(e.to_string()))??);
    }
    let events_stats = stats(lat, t0.elapsed(), 1000.0);
    let mut all = json!({"count_rule": count_stats, "count": count, "events_1000": events_stats,
        "events_concurrency": concurrency});
    for (k, v) in members.as_object().into_iter().flatten() {
        all[k] = v.clone();
    }
    Ok(all)
}

/// The members page called in the library: the same page repeated, distinct pages (the offsets the HTTP run's
/// Lua script steps through) and the first run's figure (a stream read until 1,000 keys).
async fn members(ws: &segkit::Workspace, budget: Duration) -> segkit::Result<Value> {
    // A members page of 1,000 keys of the latest run, one call at a time: `Workspace::members_page`, the call the
    // handler makes (segment lookup, runs query, the page's rows read from the run's Parquet file).
    let mut lat = vec![];
    let (t0, cpu0) = (Instant::now(), cpu_seconds());
    let mut rows = 0;
    while t0.elapsed() < budget {
        let t = Instant::now();
        let page = ws.members_page("bench_members", None, 0, 1000).await?;
        rows = page.batches.iter().map(|b| b.num_rows()).sum::<usize>();
        lat.push(t.elapsed());
    }
    let members_stats = stats_cpu(lat, t0.elapsed(), 1000.0, cpu0);
    // The figure of the first run of this bench: the latest run's members as a stream, until 1,000 keys came.
    let mut lat = vec![];
    let t0 = Instant::now();
    while t0.elapsed() < budget {
        let t = Instant::now();
        let run = ws.runs("bench_members")?.last().map(|r| r.run);
        let mut stream = ws.members("bench_members", run).await?;
        let mut n = 0;
        while let Some(b) = stream.next().await {
            n += b?.num_rows();
            if n >= 1000 {
                break;
            }
        }
        lat.push(t.elapsed());
    }
    let stream_stats = stats(lat, t0.elapsed(), 1000.0);
    // Distinct pages: offset stepped by 7919 through the run, as benches/api.sh's members-distinct.lua does.
    let run = ws
        .runs("bench_members")?
        .last()
        .cloned()
        .ok_or_else(|| segkit::Error::InvalidArgument("bench_members has no run: run setup".into()))?;
    let max_offset = (run.member_count as usize).saturating_sub(1000).max(1);
    let mut lat = vec![];
    let (t0, cpu0) = (Instant::now(), cpu_seconds());
    let mut i = 0usize;
    while t0.elapsed() < budget {
        i += 1;
        let t = Instant::now();
        let page = ws.members_page("bench_members", Some(run.run), (i * 7919) % max_offset, 1000).await?;
        std::hint::black_box(page.batches.len());
        lat.push(t.elapsed());
    }
    let distinct_stats = stats_cpu(lat, t0.elapsed(), 1000.0, cpu0);
    Ok(json!({"members_page": members_stats, "members_page_rows": rows, "members_page_distinct": distinct_stats,
        "members_stream_first_1000": stream_stats}))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let result = rt.block_on(async {
        match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["setup", data, dir, key] => setup(data, dir, key).await.map(|_| Value::Null),
            ["lib", dir, seconds, conc] => {
                lib(dir, seconds.parse().unwrap_or(10.0), conc.parse().unwrap_or(8), false).await
            }
            ["lib", dir, seconds, conc, only] => {
                lib(dir, seconds.parse().unwrap_or(10.0), conc.parse().unwrap_or(8), *only == "members").await
            }
            ["body", file] => {
                let body = json!({"entity": "events", "events": batch_events(0)});
                std::fs::write(file, body.to_string()).map(|_| Value::Null).map_err(segkit::Error::from)
            }
            _ => Err(segkit::Error::InvalidArgument(
                "usage: api_bench setup DATA WS KEY_FILE | lib WS SECONDS CONCURRENCY [all|members] | body FILE".into(),
            )),
        }
    });
    match result {
        Ok(Value::Null) => {}
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("api_bench: {e}");
            std::process::exit(1);
        }
    }
}
