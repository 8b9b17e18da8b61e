"""Weekly model and basket runs on Mondays 12:00 UTC, then the out-of-sample reports.

A Monday builds the week that starts and completes the one that ended; weekly partitions that a
weekly asset still lacks between the first week ever built and those two (a Monday the daemon was
down, a failed run) are requested too, so no earlier week stays unbuilt without anyone asking.
"""

import dagster as dg
import pandas as pd

from fund_pipeline.defs.partitions import WEEKLY_PARTITIONS

WEEKLY_ASSETS = ["symbol_clusters", "funding_forecast_model", "funding_forecasts", "weekly_hedge_baskets"]
REPORT_ASSETS = ["forecast_scorecard", "basket_performance"]
# Older gaps than this many weeks are a backfill to launch by hand; the schedule warns about them.
MAX_CATCH_UP_WEEKS = 12

weekly_job = dg.define_asset_job(
    "weekly_job",
    selection=WEEKLY_ASSETS,
    description="Clusters, walk-forward model, forecasts and hedge baskets for weekly partitions.",
)
reports_job = dg.define_asset_job(
    "reports_job",
    selection=REPORT_ASSETS,
    description="Forecast scorecard and basket performance over every stored week.",
)


def weekly_run_requests(now: pd.Timestamp, missing: list[str] | None = None) -> list[dg.RunRequest]:
    """The missing weeks, the one that just ended (its forecasts can now be completed with its last
    settled targets) and the week that starts now (its baskets are formed at its start)."""
    this_week = now.normalize()
    weeks = [*(missing or []), f"{this_week - pd.Timedelta(days=7):%Y-%m-%d}", f"{this_week:%Y-%m-%d}"]
    return [dg.RunRequest(run_key=f"{week}@{now:%Y-%m-%d}", partition_key=week) for week in dict.fromkeys(weeks)]


def unbuilt_weeks(instance: dg.DagsterInstance, now: pd.Timestamp) -> list[str]:
    """Weekly partitions before last week, from the first week any weekly asset was built, that some weekly
    asset has no materialisation of (oldest first)."""
    built = [instance.get_materialized_partitions(dg.AssetKey(name)) for name in WEEKLY_ASSETS]
    ever = set().union(*built)
    if not ever:
        return []
    complete = set.intersection(*built)
    last_week = f"{now.normalize() - pd.Timedelta(days=7):%Y-%m-%d}"
    keys = WEEKLY_PARTITIONS.get_partition_keys(current_time=now.to_pydatetime())
    return [key for key in keys if min(ever) <= key < last_week and key not in complete]


@dg.schedule(job=weekly_job, cron_schedule="0 12 * * 1", execution_timezone="UTC")
def monday_models_and_baskets(context: dg.ScheduleEvaluationContext):
    now = pd.Timestamp(context.scheduled_execution_time).tz_convert("UTC")
    missing = unbuilt_weeks(context.instance, now)
    if len(missing) > MAX_CATCH_UP_WEEKS:
        context.log.warning(
            f"{len(missing) - MAX_CATCH_UP_WEEKS} weekly partition(s) from {missing[0]} are unbuilt and older than "
            f"{MAX_CATCH_UP_WEEKS} weeks: backfill weekly_job over them by hand"
        )
    return weekly_run_requests(now, missing[-MAX_CATCH_UP_WEEKS:])


@dg.schedule(job=reports_job, cron_schedule="45 12 * * 1", execution_timezone="UTC")
def monday_reports(context: dg.ScheduleEvaluationContext):
    return dg.RunRequest(run_key=f"reports@{pd.Timestamp(context.scheduled_execution_time):%Y-%m-%d}")
