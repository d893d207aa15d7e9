# netlink-orchestrator — the two commands a new user runs (as root, on Debian 12):
#   make demo   install what is missing, then time Teredo moves with and without the daemon
#   make test   install what is missing, then run the whole suite (lint, types, unit, real kernel)
#   make unit   the unit tests alone (tests/unit), in seconds

SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo demo-failover test unit deps venv lint bench soak clean

deps:
	@scripts/install-deps

# The virtualenv is rebuilt only when the project's metadata changes.  It holds the project with its
# test extra and the test-support package (tests/testkit), both editable.
$(STAMP): pyproject.toml tests/testkit/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[test]' -e tests/testkit
	@touch $@

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

# pytest exits 5 when it collected nothing: that is a broken suite, not a pass.
PYTEST = $(BIN)/python -m pytest -q -rs -p no:cacheprovider
NO_TESTS = if [ $$rc -eq 5 ]; then echo "make $@: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The whole suite: lint, types, unit tests and the real-kernel tests (root, namespaces).
test: deps venv lint
	@$(PYTEST) tests/unit tests/kernel; rc=$$?; $(NO_TESTS)

# The unit tests alone, in seconds: no network namespaces; as root (the tests of the control
# socket's credentials skip otherwise) with systemd-analyze, which `make deps` installs.
unit: venv
	@$(PYTEST) tests/unit; rc=$$?; $(NO_TESTS)

demo: deps venv
	@$(BIN)/python scripts/demo.py

# The hot standby: eth0's carrier lost and back, with a standby tunnel on a second uplink, with one
# tunnel over two uplinks, and with one uplink (about 40 s).
demo-failover: deps venv
	@$(BIN)/python bench/failover.py --events 3 --idle-s 0

# The fault-injection soak of the hot standby: SEED (default: a random one, printed) and FAULTS
# (default 200); a violation prints the `make soak SEED=... FAULTS=...` that replays it.
SEED   ?=
FAULTS ?= 200

soak: deps venv
	@$(BIN)/python scripts/soak.py --faults $(FAULTS) $(if $(SEED),--seed $(SEED))

BENCHES := bench/latency.py bench/ingest.py bench/idle.py bench/hook.py bench/teredo_move.py bench/handover.py bench/exec.py bench/dependencies.py bench/restart.py bench/failover.py bench/metrics.py

bench: deps venv
	@for b in $(BENCHES); do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info tests/testkit/*.egg-info .mypy_cache .ruff_cache
