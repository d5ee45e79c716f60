#!/usr/bin/env bash
# The REST API under load: wrk on loopback against `segkit serve` over the bench's 5 M users / 50 M events, and
# the same operations called directly in the library (server/examples/api_bench.rs), from one run:
#   - POST /api/v1/count      the count of an unsaved rule (the bench's S1), 1 connection
#   - the transport floor: server/examples/http_floor.rs, a server on the same stack (axum, hyper, tokio runtime
#     as `segkit serve`) answering every request with the members page's bytes and doing nothing else, timed
#     with exactly the members page's wrk command (what wrk + loopback + any server here cost)
#   - GET  /api/v1/whoami     segkit's own floor: middleware, router and the key check, nothing else
#   - GET  /api/v1/segments/bench_members   an authenticated GET with one catalog read
#   - GET  /api/v1/segments/bench_members/members?limit=1000   a members page, 1 connection: (a) the same page
#     repeated (the server keeps encoded pages of immutable runs), (b) distinct pages (a Lua script steps the
#     offset through the whole run, so nearly every request misses the kept pages)
#   - POST /api/v1/events     batches of 1,000 events, committed durably (--durable), $CONC connections
# plus the server's resident memory sampled every second during the events run, and the server's CPU seconds per
# request of each run (from /proc/PID/stat).
#
# Only the members/floor runs (skips count and events; reuses the workspace): ONLY=members benches/api.sh ...
#
# LOW_LATENCY=1 holds a PM QoS request of 0 µs on /dev/cpu_dma_latency for the whole run (HTTP and library
# alike; needs root), the usual low-latency benchmark setting (tuned's latency-performance profile). On an idle
# VM every cross-CPU wake-up otherwise pays for waking a halted vCPU: on the 2-core test VM a do-nothing server's
# wrk -c1 p50 is ~75-85 µs by default and ~12 µs with LOW_LATENCY=1, which is what a loaded machine shows too.
#
#   benches/api.sh [DATA_DIR] [SECONDS] [CONC]
#
# Build first (its own target dir, so the shared release dir is not disturbed):
#   CARGO_TARGET_DIR=/work/targets/rel-<you> nice cargo build --release -p segkit-server --bins --examples
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
FLOOR=${FLOOR:-$REL/examples/http_floor}
WS=$WORK/bench-ws
PORT=${PORT:-18087}
OUT=$ROOT/benches/results/api
mkdir -p "$WORK" "$OUT"
[ -x "$BIN" ] && [ -x "$EX" ] && [ -x "$FLOOR" ] || { echo "build first: see the header of $0" >&2; exit 1; }
command -v wrk >/dev/null || { echo "needs wrk" >&2; exit 1; }
if [ "${LOW_LATENCY:-0}" = 1 ]; then
  # Held while fd 9 is open, i.e. until this script exits.
  exec 9>/dev/cpu_dma_latency
  printf '\x00\x00\x00\x00' >&9
fi

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
lua("floor", "GET")
lua("events", "POST", body_file=f"{work}/events.json")
# Distinct pages: offsets stepped by a prime through the run (period = the run's size), each a cursor
# `RUN.OFFSET` as the API hands them out (MAXOFF, RUN and PATH are put in front by the shell below).
lua("members-distinct", "GET")
with open(f"{work}/members-distinct.lua", "a") as f:
    f.write('local i = 0\nfunction request() i = i + 1; local off = (i * 7919) % MAXOFF\n'
            '  return wrk.format(nil, PATH .. "&cursor=" .. RUN .. "." .. off) end\n')
PY

"$BIN" --workspace "$WS" serve --bind 127.0.0.1:$PORT --rate-limit 0 --durable > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/health" >/dev/null && break; sleep 0.2; done
B=http://127.0.0.1:$PORT/api/v1
rss() { awk '/VmRSS/ {print $2/1024}' /proc/$SERVER/status; }
# A process's CPU time (user + system) in clock ticks (default: the segkit server).
cpu() { awk '{print $14 + $15}' /proc/${1:-$SERVER}/stat; }
TICK=$(getconf CLK_TCK)
# wrk with the server's (or, with CPU_PID set, that process's) CPU seconds per request printed after it.
timed() {
  local before out n pid=${CPU_PID:-$SERVER}
  before=$(cpu $pid)
  out=$(wrk "$@")
  echo "$out"
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  echo "server_cpu_us_per_request $(( ($(cpu $pid) - before) * 1000000 / TICK / (n > 0 ? n : 1) )) (requests $n)"
}
M=$B/segments/bench_members/members?limit=1000
RUN=$(curl -sf -D - -o /dev/null -H "Authorization: Bearer $KEY" "$M" | awk 'tolower($1) == "x-run:" {print $2+0}')
TOTAL=$(curl -sf -H "Authorization: Bearer $KEY" "$B/segments/bench_members/runs?limit=1000" \
  | python3 -c "import json,sys; r=[x for x in json.load(sys.stdin)['items'] if x['run']==$RUN]; print(r[0]['member_count'])")
