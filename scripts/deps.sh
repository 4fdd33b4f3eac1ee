#!/usr/bin/env bash
# deps.sh: install everything shimmy needs to build and test, pinned and checksummed.
#
#   apt packages (only those missing), then llama.cpp release v0.4.0 from npm:
#     node-llama-cpp@3.21.1             -> llama/gitRelease.bundle (headers and full source)
#     @node-llama-cpp/linux-x64@3.21.1  -> prebuilt shared libraries (loadable CPU backends)
#   Each tarball is checked against the sha256 below before anything is unpacked.
#   Results are cached in deps/: a second run touches no network and takes well under 5 s.
#
# Usage: scripts/deps.sh [--no-apt|--source-only]     (SHIMMY_DEPS_DIR overrides deps/)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
deps=${SHIMMY_DEPS_DIR:-$root/deps}
stamp=$deps/.complete-v1

LLAMA_RELEASE=v0.4.0
PKG_SRC=node-llama-cpp@3.21.1
PKG_SRC_SHA256=7a231d6bafa14142a1cbed9893d4ec5bc6041b2a5f5939a623accaab4203c11f
PKG_LIB=@node-llama-cpp/linux-x64@3.21.1
PKG_LIB_SHA256=4b5b65a8b2611d8af94349b02d815c0f424a30a0a19aef2be5db25ecfef6730f

APT_PKGS="build-essential cmake pkg-config git libmicrohttpd-dev libjansson-dev \
libcmocka-dev libcurl4-openssl-dev libssl-dev"

die() { echo "deps.sh: error: $*" >&2; exit 1; }
say() { echo "deps.sh: $*" >&2; }

install_apt() {
    local missing=()
    for p in $APT_PKGS; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    # Node.js (with npm) may come from elsewhere than Debian: only install Debian's when absent.
    command -v npm >/dev/null || missing+=(nodejs npm)
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing apt packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq || die "apt-get update failed: is the Debian mirror reachable?"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

# fetch PKG SHA256 -> prints the path of the verified tarball in the cache
fetch() {
    local pkg=$1 want=$2 dir=$deps/cache
    local name
    name=$(echo "${pkg%@*}" | sed 's|^@||; s|/|-|')-${pkg##*@}.tgz
    mkdir -p "$dir"
    if [ ! -f "$dir/$name" ]; then
        say "downloading $pkg from the npm registry"
        (cd "$dir" && npm pack --silent "$pkg" >/dev/null 2>"$dir/npm.err") \
            || die "could not download $pkg: the npm registry is unreachable or refused ($(tail -n 2 "$dir/npm.err" | tr '\n' ' '))"
    fi
    [ -f "$dir/$name" ] || die "npm pack $pkg did not produce $name"
    local got
    got=$(sha256sum "$dir/$name" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
        rm -f "$dir/$name"
        die "checksum mismatch for $pkg: expected $want, got $got (file removed; refusing to use it)"
    fi
    echo "$dir/$name"
}

unpack_source() {
    local tgz=$1 tmp
    tmp=$(mktemp -d)
    tar xzf "$tgz" -C "$tmp" package/llama/gitRelease.bundle
    rm -rf "$deps/llama.cpp"
    git clone -q "$tmp/package/llama/gitRelease.bundle" "$deps/llama.cpp" 2>/dev/null \
        || die "could not unpack the llama.cpp git bundle"
    rm -rf "$tmp"
    mkdir -p "$deps/llama/include"
    cp "$deps/llama.cpp/include/llama.h" "$deps/llama.cpp/ggml/include/"*.h "$deps/llama/include/"
}

unpack_libs() {
    local tgz=$1 tmp
    tmp=$(mktemp -d)
    tar xzf "$tgz" -C "$tmp"
    rm -rf "$deps/llama/lib"
    mkdir -p "$deps/llama/lib"
    cp "$tmp"/package/bins/linux-x64/lib*.so "$deps/llama/lib/"
    rm -f "$deps/llama/lib/libllama-common.so"   # C++ helper library of node-llama-cpp, not needed
    rm -rf "$tmp"
}

main() {
    case "${1:-}" in
    --source-only)  # for scripts/build-llama.sh: only the pinned source, any architecture
        install_apt
        unpack_source "$(fetch "$PKG_SRC" "$PKG_SRC_SHA256")"
        exit 0 ;;
    --no-apt) ;;
    *) install_apt ;;
    esac
    if [ -f "$stamp" ]; then
        exit 0
    fi
    [ "$(uname -m)" = x86_64 ] || die "no prebuilt llama.cpp libraries for $(uname -m): run scripts/build-llama.sh instead"
    command -v npm >/dev/null || die "npm is required (apt-get install npm)"
    local src lib
    src=$(fetch "$PKG_SRC" "$PKG_SRC_SHA256")
    lib=$(fetch "$PKG_LIB" "$PKG_LIB_SHA256")
    unpack_source "$src"
    unpack_libs "$lib"
    echo "$LLAMA_RELEASE prebuilt $PKG_LIB" >"$stamp"
    say "llama.cpp $LLAMA_RELEASE ready in $deps/llama"
}

main "$@"
