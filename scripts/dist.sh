#!/usr/bin/env bash
# dist.sh: the release tarball: shimmy-VERSION-linux-x64.tar.gz holding one folder
# shimmy-VERSION-linux-x64/ with the stripped binary `shimmy` and `lib/` (llama.cpp's libraries
# and every backend module; the binary finds them through its rpath $ORIGIN/lib). This is the
# layout the Dockerfile of `shimmy init docker` unpacks (ADD ... /opt/).
# Usage: scripts/dist.sh [BUILD_DIR [OUT_DIR]]   (defaults: build, BUILD_DIR)
set -euo pipefail
build=${1:-build}
out=${2:-$build}
[ -x "$build/shimmy" ] || { echo "dist.sh: $build/shimmy not found: run make first" >&2; exit 1; }
version=$("$build/shimmy" --version | awk '{print $2}')
name=shimmy-$version-linux-x64
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/lib"
strip -o "$stage/$name/shimmy" "$build/shimmy"
cp -a "$build"/lib/*.so* "$stage/$name/lib/"
mkdir -p "$out"
tar -C "$stage" -czf "$out/$name.tar.gz" "$name"
echo "$out/$name.tar.gz"
