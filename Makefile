# tidings: `make demo` runs the flagship demo, `make test` is exactly what CI runs.
SHELL := bash
.DEFAULT_GOAL := help
CARGO ?= cargo
PYTHON3 ?= python3
NPM ?= npm
NPM_FLAGS := --no-audit --no-fund
VENV := .venv
PY := $(VENV)/bin/python

# cargo fuzz needs nightly's flags: the nightly toolchain where rustup has
# one, else stable told to accept them.
FUZZ_CARGO := $(shell rustup toolchain list 2>/dev/null | grep -q '^nightly' && echo 'cargo +nightly' || echo 'env RUSTC_BOOTSTRAP=1 cargo')
FUZZ_TARGETS := event_roundtrip request_head hub_form topic_selector
FUZZ_SECONDS ?= 60

PREFIX ?= /usr/local
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

.PHONY: help demo demo-rust test lint test-rust python test-python test-wheel test-c header install node test-node test-node-install test-bench bench bench-full fuzz test-fuzz

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

demo: python ## The livescore demo from Python: open http://127.0.0.1:8000/
	$(PY) examples/python/livescore.py $(ARGS)

demo-rust: ## The same demo driven from Rust
	$(CARGO) run --release --example livescore -- $(ARGS)

test: lint test-rust test-python test-wheel test-c test-node test-node-install test-bench test-fuzz ## Everything CI runs

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust: ## Core engine tests: unit, and real sockets on 127.0.0.1
	$(CARGO) test --workspace

$(VENV)/.ready: bindings-python/requirements-test.txt
	$(PYTHON3) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r bindings-python/requirements-test.txt
	touch $@

python: $(VENV)/.ready ## Build and install the Python package into .venv
	$(VENV)/bin/pip install -q --force-reinstall --no-deps ./bindings-python

test-python: python ## Python: stubs vs. the native module, typing, pytest (demos, Chromium)
	cd bindings-python && ../$(PY) -m mypy.stubtest tidings._tidings
	cd bindings-python && ../$(PY) -m mypy --strict python/tidings tests/typing_usage.py
	cd bindings-python && ../$(PY) -m pytest -q -p no:cacheprovider

test-wheel: $(VENV)/.ready ## The abi3 wheel installs and runs in a fresh venv without Rust
	rm -rf target/wheels target/wheel-venv
	$(VENV)/bin/maturin build -q --release -m bindings-python/Cargo.toml -o target/wheels
	$(PYTHON3) -m venv target/wheel-venv
	target/wheel-venv/bin/pip install -q target/wheels/*.whl
	env PATH=/usr/bin:/bin target/wheel-venv/bin/python bindings-python/tests/wheel_smoke.py

test-c: $(VENV)/.ready ## C ABI: gcc/g++ programs, ASan+UBSan, valgrind, make install + pkg-config
	$(CARGO) build -p tidings-ffi
	ln -sf libtidings.so target/debug/libtidings.so.0  # the SONAME programs look for
	$(PY) -m pytest -q -p no:cacheprovider tests

fuzz: ## Fuzz every parser for FUZZ_SECONDS (60) each with libFuzzer; a crash's input lands in fuzz/artifacts/
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && $(CARGO) fmt --check
	for target in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$target && \
		(cd fuzz && $(FUZZ_CARGO) fuzz run $$target corpus/$$target seeds/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1) || exit 1; \
	done

test-fuzz: ## A short run (10 s) of every fuzz target
	$(MAKE) fuzz FUZZ_SECONDS=10

header: ## Regenerate include/tidings.h from ffi/src (cbindgen)
	TIDINGS_UPDATE_HEADER=1 $(CARGO) test -q -p tidings-ffi --test header

install: ## Install libtidings (.so.VERSION with its SONAME links, .a), tidings.h and tidings.pc under PREFIX
	$(CARGO) build --release -p tidings-ffi
	install -d $(PREFIX)/lib/pkgconfig $(PREFIX)/include
	install -m 644 include/tidings.h $(PREFIX)/include/
	install -m 755 target/release/libtidings.so $(PREFIX)/lib/libtidings.so.$(VERSION)
	ln -sf libtidings.so.$(VERSION) $(PREFIX)/lib/libtidings.so.0
	ln -sf libtidings.so.0 $(PREFIX)/lib/libtidings.so
	install -m 644 target/release/libtidings.a $(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' ffi/tidings.pc.in > $(PREFIX)/lib/pkgconfig/tidings.pc

node: ## Install the Node package's dev tools and build its addon; link it for the examples
	cd bindings-node && $(NPM) install $(NPM_FLAGS)
	cd examples/node && $(NPM) install $(NPM_FLAGS)

test-node: node ## Node: loader/types drift, node --test (demos, Chromium, tsc)
	cd bindings-node && npx napi build --platform --release --js native.js --dts native.d.ts
	git diff --exit-code -- bindings-node/native.js bindings-node/native.d.ts
	cd bindings-node && $(NPM) test

test-node-install: node ## `npm install ./bindings-node` and `npm pack` both give a working package
	rm -rf target/node-consumers && mkdir -p target/node-consumers/folder target/node-consumers/tarball
	cd bindings-node && $(NPM) pack --pack-destination ../target/node-consumers >/dev/null
	for consumer in folder tarball; do cp bindings-node/test/quickstart.cjs target/node-consumers/$$consumer/; done
	cd target/node-consumers/folder && echo '{"private":true}' > package.json && \
		$(NPM) install $(NPM_FLAGS) ../../../bindings-node && node quickstart.cjs
	cd target/node-consumers/tarball && echo '{"private":true}' > package.json && \
		$(NPM) install $(NPM_FLAGS) ../tidings-*.tgz && test ! -L node_modules/tidings && node quickstart.cjs

test-bench: python node ## Benchmarks' own tests: every peer follows the protocol, the report renders
	bench/setup.sh
	$(PY) -m mypy --strict bench/run.py bench/report.py bench/asgi.py bench/peers bench/tests
	$(PY) -m pytest -q -p no:cacheprovider bench/tests

bench: python node ## Benchmarks, quick profile (~10 min): every peer side by side -> docs/benchmarks.md
	bench/setup.sh
	$(PY) bench/run.py --profile quick
	$(PY) bench/asgi.py

bench-full: python node ## Benchmarks, full profile (longer runs, 10k fan-out, 50k/100k idle for every peer)
	bench/setup.sh
	$(PY) bench/run.py --profile full
