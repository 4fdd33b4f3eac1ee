#!/usr/bin/env bash
# gates.sh: the release gates (make gates; docs/RELEASE.md). Each prints its figure and passes or
# fails; the script exits 1 when any fails.
#
#   size      build/shimmy stripped under SIZE_MAX bytes (1 MiB). The chat module is a shared
#             library beside libllama (build/lib/libshimmy-cxx.so, ADR 0012), not in the binary.
#   startup   `shimmy serve` with no model, exec to the first 200 on GET /health: median of
#             STARTUP_RUNS runs under STARTUP_MAX_MS (50 ms) (scripts/startup_time.py), in wall
#             time, or in the CPU time of shimmy's threads with STARTUP_GATE=cpu (what .ci/run
#             uses: CI machines are shared, and wall time there measures the neighbours).
#             STARTUP_MAX_MS=0 reports without gating.
#   golden    the golden files are those committed (git diff) and the tests comparing shimmy with
#             them pass: it_completions (llama.cpp's greedy continuations of stories260K) and
#             it_templates (llama-server's rendering of every template of the release).
#
# Usage: scripts/gates.sh [size|startup|golden ...]   (env: BUILD, SIZE_MAX, STARTUP_RUNS,
#        STARTUP_MAX_MS, STARTUP_GATE)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD:-build}
size_max=${SIZE_MAX:-1048576}
runs=${STARTUP_RUNS:-15}
startup_max=${STARTUP_MAX_MS:-50}
startup_gate=${STARTUP_GATE:-wall}
fail=0

[ -x "$build/shimmy" ] || { echo "gates.sh: $build/shimmy not found: run make first" >&2; exit 1; }

gate_size() {
    local tmp size
    tmp=$(mktemp)
    strip -o "$tmp" "$build/shimmy"
    size=$(stat -c %s "$tmp")
    rm -f "$tmp"
    if [ "$size" -lt "$size_max" ]; then
        echo "gate size: pass: $build/shimmy stripped is $size bytes (limit $size_max)"
    else
        echo "gate size: FAIL: $build/shimmy stripped is $size bytes, the limit is $size_max"
        fail=1
    fi
}

gate_startup() {
    local args=(--runs "$runs" --gate "$startup_gate")
    [ "$startup_max" = 0 ] || args+=(--max-ms "$startup_max")
    echo "gate startup: load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
    if scripts/startup_time.py "$build/shimmy" "${args[@]}"; then
        echo "gate startup: pass$([ "$startup_max" = 0 ] && echo " (not gated: STARTUP_MAX_MS=0)" || echo ": median $startup_gate time under $startup_max ms")"
    else
        echo "gate startup: FAIL: median $startup_gate time above $startup_max ms"
        fail=1
    fi
}

gate_golden() {
    if ! git diff --quiet HEAD -- tests/integration/golden; then
        echo "gate golden: FAIL: tests/integration/golden differs from the commit (git diff)"
        fail=1
        return
    fi
    if (cd "$build" && ctest -R 'integration/(it_completions|it_templates)$' --output-on-failure); then
        echo "gate golden: pass: it_completions and it_templates match the committed goldens"
    else
        echo "gate golden: FAIL: shimmy's output differs from the goldens"
        fail=1
    fi
}

gates=("$@")
[ ${#gates[@]} -gt 0 ] || gates=(size startup golden)
for g in "${gates[@]}"; do
    case "$g" in
    size) gate_size ;;
    startup) gate_startup ;;
    golden) gate_golden ;;
    *) echo "gates.sh: unknown gate '$g' (size startup golden)" >&2; exit 2 ;;
    esac
done
exit $fail
