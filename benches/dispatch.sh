#!/usr/bin/env bash
# Delivery benchmark (issue 9): N entities enter a segment and a workflow sends each one webhook to a local
# receiver, with the ledger in the catalog; beside it, in the same run, wrk's rate against the same receiver.
#
#   cargo build --release -p segkit-delivery-bench --bins
#   benches/dispatch.sh [N=100000] [TARGET_DIR=target]          # needs wrk (Debian package)
#
# Prints wrk's summary and one JSON line per dispatch configuration (deliveries/s, p50/p99 trigger→receipt,
# peak RSS); writes them under benches/results/dispatch/.
set -euo pipefail
N=${1:-100000}
BIN=${2:-${CARGO_TARGET_DIR:-target}}/release
OUT=$(cd "$(dirname "$0")" && pwd)/results/dispatch
mkdir -p "$OUT"
"$BIN/segkit-bench-receiver" 127.0.0.1:0 > "$OUT/receiver.addr" &
RECV=$!
trap 'kill $RECV 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q listening "$OUT/receiver.addr" && break; sleep 0.1; done
ADDR=$(awk '{print $3}' "$OUT/receiver.addr")
echo "receiver on $ADDR"
# wrk: POST bodies like the workflow's (about 40 bytes of JSON), 1 thread, 64 connections, 10 s.
cat > "$OUT/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body   = '{"user": 12345, "name": "User 12345"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Idempotency-Key"] = "wrk"
LUA
wrk -t1 -c64 -d10s -s "$OUT/post.lua" "http://$ADDR/hook" | tee "$OUT/wrk.txt"
for mode in "" "--durable"; do
  "$BIN/segkit-dispatch-bench" --receiver "$ADDR" --entities "$N" --concurrency 64 --batch 1000 $mode \
    | tee -a "$OUT/dispatch.jsonl"
done
