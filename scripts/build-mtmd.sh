#!/usr/bin/env bash
# build-mtmd.sh: llama.cpp's multimodal library libmtmd (tools/mtmd: the CLIP-style projectors,
# image and audio preprocessing, and the helper that decodes image/audio files and evaluates
# media chunks) compiled from the pinned source that scripts/deps.sh unpacked into
# deps/llama.cpp, as one static library:
#
#   deps/mtmd/<release>/libmtmd.a   (+ include/mtmd.h, include/mtmd-helper.h)
#
# The prebuilt packages of the release do not contain libmtmd. It is linked into build/shimmy
# against the prebuilt libllama/libggml of the same release and called only from src/engine/
# (docs/adr/0008-media-input.md). Built once per release: a later run with the same release,
# compiler, flags and sources does nothing (stamp file). Video input (MTMD_VIDEO, which needs
# llama.cpp's subprocess support and an ffmpeg binary) is left out, as in a default build.
#
# Usage: scripts/build-mtmd.sh   (env: SHIMMY_DEPS_DIR, JOBS, CXX; ARCH=arm64 cross-compiles into
#        deps/mtmd/<release>-arm64 with aarch64-linux-gnu-g++, as build-chat.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps=${SHIMMY_DEPS_DIR:-$root/deps}
src=$deps/llama.cpp
# shellcheck source=pins.env
. "$root/scripts/pins.env"
release=$LLAMA_RELEASE
out=$deps/mtmd/$release
jobs=${JOBS:-$(nproc)}
cxx=${CXX:-g++}
if [ "${ARCH:-}" = arm64 ]; then
    out=$deps/mtmd/$release-arm64
    cxx=${CXX_ARM64:-aarch64-linux-gnu-g++}
fi

die() { echo "build-mtmd.sh: error: $*" >&2; exit 1; }

[ -f "$src/tools/mtmd/mtmd.cpp" ] || die "$src/tools/mtmd/mtmd.cpp missing: run scripts/deps.sh"
# Every translation unit of upstream's `mtmd` target (tools/mtmd/CMakeLists.txt) except the
# audio-generation helper (mtmd-helper-gen.cpp: text to speech, which shimmy does not offer),
# plus vendor/hash (the helper hashes media bytes into chunk ids).
mtmd_files=$(cd "$src/tools/mtmd" && ls mtmd.cpp mtmd-audio.cpp mtmd-image.cpp mtmd-helper.cpp clip.cpp models/*.cpp)
hash_files="hash.cpp xxhash/xxhash.c sha1/sha1.c sha256/sha256.c"
# -O2: the projector's preprocessing (resizing, normalising pixels, audio mel spectrograms) runs
# on the CPU in this code, so it is built for speed, unlike the chat module (-Os).
flags="-O2 -DNDEBUG -fPIC -ffunction-sections -fdata-sections -w"

want="$release $cxx $flags $(echo $mtmd_files) $(cd "$src" && git rev-parse HEAD 2>/dev/null || echo nogit)"
if [ -f "$out/.complete" ] && [ "$(cat "$out/.complete")" = "$want" ] && [ -f "$out/libmtmd.a" ]; then
    exit 0
fi
command -v "$cxx" >/dev/null || die "$cxx not found (apt-get install g++)"
echo "build-mtmd.sh: building llama.cpp's libmtmd ($release) into $out (two to four minutes on 2 cores)" >&2
rm -rf "$out.tmp"
mkdir -p "$out.tmp/obj" "$out.tmp/include"
t0=$(date +%s)
inc="-I$src/tools/mtmd -I$src/include -I$src/ggml/include -I$src/vendor -I$src/vendor/hash"
{
    for f in $mtmd_files; do echo "tools/mtmd/$f"; done
    for f in $hash_files; do echo "vendor/hash/$f"; done
} | xargs -P "$jobs" -I{} sh -c '
    o="$0/obj/$(echo "$1" | tr / _).o"
    # sha1.c is compiled as C++ upstream (its symbols live in a namespace)
    case "$1" in *.c) [ "${1##*/}" = sha1.c ] && lang="-x c++ -std=c++17" || lang="-x c" ;; *) lang="-std=c++17" ;; esac
    '"$cxx"' $lang '"$flags $inc"' -c "$2/$1" -o "$o" || { echo "build-mtmd.sh: $1 failed to compile" >&2; exit 255; }
' "$out.tmp" {} "$src" || die "compilation failed"
ar rcs "$out.tmp/libmtmd.a" "$out.tmp"/obj/*.o
cp "$src/tools/mtmd/mtmd.h" "$src/tools/mtmd/mtmd-helper.h" "$out.tmp/include/"
rm -rf "$out.tmp/obj" "$out"
mv "$out.tmp" "$out"
echo "$want" >"$out/.complete"
echo "build-mtmd.sh: done in $(($(date +%s) - t0)) s: $out/libmtmd.a ($(stat -c %s "$out/libmtmd.a") bytes)" >&2
