# amaml_lab: `make lab` (JupyterLab on notebooks/), `make demo` (headless), `make test` (every test).
# Each target sets up .venv first.  pip honours PIP_CONSTRAINT (CI pins torch with it: see .ci/run).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lab demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[lab,test]"
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

demo: $(STAMP)
	$(BIN)/amaml-lab demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m amaml_lab.bench

clean:
	rm -rf $(VENV) .pytest_cache
