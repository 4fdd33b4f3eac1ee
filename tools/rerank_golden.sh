#!/usr/bin/env bash
# rerank_golden.sh: asks the reference llama-server (bench/build-reference.sh) to rerank the
# requests of tests/integration/golden/rerank_requests.json on the reranker fixture (make
# fixtures) and writes its answers to tests/integration/golden/rerank.jsonl, one line per
# request: {"request": ..., "response": ...}. it_rerank compares shimmy's scores with them.
# Usage: tools/rerank_golden.sh [BUILD_DIR]   (default build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
server=$root/deps/reference/build/bin/llama-server
model=$build/fixtures/reranker.gguf
golden=$root/tests/integration/golden
port=${PORT:-18977}
[ -f "$root/deps/reference/.complete" ] || { echo "run bench/build-reference.sh first" >&2; exit 1; }
[ -f "$model" ] || "$root/tools/fixtures.sh" "$build"
"$server" -m "$model" --rerank --port "$port" -c 512 -np 1 >/tmp/rerank_golden.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
    sleep 0.2
done
"$server" --version 2>&1 | head -n 2 | sed 's/^/# /' >&2
out=$golden/rerank.jsonl.tmp
: >"$out"
jq -c '.[]' "$golden/rerank_requests.json" | while read -r req; do
    res=$(curl -s "http://127.0.0.1:$port/v1/rerank" -d "$req")
    jq -cn --argjson q "$req" --argjson r "$res" '{request: $q, response: $r}' >>"$out"
done
mv "$out" "$golden/rerank.jsonl"
echo "rerank_golden.sh: $(wc -l <"$golden/rerank.jsonl") answers in $golden/rerank.jsonl"
