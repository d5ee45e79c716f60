//! `segkit-bench`: the segkit worker of the side-by-side benchmark in `../shared/bench`.
//!
//! ```text
//! segkit-bench --data DIR --queries queries.sql --segments S1,S2,S6,S7 --runs N --warmup W --threads T --out FILE
//!              [--workspace DIR] [--reingest] [--index country,plan] [--df datafusion.option=value ...]
//! ```
//! It ingests `DIR/users.parquet` and `DIR/events.parquet` into a segkit workspace through the public API (timed
//! and reported as `settings.ingest_ms`), defines the segments of `benches/segments.json` as segkit rules (not SQL) and
//! times `Workspace::evaluate` (members materialised, sorted, stored as a membership version, entered/exited
//! computed) or `Workspace::count` for count-only segments. The SQL file is accepted for protocol
//! compatibility and not used.
//!
//! `--ids FILE` (a Parquet file with one int64 column `id`, made by `benches/peers/static_list.py`) adds two
//! segments over `users`: `L1`, a static-list segment of those ids (`Workspace::define_static_segment`), and
//! `L2`, an `in` rule with all of them as literal values. Their definition times are reported as
//! `settings.l1_define_ms` / `settings.l2_define_ms`; the timed call is `Workspace::evaluate` as for the others.
//!
//! `--index` lists the attributes marked `indexed` in the `users` entity (default `country`): segkit stores a
//! profile sorted by its indexed attributes, then the key, so rules on them prune row groups and pages. Changing
//! it needs `--reingest`. `--df` passes DataFusion session options through `WorkspaceOptions::session_option`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use segkit::deps::arrow::array::AsArray;
use segkit::deps::arrow::datatypes::Int64Type;
use segkit::rules::{Dialect, Rule};
use segkit::{FixedClock, IngestOptions, SegmentDefinition, Workspace, WorkspaceOptions};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

mod entities;

use entities::{events_entity, users_entity};

const SEGMENTS: &str = include_str!("../segments.json");

struct Args {
    data: PathBuf,
    segments: Vec<String>,
    runs: usize,
    warmup: usize,
    threads: usize,
    out: PathBuf,
    workspace: Option<PathBuf>,
    reingest: bool,
    indexed: Vec<String>,
    df: Vec<(String, String)>,
    ids: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = std::env::args().skip(1);
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    let mut reingest = false;
    let mut df = vec![];
    while let Some(k) = a.next() {
        match k.as_str() {
            "--reingest" => reingest = true,
            "--df" => {
                let v = a.next().ok_or("--df needs key=value")?;
                let (k, v) = v.split_once('=').ok_or("--df needs key=value")?;
                df.push((k.to_string(), v.to_string()));
            }
            k if k.starts_with("--") => {
                let v = a.next().ok_or(format!("{k} needs a value"))?;
                m.insert(k[2..].to_string(), v);
            }
            other => return Err(format!("unexpected argument {other}")),
        }
    }
    let get = |k: &str| m.get(k).cloned().ok_or(format!("--{k} is required"));
    Ok(Args {
        data: PathBuf::from(get("data")?),
        segments: m
            .get("segments")
            .cloned()
            .unwrap_or_else(|| "S1,S2,S6,S7".into())
            .split(',')
            .map(String::from)
            .collect(),
        runs: m.get("runs").map(|v| v.parse().map_err(|_| "bad --runs")).transpose()?.unwrap_or(5),
        warmup: m.get("warmup").map(|v| v.parse().map_err(|_| "bad --warmup")).transpose()?.unwrap_or(1),
        threads: m.get("threads").map(|v| v.parse().map_err(|_| "bad --threads")).transpose()?.unwrap_or(2),
        out: PathBuf::from(get("out")?),
        workspace: m.get("workspace").map(PathBuf::from),
        reingest,
        indexed: m
            .get("index")
            .cloned()
            .unwrap_or_else(|| "country".into())
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        df,
        ids: m.get("ids").map(PathBuf::from),
    })
}

