#!/usr/bin/env python3
"""1 M ids against the 5 M bench users, side by side in one run (issue 7, point 2).

segkit (through `segkit-bench --ids`):
  L1  a static-list segment of the 1 M ids (`Workspace::define_static_segment`, stored once, like an ingest)
  L2  an `in` rule with the 1 M ids as literal values
next to
  duckdb  SELECT user_id FROM users WHERE user_id IN (SELECT id FROM ids) ORDER BY user_id
          (users and ids are views over read_parquet, as in the shared harness)
  polars  users.join(ids, semi).select(user_id).sort() over scan_parquet

    python benches/peers/static_list.py --data /tmp/segbench-data/sf1 --segkit target/release/segkit-bench \\
        --runs 5 --rounds 2 --out benches/results/static-list

Every engine runs in its own subprocess per round (threads=2), 1 warm-up + N timed runs; a timed run is execute +
materialise the ascending ids. Peak RSS is VmHWM of that process. All engines must return the same ids (SHA-256
of the ascending ids as little-endian int64, the shared harness' definition) or the script exits with code 2.
The shared harness is looked for in `../shared/bench` beside the checkout, or in `$SEGBENCH_DIR`. The ids file
(`ids-1m.parquet` beside the data; 900 k existing user ids and 100 k that no user has, shuffled,
seed 20260630) is made on first use.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("SEGBENCH_DIR", HERE.parents[2] / "shared" / "bench"))
sys.path.insert(0, str(SHARED))

import run_bench  # noqa: E402  (memory and hashing helpers of the shared harness)

DUCKDB_SQL = "SELECT user_id FROM users WHERE user_id IN (SELECT id FROM ids) ORDER BY user_id"
N_IDS, SEED = 1_000_000, 20260630


def make_ids(data: Path) -> Path:
    path = data / "ids-1m.parquet"
    if path.exists():
        return path
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    users = pq.read_table(data / "users.parquet", columns=["user_id"]).column(0).to_numpy()
    rng = np.random.default_rng(SEED)
    n = min(N_IDS, len(users))  # the 1 % data set has fewer users than ids
    picked = rng.choice(users, size=n, replace=False)
    # User ids are 100000 + 7k: an existing id + 1 is never a user.
    picked[: n // 10] += 1
    rng.shuffle(picked)
    pq.write_table(pa.table({"id": pa.array(picked, pa.int64())}), path)
    return path


# ------------------------------------------------------------------------------------------ workers
def worker(engine: str, data: Path, ids: Path, runs: int, warmup: int, threads: int, out: Path) -> int:
    run_bench.reset_hwm()
    if engine == "duckdb":
        import duckdb

        con = duckdb.connect(config={"threads": threads})
        con.execute(f"CREATE VIEW users AS SELECT * FROM read_parquet('{data / 'users.parquet'}')")
        con.execute(f"CREATE VIEW ids AS SELECT * FROM read_parquet('{ids}')")
        version = duckdb.__version__

        def once():
            return con.sql(DUCKDB_SQL).to_arrow_table().column(0).to_numpy()
    else:
        import polars as pl

        users = pl.scan_parquet(data / "users.parquet")
        idl = pl.scan_parquet(ids)
        version = pl.__version__

        def once():
            q = users.join(idl, left_on="user_id", right_on="id", how="semi").select("user_id").sort("user_id")
            return q.collect().to_series(0).to_numpy()

    res = {"engine": engine, "version": version, "baseline_rss_mib": run_bench.rss_mib(), "segments": {}}
    run_bench.reset_hwm()
    r = {"times_ms": [], "warmup_ms": [], "count": None, "sha256": None, "error": None}
    digests = set()
    for i in range(warmup + runs):
        t = time.perf_counter()
        got = once()
        ms = (time.perf_counter() - t) * 1000
        r["times_ms" if i >= warmup else "warmup_ms"].append(round(ms, 3))
        digests.add(run_bench.ids_digest(got)[:2])
    (r["count"], r["sha256"]), = digests if len(digests) == 1 else [(None, None)]
    if len(digests) != 1:
        r["error"] = f"non-deterministic: {digests}"
    r["peak_rss_mib"] = run_bench.hwm_mib()
    res["segments"]["ids"] = r
    res["peak_rss_mib"] = r["peak_rss_mib"]
    out.write_text(json.dumps(res, indent=2))
    return 0


# ------------------------------------------------------------------------------------------ driver
def run(cmd: list[str], threads: int) -> tuple[dict, dict]:
    env = dict(os.environ, POLARS_MAX_THREADS=str(threads), TOKIO_WORKER_THREADS=str(threads))
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env)
    info = {"rc": p.returncode, "wall_s": round(time.perf_counter() - t0, 2), "loadavg_before": load_before,
            "loadavg_after": os.getloadavg()}
    return info, {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--segkit", help="path of the segkit-bench binary (required unless --worker)")
    ap.add_argument("--segkit-args", default="", help="extra arguments for segkit-bench")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--worker", choices=["duckdb", "polars"])
    ap.add_argument("--ids", type=Path)
    ap.add_argument("--worker-out", type=Path)
    a = ap.parse_args(argv)
    if a.worker:
        return worker(a.worker, a.data, a.ids, a.runs, a.warmup, a.threads, a.worker_out)

    if not a.segkit:
        ap.error("--segkit is required")
    ids = make_ids(a.data)
    import pyarrow.parquet as pq

    n_ids = pq.read_metadata(ids).num_rows
    run_bench._warm_os_cache(a.data)
    segkit = os.path.abspath(a.segkit)
    samples: dict[str, dict] = {}
    processes: dict[str, list] = {}
    with tempfile.TemporaryDirectory(prefix="segkit-static-bench-") as td:
        for rnd in range(a.rounds):
            for engine in ["duckdb", "polars", "segkit"]:
                out = Path(td) / f"{engine}-{rnd}.json"
                common = ["--data", str(a.data), "--runs", str(a.runs), "--warmup", str(a.warmup),
                          "--threads", str(a.threads)]
                if engine == "segkit":
                    cmd = [segkit, *common, "--queries", "/dev/null", "--segments", "L1,L2", "--ids", str(ids),
                           "--out", str(out), *a.segkit_args.split()]
                else:
                    cmd = [sys.executable, __file__, "--worker", engine, *common, "--ids", str(ids),
                           "--worker-out", str(out), "--out", str(out)]
                print(f"== round {rnd + 1} {engine}: {' '.join(cmd)}", file=sys.stderr, flush=True)
                info, _ = run(cmd, a.threads)
                doc = json.loads(out.read_text()) if out.exists() else {"segments": {}}
                info["peak_rss_mib"] = doc.get("peak_rss_mib")
                info["settings"] = doc.get("settings")
                processes.setdefault(engine, []).append(info)
                for s, r in doc.get("segments", {}).items():
                    name = engine if engine != "segkit" else f"segkit {s}"
                    acc = samples.setdefault(name, {"times_ms": [], "warmup_ms": [], "digests": set(),
                                                    "peak_rss_mib": [], "errors": []})
                    acc["times_ms"] += r.get("times_ms") or []
                    acc["warmup_ms"] += r.get("warmup_ms") or []
                    acc["digests"].add((r.get("count"), r.get("sha256")))
                    acc["peak_rss_mib"].append(r.get("peak_rss_mib"))
                    if r.get("error"):
                        acc["errors"].append(r["error"])
    summary = {}
    for name, acc in samples.items():
        t = acc["times_ms"]
        summary[name] = {
            "median_ms": round(statistics.median(t), 1) if t else None,
            "min_ms": round(min(t), 1) if t else None,
            "max_ms": round(max(t), 1) if t else None,
            "n": len(t),
            "first_warmup_ms": acc["warmup_ms"][0] if acc["warmup_ms"] else None,
            "count": next(iter(acc["digests"]))[0],
            "sha256": next(iter(acc["digests"]))[1],
            "deterministic": len(acc["digests"]) == 1,
            "peak_rss_mib": max((p for p in acc["peak_rss_mib"] if p is not None), default=None),
            "errors": acc["errors"],
        }
    hashes = {s["sha256"] for s in summary.values()}
    agree = len(hashes) == 1 and all(s["deterministic"] and not s["errors"] for s in summary.values())
    base = summary.get("duckdb", {}).get("median_ms")
    for s in summary.values():
        s["x_duckdb"] = round(s["median_ms"] / base, 2) if base and s["median_ms"] else None
    doc = {
        "meta": {"data": str(a.data), "ids": str(ids), "ids_count": n_ids, "ids_missing": n_ids // 10,
                 "runs": a.runs, "warmup": a.warmup, "rounds": a.rounds, "threads": a.threads,
                 "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
                 "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
                 "duckdb_sql": DUCKDB_SQL},
        "summary": summary, "processes": processes, "hashes_agree": agree,
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "results.json").write_text(json.dumps(doc, indent=2, default=list))
    lines = [
        "# 1 M ids against the 5 M bench users",
        "",
        f"- data: `{a.data}`; ids: `{ids.name}` ({n_ids:,} ids, {n_ids // 10:,} of them no user's)",
        f"- {a.rounds} round(s) x (1 warm-up + {a.runs} timed), one process per engine per round, threads={a.threads}",
        f"- command: `{doc['meta']['command']}`",
        f"- results agree (SHA-256 of the ascending ids): **{'yes' if agree else 'NO'}**",
        "",
        "| engine / case | median ms (min–max) | × duckdb | members | peak RSS MiB |",
        "|---|---|---|---|---|",
    ]
    for name in ["duckdb", "polars", "segkit L1", "segkit L2"]:
        s = summary.get(name)
        if not s:
            continue
        lines.append(f"| {name} | {s['median_ms']} ({s['min_ms']}–{s['max_ms']}) | {s['x_duckdb']} | {s['count']} "
                     f"| {s['peak_rss_mib']} |")
    sk = processes.get("segkit", [{}])[0].get("settings") or {}
    lines += ["", "segkit L1 = static-list segment, L2 = `in` rule with 1 M literal values; both timed as "
              "`Workspace::evaluate` (members sorted, stored as a membership version, entered/exited computed). "
              f"Definition (once, not timed above): {json.dumps(sk.get('define_ms'))} ms.", ""]
    (a.out / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if agree else 2


if __name__ == "__main__":
    sys.exit(main())
