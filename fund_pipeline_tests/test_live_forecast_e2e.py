"""Offline end to end: emulator → collector across two rolls → sensor → live_curve, the open window's
live_features and live_forecasts (+ the stress check); a forecast whose window then settled is scored
in forecast_scorecard's live rows."""

import asyncio
import json

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from fund_pipeline.defs.live.alerts import StressWebhook, live_curve_stress
from fund_pipeline.defs.live.assets import live_curve
from fund_pipeline.defs.live.features import LIVE_FEATURES_TABLE, live_features
from fund_pipeline.defs.live.forecasts import live_forecasts, week_start_of
from fund_pipeline.defs.live.sensors import build_live_snapshot_sensor
from fund_pipeline.defs.models.assets import forecast_scorecard
from fund_pipeline.domain.curve import SnapshotPolicy
from fund_pipeline.domain.forecast import ModelParams, build_forecasts, train_forecast_model
from fund_pipeline.domain.forecast_horizons import forecast_frame
from fund_pipeline.domain.live_forecast import LIVE_HORIZONS
from fund_pipeline.emulator.server import start_emulator
from fund_pipeline.live.collector import Collector
from fund_pipeline.resources import LandingZone
from fund_pipeline.sources.simulated import SimulatedMarket
from fund_pipeline.warehouse import Warehouse

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VENUES = ["binance", "bybit", "okx", "hyperliquid"]
START = pd.Timestamp("2025-03-01 05:00", tz="UTC")
FEATURES = ["rate_mean_21", "level", "slope"]


def collect(tmp_path, run_seconds=20.0) -> None:
    """20 s at 3600x: 05:00 to about 01:00 the next day, across the 08:00, 16:00 and 00:00 rolls."""

    async def go():
        emulator = await start_emulator(bases=("BTC",), speed=3600, start=START)
        try:
            collector = Collector(
                VENUES, ["BTC"], tmp_path / "landing", api_base_url=emulator.base_url,
                policy=SnapshotPolicy("every_n_seconds", 600), clock=emulator.state.clock.now, seed=3,
            )  # fmt: skip
            await collector.run(run_seconds)
        finally:
            await emulator.stop()

    asyncio.run(go())


def feature_store_rows() -> pd.DataFrame:
    """A stand-in feature store from the emulated market's settled prints (55 days before to 2 days after)."""
    market = SimulatedMarket(seed=7, bases=("BTC",))
    blocks = []
    for venue in VENUES:
        settled = market.funding_prints(venue, START - pd.Timedelta(days=55), START + pd.Timedelta(days=2))
        for _, rows in settled.groupby("symbol"):
            rows = rows.sort_values("funding_time").reset_index(drop=True)
            block = rows[["venue", "symbol", "base", "funding_time", "interval_h", "rate"]].copy()
            block["rate_mean_21"] = block["rate"].rolling(21, min_periods=1).mean()
            block["level"] = block["rate"] * 8760 / block["interval_h"]
            block["slope"] = block["rate"].diff().fillna(0.0)
            block["target_time"] = block["funding_time"].shift(-1)
            block["target_rate"] = block["rate"].shift(-1)
            block["target_interval_h"] = block["interval_h"].shift(-1)
            blocks.append(block)
    return pd.concat(blocks, ignore_index=True)


def store_model(warehouse: Warehouse, features: pd.DataFrame) -> None:
    week = week_start_of(START)
    model = train_forecast_model(
        forecast_frame(features), FEATURES, week, ModelParams(iterations=30, classifier_iterations=10), LIVE_HORIZONS
    )
    record = pd.DataFrame(
        {"week_start": [week], "train_end": [model.train_end], "n_train": [1], "model": [model.to_bytes()],
         "skip_reason": [""]}
    )  # fmt: skip
    warehouse.replace("funding_forecast_model", record, {})
    # The week before's weekly forecasts: forecast_scorecard scores those beside the live ones.
    before = week - pd.Timedelta(days=7)
    weekly = build_forecasts(model, forecast_frame(features), before, week).assign(week_start=before)
    warehouse.replace("funding_forecasts", weekly, {})


def test_collector_to_live_forecasts_scored_once_settled(tmp_path):
    collect(tmp_path)
    landing = LandingZone(path=str(tmp_path / "landing"))
    warehouse = Warehouse(database=str(tmp_path / "w.duckdb"))
    features = feature_store_rows()
    warehouse.replace("feature_store", features, {})
    store_model(warehouse, features)

    sensor = build_live_snapshot_sensor()
    resources = {"landing": landing, "warehouse": warehouse, "stress_webhook": StressWebhook()}
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"landing": landing})
        result = sensor(context)
        requests = result if isinstance(result, list) else []
        assert {r.tags["live_curve/run"] for r in requests} >= {"final"}
        assert json.loads(context.cursor)["data_time"] > (START + pd.Timedelta(hours=16)).value
        keys = sorted({r.partition_key for r in requests})
        assert len(keys) >= 3, keys
        for key in keys:
            outcome = dg.materialize(
                [live_curve, live_features, live_forecasts, live_curve_stress],
                partition_key=key,
                instance=instance,
                resources=resources,
            )
            assert outcome.success, key
        stored = warehouse.read("live_forecasts")
        assert set(stored["venue"]) == set(VENUES)
        # One set of forecasts per window, each made at that window's newest snapshot, before it settles.
        assert stored["ts_forecast"].nunique() == len(keys)
        nxt = stored[stored["horizon"] == "next"]
        assert (nxt["ts_forecast"] < nxt["target_time"]).all()
        assert np.isfinite(nxt[["pred_model", "pred_venue", "pred_last"]].to_numpy()).all()
        live_feats = warehouse.read(LIVE_FEATURES_TABLE)
        assert live_feats["at"].nunique() == len(keys) and live_feats["predicted_now"].notna().all()

        scored = dg.materialize([forecast_scorecard], instance=instance, resources=resources)
        assert scored.success
    card = warehouse.read("forecast_scorecard")
    card = card[card["forecasts"] == "live"]
    # Windows that settled during the run (08:00, 16:00, 00:00) were forecast inside them: scored.
    assert "next" in set(card["horizon"])
    overall = card[(card["venue"] == "all") & (card["horizon"] == "next")].set_index("predictor")
    assert overall.loc["model", "n"] >= 2 * len(VENUES)
    assert {"venue", "last", "interest"} <= set(overall.index)
