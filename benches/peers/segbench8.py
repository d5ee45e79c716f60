#!/usr/bin/env python3
"""The shared benchmark (../../../shared/bench/run_bench.py) with segkit's eighth segment, S8 (a sequence).

The shared harness is read-only and knows S1-S7. This wrapper adds S8 to its segment list, its SQL (from
`queries.sql` here) to the query file the workers read, and its Polars plan, then runs the unchanged harness.
The Python engines run as workers of this script, so they see S8 too; segkit's worker reads S8 from
`benches/segments.json`.

    python benches/peers/segbench8.py --data /tmp/segbench-data/sf1 --runs 5 --rounds 2 \\
        --external segkit=target/release/segkit-bench --out benches/results/sf1

All options are run_bench.py's. `--segments` defaults to S1-S8. The harness is looked for in
`../shared/bench` beside the checkout, or in `$SEGBENCH_DIR`.
"""
from __future__ import annotations

import os
import shlex
import sys
import tempfile
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("SEGBENCH_DIR", HERE.parents[2] / "shared" / "bench"))
sys.path.insert(0, str(SHARED))

import segments as seg  # noqa: E402
import run_bench  # noqa: E402

S8 = "S8"
seg.SEGMENTS.append(S8)
seg.KIND[S8] = "ids"
seg.DESCRIPTION[S8] = "sequence: cart_add then purchase within 1h, no cart_remove between, last 30d"


def _combined_queries() -> Path:
    """The shared queries plus S8, in one file (the workers get its path via --queries)."""
    text = seg.QUERIES_SQL.read_text() + "\n" + (HERE / "queries.sql").read_text()
    fd, name = tempfile.mkstemp(prefix="segbench8-", suffix=".sql")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return Path(name)


def _polars_s8(events):
    import polars as pl

    c = pl.col
    ev = events.filter(c("event_type").is_in(["cart_add", "purchase", "cart_remove"])
                       & (c("ts") >= pl.lit(seg.WINDOW_START)) & (c("ts") < pl.lit(seg.NOW))
                       ).select("user_id", "ts", "event_type")  # the shared subplan Polars caches: keep it narrow
    first = ev.filter(c("event_type") == "cart_add").select("user_id", c("ts").alias("ta"))
    without = ev.filter(c("event_type") == "cart_remove").select("user_id", c("ts").alias("tc"))
    then = ev.filter(c("event_type") == "purchase").select("user_id", "ts")
    # For each purchase: the latest cart_add and the latest cart_remove strictly before it (the events are in
    # time order, as the generator writes them).
    pairs = (then
             .join_asof(first, left_on="ts", right_on="ta", by="user_id", strategy="backward",
                        allow_exact_matches=False)
             .join_asof(without, left_on="ts", right_on="tc", by="user_id", strategy="backward",
                        allow_exact_matches=False))
    return (pairs
            .filter(c("ta").is_not_null() & (c("ts") <= c("ta") + pl.duration(hours=1))
                    & (c("tc").is_null() | (c("tc") <= c("ta"))))
            .select("user_id").unique().sort("user_id"))


_shared_polars_plan = seg.polars_plan


def polars_plan(segment, users, events):
    if segment == S8:
        return _polars_s8(events)
    return _shared_polars_plan(segment, users, events)


seg.polars_plan = polars_plan
warnings.filterwarnings("ignore", message="Sortedness of columns cannot be checked")


def main(argv: list[str]) -> int:
    if "--worker" in argv:
        return run_bench.main(argv)
    seg.QUERIES_SQL = _combined_queries()
    seg._SQL = seg.load_sql(seg.QUERIES_SQL)
    try:
        # Run the Python engines as workers of this script (so they know S8), under their usual names.
        engines = "duckdb,polars,datafusion"
        if "--engines" in argv:
            i = argv.index("--engines")
            engines = argv[i + 1]
            del argv[i:i + 2]
        extra = []
        for e in filter(None, engines.split(",")):
            extra += ["--external", f"{e}={shlex.quote(sys.executable)} {shlex.quote(__file__)} --worker {e}"]
        # The harness starts workers in its own directory: make a relative worker path absolute.
        for i, a in enumerate(argv[:-1]):
            if a == "--external" and "=" in argv[i + 1]:
                name, _, cmd = argv[i + 1].partition("=")
                parts = shlex.split(cmd)
                if parts and not os.path.isabs(parts[0]) and os.path.exists(parts[0]):
                    parts[0] = os.path.abspath(parts[0])
                argv[i + 1] = f"{name}={shlex.join(parts)}"
        return run_bench.main(["--engines", ""] + extra + argv)
    finally:
        seg.QUERIES_SQL.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
