# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LINT_PATHS := $(wildcard src tests benchmarks examples)

.PHONY: demo test lint typecheck unit bench e2e clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[testing]"
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.demo-installed

$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $@ $(VENV)/.dev-installed $(VENV)/.demo-installed

## Run the story of the original outage on an embedded in-memory Redis.
demo: $(VENV)/.demo-installed
	$(BIN)/rbac-abac-cache demo

## Lint, type-check and run the whole test suite (starts its own redis-servers).
test: lint typecheck unit

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

unit: $(VENV)/.dev-installed
	$(BIN)/pytest -p no:cacheprovider

## Benchmarks against the anchors; writes docs/benchmarks.md.
bench: $(VENV)/.bench-installed
	$(BIN)/python benchmarks/run_all.py

$(VENV)/.e2e-installed: pyproject.toml examples/requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[django,flask]" -r examples/requirements.txt
	touch $@

## Play the six scenarios on Redis and the three example services (no Docker).
e2e: $(VENV)/.e2e-installed
	$(BIN)/python examples/e2e

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .hypothesis build dist
