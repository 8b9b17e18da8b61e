"""Horizon targets, trader baselines at the forecast's information time, and mass points found from data."""

import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.forecast_horizons import (
    AR1,
    EWMA_ALPHA,
    add_mass_features,
    baseline_y,
    find_mass_points,
    forecast_frame,
    to_accrued,
)


def stream(venue="binance", interval_h=8.0, rates=None, start="2024-01-01", symbol="BTC/USDT:USDT"):
    rates = np.asarray(rates, dtype="float64")
    times = pd.date_range(start, periods=len(rates), freq=f"{int(interval_h)}h", tz="UTC")
    frame = pd.DataFrame(
        {
            "venue": venue,
            "symbol": symbol,
            "funding_time": times,
            "interval_h": interval_h,
            "rate": rates,
            "rate_mean_21": pd.Series(rates).rolling(21, min_periods=1).mean().to_numpy(),
        }
    )
    frame["target_time"] = frame["funding_time"].shift(-1)
    frame["target_rate"] = frame["rate"].shift(-1)
    frame["target_interval_h"] = interval_h
    return frame


def test_accrued_targets_sum_every_window_of_the_horizon():
    rates = np.arange(1, 41) * 1e-6
    frame = forecast_frame(stream(rates=rates))
    first = frame.iloc[0]
    assert first["accrued_next"] == pytest.approx(2e-6)
    assert first["accrued_1d"] == pytest.approx((2 + 3 + 4) * 1e-6)
    assert first["accrued_7d"] == pytest.approx(sum(range(2, 23)) * 1e-6)
    assert first["y_7d"] == pytest.approx(first["accrued_7d"] * 8 / 168)
    assert first["target_time_3d"] == first["funding_time"] + pd.Timedelta(days=3)
    np.testing.assert_allclose(to_accrued(frame["y_1d"], frame, "1d"), frame["accrued_1d"])
    # the last 21 rows have no complete 7-day horizon
    assert frame["accrued_7d"].isna().sum() == 21


def test_a_missing_window_makes_the_horizon_unknown_not_smaller():
    frame = stream(rates=np.full(30, 1e-4)).drop(index=5)
    out = forecast_frame(frame)
    spans_gap = (out["funding_time"] < frame["funding_time"].iloc[5]) & (
        out["funding_time"] >= frame["funding_time"].iloc[5] - pd.Timedelta(days=1)
    )
    assert out.loc[spans_gap, "accrued_1d"].isna().all()
    np.testing.assert_allclose(out.loc[~spans_gap, "accrued_1d"].dropna(), 3e-4)


def test_streams_never_mix_and_hourly_streams_accrue_their_own_windows():
    hourly = stream(venue="dydx", interval_h=1.0, rates=np.full(24 * 9, 1e-5))
    eight = stream(rates=np.full(27, 1e-4))
    out = forecast_frame(pd.concat([eight, hourly], ignore_index=True))
    first_hourly = out.loc[out["venue"] == "dydx"].iloc[0]
    assert first_hourly["accrued_1d"] == pytest.approx(24 * 1e-5)
    assert first_hourly["y_1d"] == pytest.approx(8e-5)
    assert out.loc[out["venue"] == "binance", "accrued_7d"].notna().sum() == 27 - 21


def test_ewma_uses_only_the_past():
    rates = np.array([1.0, 0.0, 0.0, 4.0]) * 1e-4
    frame = forecast_frame(stream(rates=rates))
    expected = [1e-4, EWMA_ALPHA * 0 + (1 - EWMA_ALPHA) * 1e-4]
    np.testing.assert_allclose(frame["ewma_8h"].iloc[:2], expected)
    changed = forecast_frame(stream(rates=np.array([1.0, 0.0, 0.0, 9.0]) * 1e-4))
    np.testing.assert_array_equal(changed["ewma_8h"].iloc[:3], frame["ewma_8h"].iloc[:3])


def test_ar1_recovers_the_persistence_and_falls_back_to_the_last_value():
    rng = np.random.default_rng(0)
    x = np.empty(3000)
    x[0] = 1e-4
    for i in range(1, len(x)):
        x[i] = 1e-4 + 0.7 * (x[i - 1] - 1e-4) + rng.normal(0, 2e-5)
    frame = forecast_frame(stream(rates=x))
    ar1 = AR1.fit(frame)
    phi, mu = ar1.params["phi"].iloc[0], ar1.params["mu"].iloc[0]
    assert phi == pytest.approx(0.7, abs=0.04) and mu == pytest.approx(1e-4, abs=5e-6)
    one_step = baseline_y(frame, "next", ar1)["ar1"]
    np.testing.assert_allclose(one_step, mu + phi * (frame["rate_8h"] - mu))
    unknown = frame.assign(symbol="ETH/USDT:USDT")
    np.testing.assert_allclose(baseline_y(unknown, "7d", ar1)["ar1"], unknown["rate_8h"])


def test_mass_points_come_from_the_data_with_their_run_length():
    rates = np.r_[np.full(10, 1e-4), [3e-4, 2e-4], np.full(5, 1e-4), np.linspace(0, 1e-3, 40)]
    frame = forecast_frame(pd.concat([stream(rates=rates), stream(venue="dydx", rates=np.linspace(0, 1e-4, 57))]))
    points = find_mass_points(frame)
    assert points["venue"].tolist() == ["binance"]
    assert points["mass_8h"].iloc[0] == pytest.approx(1e-4)
    out = add_mass_features(frame, points)
    binance = out.loc[out["venue"] == "binance"]
    assert binance["mass_run"].iloc[:10].tolist() == list(range(1, 11))
    assert binance["mass_run"].iloc[10] == 0 and binance["mass_run"].iloc[12] == 1
    assert out.loc[out["venue"] == "dydx", "mass_8h"].isna().all()
