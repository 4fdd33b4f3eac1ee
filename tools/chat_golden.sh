#!/usr/bin/env bash
# chat_golden.sh: regenerates tests/integration/golden/templates.jsonl, llama-server's own
# rendering of every chat template of the pinned llama.cpp source, the reference that
# tests/integration/it_templates.c holds shimmy's POST /apply-template to, byte for byte.
#
# How: for each deps/llama.cpp/models/templates/*.jinja (sorted, C locale), start the reference
# llama-server built from the same pinned source (bench/build-reference.sh) on loopback:
#     TZ=UTC faketime -m '2026-01-15 12:00:00' llama-server --jinja --chat-template-file T \
#         -m stories260K.gguf --host 127.0.0.1 --port P -c 256 -np 1 -t 1
# (stories260K: BOS <s>, EOS </s>; the clock pinned for templates that print today's date, which
# shimmy's side gets as SHIMMY_CHAT_NOW=1768478400), then POST /apply-template once per scenario
# of tests/integration/golden/template_requests.json. A 200 is recorded as
#     {"template":"T.jinja","scenario":"a","prompt":"..."}
# anything else (some templates raise on some inputs) as
#     {"template":"T.jinja","scenario":"b","status":400,"error":"<error.message>"}
# and shimmy must then refuse too (any 4xx). Lines come sorted by template, then scenario; the
# file starts with '#' lines naming the reference's version string and the pinned time.
#
# Committed goldens: made with llama-server "version: 0.4.0-dev (build 1, commit 80fb11a)" built by
# bench/build-reference.sh from llama.cpp release v0.4.0 (node-llama-cpp@3.21.1), clock pinned to
# 2026-01-15 12:00:00 UTC (unix 1768478400).
#
# Usage: tools/chat_golden.sh   (needs bench/build-reference.sh done; installs faketime when
#        missing). Env: LLAMA_SERVER (default deps/reference/build/bin/llama-server),
#        SHIMMY_TEST_MODELS (default ../shared/models), SHIMMY_DEPS_DIR (default deps).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/pins.env"
deps=${SHIMMY_DEPS_DIR:-$root/deps}
server=${LLAMA_SERVER:-$deps/reference/build/bin/llama-server}
templates=$deps/llama.cpp/models/templates
models=${SHIMMY_TEST_MODELS:-$root/../shared/models}
model=$models/stories260K.gguf
requests=$root/tests/integration/golden/template_requests.json
out=$root/tests/integration/golden/templates.jsonl
pin='2026-01-15 12:00:00'
start_deadline_s=60

die() { echo "chat_golden.sh: error: $*" >&2; exit 1; }
say() { echo "chat_golden.sh: $*" >&2; }

[ -x "$server" ] || die "$server missing: run bench/build-reference.sh"
[ -f "$model" ] || die "$model missing (set SHIMMY_TEST_MODELS)"
[ -d "$templates" ] || die "$templates missing: run scripts/deps.sh"
command -v jq >/dev/null || die "jq is required (apt-get install jq)"
command -v curl >/dev/null || die "curl is required (apt-get install curl)"
if ! command -v faketime >/dev/null; then
    sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
    say "installing faketime (apt)"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null ||
        { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null; } ||
        die "could not install faketime"
fi

export TZ=UTC
# The wall clock starts at the pinned time and runs on; monotonic clocks, which the server's
# timeouts use, stay real. -m: the thread-safe libfaketime (llama-server has many threads).
export FAKETIME_DONT_FAKE_MONOTONIC=1
fake=(faketime -m "$pin")
[ "$("${fake[@]}" date +%s)" = 1768478400 ] || die "faketime does not pin the clock to $pin UTC"

tmp=$(mktemp -d)
pid=
cleanup() {
    [ -z "$pid" ] || stop_server
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_server TEMPLATE: starts llama-server, sets pid and port; returns 1 when it exited.
# faketime forks the program and does not pass signals on: both run in their own session
# (setsid), whose process group stop_server ends.
start_server() {
    port=$(free_port)
    setsid "${fake[@]}" "$server" --jinja --chat-template-file "$1" -m "$model" --host 127.0.0.1 \
        --port "$port" -c 256 -np 1 -t 1 >"$tmp/server.log" 2>&1 &
    pid=$!
    local end=$((SECONDS + start_deadline_s))
    while [ $SECONDS -lt $end ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null || true
            pid=
            return 1
        fi
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ] && return 0
        sleep 0.1
    done
    cat "$tmp/server.log" >&2
    die "llama-server did not become healthy within ${start_deadline_s}s ($1)"
}

stop_server() {
    kill -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
}

# record TEMPLATE_NAME SCENARIO: POSTs the scenario's body, prints one JSON line.
record() {
    jq -c --arg s "$2" '.[] | select(.scenario == $s) | .body' "$requests" >"$tmp/req.json"
    local code
    code=$(curl -s -o "$tmp/resp.json" -w '%{http_code}' -H 'Content-Type: application/json' \
        --data-binary @"$tmp/req.json" "http://127.0.0.1:$port/apply-template")
    if [ "$code" = 200 ]; then
        jq -c --arg t "$1" --arg s "$2" '{template: $t, scenario: $s, prompt: .prompt}' "$tmp/resp.json"
    else
        jq -c --arg t "$1" --arg s "$2" --argjson c "$code" \
            '{template: $t, scenario: $s, status: $c, error: (.error.message // tostring)}' "$tmp/resp.json"
    fi
}

version=$("$server" --version 2>&1 | grep -m1 '^version:' || true)
[ -n "$version" ] || die "cannot read the version of $server"
mapfile -t scenarios < <(jq -r '.[].scenario' "$requests")
mapfile -t files < <(find "$templates" -maxdepth 1 -name '*.jinja' -printf '%f\n' | LC_ALL=C sort)
[ ${#files[@]} -gt 0 ] || die "no templates in $templates"

{
    echo "# llama-server's POST /apply-template for every template of deps/llama.cpp/models/templates"
    echo "# (${#files[@]} files) and every scenario of template_requests.json, made by tools/chat_golden.sh"
    echo "# on $(date -u +%Y-%m-%d) with llama-server \"$version\""
    echo "# (bench/build-reference.sh: llama.cpp release $LLAMA_RELEASE from node-llama-cpp@$NLC_VERSION),"
    echo "# --jinja -m stories260K.gguf -c 256 -np 1, TZ=UTC, the clock pinned by faketime to"
    echo "# $pin UTC (unix 1768478400; shimmy's side: SHIMMY_CHAT_NOW=1768478400)."
    echo "# One JSON object per line: template, scenario, then prompt (200) or status and error."
    for f in "${files[@]}"; do
        start_server "$templates/$f" || {
            cat "$tmp/server.log" >&2
            die "llama-server refused to start with $f"
        }
        for s in "${scenarios[@]}"; do
            record "$f" "$s"
        done
        stop_server
        say "$f done"
    done
} >"$out.tmp"
mv "$out.tmp" "$out"
say "wrote $out ($(grep -vc '^#' "$out") lines)"
