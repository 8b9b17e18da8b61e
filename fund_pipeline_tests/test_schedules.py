import dagster as dg
import pandas as pd

from fund_pipeline.defs.features.schedules import after_settlement_features
from fund_pipeline.defs.ingest.schedules import after_settlement_ingest
from fund_pipeline.defs.models.schedules import (
    MAX_CATCH_UP_WEEKS,
    WEEKLY_ASSETS,
    monday_models_and_baskets,
    monday_reports,
)
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
    with dg.instance_for_test() as instance:
        assert monday(instance, "2025-03-10 12:00") == ["2025-03-03", "2025-03-10"]
    assert monday_reports(context("2025-03-10 12:45")).run_key == "reports@2025-03-10"


def built(instance: dg.DagsterInstance, weeks: list[str], assets=WEEKLY_ASSETS) -> None:
    for week in weeks:
        for name in assets:
            instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=name, partition=week))


def monday(instance: dg.DagsterInstance, when: str) -> list[str]:
    scheduled = pd.Timestamp(when, tz="UTC").to_pydatetime()
    result = monday_models_and_baskets(dg.build_schedule_context(instance=instance, scheduled_execution_time=scheduled))
    assert isinstance(result, list)
    requests = [r for r in result if isinstance(r, dg.RunRequest)]
    assert len(requests) == len(result) and len({r.run_key for r in requests}) == len(requests)
    return [str(r.partition_key) for r in requests]


def test_monday_also_requests_the_earlier_weeks_a_weekly_asset_lacks():
    with dg.instance_for_test() as instance:
        # Built: 2025-02-03 and 02-10 whole; 02-24 all but its baskets; 02-17 nothing (the daemon was down).
        built(instance, ["2025-02-03", "2025-02-10"])
        built(instance, ["2025-02-24"], [a for a in WEEKLY_ASSETS if a != "weekly_hedge_baskets"])
        assert monday(instance, "2025-03-10 12:00") == ["2025-02-17", "2025-02-24", "2025-03-03", "2025-03-10"]
        # Once they are built, a Monday is back to its two weeks; nothing before the first week built is asked.
        built(instance, ["2025-02-17", "2025-02-24", "2025-03-03", "2025-03-10"])
        assert monday(instance, "2025-03-17 12:00") == ["2025-03-10", "2025-03-17"]


def test_a_gap_longer_than_the_catch_up_requests_its_newest_weeks_only():
    with dg.instance_for_test() as instance:
        built(instance, ["2024-01-01"])
        weeks = monday(instance, "2025-03-10 12:00")
        assert len(weeks) == MAX_CATCH_UP_WEEKS + 2
        assert weeks[0] == f"{pd.Timestamp('2025-02-24') - pd.Timedelta(weeks=MAX_CATCH_UP_WEEKS - 1):%Y-%m-%d}"
        assert weeks[-2:] == ["2025-03-03", "2025-03-10"]
