"""Per-symbol funding caps and the N-hour formulas of binance and bybit.

The venues' documented example responses parse into each symbol's cap and floor (binance `fundingInfo` on
USDⓈ-M and COIN-M, bybit instruments-info); the simulated market settles some symbols with caps of their own,
the emulator serves them in those formats, and the ccxt source reads them back: the reconstruction is exact
with the per-symbol caps and wrong, where they bind, with the venue-wide cap.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.predicted import FundingFormula, funding_rate, reconstruct_predicted, settlement_errors
from fund_pipeline.sources.ccxt import CcxtSource
from fund_pipeline.sources.simulated import SimulatedMarket
from fund_pipeline.venues.binance import FUNDING_INFO_METHODS, funding_info_bounds
from fund_pipeline.venues.registry import adapter, facts
from fund_pipeline.venues.wire import MalformedMessage
from fund_pipeline_tests.emulator_thread import emulator_in_thread

DOCUMENTED = json.loads((Path(__file__).parent / "fixtures" / "venues" / "funding_bounds.json").read_text())
# A day on which the simulated binance DOGE (±0.1 %) and bybit WIF (±0.12 %, 4h) caps bind.
DAY = pd.Timestamp("2025-03-28", tz="UTC")
CAPPED = {"binance": "DOGE/USDT:USDT", "bybit": "WIF/USDT:USDT"}


def documented_call(method: str, *args, **kwargs):
    """ccxt's implicit fundingInfo calls answered with Binance's documented examples."""
    return {
        FUNDING_INFO_METHODS["linear"]: DOCUMENTED["binance_fapi"],
        FUNDING_INFO_METHODS["inverse"]: DOCUMENTED["binance_dapi"],
    }[method]


# --- the venues' documented responses ----------------------------------------------------------------------


def test_binance_funding_info_examples_give_the_listed_symbols_caps_and_the_default_elsewhere():
    binance = adapter("binance")
    markets = {s: {} for s in ("BLZ/USDT:USDT", "BTC/USDT:USDT", "BTC/USD:BTC")}
    formulas = binance.rest_funding_formulas(markets, documented_call)
    assert (formulas["BLZ/USDT:USDT"].cap, formulas["BLZ/USDT:USDT"].lower) == (0.025, -0.025)
    assert formulas["BTC/USDT:USDT"] == binance.funding_formula("BTC/USDT:USDT")  # not listed: the default cap
    assert formulas["BTC/USDT:USDT"].cap == 0.0075
    assert (formulas["BTC/USD:BTC"].cap, formulas["BTC/USD:BTC"].lower) == (0.025, -0.025)  # COIN-M's own list
    # Only the bounds change: weighting, interest and scaling stay the venue's documented ones.
    assert formulas["BLZ/USDT:USDT"] == binance.funding_formula("BLZ/USDT:USDT").bounded(0.025)


def test_binance_intervals_come_from_each_symbols_own_funding_info_list():
    """A COIN-M perp's interval is in COIN-M's list, never USDⓈ-M's (BTCUSD_PERP at 4h here, BTCUSDT unlisted)."""
    coin_m_4h = [dict(DOCUMENTED["binance_dapi"][0], fundingIntervalHours=4)]
    lists = {FUNDING_INFO_METHODS["linear"]: DOCUMENTED["binance_fapi"], FUNDING_INFO_METHODS["inverse"]: coin_m_4h}
    asked: list[str] = []

    def call(method):
        asked.append(method)
        return lists[method]

    intervals = adapter("binance").stream_intervals(call, ["BTC/USDT:USDT", "BTC/USD:BTC", "BLZ/USDT:USDT"])
    assert intervals == {"BTC/USDT:USDT": 8.0, "BTC/USD:BTC": 4.0, "BLZ/USDT:USDT": 8.0}
    assert sorted(asked) == sorted(lists), "each list asked once"
    asked.clear()
    assert adapter("binance").stream_intervals(call, ["BTC/USDT:USDT"]) == {"BTC/USDT:USDT": 8.0}
    assert asked == [FUNDING_INFO_METHODS["linear"]], "no COIN-M request without a coin-margined symbol"