fn status_mib(field: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map(|kb| (kb / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or(0.0)
}

fn reset_hwm() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// What [`setup`] returns: the workspace, the ingest (and definition) times in ms, whether an ingest ran, and the
/// peak RSS in MiB of each ingest that ran (with `before`: the process peak before the first).
type Setup = (Workspace, BTreeMap<String, f64>, bool, BTreeMap<String, f64>);

/// Opens (or creates) the workspace and ingests what is missing.
async fn setup(args: &Args) -> segkit::Result<Setup> {
    let ws_dir = args.workspace.clone().unwrap_or_else(|| {
        let tag = args.data.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        std::env::temp_dir().join(format!("segkit-bench-ws-{tag}"))
    });
    if args.reingest && ws_dir.exists() {
        std::fs::remove_dir_all(&ws_dir)?;
    }
    let mut options = WorkspaceOptions::default().target_partitions(args.threads);
    for (k, v) in &args.df {
        options = options.session_option(k, v);
    }
    let ws = Workspace::open_with(&ws_dir, options).await?;
    ws.set_clock(Arc::new(FixedClock::parse("2026-06-30T00:00:00Z")?));
    ws.define_entity(users_entity(&args.indexed)).await?;
    ws.define_entity(events_entity()).await?;
    let mut times = BTreeMap::new();
    let mut ingest_peaks: BTreeMap<String, f64> = BTreeMap::new();
    let mut fresh = false;
    for (entity, file) in [("users", "users.parquet"), ("events", "events.parquet")] {
        let history = ws.ingest_history(entity)?;
        let ms = match history.last() {
            Some(r) if r.rows_written > 0 => r.duration_ms,
            _ => {
                let source = segkit_connectors::open(args.data.join(file).to_str().expect("utf-8 path"))?;
                // The peak of this ingest alone (the process peak so far is kept in `ingest_peaks["before"]`).
                let before = status_mib("VmHWM:");
                ingest_peaks.entry("before".into()).or_insert(before);
                reset_hwm();
                let t = Instant::now();
                let report = ws.ingest(entity, source.as_ref(), IngestOptions::default()).await?;
                let peak = status_mib("VmHWM:");
                ingest_peaks.insert(entity.to_string(), peak);
                eprintln!(
                    "  [segkit] ingested {} {entity} ({} quarantined), peak {peak} MiB, {} MiB resident after",
                    report.rows_written,
                    report.rows_quarantined,
                    status_mib("VmRSS:")
                );
                fresh = true;
                t.elapsed().as_secs_f64() * 1000.0
            }
        };
        times.insert(entity.to_string(), (ms * 10.0).round() / 10.0);
    }
    let defs: Value = serde_json::from_str(SEGMENTS).expect("segments.json");
    for (name, rule) in defs.as_object().expect("object") {
        if name.starts_with('_') || rule.get("count_of").is_some() {
            continue;
        }
        let rule = Rule::parse(rule, Dialect::Segkit)?;
        ws.define_segment(SegmentDefinition::new(name.to_lowercase(), "users", rule)).await?;
    }
    if let Some(ids) = &args.ids {
        let wanted = |s: &str| args.segments.iter().any(|x| x == s);
        if wanted("L1") {
            let source = segkit_connectors::open(ids.to_str().expect("utf-8 path"))?;
            let t = Instant::now();
            let r = ws.define_static_segment("l1", "users", source.as_ref()).await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            eprintln!("  [segkit] static list l1: {} keys, {} matched, {ms:.1} ms", r.key_count, r.matched);
            times.insert("l1_define_ms".into(), (ms * 10.0).round() / 10.0);
        }
        if wanted("L2") {
            let values = read_ids(ids)?;
            let t = Instant::now();
            let rule = Rule::parse(&json!({"attribute": "user_id", "op": "in", "value": values}), Dialect::Segkit)?;
            ws.define_segment(SegmentDefinition::new("l2", "users", rule)).await?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            eprintln!("  [segkit] in rule l2: {} literal values, defined in {ms:.1} ms", values.len());
            times.insert("l2_define_ms".into(), (ms * 10.0).round() / 10.0);
        }
    }
    Ok((ws, times, fresh, ingest_peaks))
}

/// The `id` column of a Parquet file.
fn read_ids(path: &std::path::Path) -> segkit::Result<Vec<i64>> {
    use segkit::deps::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(path)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| segkit::Error::InvalidArgument(e.to_string()))?
        .build()
        .map_err(|e| segkit::Error::InvalidArgument(e.to_string()))?;
    let mut out = vec![];
    for b in reader {
        let b = b.map_err(|e| segkit::Error::InvalidArgument(e.to_string()))?;
        let col = b.column_by_name("id").ok_or_else(|| segkit::Error::InvalidArgument("no `id` column".into()))?;
        out.extend_from_slice(col.as_primitive::<Int64Type>().values());
    }
    Ok(out)
}

async fn run_once(ws: &Workspace, seg: &str, defs: &Value) -> segkit::Result<(u64, String, bool)> {
    let spec = match defs.get(seg) {
        Some(s) => s,
        // The `--ids` segments, defined in `setup`.
        None if seg == "L1" || seg == "L2" => &Value::Null,
        None => return Err(segkit::Error::InvalidArgument(format!("segment {seg} has no segkit rule"))),
    };
    if let Some(of) = spec.get("count_of").and_then(Value::as_str) {
        let n = ws.count(&of.to_lowercase()).await?;
        return Ok((n, hex(&Sha256::digest(n.to_string().as_bytes())), true));
    }
    let run = ws.evaluate(&seg.to_lowercase()).await?;
    let ids = run.members.column(0).as_primitive::<Int64Type>().values();
    let ascending = ids.windows(2).all(|w| w[0] < w[1]);
    let mut h = Sha256::new();
    for id in ids.iter() {
        h.update(id.to_le_bytes());
    }
    Ok((run.count, hex(&h.finalize()), ascending))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("segkit-bench: {e}");
            std::process::exit(64);
        }
    };
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads).enable_all().build().expect("runtime");
    rt.block_on(async move {
        reset_hwm();
        let t0 = Instant::now();
        let (ws, ingest_ms, fresh, ingest_peaks) = match setup(&args).await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("segkit-bench: setup failed: {}", e.chain().join(": "));
                std::process::exit(1);
            }
        };
        let setup_ms = t0.elapsed().as_secs_f64() * 1000.0;
        if let Some(q) = std::env::var_os("SEGKIT_BENCH_SQL") {
            let q = q.to_string_lossy().to_string();
            for _ in 0..4 {
                let t = Instant::now();
                let rows: usize = ws.sql(&q).await.map(|b| b.iter().map(|b| b.num_rows()).sum()).unwrap_or(0);
                eprintln!("  [segkit] SQL probe: {rows} rows in {:.1} ms", t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        if std::env::var_os("SEGKIT_BENCH_PLANS").is_some() {
            for seg in &args.segments {
                match ws.query_plan(&seg.to_lowercase()).await {
                    Ok(p) => eprintln!("== plan of {seg}\n{p}"),
                    Err(e) => eprintln!("== plan of {seg}: {e}"),
                }
            }
        }
        let defs: Value = serde_json::from_str(SEGMENTS).expect("segments.json");
        let snapshot = ws.snapshot("users").ok();
        let mut res = json!({
            "engine": "segkit",
            "version": env!("CARGO_PKG_VERSION"),
            "settings": {
                "target_partitions": args.threads,
                "tokio_worker_threads": args.threads,
                "ingest_ms": ingest_ms.iter().filter(|(k, _)| !k.ends_with("_define_ms")).collect::<BTreeMap<_, _>>(),
                "define_ms": ingest_ms.iter().filter(|(k, _)| k.ends_with("_define_ms")).collect::<BTreeMap<_, _>>(),
                "ingest_measured_in_this_process": fresh,
                "ingest_peak_rss_mib": ingest_peaks,
                "stored_files": snapshot.as_ref().map(|s| s.files.len()),
                "stored_bytes": snapshot.as_ref().map(|s| s.files.iter().map(|f| f.bytes).sum::<u64>()),
                "timed_call": "Workspace::evaluate (S7: Workspace::count)",
                "indexed": args.indexed,
                "session_options": args.df.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            },
            "setup_ms": (setup_ms * 100.0).round() / 100.0,
            "baseline_rss_mib": status_mib("VmRSS:"),
            "per_segment_rss_reset": true,
            "segments": {},
        });
        let mut peak = ingest_peaks.values().fold(status_mib("VmHWM:"), |a, b| a.max(*b));
        for seg in &args.segments {
            reset_hwm();
            let mut r = json!({"times_ms": [], "warmup_ms": [], "count": null, "sha256": null, "peak_rss_mib": null, "error": null});
            let mut digests = std::collections::BTreeSet::new();
            for i in 0..args.warmup + args.runs {
                let t = Instant::now();
                match run_once(&ws, seg, &defs).await {
                    Ok((count, sha, ascending)) => {
                        let ms = (t.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
                        let key = if i >= args.warmup { "times_ms" } else { "warmup_ms" };
                        r[key].as_array_mut().expect("array").push(json!(ms));
                        if !ascending {
                            r["error"] = json!("result not strictly ascending");
                        }
                        digests.insert((count, sha));
                    }
                    Err(e) => {
                        r["error"] = json!(e.chain().join(": "));
                        break;
                    }
                }
            }
            if let Some((c, s)) = digests.iter().next() {
                r["count"] = json!(c);
                r["sha256"] = json!(s);
            }
            if digests.len() > 1 {
                r["error"] = json!(format!("non-deterministic results: {digests:?}"));
            }
            let p = status_mib("VmHWM:");
            peak = peak.max(p);
            r["peak_rss_mib"] = json!(p);
            eprintln!("  [segkit] {seg}: {} count={} rss={p}MiB {}", r["times_ms"], r["count"], r["error"]);
            res["segments"][seg] = r;
            res["peak_rss_mib"] = json!(peak);
            std::fs::write(&args.out, serde_json::to_string_pretty(&res).expect("json")).expect("write --out");
        }
        res["peak_rss_mib"] = json!(peak);
        std::fs::write(&args.out, serde_json::to_string_pretty(&res).expect("json")).expect("write --out");
    });
}
