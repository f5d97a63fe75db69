# tidings: `make demo` runs the flagship demo, `make test` is exactly what CI runs.
SHELL := bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help demo test lint test-rust bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

demo: ## Run the livescore demo (http://127.0.0.1:8000/)
	$(CARGO) run --release --example livescore -- $(ARGS)

test: lint test-rust ## Everything CI runs: lint, then every test suite

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust: ## The core engine's unit and integration tests (real sockets on 127.0.0.1)
	$(CARGO) test --workspace

bench: ## Benchmarks against peers (not built yet: see the benchmarks issue)
	@echo "make bench: the benchmark harness is not built yet" >&2; exit 2