def test_binance_funding_info_row_without_bounds_is_refused_naming_it():
    row = {"symbol": "BLZUSDT", "fundingIntervalHours": 4, "disclaimer": False}
    with pytest.raises(MalformedMessage, match="BLZUSDT"):
        funding_info_bounds([row])
    with pytest.raises(MalformedMessage, match="usable"):
        funding_info_bounds([{**DOCUMENTED["binance_fapi"][0], "adjustedFundingRateFloor": "0.03"}])


def test_bybit_instruments_info_example_gives_its_bounds():
    bybit = adapter("bybit")
    (info,) = DOCUMENTED["bybit_linear"]["result"]["list"]
    formulas = bybit.rest_funding_formulas({"BTC/USDT:USDT": {"info": info}, "ETH/USDT:USDT": {"info": {}}}, None)
    assert (formulas["BTC/USDT:USDT"].cap, formulas["BTC/USDT:USDT"].lower) == (0.00375, -0.00375)
    assert formulas["ETH/USDT:USDT"] == bybit.funding_formula("ETH/USDT:USDT")
    with pytest.raises(MalformedMessage, match="BTC/USDT:USDT"):
        bybit.rest_funding_formulas({"BTC/USDT:USDT": {"info": {**info, "upperFundingRate": "n/a"}}}, None)


def test_asymmetric_bounds_keep_their_floor():
    formula = adapter("binance").funding_formula("X/USDT:USDT").bounded(0.02, -0.01)
    assert (formula.cap, formula.lower) == (0.02, -0.01)
    assert float(funding_rate(-0.05, 8.0, formula)) == -0.01 and float(funding_rate(0.05, 8.0, formula)) == 0.02


# --- the N-hour formulas, as documented -----------------------------------------------------------------------


def test_binance_faq_worked_example_settles_at_the_interest():
    """Binance FAQ: an 8h average premium of 0.0429 % gives 0.0429 % + clamp(0.01 % - 0.0429 %, ±0.05 %) = 0.01 %."""
    assert float(funding_rate(0.000429, 8.0, facts("binance").funding)) == 0.0001


@pytest.mark.parametrize(
    ("venue", "premium", "interval_h", "expected"),
    [
        # binance: F = [P + clamp(I - P, ±0.05 %)] / (8 / N), the whole 8h formula scaled.
        ("binance", 0.000429, 4.0, 0.00005),
        ("binance", 0.002, 4.0, (0.002 - 0.0005) / 2),
        ("binance", -0.002, 1.0, (-0.002 + 0.0005) / 8),
        # bybit: F = P + clamp(I - P, ±0.05 %), P the N-hour average as it is, I = 0.03 % / (24 / N).
        ("bybit", 0.000429, 4.0, 0.00005),
        ("bybit", 0.002, 4.0, 0.002 - 0.0005),
        ("bybit", -0.002, 1.0, -0.002 + 0.0005),
    ],
)
def test_n_hour_intervals_follow_each_venues_stated_formula(venue, premium, interval_h, expected):
    assert float(funding_rate(premium, interval_h, facts(venue).funding)) == pytest.approx(expected, abs=1e-18)


# --- the simulated market, its emulator and the ccxt source ---------------------------------------------------


def venue_wide(venue: str, symbols) -> dict[str, FundingFormula]:
    return {s: adapter(venue).funding_formula(s) for s in symbols}


