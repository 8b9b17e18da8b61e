"""The simulated market: determinism, prefix consistency, schema, realism facts, live path, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fund_pipeline.domain.prints import (
    BAR_COLUMNS,
    INTEREST_RATE_8H,
    MARKET_COLUMNS,
    floor_to_grid,
    normalise_prints,
    validate_prints,
)
from fund_pipeline.sources.simulated import (
    OKX_INTERVAL_CHANGE_AT,
    OKX_INTERVAL_CHANGE_BASE,
    SIM_EPOCH,
    VENUE_SPECS,
    SimulatedMarket,
    funding_rate,
)
from fund_pipeline.venues.registry import SIM_VENUES, UnknownVenueError, facts

FEW = ("BTC", "ETH", "SOL", "WIF", "SUI", "PEPE")
DAY = pd.Timedelta(days=1)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture(scope="module")
def market() -> SimulatedMarket:
    return SimulatedMarket(seed=7, bases=FEW)


@pytest.fixture(scope="module")
def full_market() -> SimulatedMarket:
    return SimulatedMarket(seed=7)


# --- determinism and prefix consistency -------------------------------------------------


def test_same_seed_gives_identical_frames(market):
    other = SimulatedMarket(seed=7, bases=FEW)
    start, end = ts("2025-02-01"), ts("2025-02-04")
    pd.testing.assert_frame_equal(market.funding_prints("bybit", start, end), other.funding_prints("bybit", start, end))
    pd.testing.assert_frame_equal(market.bars("okx", start, end), other.bars("okx", start, end))


def test_different_seed_gives_different_paths(market):
    other = SimulatedMarket(seed=8, bases=FEW)
    start, end = ts("2025-02-01"), ts("2025-02-04")
    a, b = market.bars("binance", start, end), other.bars("binance", start, end)
    assert not np.allclose(a["close"], b["close"])
    hl_a = market.funding_prints("hyperliquid", start, end)
    hl_b = other.funding_prints("hyperliquid", start, end)
    assert not hl_a["rate"].reset_index(drop=True).equals(hl_b["rate"].reset_index(drop=True))


def test_a_day_is_identical_alone_or_inside_a_longer_range(market):
    day = ts("2025-01-06")
    for venue in ("binance", "hyperliquid"):
        alone = market.funding_prints(venue, day, day + DAY)
        # The long range reaches past the first cache chunk, so it is a separate, longer simulation.
        long = market.funding_prints(venue, SIM_EPOCH, ts("2025-03-20"))
        inside = long[(long["funding_time"] >= day) & (long["funding_time"] < day + DAY)].reset_index(drop=True)
        assert len(alone) > 0
        pd.testing.assert_frame_equal(alone, inside)
    bars_alone = market.bars("okx", day, day + DAY)
    bars_long = market.bars("okx", day - 3 * DAY, ts("2025-03-20"))
    inside = bars_long[(bars_long["ts"] >= day) & (bars_long["ts"] < day + DAY)].reset_index(drop=True)
    pd.testing.assert_frame_equal(bars_alone, inside)


@settings(max_examples=8, deadline=None)
@given(offset_h=st.integers(0, 60 * 24), span_h=st.integers(1, 72), extra_h=st.integers(1, 40 * 24))
def test_prints_never_depend_on_the_requested_range(market, offset_h, span_h, extra_h):
    start = SIM_EPOCH + pd.Timedelta(hours=offset_h)
    end = start + pd.Timedelta(hours=span_h)
    short = market.funding_prints("bybit", start, end)
    longer = market.funding_prints("bybit", start, end + pd.Timedelta(hours=extra_h))
    pd.testing.assert_frame_equal(short, longer[longer["funding_time"] < end].reset_index(drop=True))


def test_a_base_path_does_not_depend_on_the_other_bases(market, full_market):
    start, end = ts("2025-01-10"), ts("2025-01-12")
    few = market.funding_prints("okx", start, end)
    with_extras = SimulatedMarket(seed=7, n_extra_bases=5).funding_prints("okx", start, end)
    for frame in (full_market.funding_prints("okx", start, end), with_extras):
        pd.testing.assert_frame_equal(few, frame[frame["base"].isin(FEW)].reset_index(drop=True))


# --- schema -----------------------------------------------------------------------------


@pytest.mark.parametrize("venue", SIM_VENUES)
def test_prints_fit_the_schema_and_sit_on_the_grid(market, venue):
    prints = market.funding_prints(venue, ts("2025-03-01"), ts("2025-03-04"))
    assert len(prints) > 0
    pd.testing.assert_frame_equal(prints, normalise_prints(prints))
    validate_prints(prints)
    assert (prints["kind"] == "settled").all() and (prints["source"] == "sim").all()
    assert prints["received_at"].isna().all()
    assert str(prints["funding_time"].dtype) == "datetime64[ns, UTC]"
    assert (floor_to_grid(prints["ts"], prints["interval_h"]) == prints["funding_time"]).all()
    assert (prints["ts"] > prints["funding_time"]).all()
    assert (prints["ts"] - prints["funding_time"] < pd.Timedelta(seconds=1)).all()
    assert prints["funding_time"].between(ts("2025-03-01"), ts("2025-03-04"), inclusive="left").all()


def test_bars_and_markets_fit_their_schemas(market):
    day = ts("2025-02-10")
    bars = market.bars("bybit", day, day + DAY)
    assert list(bars.columns) == BAR_COLUMNS
    assert str(bars["ts"].dtype) == "datetime64[ns, UTC]"
    assert (bars["ts"] == bars["ts"].dt.floor("h")).all()
    assert bars.groupby("symbol").size().eq(24).all()
    prices = bars[["open", "close", "spot_open", "spot_close"]]
    assert (bars["high"] >= prices[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= prices[["open", "close"]].min(axis=1)).all()
    assert (bars["spot_high"] >= prices[["spot_open", "spot_close"]].max(axis=1)).all()
    markets = market.markets("bybit", day)
    assert list(markets.columns) == MARKET_COLUMNS
    assert (markets["date"] == day).all()
    volume = bars.groupby("symbol")["volume_usd"].sum()
    np.testing.assert_allclose(markets.set_index("symbol")["volume_usd_24h"], volume.loc[markets["symbol"]])


def test_empty_ranges_give_empty_typed_frames(market):
    t = ts("2025-02-01 05:00")
    assert market.funding_prints("binance", t, t).empty
    bars = market.bars("binance", t, t)
    assert bars.empty and list(bars.columns) == BAR_COLUMNS


# --- realism facts ----------------------------------------------------------------------


def test_universe_has_twenty_bases_on_five_venues_and_deribit_lists_few(full_market):
    assert len(full_market.bases()) >= 20
    assert full_market.venues() == SIM_VENUES
    at = ts("2025-06-01")
    listed = {v: set(full_market.instruments(v, at)["base"]) for v in SIM_VENUES}
    assert {"BTC", "ETH", "SOL", "XRP"} <= listed["deribit"] and len(listed["deribit"]) <= 8
    assert all(len(listed[v]) >= 20 for v in ("binance", "bybit", "okx"))
    assert set(full_market.instruments("deribit", at)["symbol"]) >= {"BTC/USDC:USDC"}
    assert "BTC/USDC:USDC" in set(full_market.instruments("hyperliquid", at)["symbol"])
    assert "BTC/USDT:USDT" in set(full_market.instruments("binance", at)["symbol"])


def test_interest_is_the_mass_point_of_settled_rates(market):
    prints = market.funding_prints("binance", SIM_EPOCH, SIM_EPOCH + 365 * DAY)
    eight = prints[prints["interval_h"] == 8]
    at_interest = (eight["rate"] == INTEREST_RATE_8H).mean()
    assert 0.3 < at_interest < 0.97  # a real mass point ...
    assert (eight["rate"] > INTEREST_RATE_8H).mean() > 0.02  # ... that euphoric regimes leave
    assert (eight["rate"] < 0).mean() > 0.001  # ... and stressed ones push below zero
    four = prints[prints["interval_h"] == 4]
    assert (four["rate"] == INTEREST_RATE_8H / 2).mean() > 0.3
    hl = market.funding_prints("hyperliquid", SIM_EPOCH, SIM_EPOCH + 10 * DAY)
    assert (hl["rate"] == INTEREST_RATE_8H / 8).mean() > 0.3
    deribit = market.funding_prints("deribit", SIM_EPOCH, SIM_EPOCH + 60 * DAY)
    assert (deribit["rate"] == 0.0).mean() > 0.3  # no interest component: its mass point is zero


def test_mixed_intervals(market):
    hl = market.funding_prints("hyperliquid", ts("2025-02-01"), ts("2025-02-03"))
    assert (hl["interval_h"] == 1).all()
    per_symbol = hl.groupby("symbol")["funding_time"].diff().dropna()
    assert (per_symbol == pd.Timedelta(hours=1)).mean() > 0.95
    binance = market.instruments("binance", ts("2025-02-01"))
    assert (binance["interval_h"] == 4).any() and (binance["interval_h"] == 8).any()
    assert (market.instruments("bybit", ts("2025-02-01"))["interval_h"] == 4).any()


def test_okx_symbol_changes_interval_from_8h_to_4h(market):
    symbol = f"{OKX_INTERVAL_CHANGE_BASE}/USDT:USDT"
    before = market.instruments("okx", OKX_INTERVAL_CHANGE_AT - pd.Timedelta(hours=1)).set_index("symbol")
    after = market.instruments("okx", OKX_INTERVAL_CHANGE_AT).set_index("symbol")
    assert before.loc[symbol, "interval_h"] == 8 and after.loc[symbol, "interval_h"] == 4
    prints = market.funding_prints("okx", OKX_INTERVAL_CHANGE_AT - 3 * DAY, OKX_INTERVAL_CHANGE_AT + 3 * DAY)
    sui = prints[prints["symbol"] == symbol]
    old, new = sui[sui["funding_time"] <= OKX_INTERVAL_CHANGE_AT], sui[sui["funding_time"] > OKX_INTERVAL_CHANGE_AT]
    assert (old["interval_h"] == 8).all() and (new["interval_h"] == 4).all()
    assert len(old) >= 8 and len(new) >= 16
    assert (floor_to_grid(sui["ts"], sui["interval_h"]) == sui["funding_time"]).all()


def test_basis_open_interest_and_factor_structure(market):
    bars = market.bars("binance", SIM_EPOCH, SIM_EPOCH + 30 * DAY)
    basis = bars["mark_price"] / bars["index_price"] - 1
    assert (basis != 0).mean() > 0.99 and basis.abs().max() < 0.02
    assert (bars["close"] != bars["spot_close"]).all()
    assert (bars["open_interest_usd"] > 0).all() and (bars["volume_usd"] > 0).all()
    close = bars.pivot(index="ts", columns="base", values="index_price")
    returns = np.log(close).diff().dropna()
    assert returns["BTC"].corr(returns["ETH"]) > 0.3  # common market factor
    btc = bars[bars["base"] == "BTC"]
    oi_change = np.log(btc["open_interest_usd"]).diff()
    price_change = np.log(btc["index_price"]).diff()
    assert oi_change.corr(price_change) > 0.3  # OI in USD moves with price


def test_missing_settlements_are_rare_but_present(market):
    start, end = SIM_EPOCH + 10 * DAY, SIM_EPOCH + 70 * DAY
    prints = market.funding_prints("hyperliquid", start, end)
    listed = market.instruments("hyperliquid", start)
    expected_windows = len(listed) * 60 * 24
    missing = expected_windows - len(prints)
    assert 0 < missing < 0.02 * expected_windows
    assert not prints.duplicated(["symbol", "funding_time"]).any()


def test_late_listing_has_no_data_before_it():
    market = SimulatedMarket(seed=7, venues=("okx",), bases=("BTC", "WIF"))
    listed = pd.Timestamp(dict(VENUE_SPECS["okx"].listed_from)["WIF"], tz="UTC")
    assert "WIF" not in set(market.instruments("okx", listed - DAY)["base"])
    assert "WIF" in set(market.instruments("okx", listed)["base"])
    prints = market.funding_prints("okx", listed - 2 * DAY, listed + 2 * DAY)
    wif = prints[prints["base"] == "WIF"]
    assert len(wif) > 0 and wif["funding_time"].min() > listed
    bars = market.bars("okx", listed - DAY, listed + DAY)
    assert bars.loc[bars["base"] == "WIF", "ts"].min() == listed


def test_extra_bases_for_benchmarks():
    market = SimulatedMarket(seed=7, n_extra_bases=12)
    at = SIM_EPOCH + DAY
    binance = market.instruments("binance", at)
    assert "X001/USDT:USDT" in set(binance["symbol"]) and len(binance) == 25 + 12
    assert not set(market.instruments("deribit", at)["base"]) & {f"X{i:03d}" for i in range(1, 13)}
    assert market.predicted_rates("binance", None, pd.DatetimeIndex([at])).shape[0] == len(binance)


# --- live predicted path ----------------------------------------------------------------


def test_predicted_rate_converges_to_the_settled_rate(market):
    for venue in ("binance", "hyperliquid", "deribit"):
        settled = market.funding_prints(venue, ts("2025-02-01"), ts("2025-02-03"))
        for window_end, group in list(settled.groupby("funding_time"))[:4]:
            just_before = pd.DatetimeIndex([window_end - pd.Timedelta(seconds=1)])
            predicted = market.predicted_rates(venue, list(group["symbol"]), just_before)
            assert (predicted["funding_time"] == window_end).all()
            assert (predicted["kind"] == "predicted").all()
            np.testing.assert_allclose(predicted["rate"], group["rate"], atol=1e-6, rtol=0)


def test_predicted_path_is_in_the_print_schema_and_moves_within_the_window(market):
    times = pd.date_range(ts("2025-02-05 00:00:30"), periods=4, freq="2h")
    predicted = market.predicted_rates("bybit", ["BTC/USDT:USDT", "WIF/USDT:USDT"], times)
    pd.testing.assert_frame_equal(predicted, normalise_prints(predicted))
    assert len(predicted) == 8
    assert (predicted["ts"].to_numpy() == np.repeat(times.to_numpy(), 2)).all()
    wif = predicted[predicted["symbol"] == "WIF/USDT:USDT"]  # a 4h symbol on bybit
    assert list(wif["funding_time"]) == [
        ts("2025-02-05 04:00"),
        ts("2025-02-05 04:00"),
        ts("2025-02-05 08:00"),
        ts("2025-02-05 08:00"),
    ]
    btc = predicted[predicted["symbol"] == "BTC/USDT:USDT"]
    assert (btc["funding_time"] == ts("2025-02-05 08:00")).all()
    assert btc["rate"].nunique() > 1


def test_predicted_rates_serve_300_symbols_per_venue():
    market = SimulatedMarket(seed=7, venues=("binance",), n_extra_bases=275)
    at = SIM_EPOCH + 3 * DAY
    market.predicted_rates("binance", None, pd.DatetimeIndex([at]))
    predicted = market.predicted_rates("binance", None, pd.DatetimeIndex([at + pd.Timedelta(seconds=1)]))
    assert len(predicted) == 300


# --- funding formula laws ---------------------------------------------------------------

premiums = st.floats(-0.02, 0.02, allow_nan=False)


@given(premium=premiums, interval=st.sampled_from([1, 2, 4, 8]), venue=st.sampled_from(["binance", "bybit"]))
def test_clamped_formula_settles_exactly_at_the_interest_inside_the_clamp(premium, interval, venue):
    """Binance scales the whole 8h formula by N/8, so its band is on the premium itself; bybit takes the N-hour
    premium against the scaled interest. Either way F = I·N/8 exactly inside the band."""
    scale = interval / 8
    rate = float(funding_rate(venue, premium, interval))
    gap = INTEREST_RATE_8H - premium if venue == "binance" else INTEREST_RATE_8H * scale - premium
    if abs(gap) < facts(venue).funding.clamp_8h - 1e-12:
        assert rate == INTEREST_RATE_8H * scale
    assert abs(rate) <= VENUE_SPECS[venue].cap


@given(premium=premiums, interval=st.sampled_from([1, 2, 4, 8]))
def test_okx_settles_the_interest_clamped_premium_within_the_currency_cap(premium, interval):
    """OKX's formula since 2025-04-10: Clamp[P + Clamp(I - P, ±0.05 %), floor, cap], I = 0.01 % · N/8 (only the
    interest scaled), BTC capped at 0.375 %, WIF at 1.5 %."""
    interest = 0.0001 * interval / 8
    gap = interest - premium
    expected = interest if abs(gap) <= 0.0005 else premium + float(np.clip(gap, -0.0005, 0.0005))
    for symbol, cap in (("BTC/USDT:USDT", 0.00375), ("WIF/USDT:USDT", 0.015)):
        rate = float(funding_rate("okx", premium, interval, symbol))
        assert rate == pytest.approx(float(np.clip(expected, -cap, cap)), rel=1e-12, abs=1e-18)
        if abs(gap) <= 0.0005:
            assert rate == interest


@given(a=premiums, b=premiums, venue=st.sampled_from(list(SIM_VENUES)))
def test_funding_is_monotone_in_the_premium(a, b, venue):
    interval = VENUE_SPECS[venue].default_interval_h
    low, high = sorted((a, b))
    assert funding_rate(venue, low, interval) <= funding_rate(venue, high, interval)


@given(premium=premiums)
def test_hyperliquid_pays_an_eighth_of_the_8h_formula_and_deribit_has_a_dead_band(premium):
    eight_hour = float(funding_rate("binance", premium, 8))
    if abs(eight_hour) < VENUE_SPECS["binance"].cap:
        assert float(funding_rate("hyperliquid", premium, 1)) == pytest.approx(eight_hour / 8, abs=1e-15)
    deribit = float(funding_rate("deribit", premium, 8))
    if abs(premium) <= 0.00025:
        assert deribit == 0.0
    else:
        assert np.sign(deribit) == np.sign(premium)


# --- errors -----------------------------------------------------------------------------


def test_unknown_venue_and_base_name_what_was_wrong(market):
    with pytest.raises(UnknownVenueError, match="'ftx'.*binance"):
        market.funding_prints("ftx", SIM_EPOCH, SIM_EPOCH + DAY)
    with pytest.raises(UnknownVenueError, match="ftx"):
        SimulatedMarket(venues=("binance", "ftx"))
    with pytest.raises(UnknownVenueError, match="LUNA.*BTC"):
        SimulatedMarket(bases=("BTC", "LUNA"))
    with pytest.raises(UnknownVenueError, match="XRP/USDT:USDT"):
        market.predicted_rates("binance", ["XRP/USDT:USDT"], pd.DatetimeIndex([SIM_EPOCH]))
    with pytest.raises(UnknownVenueError, match="'binance'.*okx"):
        SimulatedMarket(venues=("okx",)).bars("binance", SIM_EPOCH, SIM_EPOCH + DAY)


def test_requests_before_the_epoch_raise(market):
    before = SIM_EPOCH - pd.Timedelta(hours=1)
    for call in (
        lambda: market.funding_prints("binance", before, SIM_EPOCH + DAY),
        lambda: market.bars("binance", before, SIM_EPOCH),
        lambda: market.markets("binance", ts("2024-12-31")),
        lambda: market.instruments("binance", before),
        lambda: market.predicted_rates("binance", None, pd.DatetimeIndex([before])),
    ):
        with pytest.raises(ValueError, match="before the simulation epoch"):
            call()
    with pytest.raises(ValueError, match="end .* is before start"):
        market.funding_prints("binance", SIM_EPOCH + DAY, SIM_EPOCH)
