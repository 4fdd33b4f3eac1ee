#!/usr/bin/env bash
# deb.sh: the Debian package (make deb, scripts/dist.sh --deb) tested without installing it, as
# ctest's release/deb: the package is built from this build (SHIMMY_BUILD_DIR) into a temporary
# folder, its control fields are checked (name, version, architecture, a Depends that names every
# package of its RUNTIME-DEPS.txt), it is unpacked with dpkg-deb -x into another folder, and the
# unpacked usr/bin/shimmy (a link to usr/lib/shimmy/shimmy) must print its version, load its
# libraries from usr/lib/shimmy/lib, and print llama.cpp's own greedy continuation of the first
# golden case (tests/integration/golden/stories260K.jsonl) byte for byte.
set -euo pipefail
root=${SHIMMY_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${SHIMMY_BUILD_DIR:-$root/build}
models=${SHIMMY_TEST_MODELS:-$root/../shared/models}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
die() { echo "deb.sh: error: $*" >&2; exit 1; }

"$root/scripts/dist.sh" --no-gpu --deb "$build" "$tmp/dist" >"$tmp/dist.log" 2>&1 ||
    { cat "$tmp/dist.log" >&2; die "scripts/dist.sh --deb failed"; }
version=$(sed -n 's/^project(shimmy VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
deb=$tmp/dist/shimmy_${version}_amd64.deb
[ -f "$deb" ] || die "$deb was not made: $(ls "$tmp/dist")"
grep -q "shimmy_${version}_amd64.deb" "$tmp/dist/SHA256SUMS" || die "SHA256SUMS leaves the package out"

field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = shimmy ] || die "Package is '$(field Package)'"
[ "$(field Version)" = "$version" ] || die "Version is '$(field Version)', not $version"
[ "$(field Architecture)" = amd64 ] || die "Architecture is '$(field Architecture)'"
dpkg-deb -x "$deb" "$tmp/root"
doc=$tmp/root/usr/share/doc/shimmy
[ -s "$doc/copyright" ] || die "no usr/share/doc/shimmy/copyright"
depends=", $(field Depends),"
npkg=0
for p in $(grep -v '^#' "$doc/RUNTIME-DEPS.txt"); do
    case "$depends" in *", $p,"*) npkg=$((npkg + 1)) ;; *) die "Depends ($depends) lacks $p" ;; esac
done
[ "$npkg" -gt 0 ] || die "RUNTIME-DEPS.txt names no package"

bin=$tmp/root/usr/bin/shimmy
[ -L "$bin" ] && [ "$(readlink "$bin")" = ../lib/shimmy/shimmy ] || die "usr/bin/shimmy is not the link"
out=$("$bin" --version) || die "shimmy --version failed"
case "$out" in *"$version"*) ;; *) die "shimmy --version says '$out', not $version" ;; esac
# llama.cpp's libraries come from the package, not from the build folder
lib=$(ldd "$tmp/root/usr/lib/shimmy/shimmy" | awk '/libllama/ {print $3}')
[ "$lib" = "$tmp/root/usr/lib/shimmy/lib/$(basename "$lib")" ] || die "libllama resolves to '$lib'"

line=$(grep -m1 '^{' "$root/tests/integration/golden/stories260K.jsonl")
prompt=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["prompt"])' "$line")
n=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["max_tokens"])' "$line")
want=$(python3 -c 'import json,sys; sys.stdout.write(json.loads(sys.argv[1])["text"])' "$line"; printf x)
want=${want%x}
got=$(cd "$tmp" && HOME=$tmp "$bin" generate "$models/stories260K.gguf" --prompt "$prompt" \
    --max-tokens "$n" --temperature 0 2>"$tmp/err"; printf x) ||
    { cat "$tmp/err" >&2; die "generate from the unpacked package failed"; }
got=${got%x}
if [ "$got" != "$want"$'\n' ]; then
    echo "want: $want" >&2
    echo "got:  $got" >&2
    die "the unpacked package's greedy completion differs from llama.cpp's golden"
fi
echo "deb.sh: $(basename "$deb") ($(stat -c %s "$deb") bytes): control fields, $npkg packages in Depends, --version and the golden completion from the unpacked package: pass"
