#!/usr/bin/env bash
# CSV ingest side by side: users.csv (575 MB) and events.csv (2.9 GB) of ../shared/bench through DuckDB
# (COPY … TO parquet), Polars (scan_csv → sink_parquet) and segkit (the CSV connector into a workspace), 2 threads
# each, one process per engine and file. Writes benches/results/ingest/{results.json,table.md}.
#
#   benches/ingest.sh [DATA_DIR] [extra args for benches/peers/ingest.py, e.g. --files users --runs 2]
#
# Build first (the benchmark release build, see COMMON rules):
#   CARGO_TARGET_DIR=/work/targets/rel cargo build --release -p segkit-bench -p segkit-delivery-bench --bins
# Python with duckdb, polars and pyarrow: $PY (default /work/venvs/bench/bin/python).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${1:-/tmp/segbench-data/sf1}
shift || true
PY=${PY:-/work/venvs/bench/bin/python}
BIN=${CARGO_TARGET_DIR:-/work/targets/rel}/release/segkit-ingest-bench
[ -x "$BIN" ] || { echo "build it: cargo build --release -p segkit-bench -p segkit-delivery-bench --bins" >&2; exit 1; }
exec "$PY" "$ROOT/benches/peers/ingest.py" --data "$DATA" --segkit "$BIN" --out "$ROOT/benches/results/ingest" "$@"
