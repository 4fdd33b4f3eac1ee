#!/usr/bin/env bash
# deps.sh: install everything shimmy needs to build and test, pinned and checksummed.
#
#   apt packages (only those missing), then the llama.cpp release pinned in scripts/pins.env
#   (v0.4.0 from node-llama-cpp 3.21.1 today) from npm:
#     node-llama-cpp@VERSION             -> llama/gitRelease.bundle (headers and full source)
#     @node-llama-cpp/linux-x64@VERSION  -> prebuilt shared libraries (loadable CPU backends)
#   Each tarball is checked against its sha256 in pins.env before anything is unpacked.
#   Then llama.cpp's chat module and its multimodal library are compiled from that source once
#   (scripts/build-chat.sh: deps/chat/<release>/libllama-chat.a; scripts/build-mtmd.sh:
#   deps/mtmd/<release>/libmtmd.a).
#   Results are cached in deps/: a second run touches no network and takes well under 5 s.
#
#   --gpu vulkan|cuda (make deps GPU=vulkan) adds a GPU backend module from the same release:
#     @node-llama-cpp/linux-x64-vulkan@VERSION -> libggml-vulkan.so (+ apt libvulkan1,
#                                                 mesa-vulkan-drivers)
#     @node-llama-cpp/linux-x64-cuda@VERSION   -> libggml-cuda.so  (needs an NVIDIA driver and the
#                                                 CUDA 13 runtime libraries at run time)
#   The package's libggml-base.so must be identical (sha256) to ours, else nothing is installed.
#   The module goes into deps/llama/lib and, when it exists, build/lib (SHIMMY_BUILD_DIR).
#
#   --arch arm64 (make dist ARCH=arm64, make test-arm64) prepares the linux-arm64 cross build:
#     apt: dpkg --add-architecture arm64, the cross compilers, qemu-user, arm64 dev packages
#     @node-llama-cpp/linux-arm64@VERSION -> deps/arm64/llama/lib (headers: deps/llama/include)
#     the chat module and libmtmd cross-compiled (ARCH=arm64 scripts/build-chat.sh and
#     build-mtmd.sh: deps/chat/<release>-arm64, deps/mtmd/<release>-arm64)
#
#   --fetch-gpu vulkan|cuda prints the path of the verified GPU package tarball (scripts/dist.sh
#   packs its module into a release archive) without installing anything.
#
# Usage: scripts/deps.sh [--no-apt|--source-only] [--gpu vulkan|cuda] [--arch arm64]
#        scripts/deps.sh --fetch-gpu vulkan|cuda
#        (SHIMMY_DEPS_DIR overrides deps/)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
deps=${SHIMMY_DEPS_DIR:-$root/deps}
stamp=$deps/.complete-v1

# The pinned release and its checksums: scripts/pins.env, the one place they are written.
# shellcheck source=pins.env
. "$root/scripts/pins.env"
PKG_SRC=node-llama-cpp@$NLC_VERSION
PKG_SRC_SHA256=$SHA256_SRC
PKG_LIB=@node-llama-cpp/linux-x64@$NLC_VERSION
PKG_LIB_SHA256=$SHA256_LINUX_X64
PKG_VULKAN=@node-llama-cpp/linux-x64-vulkan@$NLC_VERSION
PKG_VULKAN_SHA256=$SHA256_LINUX_X64_VULKAN
PKG_CUDA=@node-llama-cpp/linux-x64-cuda@$NLC_VERSION
PKG_CUDA_SHA256=$SHA256_LINUX_X64_CUDA
PKG_ARM64=@node-llama-cpp/linux-arm64@$NLC_VERSION
PKG_ARM64_SHA256=$SHA256_LINUX_ARM64
GGML_BASE_SHA256=$SHA256_GGML_BASE_X64
APT_VULKAN="libvulkan1 mesa-vulkan-drivers"
# --arch arm64: Debian's cross compilers, qemu-user to run the result, and the arm64 libraries
# shimmy links (multiarch, beside the amd64 ones). libwslay-dev is not multiarch-installable (its
# arm64 package would remove the amd64 one): its headers are the same for both, so the amd64
# headers and the arm64 runtime libwslay1 serve.
APT_ARM64="gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user libmicrohttpd-dev:arm64 \
libjansson-dev:arm64 libcurl4-openssl-dev:arm64 libedit-dev:arm64 libwslay1:arm64 libcmocka-dev:arm64 \
libwebp-dev:arm64"

