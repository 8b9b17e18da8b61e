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
from fund_pipeline.domain.baskets import BASKET_LOOKBACK, HOUR
from fund_pipeline.importer import INGEST_ASSETS
from fund_pipeline.instance import prepare_home
from fund_pipeline.locations import resources_of
from fund_pipeline.partition_runs import QUIET, Progress
from fund_pipeline.resources import open_readonly
from fund_pipeline.sources.base import PremiumHistorySource

# Curves need 3 days of earlier prints, features a week of warm-up: ingest that much before the range.
INGEST_WARMUP_DAYS = 8
# Weekly models and baskets need at least this much history before their week starts.
WEEKLY_MIN_HISTORY = pd.Timedelta(days=21)
# Weeks per run of the real sample's walk-forward: a progress update about every minute on 2 cores.
WEEKS_PER_RUN = 4
SHOWN_WEIGHT = 0.005


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


def ingest_start(first_day: pd.Timestamp) -> pd.Timestamp:
    """The first day ingested for a range starting at `first_day`: its curves' and features' warm-up before it."""
    return first_day - pd.Timedelta(days=INGEST_WARMUP_DAYS)


def weekly_keys(first_day: pd.Timestamp, end_day: pd.Timestamp) -> list[str]:
    """Weeks starting in [first_day, end_day) with their history stored: WEEKLY_MIN_HISTORY of features, and the
    basket's window of hourly returns (BASKET_LOOKBACK, and the bar before it) inside the ingested days."""
    earliest = max(first_day + WEEKLY_MIN_HISTORY, ingest_start(first_day) + BASKET_LOOKBACK + HOUR)
    keys = []
    for key in WEEKLY_PARTITIONS.get_partition_keys(current_time=end_day.to_pydatetime()):
        start = pd.Timestamp(WEEKLY_PARTITIONS.time_window_for_partition_key(key).start)
        if earliest <= start < end_day:
            keys.append(key)
    return keys


