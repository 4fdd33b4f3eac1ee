#!/usr/bin/env bash
# llama_ref.sh: llama.cpp's own greedy continuation of a prompt, the reference for shimmy's
# golden tests (tests/integration/golden/).
#
# Builds llama.cpp's example program examples/simple/simple.cpp from the pinned source that
# scripts/deps.sh unpacked into deps/llama.cpp, unmodified, with g++ against the pinned prebuilt
# libraries in deps/llama/lib (the llama.cpp release pinned in scripts/pins.env). simple.cpp
# calls ggml_backend_load_all(), which looks for the CPU backend modules (libggml-cpu-*.so) next
# to the executable, so the program is placed in a folder together with links to those libraries.
#
# simple.cpp tokenizes the prompt with BOS (add_special = true, parse_special = true), samples
# greedily, and prints the prompt's pieces followed by each generated piece, then "\n". This
# script runs it twice, with -n 0 (prompt echo only) and with -n N, and prints only what the
# second run added: the generated text, byte for byte, without a trailing newline.
#
# Usage: tools/llama_ref.sh MODEL.gguf N_TOKENS PROMPT
#   env LLAMA_REF_DIR: where the program is built (default build/llama_ref)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "llama_ref.sh: error: $*" >&2; exit 1; }

[ $# -eq 3 ] || die "usage: $0 MODEL.gguf N_TOKENS PROMPT"
model=$1 n=$2 prompt=$3
[ -f "$model" ] || die "model not found: $model"
[[ "$n" =~ ^[0-9]+$ ]] || die "N_TOKENS must be a number: $n"

src=$root/deps/llama.cpp/examples/simple/simple.cpp
inc=$root/deps/llama/include
lib=$root/deps/llama/lib
[ -f "$src" ] || die "$src missing: run scripts/deps.sh"
. "$root/scripts/pins.env"
rel=$LLAMA_RELEASE
[ -f "$lib/libllama.$rel.so" ] || die "$lib/libllama.$rel.so missing: run scripts/deps.sh"

out=${LLAMA_REF_DIR:-$root/build/llama_ref}
bin=$out/llama-simple
mkdir -p "$out"
for so in "$lib"/*.so; do ln -sf "$so" "$out/$(basename "$so")"; done
if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ] || [ "$0" -nt "$bin" ]; then
    g++ -std=c++17 -O2 -w -I"$inc" "$src" -o "$bin.tmp" \
        "$out/libllama.$rel.so" "$out/libggml.$rel.so" "$out/libggml-base.so" \
        -Wl,-rpath,'$ORIGIN' || die "compiling $src failed"
    mv "$bin.tmp" "$bin"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" -m "$model" -n 0 "$prompt" >"$tmp/echo" 2>"$tmp/echo.err" \
    || { cat "$tmp/echo.err" >&2; die "llama-simple -n 0 failed"; }
"$bin" -m "$model" -n "$n" "$prompt" >"$tmp/full" 2>"$tmp/full.err" \
    || { cat "$tmp/full.err" >&2; die "llama-simple -n $n failed"; }

# echo = PIECES "\n", full = PIECES GENERATED "\n": print GENERATED exactly.
python3 - "$tmp/echo" "$tmp/full" <<'EOF'
import sys
echo = open(sys.argv[1], "rb").read()
full = open(sys.argv[2], "rb").read()
assert echo.endswith(b"\n") and full.endswith(b"\n"), "unexpected llama-simple output"
head = echo[:-1]
assert full.startswith(head), "prompt echo differs between runs"
sys.stdout.buffer.write(full[len(head):-1])
EOF
