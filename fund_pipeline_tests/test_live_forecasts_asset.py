"""live_forecasts, and forecast_scorecard's live rows, through dg.materialize on a temporary warehouse."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from fund_pipeline.defs.live.forecasts import live_forecasts
from fund_pipeline.defs.models.assets import forecast_scorecard
from fund_pipeline.defs.partitions import DAILY_PARTITIONS, FUNDING_WINDOW_PARTITIONS, WEEKLY_PARTITIONS
from fund_pipeline.domain.forecast import ModelParams, build_forecasts, train_forecast_model
from fund_pipeline.domain.forecast_horizons import forecast_frame
from fund_pipeline.domain.live_forecast import LIVE_HORIZONS
from fund_pipeline.resources import Warehouse
from fund_pipeline_tests.test_live_forecast import D0, FEATURES, feature_rows

pytestmark = pytest.mark.slow

OPEN_START = D0 + pd.Timedelta(hours=8 * 120)  # 2026-02-14 00:00, a window start
WINDOW = OPEN_START.strftime("%Y-%m-%d-%H:%M")


def store(tmp_path, features: pd.DataFrame, with_model: bool = True) -> Warehouse:
    warehouse = Warehouse(database=str(tmp_path / "w.duckdb"))
    warehouse.replace("feature_store", features, {})
    key = WEEKLY_PARTITIONS.get_partition_key_for_timestamp(OPEN_START.timestamp())
    week = pd.Timestamp(WEEKLY_PARTITIONS.time_window_for_partition_key(key).start).tz_convert("UTC")
    model = train_forecast_model(
        forecast_frame(features), FEATURES, week, ModelParams(iterations=20, classifier_iterations=10), LIVE_HORIZONS
    )
    record = pd.DataFrame(
        {"week_start": [week], "train_end": [model.train_end], "n_train": [1], "model": [model.to_bytes()],
         "skip_reason": [""]}
    )  # fmt: skip
    if with_model:
        warehouse.replace("funding_forecast_model", record, {})
        # The weekly forecasts of the week before, which forecast_scorecard needs to run at all.
        weekly = build_forecasts(model, forecast_frame(features), week - pd.Timedelta(days=7), week)
        warehouse.replace("funding_forecasts", weekly.assign(week_start=week - pd.Timedelta(days=7)), {})
    times = [OPEN_START + pd.Timedelta(minutes=m) for m in (10, 20)]
    snaps = pd.DataFrame(
        [
            {"venue": "binance", "symbol": s, "ts_snap": t, "funding_time": OPEN_START + pd.Timedelta(hours=8),
             "interval_h": 8.0, "b0": 0.0002}
            for s in ("BTC/USDT:USDT", "ETH/USDT:USDT") for t in times
        ]
    )  # fmt: skip
    warehouse.replace("live_curve", snaps, {})
    return warehouse


def test_live_forecasts_stored_at_the_newest_snapshot_then_scored(tmp_path):
    features = feature_rows()
    known_at_t = features[features["funding_time"] <= OPEN_START].copy()
    newest = known_at_t["funding_time"] == OPEN_START  # its target is the open window: not settled
    known_at_t.loc[newest, ["target_time", "target_rate", "target_interval_h"]] = np.nan
    warehouse = store(tmp_path, known_at_t)
    result = dg.materialize([live_forecasts], partition_key=WINDOW, resources={"warehouse": warehouse})
    assert result.success
    meta = result.asset_materializations_for_node("live_forecasts")[0].metadata
    assert meta["dagster/row_count"].value == 2 * len(LIVE_HORIZONS)
    assert meta["symbols_without_feature_row"].value == 0 and "forecast_plot" in meta
    stored = warehouse.read("live_forecasts")
    assert (stored["ts_forecast"] == OPEN_START + pd.Timedelta(minutes=20)).all()
    # Re-running at the same t replaces, never duplicates.
    dg.materialize([live_forecasts], partition_key=WINDOW, resources={"warehouse": warehouse})
    assert len(warehouse.read("live_forecasts")) == len(stored)

    # Nothing settled yet: the scorecard has weekly rows only.
    first = dg.materialize([forecast_scorecard], resources={"warehouse": warehouse})
    assert first.asset_materializations_for_node("forecast_scorecard")[0].metadata["live_forecasts_scored"].value == 0
    weekly_card = warehouse.read("forecast_scorecard")
    assert set(weekly_card["forecasts"]) == {"weekly"}
    # Two days later the feature store has the next windows: next and 1d are scored, 3d is not yet.
    later = features[features["funding_time"] <= OPEN_START + pd.Timedelta(days=2)]
    warehouse.replace("feature_store", later, {})
    dg.materialize([forecast_scorecard], resources={"warehouse": warehouse})
    card = warehouse.read("forecast_scorecard")
    live = card[card["forecasts"] == "live"]
    assert set(live["horizon"]) == {"next", "1d"}
    assert {"model", "venue", "last"} <= set(live["predictor"])
    assert (live.loc[live["venue"] == "all", "n"] == 2).all()
    # The weekly rows are the weekly forecasts' alone, as before the live ones settled.
    weekly_again = card[card["forecasts"] == "weekly"].reset_index(drop=True)
    pd.testing.assert_frame_equal(weekly_again, weekly_card, check_like=True)
    # The live model row, computed here from the stored forecasts and the store's realised windows.
    truth = later.set_index(["symbol", "funding_time"])["rate"]
    nxt = stored[stored["horizon"] == "next"]
    realised = [truth[(s, t)] for s, t in zip(nxt["symbol"], nxt["target_time"], strict=True)]
    row = live[(live["venue"] == "all") & (live["horizon"] == "next")].set_index("predictor")
    assert row.loc["model", "mae"] == pytest.approx(np.mean(np.abs(nxt["pred_model"].to_numpy() - realised)))
    verdicts = warehouse.read("forecast_verdicts")
    assert {"weekly", "live"} == set(verdicts["forecasts"])


def test_a_week_without_model_writes_nothing_and_says_why(tmp_path):
    warehouse = store(tmp_path, feature_rows(), with_model=False)
    result = dg.materialize([live_forecasts], partition_key=WINDOW, resources={"warehouse": warehouse})
    meta = result.asset_materializations_for_node("live_forecasts")[0].metadata
    assert meta["dagster/row_count"].value == 0 and "no funding_forecast_model" in meta["note"].value


def test_declared_upstream_partitions_are_what_it_reads():
    one = FUNDING_WINDOW_PARTITIONS.subset_with_partition_keys(["2026-03-09-00:00"])
    features = live_forecasts.get_partition_mapping(dg.AssetKey("feature_store"))
    days = features.get_upstream_mapped_partitions_result_for_partitions(
        one, FUNDING_WINDOW_PARTITIONS, DAILY_PARTITIONS
    ).partitions_subset.get_partition_keys()
    assert days[0] == "2026-02-27" and days[-1] == "2026-03-09" and len(days) == 11
    model = live_forecasts.get_partition_mapping(dg.AssetKey("funding_forecast_model"))
    weeks = model.get_upstream_mapped_partitions_result_for_partitions(
        one, FUNDING_WINDOW_PARTITIONS, WEEKLY_PARTITIONS
    ).partitions_subset.get_partition_keys()
    assert weeks == ["2026-03-02"]  # 00:00 Monday is before that week's 12:00 start
