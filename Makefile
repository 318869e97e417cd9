# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-slow lint typecheck unit bench histories clean postgres chromium

install: $(VENV)/.installed $(VENV)/.sim $(VENV)/.examples

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# The sim world, its own distribution (sim/pyproject.toml): its agents, and `agentctl sim` and
# `agentctl demo`, reach workers and agentctl through its entry points. Installed again when
# either pyproject changes.
$(VENV)/.sim: $(VENV)/.installed sim/pyproject.toml
	$(BIN)/python -m pip install --quiet -e ./sim
	touch $@

# The worked example, installed as any user's package would be: workers and agentctl find it
# through its entry point.
$(VENV)/.examples: $(VENV)/.installed examples/invoice_agent/pyproject.toml
	$(BIN)/python -m pip install --quiet -e examples/invoice_agent
	touch $@

demo: install
	$(BIN)/agentctl demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

typecheck: install
	$(BIN)/mypy durable_agents sim bench \
		examples/invoice_agent/invoice_agent

test: lint typecheck postgres chromium
	$(BIN)/pytest tests examples/invoice_agent/tests

# The longest end-to-end tests, which `make test` leaves out: worker versions moving runs at turn
# boundaries, a 200-turn run's history, a mixed fleet of workers, an MCP call across a SIGKILL.
test-slow: install postgres
	$(BIN)/pytest -m slow tests

# Chromium for the console's browser tests (Debian's package, installed when missing, as root).
chromium:
	bash tests/install_chromium.sh

# PostgreSQL for the audit log's tests (Debian's package, installed when missing, as root).
postgres:
	bash tests/install_postgres.sh

bench: install
	$(BIN)/python -m bench.throughput
	$(BIN)/python -m bench.history
	$(BIN)/python -m bench.cli_startup
	$(BIN)/python -m bench.hibernation
	$(BIN)/python -m bench.long_run
	$(BIN)/python -m bench.recovery
	$(BIN)/python -m bench.tokens
	$(BIN)/python -m bench.proofs
	$(BIN)/python -m bench.live

# Re-record the replay histories in tests/histories/ (commit the result).
histories: install
	$(BIN)/python -m tests.record_histories

clean:
	rm -rf .state .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
