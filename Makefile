# Everything runs from a local virtualenv that `make` creates on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint example-store clean

$(STAMP): pyproject.toml plugins/daeflow-resunet/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[test]" -e plugins/daeflow-resunet
	touch $(STAMP)

run: $(STAMP)  ## Train conv_baseline on the demo data, logged to ./mlflow.db
	$(BIN)/daeflow run --arch conv_baseline

test: $(STAMP)  ## Lint, then the whole test suite
	$(BIN)/ruff check daeflow tests plugins bench scripts
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check daeflow tests plugins bench scripts
	$(BIN)/ruff format --check daeflow tests plugins bench scripts

example-store: $(STAMP)  ## Rebuild mlruns.example/, the demo store for 'daeflow ui --store mlruns.example'
	$(BIN)/python scripts/make_example_store.py

clean:
	rm -rf $(VENV) mlflow.db mlruns mlartifacts .pytest_cache
