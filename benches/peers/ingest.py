#!/usr/bin/env python3
"""CSV → Parquet ingest side by side (issue 8, performance): the full-scale `users.csv` and `events.csv` of
../shared/bench through

  duckdb  COPY (SELECT * FROM read_csv('<csv>')) TO '<out>.parquet' (FORMAT parquet)      (SET threads = 2)
  polars  pl.scan_csv('<csv>').sink_parquet('<out>.parquet')                            (POLARS_MAX_THREADS=2)
  duckdb-sorted / polars-sorted  the same with ORDER BY segkit's storage order (users: country, user_id) — the
          work segkit's first profile ingest does; users.csv only
  datafusion  COPY (SELECT * FROM t) TO '<out>.parquet' STORED AS PARQUET, t = register_csv('<csv>')
          (datafusion-python, target_partitions = 2: the query engine segkit is built on, its own CSV reader)
  segkit  segkit-ingest-bench --file <csv> --entity users|events --threads 2
          (a fresh workspace with the bench's entities; the CSV connector; coercion to the entity's types,
          quarantine of bad rows, sort into storage order, Parquet files, snapshot committed)

    python benches/peers/ingest.py --data /tmp/segbench-data/sf1 --segkit /work/targets/rel/release/segkit-ingest-bench \\
        --out benches/results/ingest [--files users,events] [--engines duckdb,polars,segkit] [--runs 1]

Each engine runs in its own process, one after the other, file by file. Reported per run: the time of the
ingest call measured inside the process (interpreter and library start-up excluded), rows/s over the CSV's data
rows, and the process' peak RSS (`/usr/bin/time -f %M`, so the Python peers include the interpreter and the
library, ~60-100 MB). Outputs go to a scratch directory (`--tmp`, default /tmp/ingest) and are deleted after
each run. The 1-minute load average before each run is recorded: the machine is shared.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path


# segkit's storage order of a profile file (its indexed attributes, then its key): what the `-sorted` peers sort
# by, so that they do the same work as segkit's first profile ingest. Event files are only sorted file by file
# (1 Mi rows) by segkit, which a global ORDER BY would not compare with: no `-sorted` peer for them.
STORAGE_ORDER = {"users.csv": ["country", "user_id"]}


def worker(engine: str, csv: str, out: str, threads: int) -> None:
    """Runs one peer in this process and prints its JSON line."""
    order = STORAGE_ORDER[Path(csv).name] if engine.endswith("-sorted") else []
    if engine in ("duckdb", "duckdb-sorted"):
        import duckdb

        con = duckdb.connect()
        con.execute(f"SET threads = {threads}")
        by = f" ORDER BY {', '.join(order)}" if order else ""
        t = time.perf_counter()
        rows = con.execute(f"COPY (SELECT * FROM read_csv('{csv}'){by}) TO '{out}' (FORMAT parquet)").fetchone()[0]
        secs = time.perf_counter() - t
        version = duckdb.__version__
    elif engine in ("polars", "polars-sorted"):
        os.environ["POLARS_MAX_THREADS"] = str(threads)  # read at import
        import polars as pl

        t = time.perf_counter()
        lf = pl.scan_csv(csv)
        (lf.sort(order) if order else lf).sink_parquet(out)
        secs = time.perf_counter() - t
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(out).metadata.num_rows
        version = pl.__version__
    elif engine == "datafusion":
        # The query engine segkit is built on, as a user of its Python package would call it.
        import datafusion
        from datafusion import SessionConfig, SessionContext

        ctx = SessionContext(SessionConfig().with_target_partitions(threads))
        t = time.perf_counter()
        ctx.register_csv("t", csv)
        batches = ctx.sql(f"COPY (SELECT * FROM t) TO '{out}' STORED AS PARQUET").collect()
        secs = time.perf_counter() - t
        rows = sum(b.column(0)[i].as_py() for b in batches for i in range(b.num_rows))
        version = datafusion.__version__
    else:
        raise SystemExit(f"unknown engine {engine}")
    print(json.dumps({"engine": engine, "version": version, "rows_read": rows, "rows_written": rows,
                      "seconds": secs, "rows_per_s": rows / secs, "stored_bytes": os.path.getsize(out)}))


def run(cmd: list[str], env: dict | None = None) -> tuple[dict, float, float, float]:
    """(the worker's JSON, peak RSS in MiB, process wall seconds, process CPU seconds) of `cmd` under
    /usr/bin/time."""
    tf = Path("/tmp/ingest/.time")
    tf.parent.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["/usr/bin/time", "-f", "%M %e %U %S", "-o", str(tf), *cmd], capture_output=True, text=True,
                       env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({p.returncode}): {p.stderr[-2000:]}")
    kb, wall, user, system = tf.read_text().split()[-4:]
    return json.loads(p.stdout.strip().splitlines()[-1]), int(kb) / 1024.0, float(wall), float(user) + float(system)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker")
    ap.add_argument("--csv")
    ap.add_argument("--out")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default="/tmp/segbench-data/sf1")
    ap.add_argument("--segkit", default="/work/targets/rel/release/segkit-ingest-bench")
    ap.add_argument("--segkit-before", help="a segkit-ingest-bench of an earlier commit: adds engine segkit-before")
    ap.add_argument("--files", default="users,events")
    ap.add_argument("--engines", default="duckdb,polars,segkit")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--tmp", default="/tmp/ingest")
    ap.add_argument("--label", default="", help="a note for the results (e.g. the commit measured)")
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.csv, a.out, a.threads)
        return 0
    tmp = Path(a.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    results = []
    for name in a.files.split(","):
        csv = Path(a.data) / f"{name}.csv"
        size = csv.stat().st_size
        # Warm the page cache once for every engine alike.
        with open(csv, "rb") as f:
            while f.read(16 << 20):
                pass
        for r in range(a.runs):
            for engine in a.engines.split(","):
                out = tmp / f"{name}-{engine}.parquet"
                ws = tmp / f"ws-{name}"
                load = os.getloadavg()[0]
                if engine.endswith("-sorted") and csv.name not in STORAGE_ORDER:
                    continue
                if engine in ("segkit", "segkit-before"):
                    shutil.rmtree(ws, ignore_errors=True)
                    cmd = [a.segkit if engine == "segkit" else a.segkit_before, "--file", str(csv), "--entity", name, "--threads", str(a.threads),
                           "--workspace", str(ws)]
                else:
                    cmd = [sys.executable, __file__, "--worker", engine, "--csv", str(csv), "--out", str(out),
                           "--threads", str(a.threads)]
                res, rss, wall, cpu = run(cmd)
                res["engine"] = engine
                shutil.rmtree(ws, ignore_errors=True)
                out.unlink(missing_ok=True)
                res.update({"file": f"{name}.csv", "csv_bytes": size, "run": r + 1, "peak_rss_mib": round(rss, 1),
                            "process_seconds": wall, "process_cpu_seconds": round(cpu, 2),
                            "load_before": round(load, 2)})
                print(f"{name:7s} {engine:7s} {res['seconds']:8.2f} s  {res['rows_per_s'] / 1e6:6.2f} M rows/s  "
                      f"peak {rss:8.1f} MiB  cpu {cpu:6.1f} s  (load {load:.1f})", flush=True)
                results.append(res)
    outdir = Path(a.out) if a.out else None
    if outdir:
        outdir.mkdir(parents=True, exist_ok=True)
        meta = {"threads": a.threads, "label": a.label, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "runs": results}
        (outdir / "results.json").write_text(json.dumps(meta, indent=2) + "\n")
        lines = [f"| file | engine | seconds | rows/s | vs DuckDB | peak RSS (MiB) | process CPU s | load before |",
                 "|---|---|---|---|---|---|---|---|"]
        duck = {(x["file"], x["run"]): x["seconds"] for x in results if x["engine"] == "duckdb"}
        for x in results:
            d = duck.get((x["file"], x["run"]))
            ratio = f"{d / x['seconds']:.2f}x" if d else "-"
            lines.append(f"| {x['file']} ({x['csv_bytes'] / 1e6:.0f} MB) | {x['engine']} | {x['seconds']:.2f} | "
                         f"{x['rows_per_s'] / 1e6:.2f} M | {ratio} | {x['peak_rss_mib']:.0f} | {x['process_cpu_seconds']} | "
                         f"{x['load_before']} |")
        (outdir / "table.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
