"""Horizon targets, trader baselines at the forecast's information time, and mass points found from data."""

import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.forecast_horizons import (
    AR1,
    CROSS_VENUE_FEATURES,
    EWMA_ALPHA,
    FORECAST_INPUT_WARMUP,
    MASS_SHARE_WINDOWS,
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
            "base": symbol.split("/")[0],
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


def cross_venue_rows() -> pd.DataFrame:
    """BTC on an 8h venue and an hourly one, ETH on another 8h venue: ETH never enters BTC's features."""
    hourly_rates = np.arange(1, 25) * 1e-6
    return pd.concat(
        [
            stream("binance", 8.0, [1e-4, 2e-4, 3e-4]),
            stream("dydx", 1.0, hourly_rates),
            stream("bybit", 8.0, [9e-4, 9e-4, 9e-4], symbol="ETH/USDT:USDT"),
        ],
        ignore_index=True,
    )


def test_cross_venue_features_are_the_other_venues_rates_settled_by_t():
    frame = forecast_frame(cross_venue_rows()).set_index(["venue", "funding_time"])
    t = pd.Timestamp("2024-01-01 08:00", tz="UTC")
    binance = frame.loc[("binance", t)]
    # dydx's hourly windows settled at 01:00 .. 08:00 are its rates 2..9 (its first settles at 00:00)
    assert binance["cross_venue_8h"] == pytest.approx(9e-6 * 8)
    assert binance["hourly_venues_1h_8h"] == pytest.approx(9e-6 * 8)
    assert binance["hourly_venues_8h_8h"] == pytest.approx(np.mean(np.arange(2, 10)) * 1e-6 * 8)
    assert binance["cross_venue_gap_8h"] == pytest.approx(9e-6 * 8 - 2e-4)
    # at 05:00 dydx sees binance's 00:00 window (8h old at most); no other hourly venue exists
    dydx = frame.loc[("dydx", pd.Timestamp("2024-01-01 05:00", tz="UTC"))]
    assert dydx["cross_venue_8h"] == pytest.approx(1e-4)
    assert np.isnan(dydx["hourly_venues_1h_8h"])
    assert frame.loc[("bybit", t), CROSS_VENUE_FEATURES].isna().all()


def test_a_print_after_t_never_changes_the_cross_venue_features_at_t():
    rows = cross_venue_rows()
    t = pd.Timestamp("2024-01-01 08:00", tz="UTC")
    before = forecast_frame(rows).set_index(["venue", "funding_time"])
    later = rows["funding_time"] > t
    changed = rows.assign(rate=np.where(later, rows["rate"] * -50 + 1e-3, rows["rate"]))
    after = forecast_frame(changed).set_index(["venue", "funding_time"])
    known = before.index.get_level_values("funding_time") <= t
    pd.testing.assert_frame_equal(before.loc[known, CROSS_VENUE_FEATURES], after.loc[known, CROSS_VENUE_FEATURES])
    assert not before.loc[~known, CROSS_VENUE_FEATURES].equals(after.loc[~known, CROSS_VENUE_FEATURES])


def test_a_stale_rate_of_another_venue_is_not_its_latest():
    rows = cross_venue_rows()
    # binance's 08:00 and 16:00 windows are missing: at 12:00 its 00:00 rate is 12 h old, older than its interval
    rows = rows.loc[~((rows["venue"] == "binance") & (rows["funding_time"] > pd.Timestamp("2024-01-01", tz="UTC")))]
    frame = forecast_frame(rows).set_index(["venue", "funding_time"])
    assert frame.loc[("dydx", pd.Timestamp("2024-01-01 08:00", tz="UTC")), "cross_venue_8h"] == pytest.approx(1e-4)
    assert np.isnan(frame.loc[("dydx", pd.Timestamp("2024-01-01 12:00", tz="UTC")), "cross_venue_8h"])


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


def test_a_run_on_a_mass_point_counts_up_to_what_the_warm_up_holds():
    rates = np.r_[np.full(30, 1e-4), np.linspace(0, 1e-3, 30)]
    frame = forecast_frame(stream(rates=rates))
    out = add_mass_features(frame, find_mass_points(frame))
    assert out["mass_run"].iloc[:30].tolist() == [*range(1, MASS_SHARE_WINDOWS + 1), *[MASS_SHARE_WINDOWS] * 9]
    assert MASS_SHARE_WINDOWS * 8 <= FORECAST_INPUT_WARMUP / pd.Timedelta(hours=1)
