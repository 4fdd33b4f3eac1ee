#!/usr/bin/env bash
# test-deps.sh: installs what the tests need beyond the build: the pinned npm clients
# (tests/clients/package-lock.json). Idempotent and offline once installed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/tests/clients"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    npm ci --silent --no-audit --no-fund >/dev/null || { echo "test-deps.sh: npm ci failed in tests/clients" >&2; exit 1; }
    touch node_modules
fi
