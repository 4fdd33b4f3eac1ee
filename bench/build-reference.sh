#!/usr/bin/env bash
# build-reference.sh: builds the reference servers the benchmark compares shimmy against,
# llama.cpp's own llama-server and llama-bench, from the same pinned source shimmy uses
# (deps/llama.cpp, unpacked by scripts/deps.sh), with the same CPU settings as the prebuilt
# libraries in build/lib: shared libraries, loadable backends, one CPU module per x86 level
# chosen at run time, no -march=native.
#
# Output: deps/reference/build/bin/{llama-server,llama-bench,lib*.so}; the stamp file
# deps/reference/.complete records the flags, and a later run with the same flags does nothing.
#
# Usage: bench/build-reference.sh [extra cmake flags...]   (e.g. -DGGML_CUDA=ON for the GPU issue)
# Env:   JOBS=N (default: nproc), SHIMMY_DEPS_DIR (default: ./deps)
# Takes 10-20 minutes on 2 cores; run it niced in the background while doing something else.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps=${SHIMMY_DEPS_DIR:-$root/deps}
src=$deps/llama.cpp
out=$deps/reference/build
stamp=$deps/reference/.complete
jobs=${JOBS:-$(nproc)}

if [ ! -f "$src/CMakeLists.txt" ]; then
    "$root/scripts/deps.sh" --source-only
fi

# LLAMA_CURL is deprecated in this release (a no-op when OFF); it stays for older sources.
# GGML_OPENMP=OFF as in the prebuilt libraries (they do not link libgomp: ggml's own thread pool).
# With OpenMP, this release's AMX kernels die with SIGILL (tilezero in a libgomp worker) on Q8_0
# models in our VM, while the same kernels under ggml's thread pool run.
flags=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON
    -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_NATIVE=OFF -DGGML_OPENMP=OFF
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF "$@")
case "$(uname -m)" in
    x86_64) ;;
    *) flags=("${flags[@]/-DGGML_CPU_ALL_VARIANTS=ON/-DGGML_CPU_ALL_VARIANTS=OFF}") ;;
esac
want="${flags[*]}"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$out/bin/llama-server" ]; then
    echo "build-reference.sh: up to date: $out/bin"
    exit 0
fi
rm -f "$stamp"

cmake -S "$src" -B "$out" "${flags[@]}" >/dev/null

# llama-server does not link the backend modules (they are loaded at run time): build them
# as their own targets, found by name, instead of "all" (which builds every tool).
mapfile -t modules < <(cmake --build "$out" --target help |
    sed -n 's/^\.\.\. \(ggml-\(cpu\|cuda\|vulkan\|hip\|metal\|sycl\|opencl\|rpc\)[A-Za-z0-9_-]*\).*/\1/p' |
    grep -v -e '-feats$' | sort -u)
cmake --build "$out" -j "$jobs" --target llama-server llama-bench "${modules[@]}"

"$out/bin/llama-server" --version 2>&1 | head -n 3
echo "$want" >"$stamp"
echo "build-reference.sh: built into $out/bin"
