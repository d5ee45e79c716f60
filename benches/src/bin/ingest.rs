//! `segkit-ingest-bench`: one CSV (or any file) of ../shared/bench ingested into a fresh segkit workspace through
//! the file connector (see `benches/ingest.sh`).
//!
//! ```text
//! segkit-ingest-bench --file /tmp/segbench-data/sf1/users.csv --entity users [--threads 2] [--index country]
//!                     [--memory-mib 64] [--workspace DIR]
//! ```
//! The workspace gets the bench's `users` and `events` entities (as `segkit-bench` defines them: `users` indexed
//! by `country`, `events` by `event_type`), then `--file` is ingested into `--entity` with the default options
//! (a first ingest: upsert of a profile, append of events), which writes the Parquet files and commits the
//! snapshot. The tokio runtime has `--threads` workers. Prints one JSON line: rows read / written /
//! quarantined, seconds, rows_per_s, peak_rss_mib (VmHWM), and the files and bytes stored. Without
//! `--workspace` the workspace is a temporary directory, removed afterwards.

#[path = "../entities.rs"]
mod entities;

use std::time::Instant;

use segkit::{IngestOptions, Workspace, WorkspaceOptions};
use serde_json::json;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let Some(file) = arg("--file") else {
        eprintln!("usage: segkit-ingest-bench --file PATH --entity users|events [--threads N] [--index a,b] [--memory-mib M] [--workspace DIR]");
        std::process::exit(64);
    };
    let entity = arg("--entity").unwrap_or_else(|| "users".into());
    let threads: usize = arg("--threads").and_then(|t| t.parse().ok()).unwrap_or(2);
    let indexed: Vec<String> = arg("--index")
        .unwrap_or_else(|| "country".into())
        .split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let memory: Option<usize> = arg("--memory-mib").and_then(|m| m.parse::<usize>().ok()).map(|m| m << 20);
    let given = arg("--workspace");
    let dir = given
        .clone()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join(format!("segkit-ingest-bench-{}", std::process::id())));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().expect("runtime");
    let result = rt.block_on(async {
        let mut options = WorkspaceOptions::default().target_partitions(threads);
        if let Some(m) = memory {
            options = options.ingest_memory(m);
        }
        let ws = Workspace::open_with(&dir, options).await?;
        ws.define_entity(entities::users_entity(&indexed)).await?;
        ws.define_entity(entities::events_entity()).await?;
        let source = segkit_connectors::open(&file)?;
        let start = Instant::now();
        let report = ws.ingest(&entity, source.as_ref(), IngestOptions::default()).await?;
        let secs = start.elapsed().as_secs_f64();
        let snap = ws.snapshot(&entity)?;
        Ok::<_, segkit::Error>(json!({
            "engine": "segkit", "entity": entity, "file": file, "threads": threads,
            "rows_read": report.rows_read, "rows_written": report.rows_written,
            "rows_quarantined": report.rows_quarantined, "seconds": secs,
            "rows_per_s": report.rows_read as f64 / secs, "peak_rss_mib": peak_rss_mib(),
            "files": snap.files.len(), "stored_bytes": snap.files.iter().map(|f| f.bytes).sum::<u64>(),
        }))
    });
    if given.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    match result {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("segkit-ingest-bench: {}", e.chain().join(": "));
            std::process::exit(1);
        }
    }
}
