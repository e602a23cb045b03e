# The book's targets, included by the root Makefile (`-include book.mk`).
#
#   make book       execute every chapter and build _build/html (warnings are errors); the first
#                   build installs MathJax with `npm ci` from book/mathjax/ into _build/mathjax
#                   (book/_ext/offline_mathjax.py), so the site needs no CDN
#   make notebooks  sync notebooks/*.py with their .ipynb and store fresh outputs in the .ipynb
#   make nbval      run the paired .ipynb under nbval (checks cells marked NBVAL_CHECK_OUTPUT)
#   make student    write the student edition to _build/student/: every chapter as a notebook without
#                   its solutions or outputs, with a stub and a check cell for each code exercise
#                   (scripts/student_edition.py; the instructor's guide says how to hand it out)
#   make student-check  write the student edition to _build/student-check/ and execute every notebook of it
#                   top to bottom: each check cell, and nothing else, must fail with its AssertionError
#                   and message (whole chapters: about as long as `make notebooks`); the test suite holds
#                   the same contract faster (tests/test_book_exercises.py)
#   make browser-deps  install Debian's chromium (as root) for tests/test_book_browser.py
#   make cohorts    run the training chapter with papermill per cohort into runs/papermill/<cohort>/,
#                   then `survmamba report` into runs/papermill/report/ (book/reproduce.md)
#                   COHORTS="BLCA LUAD" picks cohorts; COHORT_ARGS passes papermill parameters, e.g.
#                   COHORT_ARGS="-p data_root $PWD/cohorts -p folds None -p epochs 20 -p dim 512"
#
# The book's packages are pyproject's `book` extra, installed with the rest by the root Makefile.
BOOK_STAMP    := $(STAMP)
NOTEBOOK_SRC  := $(sort $(wildcard notebooks/*.py))
# run chapters with the .venv's own "python3" kernel, even where a user-level kernel of that name exists
BOOK_ENV      := JUPYTER_PATH=$(abspath $(VENV))/share/jupyter
NBVAL_ARGS    ?= --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
                 --ignore-glob='notebooks/*.py' -p no:cacheprovider

# execute .ipynb files in place (working directory notebooks/, as in the book build)
define EXECUTE_IPYNB
import sys, nbformat, nbclient
for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": "notebooks"}}).execute()
    nbformat.write(nb, path)
    print("executed", path)
endef
export EXECUTE_IPYNB

CHROMIUM      ?= /usr/bin/chromium
COHORTS       ?= BRCA BLCA COADREAD UCEC LUAD
COHORT_ARGS   ?=
COHORT_RUNS   := runs/papermill

.PHONY: book notebooks nbval book-clean browser-deps cohorts student student-check

book: $(BOOK_STAMP)
	rm -rf _build/html
	$(BOOK_ENV) $(VENV)/bin/jupyter-book build . --all -W -n --keep-going

notebooks: $(BOOK_STAMP)
	$(VENV)/bin/jupytext --sync $(NOTEBOOK_SRC)
	$(BOOK_ENV) $(PY) -c "$$EXECUTE_IPYNB" $(NOTEBOOK_SRC:.py=.ipynb)
	$(VENV)/bin/jupytext --sync $(NOTEBOOK_SRC)

nbval: $(BOOK_STAMP)
	$(BOOK_ENV) $(PY) -m pytest $(NBVAL_ARGS) notebooks/

book-clean:
	rm -rf _build

STUDENT_DIR   ?= _build/student

student: $(BOOK_STAMP)
	$(PY) scripts/student_edition.py --out $(STUDENT_DIR)

student-check: $(BOOK_STAMP)
	$(BOOK_ENV) $(PY) scripts/student_edition.py --out _build/student-check --run

# the browser check (tests/test_book_browser.py) needs a headless Chromium; Debian's package works
# (the browsers that playwright and similar tools download are not needed)
browser-deps:
	@if [ -x "$(CHROMIUM)" ]; then \
	    echo "chromium: $$($(CHROMIUM) --version 2>/dev/null | head -n 1)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; \
	else \
	    echo "$(CHROMIUM) is missing: install it as root with"; \
	    echo "    apt-get update && apt-get install -y --no-install-recommends chromium"; \
	    echo "or point CHROMIUM=/path/to/chromium at another Chromium (the browser test reads \$$CHROMIUM too)"; \
	    exit 1; \
	fi

# papermill runs the paired .ipynb (never the .py, never in place) with notebooks/ as the working
# directory; paths passed to it are absolute
cohorts: $(BOOK_STAMP)
	@set -e; for c in $(COHORTS); do \
	    mkdir -p $(COHORT_RUNS)/$$c; \
	    echo "== $$c -> $(COHORT_RUNS)/$$c"; \
	    $(BOOK_ENV) $(VENV)/bin/papermill notebooks/12_training.ipynb $(COHORT_RUNS)/$$c/12_training.ipynb \
	        --cwd notebooks -k python3 -p cohort $$c -p out_dir $(CURDIR)/$(COHORT_RUNS)/$$c/run $(COHORT_ARGS); \
	done
	$(VENV)/bin/survmamba report $(addprefix $(COHORT_RUNS)/,$(addsuffix /run,$(COHORTS))) --out $(COHORT_RUNS)/report --overwrite
