"""Live forecasts: the right feature row, nothing after t, the venue's quote held, scored once settled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.forecast import ModelParams, train_forecast_model
from fund_pipeline.domain.forecast_horizons import MASS_FEATURES, forecast_frame
from fund_pipeline.domain.forecast_metrics import scorecard
from fund_pipeline.domain.live_forecast import (
    LIVE_FORECAST_COLUMNS,
    LIVE_HORIZONS,
    live_forecasts,
    live_rows,
    score_live_forecasts,
)

D0 = pd.Timestamp("2026-01-05", tz="UTC")
N_WINDOWS = 150
FEATURES = ["rate_mean_21", "level", "slope"]


def feature_rows(n=N_WINDOWS, seed=0) -> pd.DataFrame:
    """Settled 8h windows of two streams, each row's target the next row's rate."""
    rng = np.random.default_rng(seed)
    blocks = []
    for symbol in ("BTC/USDT:USDT", "ETH/USDT:USDT"):
        rate = np.empty(n)
        rate[0] = 1e-4
        for i in range(1, n):
            rate[i] = 1e-4 + 0.7 * (rate[i - 1] - 1e-4) + 5e-5 * rng.standard_normal()
        times = D0 + pd.to_timedelta(np.arange(n) * 8, unit="h")
        block = pd.DataFrame(
            {
                "venue": "binance",
                "symbol": symbol,
                "base": symbol[:3],
                "funding_time": times,
                "interval_h": 8.0,
                "rate": rate,
                "rate_mean_21": pd.Series(rate).rolling(21, min_periods=1).mean().to_numpy(),
                "level": rate * 1095,
                "slope": rng.standard_normal(n) * 0.01,
            }
        )
        block["target_time"] = block["funding_time"].shift(-1)
        block["target_rate"] = block["rate"].shift(-1)
        block["target_interval_h"] = block["interval_h"].shift(-1)
        blocks.append(block)
    return pd.concat(blocks, ignore_index=True)


@pytest.fixture(scope="module")
def model():
    frame = forecast_frame(feature_rows())
    params = ModelParams(iterations=20, classifier_iterations=10)
    return train_forecast_model(frame, FEATURES, D0 + pd.Timedelta(days=40), params, horizons=LIVE_HORIZONS)


def snapshots(open_start: pd.Timestamp, t: pd.Timestamp, quote=0.0003) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "venue": "binance",
            "symbol": ["BTC/USDT:USDT", "ETH/USDT:USDT"],
            "ts_snap": t - pd.Timedelta(minutes=5),
            "funding_time": open_start + pd.Timedelta(hours=8),
            "interval_h": 8.0,
            "b0": quote,
        }
    )


OPEN_START = D0 + pd.Timedelta(hours=8 * 120)  # the window settled last
T = OPEN_START + pd.Timedelta(hours=3)


def test_forecast_uses_the_window_settled_last_and_holds_the_quote(model):
    features = feature_rows()
    rows, missing = live_rows(model, features, snapshots(OPEN_START, T), T)
    assert missing.empty and len(rows) == 2
    assert (rows["funding_time"] == OPEN_START).all()
    out = live_forecasts(model, rows)
    assert list(out.columns) == LIVE_FORECAST_COLUMNS
    assert sorted(out["horizon"].unique()) == sorted(LIVE_HORIZONS)
    nxt = out[out["horizon"] == "next"]
    assert (nxt["open_funding_time"] == OPEN_START + pd.Timedelta(hours=8)).all()
    assert (nxt["target_time"] == OPEN_START + pd.Timedelta(hours=8)).all()
    assert nxt["pred_venue"].tolist() == pytest.approx([0.0003, 0.0003])
    one_day = out[out["horizon"] == "1d"]
    assert one_day["pred_venue"].tolist() == pytest.approx([0.0009, 0.0009])  # three 8h windows
    assert (one_day["target_time"] == OPEN_START + pd.Timedelta(days=1)).all()
    assert out["actual"].isna().all() and out["pred_model"].notna().all()


def test_nothing_after_t_moves_a_forecast(model):
    features = feature_rows()
    clean = live_forecasts(model, live_rows(model, features, snapshots(OPEN_START, T), T)[0])
    poisoned = features.copy()
    later = poisoned["funding_time"] >= T
    poisoned.loc[later, ["rate", "rate_mean_21", "level", "slope"]] = 0.05
    # The settled-last row's own target settles after t: poisoning it changes nothing either.
    at_open = poisoned["funding_time"] == OPEN_START
    poisoned.loc[at_open, "target_rate"] = 0.05
    again = live_forecasts(model, live_rows(model, poisoned, snapshots(OPEN_START, T), T)[0])
    pd.testing.assert_frame_equal(clean, again)


def test_open_window_without_its_feature_row_is_reported_not_forecast(model):
    features = feature_rows()
    stale = features[~((features["symbol"] == "ETH/USDT:USDT") & (features["funding_time"] == OPEN_START))]
    rows, missing = live_rows(model, stale, snapshots(OPEN_START, T), T)
    assert rows["symbol"].tolist() == ["BTC/USDT:USDT"]
    assert missing["symbol"].tolist() == ["ETH/USDT:USDT"]


def test_a_window_already_settled_at_t_is_not_open(model):
    features = feature_rows()
    later = OPEN_START + pd.Timedelta(hours=9)
    rows, missing = live_rows(model, features, snapshots(OPEN_START, later), later)
    assert rows.empty and missing.empty


def test_settled_forecasts_are_scored_with_the_feature_store_targets(model):
    features = feature_rows()
    out = live_forecasts(model, live_rows(model, features, snapshots(OPEN_START, T), T)[0])
    # The store as it stands four windows after the open one settled: next and 1d are known.
    known = features[features["funding_time"] <= OPEN_START + pd.Timedelta(hours=32)].copy()
    last = known["funding_time"] == known["funding_time"].max()
    known.loc[last, ["target_time", "target_rate", "target_interval_h"]] = np.nan
    scored = score_live_forecasts(out, known)
    assert sorted(scored["horizon"].unique()) == ["1d", "next"]
    btc = features[features["symbol"] == "BTC/USDT:USDT"].set_index("funding_time")["rate"]
    after = [OPEN_START + pd.Timedelta(hours=8 * k) for k in (1, 2, 3)]
    row = scored[(scored["symbol"] == "BTC/USDT:USDT") & (scored["horizon"] == "next")].iloc[0]
    assert row["actual"] == pytest.approx(btc[after[0]])
    row = scored[(scored["symbol"] == "BTC/USDT:USDT") & (scored["horizon"] == "1d")].iloc[0]
    assert row["actual"] == pytest.approx(btc[after].sum())
    card = scorecard(scored)
    assert set(card["venue"]) == {"binance", "all"} and "venue" in set(card["predictor"])
    nxt = card[(card["venue"] == "all") & (card["horizon"] == "next")].set_index("predictor")
    expected = np.mean(np.abs(scored.loc[scored["horizon"] == "next", "actual"] - 0.0003))
    assert nxt.loc["venue", "mae"] == pytest.approx(expected)


def test_a_live_rows_mass_features_come_from_the_windows_before_it():
    """The run on a mass point and the share of recent windows on it are read off the stream's history,
    as the model learned them, not off the live row alone (which would always seem to have just arrived)."""
    features = feature_rows()
    btc = (features["symbol"] == "BTC/USDT:USDT").to_numpy()
    sits = btc & (np.arange(len(features)) % 10 < 7)
    features.loc[sits, "rate"] = 1e-4
    features["target_rate"] = features.groupby("symbol")["rate"].shift(-1)
    sticky = train_forecast_model(
        forecast_frame(features),
        FEATURES,
        D0 + pd.Timedelta(days=40),
        ModelParams(iterations=20, classifier_iterations=10),
        horizons=LIVE_HORIZONS,
    )
    assert sticky.mass_points["mass_8h"].tolist() == pytest.approx([1e-4])
    rows, _ = live_rows(sticky, features, snapshots(OPEN_START, T), T)
    live_btc = rows.loc[rows["symbol"] == "BTC/USDT:USDT"].iloc[0]
    # OPEN_START is window 120 of the stream: windows 120 .. 126 of each 10 sit on the point.
    assert live_btc["funding_time"] == OPEN_START and live_btc["mass_run"] == 1.0
    five_windows = pd.Timedelta(hours=40)
    rows, _ = live_rows(sticky, features, snapshots(OPEN_START + five_windows, T + five_windows), T + five_windows)
    later = rows.loc[rows["symbol"] == "BTC/USDT:USDT"].iloc[0]
    # Window 125: six in a row on the point, and 15 of windows 105 .. 125.
    assert later["mass_run"] == 6.0
    assert later["mass_share_21"] == pytest.approx(15 / 21)
    assert later[MASS_FEATURES].notna().all()
