# netlink-orchestrator — the two commands a new user runs (as root, on Debian 12):
#   make demo   install what is missing, then time Teredo moves with and without the daemon
#   make test   install what is missing, then run the whole suite (lint, types, unit, real kernel)

SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test deps venv lint bench clean

deps:
	@scripts/install-deps

# The virtualenv is rebuilt only when the project's metadata changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]'
	@touch $@

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# pytest exits 5 when it collected nothing: that is a broken suite, not a pass.
test: deps venv lint
	@$(BIN)/python -m pytest -q -p no:cacheprovider tests; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

demo: deps venv
	@$(BIN)/python scripts/demo.py

BENCHES := bench/latency.py bench/ingest.py bench/idle.py bench/hook.py bench/teredo_move.py bench/handover.py bench/exec.py bench/dependencies.py

bench: deps venv
	@for b in $(BENCHES); do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