@pytest.mark.parametrize("venue", sorted(CAPPED))
def test_reconstruction_is_exact_with_the_symbols_cap_and_wrong_with_the_venues(venue):
    market = SimulatedMarket(seed=7, venues=(venue,), bases=("BTC", "DOGE", "WIF"))
    symbol = CAPPED[venue]
    start, end = DAY - pd.Timedelta(hours=8), DAY + pd.Timedelta(days=1)
    samples = market.premium_samples(venue, start, end)
    settled = market.funding_prints(venue, DAY, end)
    own = market.funding_formulas(venue, sorted(samples["symbol"].unique()))
    formula = own[symbol]
    assert formula.cap < facts(venue).funding.cap and formula.lower == -formula.cap
    phase = facts(venue).settlement_phase_h
    exact = settlement_errors(reconstruct_predicted(venue, samples, own, None, phase), settled, own)
    assert len(exact) == len(settled) > 0 and exact["abs_error"].max() <= 1e-18
    capped = settled[(settled["symbol"] == symbol) & (settled["rate"].abs() == formula.cap)]
    assert len(capped) >= 2  # the cap binds on this day
    wide = venue_wide(venue, own)
    wrong = settlement_errors(reconstruct_predicted(venue, samples, wide, None, phase), settled, wide)
    off = wrong[wrong["abs_error"] > 1e-12]
    assert set(off["symbol"]) == {symbol}
    assert set(off["funding_time"]) == set(capped["funding_time"])


@pytest.fixture(scope="module")
def emulator():
    with emulator_in_thread(
        bases=("BTC", "DOGE", "WIF"), start=DAY + pd.Timedelta(days=1, minutes=30), speed=1e-9, inverse=True
    ) as running:
        yield running


@pytest.mark.e2e
@pytest.mark.parametrize("venue", sorted(CAPPED))
def test_the_ccxt_source_reads_the_caps_the_emulator_serves_and_rebuilds_every_settled_rate(emulator, venue):
    source = CcxtSource(
        venues=(venue,), api_base_url=emulator.base_url, now=emulator.state.clock.now, throttle=False, inverse=True
    )
    symbols = source.perp_symbols(venue)
    read = source.funding_formulas(venue, symbols)
    assert read == emulator.state.market.funding_formulas(venue, symbols)
    assert read[CAPPED[venue]] != adapter(venue).funding_formula(CAPPED[venue])
    linear = [s for s in symbols if adapter(venue).inverse_perp(s) is None]
    end = DAY + pd.Timedelta(days=1)
    samples = source.premium_samples(venue, DAY - pd.Timedelta(hours=8), end)
    samples = samples[samples["symbol"].isin(linear)]
    settled = source.funding_prints(venue, DAY, end)
    settled = settled[settled["symbol"].isin(linear)]
    rebuilt = reconstruct_predicted(venue, samples, read, None, facts(venue).settlement_phase_h)
    errors = settlement_errors(rebuilt, settled, read)
    assert len(errors) == len(settled) > 0
    assert errors["abs_error"].max() <= 1e-15
    assert (np.abs(settled.loc[settled["symbol"] == CAPPED[venue], "rate"]) == read[CAPPED[venue]].cap).any()


# --- binance's hourly windows average uniformly -----------------------------------------------------------------


@pytest.mark.parametrize(("venue", "linear"), [("binance", False), ("bybit", True)])
def test_an_hourly_window_weighs_its_samples_as_the_venue_states(venue, linear):
    """Binance: linear weights on windows over 1 hour, equal weights on a 1-hour one; bybit: linear on every one."""
    formula = facts(venue).funding
    minutes = pd.date_range(DAY, periods=60, freq="1min") + pd.Timedelta(seconds=59.999)
    premium = np.linspace(0.0, 0.012, 60)  # far outside the band, so the rate moves with the average
    samples = pd.DataFrame({"symbol": "X/USDT:USDT", "base": "X", "ts": minutes, "premium": premium, "interval_h": 1.0})
    rebuilt = reconstruct_predicted(venue, samples, {"X/USDT:USDT": formula}, None, 0.0)
    settled = float(rebuilt.loc[rebuilt["ts"] == rebuilt["funding_time"], "rate"].iloc[0])
    slots = np.arange(1, 61, dtype=np.float64)
    average = np.dot(slots, premium) / slots.sum() if linear else premium.mean()
    assert settled == pytest.approx(float(funding_rate(average, 1.0, formula)), rel=1e-12)
    assert bool(formula.linear_on(4.0)) and bool(formula.linear_on(1.0)) is linear
