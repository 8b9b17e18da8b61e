"""Weekly model and basket runs on Mondays 12:00 UTC, then the out-of-sample reports."""

import dagster as dg
import pandas as pd

WEEKLY_ASSETS = ["symbol_clusters", "funding_forecast_model", "funding_forecasts", "weekly_hedge_baskets"]
REPORT_ASSETS = ["forecast_scorecard", "basket_performance"]

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


def weekly_run_requests(now: pd.Timestamp) -> list[dg.RunRequest]:
    """The week that starts now (its baskets are formed at its start) and the one that just ended,
    whose forecasts can now be completed with its last settled targets."""
    this_week = now.normalize()
    last_week = this_week - pd.Timedelta(days=7)
    return [
        dg.RunRequest(run_key=f"{w:%Y-%m-%d}@{now:%Y-%m-%d}", partition_key=f"{w:%Y-%m-%d}")
        for w in (last_week, this_week)
    ]


@dg.schedule(job=weekly_job, cron_schedule="0 12 * * 1", execution_timezone="UTC")
def monday_models_and_baskets(context: dg.ScheduleEvaluationContext):
    return weekly_run_requests(pd.Timestamp(context.scheduled_execution_time).tz_convert("UTC"))


@dg.schedule(job=reports_job, cron_schedule="45 12 * * 1", execution_timezone="UTC")
def monday_reports(context: dg.ScheduleEvaluationContext):
    return dg.RunRequest(run_key=f"reports@{pd.Timestamp(context.scheduled_execution_time):%Y-%m-%d}")
