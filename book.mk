# The book's targets, included by the root Makefile (`-include book.mk`).
#
#   make book       execute every chapter and build _build/html (warnings are errors)
#   make notebooks  sync notebooks/*.py with their .ipynb and store fresh outputs in the .ipynb
#   make nbval      run the paired .ipynb under nbval (checks cells marked NBVAL_CHECK_OUTPUT)
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

.PHONY: book notebooks nbval book-clean

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
