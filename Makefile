# `make demo`: create .venv, install, run the demo.  `make test`: the test suite.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp
PIP     := $(BIN)/pip install --disable-pip-version-check -q -c requirements/constraints.txt

.PHONY: venv demo test lint bench clean

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PY) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/aae demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto   # one worker per core (pytest-xdist): 7.7 instead of 12.4 min on 2 cores

lint: $(STAMP)
	$(BIN)/ruff check src tests bench experiments

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
