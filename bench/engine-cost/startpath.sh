#!/usr/bin/env bash
# startpath.sh BIN [serve flags...]: instructions (callgrind) of one `BIN serve --model
# stories260K` until its first /health 200, per process: the server and the engine process that
# serves the model (they run at the same time on two cores). Counted with `callgrind_control
# --dump` on each live process, so nothing after ready (shutdown, unload) is in the figures.
# NOMODEL=1: `BIN serve` without a model; the server until ready, then (3 s later, its start-up
# done) the warm engine process waiting for a model.
# Under valgrind /proc/self/exe is valgrind's own executable, so an engine process started by
# exec of it fails; only a forked one (since issue 10's fork) runs, under --trace-children.
# For a binary that execs its engine processes, NOMODEL=1 TRACE=no counts its server alone.
# Valgrind's CPU has no AVX-512: every binary picks the same CPU variant (cpu-haswell) here. The
# load of the machine does not change these counts.
set -u
B=$1
shift
M=${SHIMMY_MODEL:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/models/stories260K.gguf}
P=$((24000 + RANDOM % 1000))
d=$(mktemp -d)
cd "$d" || exit 1
model=(--model "$M")
[ -n "${NOMODEL:-}" ] && model=()
valgrind --tool=callgrind ${CG_FLAGS:-} --trace-children="${TRACE:-yes}" --callgrind-out-file="$d/cg.%p" \
    "$B" serve --bind "127.0.0.1:$P" "${model[@]}" "$@" >"$d/log" 2>&1 &
S=$! # valgrind runs the program in its own process: the server
for _ in $(seq 1 3000); do
    curl -sf -o /dev/null "http://127.0.0.1:$P/health" && break
    sleep 0.02
done
total() { # PID: the Ir of its last dump (callgrind_control -d writes cg.PID.N)
    callgrind_control -d "$1" >/dev/null 2>&1
    local f
    f=$(ls -t "$d"/cg."$1".* 2>/dev/null | head -1)
    [ -n "$f" ] && awk '/^summary:/ { print $2 }' "$f"
}
engine=$(curl -s "http://127.0.0.1:$P/health" | grep -o '"engine_pid":[0-9]*' | cut -d: -f2)
echo "server ($S) until ready: $(total "$S")"
[ -n "$engine" ] && echo "engine process ($engine) until ready: $(total "$engine")"
if [ -n "${NOMODEL:-}" ]; then
    sleep 3
    for c in $(pgrep -P "$S"); do echo "warm engine process ($c), 3 s later: $(total "$c")"; done
fi
kill "$S" 2>/dev/null
wait "$S" 2>/dev/null
rm -rf "$d"
