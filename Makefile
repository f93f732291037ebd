# `make demo`: create .venv, install, run the demo.  `make test`: the whole test suite (CI runs it);
# `make test-fast`: the unit tests alone, for day-to-day work.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp
PIP     := $(BIN)/pip install --disable-pip-version-check -q -c requirements/constraints.txt

.PHONY: venv demo test test-fast lint bench clean

$(STAMP): pyproject.toml requirements/constraints.txt
	$(PY) -m venv $(VENV)
	$(PIP) torch==2.13.0
	$(PIP) -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/aae demo --out runs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist worksteal   # one worker per core (pytest-xdist); idle workers take queued tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n auto -m "not slow"   # day-to-day: the unit tests, no real-data or bit-for-bit runs

lint: $(STAMP)
	$(BIN)/ruff check src tests bench experiments

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
