# Plataforma — the two commands are `make run` and `make test`. Everything else is a helper.
SHELL := /bin/bash
PYTHON ?= python3
TOOLS := .tools
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test lint bench fmt clean help postman

help:
	@echo "make run    - the whole platform (embedded PostgreSQL + Kafka + services + gateway on :8080)"
	@echo "make test   - lint + the whole test suite against real PostgreSQL and Kafka"
	@echo "make lint   - ruff + import-linter (service boundaries)"
	@echo "make bench  - dispatcher benchmarks (prints a table; not part of the tests)"
	@echo "make test-chaos - long chaos runs: 1,000 creates while each part is killed; prints lost/duplicated"
	@echo "make postman - regenerate postman/Plataforma.postman_collection.json from the OpenAPI specs"
	@echo "make dashboard-png - docs/overview.png: the overview dashboard drawn from a bench run scraped by Prometheus"

# uv comes from PATH, or is installed once into .tools/ with the machine's Python.
$(TOOLS)/bin/uv:
	@echo "==> installing uv into $(TOOLS)/"
	@$(PYTHON) -m venv $(TOOLS) && $(TOOLS)/bin/pip install -q uv

# Bytecode is compiled ahead, not left to each process: every service (7 under `make run`, dozens started by the
# tests and the bench) is its own interpreter, and where PYTHONDONTWRITEBYTECODE is set (CI runners, containers)
# none of them keeps what it compiled -- measured: 3.3 s of CPU to import the conversations service from
# source, 1.2 s from bytecode. uv compiles the installed packages; `bytecode` our own sources (a few ms when
# nothing changed).
$(VENV)/.synced: pyproject.toml uv.lock $(wildcard libs/*/pyproject.toml services/*/pyproject.toml) | $(UV)
	@echo "==> syncing the workspace into $(VENV)/ (uv sync --frozen --compile-bytecode)"
	@$(UV) sync --frozen --python $(PYTHON) -q --compile-bytecode
	@touch $@

.PHONY: bytecode
bytecode: $(VENV)/.synced
	@$(PY) -m compileall -q libs services bench tools > /dev/null

run: bytecode
	@$(VENV)/bin/plataforma-run

lint: bytecode
	@echo "==> ruff"
	@$(VENV)/bin/ruff check .
	@echo "==> import-linter (services share only libs/common)"
	@$(VENV)/bin/lint-imports

test: lint
	@echo "==> pytest (real PostgreSQL + tansu broker + services)"
	@$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: bytecode
	@$(PY) -m bench

postman: $(VENV)/.synced
	@$(PY) tools/postman.py

fmt: $(VENV)/.synced
	@$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .ruff_cache

# Opt-in, not part of `make test`: the N8N bridge against a real n8n from the npm registry (Node 24 +
# n8n 2.41.1 cached in .n8n/: ~3 minutes and ~3.9 GB the first time), started on 127.0.0.1:5678.
.PHONY: test-n8n
test-n8n: $(VENV)/.synced
	@bash tools/n8n_real.sh $(PYTEST_ARGS)

# Opt-in, not part of `make test`: a real Prometheus (Debian package `prometheus`, installed with apt-get when
# missing) scrapes the platform started as `make run` starts it during a ~1 minute workload; every dashboard
# panel must return data and every alert evaluate; then promtool checks and unit-tests the rules.
# OVERVIEW_PNG=<path> also draws the overview dashboard from that run (deploy/grafana/render.py).
.PHONY: test-observability prometheus dashboard-png
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus)

test-observability: $(VENV)/.synced prometheus
	@PLATAFORMA_OBSERVABILITY=1 $(VENV)/bin/pytest tests/deploy/test_observability.py tests/deploy/test_alerts.py $(PYTEST_ARGS)

# The README's picture (docs/overview.png): deploy/grafana/render.py runs the bench (DASHBOARD_BENCH scenarios,
# ~3 minutes) while a real Prometheus scrapes its services every second, then draws the overview dashboard from
# Prometheus's answers with matplotlib. Against a Prometheus already running: see `render.py --help`.
DASHBOARD_BENCH ?= d,e,g,b
dashboard-png: $(VENV)/.synced prometheus
	@$(PY) deploy/grafana/render.py --bench $(DASHBOARD_BENCH) --out docs/overview.png
# Opt-in, long (~10 min): the chaos burst (1,000 tenant creates at 100/s through the gateway to an HTTPS
# subscriber) with each kill -- dispatcher + tenants, broker, PostgreSQL, gateway, full stop/start --
# printing lost (must be 0) and duplicated deliveries. The short case runs in `make test`.
.PHONY: test-chaos
test-chaos: bytecode
	@CHAOS_FULL=1 $(VENV)/bin/pytest tests/chaos -s -o timeout=900 $(PYTEST_ARGS)
