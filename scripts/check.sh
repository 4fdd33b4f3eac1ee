#!/usr/bin/env bash
# check.sh: the habits of docs/ARCHITECTURE.md and /work/shared/STYLE.md, checked (make check).
#
#   format    clang-format --dry-run -Werror over src/, tests/ and tools/ (.clang-format)
#   layers    who may include whom (the table below): llama.h only in the engine's backend file and
#             its C++ edge, the C++ shim's header only from engine/, ggml/gguf headers only in
#             engine/, models/ and gpu/, engine.h the only door into engine/
#   limits    no numeric #define outside src/core/limits.h, except those in scripts/check-allow.txt
#   contract  every source file opens with its contract comment (a paragraph, not a bare title;
#             a .c file may point to its header's: "/* buf: see buf.h. */")
#   lint      cppcheck with the checks named in lint() below
#   debug     (not in the default set: it needs deps/, which a clean clone gets from `make`; .ci/run
#             runs it after the tests) every C/C++ file compiled as the Debug build compiles it (-O0),
#             with -Werror, objects discarded: without optimisation gcc knows less of each value's
#             range, so -Wformat-truncation warns where the Release build (-O3) is silent
#
# Usage: scripts/check.sh [PART...]   (default: all five; `fast` = format layers limits contract,
#        what the pre-commit hook runs). FORMAT_FILES="a.c b.h" limits the format check to those
#        files (the hook passes the staged ones). Exit 1 with one line per violation (FILE:LINE:
#        what is wrong), 0 when clean.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
fail=0
bad() { echo "$*"; fail=1; }

sources() { git ls-files "$@" 2>/dev/null || find "$@" -type f; }

check_format() {
    command -v clang-format >/dev/null || { bad "check: clang-format not found (apt-get install clang-format)"; return; }
    local files
    files=${FORMAT_FILES-$(sources 'src/*.c' 'src/*.h' 'src/*.cpp' 'tests/*.c' 'tests/*.h' \
        'tools/*.c' 'tools/*.h')}
    [ -n "$files" ] || return 0
    # shellcheck disable=SC2086
    clang-format --dry-run -Werror $files 2>&1 | grep -E '^[^ ].*: (error|warning):' |
        awk -F: '{ n[$1]++ } END { for (f in n) printf "%s: %d lines differ from .clang-format (make format)\n", f, n[f] }' |
        sort >/tmp/shimmy-check-format.$$ || true
    if [ -s /tmp/shimmy-check-format.$$ ]; then
        cat /tmp/shimmy-check-format.$$
        fail=1
    fi
    rm -f /tmp/shimmy-check-format.$$
}

# layer_of FILE -> core http api models gpu engine cli main
layer_of() {
    case "$1" in
    src/main.c) echo main ;;
    src/*/*) local d=${1#src/}; echo "${d%%/*}" ;;
    *) echo other ;;
    esac
}

# What each layer of src/ may include from the others (its own folder always). engine/ means
# engine/engine.h only: the one door; engine's internals stay inside engine/.
declare -A ALLOWED=(
    [core]="core"
    [http]="core"
    [gpu]="core"
    [engine]="core gpu"
    [models]="core engine/"
    [api]="core http models engine/"
    [cli]="core http api models gpu engine/"
    [web]=""
    [main]="cli core engine engine/"
)

check_layers() {
    local f layer line inc dir
    while IFS= read -r f; do
        layer=$(layer_of "$f")
        while IFS=: read -r line inc; do
            inc=${inc#*\#include }
            inc=${inc//[\"<>]/}
            inc=${inc%% *}
            case "$inc" in
            llama.h)
                case "$f" in
                src/engine/llama_backend.c | src/engine/*.cpp) ;;
                *) bad "$f:$line: includes llama.h: only src/engine/llama_backend.c and the C++ edge (src/engine/*.cpp) may" ;;
                esac ;;
            ggml*.h | gguf.h)
                case "$layer" in
                engine | models | gpu) ;;
                *) bad "$f:$line: includes $inc: ggml/gguf headers belong to engine/, models/ and gpu/ only" ;;
                esac ;;
            engine/llama_chat.h | engine/llama_mtmd.h | engine/mtmd*.h)
                [ "$layer" = engine ] || bad "$f:$line: includes $inc: the C++ shim's header is for engine/ only" ;;
            */*.h)
                dir=${inc%%/*}
                [ "$dir" != "$layer" ] || continue
                [ -d "src/$dir" ] || continue
                case " ${ALLOWED[$layer]:-} " in
                *" $dir "*) ;;
                *" $dir/ "*)
                    [ "$inc" = "$dir/$dir.h" ] ||
                        bad "$f:$line: includes $inc: outside $dir/ only $dir/$dir.h may be included (the one door)" ;;
                *) bad "$f:$line: includes $inc: $layer/ may not depend on $dir/ (scripts/check.sh, ALLOWED)" ;;
                esac ;;
            esac
        done < <(grep -n '^[[:space:]]*#[[:space:]]*include' "$f" || true)
    done < <(sources 'src/*.c' 'src/*.h' 'src/*.cpp')
}

# A numeric #define outside limits.h is a limit or default in the wrong place unless
# scripts/check-allow.txt names it ("limit FILE NAME reason").
check_limits() {
    local allow=scripts/check-allow.txt f line name seen=""
    while IFS=: read -r f line name; do
        if grep -qE "^limit[[:space:]]+$f[[:space:]]+$name([[:space:]]|$)" "$allow" 2>/dev/null; then
            seen="$seen $f:$name"
        else
            bad "$f:$line: #define $name: limits and defaults live in src/core/limits.h, each with its reason"
        fi
    done < <(sources 'src/*.c' 'src/*.h' 'src/*.cpp' | grep -v '^src/core/limits.h$' |
        xargs grep -nE '^[[:space:]]*#[[:space:]]*define[[:space:]]+[A-Z][A-Z0-9_]*[[:space:]]+\(*[0-9]' |
        sed -E 's/^([^:]+):([0-9]+):[[:space:]]*#[[:space:]]*define[[:space:]]+([A-Z0-9_]+).*/\1:\2:\3/')
    # An entry whose #define is gone must leave the list too: the list only shrinks.
    while read -r kind f name _; do
        [ "$kind" = limit ] || continue
        case " $seen " in
        *" $f:$name "*) ;;
        *) bad "$allow: 'limit $f $name' no longer matches a #define: remove the line" ;;
        esac
    done < <(grep -E '^limit[[:space:]]' "$allow" 2>/dev/null || true)
}

