"""Concurrent writers: runs at once on the PostgreSQL warehouse store what serial runs store on the DuckDB
file; a second writer of the DuckDB file is told what to do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from fund_pipeline.instance import prepare_home
from fund_pipeline.resources import WAREHOUSE_POOL, LandingZone, MarketSourceResource, Warehouse
from fund_pipeline.warehouse import LOCK_WAIT_S, WAREHOUSE_URL_ENV, WAREHOUSE_WRITERS_ENV, WarehouseError
from fund_pipeline_tests.landing_snapshots import evaluate, land_snapshots
from fund_pipeline_tests.postgres_server import create_database
from fund_pipeline_tests.writer_runs import RunSpec, materialise

DAY = "2025-03-10"
VENUES = ["binance", "bybit", "okx", "hyperliquid"]
BASES = ["BTC"]
# Two of the ingest assets of a day × venue backfill; raw_funding_prints' expectations suite costs each
# fresh process tens of seconds on a busy machine, and its PostgreSQL rows are tested in test_warehouse_postgres.
BACKFILL = ["market_universe", "market_bars"]


def specs(landing: Path, window: str, database: str | None = None) -> list[RunSpec]:
    """A backfill run per venue and the live_curve run the sensor asks for."""
    keys = [(BACKFILL, f"{DAY}|{venue}") for venue in VENUES] + [(["live_curve"], window)]
    runs: list[RunSpec] = [
        {"assets": assets, "first": key, "last": key, "bases": BASES, "landing": str(landing)} for assets, key in keys
    ]
    if database is not None:
        for run in runs:
            run["database"] = database
    return runs


def every_table(read) -> dict[str, pd.DataFrame]:
    """Every stored table, rows sorted by all columns (the row order of a table is not part of it)."""
    tables = read("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'")["table_name"]
    out = {}
    for table in sorted(tables):
        rows = read(f'SELECT * FROM "{table}"')
        out[table] = rows.sort_values(list(rows.columns), kind="stable", ignore_index=True)
    return out


@pytest.mark.e2e
def test_backfill_and_sensor_runs_at_once_on_postgres_store_what_serial_runs_store_on_the_duckdb_file(
    tmp_path, monkeypatch, postgres_server
):
    for variable in (WAREHOUSE_URL_ENV, "DAGSTER_PG_HOST"):
        monkeypatch.delenv(variable, raising=False)
    landing = tmp_path / "landing"
    land_snapshots(landing, [1, 12, 25])
    requests, _ = evaluate(LandingZone(path=str(landing)), None)
    window = requests[0][0]
    duck_file = str(tmp_path / "serial.duckdb")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "serial_home"))
    prepare_home(tmp_path / "serial_home")
    serial = [materialise(spec) for spec in specs(landing, window, duck_file)]
    assert all(run["success"] for run in serial), [run["failure"] for run in serial]

    monkeypatch.setenv("DAGSTER_PG_HOST", postgres_server.host)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(postgres_server.port))
    monkeypatch.setenv("DAGSTER_PG_DB", "runs")
    create_database(postgres_server, "runs")
    monkeypatch.setenv(WAREHOUSE_URL_ENV, create_database(postgres_server, "concurrent"))
    monkeypatch.setenv(WAREHOUSE_WRITERS_ENV, "4")
    # prepare_home makes the pool's limit row before the runs (first claims at once would collide on it).
    home = prepare_home(tmp_path / "pg_home")
    runs = specs(landing, window)
    command = [sys.executable, "-m", "fund_pipeline_tests.writer_runs", str(tmp_path / "barrier"), str(len(runs))]
    processes = [subprocess.Popen([*command, json.dumps(run)], stdout=subprocess.PIPE, text=True) for run in runs]
    outcomes = []
    for process in processes:
        out, _ = process.communicate(timeout=600)
        outcomes.append(json.loads([line for line in out.splitlines() if line.startswith("{")][-1]))
    assert [(o["success"], o["failure"]) for o in outcomes] == [(True, None)] * len(runs), "no lock error, no other"
    assert max(o["started"] for o in outcomes) < min(o["finished"] for o in outcomes), "all runs were in flight at once"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 4

    def from_duck(sql: str) -> pd.DataFrame:
        return Warehouse(database=duck_file).query(sql)

    def from_postgres(sql: str) -> pd.DataFrame:
        return Warehouse.from_env().query(sql.replace("table_type", "table_schema = current_schema() AND table_type"))

    expected, stored = every_table(from_duck), every_table(from_postgres)
    assert sorted(stored) == sorted(expected) == sorted([*BACKFILL, "live_curve"])
    for table, rows in expected.items():
        assert len(rows) > 0, table
        pd.testing.assert_frame_equal(stored[table], rows, check_exact=True, obj=table)


HOLD_WAREHOUSE = """
import sys, time
from fund_pipeline.resources import Warehouse
with Warehouse(database=sys.argv[1]).connection():
    print("writing", flush=True)
    time.sleep(120)
"""


@pytest.mark.slow
def test_a_second_materialize_on_the_duckdb_file_while_one_writes_says_what_to_do(tmp_path):
    database = str(tmp_path / "warehouse.duckdb")
    duckdb.connect(database).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WAREHOUSE, database], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "writing"
        from fund_pipeline.demo import load_definitions

        resources = {
            "warehouse": Warehouse(database=database),
            "market_source": MarketSourceResource(bases=["BTC"]),
            "landing": LandingZone(path=str(tmp_path / "landing")),
        }
        with pytest.raises(WarehouseError) as error:
            dg.materialize(
                [a for a in load_definitions().assets or [] if isinstance(a, dg.AssetsDefinition)],
                selection=["raw_funding_prints"],
                partition_key=f"{DAY}|binance",
                resources=resources,
                instance=dg.DagsterInstance.ephemeral(),
            )
    finally:
        holder.kill()
        holder.wait()
    message = str(error.value)
    assert f"PID {holder.pid}" in message and "Wait for that run to finish" in message
    assert WAREHOUSE_URL_ENV in message and f"waited {LOCK_WAIT_S:.0f} s" in message
