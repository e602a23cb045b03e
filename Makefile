# Two commands for users: `make book` (the executed book) and `make test` (the test suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?= -m "not gpu and not slow and not browser" -n 2 --durations=15

.PHONY: test test-all lint venv bench clean gpu-setup

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,book]"
	touch $(STAMP)

venv: $(STAMP)

# the linter (ruff, configured in pyproject.toml: defects only, no restyling)
lint: $(STAMP)
	$(PY) -m ruff check .

# lint, then unit, property and doc tests, then the executed notebooks under nbval (NBVAL_ARGS:
# book.mk), then the built book opened in headless Chromium (browser-deps and book: book.mk)
test: $(STAMP) lint
	$(PY) -m pytest $(PYTEST_ARGS)
	$(BOOK_ENV) $(PY) -m pytest $(NBVAL_ARGS) notebooks/
	$(MAKE) browser-deps
	$(MAKE) book
	SURVMAMBA_REQUIRE_BROWSER=1 $(PY) -m pytest -m browser tests/test_book_browser.py -p no:cacheprovider

test-all: $(STAMP)
	$(PY) -m pytest -m "not gpu"

bench: $(STAMP)
	$(PY) benchmarks/scan_benchmark.py --out benchmarks/results

# mamba-ssm and causal-conv1d built for this machine's GPU alone and installed into GPU_PYTHON's
# environment (one with a CUDA build of torch; not the CPU-only .venv): scripts/gpu-setup.sh.
# Offline: put the two source tarballs in SDIST_DIR (default .whl/) first.
GPU_PYTHON ?= python3
gpu-setup:
	PYTHON=$(GPU_PYTHON) bash scripts/gpu-setup.sh

# the book's targets (`make book`, `make cohorts`) live in book.mk
-include book.mk

clean:
	rm -rf $(VENV) _build .pytest_cache
