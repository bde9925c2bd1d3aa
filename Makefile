# LoadEase: the two commands of the README, and a few helpers.
#   make demo   installs what is missing, builds, starts a local cluster
#   make test   installs what is missing, builds, runs every test suite
BUILD      ?= build
TESTBUILD  ?= build-test
PYTHON     ?= /usr/bin/python3

.PHONY: all deps web build test demo bench fuzz format clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized

build: deps web $(BUILD)/build.ninja
	ninja -C $(BUILD)

# The dashboard's uPlot comes from npm (package-lock.json), copied to web/vendor/.
web: deps
	@scripts/web-deps

test: deps web
	$(PYTHON) scripts/run-tests --build $(TESTBUILD)

demo: build
	scripts/demo --build $(BUILD)

bench: build
	bench/run-all --build $(BUILD)

fuzz: deps
	CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false 2>/dev/null || true
	ninja -C build-fuzz
	@echo "run e.g.: ./build-fuzz/tests/fuzz/fuzz_procfs -max_total_time=300 tests/fuzz/corpus/procfs"

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(TESTBUILD) build-fuzz web/vendor
