#!/usr/bin/env bash
# dist.sh: the release archives (make dist [ARCH=arm64]; docs/RELEASE.md).
#
#   shimmy-VERSION-linux-ARCH.tar.gz   one folder shimmy-VERSION-linux-ARCH/ holding
#       shimmy                the stripped binary (rpath $ORIGIN/lib: runs from any folder)
#       lib/                  llama.cpp's core libraries, the CPU backend modules (one per CPU
#                             level, the best is chosen at run time), libshimmy-cxx.so (stripped:
#                             llama.cpp's chat module and libmtmd, ADR 0012)
#       README.md, RUNTIME-DEPS.txt (the Debian 12 packages it needs, found from the binaries'
#       NEEDED entries), THIRD-PARTY-LICENSES.txt (llama.cpp/ggml, nlohmann json, stb_image,
#       miniaudio, xxhash, sha256, node-llama-cpp's packaging), LICENSE when the project has one
#     The chat page is compiled into the binary (src/web): no separate file.
#   shimmy-VERSION-linux-x86_64-vulkan.tar.gz, -cuda.tar.gz (x86_64 only)
#       the same folder name with lib/libggml-vulkan.so or lib/libggml-cuda.so: unpack over the
#       main archive. From the pinned @node-llama-cpp/linux-x64-vulkan / -cuda packages (fetched
#       and checked by scripts/deps.sh), refused when built against another libggml-base.so.
#       CUDA needs the NVIDIA driver and the CUDA 13 runtime (libcudart, libcublas) at run time.
#   shimmy_VERSION_ARCH.deb (--deb; ARCH amd64 or arm64)   the same staged folder as a Debian
#       package: shimmy and lib/ under /usr/lib/shimmy, /usr/bin/shimmy a link to the binary (the
#       rpath and the backend folder follow /proc/self/exe through it), README.md,
#       RUNTIME-DEPS.txt and the licences (as Debian's copyright file) under
#       /usr/share/doc/shimmy; Depends: the packages of RUNTIME-DEPS.txt. Built with dpkg-deb
#       (--root-owner-group: no fakeroot), tested unpacked by tests/release/deb.sh.
#   SHA256SUMS   of every archive and package in the output folder
#
# x86_64 packs BUILD (default build/, `make` first). arm64 cross-builds in build-arm64/ with
# cmake/aarch64-linux-gnu.cmake against the pinned @node-llama-cpp/linux-arm64 libraries
# (scripts/deps.sh --arch arm64 installs the cross compilers and arm64 dev packages first).
#
# Usage: scripts/dist.sh [--arch x86_64|arm64] [--no-gpu] [--deb] [BUILD_DIR [OUT_DIR]]
#        (defaults: build or build-arm64, dist). Env: JOBS. Prints the archives' paths.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/pins.env"
deps=${SHIMMY_DEPS_DIR:-$root/deps}
arch=x86_64 gpu=yes deb=no pos=()
while [ $# -gt 0 ]; do
    case "$1" in
    --arch) [ $# -ge 2 ] || { echo "dist.sh: --arch wants x86_64 or arm64" >&2; exit 2; }; arch=$2; shift 2 ;;
    --no-gpu) gpu=no; shift ;;
    --deb) deb=yes; shift ;;
    *) pos+=("$1"); shift ;;
    esac
done
case "$arch" in
x86_64 | amd64 | x64) arch=x86_64 ;;
arm64 | aarch64) arch=arm64 ;;
*) echo "dist.sh: --arch wants x86_64 or arm64, not '$arch'" >&2; exit 2 ;;
esac
default_build=build
[ "$arch" = x86_64 ] || default_build=build-arm64
build=${pos[0]:-$default_build}
out=${pos[1]:-$root/dist}
jobs=${JOBS:-$(nproc)}

die() { echo "dist.sh: error: $*" >&2; exit 1; }

