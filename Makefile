# The two commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/gateway.toml

.PHONY: run test lint bench soak clean

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
	$(BIN)/ruff check gateway adapters tests examples

test: $(VENV)/.installed-dev lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
