# `make demo` and `make test` work from a fresh clone with only Python 3.11 installed: they
# create .venv and install everything first (PyTorch 2.13.0, CPU build, for the demo model).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP := $(PY) -m pip --disable-pip-version-check -q
# Every install of the test and demo environment uses the pinned versions in constraints.txt
# (pyproject.toml keeps the package's own ranges loose). To refresh the pins, see the header of
# constraints.txt: `make clean && make install CONSTRAINTS=/dev/null`, test, then freeze.
CONSTRAINTS ?= constraints.txt

.PHONY: help install browser postgres promtool bare-install test-under-load demo test lint format pytest bench clean

help:
	@echo "make demo    build and serve models, measure edge vs cloud, run a server and 3 agents"
	@echo "make test    lint (ruff, mypy, import contracts) and the whole test suite"
	@echo "make lint    only the static checks"
	@echo "make test-under-load  the test suite with a busy loop on every core beside it"
	@echo "make bench   run the performance benchmarks in benchmarks/ (prints ratios)"

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c $(CONSTRAINTS) torch==2.13.0
	$(PIP) install -c $(CONSTRAINTS) -e '.[dev,train]'
	@touch $(STAMP)

install: $(STAMP)

# The report tests open pages in a real headless browser: Debian's Chromium.
CHROMIUM := $(shell command -v chromium || command -v chromium-browser)
browser:
ifeq ($(CHROMIUM),)
	@echo "installing Debian's chromium for the browser tests"
	@if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null
endif

# The store's contract tests start a throwaway PostgreSQL cluster of their own
# (edgefleet.testing.postgres); they only need the server binaries (initdb, pg_ctl).
INITDB := $(shell command -v initdb || ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
postgres:
ifeq ($(INITDB),)
	@echo "installing Debian's postgresql for the store tests"
	@if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null
endif

# The agent's /metrics test checks the exposition with `promtool check metrics` (Debian's
# prometheus package; only promtool is used, no Prometheus server is started).
PROMTOOL := $(shell command -v promtool)
promtool:
ifeq ($(PROMTOOL),)
	@echo "installing Debian's prometheus (for promtool) for the metrics tests"
	@if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
endif

demo: $(STAMP)
	$(VENV)/bin/edgefleet demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

# Two workers, one test file each at a time: most end-to-end time is waiting on subprocesses.
pytest: $(STAMP) browser postgres promtool
	$(PY) -m pytest -n 2 --dist loadfile

# `pip install edgefleet` with no extras, in a venv of its own: the device commands work, the others
# name the extra to install.
bare-install:
	PYTHON=$(PYTHON) bash scripts/check-bare-install.sh

test: lint pytest bare-install

# The suite must stay green on a busy machine: the same run with a busy loop on every core beside it.
test-under-load: $(STAMP) browser postgres promtool
	@hogs=""; for i in $$(seq $$(nproc)); do $(PY) -c 'while True: pass' & hogs="$$hogs $$!"; done; \
	  $(PY) -m pytest -n 2 --dist loadfile; rc=$$?; kill $$hogs; exit $$rc

bench: $(STAMP) postgres
	$(PY) benchmarks/runtime_overhead.py
	$(PY) benchmarks/pipeline.py
	$(PY) benchmarks/serve_vs_mlserver.py
	$(PY) benchmarks/bench_vs_loadgen.py
	$(PY) benchmarks/fleet_load.py --devices 5000 --duration 30
	$(PY) benchmarks/rollout_sim.py --devices 1000
	$(PY) benchmarks/fl_vs_flower.py
	$(PY) benchmarks/fl_rounds.py
	$(PY) benchmarks/fl_codec_speed.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis benchmarks/results
