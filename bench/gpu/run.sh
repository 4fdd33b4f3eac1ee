#!/usr/bin/env bash
# bench/gpu/run.sh: shimmy on a real NVIDIA GPU, side by side with llama.cpp's own llama-server
# built from the same pinned source in the same run. NOT YET RUN ON A GPU (see docs/GPU.md).
#
# On the GPU machine (CUDA toolkit with nvcc, cmake, a C/C++ compiler; no network needed once
# deps/llama.cpp, the pinned source, is there: scripts/deps.sh --source-only fetches it):
#   1. builds the pinned llama.cpp once with -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCH
#      (default 90: H100/H200), GGML_BACKEND_DL, and llama-server: about 5 minutes on 16 cores;
#   2. builds shimmy against those libraries (its own build folder; build/ is left alone);
#   3. generates a model of a real shape with random weights (Llama-3.2-1B dimensions, Q8_0:
#      tools/gen_model writes f32/f16/q8_0, not Q4_K_M) and takes stories260K from the test models;
#   4. for each model: `shimmy gpu-info`; shimmy --gpu-layers auto (asserting from /health that
#      every layer is on CUDA0); shimmy --gpu-backend cpu; llama-server -ngl all; each serving the
#      same greedy requests one at a time, tokens/s from the server's own usage counts and the
#      wall time of each request.
# Results: $OUT/gpu-bench.md (or bench/gpu/results/), with the date, the card and the driver.
#
# Env: CUDA_ARCH (90), JOBS (nproc), GPU_BENCH_DIR (deps/gpu-bench: builds and models),
#      REQUESTS (5 per server and model), TOKENS (128 per request), SHIMMY_TEST_MODELS
#      (../shared/models), SKIP_CPU=1 (skip the CPU runs of the big model: slow on small hosts)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/scripts/pins.env"
cd "$root"
say() { echo "gpu-bench: $*" >&2; }
die() { say "error: $*"; exit 1; }

arch=${CUDA_ARCH:-90}
jobs=${JOBS:-$(nproc)}
work=${GPU_BENCH_DIR:-$root/deps/gpu-bench}
requests=${REQUESTS:-5}
tokens=${TOKENS:-128}
models_src=${SHIMMY_TEST_MODELS:-$root/../shared/models}
out_dir=${OUT:-$root/bench/gpu/results}
mkdir -p "$work" "$out_dir"
report=$out_dir/gpu-bench.md
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

command -v nvidia-smi >/dev/null || die "no nvidia-smi: is this an NVIDIA machine?"
command -v nvcc >/dev/null || export PATH=$PATH:/usr/local/cuda/bin
command -v nvcc >/dev/null || die "no nvcc: install the CUDA toolkit"
[ -f deps/llama.cpp/CMakeLists.txt ] || scripts/deps.sh --source-only

