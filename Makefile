# Two commands for a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HOST ?= 127.0.0.1
export PORT ?= 8000
export DATA_DIR ?= ./data

.PHONY: run test test-embedded test-scaled lint format bench clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/aggregator migrate
	$(BIN)/aggregator serve

# Embedded mode (SQLite, in-process bus and jobs), then scaled mode (PostgreSQL + Redis) when
# those are reachable. REQUIRE_SERVICES=1 turns "unreachable" into a failure (CI sets it).
test: $(STAMP) lint
	TEST_MODE=embedded $(BIN)/pytest -q -p no:cacheprovider
	TEST_MODE=scaled $(BIN)/pytest -q -p no:cacheprovider --ignore=tests/engine

test-embedded: $(STAMP)
	TEST_MODE=embedded $(BIN)/pytest -q -p no:cacheprovider

test-scaled: $(STAMP)
	TEST_MODE=scaled $(BIN)/pytest -q -p no:cacheprovider --ignore=tests/engine

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/api.py

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
