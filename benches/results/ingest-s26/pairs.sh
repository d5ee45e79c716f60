#!/bin/bash
# usage: pairs.sh N file entity binB binA: alternating runs; prints label wall user sys cpu maxrss_MiB stored_bytes
N=$1; F=$2; E=$3; B=$4; A=$5
for i in $(seq 1 $N); do
  if [ $((i%2)) -eq 1 ]; then order="B A"; else order="A B"; fi
  for w in $order; do
    if [ $w = B ]; then bin=$B; else bin=$A; fi
    d=/tmp/ingest11/ws-$w; rm -rf $d
    /usr/bin/time -f "%e %U %S %M" $bin --file $F --entity $E --threads 2 --workspace $d >/tmp/ingest11/out-$w.json 2>/tmp/ingest11/err-$w.txt
    read wall u s m <<< "$(tail -1 /tmp/ingest11/err-$w.txt)"
    sb=$(python3 -c "import json;print(json.load(open('/tmp/ingest11/out-$w.json'))['stored_bytes'])")
    echo "$w $wall $u $s $(echo "$u+$s"|bc) $((m/1024)) $sb"
  done
done
