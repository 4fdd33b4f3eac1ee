#!/usr/bin/env bash
# vision_golden.sh: regenerates tests/integration/golden/vision.jsonl, llama.cpp's own greedy
# answers for an image and a prompt on the vision fixture, the reference that
# tests/integration/it_vision.c holds shimmy to through every API (OpenAI image_url data: URI,
# Ollama images, Anthropic image blocks, Responses input_image).
#
# How: for each test image, llama-mtmd-cli built from the pinned source (bench/build-reference.sh
# builds deps/reference/build; `cmake --build deps/reference/build --target llama-mtmd-cli` adds
# the CLI) runs
#     llama-mtmd-cli -m vision-model.gguf --mmproj vision-mmproj.gguf --image IMG \
#         -p "What is in the picture?" --temp 0 -n 16 -t 2 -c 512
# on the fixtures of `make fixtures` (the model's own ChatML template; the CLI puts the image
# marker before the prompt, as shimmy does for an image part followed by a text part). The CLI
# prints a newline after the prompt and two after the answer: the answer is what lies between.
# Each line is {"image":"IMG","prompt":"...","max_tokens":16,"text":"..."}.
# golden/audio.jsonl likewise for the audio projector (audio-mmproj.gguf), one line for tone.wav
# and one for tone.mp3 (the same samples through LAME; libmtmd decodes both with miniaudio):
#     llama-mtmd-cli ... --mmproj audio-mmproj.gguf --audio tone.wav -p "What do you hear?" \
#         --temp 0 -n 16 -t 2 -c 2048
# as {"audio":"tone.wav","prompt":"...","max_tokens":16,"text":"..."}.
# golden/vision-qwen2vl.jsonl likewise for the M-RoPE fixture (qwen2vl-model.gguf with
# qwen2vl-mmproj.gguf: image tokens at fewer positions than tokens), the four images with
#     llama-mtmd-cli -m qwen2vl-model.gguf --mmproj qwen2vl-mmproj.gguf --image IMG \
#         -p "What is in the picture?" --temp 0 -n 16 -t 2 -c 512 --no-warmup
# (--no-warmup: clip.cpp would first encode a 1288x1288 dummy image, which changes nothing; shimmy
# skips it too).
#
# Committed golden: made with llama-mtmd-cli of llama.cpp release v0.4.0 (node-llama-cpp@3.21.1),
# fixtures of tools/fixtures.sh (gen_model --seed 2, gen_vision --seed 2: a seed whose answers are whole UTF-8 and differ by image).
#
# Usage: tools/vision_golden.sh [FIXTURES_DIR]   (default build/fixtures)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps=${SHIMMY_DEPS_DIR:-$root/deps}
fx=${1:-$root/build/fixtures}
cli=${LLAMA_MTMD_CLI:-$deps/reference/build/bin/llama-mtmd-cli}
out=$root/tests/integration/golden/vision.jsonl
prompt="What is in the picture?"
n=16
die() { echo "vision_golden.sh: error: $*" >&2; exit 1; }
[ -x "$cli" ] || die "$cli missing: run bench/build-reference.sh, then cmake --build $deps/reference/build --target llama-mtmd-cli"
[ -f "$fx/vision-model.gguf" ] || die "$fx/vision-model.gguf missing: run make fixtures"
[ -f "$fx/qwen2vl-model.gguf" ] || die "$fx/qwen2vl-model.gguf missing: run make fixtures"
command -v python3 >/dev/null || die "python3 is required"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# golden FILE KIND PROMPT CTX MODEL MMPROJ [EXTRA...] < names: one llama-mtmd-cli answer per
# media file named on stdin (KIND: image or audio), written to FILE as JSON lines.
golden() {
    local file=$1 kind=$2 p=$3 ctx=$4 model=$5 proj=$6 media
    shift 6
    : >"$file.tmp"
    while read -r media; do
        "$cli" -m "$fx/$model" --mmproj "$fx/$proj" "--$kind" "$fx/$media" -p "$p" --temp 0 \
            -n "$n" -t 2 -c "$ctx" "$@" 2>/dev/null >"$tmp" </dev/null ||
            die "llama-mtmd-cli failed on $media ($model)"
        python3 - "$tmp" "$kind" "$media" "$p" "$n" >>"$file.tmp" <<'PY'
import json, sys
raw = open(sys.argv[1], "rb").read()
assert raw.startswith(b"\n") and raw.endswith(b"\n\n"), raw
print(json.dumps({sys.argv[2]: sys.argv[3], "prompt": sys.argv[4], "max_tokens": int(sys.argv[5]),
                  "text": raw[1:-2].decode("utf-8")}, ensure_ascii=False))
PY
    done
    mv "$file.tmp" "$file"
}
images=$'pattern.png\npattern.jpg\nchecker.gif\nstripes.bmp'
golden "$out" image "$prompt" 512 vision-model.gguf vision-mmproj.gguf <<<"$images"
golden "$root/tests/integration/golden/audio.jsonl" audio "What do you hear?" 2048 \
    vision-model.gguf audio-mmproj.gguf <<<$'tone.wav\ntone.mp3'
golden "$root/tests/integration/golden/vision-qwen2vl.jsonl" image "$prompt" 512 \
    qwen2vl-model.gguf qwen2vl-mmproj.gguf --no-warmup <<<"$images"
echo "vision_golden.sh: wrote $out, golden/audio.jsonl and golden/vision-qwen2vl.jsonl" >&2
