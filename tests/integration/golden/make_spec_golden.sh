#!/usr/bin/env bash
# make_spec_golden.sh: regenerates spec.jsonl, llama-server's own greedy answers with and without
# speculative decoding (tests/integration/it_spec.c compares shimmy's with them).
# Usage: tests/integration/golden/make_spec_golden.sh   (needs the reference llama-server:
#        bench/build-reference.sh, which make bench runs)
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
models=${SHIMMY_TEST_MODELS:-$root/../shared/models}
model=$models/stories260K.gguf
ref=${REF_BIN:-$root/deps/reference/build/bin/llama-server}
out=$root/tests/integration/golden/spec.jsonl
. "$root/scripts/pins.env"
[ -x "$ref" ] || { echo "make_spec_golden.sh: no $ref (run bench/build-reference.sh)" >&2; exit 1; }

# NAME|ARGS (llama-server's flags; shimmy takes the same ones)
cases=(
    "none|"
    "draft-simple|--spec-type draft-simple --model-draft $model --spec-draft-n-max 4"
    "ngram-simple|--spec-type ngram-simple --spec-ngram-simple-size-n 2 --spec-ngram-simple-size-m 4"
)
# A prompt of about 800 tokens that repeats one passage (--ctx 2048 holds it and the answer).
reps=40
passage='Lily went to the park with her mom. She saw a big red ball and a small dog. '
max_tokens=100
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

ask() { # ARGS -> one JSON line
    local log pid
    log=$(mktemp)
    # shellcheck disable=SC2086
    "$ref" -m "$model" --host 127.0.0.1 --port "$port" -np 1 -c 2048 -t 1 --temp 0 $1 >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do
        curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
        sleep 0.1
    done
    python3 - "$port" "$reps" "$passage" "$max_tokens" "$2" <<'PY'
import json, sys, urllib.request
port, reps, passage, n, name = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
body = json.dumps({"prompt": passage * reps, "max_tokens": n, "temperature": 0}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions", body,
                             {"Content-Type": "application/json"})
r = json.load(urllib.request.urlopen(req, timeout=120))
t = r.get("timings", {})
print(json.dumps({"spec": name, "passage": passage, "reps": reps, "max_tokens": n,
                  "text": r["choices"][0]["text"], "draft_n": t.get("draft_n", 0),
                  "draft_n_accepted": t.get("draft_n_accepted", 0)}, ensure_ascii=False))
PY
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -f "$log"
}

{
    echo "# Greedy answers of stories260K.gguf (sha256 270cba1b...bd256d) by llama.cpp's own llama-server"
    echo "# $("$ref" --version 2>&1 | grep -m1 version) (bench/build-reference.sh, release $LLAMA_RELEASE),"
    echo "# -np 1 -c 2048 -t 1 --temp 0, POST /v1/completions, with the speculation flags named in"
    echo "# make_spec_golden.sh, on $(date -u +%Y-%m-%d). Obtained with: tests/integration/golden/make_spec_golden.sh"
    echo "# The prompt is the passage repeated reps times. draft_n, draft_n_accepted: llama-server's timings."
    for c in "${cases[@]}"; do
        ask "${c#*|}" "${c%%|*}"
    done
} >"$out"
echo "make_spec_golden.sh: wrote $out"
