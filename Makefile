# cloudd: `make serve` runs the cloud, `make test` runs every test.
# Both set up what they need on a fresh Debian/Ubuntu machine and are idempotent.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: serve test bench lint system-deps test-system-deps venv test-venv clean

# --- system packages (Debian's) ---------------------------------------------
# python3-venv for the virtualenv; PostgreSQL's server binaries for the tests,
# which start their own throwaway cluster with initdb/pg_ctl.
system-deps:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "installing python3-venv"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; }

test-system-deps: system-deps
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
	  echo "installing PostgreSQL (Debian's postgresql package) for the tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; \
	fi

# --- the virtualenv -----------------------------------------------------------
# Byte-compiled up front: start-up stays fast even where PYTHONDONTWRITEBYTECODE is set.
$(VENV)/.base: pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	$(BIN)/python -m compileall -q -j0 $(VENV)/lib cloudd >/dev/null
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/python -m compileall -q -j0 $(VENV)/lib >/dev/null
	touch $@

venv: $(VENV)/.base
test-venv: $(VENV)/.test

# --- the two commands -----------------------------------------------------------
serve: venv
	$(BIN)/cloudd serve

test: test-venv test-system-deps
	$(BIN)/pytest -q

bench: test-venv
	$(BIN)/python bench/run.py

lint: test-venv
	$(BIN)/pip install -q ruff
	$(BIN)/ruff check cloudd tests bench

clean:
	rm -rf $(VENV)
