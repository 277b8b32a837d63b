# amaml_lab: `make lab` (JupyterLab on notebooks/), `make demo` (headless), `make test` (ruff and every test but
# tests/integration: a few minutes), `make test-all` (every test: the notebooks, the browser, the book too), `make book` (the static site: every notebook executed with FAST = True, into _build/html; see book/).
# Each target sets up .venv first.  pip honours PIP_CONSTRAINT (CI pins torch with it: see .ci/run).
#   make lab LAB_ARGS="--port 9999 --no-browser"     extra JupyterLab flags (--allow-root is added for root)
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cpu   PyTorch's CPU build on a machine without a GPU
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BOOK_STAMP := $(VENV)/.installed-book
LAB_ARGS ?=
TORCH_INDEX ?=
# JupyterLab refuses to start as root (the usual user in a container) unless told
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: install lab demo test test-all lint format book bench mutants warm clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet torch --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[lab,test,peers]"
	touch $(STAMP)

# the book's tools (Jupyter Book 1.x: Sphinx and MyST-NB) beside the rest; tests/integration/test_book.py builds the book too
$(BOOK_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[book]"
	touch $(BOOK_STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(ROOT_FLAG) $(LAB_ARGS)

demo: $(STAMP)
	$(BIN)/amaml-lab demo

# ruff, then the tests that answer in minutes: everything but the integration tests (tests/integration: notebooks
# under papermill, the browser, the book, the scripts, memory measured in fresh processes, two ranks, CUDA; and the
# tests elsewhere marked integration, which start other processes)
test: $(STAMP) lint
	$(BIN)/python -m pytest -m "not integration"

# every test, the book's build and the browser included (what CI runs: .ci/run)
test-all: $(STAMP) $(BOOK_STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# every build runs every notebook (a few minutes); open _build/html/index.html, or publish it (.github/workflows/book.yml)
book: $(BOOK_STAMP)
	$(BIN)/jupyter-book build . --config book/_config.yml --toc book/_toc.yml --all

mutants: $(STAMP)
	$(BIN)/python tools/mutants.py --out docs/mutants.md

bench: $(STAMP)
	$(BIN)/python -m amaml_lab.bench

# the first compile paid ahead: the paper's settings and the horizon experiment's loop into inductor's cache, once
# per machine (minutes); a --compile run, the bench or a notebook then only loads them (seconds)
warm: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/amaml-lab warm

clean:
	rm -rf $(VENV) .pytest_cache _build
