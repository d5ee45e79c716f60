#!/bin/bash
# usage: run.sh BIN LABEL [--durable]
set -e
BIN=$1; LABEL=$2; shift 2
D=/tmp/surface4/bench/ws-$LABEL; rm -rf $D
$BIN init $D >/dev/null
KEY=$($BIN -w $D --json keys create --name bench --role editor | python3 -c 'import json,sys;print(json.load(sys.stdin)["secret"])')
PORT=$((30000 + RANDOM % 10000))
$BIN -w $D serve --bind 127.0.0.1:$PORT --rate-limit 0 "$@" > $D.log 2>&1 &
PID=$!
for i in $(seq 100); do curl -fsS http://127.0.0.1:$PORT/api/v1/health >/dev/null 2>&1 && break; sleep 0.1; done
H="Authorization: Bearer $KEY"
curl -fsS -H "$H" -H 'Content-Type: application/json' -d '{"name":"users","key":"user_id","attributes":{"user_id":"int64"}}' http://127.0.0.1:$PORT/api/v1/entities >/dev/null
curl -fsS -H "$H" -H 'Content-Type: application/json' -d '{"name":"events","kind":"event","timestamp":"ts","attributes":{"user_id":"int64","event_type":"string","ts":"timestamp","amount":"float64"},"links":{"user_id":"users"}}' http://127.0.0.1:$PORT/api/v1/entities >/dev/null
curl -fsS -H "$H" -H 'Content-Type: application/json' --data-binary @/tmp/surface4/bench/body.json http://127.0.0.1:$PORT/api/v1/events > /dev/null
cat > /tmp/surface4/bench/post.lua <<LUA
wrk.method = "POST"
wrk.body = io.open("/tmp/surface4/bench/body.json"):read("*a")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
LUA
CPU0=$(awk '{print $14+$15}' /proc/$PID/stat)
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
OUT=$(wrk -t2 -c8 -d20s -s /tmp/surface4/bench/post.lua http://127.0.0.1:$PORT/api/v1/events)
CPU1=$(awk '{print $14+$15}' /proc/$PID/stat)
REQS=$(echo "$OUT" | awk '/requests in/ {print $1}')
NON2=$(echo "$OUT" | grep -c "Non-2xx" || true)
RPS=$(echo "$OUT" | awk '/Requests\/sec/ {print $2}')
P50=$(echo "$OUT" | awk '/Latency/ {print $2}')
TICKS=$(getconf CLK_TCK)
python3 - <<PY
reqs=$REQS; cpu=($CPU1-$CPU0)/$TICKS
print("$LABEL $*: %d requests, %.0f events/s, %s req/s, latency avg $P50, server CPU %.1f s = %.1f us CPU per event, load $LOAD, non2xx lines $NON2" % (reqs, float("$RPS")*1000, "$RPS", cpu, cpu/(reqs*1000)*1e6))
PY
kill $PID; wait $PID 2>/dev/null || true
find $D -name '*.parquet' | wc -l
rm -rf $D
