#!/usr/bin/env bash
# Delivery benchmark (issue 9): N entities enter a segment and a workflow sends each one webhook to a local
# receiver, with the ledger in the catalog; beside it, in the same run, wrk's rate against the same receiver.
# Then the same for mail: one mail each to a local SMTP server (aiosmtpd), beside a plain SMTP load (lettre,
# the smtp action's client, without segkit) against the same server.
#
#   CARGO_TARGET_DIR=/work/targets/rel cargo build --release -p segkit-bench -p segkit-delivery-bench --bins
#   benches/dispatch.sh [N=100000] [TARGET_DIR=target] [PARTS="webhook smtp"]
#   CONCURRENCY=512 benches/dispatch.sh …   # the dispatcher's concurrency bound (default 64; wrk keeps -c64)
#   MODES=--durable benches/dispatch.sh …    # only the durable run (default: "none --durable", both)
#   DISPATCH_ARGS=--current-thread benches/dispatch.sh …   # more options for segkit-dispatch-bench
#   benches/dispatch.sh 100000 TARGET_DIR floor   # the floor (opt-in part, below)
#
# PARTS=floor (not in the default parts): what the same N webhooks cost without the segkit engine
# (`segkit-delivery-floor`, see benches/delivery/src/bin/floor.rs), alternated with wrk against ONE receiver:
# ROUNDS times (default 2) wrk for 10 s, then each of FLOOR_MODES (default "action reqwest hyper ledger
# ledger-claim ledger-claim+gc segkit") as its own process: `action` / `reqwest` / `hyper` are the HTTP clients
# alone (the webhook action's own client, reqwest with the actions' settings, hyper's HTTP/1.1 connections);
# `ledger` / `ledger-claim` add the least durable SQLite ledger work (FLOOR_CLIENT's requests, default action:
# the leanest measured); a
# `+gc` suffix commits outcomes as the dispatcher does (`--group-commit`: one transaction per group, at most
# 2 × concurrency sent and not yet recorded); `segkit` is segkit-dispatch-bench --durable in the same round. Each
# line gets the receiver's CPU per delivery; the lines go to results/dispatch/floor.jsonl.
#
# Needs wrk (Debian package) and, for smtp, aiosmtpd in $PYTHON's environment (default: the segkit venv).
# Prints wrk's summary, the SMTP load line and one JSON line per dispatch configuration (deliveries/s, p50/p99
# trigger→receipt, peak RSS, the dispatch loop's CPU per delivery); for the webhook part also the CPU per request
# of wrk and of the receiver (during wrk, and per delivery during each dispatch run); appends them under
# benches/results/dispatch/ (wrk.txt, smtp_load.jsonl, dispatch.jsonl). The workspace lives in $WS_DIR (default /tmp/dispatch/ws) and is deleted afterwards.
set -euo pipefail
N=${1:-100000}
BIN=${2:-${CARGO_TARGET_DIR:-target}}/release
PARTS=${3:-webhook smtp}
CONCURRENCY=${CONCURRENCY:-64}
MODES=${MODES:-none --durable}
DISPATCH_ARGS=${DISPATCH_ARGS:-}
PYTHON=${PYTHON:-/var/cache/segkit/venv/bin/python}
WS_DIR=${WS_DIR:-/tmp/dispatch/ws}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE/results/dispatch
TMP=$(mktemp -d /tmp/dispatch-bench.XXXXXX)
mkdir -p "$OUT" "$(dirname "$WS_DIR")"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$TMP" "$WS_DIR" "$WS_DIR-floor"
}
trap cleanup EXIT
HZ=$(getconf CLK_TCK)
# CPU clock ticks (user + system) process $1 has used.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Starts a segkit-bench-receiver (its address file $TMP/$1.addr): sets RECEIVER (its pid) and ADDR, and writes
# wrk's script $TMP/post.lua: POST bodies like the workflow's (about 40 bytes of JSON).
start_receiver() {
  "$BIN/segkit-bench-receiver" 127.0.0.1:0 > "$TMP/$1.addr" &
  RECEIVER=$!
  PIDS+=($RECEIVER)
  for _ in $(seq 50); do grep -q listening "$TMP/$1.addr" && break; sleep 0.1; done
  ADDR=$(awk '{print $3}' "$TMP/$1.addr")
  cat > "$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body   = '{"user": 12345, "name": "User 12345"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Idempotency-Key"] = "wrk"
LUA
}
if [[ " $PARTS " == *" webhook "* || " $PARTS " == *" smtp "* ]]; then
  echo "# $(date -u +%FT%TZ) N=$N $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || true)" | tee -a "$OUT/dispatch.jsonl"
fi

