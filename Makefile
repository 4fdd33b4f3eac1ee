# The human commands. The C build itself is CMake (build/).
#   make        build build/shimmy (fetching pinned dependencies when missing)
#   make run    build, then start the server (ARGS="--model path/to/model.gguf" to add a model)
#   make test   build, then run every test (unit, integration, clients)
#   make deps GPU=vulkan|cuda   add a GPU backend module (docs/GPU.md)
#   make deps RPC=1   build llama.cpp's RPC module and rpc-server from the pinned source (docs/DISTRIBUTED.md)
#   make fixtures   generated test models (the reranker) into $(BUILD)/fixtures (tools/fixtures.sh)
#   make fuzz   libFuzzer targets (clang, ASan+UBSan) in build-fuzz/, FUZZ_SECONDS each (30)
#   make test-asan   unit + integration tests built with ASan+UBSan in build-asan/
BUILD ?= build
JOBS ?= $(shell nproc)
ARGS ?=

.PHONY: all deps configure run test size clean distclean fixtures

all: $(BUILD)/shimmy

deps:
	@scripts/deps.sh $(DEPS_FLAGS) $(if $(GPU),--gpu $(GPU))
	@$(if $(RPC),SHIMMY_BUILD_DIR=$(abspath $(BUILD)) scripts/build-rpc.sh,true)

configure: deps
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