# The first thing in a file is a comment of at least 40 characters: what the file owns.
check_contract() {
    local f text
    while IFS= read -r f; do
        text=$(awk 'NR==1 && !/^(\/\*|\/\/)/ { exit } { print } /\*\// { exit } NR==1 && /^\/\// { exit }' "$f" |
            tr -d '\n' | sed -E 's#/\*|\*/|//|\*##g; s/[[:space:]]+/ /g')
        # "x.c: see x.h." is a contract too when the header carries it
        case "$text" in *"see "*.h*) [ -f "${f%.c}.h" ] && continue ;; esac
        if [ ${#text} -lt 40 ]; then
            bad "$f:1: no contract comment at the top (what the file owns, in a paragraph)"
        fi
    done < <(sources 'src/*.c' 'src/*.h' 'src/*.cpp' 'tests/*.c' 'tests/*.h' 'tools/*.c' 'tools/*.h')
}

# cppcheck, with the checks that find real bugs in C without a flood of style opinions:
#   warning      undefined behaviour, uninitialised reads, wrong printf arguments, leaks
#   portability  code whose meaning depends on the platform (pointer/int casts, sizes)
#   (error checks are always on.) Known false positives, each with its reason:
#   scripts/cppcheck-suppress.txt; jansson's macros: scripts/cppcheck.cfg. Not enabled: style and performance (opinions that would need
#   dozens of inline suppressions), unusedFunction (needs the whole program; the tests call
#   internals), missingInclude (system and llama.cpp headers are not analysed: config noise).
lint() {
    command -v cppcheck >/dev/null || { bad "check: cppcheck not found (apt-get install cppcheck)"; return; }
    local out
    out=$(cppcheck --quiet --std=c11 --enable=warning,portability --inline-suppr \
        --suppress=missingIncludeSystem --suppressions-list=scripts/cppcheck-suppress.txt \
        --library=scripts/cppcheck.cfg -D__GNUC__ -D_GNU_SOURCE -I src \
        --template='{file}:{line}: cppcheck {severity} [{id}]: {message}' \
        -j "${JOBS:-2}" $(sources 'src/*.c') 2>&1 || true)
    if [ -n "$out" ]; then
        echo "$out"
        fail=1
    fi
}

# The C files of the Debug build (a CMake configure in build-check/, cmake -DCMAKE_BUILD_TYPE=Debug
# -DSHIMMY_WERROR=ON, about 2 s), each compiled with its own command from compile_commands.json,
# the object thrown away; the C++ edge (llama_chat.cpp, about 16 s) first, beside the C files.
check_debug() {
    [ -f deps/llama/include/llama.h ] || { bad "check: debug needs deps/ (run make first)"; return; }
    local dir=build-check out
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
        -DSHIMMY_WERROR=ON >/dev/null || { bad "check: debug: cmake -B $dir failed"; return; }
    out=$(python3 - "$dir/compile_commands.json" "$root" "${JOBS:-2}" <<'PY'
import json, re, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
cmds, root, jobs = json.load(open(sys.argv[1])), sys.argv[2] + "/", int(sys.argv[3])
todo = {c["file"]: c for c in cmds if c["file"].endswith((".c", ".cpp")) and c["file"].startswith(root)}
def one(c):
    cmd = re.sub(r" -o \S+", " -o /dev/null", c["command"])
    r = subprocess.run(cmd, shell=True, cwd=c["directory"], capture_output=True, text=True)
    return r.stderr if r.returncode != 0 else ""
with ThreadPoolExecutor(jobs) as ex:
    for err in ex.map(one, sorted(todo.values(), key=lambda c: (not c["file"].endswith(".cpp"), c["file"]))):
        for line in err.splitlines():
            if ": error:" in line or ": warning:" in line:
                print(line.replace(root, ""))
PY
    )
    if [ -n "$out" ]; then
        echo "$out"
        fail=1
    fi
}

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(format layers limits contract lint)
[ "${parts[*]}" != fast ] || parts=(format layers limits contract)
for p in "${parts[@]}"; do
    case "$p" in
    format) check_format ;;
    layers) check_layers ;;
    limits) check_limits ;;
    contract) check_contract ;;
    lint) lint ;;
    debug) check_debug ;;
    *) echo "check.sh: unknown part '$p' (format layers limits contract lint debug fast)" >&2; exit 2 ;;
    esac
done
if [ $fail -eq 0 ]; then
    echo "check.sh: ${parts[*]}: clean"
fi
exit $fail
