#!/usr/bin/env bash
# Delivery benchmark (issue 9): N entities enter a segment and a workflow sends each one webhook to a local
# receiver, with the ledger in the catalog; beside it, in the same run, wrk's rate against the same receiver.
# Then the same for mail: one mail each to a local SMTP server (aiosmtpd), beside a plain SMTP load (lettre,
# the smtp action's client, without segkit) against the same server.
#
#   CARGO_TARGET_DIR=/work/targets/rel cargo build --release -p segkit-bench -p segkit-delivery-bench --bins
#   benches/dispatch.sh [N=100000] [TARGET_DIR=target] [PARTS="webhook smtp"]
#   CONCURRENCY=512 benches/dispatch.sh …   # the dispatcher's concurrency bound (default 64; wrk keeps -c64)
#
# Needs wrk (Debian package) and, for smtp, aiosmtpd in $PYTHON's environment (default: the segkit venv).
# Prints wrk's summary, the SMTP load line and one JSON line per dispatch configuration (deliveries/s, p50/p99
# trigger→receipt, peak RSS); appends them under benches/results/dispatch/ (wrk.txt, smtp_load.jsonl,
# dispatch.jsonl). The workspace lives in $WS_DIR (default /tmp/dispatch/ws) and is deleted afterwards.
set -euo pipefail
N=${1:-100000}
BIN=${2:-${CARGO_TARGET_DIR:-target}}/release
PARTS=${3:-webhook smtp}
CONCURRENCY=${CONCURRENCY:-64}
PYTHON=${PYTHON:-/var/cache/segkit/venv/bin/python}
WS_DIR=${WS_DIR:-/tmp/dispatch/ws}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE/results/dispatch
TMP=$(mktemp -d /tmp/dispatch-bench.XXXXXX)
mkdir -p "$OUT" "$(dirname "$WS_DIR")"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$TMP" "$WS_DIR"
}
trap cleanup EXIT
echo "# $(date -u +%FT%TZ) N=$N $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || true)" | tee -a "$OUT/dispatch.jsonl"

if [[ " $PARTS " == *" webhook "* ]]; then
  "$BIN/segkit-bench-receiver" 127.0.0.1:0 > "$TMP/receiver.addr" &
  PIDS+=($!)
  for _ in $(seq 50); do grep -q listening "$TMP/receiver.addr" && break; sleep 0.1; done
  ADDR=$(awk '{print $3}' "$TMP/receiver.addr")
  echo "receiver on $ADDR"
  # wrk: POST bodies like the workflow's (about 40 bytes of JSON), 1 thread, 64 connections, 10 s.
  cat > "$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body   = '{"user": 12345, "name": "User 12345"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Idempotency-Key"] = "wrk"
LUA
  wrk -t1 -c64 -d10s -s "$TMP/post.lua" "http://$ADDR/hook" | tee -a "$OUT/wrk.txt"
  for mode in "" "--durable"; do
    "$BIN/segkit-dispatch-bench" --receiver "$ADDR" --entities "$N" --concurrency "$CONCURRENCY" \
      --batch 1000 --dir "$WS_DIR" $mode | tee -a "$OUT/dispatch.jsonl"
  done
fi

if [[ " $PARTS " == *" smtp "* ]]; then
  PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$PYTHON" "$HERE/delivery/smtp_sink.py" "$PORT" "$TMP/mails.log" > "$TMP/sink.out" &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q READY "$TMP/sink.out" && break; sleep 0.1; done
  echo "smtp sink on 127.0.0.1:$PORT"
  "$BIN/segkit-smtp-load" --smtp "127.0.0.1:$PORT" --concurrency 64 --seconds 10 | tee -a "$OUT/smtp_load.jsonl"
  "$BIN/segkit-dispatch-bench" --smtp "127.0.0.1:$PORT" --arrivals "$TMP/mails.log" --entities "$N" \
    --concurrency "$CONCURRENCY" --batch 1000 --dir "$WS_DIR" --durable | tee -a "$OUT/dispatch.jsonl"
fi
