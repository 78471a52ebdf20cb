# Two commands for a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench clean

$(VENV)/.run-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.run-installed
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.run-installed
	$(BIN)/regshield serve

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src

test: $(VENV)/.test-installed
	scripts/test-services
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy src
	$(BIN)/pytest

bench: $(VENV)/.test-installed
	scripts/test-services
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) regshield-data .pytest_cache .mypy_cache .ruff_cache
