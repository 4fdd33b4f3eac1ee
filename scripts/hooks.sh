#!/usr/bin/env bash
# hooks.sh: installs the git pre-commit hook (make hooks). The hook runs the fast part of
# scripts/check.sh: clang-format over the staged C/C++ files only, then the layering, limit and
# contract-comment checks over the tree (a few seconds). `git commit --no-verify` skips it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hooks=$(git -C "$root" rev-parse --git-path hooks)
case "$hooks" in /*) ;; *) hooks=$root/$hooks ;; esac
mkdir -p "$hooks"
cat >"$hooks/pre-commit.tmp" <<'HOOK'
#!/usr/bin/env bash
# shimmy pre-commit hook (scripts/hooks.sh): the fast part of make check.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
staged=$(git diff --cached --name-only --diff-filter=ACMR -- 'src/*.c' 'src/*.h' 'src/*.cpp' \
    'tests/*.c' 'tests/*.h' 'tools/*.c' 'tools/*.h' | tr '\n' ' ')
if ! FORMAT_FILES="$staged" "$root/scripts/check.sh" format layers limits contract; then
    echo "pre-commit: fix the above (make format rewrites the formatting), or commit with --no-verify" >&2
    exit 1
fi
HOOK
chmod +x "$hooks/pre-commit.tmp"
mv "$hooks/pre-commit.tmp" "$hooks/pre-commit"
echo "hooks.sh: installed $hooks/pre-commit (format of staged files, layers, limits, contract)"