# ---- 1. llama.cpp with CUDA, once ----
llama=$work/llama
if [ ! -f "$llama/.complete-sm$arch" ]; then
    say "building llama.cpp (CUDA sm_$arch) with $jobs jobs"
    t0=$(date +%s)
    cmake -S deps/llama.cpp -B "$work/llama-build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
        -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_NATIVE=OFF \
        -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF >"$work/cmake.log"
    cmake --build "$work/llama-build" -j "$jobs" >"$work/build.log" 2>&1 || die "build failed: $work/build.log"
    rm -rf "$llama" && mkdir -p "$llama/lib" "$llama/include"
    find "$work/llama-build/bin" "$work/llama-build/src" "$work/llama-build/ggml/src" -maxdepth 3 \
        \( -name 'lib*.so' -o -name 'lib*.so.*' \) -exec cp -a {} "$llama/lib/" \;
    cp deps/llama.cpp/include/llama.h deps/llama.cpp/ggml/include/*.h "$llama/include/"
    echo "built in $(( $(date +%s) - t0 )) s" >"$llama/.complete-sm$arch"
fi
[ -f "$llama/lib/libggml-cuda.so" ] || die "the build produced no libggml-cuda.so"
server=$work/llama-build/bin/llama-server

# ---- 2. shimmy against those libraries ----
sbuild=$work/shimmy
cmake -S . -B "$sbuild" -DCMAKE_BUILD_TYPE=Release -DLLAMA_DIR="$llama" -DBUILD_TESTING=OFF >/dev/null
cmake --build "$sbuild" -j "$jobs" --target shimmy gen_model >/dev/null
shimmy=$sbuild/shimmy

# ---- 3. models ----
stories=$models_src/stories260K.gguf
[ -f "$stories" ] || die "missing $stories (set SHIMMY_TEST_MODELS)"
big=$work/llama-3.2-1b-shape-q8_0.gguf
if [ ! -s "$big" ]; then
    say "generating $big (Llama-3.2-1B dimensions, random weights)"
    "$sbuild/tools/gen_model" "$big.tmp" --vocab-from "$models_src/llama-2-tiny-random.gguf" \
        --layers 16 --embd 2048 --ff 8192 --heads 32 --kv-heads 8 --ctx 4096 --type q8_0 >/dev/null
    mv "$big.tmp" "$big"
fi

# ---- 4. measurements ----
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_health() { # wait_health PORT PID
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}

# measure PORT MODEL_NAME -> "tokens/s" over $requests greedy requests of $tokens tokens
measure() {
    local port=$1 name=$2 total_tok=0 total_ms=0
    curl -sf "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
        -d "{\"model\":\"$name\",\"prompt\":\"Warm up\",\"max_tokens\":8,\"temperature\":0}" >/dev/null
    for i in $(seq 1 "$requests"); do
        local t0 t1 body n
        t0=$(date +%s%N)
        body=$(curl -sf "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
            -d "{\"model\":\"$name\",\"prompt\":\"Once upon a time, story $i:\",\"max_tokens\":$tokens,\"temperature\":0,\"ignore_eos\":true}")
        t1=$(date +%s%N)
        n=$(echo "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["usage"]["completion_tokens"])')
        total_tok=$((total_tok + n))
        total_ms=$((total_ms + (t1 - t0) / 1000000))
    done
    python3 -c "print(f'{$total_tok * 1000 / max($total_ms, 1):.1f}')"
}

run_shimmy() { # run_shimmy MODEL_PATH LABEL ARGS... -> prints tokens/s; checks /health for auto
    local model=$1 label=$2; shift 2
    local port name log
    port=$(free_port)
    name=$(basename "$model" .gguf | tr 'A-Z' 'a-z')
    log=$work/shimmy-$label-$name.log
    "$shimmy" serve --bind "127.0.0.1:$port" --model "$model" --parallel 1 "$@" >"$log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_health "$port" "$pid" || die "shimmy ($label) did not start: $log"
    curl -sf "http://127.0.0.1:$port/v1/completions" -H 'Content-Type: application/json' \
        -d "{\"model\":\"$name\",\"prompt\":\"x\",\"max_tokens\":1}" >/dev/null
    curl -sf "http://127.0.0.1:$port/health" >"$work/health-$label-$name.json"
    if [ "$label" = auto ]; then
        python3 - "$work/health-$label-$name.json" <<'EOF' || die "not every layer is on CUDA0: $work/health-$label-$name.json"
import json, sys
m = json.load(open(sys.argv[1]))["models"][0]
cuda = [d for d in m["devices"] if d["name"] == "CUDA0"]
assert m["layers_offloaded"] == m["layers_total"] and cuda and cuda[0]["layers"] == m["layers_total"], m
EOF
    fi
    measure "$port" "$name"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_llama_server() { # run_llama_server MODEL_PATH -> tokens/s
    local model=$1 port log
    port=$(free_port)
    log=$work/llama-server-$(basename "$model" .gguf).log
    "$server" -m "$model" --host 127.0.0.1 --port "$port" -ngl 999 -np 1 -c 4096 >"$log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    wait_health "$port" "$pid" || die "llama-server did not start: $log"
    measure "$port" "$(basename "$model" .gguf)"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

card=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
{
    echo "# shimmy on $card, $(date -u +%Y-%m-%d)"
    echo
    echo "llama.cpp $LLAMA_RELEASE (pinned) built here with CUDA sm_$arch: $(cat "$llama/.complete-sm$arch")."
    echo "Greedy, one request at a time, $requests requests x $tokens tokens, after one warm-up."
    echo
    echo '```'
    "$shimmy" gpu-info
    echo '```'
    echo
    echo "| model | shimmy auto (GPU) tok/s | shimmy CPU tok/s | llama-server -ngl all tok/s | shimmy / llama-server |"
    echo "|---|---|---|---|---|"
} >"$report"
for model in "$stories" "$big"; do
    say "measuring $(basename "$model")"
    gpu=$(run_shimmy "$model" auto)
    cpu=n/a
    if [ "$model" = "$stories" ] || [ "${SKIP_CPU:-0}" != 1 ]; then
        cpu=$(run_shimmy "$model" cpu --gpu-backend cpu)
    fi
    ref=$(run_llama_server "$model")
    ratio=$(python3 -c "print(f'{$gpu / $ref:.2f}')")
    echo "| $(basename "$model") | $gpu | $cpu | $ref | $ratio |" >>"$report"
done
{
    echo
    echo "Placement reported by shimmy (/health) with --gpu-layers auto:"
    for f in "$work"/health-auto-*.json; do echo; echo "    $(cat "$f")"; done
} >>"$report"
cat "$report"
