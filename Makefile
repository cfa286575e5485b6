# Everything runs from a local virtualenv that `make` creates on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := daeflow tests plugins bench scripts

.PHONY: run test test-fast lint example-store clean

$(STAMP): pyproject.toml plugins/daeflow-resunet/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[test]" -e plugins/daeflow-resunet
	touch $(STAMP)

run: $(STAMP)  ## Train conv_baseline on the demo data, logged to ./mlflow.db
	$(BIN)/daeflow run --arch conv_baseline

lint: $(STAMP)  ## ruff: lint and format check
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)

test: lint  ## Lint, then the whole test suite (CI)
	$(BIN)/python -m pytest -q -n 2 --dist worksteal

test-fast: lint  ## Lint, then the tests that train no model (the edit loop)
	$(BIN)/python -m pytest -q -n 2 --dist worksteal -m "not slow and not browser"

example-store: $(STAMP)  ## Rebuild mlruns.example/, the demo store for 'daeflow ui --store mlruns.example'
	$(BIN)/python scripts/make_example_store.py

clean:
	rm -rf $(VENV) mlflow.db mlruns mlartifacts .pytest_cache
