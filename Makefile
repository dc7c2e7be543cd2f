# PRODPLAN: `make demo` (embedded PostgreSQL, demo workbook, dashboards) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SCALE ?= 0.05
SEED ?= 42
AS_OF ?= 2025-12-15
DEMO_WORKBOOK ?= var/demo/Folha_IA_demo_$(SCALE).xlsx
PORT ?= 8000
HOST ?= 127.0.0.1

.PHONY: setup browser demo test run serve migrate lint e2e bench-ingest bench-api bench-whatif bench-whatif-counterfactual bench-ml bench-order-state bench-soak bench-full clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

migrate: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py pgpartition --yes

# Embedded defaults: with no DATABASE_URL the project runs its own PostgreSQL (pgserver, var/pgdata);
# with no REDIS_URL the cache is in-process and Celery tasks run eagerly.
demo: setup
	DJANGO_DEBUG=1 $(PY) manage.py demo --scale $(SCALE) --seed $(SEED) --as-of $(AS_OF) --workbook $(DEMO_WORKBOOK) --host $(HOST) --port $(PORT)

# Real data: make run WORKBOOK=path/to/Folha_IA.xlsx
run: setup
	@test -n "$(WORKBOOK)" || (echo "usage: make run WORKBOOK=path/to/Folha_IA.xlsx" && exit 2)
	DJANGO_DEBUG=1 $(PY) manage.py demo --workbook "$(WORKBOOK)" --no-generate --host $(HOST) --port $(PORT)

serve: setup
	DJANGO_DEBUG=1 $(PY) manage.py runserver --noreload $(HOST):$(PORT)

# Debian's Chromium for the real-browser tests (best effort: without it those tests skip and say why).
browser:
	@command -v chromium >/dev/null 2>&1 || { (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 || echo "chromium not installed: browser tests will be skipped"; }

# The whole suite against PostgreSQL (DATABASE_URL, else the embedded server). pytest's exit 5 (no tests) is not a failure.
test: setup browser
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run > /dev/null
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# Real-browser tests alone (they also run inside make test; Chromium comes from Debian's package).
e2e: setup
	$(PY) -m pytest tests/e2e -m e2e

lint: setup
	$(PY) -m ruff check .

# Benchmarks (figures in bench/results/*.json; the release gate reads their "met" goals).
# bench-ingest generates the full-scale workbook if missing; the others run on DATABASE_URL's loaded data.
bench-ingest: setup
	$(PY) bench/ingest.py --scale $(or $(BENCH_SCALE),1.0)

bench-api: setup
	$(PY) bench/api_load.py

bench-soak: setup
	$(PY) bench/soak.py --duration 600

bench-whatif: setup
	$(PY) bench/whatif.py

# Two demo workbooks that differ only in the gate's capacity from D; the what-if at D predicts the change
# (scratch databases prodplan_bench_cf_* on DATABASE_URL's server).
bench-whatif-counterfactual: setup
	$(PY) bench/whatif_counterfactual.py

bench-ml: setup
	$(PY) bench/ml.py

# The order-state query at one as_of against the previous schedule/current query (same run; the ratio is the figure).
bench-order-state: setup
	$(PY) bench/order_state.py

bench-full: bench-ingest bench-api bench-whatif bench-ml bench-order-state

clean:
	rm -rf var/demo var/uploads test-artifacts
