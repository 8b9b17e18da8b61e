"""Look-backs Dagster can see: which upstream partitions each partition maps to, against what it reads."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pandas as pd
import pytest

from fund_pipeline.definitions import build_definitions
from fund_pipeline.defs.partitions import (
    CLUSTER_LOOKBACK,
    CURVE_LOOKBACK,
    DAILY_PARTITIONS,
    DAILY_VENUE_PARTITIONS,
    MODEL_LOOKBACK,
    WEEKLY_PARTITIONS,
    lookback_days,
    venue_lookback_days,
    weeks_before,
    whole_days,
)
from fund_pipeline.domain.forecast_horizons import FORECAST_INPUT_WARMUP, MAX_HORIZON

WEEK = "2025-03-10"  # Monday: the week runs 2025-03-10 12:00 to 2025-03-17 12:00 UTC
WEEK_START = pd.Timestamp("2025-03-10 12:00", tz="UTC")


@pytest.fixture(scope="module")
def graph():
    return build_definitions().resolve_asset_graph()


def upstream(graph, asset: str, parent: str, partition: str) -> list[str]:
    """The partitions of `parent` that partition `partition` of `asset` maps to, as Dagster resolves them."""
    key, parent_key = dg.AssetKey(asset), dg.AssetKey(parent)
    mapping = graph.get_partition_mapping(key, parent_key)
    child_def, parent_def = graph.get(key).partitions_def, graph.get(parent_key).partitions_def
    result = mapping.get_upstream_mapped_partitions_result_for_partitions(
        child_def.empty_subset().with_partition_keys([partition]), child_def, parent_def
    )
    return sorted(result.partitions_subset.get_partition_keys())


def days(first: str, last: str) -> list[str]:
    return [d.strftime("%Y-%m-%d") for d in pd.date_range(first, last, freq="D")]


def test_curves_map_to_the_same_venue_and_the_three_days_before(graph):
    mapped = upstream(graph, "curve_history", "raw_funding_prints", "2025-03-10|okx")
    assert mapped == [f"{d}|okx" for d in days("2025-03-07", "2025-03-10")]
    assert CURVE_LOOKBACK == timedelta(days=3)


@pytest.mark.parametrize(
    ("asset", "lookback"),
    [("symbol_clusters", CLUSTER_LOOKBACK), ("funding_forecast_model", MODEL_LOOKBACK)],
)
def test_weekly_assets_map_to_the_days_before_the_week_and_none_inside_it(graph, asset, lookback):
    mapped = upstream(graph, asset, "feature_store", WEEK)
    read_from = (WEEK_START - lookback).strftime("%Y-%m-%d")
    # Every day the asset reads is declared; the declaration is whole weeks, so at most 6 days more.
    assert set(days(read_from, "2025-03-10")) <= set(mapped)
    assert len(mapped) - len(days(read_from, "2025-03-10")) < 7
    # The week's Monday is read until 12:00; no later day of the week is.
    assert max(mapped) == "2025-03-10"


def test_forecasts_map_to_their_week_with_its_warm_up_and_horizon(graph):
    mapped = upstream(graph, "funding_forecasts", "feature_store", WEEK)
    read_from = (WEEK_START - FORECAST_INPUT_WARMUP).strftime("%Y-%m-%d")
    read_to = (WEEK_START + pd.Timedelta(days=7) + MAX_HORIZON).strftime("%Y-%m-%d")
    assert set(days(read_from, read_to)) <= set(mapped)
    assert len(mapped) - len(days(read_from, read_to)) < 14  # rounded out to whole weeks at both ends


def test_daily_assets_over_day_by_venue_upstreams_map_the_same_day_of_every_venue(graph):
    """Dagster's built-in mappings cannot shift the date between a daily and a day × venue asset."""
    mapped = upstream(graph, "feature_store", "curve_history", "2025-03-10")
    assert mapped == sorted(
        f"2025-03-10|{v}" for v in DAILY_VENUE_PARTITIONS.get_partitions_def_for_dimension("venue").get_partition_keys()
    )


def test_helpers_count_whole_days_and_refuse_fractions():
    sub = DAILY_PARTITIONS.empty_subset().with_partition_keys(["2025-03-10"])
    mapped = lookback_days(
        timedelta(days=2), ahead=timedelta(days=1)
    ).get_upstream_mapped_partitions_result_for_partitions(sub, DAILY_PARTITIONS, DAILY_PARTITIONS)
    assert sorted(mapped.partitions_subset.get_partition_keys()) == days("2025-03-08", "2025-03-11")
    venue_sub = DAILY_VENUE_PARTITIONS.empty_subset().with_partition_keys(["2025-03-10|bybit"])
    mapped = venue_lookback_days(timedelta(days=1)).get_upstream_mapped_partitions_result_for_partitions(
        venue_sub, DAILY_VENUE_PARTITIONS, DAILY_VENUE_PARTITIONS
    )
    assert sorted(mapped.partitions_subset.get_partition_keys()) == ["2025-03-09|bybit", "2025-03-10|bybit"]
    week_sub = WEEKLY_PARTITIONS.empty_subset().with_partition_keys([WEEK])
    mapped = weeks_before(timedelta(days=7)).get_upstream_mapped_partitions_result_for_partitions(
        week_sub, WEEKLY_PARTITIONS, DAILY_PARTITIONS
    )
    assert sorted(mapped.partitions_subset.get_partition_keys()) == days("2025-03-03", "2025-03-10")
    with pytest.raises(ValueError, match="whole number of days"):
        whole_days(timedelta(hours=36))
    with pytest.raises(ValueError, match="whole number of days"):
        whole_days(timedelta(days=-1))
