"""The main job: materialise the whole asset graph through Dagster partitioned runs, then summarise.

Runs land in the project-local DAGSTER_HOME, so `make ui` shows the same runs, materialisations,
check results and plots.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import pandas as pd
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from fund_pipeline.defs.partitions import WEEKLY_PARTITIONS
from fund_pipeline.resources import data_dir, open_readonly

# Curves need 3 days of earlier prints, features a week of warm-up: ingest that much before the range.
INGEST_WARMUP_DAYS = 8
# Weekly models and baskets need at least this much history before their week starts.
WEEKLY_MIN_HISTORY = pd.Timedelta(days=21)
SHOWN_WEIGHT = 0.005
# The terminal gets the summary; every event is still in the run's log in the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""


def prepare_home() -> Path:
    """Project-local DAGSTER_HOME with one slot per pool: the warehouse takes one writer."""
    home = Path(os.environ.get("DAGSTER_HOME") or data_dir() / "dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def load_definitions() -> dg.Definitions:
    from fund_pipeline.definitions import defs

    return defs() if callable(defs) else defs


def run_range(defs, instance, job_name: str, first: str, last: str) -> dg.ExecuteInProcessResult:
    """One run over a partition range: the single-run backfill path."""
    job = defs.resolve_job_def(job_name)
    started = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
        run_config=QUIET,
        raise_on_error=True,
    )
    print(f"  {job_name:<16} {first} .. {last}  {time.perf_counter() - started:5.1f}s")
    return result


def weekly_keys(first_day: pd.Timestamp, end_day: pd.Timestamp) -> list[str]:
    keys = []
    for key in WEEKLY_PARTITIONS.get_partition_keys(current_time=end_day.to_pydatetime()):
        window = WEEKLY_PARTITIONS.time_window_for_partition_key(key)
        if pd.Timestamp(window.start) >= first_day + WEEKLY_MIN_HISTORY and pd.Timestamp(window.start) < end_day:
            keys.append(key)
    return keys


def materialise_all(
    defs, instance, first_day: pd.Timestamp, end_day: pd.Timestamp, venues
) -> list[dg.ExecuteInProcessResult]:
    last_day = end_day - pd.Timedelta(days=1)
    ingest_first = first_day - pd.Timedelta(days=INGEST_WARMUP_DAYS)
    results = []
    print("ingest + curves (one run per venue over the whole range):")
    for venue in venues:
        results.append(
            run_range(defs, instance, "ingest_job", f"{ingest_first:%Y-%m-%d}|{venue}", f"{last_day:%Y-%m-%d}|{venue}")
        )
    print("features and market aggregates:")
    results.append(run_range(defs, instance, "daily_job", f"{first_day:%Y-%m-%d}", f"{last_day:%Y-%m-%d}"))
    weeks = weekly_keys(first_day, end_day)
    if weeks:
        print("weekly clusters, models, forecasts and hedge baskets:")
        results.append(run_range(defs, instance, "weekly_job", weeks[0], weeks[-1]))
    print("reports:")
    started = time.perf_counter()
    reports = defs.resolve_job_def("reports_job").execute_in_process(
        instance=instance, run_config=QUIET, raise_on_error=True
    )
    print(
        f"  {'reports_job':<16} forecast_scorecard, basket_performance over every stored week  {time.perf_counter() - started:5.1f}s"
    )
    results.append(reports)
    return results


def check_outcomes(results) -> pd.DataFrame:
    rows = []
    for result in results:
        for event in result.all_events:
            if event.event_type_value == "ASSET_CHECK_EVALUATION":
                ev = event.event_specific_data
                rows.append(
                    {
                        "asset": ev.asset_key.to_user_string(),
                        "check": ev.check_name,
                        "passed": ev.passed,
                        "severity": ev.severity.value,
                    }
                )
    return pd.DataFrame(rows, columns=["asset", "check", "passed", "severity"])


def print_summary(results, database: str, ui_hint: str = "make ui   (then http://127.0.0.1:3000)") -> None:
    conn = open_readonly(database)
    tables = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()]
    print("\nrows per warehouse table:")
    for table in tables:
        print(f"  {table:<26} {conn.execute(f'SELECT count(*) FROM {table}').fetchone()[0]:>10,}")
    checks = check_outcomes(results)
    if not checks.empty:
        summary = checks.groupby(["asset", "check"]).agg(
            evaluations=("passed", "size"), failed=("passed", lambda s: int((~s).sum())), severity=("severity", "first")
        )
        print(f"\nchecks: {int(checks['passed'].sum())} passed, {int((~checks['passed']).sum())} failed")
        print(summary.to_string())
    if "forecast_scorecard" in tables:
        card = conn.execute(
            "SELECT predictor, smape, mae, hit_rate, n FROM forecast_scorecard WHERE venue = 'all' ORDER BY smape"
        ).df()
        print("\nforecast scorecard, out of sample, all venues (lower SMAPE/MAE is better):")
        print(card.to_string(index=False, float_format=lambda x: f"{x:.6g}"))
    if "weekly_hedge_baskets" in tables:
        basket = conn.execute(
            "SELECT as_of, target_venue, target_symbol, venue, symbol, weight, carry_8h FROM weekly_hedge_baskets "
            "WHERE as_of = (SELECT max(as_of) FROM weekly_hedge_baskets) ORDER BY target_symbol, weight DESC"
        ).df()
        if len(basket):
            shown = basket.loc[basket["weight"] >= SHOWN_WEIGHT]
            print(
                f"\nthis week's hedge baskets (formed {basket['as_of'].iloc[0]:%Y-%m-%d %H:%M} UTC; legs of {SHOWN_WEIGHT:.1%} or more):"
            )
            print(shown.drop(columns="as_of").to_string(index=False, float_format=lambda x: f"{x:.4f}"))
            print(
                f"  ({len(basket) - len(shown)} candidate legs below {SHOWN_WEIGHT:.1%} not shown; all weights are in weekly_hedge_baskets)"
            )
    conn.close()
    print(f"\nopen the UI on these runs:  {ui_hint}")


def run_demo(days: int = 60, end: str | None = None) -> int:
    prepare_home()
    defs = load_definitions()
    end_day = pd.Timestamp(end, tz="UTC") if end else pd.Timestamp.now(tz="UTC").normalize()
    first_day = end_day - pd.Timedelta(days=days)
    venues = defs.resources["market_source"].get().venues()
    print(
        f"fund_pipeline demo: simulated market, {', '.join(venues)}, {first_day:%Y-%m-%d} .. {end_day:%Y-%m-%d} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})"
    )
    with dg.DagsterInstance.get() as instance:
        results = materialise_all(defs, instance, first_day, end_day, venues)
    print_summary(results, defs.resources["warehouse"].database)
    return 0


REAL_SAMPLE_INGEST = ["market_universe", "raw_funding_prints", "curve_history"]


def run_real_sample(start: str, end: str) -> int:
    """Real public prints → curves → features → walk-forward forecasts, scored against the baselines.

    Kept in its own warehouse and DAGSTER_HOME under data/real_sample so simulated and real numbers
    never mix. The sample has no bars: market features are absent and the model runs on funding alone.
    """
    from fund_pipeline.definitions import build_definitions
    from fund_pipeline.resources import LandingZone, MarketSourceResource, Warehouse
    from fund_pipeline.sources.files import SAMPLE_ROOT

    root = data_dir() / "real_sample"
    os.environ["DAGSTER_HOME"] = str(root / "dagster_home")
    prepare_home()
    warehouse = Warehouse(database=str(root / "warehouse.duckdb"))
    source = MarketSourceResource(kind="files", files_root=str(SAMPLE_ROOT), files_clock="infer")
    defs = build_definitions(
        {"warehouse": warehouse, "market_source": source, "landing": LandingZone(path=str(root / "landing"))}
    )
    first, stop = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    last = stop - pd.Timedelta(days=1)
    assets = list(defs.assets)
    with dg.DagsterInstance.get() as instance:
        results = []

        def run(selection, lo=None, hi=None):
            tags = {ASSET_PARTITION_RANGE_START_TAG: lo, ASSET_PARTITION_RANGE_END_TAG: hi} if lo else None
            started = time.perf_counter()
            results.append(
                dg.materialize(
                    assets,
                    selection=selection,
                    instance=instance,
                    tags=tags,
                    resources=defs.resources,
                    run_config=QUIET,
                )
            )
            print(f"  {', '.join(selection):<60} {lo or ''} .. {hi or ''}  {time.perf_counter() - started:5.1f}s")

        venues = source.get().venues()
        print(f"real public sample: {', '.join(venues)}, {first:%Y-%m-%d} .. {stop:%Y-%m-%d}")
        for venue in venues:
            spans = source.get().coverage(venue)
            lo, hi = max(first, spans[0]), min(last, spans[1])
            if lo <= hi:
                run(REAL_SAMPLE_INGEST, f"{lo:%Y-%m-%d}|{venue}", f"{hi:%Y-%m-%d}|{venue}")
        run(["feature_store"], f"{first + pd.Timedelta(days=INGEST_WARMUP_DAYS):%Y-%m-%d}", f"{last:%Y-%m-%d}")
        weeks = weekly_keys(first + pd.Timedelta(days=INGEST_WARMUP_DAYS), stop - pd.Timedelta(days=7))
        run(["funding_forecast_model", "funding_forecasts"], weeks[0], weeks[-1])
        run(["forecast_scorecard"])
    print_summary(
        results,
        warehouse.database,
        "its runs are recorded in data/real_sample/dagster_home; `make ui` shows the simulated demo",
    )
    return 0
