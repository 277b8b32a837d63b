# amaml_lab: `make lab` (JupyterLab on notebooks/), `make demo` (headless), `make test` (every test).
# Each target sets up .venv first.  pip honours PIP_CONSTRAINT (CI pins torch with it: see .ci/run).
#   make lab LAB_ARGS="--port 9999 --no-browser"     extra JupyterLab flags (--allow-root is added for root)
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cpu   PyTorch's CPU build on a machine without a GPU
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB_ARGS ?=
TORCH_INDEX ?=
# JupyterLab refuses to start as root (the usual user in a container) unless told
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: install lab demo test bench mutants clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(BIN)/python -m pip install --quiet torch --index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[lab,test,peers]"
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/ $(ROOT_FLAG) $(LAB_ARGS)

demo: $(STAMP)
	$(BIN)/amaml-lab demo

test: $(STAMP)
	$(BIN)/python -m pytest

mutants: $(STAMP)
	$(BIN)/python tools/mutants.py --out docs/mutants.md

bench: $(STAMP)
	$(BIN)/python -m amaml_lab.bench

clean:
	rm -rf $(VENV) .pytest_cache
