#!/usr/bin/env bash
# The REST API under load: wrk on loopback against `segkit serve` over the bench's 5 M users / 50 M events, and
# the same operations called directly in the library (server/examples/api_bench.rs), from one run:
#   - POST /api/v1/count      the count of an unsaved rule (the bench's S1), 1 connection
#   - GET  /api/v1/segments/bench_members/members?limit=1000   a members page, 1 connection
#   - POST /api/v1/events     batches of 1,000 events, committed durably (--durable), $CONC connections
# plus the server's resident memory sampled every second during the events run.
#
#   benches/api.sh [DATA_DIR] [SECONDS] [CONC]
#
# Build first (its own target dir, so the shared release dir is not disturbed):
#   CARGO_TARGET_DIR=/work/targets/rel-server nice cargo build --release -p segkit-server --bins --examples
# The workspace is set up once under $WORK (default /tmp/apiperf/bench-ws; ingesting 50 M events takes minutes).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=${1:-/tmp/segbench-data/sf1}
SECS=${2:-20}
CONC=${3:-8}
WORK=${WORK:-/tmp/apiperf}
REL=${CARGO_TARGET_DIR:-/work/targets/rel-server}/release
BIN=${BIN:-$REL/segkit}
EX=${EX:-$REL/examples/api_bench}
WS=$WORK/bench-ws
PORT=${PORT:-18087}
OUT=$ROOT/benches/results/api
mkdir -p "$WORK" "$OUT"
[ -x "$BIN" ] && [ -x "$EX" ] || { echo "build first: see the header of $0" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk" >&2; exit 1; }

if [ ! -f "$WS/segkit.db" ] || [ ! -f "$WORK/key" ]; then
  rm -rf "$WS"
  "$BIN" init "$WS" >/dev/null
  "$EX" setup "$DATA" "$WS" "$WORK/key"
fi
KEY=$(cat "$WORK/key")
"$EX" body "$WORK/events.json"
python3 - "$WORK" "$KEY" <<'PY'
import json, sys
work, key = sys.argv[1], sys.argv[2]
rule = json.load(open(work + "/events.json"))  # only to check it is JSON
count = {"entity": "users", "rule": {"and": [
    {"attribute": "country", "op": "in", "value": ["CN", "US", "DE"]},
    {"attribute": "age", "op": "between", "value": [25, 40]},
    {"attribute": "plan", "op": "ne", "value": "free"},
    {"attribute": "ltv", "op": "gt", "value": 100}]}}
def lua(name, method, body_file=None, body=None):
    with open(f"{work}/{name}.lua", "w") as f:
        f.write(f'wrk.method = "{method}"\n')
        f.write(f'wrk.headers["Authorization"] = "Bearer {key}"\n')
        f.write('wrk.headers["Content-Type"] = "application/json"\n')
        if body_file:
            f.write(f'local fh = io.open("{body_file}", "rb"); wrk.body = fh:read("*a"); fh:close()\n')
        if body:
            f.write("wrk.body = [[" + json.dumps(body) + "]]\n")
        # Any non-2xx answer is counted and printed at the end.
        f.write('local bad = 0\nfunction response(status, headers, body) if status >= 300 then bad = bad + 1; if bad < 3 then print(status, body) end end end\n')
        f.write('function done(summary, latency, requests) io.write(string.format("non2xx_in_last_thread %d\\n", bad)) end\n')
lua("count", "POST", body=count)
lua("members", "GET")
lua("events", "POST", body_file=f"{work}/events.json")
PY

"$BIN" --workspace "$WS" serve --bind 127.0.0.1:$PORT --rate-limit 0 --durable > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.2; done
B=http://127.0.0.1:$PORT/api/v1
rss() { awk '/VmRSS/ {print $2/1024}' /proc/$SERVER/status; }
{
  echo "== warm-up"; wrk -t1 -c1 -d3s -s "$WORK/count.lua" "$B/count" >/dev/null
  wrk -t1 -c1 -d3s -s "$WORK/members.lua" "$B/segments/bench_members/members?limit=1000" >/dev/null
  echo "== count (POST /count, unsaved S1), 1 connection"
  wrk -t1 -c1 -d${SECS}s --latency -s "$WORK/count.lua" "$B/count"
  echo "== members page (limit=1000), 1 connection"
  wrk -t1 -c1 -d${SECS}s --latency -s "$WORK/members.lua" "$B/segments/bench_members/members?limit=1000"
  echo "== events (POST /events, 1,000 per request, --durable), $CONC connections"
  echo "rss_mib_before $(rss)"
  ( for _ in $(seq 1 $SECS); do sleep 1; echo "rss_mib $(rss)"; done ) &
  SAMPLER=$!
  wrk -t2 -c$CONC -d${SECS}s --latency -s "$WORK/events.lua" "$B/events"
  wait $SAMPLER
  echo "rss_mib_after $(rss)"
} 2>&1 | tee "$WORK/wrk.txt"
kill $SERVER; wait $SERVER 2>/dev/null || true
trap - EXIT
echo "== library (server/examples/api_bench.rs lib $WS $SECS $CONC)"
"$EX" lib "$WS" "$SECS" "$CONC" | tee "$WORK/lib.json"
cp "$WORK/wrk.txt" "$OUT/wrk.txt"
cp "$WORK/lib.json" "$OUT/lib.json"
echo "raw output in $OUT/wrk.txt and $OUT/lib.json"
