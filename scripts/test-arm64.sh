#!/usr/bin/env bash
# test-arm64.sh: the linux-arm64 build tested on this x86-64 machine under qemu-user (make
# test-arm64; docs/RELEASE.md). Cross-builds build-arm64/ as scripts/dist.sh --arch arm64 does (the
# same configuration), builds the unit tests, runs them through qemu-aarch64 (ctest: the
# toolchain's CMAKE_CROSSCOMPILING_EMULATOR), then one golden completion: build-arm64/shimmy
# generate on stories260K, greedy, must print llama.cpp's own continuation
# (tests/integration/golden/stories260K.jsonl, the first case) byte for byte.
#
# Usage: scripts/test-arm64.sh   (env: JOBS, SHIMMY_TEST_MODELS, CTEST_FLAGS: e.g.
#        CTEST_FLAGS="-E unit/test_(chat|engine|offload|place)" also leaves out the two slowest
#        under qemu: test_engine about 15 minutes, test_chat about 6 (docs/RELEASE.md))
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-arm64
models=${SHIMMY_TEST_MODELS:-$root/../shared/models}
jobs=${JOBS:-$(nproc)}

die() { echo "test-arm64.sh: error: $*" >&2; exit 1; }

t0=$(date +%s)
"$root/scripts/dist.sh" --arch arm64 "$build" "$build/dist" >/dev/null
# The unit tests' fixtures come from the host's generators (tools/*.c; qemu-user cannot exec an
# arm64 program from a shell script without binfmt): build/tools, made by `make`.
[ -x "$root/build/tools/gguf_gen" ] || die "$root/build/tools missing: run make first"
cmake -S "$root" -B "$build" -DSHIMMY_TOOLS_DIR="$root/build/tools" >/dev/null
mapfile -t units < <(cd "$root/tests/unit" && ls test_*.c | sed 's/\.c$//')
cmake --build "$build" -j "$jobs" --target "${units[@]}" >/dev/null || die "building the unit tests failed"
t1=$(date +%s)
echo "test-arm64.sh: built in $((t1 - t0)) s: $(file -b "$build/shimmy" | cut -d, -f1-2)"

# test_offload and test_place need a Vulkan device (lavapipe through the Vulkan module): no arm64
# Vulkan package is pinned, so the arm64 build has no Vulkan module to test.
(cd "$build" && SHIMMY_TEST_MODELS=$models ctest --output-on-failure -j 2 -R '^unit/' \
    -E '^unit/test_(offload|place)$' ${CTEST_FLAGS:-}) ||
    die "unit tests failed under qemu"
t2=$(date +%s)
echo "test-arm64.sh: unit tests under qemu-aarch64 in $((t2 - t1)) s"

golden=$root/tests/integration/golden/stories260K.jsonl
line=$(grep -m1 '^{' "$golden")
prompt=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["prompt"])' "$line")
n=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["max_tokens"])' "$line")
want=$(python3 -c 'import json,sys; sys.stdout.write(json.loads(sys.argv[1])["text"])' "$line"; printf x)
want=${want%x}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# From the release archive, unpacked elsewhere: the rpath finds lib/ next to the binary.
tar xzf "$build"/dist/shimmy-*-linux-arm64.tar.gz -C "$tmp"
bin=$(echo "$tmp"/shimmy-*-linux-arm64/shimmy)
got=$(cd "$tmp" && HOME=$tmp qemu-aarch64 "$bin" generate "$models/stories260K.gguf" --prompt "$prompt" \
    --max-tokens "$n" --temperature 0 2>"$tmp/err"; printf x) || { cat "$tmp/err" >&2; die "generate failed under qemu"; }
got=${got%x}
if [ "$got" != "$want"$'\n' ]; then
    echo "want: $want" >&2
    echo "got:  $got" >&2
    die "the arm64 build's greedy completion differs from llama.cpp's golden"
fi
echo "test-arm64.sh: golden completion matches (\"$prompt\", $n tokens, from the unpacked archive) in $(($(date +%s) - t2)) s"
echo "test-arm64.sh: pass ($(($(date +%s) - t0)) s in all)"
