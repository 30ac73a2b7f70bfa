# The two commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/gateway.toml

.PHONY: run test lint typecheck bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[postgres]'
	touch $@

# the example external adapter is installed too: the suite checks its entry point and runs
# the conformance kit on it
$(VENV)/.installed-dev: $(BIN)/python pyproject.toml examples/external-adapter/pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]' -e examples/external-adapter
	touch $(VENV)/.installed $@

run: $(VENV)/.installed
	$(BIN)/edi-gateway serve --config $(CONFIG)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check gateway adapters tests examples bench

# mypy --strict with the pydantic plugin over gateway/ and adapters/ ([tool.mypy])
typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

test: $(VENV)/.installed-dev lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The reliability rows at soak size (about 30 minutes on 2 cores): crash storms with
# SIGKILLs (SQLite, PostgreSQL x3), kills during ingest, a long outage, full-disk, SIGSTOP
# takeovers, fuzzing with 20x the CI examples. PostgreSQL rows need EDIGW_TEST_POSTGRES_DSN.
SOAK_ENV := EDIGW_SOAK_ROW1_FILINGS=150000 EDIGW_SOAK_ROW1_DEADLINE_S=900 \
	EDIGW_SOAK_ROW2_FILINGS=100000 EDIGW_SOAK_ROW2_DEADLINE_S=600 \
	EDIGW_SOAK_ROW3_POSTS=30000 EDIGW_SOAK_ROW5_FILINGS=20000 EDIGW_SOAK_FUZZ_EXAMPLES=6000 \
	EDIGW_SOAK_LIFECYCLE_EXAMPLES=200

soak: $(VENV)/.installed-dev
	$(SOAK_ENV) $(BIN)/python -m pytest tests/reliability tests/lifecycle -o timeout=1200 $(PYTEST_ARGS)

$(VENV)/.installed-bench: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[postgres,bench]'
	touch $@

# the performance table of issue 9 (about 10 min; BENCH_ARGS="--long" for row 8 over 10 min)
bench: $(VENV)/.installed-bench
	@command -v wrk >/dev/null || { echo "installing wrk (the load generator)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk) \
	  || { echo "cannot install wrk: apt-get install wrk"; exit 2; }; }
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache
