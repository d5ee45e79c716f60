#!/usr/bin/env bash
# PostgreSQL → segkit for the bench's `users` (5 M rows of ../shared/bench, sf1), next to `psql \copy`.
#
#   benches/pg_ingest.sh [DATA_DIR]      # DATA_DIR holds users.csv (default /tmp/segbench-data/sf1)
#
# Uses the server in SEGKIT_TEST_PG_URL, or starts one with scripts/db-servers.sh. Loads users.csv into
# `bench_users` once, then times: psql's text COPY to /dev/null, segkit's source scan (binary COPY decoded into
# Arrow batches) and a full segkit ingest (Parquet written, snapshot committed). Build the binary first:
#   cargo build --release -p segkit-bench --bin segkit-pg-bench   (PROFILE=release, the default here)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${1:-/tmp/segbench-data/sf1}
PROFILE=${PROFILE:-release}
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/segkit-pg-bench
[ -x "$BIN" ] || { echo "build it: cargo build --profile $PROFILE -p segkit-bench --bin segkit-pg-bench" >&2; exit 1; }
if [ -z "${SEGKIT_TEST_PG_URL:-}" ]; then
  . "$ROOT/scripts/db-servers.sh"
  segkit_db_start
  trap 'segkit_db_stop "$SEGKIT_TEST_DB_DIR"' EXIT
fi
URL=$SEGKIT_TEST_PG_URL
n=$(psql -qtA "$URL" -c "select count(*) from bench_users" 2> /dev/null || echo 0)
if [ "$n" != 5000000 ]; then
  psql -q "$URL" -c "DROP TABLE IF EXISTS bench_users" -c "CREATE TABLE bench_users (user_id int8 PRIMARY KEY,
    email text, country text, age int4, plan text, ltv float8, signup_at timestamptz, is_active bool, tags text)" \
    -c "\\copy bench_users from '$DATA/users.csv' csv header"
fi
for i in 1 2 3; do
  /usr/bin/time -f "psql \\copy: %e s, peak RSS %M KB" psql -q "$URL" -c "\\copy (select * from bench_users) to stdout" > /dev/null
done
for i in 1 2 3; do "$BIN" --url "$URL" --table bench_users --scan-only; done
"$BIN" --url "$URL" --table bench_users
