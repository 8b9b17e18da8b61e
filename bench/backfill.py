"""Partitioned backfill through Dagster: `raw_funding_prints` → `curve_history` for day × venue
partitions, as one single-run backfill per venue (the path `make demo` uses) against one run per
partition.

Runs go to an ephemeral Dagster instance and a temporary DuckDB warehouse. The per-partition path
is timed on a sample of partitions (re-materialised after the single runs, so their inputs exist)
and extrapolated to all partitions; their curve rows must equal the single-run rows.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TypedDict

import dagster as dg
import pandas as pd
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from bench._common import BenchResult, quick_parser, report
from fund_pipeline.definitions import build_definitions
from fund_pipeline.resources import LandingZone, MarketSourceResource, Warehouse

TARGET_MS_PER_PARTITION = 30.0
BACKFILL_ASSETS = ["raw_funding_prints", "curve_history"]
JOB_NAME = "bench_backfill_job"
FIRST_DAY = pd.Timestamp("2025-01-01", tz="UTC")
VENUES = ("binance", "bybit", "okx", "hyperliquid", "deribit")


class BackfillSize(TypedDict):
    days: int
    venues: tuple[str, ...]
    sample: int


FULL: BackfillSize = {"days": 365, "venues": tuple(VENUES), "sample": 5}
QUICK: BackfillSize = {"days": 2, "venues": ("binance",), "sample": 1}


def partition_key(day: pd.Timestamp, venue: str) -> str:
    return f"{day:%Y-%m-%d}|{venue}"


def run(quick: bool = False) -> BenchResult:
    size = QUICK if quick else FULL
    days = pd.date_range(FIRST_DAY, periods=size["days"], freq="D")
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as folder:
        warehouse = Warehouse(database=str(Path(folder) / "warehouse.duckdb"))
        defs = dg.Definitions.merge(
            build_definitions(
                {
                    "warehouse": warehouse,
                    "market_source": MarketSourceResource(),
                    "landing": LandingZone(path=str(Path(folder) / "landing")),
                }
            ),
            dg.Definitions(jobs=[dg.define_asset_job(JOB_NAME, selection=BACKFILL_ASSETS)]),
        )
        job = defs.resolve_job_def(JOB_NAME)
        with dg.DagsterInstance.ephemeral() as instance:
            single_seconds = {}
            for venue in size["venues"]:
                started = time.perf_counter()
                job.execute_in_process(
                    instance=instance,
                    tags={
                        ASSET_PARTITION_RANGE_START_TAG: partition_key(days[0], venue),
                        ASSET_PARTITION_RANGE_END_TAG: partition_key(days[-1], venue),
                    },
                    raise_on_error=True,
                )
                single_seconds[venue] = time.perf_counter() - started
            sample = [(days[-1 - 3 * k], size["venues"][k % len(size["venues"])]) for k in range(size["sample"])]
            before = {key: _curve_rows(warehouse, *key) for key in sample}
            per_partition_seconds = []
            for day, venue in sample:
                started = time.perf_counter()
                job.execute_in_process(instance=instance, partition_key=partition_key(day, venue), raise_on_error=True)
                per_partition_seconds.append(time.perf_counter() - started)
            same = all(_curve_rows(warehouse, *key).equals(before[key]) and len(before[key]) > 0 for key in sample)
            curve_rows = int(warehouse.query("SELECT count(*) AS n FROM curve_history")["n"].iloc[0])

    n_partitions = len(days) * len(size["venues"])
    single_total = sum(single_seconds.values())
    single_ms = 1e3 * single_total / n_partitions
    per_partition_ms = 1e3 * sum(per_partition_seconds) / len(per_partition_seconds)
    figures = {
        "partitions (days × venues)": f"{n_partitions} ({len(days)} × {len(size['venues'])})",
        "curve_history rows": curve_rows,
        "single-run backfill s (all venues)": single_total,
        **{f"single run {venue} s": seconds for venue, seconds in single_seconds.items()},
        "single-run ms per partition": single_ms,
        "run-per-partition ms per partition (sampled)": per_partition_ms,
        "run-per-partition sample size": len(per_partition_seconds),
        "run-per-partition s extrapolated to all partitions": per_partition_ms * n_partitions / 1e3,
        "speed-up of single-run over run-per-partition": per_partition_ms / single_ms,
    }
    return BenchResult(
        name="partitioned backfill",
        target=f"≤ {TARGET_MS_PER_PARTITION:.0f} ms per partition on the single-run path",
        met=single_ms <= TARGET_MS_PER_PARTITION,
        agree=same,
        figures=figures,
        notes=[
            "run-per-partition timed on a sample of partitions re-materialised after the single runs, extrapolated",
            "each timed run includes Dagster run launch, both assets, their checks and the DuckDB writes",
        ],
    )


def _curve_rows(warehouse: Warehouse, day: pd.Timestamp, venue: str) -> pd.DataFrame:
    frame = warehouse.read("curve_history", {"venue": [venue], "funding_time": (day, day + pd.Timedelta(days=1))})
    return frame.sort_values(["symbol", "funding_time"], kind="stable").reset_index(drop=True)


def main() -> None:
    args = quick_parser(__doc__.splitlines()[0]).parse_args()
    report(run(quick=args.quick))


if __name__ == "__main__":
    main()
