#!/usr/bin/env bash
# spec-callgrind.sh: instruction counts of `shimmy generate` (one thread, greedy) with and without
# speculative decoding, which machine load does not disturb (docs/BENCHMARKS.md). Prints one line
# per case: name, instructions (callgrind's "Collected"), md5 of the output text (the same text
# with and without speculation). The 1-token cases hold the load and the prompt: subtract them.
# Usage: bench/spec-callgrind.sh [BUILD]   (needs valgrind; about 5 minutes)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/${1:-build}/shimmy
model=${SHIMMY_TEST_MODELS:-$root/../shared/models}/stories260K.gguf
command -v valgrind >/dev/null || { echo "spec-callgrind.sh: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
[ -f "$model" ] || { echo "spec-callgrind.sh: missing $model" >&2; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
run() { # NAME ARGS...
    local name=$1 ir
    shift
    ir=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" generate stories260k \
        --model "$model" --threads 1 --temperature 0 --prompt "Once upon a time" "$@" 2>&1 \
        >"$out" | awk '/Collected/ {print $4}')
    echo "$name $ir $(md5sum <"$out" | cut -c1-8)"
}
run plain-1 --max-tokens 1
run plain-129 --max-tokens 129
run ngram-129 --max-tokens 129 --spec-type ngram-simple --spec-ngram-simple-size-n 4 \
    --spec-ngram-simple-size-m 16
run self-draft-1 --max-tokens 1 --model-draft "$model" --draft-max 4
run self-draft-129 --max-tokens 129 --model-draft "$model" --draft-max 4
