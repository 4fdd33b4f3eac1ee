#!/usr/bin/env bash
# build-llama.sh: the from-source alternative to the prebuilt libraries that scripts/deps.sh
# fetches. Builds the same pinned release (scripts/pins.env, from node-llama-cpp's git bundle,
# unpacked by deps.sh into deps/llama.cpp) as shared libraries with loadable backends, and
# installs them into deps/llama/lib where the shimmy build picks them up.
#
# Usage: scripts/build-llama.sh [extra cmake flags...]
#   e.g. scripts/build-llama.sh -DGGML_VULKAN=ON     (adds libggml-vulkan.so)
#        scripts/build-llama.sh -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90
# Env:  CPU_VARIANTS=all (default: one CPU module per x86 level, chosen at run time by score)
#       CPU_VARIANTS=generic (one portable CPU module; faster to build)
#       JOBS=N (default: nproc)
# OpenMP stays off, as in the prebuilt libraries: ggml's own threadpool, no libgomp to ship.
# Takes about 10 minutes on 2 cores with all CPU variants. Then: rm -rf build && make
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps=${SHIMMY_DEPS_DIR:-$root/deps}
src=$deps/llama.cpp
out=$deps/llama-build
jobs=${JOBS:-$(nproc)}

if [ ! -f "$src/CMakeLists.txt" ]; then
    "$root/scripts/deps.sh" --source-only
fi

cpu_flags=(-DGGML_NATIVE=OFF -DGGML_CPU_ALL_VARIANTS=ON)
if [ "${CPU_VARIANTS:-all}" = generic ]; then
    cpu_flags=(-DGGML_NATIVE=OFF)
fi
case "$(uname -m)" in
    x86_64) ;;
    *) cpu_flags=(-DGGML_NATIVE=OFF) ;;  # CPU variants are an x86 feature
esac

cmake -S "$src" -B "$out" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
    -DGGML_BACKEND_DL=ON -DGGML_OPENMP=OFF "${cpu_flags[@]}" \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF "$@"
# With GGML_BACKEND_DL every backend module (ggml-cpu-*, ggml-vulkan, ggml-cuda...) is a
# dependency of ggml, so building llama builds them all.
cmake --build "$out" -j "$jobs" --target llama

lib=$deps/llama/lib
rm -rf "$lib"
mkdir -p "$lib"
find "$out/bin" "$out/src" "$out/ggml/src" -maxdepth 3 \( -name 'lib*.so' -o -name 'lib*.so.*' \) \
    -exec cp -a {} "$lib/" \; 2>/dev/null
mkdir -p "$deps/llama/include"
cp "$src/include/llama.h" "$src/ggml/include/"*.h "$deps/llama/include/"
. "$root/scripts/pins.env"
echo "$LLAMA_RELEASE from source" >"$deps/.complete-v1"
echo "build-llama.sh: installed into $lib:"
ls "$lib"
echo "build-llama.sh: now rebuild shimmy: rm -rf build && make"
