#!/usr/bin/env bash
# build-chat.sh: llama.cpp's chat module (common/chat*, common/jinja/*, the PEG and auto parsers,
# json-schema-to-grammar and what they need of common/) compiled from the pinned source that
# scripts/deps.sh unpacked into deps/llama.cpp, as one static library:
#
#   deps/chat/<release>/libllama-chat.a
#
# It is linked into build/shimmy against the prebuilt libllama/libggml of the same release and
# called only from src/engine/llama_chat.cpp (docs/adr/0004-chat-module.md). Built once per
# release: a later run with the same release and sources does nothing (stamp file). About one
# minute and a half on 2 cores.
#
# Usage: scripts/build-chat.sh   (env: SHIMMY_DEPS_DIR, JOBS, CXX; ARCH=arm64 cross-compiles into
#        deps/chat/<release>-arm64 with aarch64-linux-gnu-g++)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps=${SHIMMY_DEPS_DIR:-$root/deps}
src=$deps/llama.cpp
# shellcheck source=pins.env
. "$root/scripts/pins.env"
release=$LLAMA_RELEASE
out=$deps/chat/$release
jobs=${JOBS:-$(nproc)}
cxx=${CXX:-g++}
# ARCH=arm64: cross-compiled for linux-arm64 (scripts/dist.sh) into deps/chat/<release>-arm64
if [ "${ARCH:-}" = arm64 ]; then
    out=$deps/chat/$release-arm64
    cxx=${CXX_ARM64:-aarch64-linux-gnu-g++}
fi

die() { echo "build-chat.sh: error: $*" >&2; exit 1; }

# The chat module and the parts of common/ it calls. common.cpp brings in more (sampling,
# fitting, speculative decoding) that shimmy never calls: the objects are built with
# -ffunction-sections and the final link drops what nothing reaches (--gc-sections).
files="chat.cpp chat-auto-parser-generator.cpp chat-auto-parser-helpers.cpp chat-diff-analyzer.cpp
chat-peg-parser.cpp peg-parser.cpp json-schema-to-grammar.cpp json.cpp unicode.cpp trie.cpp
log.cpp common.cpp jinja/lexer.cpp jinja/parser.cpp jinja/runtime.cpp jinja/value.cpp
jinja/string.cpp jinja/caps.cpp"
# -Os: rendering a template and parsing an answer cost microseconds next to a decode step, and
# -Os makes build/shimmy 0.5 MB smaller than -O2 (1.56 MB against 2.05 MB stripped).
flags="-std=c++17 -Os -DNDEBUG -fPIC -ffunction-sections -fdata-sections -w"

[ -f "$src/common/chat.cpp" ] || die "$src/common/chat.cpp missing: run scripts/deps.sh"
want="$release $cxx $flags $files $(cd "$src" && git rev-parse HEAD 2>/dev/null || echo nogit)"
if [ -f "$out/.complete" ] && [ "$(cat "$out/.complete")" = "$want" ] && [ -f "$out/libllama-chat.a" ]; then
    exit 0
fi
command -v "$cxx" >/dev/null || die "$cxx not found (apt-get install g++, or g++-aarch64-linux-gnu for ARCH=arm64)"
echo "build-chat.sh: building llama.cpp's chat module ($release) into $out (about a minute)" >&2
rm -rf "$out.tmp"
mkdir -p "$out.tmp/obj"
t0=$(date +%s)
for f in $files; do echo "$f"; done | xargs -P "$jobs" -I{} sh -c '
    o="$0/obj/$(echo "$1" | tr / _).o"
    '"$cxx $flags"' -I"$2/common" -I"$2/include" -I"$2/ggml/include" -I"$2/vendor" \
        -c "$2/common/$1" -o "$o" || { echo "build-chat.sh: $1 failed to compile" >&2; exit 255; }
' "$out.tmp" {} "$src" || die "compilation failed"
ar rcs "$out.tmp/libllama-chat.a" "$out.tmp"/obj/*.o
rm -rf "$out.tmp/obj" "$out"
mv "$out.tmp" "$out"
echo "$want" >"$out/.complete"
echo "build-chat.sh: done in $(($(date +%s) - t0)) s: $out/libllama-chat.a ($(stat -c %s "$out/libllama-chat.a") bytes)" >&2
