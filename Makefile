# LoadEase: the two commands of the README, and a few helpers.
#   make demo   installs what is missing, builds, starts a local cluster
#   make test   installs what is missing, builds, runs every test suite
BUILD      ?= build
TESTBUILD  ?= build-test
PYTHON     ?= /usr/bin/python3

PREFIX     ?= /usr
RELBUILD   ?= build-release

.PHONY: all deps web build test demo bench fuzz format clean install deb

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

# make install [PREFIX=/usr] [DESTDIR=...]: the binary, the dashboard, the
# docs, /etc/loadease/{agent,controller}.conf (an existing one is kept; the
# new example goes beside it as .conf.new), the systemd units, logrotate.
install: deps web
	[ -f $(RELBUILD)/build.ninja ] || meson setup $(RELBUILD) --buildtype=release --prefix=$(PREFIX) -Dtests=false
	ninja -C $(RELBUILD)
	@keep=""; for f in agent controller; do \
		c="$(DESTDIR)$$(meson introspect --buildoptions $(RELBUILD) | $(PYTHON) -c 'import json,sys,os; o={x["name"]:x["value"] for x in json.load(sys.stdin)}; print(os.path.join(o["prefix"], o["sysconfdir"]))')/loadease/$$f.conf"; \
		if [ -f "$$c" ]; then cp -p "$$c" "$$c.keep"; keep="$$keep $$c"; fi; done; \
	meson install -C $(RELBUILD) --no-rebuild --destdir "$(DESTDIR)"; rc=$$?; \
	for c in $$keep; do mv "$$c" "$$c.new"; mv "$$c.keep" "$$c"; echo "install: kept $$c (the new example is $$c.new)"; done; \
	exit $$rc

# make deb: build-deb/loadease_<version>_<arch>.deb (debian/, debhelper 13)
deb: deps web
	scripts/make-deb build-deb

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
	rm -rf $(BUILD) $(TESTBUILD) $(RELBUILD) build-fuzz build-deb web/vendor