# The arm64 cross build: configured once, rebuilt incrementally.
build_arm64() {
    "$root/scripts/deps.sh" --arch arm64 >&2
    local wslay=/usr/lib/aarch64-linux-gnu/libwslay.so.1
    [ -f "$wslay" ] || die "$wslay missing (apt-get install libwslay1:arm64)"
    # configured every time (a no-op when nothing changed): the paths follow the pins
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake" \
        -DLLAMA_DIR="$deps/arm64/llama" \
        -DLLAMA_CHAT_LIB="$deps/chat/$LLAMA_RELEASE-arm64/libllama-chat.a" \
        -DLLAMA_MTMD_DIR="$deps/mtmd/$LLAMA_RELEASE-arm64" \
        -DWSLAY_LIB="$wslay" -DWSLAY_INCLUDE=/usr/include ${CMAKE_FLAGS:-} >&2 ||
        die "configuring the arm64 build in $build failed"
    cmake --build "$build" -j "$jobs" --target shimmy >&2 || die "the arm64 build failed"
}

strip_tool=strip
if [ "$arch" = arm64 ]; then
    strip_tool=aarch64-linux-gnu-strip
    build_arm64
fi
[ -x "$build/shimmy" ] || die "$build/shimmy not found: run make first"
version=$(sed -n 's/^project(shimmy VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
[ -n "$version" ] || die "no version in CMakeLists.txt's project()"
name=shimmy-$version-linux-$arch
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
dir=$stage/$name
mkdir -p "$dir/lib" "$out"

# Binary and libraries. GPU and RPC modules built or installed locally stay out of the main
# archive: GPU modules are archives of their own, RPC is built from source (docs/DISTRIBUTED.md).
$strip_tool -o "$dir/shimmy" "$build/shimmy"
for f in "$build"/lib/*.so*; do
    case "$(basename "$f")" in
    libggml-vulkan.so | libggml-cuda.so | libggml-rpc.so | libggml-hip.so | libggml-opencl.so) continue ;;
    libshimmy-cxx.so) $strip_tool -o "$dir/lib/libshimmy-cxx.so" "$f" ;;
    libllama*.so* | libggml*.so*) cp -a "$f" "$dir/lib/" ;;
    *) echo "dist.sh: not packed: $f (not one of shimmy's libraries: left over from an older build?)" >&2 ;;
    esac
done

# The Debian packages of every shared library the binary and the core libraries need that the
# archive does not carry (dpkg -S on the build machine: multiarch paths for arm64).
runtime_deps() {
    local libdir=/usr/lib/x86_64-linux-gnu needed=() f n paths=() owners
    [ "$arch" = x86_64 ] || libdir=/usr/lib/aarch64-linux-gnu
    for f in "$dir/shimmy" "$dir"/lib/*.so; do
        while read -r n; do
            [ -e "$dir/lib/$n" ] || needed+=("$n")
        done < <(readelf -d "$f" | sed -n 's/.*(NEEDED).*Shared library: \[\(.*\)\]/\1/p')
    done
    # opened with dlopen (core/netlib.c), so no NEEDED entry: libcurl (pull, discover --server,
    # remote media) and libcrypto (pull's checksums)
    needed+=(libcurl.so.4 libcrypto.so.3)
    mapfile -t needed < <(printf '%s\n' "${needed[@]}" | sort -u)
    for n in "${needed[@]}"; do paths+=("$libdir/$n" "/lib/${libdir#/usr/lib/}/$n"); done
    # one dpkg -S for all (each call reads dpkg's whole file list)
    owners=$(dpkg -S "${paths[@]}" 2>/dev/null || true)
    for n in "${needed[@]}"; do
        echo "$owners" | grep -q "/$n\$" || die "no Debian package owns $n (needed by the archive's binaries)"
    done
    echo "$owners" | sed -n 's/^\([^:]*\):.*/\1/p' | sort -u
}
deps_list=$(runtime_deps | tr '\n' ' ')

