"""`make real-sample` end to end, per stage, and Dagster's event log against the project's, on the same partitions.

The figures: seconds per stage of `fund-pipeline real-sample` (files read once, ingest + curves
through the importer, features, weekly models and forecasts, scorecard) in a fresh data folder,
then the same command again (a resumed import: nothing left to ingest). The reference, timed in
the same run: one venue's ingest + curve partitions under Dagster's default SQLite event log
against the project's instance (`fund_pipeline.instance`), with identical stored rows.
Target (issue 11): the whole command in at most 60 s on 2 cores; reported, never asserted.

    .venv/bin/python -m bench.real_sample [--quick]
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from pathlib import Path

import dagster as dg
import duckdb
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from bench._common import BenchResult, quick_parser, report
from fund_pipeline.demo import run_real_sample
from fund_pipeline.importer import INGEST_ASSETS
from fund_pipeline.instance import prepare_home
from fund_pipeline.locations import REAL_SAMPLE, asset_definitions, resources_of, source_definitions
from fund_pipeline.partition_runs import QUIET

TARGET_S = 60.0
REFERENCE_VENUE = "gate"


@contextlib.contextmanager
def data_folder(path: Path):
    saved = {k: os.environ.get(k) for k in ("FUND_PIPELINE_DATA_DIR", "DAGSTER_HOME")}
    os.environ["FUND_PIPELINE_DATA_DIR"] = str(path)
    os.environ["DAGSTER_HOME"] = str(path / "dagster_home")
    try:
        yield path
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ingest_one_venue(home_config: str | None, first: str, last: str) -> tuple[float, list]:
    """Ingest + curves of REFERENCE_VENUE over [first, last] in a fresh folder; seconds and stored prints."""
    with tempfile.TemporaryDirectory() as tmp, data_folder(Path(tmp)):
        home = Path(tmp) / "dagster_home"
        if home_config is None:
            prepare_home(home)
        else:
            home.mkdir()
            (home / "dagster.yaml").write_text(home_config)
        defs = source_definitions(REAL_SAMPLE)
        resources = resources_of(defs)
        resources["market_source"].get().venues()
        with dg.DagsterInstance.get() as instance:
            started = time.perf_counter()
            dg.materialize(
                asset_definitions(defs),
                selection=[f"{REAL_SAMPLE}/{a}" for a in INGEST_ASSETS],
                instance=instance,
                tags={
                    ASSET_PARTITION_RANGE_START_TAG: f"{first}|{REFERENCE_VENUE}",
                    ASSET_PARTITION_RANGE_END_TAG: f"{last}|{REFERENCE_VENUE}",
                },
                resources=resources,
                run_config=QUIET,
            )
            seconds = time.perf_counter() - started
        with duckdb.connect(resources["warehouse"].database, read_only=True) as conn:
            rows = conn.execute(
                "SELECT symbol, funding_time, rate FROM raw_funding_prints ORDER BY symbol, funding_time"
            ).fetchall()
        return seconds, rows


def run(quick: bool = False) -> BenchResult:
    start, end = ("2023-11-15", "2024-01-01") if quick else ("2022-01-01", "2024-01-01")
    with tempfile.TemporaryDirectory() as tmp, data_folder(Path(tmp)):
        first_run: dict[str, float] = {}
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = run_real_sample(start, end, first_run)
        total = time.perf_counter() - started
        second_run: dict[str, float] = {}
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run_real_sample(start, end, second_run)
        again = time.perf_counter() - started
    days = ("2023-12-01", "2023-12-31") if quick else ("2023-01-01", "2023-04-30")
    project_s, project_rows = ingest_one_venue(None, *days)
    default_s, default_rows = ingest_one_venue("telemetry:\n  enabled: false\n", *days)
    n_days = len({r[1].date() for r in project_rows})
    figures = {
        "range": f"{start} .. {end}",
        "exit code": code,
        **{f"first run: {k} (s)": round(v, 1) for k, v in first_run.items()},
        "first run: end to end, in process (s)": round(total, 1),
        "second run: ingest + curves, nothing left (s)": round(second_run.get("ingest + curves", float("nan")), 2),
        "second run: end to end (s)": round(again, 1),
        f"reference: {REFERENCE_VENUE} {n_days} days ingest + curves, Dagster's SQLite event log (s)": round(
            default_s, 1
        ),
        f"{REFERENCE_VENUE} {n_days} days ingest + curves, the project's instance (s)": round(project_s, 1),
        "ratio reference / project's instance": round(default_s / project_s, 2),
        "per partition, project's instance (ms)": round(project_s / n_days * 1e3, 1),
    }
    return BenchResult(
        name="real_sample",
        target=f"make real-sample end to end <= {TARGET_S:g} s on 2 cores",
        met=total <= TARGET_S and code == 0,
        agree=project_rows == default_rows,
        figures=figures,
        notes=["end to end here excludes interpreter start and imports (a few seconds for `make real-sample`)"],
    )


def main() -> None:
    args = quick_parser(__doc__.splitlines()[0]).parse_args()
    report(run(quick=args.quick))


if __name__ == "__main__":
    main()
