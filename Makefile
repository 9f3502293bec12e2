# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.tprm-installed

.PHONY: demo test lint install clean readme-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The tests also cover the Ray backend and the weightwatcher metrics, so they install the optional
# [ray] and [ww] extras (demo does not).
TEST_STAMP := $(VENV)/.tprm-test-installed
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,ray,ww]'
	touch $(TEST_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/tprm demo

# Rerun the demo and rewrite README.md's demo block from its real output (1-3 min on a CPU).
readme-demo: $(STAMP)
	$(BIN)/python scripts/readme_demo.py

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q

# ruff (lint rules; formatting is not enforced) and mypy on tprm/, both configured in pyproject.toml;
# then the layer contract (import-linter, [tool.importlinter]) and no import circles (docs/lint.md).
lint: $(STAMP)
	$(BIN)/ruff check tprm
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python scripts/import_cycles.py tprm

clean:
	rm -rf $(VENV) .pytest_cache
