"""Ingest and curves refresh a few minutes after each funding settlement (00/08/16 UTC)."""

import dagster as dg
import pandas as pd

from fund_pipeline.resources import MarketSourceResource

INGEST_ASSETS = ["market_universe", "raw_funding_prints", "market_bars", "curve_history"]

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=INGEST_ASSETS,
    description="Raw prints, bars, universe and curve history for day × venue partitions.",
)

reconstruction_job = dg.define_asset_job(
    "reconstruction_job",
    selection=["reconstructed_prints"],
    description="Predicted-rate history rebuilt from premium-index history (sources that serve one).",
)


def settlement_run_requests(now: pd.Timestamp, venues) -> list[dg.RunRequest]:
    """Today's partition per venue; at the midnight settlement also yesterday's, to finalise it."""
    days = [now.normalize()]
    if now.hour < 8:
        days.insert(0, now.normalize() - pd.Timedelta(days=1))
    return [
        dg.RunRequest(
            run_key=f"{day:%Y-%m-%d}|{venue}@{now:%Y-%m-%dT%H}",
            partition_key=dg.MultiPartitionKey({"date": f"{day:%Y-%m-%d}", "venue": venue}),
        )
        for day in days
        for venue in venues
    ]


@dg.schedule(job=ingest_job, cron_schedule="5 0,8,16 * * *", execution_timezone="UTC")
def after_settlement_ingest(context: dg.ScheduleEvaluationContext, market_source: MarketSourceResource):
    now = pd.Timestamp(context.scheduled_execution_time).tz_convert("UTC")
    return settlement_run_requests(now, market_source.get().venues())
