#!/usr/bin/env bash
# test-deps.sh: installs what the tests need beyond the build: the Vulkan backend module with
# Mesa's lavapipe (scripts/deps.sh --gpu vulkan) and the pinned npm clients
# (tests/clients/package-lock.json). Idempotent and offline once installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# The Vulkan module and Mesa's software Vulkan device (lavapipe): tests/integration/it_gpu_vulkan.c
# runs the real Vulkan backend on them, on machines without a GPU too.
"$root/scripts/deps.sh" --gpu vulkan
# A real browser for the chat page (tests/clients/web.test.mjs), a terminal for `shimmy run`
# (tests/clients/run.test.mjs) and faketime for the template goldens' pinned date
# (tests/integration/it_templates.c), from Debian.
# Prometheus (promtool and a real server scrape /metrics: it_ops), PyYAML and systemd-analyze
# (shimmy init's YAML and unit files: it_init).
missing=()
for p in chromium tmux faketime prometheus python3-yaml systemd; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        "${missing[@]}" >/dev/null || { echo "test-deps.sh: apt-get install ${missing[*]} failed" >&2; exit 1; }
fi
# llama.cpp's RPC module and rpc-server (tests/integration/it_rpc.c), compiled once per release.
"$root/scripts/build-rpc.sh"
cd "$root/tests/clients"
# npm writes node_modules/.package-lock.json last: without it (an emptied or half-written folder)
# the install runs again.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules ]; then
    npm ci --silent --no-audit --no-fund >/dev/null || { echo "test-deps.sh: npm ci failed in tests/clients" >&2; exit 1; }
    touch node_modules
fi
