"""The model assets through dg.materialize: a multi-week run skips the weeks without enough history, and stores
what its weeks run one by one store."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from fund_pipeline.defs.ingest.reconstructed import RECONSTRUCTED_TABLE
from fund_pipeline.defs.models.assets import WEEKS_PER_BLOCK, funding_forecast_model, funding_forecasts
from fund_pipeline.domain.features import FEATURE_COLUMNS
from fund_pipeline.domain.forecast_horizons import STREAM
from fund_pipeline.resources import Warehouse
from fund_pipeline_tests.test_forecast import LONG_DAYS, synthetic_features

pytestmark = pytest.mark.slow


def test_a_week_with_too_little_history_is_skipped_with_a_note_and_the_others_materialise(tmp_path):
    warehouse = Warehouse(database=str(tmp_path / "warehouse.duckdb"))
    features = synthetic_features(days=LONG_DAYS)
    for column in FEATURE_COLUMNS:
        if column not in features:
            features[column] = np.nan
    warehouse.replace("feature_store", features, {})
    # Reconstructed quotes of one open window: one in force at its row's time, one sent after it.
    quoted_at = pd.Timestamp("2024-01-30 00:00", tz="UTC")
    quotes = pd.DataFrame(
        {
            "venue": "binance", "symbol": "BTC/USDT:USDT", "base": "BTC", "kind": "predicted",
            "funding_time": quoted_at + pd.Timedelta(hours=8),
            "ts": [quoted_at - pd.Timedelta(minutes=5), quoted_at + pd.Timedelta(minutes=5)],
            "rate": [3e-4, 9e-4], "interval_h": 8.0, "source": "reconstructed",
        }
    )  # fmt: skip
    warehouse.replace(RECONSTRUCTED_TABLE, quotes, {})
    result = dg.materialize(
        [funding_forecast_model, funding_forecasts],
        resources={"warehouse": warehouse},
        instance=dg.DagsterInstance.ephemeral(),
        tags={ASSET_PARTITION_RANGE_START_TAG: "2024-01-01", ASSET_PARTITION_RANGE_END_TAG: "2024-01-29"},
    )
    assert result.success
    models = warehouse.read("funding_forecast_model").set_index("week_start")
    skipped = models.loc[models["skip_reason"] != ""]
    trained = models.loc[models["skip_reason"] == ""]
    assert len(skipped) >= 1 and "need at least 200" in skipped["skip_reason"].iloc[0]
    assert len(trained) >= 1
    metadata = {
        m.asset_key.path[-1]: m.metadata for m in result.asset_materializations_for_node("funding_forecast_model")
    }["funding_forecast_model"]
    assert len(metadata["weeks_skipped"].value) == len(skipped)
    forecasts = warehouse.read("funding_forecasts")
    assert set(forecasts["week_start"]) == set(trained.index)
    nxt = forecasts.loc[forecasts["horizon"] == "next"].set_index(["venue", "funding_time"])
    assert nxt.loc[("binance", quoted_at), "pred_venue"] == pytest.approx(3e-4)
    others = nxt.drop(index=("binance", quoted_at))
    np.testing.assert_allclose(others["pred_venue"], others["pred_last"])
    forecast_meta = result.asset_materializations_for_node("funding_forecasts")[0].metadata
    assert 0 < forecast_meta["venue_quote_share"].value["2024-01-29"] < 0.05


def test_a_run_of_weeks_read_and_written_in_blocks_stores_what_each_week_alone_stores(tmp_path):
    """Six weeks in one run (two blocks of WEEKS_PER_BLOCK, the first week skipped) against six runs of one week,
    with a training window shorter than the data so that each week's own window must be cut out of the block."""
    assert WEEKS_PER_BLOCK < 6
    features = synthetic_features(days=70)
    for column in FEATURE_COLUMNS:
        if column not in features:
            features[column] = np.nan
    weeks = [f"{day:%Y-%m-%d}" for day in pd.date_range("2024-01-22", periods=6, freq="7D")]
    stored = []
    for runs in ([(weeks[0], weeks[-1])], [(week, week) for week in weeks]):
        warehouse = Warehouse(database=str(tmp_path / f"warehouse_{len(runs)}.duckdb"))
        warehouse.replace("feature_store", features, {})
        instance = dg.DagsterInstance.ephemeral()
        for first, last in runs:
            result = dg.materialize(
                [funding_forecast_model, funding_forecasts],
                resources={"warehouse": warehouse},
                instance=instance,
                tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
                run_config={"ops": {"funding_forecast_model": {"config": {"training_window_days": 28}}}},
            )
            assert result.success
        models = warehouse.read("funding_forecast_model").sort_values("week_start").reset_index(drop=True)
        forecasts = warehouse.read("funding_forecasts")
        stored.append((models, forecasts.sort_values(["week_start", *STREAM, "funding_time", "horizon"])))
    (run_models, run_forecasts), (alone_models, alone_forecasts) = stored
    assert len(run_models) == 6 and (run_models["skip_reason"] != "").sum() == 1
    pd.testing.assert_frame_equal(run_models, alone_models)
    assert run_forecasts["week_start"].nunique() == 5
    pd.testing.assert_frame_equal(run_forecasts.reset_index(drop=True), alone_forecasts.reset_index(drop=True))
