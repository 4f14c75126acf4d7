# flasfka: `make run` serves on an embedded broker, `make test` runs the tests,
# `make bench` measures throughput and latency against its baselines.
# Both create the virtualenv .venv (from PyPI) on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := setup.py $(wildcard flasfka/*.py flasfka/*/*.py twisted/plugins/*.py)
PYTEST_ARGS ?=
# Test files run in parallel, each file on one worker (the session broker and server are per
# worker; most of a test's time is waiting on group joins, so three workers fit two cores).
TEST_WORKERS ?= 3

.PHONY: run test lint bench clean

$(STAMP): $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/flasfka-serve --embedded-broker

test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# python -m bench: flasfka against a bare Klein app and direct confluent-kafka (~3.5 min),
# then python -m bench --workers: 1 against 2 worker processes (~5 min).
BENCH_ARGS ?=
bench: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y wrk || (apt-get update && apt-get install -y wrk)
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench --workers

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
