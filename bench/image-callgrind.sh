#!/usr/bin/env bash
# image-callgrind.sh: instructions one image request costs the server process, shimmy against
# llama-server on the same files (the vision fixture of `make fixtures`: a LLaVA-type projector,
# 4 tokens per image), counted by callgrind, which machine load does not disturb. Each server runs
# under valgrind with one thread, one slot and no host-RAM prompt cache (shimmy --in-process: an
# engine process would be spawned from /proc/self/exe, valgrind's own); one warm-up request, then
# N (REQS, 8) OpenAI chat requests with an image and "What is in the picture?", max_tokens 1
# (time to first token), rotating over four images so that each evaluates its image (the chat
# template's text before it is reused, as in both servers). Prints per request: the total and the
# parts (the chat template rendered by llama.cpp's chat module, of which its differential analysis
# of the template, which it redoes on every request; mtmd_tokenize, the projector's encode,
# llama_decode).
# Usage: bench/image-callgrind.sh [BUILD]   (needs valgrind and deps/reference/build/bin/llama-server
# from bench/build-reference.sh; about a minute)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/${1:-build}
fx=$build/fixtures
ref=${LLAMA_SERVER:-$root/deps/reference/build/bin/llama-server}
n=${REQS:-8}
port=${PORT:-18736}
die() { echo "image-callgrind.sh: $*" >&2; exit 1; }
command -v valgrind >/dev/null || die "valgrind not found (apt-get install valgrind)"
[ -f "$fx/vision-model.gguf" ] || die "$fx/vision-model.gguf missing: run make fixtures"
[ -x "$ref" ] || die "$ref missing: run bench/build-reference.sh"
d=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$d"' EXIT
imgs=(pattern.png checker.gif stripes.bmp pattern.jpg)
mimes=(image/png image/gif image/bmp image/jpeg)
for k in 0 1 2 3; do
    printf '{"model":"vision-model","temperature":0,"max_tokens":1,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:%s;base64,%s"}},{"type":"text","text":"What is in the picture?"}]}]}' \
        "${mimes[$k]}" "$(base64 -w0 "$root/tests/data/vision/${imgs[$k]}")" >"$d/body$k"
done
req() { curl -sf -o /dev/null -H 'Content-Type: application/json' --data-binary "@$d/body$1" \
    "http://127.0.0.1:$port/v1/chat/completions"; }

measure() { # NAME CMD...
    local name=$1
    shift
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$d/cg.$name" "$@" \
        >"$d/log.$name" 2>&1 &
    pid=$!
    local end=$((SECONDS + 300))
    until curl -sf -o /dev/null "http://127.0.0.1:$port/health"; do
        [ $SECONDS -lt $end ] || { cat "$d/log.$name" >&2; die "$name not ready"; }
        sleep 0.5
    done
    req 3
    callgrind_control -i on "$pid" >/dev/null 2>&1
    for i in $(seq 0 $((n - 1))); do req $((i % 4)); done
    callgrind_control -i off "$pid" >/dev/null 2>&1
    kill -INT "$pid"
    wait "$pid" || true
    pid=
    local total
    total=$(awk '/Collected/ {print $4}' "$d/log.$name")
    part() { # the inclusive count of the first function matching $1, per request
        callgrind_annotate --inclusive=yes "$d/cg.$name" 2>/dev/null |
            awk -v re="$1" -v n="$n" '$0 ~ re {c = $1; gsub(",", "", c); printf "%.2f", c / n / 1e6; exit}'
    }
    printf '%-12s %6.2f M per request: chat template %s M (its analysis %s M), mtmd_tokenize %s M, image encode %s M, llama_decode %s M\n' \
        "$name" "$(awk -v t="$total" -v n="$n" 'BEGIN {print t / n / 1e6}')" \
        "$(part ':common_chat_templates_apply\(')" "$(part ':autoparser::autoparser::analyze_template')" \
        "$(part ':mtmd_tokenize ')" \
        "$(part ':clip_image_batch_encode\(')" "$(part ':llama_decode ')"
}

measure shimmy "$build/shimmy" serve --bind "127.0.0.1:$port" --model "$fx/vision-model.gguf" \
    --mmproj "$fx/vision-mmproj.gguf" --in-process --threads 1 --parallel 1 --cache-ram 0 \
    --ctx 512
LD_LIBRARY_PATH=$(dirname "$ref") measure llama-server "$ref" --port "$port" \
    -m "$fx/vision-model.gguf" --mmproj "$fx/vision-mmproj.gguf" -t 1 -np 1 --cache-ram 0 \
    -c 512 --no-warmup
