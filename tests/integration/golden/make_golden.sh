#!/usr/bin/env bash
# make_golden.sh: regenerates stories260K.jsonl from llama.cpp itself (tools/llama_ref.sh).
# Usage: tests/integration/golden/make_golden.sh   (from anywhere; needs scripts/deps.sh done)
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
models=${SHIMMY_TEST_MODELS:-$root/../shared/models}
model=$models/stories260K.gguf
out=$root/tests/integration/golden/stories260K.jsonl
. "$root/scripts/pins.env"

cases=(
    "64|Once upon a time"
    "48|The little dog"
    "32|Lily and Tom went to the"
)

{
    echo "# Greedy continuations of stories260K.gguf (sha256 270cba1b...bd256d) by llama.cpp itself."
    echo "# Obtained with: tests/integration/golden/make_golden.sh, which runs for each case"
    echo "#   tools/llama_ref.sh \$SHIMMY_TEST_MODELS/stories260K.gguf MAX_TOKENS PROMPT"
    echo "# i.e. llama.cpp's unmodified examples/simple/simple.cpp (greedy sampler, prompt tokenized"
    echo "# with BOS) built with g++ against llama.cpp release $LLAMA_RELEASE (prebuilt libraries from"
    echo "# @node-llama-cpp/linux-x64@$NLC_VERSION, source from node-llama-cpp@$NLC_VERSION), CPU backend,"
    echo "# on $(date -u +%Y-%m-%d). \"text\" is exactly the bytes simple.cpp printed after the prompt echo."
    echo "# One JSON object per line: prompt, max_tokens, text."
    for c in "${cases[@]}"; do
        n=${c%%|*} prompt=${c#*|}
        text=$("$root/tools/llama_ref.sh" "$model" "$n" "$prompt"; printf x)
        text=${text%x}
        python3 -c 'import json,sys; print(json.dumps({"prompt": sys.argv[1], "max_tokens": int(sys.argv[2]), "text": sys.argv[3]}, ensure_ascii=False))' "$prompt" "$n" "$text"
    done
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out" >&2
