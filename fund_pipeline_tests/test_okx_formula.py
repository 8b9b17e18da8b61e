"""OKX's funding formula variants: which one an instant picks, and the 2025-04 formula on documented numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.predicted import (
    AveragingWindow,
    FormulaKind,
    funding_rate,
    reconstruct_predicted,
    window_rate,
)
from fund_pipeline.venues.okx import INTEREST_CLAMP_FROM_MS, MOVING_AVERAGE_FROM_MS, OkxAdapter

OKX = OkxAdapter()
BTC, WIF, USDC = "BTC/USDT:USDT", "WIF/USDT:USDT", "USDC/USDT:USDT"


def ms(text: str) -> int:
    return pd.Timestamp(text, tz="UTC").value // 10**6


def test_switch_dates_are_the_announced_instants():
    assert MOVING_AVERAGE_FROM_MS == ms("2024-03-05 08:00")
    assert INTEREST_CLAMP_FROM_MS == ms("2025-04-10 00:01")


def test_each_instant_picks_the_formula_in_force():
    window_so_far = OKX.funding_formula(BTC, MOVING_AVERAGE_FROM_MS - 1)
    moving = OKX.funding_formula(BTC, MOVING_AVERAGE_FROM_MS)
    last_premium_only = OKX.funding_formula(BTC, INTEREST_CLAMP_FROM_MS - 1)
    first_clamped = OKX.funding_formula(BTC, INTEREST_CLAMP_FROM_MS)
    assert (window_so_far.kind, window_so_far.window) == (FormulaKind.PREMIUM_ONLY, AveragingWindow.CURRENT)
    assert moving == last_premium_only and moving.window is AveragingWindow.MOVING
    assert moving.kind is FormulaKind.PREMIUM_ONLY and moving.interest_rate_8h == 0.0
    assert first_clamped.kind is FormulaKind.CLAMPED and first_clamped.window is AveragingWindow.MOVING
    assert (first_clamped.interest_rate_8h, first_clamped.clamp_8h) == (0.0001, 0.0005)
    # Now (no instant) is the latest formula; the first 8 h window it settles ends 2025-04-10 08:00.
    assert OKX.funding_formula(BTC) == first_clamped == OKX.funding_formula(BTC, ms("2025-04-10 08:00"))
    # The currency's cap in every variant.
    assert {f.cap for f in (window_so_far, moving, first_clamped)} == {0.00375}
    assert OKX.funding_formula(WIF, ms("2024-01-01")).cap == OKX.funding_formula(WIF).cap == 0.015


def test_april_2025_formula_on_the_documented_numbers():
    formula = OKX.funding_formula(BTC)
    # "BTCUSDT ... every 8 hours, so the interest rate = 0.03% / 3 = 0.01%": inside the band the rate is it, exactly.
    assert funding_rate(0.0003, 8.0, formula) == 0.0001
    assert funding_rate(-0.0004, 8.0, formula) == 0.0001
    # P = 0.10 %: I - P = -0.09 % -> clamped to -0.05 %, F = 0.05 %.
    assert funding_rate(0.001, 8.0, formula) == pytest.approx(0.0005, abs=1e-18)
    # The revision notice's 1-hour example under the formula in force: I = 0.03 % / 24 = 0.00125 %,
    # I - P = -0.09875 % -> -0.05 %, F = 0.10 % - 0.05 % = 0.05 % per 1-hour period (the clamp is not scaled).
    assert formula.interest_rate_8h / 8 == pytest.approx(0.0000125, abs=1e-18)
    assert funding_rate(0.001, 1.0, formula) == pytest.approx(0.0005, abs=1e-18)
    assert funding_rate(0.0, 1.0, formula) == pytest.approx(0.0000125, abs=1e-18)
    # A 4-hour window inside the band: I = 0.03 % / 6 = 0.005 %.
    assert funding_rate(0.0001, 4.0, formula) == pytest.approx(0.00005, abs=1e-18)
    # Then the currency's cap and floor.
    assert funding_rate(0.02, 8.0, formula) == 0.00375
    assert funding_rate(-0.02, 8.0, formula) == -0.00375
    assert funding_rate(0.03, 8.0, OKX.funding_formula(WIF)) == 0.015


def test_usdcusdt_has_no_interest_rate():
    formula = OKX.funding_formula(USDC)
    assert formula.interest_rate_8h == 0.0 and formula.kind is FormulaKind.CLAMPED
    assert funding_rate(0.0002, 8.0, formula) == 0.0
    assert funding_rate(0.001, 8.0, formula) == pytest.approx(0.0005, abs=1e-18)


def test_premium_only_before_the_switch_gives_the_premium_average():
    before = OKX.funding_formula(BTC, INTEREST_CLAMP_FROM_MS - 1)
    assert funding_rate(0.0003, 8.0, before) == 0.0003
    assert funding_rate(0.0003, 8.0, OKX.funding_formula(BTC)) == 0.0001


def test_reconstruction_settles_on_the_moving_window_of_minute_samples():
    # Two 8 h windows of minute samples: the settlement uses the last 8 h (the window itself), uniformly.
    formula = OKX.funding_formula(BTC)
    ts = pd.date_range("2026-01-01 00:00:59.999", periods=960, freq="1min", tz="UTC")
    rng = np.random.default_rng(3)
    premium = np.r_[np.full(480, 0.002), 0.0001 + 0.0002 * rng.standard_normal(480)]
    samples = pd.DataFrame({"symbol": BTC, "base": "BTC", "ts": ts, "premium": premium, "interval_h": 8.0})
    prints = reconstruct_predicted("okx", samples, {BTC: formula})
    settled = prints[prints["ts"] == prints["funding_time"]].set_index("funding_time")["rate"]
    first, second = settled.loc[pd.Timestamp("2026-01-01 08:00", tz="UTC")], settled.iloc[-1]
    assert first == pytest.approx(0.002 - 0.0005, abs=1e-15)
    assert second == window_rate(premium[480:], np.arange(1, 481), 8.0, formula)
    # An hour into the second window the moving average still holds 7 hours of the first window's premium.
    one_hour_in = prints[prints["ts"] == pd.Timestamp("2026-01-01 09:00", tz="UTC")]["rate"].iloc[0]
    moving = np.r_[premium[60:480], premium[480:540]].mean()
    assert one_hour_in == pytest.approx(funding_rate(moving, 8.0, formula)[()], abs=1e-15)