# The transport floor answers every request with the bytes of the members page (same size, same headers asked).
curl -sf -H "Authorization: Bearer $KEY" -o "$WORK/page.json" "$M"
FPORT=$((PORT + 1))
"$FLOOR" 127.0.0.1:$FPORT "$WORK/page.json" > "$WORK/floor.log" 2>&1 &
FLOORPID=$!
trap 'kill $SERVER $FLOORPID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$FPORT/" >/dev/null && break; sleep 0.1; done
FM=http://127.0.0.1:$FPORT/api/v1/segments/bench_members/members?limit=1000
sed -i "1i MAXOFF = $((TOTAL - 1000)); RUN = $RUN; PATH = \"/api/v1/segments/bench_members/members?limit=1000\"" "$WORK/members-distinct.lua"
{
  echo "== LOW_LATENCY=${LOW_LATENCY:-0} (1: /dev/cpu_dma_latency held at 0 us, no vCPU halts)"
  echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "== run $RUN of bench_members: $TOTAL members"
  echo "== warm-up"
  [ "${ONLY:-}" = members ] || wrk -t1 -c1 -d3s -s "$WORK/count.lua" "$B/count" >/dev/null
  wrk -t1 -c1 -d3s -s "$WORK/members.lua" "$M" >/dev/null
  wrk -t1 -c1 -d3s -s "$WORK/members.lua" "$FM" >/dev/null
  wrk -t1 -c1 -d3s -s "$WORK/floor.lua" "$B/whoami" >/dev/null
  wrk -t1 -c1 -d3s -s "$WORK/floor.lua" "$B/segments/bench_members" >/dev/null
  if [ "${ONLY:-}" != members ]; then
    echo "== count (POST /count, unsaved S1), 1 connection"
    timed -t1 -c1 -d${SECS}s --latency -s "$WORK/count.lua" "$B/count"
  fi
  echo "== transport floor: http_floor (same stack, no auth/catalog) answering the members page's $(stat -c %s "$WORK/page.json") bytes, the members page's wrk command, 1 connection"
  CPU_PID=$FLOORPID timed -t1 -c1 -d${SECS}s --latency -s "$WORK/members.lua" "$FM"
  echo "== segkit floor: GET /whoami (middleware, router, key check; nothing else), 1 connection"
  timed -t1 -c1 -d${SECS}s --latency -s "$WORK/floor.lua" "$B/whoami"
  echo "== floor: an authenticated GET with one catalog read (GET /segments/bench_members), 1 connection"
  timed -t1 -c1 -d${SECS}s --latency -s "$WORK/floor.lua" "$B/segments/bench_members"
  echo "== members page (limit=1000), the same page repeated, 1 connection"
  timed -t1 -c1 -d${SECS}s --latency -s "$WORK/members.lua" "$M"
  echo "== members page (limit=1000), distinct pages (offset stepped by 7919 through the run), 1 connection"
  timed -t1 -c1 -d${SECS}s --latency -s "$WORK/members-distinct.lua" "$M"
  if [ "${ONLY:-}" = members ]; then
    echo "== load average after the HTTP runs: $(cut -d' ' -f1-3 /proc/loadavg)"
    exit 0
  fi
  echo "== events (POST /events, 1,000 per request, --durable), $CONC connections"
  echo "rss_mib_before $(rss)"
  ( for _ in $(seq 1 $SECS); do sleep 1; echo "rss_mib $(rss)"; done ) &
  SAMPLER=$!
  wrk -t2 -c$CONC -d${SECS}s --latency -s "$WORK/events.lua" "$B/events"
  wait $SAMPLER
  echo "rss_mib_after $(rss)"
  echo "== load average after the HTTP runs: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee "$WORK/wrk.txt"
kill $SERVER $FLOORPID; wait $SERVER $FLOORPID 2>/dev/null || true
trap - EXIT
echo "== library (server/examples/api_bench.rs lib $WS $SECS $CONC ${ONLY:-all})"
"$EX" lib "$WS" "$SECS" "$CONC" "${ONLY:-all}" | tee "$WORK/lib.json"
echo "== load average after the library runs: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$WORK/wrk.txt"
cp "$WORK/wrk.txt" "$OUT/wrk.txt"
cp "$WORK/lib.json" "$OUT/lib.json"
# One line per run: p50, p99, requests/s and CPU per request, HTTP runs then the library's members page.
python3 - "$WORK/wrk.txt" "$WORK/lib.json" <<'PY' | tee "$WORK/summary.txt"
import json, re, sys
text = open(sys.argv[1]).read()
print(f"{'run':<72} {'p50':>9} {'p99':>9} {'req/s':>9} {'CPU/req':>8}")
for part in text.split("== ")[1:]:
    title = part.splitlines()[0]
    p50, p99 = re.search(r"^\s+50%\s+(\S+)", part, re.M), re.search(r"^\s+99%\s+(\S+)", part, re.M)
    rps, cpu = re.search(r"Requests/sec:\s+(\S+)", part), re.search(r"server_cpu_us_per_request (\d+)", part)
    if p50 and rps:
        print(f"{title[:72]:<72} {p50[1]:>9} {p99[1]:>9} {rps[1]:>9} {(cpu[1] + 'us') if cpu else '-':>8}")
lib = json.load(open(sys.argv[2]))
for k in ("members_page", "members_page_distinct", "count_rule", "events_1000"):
    if k in lib:
        v = lib[k]
        cpu = f"{v['cpu_us_per_op']:.1f}us" if "cpu_us_per_op" in v else "-"
        print(f"{'library ' + k:<72} {v['p50_ms'] * 1000:>7.1f}us {v['p99_ms'] * 1000:>7.1f}us {v['ops_per_s']:>9.0f} {cpu:>8}")
PY
echo "raw output in $OUT/wrk.txt and $OUT/lib.json"