# Licences: shimmy's own when the project has one; llama.cpp (ggml, the chat module, libmtmd) and
# what libshimmy-cxx.so compiles in from its vendor/ folder (nlohmann json, stb_image, miniaudio,
# xxhash, sha1, sha256); node-llama-cpp (it built the prebuilt libraries).
[ -f "$root/LICENSE" ] && cp "$root/LICENSE" "$dir/LICENSE" ||
    echo "dist.sh: warning: the project has no LICENSE file: the archive ships none" >&2
{
    echo "Third-party code in this archive, with its licence."
    echo
    echo "== llama.cpp and ggml (lib/libllama*, lib/libggml*; its chat module and libmtmd in"
    echo "   lib/libshimmy-cxx.so), release $LLAMA_RELEASE, https://github.com/ggml-org/llama.cpp"
    echo
    cat "$deps/llama.cpp/LICENSE"
    echo
    local_v=$deps/llama.cpp/vendor
    echo "== nlohmann/json (in lib/libshimmy-cxx.so), https://github.com/nlohmann/json"
    echo
    cat "$deps/llama.cpp/licenses/LICENSE-jsonhpp"
    echo
    echo "== stb_image (in lib/libshimmy-cxx.so, image decoding), https://github.com/nothings/stb"
    echo
    sed -n '/^This software is available under 2 licenses/,/^\*\//p' "$local_v/stb/stb_image.h"
    echo
    echo "== miniaudio (in lib/libshimmy-cxx.so, audio decoding), https://miniaud.io"
    echo
    sed -n '/^This software is available as a choice of the following licenses/,/^\*\//p' \
        "$local_v/miniaudio/miniaudio.h"
    echo
    echo "== xxHash (in lib/libshimmy-cxx.so), https://github.com/Cyan4973/xxHash"
    echo
    cat "$local_v/hash/xxhash/LICENSE"
    echo
    echo "== sha256 (in lib/libshimmy-cxx.so; Igor Pavlov, public domain) and its rotate-bits helper"
    echo
    cat "$local_v/hash/sha256/LICENSE" "$local_v/hash/rotate-bits/LICENSE.md"
    echo
    echo "== SHA-1 in C (in lib/libshimmy-cxx.so), by Steve Reid: 100% public domain"
    echo
    echo "== node-llama-cpp $NLC_VERSION (the prebuilt libraries come from its npm packages)"
    echo "   https://github.com/withcatai/node-llama-cpp"
    echo
    tar xzOf "$deps/cache/node-llama-cpp-$NLC_VERSION.tgz" package/LICENSE
    echo
    echo "System libraries are not shipped: RUNTIME-DEPS.txt names the Debian packages."
} >"$dir/THIRD-PARTY-LICENSES.txt"
{
    echo "# Debian 12 packages shimmy $version (linux-$arch) needs at run time:"
    echo "#   apt-get install --no-install-recommends $deps_list"
    echo "$deps_list" | tr ' ' '\n' | sed '/^$/d'
} >"$dir/RUNTIME-DEPS.txt"
{
    echo "# shimmy $version for linux-$arch"
    echo
    echo "A small, fast local LLM server (OpenAI, Ollama, Anthropic and OpenAI Responses APIs) on"
    echo "llama.cpp $LLAMA_RELEASE. Runs from any folder: the binary finds lib/ next to it."
    echo
    echo '```sh'
    echo "apt-get install --no-install-recommends $deps_list"
    echo "./shimmy serve --model path/to/model.gguf      # http://127.0.0.1:11435"
    echo "./shimmy --help"
    echo '```'
    echo
    echo "- lib/: llama.cpp's libraries and CPU backend modules (the best for this CPU is chosen at"
    echo "  run time), libshimmy-cxx.so (llama.cpp's chat templates, tool-call parsers and libmtmd)."
    [ "$arch" != x86_64 ] || echo "- GPUs: unpack shimmy-$version-linux-x86_64-vulkan.tar.gz or -cuda.tar.gz over this folder."
    echo "- Documentation: the project's README.md and docs/ (this file is the archive's summary)."
    echo "- Licences: THIRD-PARTY-LICENSES.txt; runtime packages: RUNTIME-DEPS.txt."
} >"$dir/README.md"

tar -C "$stage" --owner=0 --group=0 --sort=name -czf "$out/$name.tar.gz" "$name"
echo "$out/$name.tar.gz"

