//! `segkit-pg-bench`: PostgreSQL → segkit for the bench's `users` table (see `benches/pg_ingest.sh`).
//!
//! ```text
//! segkit-pg-bench --url postgres://user@127.0.0.1:5432/db --table users [--batch-size N] [--scan-only]
//!                 [--workspace DIR]
//! ```
//! `--scan-only` streams the source (binary COPY decoded into Arrow batches) and counts rows; otherwise the rows
//! are ingested into a `users` profile entity in a fresh workspace (Parquet written, snapshot committed). Prints
//! one JSON line: rows, seconds, rows_per_s, peak_rss_mb.

use std::time::Instant;

use futures::StreamExt;
use segkit::{Attribute, DataType, Entity, IngestOptions, ScanRequest, Workspace};
use serde_json::json;

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() -> segkit::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let url = arg("--url").expect("--url postgres://…");
    let table = arg("--table").unwrap_or_else(|| "users".into());
    let batch_size: usize = arg("--batch-size").map(|b| b.parse().expect("--batch-size N")).unwrap_or(65_536);
    let scan_only = args.iter().any(|a| a == "--scan-only");
    let source = segkit_connectors::from_config(&json!({
        "type": "postgres", "url": url, "table": table, "batch_size": batch_size
    }))?;
    let start = Instant::now();
    let rows = if scan_only {
        let mut stream = source.scan(&ScanRequest::all()).await?;
        let mut n = 0u64;
        while let Some(b) = stream.next().await {
            n += b?.num_rows() as u64;
        }
        n
    } else {
        let dir = arg("--workspace")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join(format!("segkit-pg-bench-{}", std::process::id())));
        let ws = Workspace::open(&dir).await?;
        ws.define_entity(
            Entity::profile("users", "user_id")
                .attribute(Attribute::new("user_id", DataType::Int64))
                .attribute(Attribute::new("email", DataType::String))
                .attribute(Attribute::new("country", DataType::String))
                .attribute(Attribute::new("age", DataType::Int32))
                .attribute(Attribute::new("plan", DataType::String))
                .attribute(Attribute::new("ltv", DataType::Float64))
                .attribute(Attribute::new("signup_at", DataType::Timestamp))
                .attribute(Attribute::new("is_active", DataType::Bool))
                .attribute(Attribute::new("tags", DataType::String)),
        )
        .await?;
        let report = ws.ingest("users", source.as_ref(), IngestOptions::default()).await?;
        drop(ws);
        if arg("--workspace").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        report.rows_written
    };
    let secs = start.elapsed().as_secs_f64();
    let mode = if scan_only { "scan" } else { "ingest" };
    println!(
        "{}",
        json!({"mode": mode, "rows": rows, "seconds": secs, "rows_per_s": rows as f64 / secs,
               "batch_size": batch_size, "peak_rss_mb": peak_rss_mb()})
    );
    Ok(())
}
