# Two commands for users: `make book` (the executed book) and `make test` (the test suite).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# the exact versions every install uses (pip constraints); `make lock` refreshes it on purpose
LOCK   := constraints.txt
PYTEST_ARGS ?= -m "not gpu and not slow and not browser" -n 2 --durations=15

.PHONY: test test-all lint venv lock bench clean gpu-setup

# .venv with exactly the versions of constraints.txt (the ones the suite and the book were last
# checked with); pyproject.toml says what is needed, the lock says which release of each
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c $(LOCK) pip
	$(PY) -m pip install --quiet -c $(LOCK) -e ".[test,book]"
	$(PY) -m pip check
	touch $(STAMP)

venv: $(STAMP)

# refresh constraints.txt on purpose: resolve pyproject.toml anew (newest releases allowed by its
# ranges) in a throw-away environment and write what was installed. Then run `make test` with the
# new lock (rm -rf .venv first) and commit constraints.txt only if it passes.
LOCK_VENV := .lock-venv
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet -e ".[test,book]"
	$(LOCK_VENV)/bin/python scripts/write_lock.py $(LOCK_VENV)/bin/python $(LOCK)
	rm -rf $(LOCK_VENV)

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
	rm -rf $(VENV) $(LOCK_VENV) _build .pytest_cache