# The Debian package: the staged folder laid out as described at the top.
deb_package() {
    local debarch=amd64 pkg=$stage/deb file doc maint
    [ "$arch" = x86_64 ] || debarch=arm64
    command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian's dpkg package)"
    file=$out/shimmy_${version}_$debarch.deb
    doc=$pkg/usr/share/doc/shimmy
    mkdir -p "$pkg/DEBIAN" "$pkg/usr/lib/shimmy" "$pkg/usr/bin" "$doc"
    cp -a "$dir/shimmy" "$dir/lib" "$pkg/usr/lib/shimmy/"
    ln -s ../lib/shimmy/shimmy "$pkg/usr/bin/shimmy"
    cp "$dir/README.md" "$dir/RUNTIME-DEPS.txt" "$doc/"
    cp "$dir/THIRD-PARTY-LICENSES.txt" "$doc/copyright"
    [ ! -f "$dir/LICENSE" ] || cp "$dir/LICENSE" "$doc/"
    # the project's own name and address, as its commits give them
    maint=$(git -C "$root" log -1 --format='%an <%ae>' 2>/dev/null || true)
    {
        echo "Package: shimmy"
        echo "Version: $version"
        echo "Architecture: $debarch"
        echo "Maintainer: ${maint:-shimmy maintainers <root@localhost>}"
        echo "Installed-Size: $(du -sk "$pkg/usr" | cut -f1)"
        echo "Depends: $(echo $deps_list | sed 's/ /, /g')"
        echo "Section: net"
        echo "Priority: optional"
        echo "Description: small, fast local LLM server on llama.cpp"
        echo " Serves GGUF models over the OpenAI, Ollama, Anthropic and OpenAI Responses"
        echo " APIs through llama.cpp $LLAMA_RELEASE, whose libraries and CPU backend"
        echo " modules it carries in /usr/lib/shimmy/lib."
    } >"$pkg/DEBIAN/control"
    dpkg-deb --root-owner-group --build "$pkg" "$file" >/dev/null || die "dpkg-deb --build failed"
    echo "$file"
}
[ "$deb" = no ] || deb_package

# GPU module archives (x86_64): the module from the pinned npm package, checked against our base.
gpu_archive() {
    local gpu=$1 tgz tmp mod=libggml-$1.so gdir
    tgz=$("$root/scripts/deps.sh" --fetch-gpu "$gpu") || die "could not fetch the $gpu package"
    tmp=$(mktemp -d)
    tar xzf "$tgz" -C "$tmp"
    gdir=$(echo "$tmp"/package/bins/linux-x64-*)
    if ! cmp -s "$gdir/libggml-base.so" "$dir/lib/libggml-base.so"; then
        rm -rf "$tmp"
        die "the $gpu package was built against another libggml-base.so than the archive's: no $gpu archive"
    fi
    mkdir -p "$stage/gpu-$gpu/$name/lib"
    cp "$gdir/$mod" "$stage/gpu-$gpu/$name/lib/"
    {
        echo "# lib/$mod ($gpu backend of llama.cpp $LLAMA_RELEASE, from @node-llama-cpp/linux-x64-$gpu@$NLC_VERSION)"
        if [ "$gpu" = vulkan ]; then
            echo "# needs the Vulkan loader and a driver for the GPU:"
            echo "#   apt-get install --no-install-recommends libvulkan1 mesa-vulkan-drivers  (or the vendor's driver)"
            echo libvulkan1
        else
            echo "# needs the NVIDIA driver (libcuda.so.1) and the CUDA 13 runtime (libcudart.so.13,"
            echo "# libcublas.so.13) from NVIDIA's packages (not in Debian 12): e.g. cuda-cudart-13-0, libcublas-13-0"
        fi
    } >"$stage/gpu-$gpu/$name/RUNTIME-DEPS-$gpu.txt"
    rm -rf "$tmp"
    tar -C "$stage/gpu-$gpu" --owner=0 --group=0 -czf "$out/$name-$gpu.tar.gz" "$name"
    echo "$out/$name-$gpu.tar.gz"
}
if [ "$arch" = x86_64 ] && [ "$gpu" = yes ]; then
    gpu_archive vulkan
    gpu_archive cuda
fi

(cd "$out" && sha256sum shimmy-*.tar.gz $(ls shimmy_*.deb 2>/dev/null) >SHA256SUMS)
echo "$out/SHA256SUMS"
