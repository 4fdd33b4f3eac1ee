# aarch64-linux-gnu.cmake: CMake toolchain for the linux-arm64 release (make dist ARCH=arm64,
# make test-arm64; scripts/dist.sh). Debian's cross compilers (gcc-aarch64-linux-gnu,
# g++-aarch64-linux-gnu) and the arm64 development packages installed next to the amd64 ones
# (multiarch: dpkg --add-architecture arm64; libraries in /usr/lib/aarch64-linux-gnu, headers
# shared in /usr/include). Programs built here run under qemu-user (qemu-aarch64).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# pkg-config must read the arm64 .pc files only, never the host's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
# ctest runs the test programs through qemu; the arm64 libc and libraries are those of multiarch.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
