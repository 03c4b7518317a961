# Two commands on a fresh machine: `make demo` and `make test`. Each one creates or updates
# .venv from the committed lock file (requirements.lock) before it runs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
PYTEST_ARGS ?=

.PHONY: venv demo test lint bench bench-large lock ui soak clean format

venv: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync -q --python $(BIN)/python --compile-bytecode requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

# Azurite (Azure Blob emulator) for the Blob tests, pinned in package.json / package-lock.json.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

lock:
	$(BIN)/uv pip compile -q pyproject.toml --extra dev --python-version 3.11 -o requirements.lock
	npm install --package-lock-only --no-audit --no-fund

# make demo and make ui share one Dagster instance and one DQ store (.dagster/dq/dq.db), so the
# runs the demo materializes show up in the UI.
DAGSTER_HOME_DIR := $(CURDIR)/.dagster

demo: venv
	mkdir -p $(DAGSTER_HOME_DIR)
	DAGSTER_HOME=$(DAGSTER_HOME_DIR) $(BIN)/python -m dq_dagster.demo

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check dq_stores dq_dagster tests bench
	$(BIN)/ruff format --check dq_stores dq_dagster tests bench
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format dq_stores dq_dagster tests bench
	$(BIN)/ruff check --fix dq_stores dq_dagster tests bench

bench: venv
	$(BIN)/uv pip install -q --python $(BIN)/python "great-expectations==1.24.1"
	$(BIN)/python -m bench

# Rows 13-14 (10M rows in Postgres, ~100M rows streamed from Parquet): ~15 minutes, ~3 GB of
# temporary disk (DQ_BENCH_TMP, else /tmp; deleted afterwards); merged into bench/results/latest.json.
bench-large: venv
	$(BIN)/python -m bench --only 13,14

# The 60-second Postgres load test (make test runs it for 10 seconds).
soak: venv
	DQ_SOAK_SECONDS=60 $(BIN)/python -m pytest -m "reliability and slow" -k soak $(PYTEST_ARGS)

# The Dagster UI on the demo code location.
ui: venv
	mkdir -p $(DAGSTER_HOME_DIR)
	# Materializations from the UI refresh the data-docs site make demo built (dq/report links).
	DAGSTER_HOME=$(DAGSTER_HOME_DIR) DQ_STORES_DOCS_DIR=$${DQ_STORES_DOCS_DIR:-$(DAGSTER_HOME_DIR)/dq/docs} \
		$(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .dq
