#!/usr/bin/env bash
# deps.sh: install everything shimmy needs to build and test, pinned and checksummed.
#
#   apt packages (only those missing), then llama.cpp release v0.4.0 from npm:
#     node-llama-cpp@3.21.1             -> llama/gitRelease.bundle (headers and full source)
#     @node-llama-cpp/linux-x64@3.21.1  -> prebuilt shared libraries (loadable CPU backends)
#   Each tarball is checked against the sha256 below before anything is unpacked.
#   Then llama.cpp's chat module is compiled from that source once (scripts/build-chat.sh,
#   deps/chat/<release>/libllama-chat.a).
#   Results are cached in deps/: a second run touches no network and takes well under 5 s.
#
#   --gpu vulkan|cuda (make deps GPU=vulkan) adds a GPU backend module from the same release:
#     @node-llama-cpp/linux-x64-vulkan@3.21.1 -> libggml-vulkan.so (+ apt libvulkan1,
#                                                 mesa-vulkan-drivers)
#     @node-llama-cpp/linux-x64-cuda@3.21.1   -> libggml-cuda.so (needs an NVIDIA driver and the
#                                                 CUDA 13 runtime libraries at run time)
#   The package's libggml-base.so must be identical (sha256) to ours, else nothing is installed.
#   The module goes into deps/llama/lib and, when it exists, build/lib (SHIMMY_BUILD_DIR).
#
# Usage: scripts/deps.sh [--no-apt|--source-only] [--gpu vulkan|cuda]
#        (SHIMMY_DEPS_DIR overrides deps/)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
deps=${SHIMMY_DEPS_DIR:-$root/deps}
stamp=$deps/.complete-v1

LLAMA_RELEASE=v0.4.0
PKG_SRC=node-llama-cpp@3.21.1
PKG_SRC_SHA256=7a231d6bafa14142a1cbed9893d4ec5bc6041b2a5f5939a623accaab4203c11f
PKG_LIB=@node-llama-cpp/linux-x64@3.21.1
PKG_LIB_SHA256=4b5b65a8b2611d8af94349b02d815c0f424a30a0a19aef2be5db25ecfef6730f

PKG_VULKAN=@node-llama-cpp/linux-x64-vulkan@3.21.1
PKG_VULKAN_SHA256=4877be47f01586481615aec277c23c7f660592ce66eec2753ff1dcc967a9a0d2
PKG_CUDA=@node-llama-cpp/linux-x64-cuda@3.21.1
PKG_CUDA_SHA256=499b4012541cb3e01b3d35e18e7dd2dc546174979494b02dbcc0a6667ed6b7d9
# libggml-base.so of @node-llama-cpp/linux-x64@3.21.1, which every module must be built against
GGML_BASE_SHA256=1eba024559799447e34687e12b6794e79ad3768a1b3d2cbca9fadc829f0f85c7
APT_VULKAN="libvulkan1 mesa-vulkan-drivers"

APT_PKGS="build-essential cmake pkg-config git libmicrohttpd-dev libjansson-dev \
libcmocka-dev libcurl4-openssl-dev libedit-dev libwslay-dev"

die() { echo "deps.sh: error: $*" >&2; exit 1; }
say() { echo "deps.sh: $*" >&2; }

install_apt() {
    local missing=()
    for p in ${1:-$APT_PKGS}; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    # Node.js (with npm) may come from elsewhere than Debian: only install Debian's when absent.
    [ -n "${1:-}" ] || command -v npm >/dev/null || missing+=(nodejs npm)
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

# install_gpu vulkan|cuda: the backend module of the pinned release, checked and installed.
install_gpu() {
    local gpu=$1 pkg sum module tmp
    case "$gpu" in
    vulkan) pkg=$PKG_VULKAN sum=$PKG_VULKAN_SHA256 module=libggml-vulkan.so ;;
    cuda) pkg=$PKG_CUDA sum=$PKG_CUDA_SHA256 module=libggml-cuda.so ;;
    *) die "--gpu wants vulkan or cuda, not '$gpu' (Metal, OpenCL and RPC modules: scripts/build-llama.sh)" ;;
    esac
    [ -f "$deps/llama/lib/libggml-base.so" ] || die "install the base libraries first (scripts/deps.sh)"
    local stampg=$deps/.gpu-$gpu-v1
    if [ ! -f "$stampg" ] || [ ! -f "$deps/llama/lib/$module" ]; then
        [ "$gpu" != vulkan ] || [ "$apt" = no ] || install_apt "$APT_VULKAN"
        local tgz
        tgz=$(fetch "$pkg" "$sum")
        tmp=$(mktemp -d)
        tar xzf "$tgz" -C "$tmp"
        local dir
        dir=$(echo "$tmp"/package/bins/linux-x64-*)
        local want got
        want=$(sha256sum "$deps/llama/lib/libggml-base.so" | cut -d' ' -f1)
        got=$(sha256sum "$dir/libggml-base.so" | cut -d' ' -f1)
        if [ "$want" != "$GGML_BASE_SHA256" ] || [ "$got" != "$want" ]; then
            rm -rf "$tmp"
            die "$pkg was built against a different libggml-base.so (its sha256 $got, ours $want, pinned $GGML_BASE_SHA256): refusing to install $module, it would not load or would crash"
        fi
        [ -f "$dir/$module" ] || { rm -rf "$tmp"; die "$pkg has no $module"; }
        cp "$dir/$module" "$deps/llama/lib/$module.tmp" && mv "$deps/llama/lib/$module.tmp" "$deps/llama/lib/$module"
        rm -rf "$tmp"
        echo "$pkg $module" >"$stampg"
        say "installed $module from $pkg into $deps/llama/lib"
    fi
    # Copy next to build/shimmy now (the next cmake build would too), atomically: running shimmy
    # processes may be scanning that folder.
    local out=${SHIMMY_BUILD_DIR:-$root/build}/lib
    if [ -d "$out" ] && ! cmp -s "$deps/llama/lib/$module" "$out/$module"; then
        cp "$deps/llama/lib/$module" "$out/.$module.tmp" && mv "$out/.$module.tmp" "$out/$module"
        say "copied $module into $out"
    fi
}

main() {
    local gpu="" apt=yes args=()
    while [ $# -gt 0 ]; do
        case "$1" in
        --gpu) [ $# -ge 2 ] || die "--gpu wants vulkan or cuda"; gpu=$2; shift 2 ;;
        --gpu=*) gpu=${1#--gpu=}; shift ;;
        *) args+=("$1"); shift ;;
        esac
    done
    set -- "${args[@]+"${args[@]}"}"
    [ "${1:-}" != --no-apt ] || apt=no
    if [ -n "$gpu" ]; then
        main_base "$@"
        install_gpu "$gpu"
        exit 0
    fi
    main_base "$@"
}

main_base() {
    case "${1:-}" in
    --source-only)  # for scripts/build-llama.sh: only the pinned source, any architecture
        install_apt
        unpack_source "$(fetch "$PKG_SRC" "$PKG_SRC_SHA256")"
        exit 0 ;;
    --no-apt) ;;
    *) install_apt ;;
    esac
    if [ -f "$stamp" ]; then
        "$root/scripts/build-chat.sh"   # nothing to do once built for this release
        return 0
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
    "$root/scripts/build-chat.sh"
}

main "$@"