APT_PKGS="build-essential cmake pkg-config git libmicrohttpd-dev libjansson-dev \
libcmocka-dev libcurl4-openssl-dev libedit-dev libwslay-dev libwebp-dev"

die() { echo "deps.sh: error: $*" >&2; exit 1; }
say() { echo "deps.sh: $*" >&2; }

install_apt() {
    local missing=()
    case " ${1:-} " in
    *:arm64*)
        dpkg --print-foreign-architectures | grep -qx arm64 || {
            say "adding the arm64 architecture to dpkg (multiarch)"
            local sudo=""
            [ "$(id -u)" -eq 0 ] || sudo=sudo
            $sudo dpkg --add-architecture arm64 || die "dpkg --add-architecture arm64 failed"
        } ;;
    esac
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

# The arm64 libraries of the pinned release and the cross-compiled chat module (--arch arm64).
install_arm64() {
    local dir=$deps/arm64 stampa tgz tmp
    stampa=$dir/.complete-$LLAMA_RELEASE
    [ "$apt" = no ] || install_apt "$APT_ARM64"
    if [ ! -f "$stampa" ]; then
        tgz=$(fetch "$PKG_ARM64" "$PKG_ARM64_SHA256")
        tmp=$(mktemp -d)
        tar xzf "$tgz" -C "$tmp"
        rm -rf "$dir/llama"
        mkdir -p "$dir/llama/lib" "$dir/llama/include"
        cp "$tmp"/package/bins/linux-arm64/lib*.so "$dir/llama/lib/"
        rm -f "$dir/llama/lib/libllama-common.so"
        cp "$tmp/package/LICENSE" "$dir/llama/LICENSE.node-llama-cpp"
        rm -rf "$tmp"
        cp "$deps"/llama/include/*.h "$dir/llama/include/"
        echo "$LLAMA_RELEASE prebuilt $PKG_ARM64" >"$stampa"
        say "llama.cpp $LLAMA_RELEASE for arm64 ready in $dir/llama"
    fi
    ARCH=arm64 "$root/scripts/build-chat.sh"
    ARCH=arm64 "$root/scripts/build-mtmd.sh"
}

# fetch_gpu vulkan|cuda: the verified package tarball of a GPU module, for scripts/dist.sh.
fetch_gpu() {
    case "$1" in
    vulkan) fetch "$PKG_VULKAN" "$PKG_VULKAN_SHA256" ;;
    cuda) fetch "$PKG_CUDA" "$PKG_CUDA_SHA256" ;;
    *) die "--fetch-gpu wants vulkan or cuda, not '$1'" ;;
    esac
}

main() {
    local gpu="" arch="" apt=yes args=()
    while [ $# -gt 0 ]; do
        case "$1" in
        --gpu) [ $# -ge 2 ] || die "--gpu wants vulkan or cuda"; gpu=$2; shift 2 ;;
        --gpu=*) gpu=${1#--gpu=}; shift ;;
        --arch) [ $# -ge 2 ] || die "--arch wants arm64 or x86_64"; arch=$2; shift 2 ;;
        --fetch-gpu) [ $# -ge 2 ] || die "--fetch-gpu wants vulkan or cuda"; fetch_gpu "$2"; exit 0 ;;
        *) args+=("$1"); shift ;;
        esac
    done
    set -- "${args[@]+"${args[@]}"}"
    [ "${1:-}" != --no-apt ] || apt=no
    case "$arch" in
    "" | x86_64 | amd64) ;;
    arm64 | aarch64)
        main_base "$@"
        install_arm64
        exit 0 ;;
    *) die "--arch wants x86_64 or arm64, not '$arch'" ;;
    esac
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
    # The stamp names the release it was made for: another pin in pins.env fetches again.
    if [ -f "$stamp" ] && [ "$(cut -d' ' -f1 "$stamp")" = "$LLAMA_RELEASE" ]; then
        "$root/scripts/build-chat.sh"   # nothing to do once built for this release
        "$root/scripts/build-mtmd.sh"
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
    "$root/scripts/build-mtmd.sh"
}

main "$@"
