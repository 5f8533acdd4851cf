# The front door. Every target bootstraps .venv itself from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= var
ORIGIN ?= demo.mandi.example/log

.PHONY: run test check bench vectors clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python scripts/run_demo.py --data-dir $(DATA_DIR) --origin $(ORIGIN)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

check: $(STAMP)
	$(BIN)/ruff format --check ledger api client scripts tests
	$(BIN)/ruff check ledger api client scripts tests
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python scripts/bench.py

vectors: $(STAMP)
	$(BIN)/python scripts/gen_vectors.py

clean:
	rm -rf $(VENV) $(DATA_DIR) bench .pytest_cache .mypy_cache .ruff_cache .hypothesis
