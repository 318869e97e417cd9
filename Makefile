# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint typecheck unit bench histories clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: install
	$(BIN)/agentctl demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy durable_agents workflows activities workers starters sim bench

test: lint typecheck
	$(BIN)/pytest

bench: install
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.history
	$(BIN)/python -m bench.cli_startup

# Re-record the replay histories in tests/histories/ (commit the result).
histories: install
	$(BIN)/python -m tests.record_histories

clean:
	rm -rf .state .pytest_cache .mypy_cache .ruff_cache