def materialise_all(
    defs, instance, first_day: pd.Timestamp, end_day: pd.Timestamp, venues
) -> list[dg.ExecuteInProcessResult]:
    last_day = end_day - pd.Timedelta(days=1)
    ingest_first = ingest_start(first_day)
    results = []
    print("ingest + curves (one run per venue over the whole range):")
    for venue in venues:
        results.append(
            run_range(defs, instance, "ingest_job", f"{ingest_first:%Y-%m-%d}|{venue}", f"{last_day:%Y-%m-%d}|{venue}")
        )
    if isinstance(resources_of(defs)["market_source"].get(), PremiumHistorySource):
        print("predicted-rate history, rebuilt from premium-index history:")
        for venue in venues:
            results.append(
                run_range(
                    defs,
                    instance,
                    "reconstruction_job",
                    f"{first_day:%Y-%m-%d}|{venue}",
                    f"{last_day:%Y-%m-%d}|{venue}",
                )
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
        f"  {'reports_job':<16} forecast_scorecard, basket_performance over every stored week  "
        f"{time.perf_counter() - started:5.1f}s"
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
        (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)
        print(f"  {table:<26} {count:>10,}")
    checks = check_outcomes(results)
    if not checks.empty:
        summary = checks.groupby(["asset", "check"]).agg(
            evaluations=("passed", "size"), failed=("passed", lambda s: int((~s).sum())), severity=("severity", "first")
        )
        print(f"\nchecks: {int(checks['passed'].sum())} passed, {int((~checks['passed']).sum())} failed")
        print(summary.to_string())
    if "forecast_scorecard" in tables:
        card = conn.execute(
            "SELECT horizon, predictor, smape, mae, hit_rate, n FROM forecast_scorecard "
            "WHERE venue = 'all' AND forecasts = 'weekly' ORDER BY horizon, smape"
        ).df()
        print("\nforecast scorecard, out of sample, all venues (lower SMAPE/MAE is better):")
        print(card.to_string(index=False, float_format=lambda x: f"{x:.6g}"))
    if "forecast_verdict_intervals" in tables:
        verdicts = conn.execute(
            "SELECT v.horizon, v.metric, v.best_baseline, i.model_vs_best_pct, i.p5_pct, i.p95_pct, "
            "i.model_better_share, i.weeks FROM forecast_verdicts v JOIN forecast_verdict_intervals i "
            "USING (venue, horizon, metric) WHERE v.venue = 'all' AND v.forecasts = 'weekly' "
            "ORDER BY v.horizon, v.metric"
        ).df()
        print("\nthe model against the best baseline, all venues, % (90 % interval with whole weeks resampled):")
        print(verdicts.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    if "weekly_hedge_baskets" in tables:
        basket = conn.execute(
            "SELECT as_of, target_venue, target_symbol, venue, symbol, weight, carry_8h FROM weekly_hedge_baskets "
            "WHERE as_of = (SELECT max(as_of) FROM weekly_hedge_baskets) ORDER BY target_symbol, weight DESC"
        ).df()
        if len(basket):
            shown = basket.loc[basket["weight"] >= SHOWN_WEIGHT]
            print(
                f"\nthis week's hedge baskets (formed {basket['as_of'].iloc[0]:%Y-%m-%d %H:%M} UTC; "
                f"legs of {SHOWN_WEIGHT:.1%} or more):"
            )
            print(shown.drop(columns="as_of").to_string(index=False, float_format=lambda x: f"{x:.4f}"))
            print(
                f"  ({len(basket) - len(shown)} candidate legs below {SHOWN_WEIGHT:.1%} not shown; "
                "all weights are in weekly_hedge_baskets)"
            )
    conn.close()
    print(f"\nopen the UI on these runs:  {ui_hint}")


def run_demo(days: int = 60, end: str | None = None) -> int:
    prepare_home()
    defs = load_definitions()
    end_day = pd.Timestamp(end, tz="UTC") if end else pd.Timestamp.now(tz="UTC").normalize()
    first_day = end_day - pd.Timedelta(days=days)
    venues = resources_of(defs)["market_source"].get().venues()
    print(
        f"fund_pipeline demo: simulated market, {', '.join(venues)}, {first_day:%Y-%m-%d} .. {end_day:%Y-%m-%d} "
        f"(DAGSTER_HOME={os.environ['DAGSTER_HOME']})"
    )
    with dg.DagsterInstance.get() as instance:
        results = materialise_all(defs, instance, first_day, end_day, venues)
    print_summary(results, resources_of(defs)["warehouse"].database)
    return 0


def run_real_sample(start: str, end: str, timings: dict[str, float] | None = None) -> int:
    """Real public prints → curves → features → walk-forward forecasts, scored against the baselines.

    The `real_sample` code location: its own warehouse under data/real_sample and asset keys under
    real_sample/, recorded in the project's DAGSTER_HOME, so `make ui` shows it beside the demo and
    simulated and real numbers never mix. Ingest and curves go through the importer (resumable: a
    second run skips the partitions already done). The sample has no bars: market features are
    absent and the model runs on funding alone. `timings`, if given, receives seconds per stage.
    """
    from fund_pipeline.importer import Ledger, import_partitions
    from fund_pipeline.locations import (
        REAL_SAMPLE,
        asset_definitions,
        asset_key,
        source_definitions,
        source_dir,
    )

    prepare_home()
    defs = source_definitions(REAL_SAMPLE)
    resources = resources_of(defs)
    warehouse = resources["warehouse"]
    first, stop = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    last = stop - pd.Timedelta(days=1)
    assets = asset_definitions(defs)
    timings = {} if timings is None else timings
    started = time.perf_counter()
    source = resources["market_source"].get()
    venues = source.venues()
    timings["files: read, clock inference, merge"] = time.perf_counter() - started
    print(f"real public sample: {', '.join(venues)}, {first:%Y-%m-%d} .. {stop:%Y-%m-%d}")
    with dg.DagsterInstance.get() as instance:
        ledger = Ledger(source_dir(REAL_SAMPLE) / "import_ledger.json", Path(warehouse.database))
        print("ingest + curves (day × venue partitions, resumable):")
        imported = import_partitions(defs, instance, REAL_SAMPLE, source, ledger, first, stop)
        timings["ingest + curves"] = imported.seconds
        print(
            f"  {', '.join(INGEST_ASSETS)}: {imported.ran} partitions in {len(imported.runs)} runs, "
            f"{imported.skipped} already done  {imported.seconds:5.1f}s"
        )
        if imported.failed:
            for lo, hi, error in imported.failed:
                print(f"  FAILED {lo} .. {hi}: {error}")
            return 1
        results = list(imported.runs)

        def materialise(names, lo=None, hi=None):
            tags = {ASSET_PARTITION_RANGE_START_TAG: lo, ASSET_PARTITION_RANGE_END_TAG: hi} if lo else None
            results.append(
                dg.materialize(
                    assets,
                    selection=[asset_key(REAL_SAMPLE, n) for n in names],
                    instance=instance,
                    tags=tags,
                    resources=resources,
                    run_config=QUIET,
                )
            )

        def run(names, lo=None, hi=None):
            started = time.perf_counter()
            materialise(names, lo, hi)
            timings[", ".join(names)] = time.perf_counter() - started
            print(f"  {', '.join(names):<60} {lo or ''} .. {hi or ''}  {timings[', '.join(names)]:5.1f}s")

        run(["feature_store"], f"{first + pd.Timedelta(days=INGEST_WARMUP_DAYS):%Y-%m-%d}", f"{last:%Y-%m-%d}")
        weeks = weekly_keys(first + pd.Timedelta(days=INGEST_WARMUP_DAYS), stop - pd.Timedelta(days=7))
        # Weeks in runs of a few, so the walk-forward (most of the command's time) shows its progress.
        model_assets, started = ["funding_forecast_model", "funding_forecasts"], time.perf_counter()
        progress = Progress(len(weeks), 0, "weekly models")
        for at in range(0, len(weeks), WEEKS_PER_RUN):
            chunk = weeks[at : at + WEEKS_PER_RUN]
            materialise(model_assets, chunk[0], chunk[-1])
            progress.update(len(chunk), f"week of {chunk[-1]}")
        timings[", ".join(model_assets)] = time.perf_counter() - started
        print(f"  {', '.join(model_assets):<60} {weeks[0]} .. {weeks[-1]}  {timings[', '.join(model_assets)]:5.1f}s")
        run(["forecast_scorecard"])
    print_summary(results, warehouse.database, "make ui   (code location 'real_sample', assets under real_sample/)")
    return 0
