#!/bin/bash
# The start-up timeline of one `shimmy serve --model stories260K` (issue 10): strace -f -ttt of
# the server and its engine processes, until the first 200 from /health. Prints the trace's key
# lines in ms from the server's exec. Usage: bench/startup-timeline.sh PORT [serve flags...]
# (e.g. --in-process). Timings under strace and on a loaded machine are inflated: compare the
# order and overlap of the steps, not absolute figures.
set -u
B=${SHIMMY_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/shimmy}
M=${SHIMMY_MODEL:-$(cd "$(dirname "$0")/../.." && pwd)/shared/models/stories260K.gguf}
P=$1
shift
d=$(mktemp -d)
cd "$d" || exit 1
strace -f -ttt -e trace=execve,clone,clone3,socketpair,bind,listen,accept4,openat -e signal=none \
    -o "$d/trace" "$B" serve --bind "127.0.0.1:$P" --model "$M" "$@" >/dev/null 2>&1 &
S=$!
ok=0
for _ in $(seq 1 2000); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$P/health")" = 200 ] && ok=1 && break
    sleep 0.005
done
ready=$(date +%s.%N)
kill "$(pgrep -P "$S" -x shimmy)" 2>/dev/null # the server (strace would detach, not stop it)
wait "$S" 2>/dev/null
t0=$(head -1 "$d/trace" | awk '{print $2}')
awk -v t0="$t0" '{ $2 = sprintf("%7.1f", ($2 - t0) * 1000); print }' "$d/trace" | grep -v ENOENT |
    grep -E 'execve|clone\(|socketpair|bind\(|listen|accept4|libggml-cpu-(alderlake|zen4)|\.gguf|/dev"' |
    cut -c1-120
[ $ok = 1 ] && echo "first /health 200: $(echo "($ready - $t0) * 1000" | bc) ms" || echo "no /health 200"
rm -rf "$d"
