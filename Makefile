# The human commands. The C build itself is CMake (build/).
#   make        build build/shimmy (fetching pinned dependencies when missing)
#   make run    build, then start the server (ARGS="--model path/to/model.gguf" to add a model)
#   make test   build, then run every test (unit, integration, clients)
#   make deps GPU=vulkan|cuda   add a GPU backend module (docs/GPU.md)
#   make deps RPC=1   build llama.cpp's RPC module and rpc-server from the pinned source (docs/DISTRIBUTED.md)
#   make fixtures   generated test models (the reranker) into $(BUILD)/fixtures (tools/fixtures.sh)
#   make fuzz   libFuzzer targets (clang, ASan+UBSan) in build-fuzz/, FUZZ_SECONDS each (30)
#   make test-asan   unit + integration tests built with ASan+UBSan in build-asan/
#   make check   format, layering, limits, contract comments, cppcheck (scripts/check.sh)
#   make format  rewrite src/, tests/ and tools/ with clang-format (.clang-format)
#   make hooks   install a git pre-commit hook running the fast part of make check
#   make gates   release gates: stripped size, start-up time, golden outputs (scripts/gates.sh)
#   make dist [ARCH=arm64]   release archives into dist/ (scripts/dist.sh, docs/RELEASE.md)
#   make deb [ARCH=arm64]    the Debian package dist/shimmy_VERSION_ARCH.deb (same staged tree)
#   make test-arm64   cross-build for arm64, run the unit tests and a golden completion under qemu
BUILD ?= build
JOBS ?= $(shell nproc)
ARGS ?=
ARCH ?= x86_64

# The pinned release (LLAMA_RELEASE, NLC_VERSION, checksums): plain KEY=VALUE lines make reads too.
include scripts/pins.env

.PHONY: all deps configure run test size clean distclean fixtures check format hooks gates dist deb \
	test-arm64

all: $(BUILD)/shimmy

deps:
	@scripts/deps.sh $(DEPS_FLAGS) $(if $(GPU),--gpu $(GPU))
	@$(if $(RPC),SHIMMY_BUILD_DIR=$(abspath $(BUILD)) scripts/build-rpc.sh,true)
	@mkdir -p $(BUILD) && touch $(BUILD)/.deps-ok

# scripts/deps.sh (apt queries, the npm cache, the chat module) runs again only when one of its
# inputs changed or deps/ lacks what it made: a no-op `make` then asks dpkg nothing.
DEPS_MADE := $(wildcard deps/.complete-v1 deps/llama/include/llama.h \
	deps/chat/$(LLAMA_RELEASE)/libllama-chat.a deps/mtmd/$(LLAMA_RELEASE)/libmtmd.a)
$(BUILD)/.deps-ok: scripts/deps.sh scripts/pins.env scripts/build-chat.sh scripts/build-mtmd.sh \
		$(if $(word 4,$(DEPS_MADE)),,FORCE)
	@scripts/deps.sh $(DEPS_FLAGS)
	@mkdir -p $(BUILD) && touch $@

configure: $(BUILD)/.deps-ok
	@[ -f $(BUILD)/CMakeCache.txt ] || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null

$(BUILD)/shimmy: configure FORCE
	@cmake --build $(BUILD) -j $(JOBS)

run: all
	$(BUILD)/shimmy serve $(ARGS)

test: all
	@SHIMMY_BUILD_DIR=$(abspath $(BUILD)) scripts/test-deps.sh
	@cd $(BUILD) && ctest --output-on-failure -j 2 $(CTEST_FLAGS)

fixtures: all
	@tools/fixtures.sh $(abspath $(BUILD))

size: all
	@strip -o $(BUILD)/shimmy.stripped $(BUILD)/shimmy && \
	  echo "build/shimmy stripped: $$(stat -c %s $(BUILD)/shimmy.stripped) bytes"

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf deps tests/clients/node_modules

FORCE:

# make bench: shimmy vs llama-server side by side (BENCH_QUICK=1 for a short run); see docs/BENCHMARKS.md
.PHONY: bench
bench: all
	@BUILD=$(BUILD) bench/run.sh

# Checking builds, each in its own folder (scripts/fuzz.sh, scripts/test-asan.sh).
.PHONY: fuzz test-asan
fuzz:
	@FUZZ_SECONDS=$(or $(FUZZ_SECONDS),30) scripts/fuzz.sh

test-asan:
	@scripts/test-asan.sh

# Hygiene (scripts/check.sh): `make check` runs every part; .ci/run leaves out the format part
# until the tree has had its one formatting commit (CHECK_PARTS, see docs/RELEASE.md).
CHECK_PARTS ?=
check:
	@scripts/check.sh $(CHECK_PARTS)

format:
	@git ls-files 'src/*.c' 'src/*.h' 'src/*.cpp' 'tests/*.c' 'tests/*.h' 'tools/*.c' 'tools/*.h' | \
	  xargs clang-format -i

hooks:
	@scripts/hooks.sh

# Release gates (scripts/gates.sh): stripped size, start-up to ready, golden outputs.
gates: all
	@BUILD=$(BUILD) scripts/gates.sh

# Release archives (scripts/dist.sh): dist/shimmy-VERSION-linux-$(ARCH).tar.gz, GPU module
# archives (x86_64), SHA256SUMS. ARCH=arm64 cross-builds in build-arm64/.
dist: $(if $(filter x86_64,$(ARCH)),all)
	@JOBS=$(JOBS) scripts/dist.sh --arch $(ARCH) $(if $(filter x86_64,$(ARCH)),$(BUILD))

# The Debian package (scripts/dist.sh --deb): dist/shimmy_VERSION_amd64.deb (arm64 with ARCH=arm64),
# with the main archive and SHA256SUMS; no GPU archives.
deb: $(if $(filter x86_64,$(ARCH)),all)
	@JOBS=$(JOBS) scripts/dist.sh --arch $(ARCH) --no-gpu --deb $(if $(filter x86_64,$(ARCH)),$(BUILD))

test-arm64: all
	@JOBS=$(JOBS) scripts/test-arm64.sh
