#!/usr/bin/env bash
# request-callgrind.sh: instructions the server process spends on one POST /v1/chat/completions
# (stories260K, greedy, 8 tokens), end to end: HTTP, JSON, the registry, the generation path and
# the engine, which runs in the server process here (--in-process: an engine process is spawned
# from /proc/self/exe, which under valgrind is valgrind's own). Machine load does not disturb
# the count. One warm-up request loads the model uncounted; then N requests (REQS, 20)
# run with collection on, and the script prints the mean per request and the inclusive counts of
# the registry calls a request makes. Usage: bench/request-callgrind.sh [BUILD] [PORT]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/${1:-build}/shimmy
port=${2:-18731}
n=${REQS:-20}
model=${SHIMMY_TEST_MODELS:-$root/../shared/models}/stories260K.gguf
command -v valgrind >/dev/null || { echo "request-callgrind.sh: valgrind not found" >&2; exit 1; }
d=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; [ -n "${KEEP:-}" ] && cp "$d/cg.out" "$KEEP"; rm -rf "$d"' EXIT
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$d/cg.out" "$bin" serve \
    --bind "127.0.0.1:$port" --model "$model" --in-process --threads 1 >"$d/log" 2>&1 &
pid=$!
body='{"model":"stories260k","temperature":0,"max_tokens":8,"messages":[{"role":"user","content":"Once upon a time"}]}'
req() { curl -sf -o /dev/null -H 'Content-Type: application/json' -d "$body" \
    "http://127.0.0.1:$port/v1/chat/completions"; }
end=$((SECONDS + 120))
until curl -sf -o /dev/null "http://127.0.0.1:$port/health"; do
    [ $SECONDS -lt $end ] || { echo "server not ready" >&2; cat "$d/log" >&2; exit 1; }
    sleep 0.2
done
req
callgrind_control -i on "$pid" >/dev/null 2>&1
for _ in $(seq "$n"); do req; done
callgrind_control -i off "$pid" >/dev/null 2>&1
kill -INT "$pid"
wait "$pid" || true
pid=
total=$(awk '/Collected/ {print $4}' "$d/log")
echo "requests: $n; server instructions per request: $((total / n))"
callgrind_annotate --inclusive=yes --threshold=100 "$d/cg.out" |
    grep -E 'registry_(find|acquire|acquire_ctx|get|info|release|release_keep) |copy_desc|api_model_served_name|api_acquire_kind' |
    sed 's/ \[.*\]$//' | awk -v n="$n" '{c = $1; gsub(",", "", c); printf "%10d per request  %s\n", c / n, $NF}'
