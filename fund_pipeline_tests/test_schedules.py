import dagster as dg
import pandas as pd

from fund_pipeline.defs.features.schedules import after_settlement_features
from fund_pipeline.defs.ingest.schedules import after_settlement_ingest
from fund_pipeline.defs.models.schedules import monday_models_and_baskets, monday_reports
from fund_pipeline.resources import MarketSourceResource


def context(when: str):
    return dg.build_schedule_context(scheduled_execution_time=pd.Timestamp(when, tz="UTC").to_pydatetime())


def test_ingest_after_each_settlement_requests_today_per_venue():
    requests = after_settlement_ingest(context("2025-03-05 08:05"), market_source=MarketSourceResource())
    keys = sorted(r.partition_key for r in requests)
    assert keys == sorted(f"2025-03-05|{v}" for v in ("binance", "bybit", "okx", "hyperliquid", "deribit"))


def test_midnight_ingest_also_finalises_yesterday():
    requests = after_settlement_ingest(context("2025-03-05 00:05"), market_source=MarketSourceResource())
    days = {r.partition_key.split("|")[0] for r in requests}
    assert days == {"2025-03-04", "2025-03-05"}
    assert len({r.run_key for r in requests}) == len(requests)


def test_features_follow_the_ingest():
    assert [r.partition_key for r in after_settlement_features(context("2025-03-05 16:25"))] == ["2025-03-05"]
    assert [r.partition_key for r in after_settlement_features(context("2025-03-06 00:25"))] == [
        "2025-03-05",
        "2025-03-06",
    ]


def test_monday_runs_build_the_starting_week_and_complete_the_last():
    requests = monday_models_and_baskets(context("2025-03-10 12:00"))
    assert [r.partition_key for r in requests] == ["2025-03-03", "2025-03-10"]
    assert monday_reports(context("2025-03-10 12:45")).run_key == "reports@2025-03-10"
