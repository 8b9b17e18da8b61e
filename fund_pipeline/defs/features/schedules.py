"""Features and market aggregates refresh after the ingest that follows each settlement."""

import dagster as dg
import pandas as pd

DAILY_ASSETS = [
    "feature_store",
    "aggregate_funding_rate",
    "cumulative_funding_rate",
    "funding_arbitrage",
    "liquidations",
    "liquidations_hourly",
]

daily_job = dg.define_asset_job(
    "daily_job",
    selection=DAILY_ASSETS,
    description="Feature store and market-wide aggregates for daily partitions.",
)


def daily_run_requests(now: pd.Timestamp) -> list[dg.RunRequest]:
    """Today's partition; after midnight also yesterday's, whose last windows settled at 00:00."""
    days = [now.normalize()] if now.hour >= 8 else [now.normalize() - pd.Timedelta(days=1), now.normalize()]
    return [dg.RunRequest(run_key=f"{d:%Y-%m-%d}@{now:%Y-%m-%dT%H}", partition_key=f"{d:%Y-%m-%d}") for d in days]


@dg.schedule(job=daily_job, cron_schedule="25 0,8,16 * * *", execution_timezone="UTC")
def after_settlement_features(context: dg.ScheduleEvaluationContext):
    return daily_run_requests(pd.Timestamp(context.scheduled_execution_time).tz_convert("UTC"))
