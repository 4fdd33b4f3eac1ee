#!/usr/bin/env bash
# fuzz.sh: builds the libFuzzer targets of tests/fuzz with clang (ASan + UBSan) into build-fuzz/
# and runs each for FUZZ_SECONDS (default 30) on a copy of its seed corpus; fails on any crash,
# leak, sanitizer report or timeout. Installs clang (apt) when missing.
#
# Usage: scripts/fuzz.sh [TARGET...]   (default: every tests/fuzz/fuzz_*.c)
#   FUZZ_SECONDS  seconds per target (30)     FUZZ_BUILD  build folder (build-fuzz)
#   FUZZ_FLAGS    extra libFuzzer flags       Findings: FUZZ_BUILD/fuzz/findings/<target>/
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-30}
say() { echo "fuzz.sh: $*" >&2; }

# clang with its libFuzzer runtime (Debian 12: clang + libclang-rt-14-dev)
has_libfuzzer() {
    command -v clang >/dev/null || return 1
    echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
        clang -x c -fsanitize=fuzzer,address,undefined -o /dev/null - 2>/dev/null
}
if ! has_libfuzzer; then
    say "installing clang (apt)"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
    has_libfuzzer || { say "error: clang cannot link -fsanitize=fuzzer"; exit 1; }
fi

"$root/scripts/deps.sh"
[ -f "$build/CMakeCache.txt" ] ||
    CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHIMMY_FUZZ=ON >/dev/null
cmake --build "$build" -j "$(nproc)" --target fuzz_all

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in "$root"/tests/fuzz/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
failed=()
for t in "${targets[@]}"; do
    work=$build/fuzz/work/$t findings=$build/fuzz/findings/$t
    mkdir -p "$work" "$findings"
    say "$t: ${seconds}s"
    # new inputs go to work/ (the seed corpus in the source tree is not touched)
    if "$build/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$findings/" ${FUZZ_FLAGS:-} \
        "$work" "$root/tests/fuzz/corpus/$t" >"$build/fuzz/$t.log" 2>&1; then
        grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' \
            "$build/fuzz/$t.log" | sed "s/^/  $t /" >&2 || true
    else
        failed+=("$t")
        tail -n 40 "$build/fuzz/$t.log" >&2
        say "$t FAILED: log $build/fuzz/$t.log, input in $findings/"
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    say "failed: ${failed[*]}"
    exit 1
fi
say "all targets ran ${seconds}s without a finding"
