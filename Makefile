# The entry points of meshbus. Each target installs missing dependencies
# first (scripts/install-deps.sh, a no-op when all is there).
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all build deps test demo bench compare format clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure

demo: build
	scripts/demo.sh

bench: build
	$(BUILD)/bin/meshbus-bench

compare: build
	scripts/compare.sh

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD)
