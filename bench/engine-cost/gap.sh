#!/usr/bin/env bash
# gap.sh N BIN...: per start of `BIN serve --model stories260K`, the milliseconds between the
# server's "model ... (cli)" log line (its own start-up done, the load begins) and the first
# "loading model:" progress line (the engine process is running and has the model file open).
n=$1; shift
ms() { local t=${1#*T}; t=${t%Z*}; IFS=: read h m s <<<"$t"; echo "($h*3600+$m*60+$s)*1000" | bc; }
for i in $(seq "$n"); do
  for b in "$@"; do
    port=$((19200 + RANDOM % 500))
    "$b" serve --model ${SHIMMY_TEST_MODELS:-../shared/models}/stories260K.gguf --bind 127.0.0.1:$port ${EXTRA:-} > ${TMPDIR:-/tmp}/engine-cost-gap.log 2>&1 & pid=$!
    until curl -sf localhost:$port/health >/dev/null; do sleep 0.005; done
    kill $pid; wait $pid 2>/dev/null
    a=$(grep -m1 "(cli) from" ${TMPDIR:-/tmp}/engine-cost-gap.log | cut -d' ' -f1); z=$(grep -m1 "loading model:" ${TMPDIR:-/tmp}/engine-cost-gap.log | cut -d' ' -f1)
    echo "$(basename $b) $(echo "$(ms $z) - $(ms $a)" | bc)"
  done
done | awk '{v[$1]=v[$1]" "$2} END {for (k in v) print k ":" v[k]}'
