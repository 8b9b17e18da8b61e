"""Stress z-scores: hand computations, the look-back excludes the current snapshot, config errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.stress import StressConfig, stress_zscores, stressed_symbols

T0 = pd.Timestamp("2026-03-02", tz="UTC")


def snaps(levels, slopes=None, symbol="BTC/USDT:USDT", venue="binance", every="1h") -> pd.DataFrame:
    n = len(levels)
    return pd.DataFrame(
        {
            "venue": venue,
            "symbol": symbol,
            "ts_snap": pd.date_range(T0, periods=n, freq=every),
            "level": np.asarray(levels, dtype=float),
            "slope": np.zeros(n) if slopes is None else np.asarray(slopes, dtype=float),
        }
    )


def test_z_of_a_snapshot_is_against_the_snapshots_before_it():
    rng = np.random.default_rng(1)
    levels = np.r_[0.1 + 0.02 * rng.standard_normal(30), 0.4]
    z = stress_zscores(snaps(levels), StressConfig(window="7D", min_periods=5))
    before = levels[:-1]
    expected = (0.4 - before.mean()) / before.std(ddof=1)
    assert z["level_z"].iloc[-1] == pytest.approx(expected, rel=1e-9)
    assert bool(z["flagged"].iloc[-1])
    # The first min_periods snapshots have no score.
    assert z["level_z"].iloc[:5].isna().all() and z["level_z"].iloc[5:].notna().all()


def test_window_is_a_time_span():
    # 2h look-back on hourly snapshots: the score at row i uses rows i-2 and i-1 only.
    levels = [0.0, 0.0, 0.0, 1.0, 3.0, 0.0]
    z = stress_zscores(snaps(levels), StressConfig(window="2h", min_periods=2, min_std=1e-9))
    prev = np.array([0.0, 1.0])
    assert z["level_z"].iloc[4] == pytest.approx((3.0 - prev.mean()) / prev.std(ddof=1))


def test_a_flat_look_back_uses_the_std_floor():
    levels = np.r_[np.full(20, 0.1095), 0.1295]
    z = stress_zscores(snaps(levels), StressConfig(min_std=0.005))
    assert z["level_z"].iloc[-1] == pytest.approx(0.02 / 0.005)
    assert z["level_z"].iloc[12:-1].eq(0.0).all()


def test_symbols_are_scored_apart_and_flags_name_them():
    calm = snaps(np.full(30, 0.1), symbol="ETH/USDT:USDT")
    slope = np.r_[np.zeros(29), -0.2]
    steep = snaps(np.full(30, 0.1), slopes=slope, symbol="SOL/USDT:USDT", venue="okx")
    shuffled = pd.concat([calm, steep]).sample(frac=1.0, random_state=3)
    z = stress_zscores(shuffled)
    assert len(z) == 60
    flagged = stressed_symbols(z)
    assert flagged[["venue", "symbol"]].values.tolist() == [["okx", "SOL/USDT:USDT"]]
    assert flagged["slope_z"].item() == pytest.approx(-0.2 / 0.005)
    # The same scores as each symbol alone.
    alone = stress_zscores(steep)
    got = z[z["symbol"] == "SOL/USDT:USDT"].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, alone)


def test_only_the_newest_snapshot_of_a_symbol_counts_for_the_flag():
    levels = np.r_[np.full(20, 0.1), 0.3, np.full(5, 0.1)]  # a spike that has passed
    z = stress_zscores(snaps(levels))
    assert z["flagged"].any()
    assert stressed_symbols(z).empty
    assert len(stressed_symbols(z.iloc[:21])) == 1


def test_bad_config_and_input_fail_naming_the_problem():
    with pytest.raises(ValueError, match="time span"):
        StressConfig(window="a week")
    with pytest.raises(ValueError, match="threshold"):
        StressConfig(threshold=0)
    with pytest.raises(ValueError, match="min_periods"):
        StressConfig(min_periods=1)
    with pytest.raises(ValueError, match="slope"):
        stress_zscores(snaps([0.1]).drop(columns="slope"))
