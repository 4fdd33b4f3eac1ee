#!/usr/bin/env bash
# run.sh: the `make bench` entry. Ensures everything the benchmark needs (wrk and gnuplot from
# apt, $BUILD/shimmy (BUILD: the make build folder, default build), the reference llama-server, the bench models), runs bench/bench.mjs and
# renders bench/results/throughput.png.
#
# Env: BENCH_QUICK=1   one run per server, 64 tokens per request, 4-turn agent sessions
#      BENCH_ONLY=sessions|models|spec|rpc   one part of the benchmark only (docs/BENCHMARKS.md
#                      untouched); rpc (RPC servers vs local, start-up with the Vulkan module) runs only so
#      BUILD           the build folder shimmy is made in and run from (default build)
#      SHIMMY_BIN      a shimmy binary to run as it is, not rebuilt (its folder has lib/, tools/)
#      BENCH_F16=1     also benchmark the F16 version of the realistic model
#      BENCH_TIMEOUT   seconds for the whole measurement (default 3600)
#      and everything bench/bench.mjs reads (runs, slots, context, extra server arguments).
# The first run also builds the reference (bench/build-reference.sh, 10-20 minutes on 2 cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { echo "bench: $*" >&2; }
die() { say "$*"; exit 1; }

shared_models=${SHIMMY_TEST_MODELS:-../shared/models}
models_dir=${BENCH_MODELS_DIR:-deps/bench-models}
out_dir=${BENCH_OUT_DIR:-bench/results}
build=${BUILD:-build}

# ---- tools ----
missing=()
if [ "${BENCH_ONLY:-}" != sessions ] && [ "${BENCH_ONLY:-}" != spec ] && [ "${BENCH_ONLY:-}" != rpc ]; then # those need neither
    command -v wrk >/dev/null || missing+=(wrk)
    command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
fi
command -v node >/dev/null || missing+=(nodejs)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    say "installing ${missing[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
        { $sudo apt-get update -q >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } ||
        die "could not install ${missing[*]}"
fi

# ---- builds ----
if [ -n "${SHIMMY_BIN:-}" ]; then # a given shimmy (e.g. a build of another commit): used as it is
    build=$(dirname "$SHIMMY_BIN")
else
    make -s all BUILD="$build"
    export SHIMMY_BIN=$build/shimmy
fi
if [ "${BENCH_ONLY:-}" = rpc ] && [ ! -f "$build/lib/libggml-rpc.so" ]; then
    scripts/build-rpc.sh || die "the RPC module could not be built (scripts/build-rpc.sh)"
fi
[ -x "$build/tools/gen_model" ] || cmake --build "$build" --target gen_model >/dev/null
bench/build-reference.sh

# ---- models ----
[ -f "$shared_models/stories260K.gguf" ] || die "missing $shared_models/stories260K.gguf (set SHIMMY_TEST_MODELS)"
[ -f "$shared_models/llama-2-tiny-random.gguf" ] || die "missing $shared_models/llama-2-tiny-random.gguf"
mkdir -p "$models_dir"
gen() { # gen TYPE -> path of the 16-layer 1024-wide Llama-shaped model (about 0.27 B parameters)
    local f=$models_dir/llama-1024x16-$1.gguf
    if [ ! -s "$f" ]; then
        say "generating $f"
        "$build/tools/gen_model" "$f.tmp" --vocab-from "$shared_models/llama-2-tiny-random.gguf" \
            --layers 16 --embd 1024 --ff 2816 --heads 16 --kv-heads 16 --type "$1" >/dev/null
        mv "$f.tmp" "$f"
    fi
    echo "$f"
}
if [ "${BENCH_ONLY:-}" = sessions ]; then
    models="$shared_models/stories260K.gguf"
else
    models="$shared_models/stories260K.gguf;$(gen q8_0)"
    [ "${BENCH_F16:-0}" = 1 ] && models="$models;$(gen f16)"
fi

# ---- AMX probe ----
# This llama.cpp release built here with GCC 12 dies with SIGILL (tilezero) in its AMX kernels
# for Q8_0 on some machines (seen in a KVM guest) while the prebuilt modules shimmy uses run.
# When the reference dies like that, neither server gets the AMX module (both take the next best).
if [ -z "${BENCH_CPU_EXCLUDE+x}" ] && [ "${BENCH_ONLY:-}" != sessions ]; then
    ref_bin=deps/reference/build/bin
    rc=0
    timeout 120 "$ref_bin/llama-bench" -m "$(gen q8_0)" -t 2 -p 32 -n 2 -r 1 >/dev/null 2>&1 || rc=$?
    if [ "$rc" = 132 ] && [ -f "$ref_bin/libggml-cpu-sapphirerapids.so" ]; then
        say "the reference dies on AMX kernels here (SIGILL): excluding libggml-cpu-sapphirerapids.so for both"
        export BENCH_CPU_EXCLUDE=sapphirerapids
    fi
fi

# ---- measure ----
node_pid=
cleanup() { [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null; true; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
BENCH_MODELS=$models BENCH_OUT_DIR=$out_dir timeout -k 10 "${BENCH_TIMEOUT:-3600}" node bench/bench.mjs &
node_pid=$!
wait "$node_pid"
node_pid=

# ---- plot ----
case "${BENCH_ONLY:-}" in sessions | spec | rpc) exit 0 ;; esac
names=$(grep '^# ' "$out_dir/throughput.dat" | grep -v '^# streams' | sed 's/^# //' | tr '\n' ' ')
n=$(echo "$names" | wc -w)
timeout 60 gnuplot -e "dat='$out_dir/throughput.dat'; out='$out_dir/throughput.png'; n=$n; titles='$names'" \
    bench/throughput.gp
say "plot: $out_dir/throughput.png"
