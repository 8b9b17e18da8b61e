# The README's commands. Each installs what it needs into .venv first (pinned by requirements.lock).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME := $(CURDIR)/data/dagster_home
export FUND_PIPELINE_DATA_DIR := $(CURDIR)/data
# One BLAS thread: the QR and solver work is small, and oversubscribed threads slow it 20-50x.
export OPENBLAS_NUM_THREADS := 1
export OMP_NUM_THREADS := 1

.PHONY: demo test test-fast lint ui bench faults real-sample import backfill emulator collect lock

$(BIN)/uv:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==0.13.9"

# --compile-bytecode: without .pyc files (uv's default, and PYTHONDONTWRITEBYTECODE where it is set)
# every process would recompile dagster, pandas and the rest at start-up, ~7 s of CPU each.
$(STAMP): pyproject.toml requirements.lock $(BIN)/uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fund-pipeline demo

test: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile --durations=25

# The fast part: no slow or end-to-end tests (under a minute).
test-fast: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadfile -m "not slow and not e2e"

# The reliability fault suite: every case of the reliability rules provoked for real on 127.0.0.1, a table of figures.
faults: $(STAMP)
	$(BIN)/python -m bench.faults

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Every source in one UI: the demo, the real sample and imports are code locations of workspace.yaml.
ui: $(STAMP)
	$(BIN)/fund-pipeline init-home
	$(BIN)/dagster dev -w workspace.yaml --host 127.0.0.1 --port 3000

bench: $(STAMP)
	$(BIN)/python -m bench

real-sample: $(STAMP)
	$(BIN)/fund-pipeline real-sample

# make import PATHS="exports/ more.csv.gz" ARGS="--venue bybit --clock utc"
import: $(STAMP)
	$(BIN)/fund-pipeline import $(PATHS) $(ARGS)

# make backfill ARGS="--venues binance,okx --bases BTC,ETH --since 2020-01-01"
backfill: $(STAMP)
	$(BIN)/fund-pipeline backfill $(ARGS)

emulator: $(STAMP)
	$(BIN)/fund-pipeline exchange-emulator --port 8765 --speed 60

collect: $(STAMP)
	$(BIN)/fund-pipeline collect --api-base-url http://127.0.0.1:8765

lock: $(BIN)/uv
	$(BIN)/uv pip compile pyproject.toml --extra test --python-version 3.11 -o requirements.lock
