"""Backfill throughput with 1, 2 and 4 writers on the PostgreSQL warehouse against the DuckDB file (1 writer).

The backfill is `raw_funding_prints` → `curve_history` over day × venue partitions, one single run per
venue (as `make demo` runs it); W writers are W processes sharing the venues, all on one PostgreSQL
Dagster instance (the `warehouse` pool at 4 slots), started together behind a barrier once their imports
are done, so the clock runs from the first run's start to the last run's end. The reference is the same
backfill by one writer on the DuckDB file, timed in the same run; every configuration must store the
reference's rows. A throwaway PostgreSQL server (the tests' one) is started and removed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypedDict

import pandas as pd

from bench._common import BenchResult, quick_parser, report
from fund_pipeline.resources import Warehouse
from fund_pipeline.warehouse import WAREHOUSE_URL_ENV, WAREHOUSE_WRITERS_ENV
from fund_pipeline_tests.postgres_server import create_database, running_postgres
from fund_pipeline_tests.writer_runs import RunSpec

BACKFILL_ASSETS = ["raw_funding_prints", "curve_history"]
VENUES = ("binance", "bybit", "okx", "hyperliquid")
FIRST_DAY = pd.Timestamp("2025-01-01", tz="UTC")
WRITER_COUNTS = (1, 2, 4)
POOL_SLOTS = 4
# The 4-writer PostgreSQL backfill should beat the 1-writer DuckDB file by this much.
TARGET_SPEEDUP = 1.5


class Size(TypedDict):
    days: int
    bases: list[str]


FULL: Size = {"days": 7, "bases": ["BTC", "ETH", "SOL"]}
QUICK: Size = {"days": 1, "bases": ["BTC"]}


class Backfill(TypedDict):
    seconds: float
    rows: int
    tables: dict[str, pd.DataFrame]


def _specs(size: Size, venues: list[str], landing: str, database: str | None) -> list[RunSpec]:
    last = FIRST_DAY + pd.Timedelta(days=size["days"] - 1)
    specs: list[RunSpec] = []
    for venue in venues:
        spec: RunSpec = {
            "assets": BACKFILL_ASSETS,
            "first": f"{FIRST_DAY:%Y-%m-%d}|{venue}",
            "last": f"{last:%Y-%m-%d}|{venue}",
            "bases": size["bases"],
            "landing": landing,
        }
        if database is not None:
            spec["database"] = database
        specs.append(spec)
    return specs


@contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    """os.environ with `values` set (None: unset) for the block: prepare_home and the writers read it."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _backfill(size: Size, writers: int, folder: Path, warehouse: Warehouse) -> Backfill:
    """The backfill by `writers` processes (venues dealt round-robin); wall time from first start to last end."""
    barrier = folder / f"barrier-{writers}-{'postgres' if warehouse.url else 'duckdb'}"
    database = None if warehouse.url else warehouse.database
    shares = [list(VENUES[k::writers]) for k in range(writers)]
    command = [sys.executable, "-m", "fund_pipeline_tests.writer_runs", str(barrier), str(writers)]
    processes = [
        subprocess.Popen(
            [*command, json.dumps(_specs(size, share, str(folder / "landing"), database))],
            stdout=subprocess.PIPE,
            text=True,
        )
        for share in shares
    ]
    outcomes = []
    for process in processes:
        out, _ = process.communicate(timeout=3600)
        outcomes += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    failures = [o["failure"] for o in outcomes if not o["success"]]
    if failures or len(outcomes) != len(VENUES):
        raise RuntimeError(f"{writers}-writer backfill failed: {failures or outcomes}")
    tables = {}
    for table in BACKFILL_ASSETS:
        rows = warehouse.read(table)
        tables[table] = rows.sort_values(list(rows.columns), kind="stable", ignore_index=True)
    return {
        "seconds": max(o["finished"] for o in outcomes) - min(o["started"] for o in outcomes),
        "rows": sum(len(rows) for rows in tables.values()),
        "tables": tables,
    }


