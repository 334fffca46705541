# Two commands for a new user: `make run` and `make test`. Both create .venv and install Vigie into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench fuzz crash audit clean

$(STAMP): pyproject.toml setup.py monitor/rules/_native.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/vigie once

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check monitor tests bench service.py setup.py
	$(BIN)/ruff format --check monitor tests bench service.py setup.py
	$(BIN)/lint-imports

fuzz: $(STAMP)
	VIGIE_FUZZ_EXAMPLES=20000 $(BIN)/python -m pytest tests/test_fuzz.py

# The SIGKILL test with many kills (a minute or two); VIGIE_KILL_SEED=N picks other moments.
crash: $(STAMP)
	VIGIE_LONG_TESTS=1 $(BIN)/python -m pytest tests/test_crash_safety.py

# Installed packages against known vulnerabilities (pip-audit asks PyPI's advisory database, so
# it needs the network). Only this target installs pip-audit: `make test` never needs it.
audit: $(STAMP)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools
	$(BIN)/python -m pip install --quiet -e '.[test,audit]'
	$(BIN)/pip-audit --skip-editable

# Benchmarks, about half an hour on 2 slow cores (`make bench BENCH=--quick`: a third of that);
# results and the machine in bench/results.md. The bench extra holds what only the benchmarks
# compare against.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python -m bench $(BENCH)

clean:
	rm -rf $(VENV) data outbox
