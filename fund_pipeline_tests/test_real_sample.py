"""The real public sample through the graph: files source → prints → curves → features → forecasts."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from fund_pipeline.demo import load_definitions
from fund_pipeline.resources import LandingZone, MarketSourceResource, Warehouse
from fund_pipeline.sources.files import SAMPLE_ROOT

# Materialises three venues over two months and a weekly model: tens of seconds.
pytestmark = pytest.mark.slow

VENUES = ["binance", "gate", "kucoin"]


def materialise(assets, selection, resources, instance, first=None, last=None, run_config=None):
    tags = {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last} if first else None
    return dg.materialize(
        assets, selection=selection, resources=resources, instance=instance, tags=tags, run_config=run_config
    )


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    resources = {
        "warehouse": Warehouse(database=str(tmp / "w.duckdb")),
        "market_source": MarketSourceResource(kind="files", files_root=str(SAMPLE_ROOT), files_clock="infer"),
        "landing": LandingZone(path=str(tmp / "landing")),
    }
    assets = list(load_definitions().assets)
    instance = dg.DagsterInstance.ephemeral()
    results = []
    for venue in VENUES:
        results.append(
            materialise(
                assets,
                ["market_universe", "raw_funding_prints", "curve_history"],
                resources,
                instance,
                f"2023-01-01|{venue}",
                f"2023-02-28|{venue}",
            )
        )
    results.append(materialise(assets, ["feature_store"], resources, instance, "2023-01-09", "2023-02-27"))
    config = {"ops": {"funding_forecast_model": {"config": {"min_train_rows": 100}}}}
    results.append(
        materialise(
            assets,
            ["funding_forecast_model", "funding_forecasts"],
            resources,
            instance,
            "2023-02-06",
            "2023-02-13",
            config,
        )
    )
    results.append(materialise(assets, ["forecast_scorecard"], resources, instance))
    return resources["warehouse"], results


def test_real_prints_land_on_the_utc_grid_and_score_against_baselines(real):
    warehouse, results = real
    assert all(r.success for r in results)
    prints = warehouse.read("raw_funding_prints")
    assert set(prints["venue"]) == set(VENUES)
    binance_hours = set(prints.loc[prints["venue"] == "binance", "funding_time"].dt.hour)
    assert binance_hours == {0, 8, 16}
    assert set(prints.loc[prints["venue"] == "kucoin", "funding_time"].dt.hour) == {4, 12, 20}
    card = warehouse.read("forecast_scorecard")
    assert set(card["predictor"]) == {"model", "interest", "last", "rolling_mean", "ewma", "ar1", "venue"}
    assert (card["n"] > 0).all()
    forecasts = warehouse.read("funding_forecasts")
    assert (forecasts["funding_time"] >= pd.Timestamp("2023-02-06 12:00", tz="UTC")).all()


def test_the_scorecard_stores_each_weekly_verdict_with_its_interval(real):
    warehouse, results = real
    metadata = results[-1].asset_materializations_for_node("forecast_scorecard")[0].metadata
    assert "data:image/png;base64," in metadata["verdict_intervals_all_venues"].value
    low, point, high = (metadata[f"smape_all_horizons_model_vs_best_{k}"].value for k in ("p5_pct", "pct", "p95_pct"))
    assert low <= high and np.isfinite(point)
    verdicts = warehouse.read("forecast_verdicts")
    weekly = verdicts.loc[verdicts["forecasts"] == "weekly"]
    intervals = warehouse.read("forecast_verdict_intervals")
    merged = intervals.merge(weekly, on=["venue", "horizon", "metric"], suffixes=("", "_verdict"))
    assert len(merged) == len(weekly) == len(intervals)
    assert (merged["model_vs_best_pct"] - merged["model_vs_best_pct_verdict"]).abs().max() < 1e-9
    assert (intervals["p5_pct"] <= intervals["p95_pct"]).all()
    assert set(intervals.loc[intervals["venue"] == "all", "weeks"]) == {2}


def test_real_sample_checks_pass(real):
    _, results = real
    failed = [
        e.event_specific_data.check_name
        for r in results
        for e in r.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    ]
    assert set(failed) <= {"model_beats_best_baseline"}, failed
