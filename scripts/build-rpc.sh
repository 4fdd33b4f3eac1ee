#!/usr/bin/env bash
# build-rpc.sh: llama.cpp's RPC backend module and its rpc-server tool, compiled from the pinned
# source that scripts/deps.sh unpacked into deps/llama.cpp, against the prebuilt libggml-base.so /
# libggml.so of the same release (the npm packages have no RPC module):
#
#   deps/rpc/<release>/libggml-rpc.so   a backend module like libggml-vulkan.so: installed into
#                                       deps/llama/lib and <build>/lib, loaded at run time
#   deps/rpc/<release>/rpc-server       llama.cpp's own server, copied next to <build>/shimmy
#                                       (`shimmy rpc-server` does the same from shimmy's binary)
#
# Only when asked (`make deps RPC=1`) or for the tests (scripts/test-deps.sh): a plain `make` does
# not build it. Built once per release: a later run with the same release and sources only copies
# (stamp file). About 20 s of compiling on 2 cores (two C++ files for the module, one for the tool).
#
# Usage: scripts/build-rpc.sh   (env: SHIMMY_DEPS_DIR, SHIMMY_BUILD_DIR, CXX)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps=${SHIMMY_DEPS_DIR:-$root/deps}
src=$deps/llama.cpp
lib=$deps/llama/lib
# shellcheck source=pins.env
. "$root/scripts/pins.env"
release=$LLAMA_RELEASE
out=$deps/rpc/$release
cxx=${CXX:-g++}
build=${SHIMMY_BUILD_DIR:-$root/build}

die() { echo "build-rpc.sh: error: $*" >&2; exit 1; }

# As ggml's CMake builds a dynamically loaded backend (GGML_BACKEND_DL): exports ggml_backend_init.
defs="-DGGML_BACKEND_DL -DGGML_BACKEND_BUILD -DGGML_BACKEND_SHARED -DGGML_SHARED -DGGML_BUILD"
flags="-std=c++17 -O2 -DNDEBUG -fPIC -w"

[ -f "$src/ggml/src/ggml-rpc/ggml-rpc.cpp" ] || die "$src/ggml/src/ggml-rpc missing: run scripts/deps.sh"
[ -f "$lib/libggml-base.so" ] || die "$lib/libggml-base.so missing: run scripts/deps.sh"
libggml=$(ls "$lib"/libggml.v*.so "$lib"/libggml.so 2>/dev/null | head -n 1 || true)
[ -n "$libggml" ] || die "no libggml.so in $lib: run scripts/deps.sh"
want="$release $cxx $flags $defs $(cd "$src" && git rev-parse HEAD 2>/dev/null || echo nogit) $(sha256sum "$lib/libggml-base.so" | cut -d' ' -f1)"

build_all() {
    command -v "$cxx" >/dev/null || die "$cxx not found (apt-get install g++)"
    echo "build-rpc.sh: building llama.cpp's RPC module and rpc-server ($release) into $out" >&2
    local t0 tmp=$out.tmp
    t0=$(date +%s)
    rm -rf "$tmp"
    mkdir -p "$tmp"
    local inc="-I$src/ggml/include -I$src/ggml/src -I$src/ggml/src/ggml-rpc"
    # shellcheck disable=SC2086
    {
        $cxx $flags $defs $inc -c "$src/ggml/src/ggml-rpc/ggml-rpc.cpp" -o "$tmp/ggml-rpc.o" &
        local p1=$!
        $cxx $flags $defs $inc -c "$src/ggml/src/ggml-rpc/transport.cpp" -o "$tmp/transport.o" \
            || die "transport.cpp failed to compile"
        wait $p1 || die "ggml-rpc.cpp failed to compile"
        $cxx -shared -o "$tmp/libggml-rpc.so" "$tmp/ggml-rpc.o" "$tmp/transport.o" \
            "$lib/libggml-base.so" -Wl,-rpath,'$ORIGIN' -Wl,--no-undefined -pthread \
            || die "linking libggml-rpc.so failed"
        $cxx -std=c++17 -O2 -DNDEBUG -w -I"$src/ggml/include" "$src/tools/rpc/rpc-server.cpp" \
            -o "$tmp/rpc-server" "$libggml" "$lib/libggml-base.so" -Wl,-rpath,'$ORIGIN/lib' \
            -pthread || die "rpc-server failed to compile"
    }
    rm -f "$tmp"/*.o
    rm -rf "$out"
    mv "$tmp" "$out"
    echo "$want" >"$out/.complete"
    echo "build-rpc.sh: done in $(($(date +%s) - t0)) s" >&2
}

# install FILE DIR: copy unless identical, atomically (running shimmy processes scan that folder).
install_to() {
    local f=$1 dir=$2 name
    name=$(basename "$f")
    [ -d "$dir" ] || return 0
    cmp -s "$f" "$dir/$name" && return 0
    cp "$f" "$dir/.$name.tmp" && mv "$dir/.$name.tmp" "$dir/$name"
    echo "build-rpc.sh: installed $name into $dir" >&2
}

if [ ! -f "$out/.complete" ] || [ "$(cat "$out/.complete")" != "$want" ] ||
    [ ! -f "$out/libggml-rpc.so" ] || [ ! -f "$out/rpc-server" ]; then
    build_all
fi
install_to "$out/libggml-rpc.so" "$lib"
install_to "$out/libggml-rpc.so" "$build/lib"
if [ -d "$build/lib" ]; then install_to "$out/rpc-server" "$build"; fi
