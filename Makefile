# The entry points of meshbus. Each target installs missing dependencies
# first (scripts/install-deps.sh, a no-op when all is there).
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all build deps test sanitize demo bench compare format clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure

# Every test built with AddressSanitizer and UBSan, in their own build
# directory (not part of `make test`). The process tests start the sanitized
# meshbusd and meshbus beside them (scripts/sanitize-run.sh).
SANITIZE_BUILD ?= build-sanitize
sanitize: deps
	cmake -S . -B $(SANITIZE_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined"
	cmake --build $(SANITIZE_BUILD) -j $(JOBS) --target unit_test mesh_test process_test compare_test meshbusd meshbus
	scripts/sanitize-run.sh $(SANITIZE_BUILD)

demo: build
	scripts/demo.sh

bench: build
	$(BUILD)/bin/meshbus-bench

compare: build
	scripts/compare.sh

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(SANITIZE_BUILD)
