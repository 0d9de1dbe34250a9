# claw-ledger: every target bootstraps what it needs, idempotently.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install browser run test lint typecheck unit bench down clean

## install: virtualenv + the project and its dev tools (re-run only when pyproject.toml changes)
install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

## run: start Kafka, Postgres and the processor, then play the demo scenario
run: install
	@$(BIN)/claw-ledger up --detach
	@$(BIN)/claw-ledger demo
	@echo
	@echo "The ledger keeps running. Try:  $(BIN)/claw-ledger timeline --help"
	@echo "Stop everything with:          $(BIN)/claw-ledger down"

## browser: a headless Chromium for the Trust Pulse browser tests (Debian's package;
## Playwright drives it, so nothing downloads a browser of its own)
browser:
	@command -v chromium >/dev/null 2>&1 || test -n "$$CLAW_LEDGER_CHROMIUM" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (apt-get)"; \
	    apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
	    || { apt-get update -qq >/dev/null 2>&1 && \
	         apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; \
	  else \
	    echo "make browser: install Chromium (Debian: apt-get install chromium)," \
	         "or set CLAW_LEDGER_CHROMIUM to a Chromium binary" >&2; exit 1; \
	  fi; }

## test: lint, type-check and the whole test suite against real Kafka and Postgres
test: install browser lint typecheck
	@$(BIN)/pytest

## unit: only the tests that need no server
unit: install
	@$(BIN)/pytest -m "not integration"

PY_DIRS := ledger openclaw_policy consumers producers storage migrations claw_ledger tests bench

lint: install
	@$(BIN)/ruff check $(PY_DIRS)
	@$(BIN)/ruff format --check $(PY_DIRS)

typecheck: install
	@$(BIN)/mypy

## bench: measured throughput and latency; writes docs/benchmarks.md
bench: install
	@$(BIN)/python -m bench

down: install
	@$(BIN)/claw-ledger down

clean:
	rm -rf $(VENV) .claw-ledger .pytest_cache .mypy_cache .ruff_cache