def _same_rows(stored: dict[str, pd.DataFrame], reference: dict[str, pd.DataFrame]) -> bool:
    return all(len(rows) > 0 and stored[table].equals(rows) for table, rows in reference.items())


def run(quick: bool = False) -> BenchResult:

    from fund_pipeline.instance import prepare_home

    size = QUICK if quick else FULL
    partitions = size["days"] * len(VENUES)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-writers-") as tmp, running_postgres() as server:
        folder = Path(tmp)
        create_database(server, "runs")
        instance_env: dict[str, str | None] = {
            "DAGSTER_PG_HOST": server.host,
            "DAGSTER_PG_PORT": str(server.port),
            "DAGSTER_PG_DB": "runs",
            "DAGSTER_PG_USERNAME": server.user,
            WAREHOUSE_WRITERS_ENV: str(POOL_SLOTS),
            WAREHOUSE_URL_ENV: server.url("postgres"),  # so that the home's pool gets the PostgreSQL slots
            "DAGSTER_HOME": str(folder / "home"),
        }
        with _environment(instance_env):
            prepare_home(folder / "home")  # with the pool's limit row, before the writers start
        with _environment({**instance_env, WAREHOUSE_URL_ENV: None}):
            reference = _backfill(size, 1, folder, Warehouse(database=str(folder / "reference.duckdb")))
        measured = {}
        for writers in WRITER_COUNTS:
            url = create_database(server, f"writers_{writers}")
            with _environment({**instance_env, WAREHOUSE_URL_ENV: url}):
                measured[writers] = _backfill(size, writers, folder, Warehouse(url=url))
    load_after = os.getloadavg()

    def per_s(backfill: Backfill) -> tuple[float, float]:
        return partitions / backfill["seconds"], backfill["rows"] / backfill["seconds"]

    figures: dict = {
        "partitions (days × venues)": f"{partitions} ({size['days']} × {len(VENUES)})",
        "bases": len(size["bases"]),
        "rows stored (raw_funding_prints + curve_history)": reference["rows"],
        "DuckDB file, 1 writer: s": reference["seconds"],
        "DuckDB file, 1 writer: partitions/s": per_s(reference)[0],
        "DuckDB file, 1 writer: rows/s": per_s(reference)[1],
    }
    for writers, backfill in measured.items():
        figures[f"PostgreSQL, {writers} writer(s): s"] = backfill["seconds"]
        figures[f"PostgreSQL, {writers} writer(s): partitions/s"] = per_s(backfill)[0]
        figures[f"PostgreSQL, {writers} writer(s): rows/s"] = per_s(backfill)[1]
        figures[f"PostgreSQL {writers} writer(s) / DuckDB 1 writer (throughput)"] = (
            reference["seconds"] / backfill["seconds"]
        )
    figures["load average before (1, 5, 15 min)"] = " / ".join(f"{v:.1f}" for v in load_before)
    figures["load average after (1, 5, 15 min)"] = " / ".join(f"{v:.1f}" for v in load_after)
    best = reference["seconds"] / measured[max(WRITER_COUNTS)]["seconds"]
    return BenchResult(
        name="warehouse writers",
        target=f"PostgreSQL with {max(WRITER_COUNTS)} writers ≥ {TARGET_SPEEDUP}x the DuckDB file's throughput",
        met=best >= TARGET_SPEEDUP,
        agree=all(_same_rows(backfill["tables"], reference["tables"]) for backfill in measured.values()),
        figures=figures,
        notes=[
            "each writer is a process: its Dagster imports are outside the clock (barrier), its first run's "
            "set-up (the expectations suite) inside it",
            f"the instance is PostgreSQL for every configuration; the warehouse pool has {POOL_SLOTS} slots",
        ],
    )


def main() -> None:
    args = quick_parser(__doc__.splitlines()[0]).parse_args()
    report(run(quick=args.quick))


if __name__ == "__main__":
    main()
