"""Event-log cost per partition: the instance on SQLite (the project's kept-connection log and
Dagster's own, the reference) against PostgreSQL (dagster-postgres on a throwaway local server).

The asset does no work, so what is timed is Dagster's bookkeeping: a single-run range over many
daily partitions (the path the demo and imports use) and one run per partition (the path of
schedules and sensors). Each storage gets a fresh DAGSTER_HOME; PostgreSQL a fresh database.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import dagster as dg
import psycopg2
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from bench._common import BenchResult, quick_parser, report
from fund_pipeline.instance import prepare_home, uses_postgres
from fund_pipeline_tests.postgres_server import running_postgres, server_binaries

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01")
FULL = {"range_partitions": 365, "single_runs": 40}
QUICK = {"range_partitions": 10, "single_runs": 2}
SQLITE_DAGSTER_YAML = "telemetry:\n  enabled: false\n"  # Dagster's own SQLite storage


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def bookkeeping_only() -> dg.MaterializeResult:
    return dg.MaterializeResult()


def per_partition_ms(home: Path, size: dict) -> dict[str, float]:
    """ms per partition for one range run, and for one run per partition, on the instance at `home`."""
    os.environ["DAGSTER_HOME"] = str(home)
    keys = DAYS.get_partition_keys()[: size["range_partitions"]]
    with dg.DagsterInstance.get() as instance:
        started = time.perf_counter()
        result = dg.materialize(
            [bookkeeping_only],
            instance=instance,
            tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]},
        )
        range_s = time.perf_counter() - started
        assert result.success
        started = time.perf_counter()
        for key in keys[: size["single_runs"]]:
            assert dg.materialize([bookkeeping_only], instance=instance, partition_key=key).success
        single_s = time.perf_counter() - started
        stored = instance.get_materialized_partitions(bookkeeping_only.key)
    assert sorted(stored) == sorted(keys), "every partition recorded"
    return {"range": 1000 * range_s / len(keys), "single": 1000 * single_s / size["single_runs"]}


def _dagster_own_home(root: Path) -> Path:
    home = root / "sqlite_dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(SQLITE_DAGSTER_YAML)
    return home


def run(quick: bool = False) -> BenchResult:
    size = QUICK if quick else FULL
    saved = {k: os.environ.get(k) for k in ("DAGSTER_HOME", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB")}
    figures: dict = {"range-run partitions": size["range_partitions"], "one-partition runs": size["single_runs"]}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for var in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB"):
                os.environ.pop(var, None)
            results = {"SQLite, Dagster's own (reference)": per_partition_ms(_dagster_own_home(root), size)}
            project = prepare_home(root / "sqlite_project")
            results["SQLite, kept connections (project default)"] = per_partition_ms(project, size)
            if server_binaries() is not None:
                with running_postgres() as server:
                    conn = psycopg2.connect(server.url("postgres"))
                    conn.autocommit = True
                    conn.cursor().execute("CREATE DATABASE dagster_bench")
                    conn.close()
                    os.environ.update(DAGSTER_PG_HOST=server.host, DAGSTER_PG_PORT=str(server.port))
                    os.environ["DAGSTER_PG_DB"] = "dagster_bench"
                    assert uses_postgres()
                    results["PostgreSQL (dagster-postgres)"] = per_partition_ms(prepare_home(root / "pg"), size)
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
    reference = results["SQLite, Dagster's own (reference)"]
    for name, ms in results.items():
        figures[f"{name}: range run ms/partition"] = ms["range"]
        figures[f"{name}: one-partition run ms/run"] = ms["single"]
        figures[f"{name}: one-partition run vs reference"] = ms["single"] / reference["single"]
    return BenchResult(
        name="event log per partition",
        target="figures (issue 13.5): cost per partition on each storage, every partition recorded on each",
        met=True,
        agree=True,
        figures=figures,
        notes=[
            "the asset does nothing: the times are Dagster's run and event bookkeeping",
            "PostgreSQL runs on loopback with fsync off (a throwaway test server)",
        ],  # fmt: skip
    )


if __name__ == "__main__":
    report(run(quick=quick_parser(__doc__).parse_args().quick))
