#!/usr/bin/env bash
# The engine-free floor beside segkit (session 26): ROUNDS x (wrk 10 s; each floor mode; segkit), one receiver.
#   B=<release dir with segkit-bench-receiver, segkit-delivery-floor, segkit-dispatch-bench> ROUNDS=2 floor-s26.sh
set -u
N=${N:-100000}; ROUNDS=${ROUNDS:-2}
B=${B:-/work/targets/lead-rel/release}
D=${D:-/tmp/s26}
mkdir -p $D
# wrk's request: a POST like the workflow's (benches/dispatch.sh writes the same).
cat > $D/post.lua <<'LUA'
wrk.method = "POST"
wrk.body   = '{"user": 12345, "name": "User 12345"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Idempotency-Key"] = "wrk"
LUA
$B/segkit-bench-receiver 127.0.0.1:0 > $D/recv.addr &
R=$!
sleep 0.5
ADDR=$(awk '{print $3}' $D/recv.addr)
ticks() { awk '{print $14 + $15}' /proc/$R/stat; }
for round in $(seq $ROUNDS); do
  r0=$(ticks)
  w=$(wrk -t1 -c64 -d10s -s $D/post.lua http://$ADDR/hook | awk '/requests in/ {print $1/10}')
  r1=$(ticks)
  echo "round $round wrk $w recv_us $(awk -v n=$w -v d=$((r1-r0)) 'BEGIN{printf "%.2f", d*1e4/(n*10)}') load $(cut -d' ' -f1 /proc/loadavg)"
  for m in ${MODES:-action ledger ledger-claim ledger-claim+gc128 ledger-claim+gc1024 segkit}; do
    rm -rf $D/fws $D/sws
    r0=$(ticks)
    case $m in
      segkit) out=$($B/segkit-dispatch-bench --receiver $ADDR --entities $N --concurrency 64 --batch 1000 --dir $D/sws --durable) ;;
      *+gc*) W=${m##*gc}; out=$($B/segkit-delivery-floor --receiver $ADDR --mode ledger-claim --client action --entities $N --concurrency 64 --batch 1000 --dir $D/fws --group-commit --window $W) ;;
      *) out=$($B/segkit-delivery-floor --receiver $ADDR --mode $m --client action --entities $N --concurrency 64 --batch 1000 --dir $D/fws) ;;
    esac
    r1=$(ticks)
    echo "$out" >> $D/floor-raw.jsonl
    echo "$out" | python3 -c "
import json,sys
d=json.load(sys.stdin)
cpu=d.get('cpu_us_per_delivery') or d.get('dispatch_cpu_us_per_delivery')
extra=(' trig_us %.1f' % d['trigger_cpu_us_per_entity']) if 'trigger_cpu_us_per_entity' in d else (' insert_us %.1f send_us %.1f' % (d.get('insert_cpu_us_per_row') or 0, d.get('send_cpu_us_per_delivery') or 0))
print('round $round %-20s per_s %.0f ratio %.3f cpu_us %.1f%s recv_us %.2f load $(cut -d' ' -f1 /proc/loadavg)' % ('$m', d['deliveries_per_s'], d['deliveries_per_s']/$w, cpu, extra, ($((r1-r0)))*1e4/$N))
"
  done
done
kill $R