if [[ " $PARTS " == *" webhook "* ]]; then
  start_receiver receiver
  echo "receiver on $ADDR"
  # CPU per request (user + system, in µs) of wrk and of the receiver, and of the receiver per delivery below: on
  # a shared machine the rates depend on what the others run, the CPU per request much less.
  r0=$(cpu_ticks "$RECEIVER")
  /usr/bin/time -f "%U %S" -o "$TMP/wrk.cpu" wrk -t1 -c64 -d10s -s "$TMP/post.lua" "http://$ADDR/hook" \
    | tee -a "$OUT/wrk.txt" > "$TMP/wrk.out"
  r1=$(cpu_ticks "$RECEIVER")
  REQUESTS=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
  echo "{\"wrk_requests\": $REQUESTS, \"wrk_cpu_us_per_request\": $(awk -v n="$REQUESTS" '{printf "%.2f", ($1+$2)*1e6/n}' "$TMP/wrk.cpu"), \"receiver_cpu_us_per_request\": $(awk -v n="$REQUESTS" -v d=$((r1 - r0)) -v hz="$HZ" 'BEGIN {printf "%.2f", d*1e6/hz/n}')}" \
    | tee -a "$OUT/wrk.txt"
  for mode in $MODES; do
    [[ $mode == none ]] && mode=""
    r0=$(cpu_ticks "$RECEIVER")
    "$BIN/segkit-dispatch-bench" --receiver "$ADDR" --entities "$N" --concurrency "$CONCURRENCY" \
      --batch 1000 --dir "$WS_DIR" $mode $DISPATCH_ARGS | tee -a "$OUT/dispatch.jsonl"
    r1=$(cpu_ticks "$RECEIVER")
    echo "{\"receiver_cpu_us_per_delivery\": $(awk -v n="$N" -v d=$((r1 - r0)) -v hz="$HZ" 'BEGIN {printf "%.2f", d*1e6/hz/n}')}" \
      | tee -a "$OUT/dispatch.jsonl"
  done
fi

if [[ " $PARTS " == *" floor "* ]]; then
  ROUNDS=${ROUNDS:-2}
  FLOOR_MODES=${FLOOR_MODES:-action reqwest hyper ledger ledger-claim ledger-claim+gc segkit}
  FLOOR_CLIENT=${FLOOR_CLIENT:-action}
  start_receiver floor-receiver
  echo "receiver on $ADDR" >&2
  echo "# $(date -u +%FT%TZ) N=$N floor $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || true) load $(cut -d' ' -f1-3 /proc/loadavg)" \
    | tee -a "$OUT/floor.jsonl"
  for round in $(seq "$ROUNDS"); do
    r0=$(cpu_ticks "$RECEIVER")
    /usr/bin/time -f "%U %S" -o "$TMP/wrk.cpu" wrk -t1 -c64 -d10s -s "$TMP/post.lua" "http://$ADDR/hook" > "$TMP/wrk.out"
    r1=$(cpu_ticks "$RECEIVER")
    REQUESTS=$(awk '/requests in/ {print $1}' "$TMP/wrk.out")
    echo "{\"round\": $round, \"wrk_per_s\": $(awk -v n="$REQUESTS" 'BEGIN {printf "%.0f", n/10}'), \"wrk_cpu_us_per_request\": $(awk -v n="$REQUESTS" '{printf "%.2f", ($1+$2)*1e6/n}' "$TMP/wrk.cpu"), \"receiver_cpu_us_per_request\": $(awk -v n="$REQUESTS" -v d=$((r1 - r0)) -v hz="$HZ" 'BEGIN {printf "%.2f", d*1e6/hz/n}'), \"load\": \"$(cut -d' ' -f1 /proc/loadavg)\"}" \
      | tee -a "$OUT/floor.jsonl"
    for m in $FLOOR_MODES; do
      r0=$(cpu_ticks "$RECEIVER")
      if [[ $m == segkit ]]; then
        line=$("$BIN/segkit-dispatch-bench" --receiver "$ADDR" --entities "$N" --concurrency "$CONCURRENCY" \
          --batch 1000 --dir "$WS_DIR" --durable $DISPATCH_ARGS)
      else
        extra=()
        [[ $m == *+gc ]] && extra=(--group-commit)
        line=$("$BIN/segkit-delivery-floor" --receiver "$ADDR" --mode "${m%+gc}" --client "$FLOOR_CLIENT" \
          --entities "$N" --concurrency "$CONCURRENCY" --batch 1000 --dir "$WS_DIR-floor" "${extra[@]}")
      fi
      r1=$(cpu_ticks "$RECEIVER")
      echo "{\"round\": $round, \"mode\": \"$m\", \"receiver_cpu_us_per_delivery\": $(awk -v n="$N" -v d=$((r1 - r0)) -v hz="$HZ" 'BEGIN {printf "%.2f", d*1e6/hz/n}'), \"result\": $line}" \
        | tee -a "$OUT/floor.jsonl"
    done
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
    --concurrency "$CONCURRENCY" --batch 1000 --dir "$WS_DIR" --durable $DISPATCH_ARGS | tee -a "$OUT/dispatch.jsonl"
fi
