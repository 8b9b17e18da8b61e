"""CcxtSource against the in-process exchange emulator: pagination, schemas, values, retries, outages."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.prints import BAR_COLUMNS, MARKET_COLUMNS, PRINT_COLUMNS
from fund_pipeline.emulator.server import Faults
from fund_pipeline.sources.ccxt import CcxtSource, VenueUnavailableError
from fund_pipeline.sources.simulated import OKX_INTERVAL_CHANGE_AT, OKX_INTERVAL_CHANGE_BASE, SimulatedMarket
from fund_pipeline.venues.registry import SIM_VENUES, UnknownVenueError
from fund_pipeline_tests.emulator_thread import emulator_in_thread

pytestmark = pytest.mark.e2e  # ccxt against the emulator on loopback

BASES = ("BTC", "PEPE", "WIF")  # PEPE settles every 4h on binance, WIF on bybit
NOW = pd.Timestamp("2025-01-20", tz="UTC")
VENUES = SIM_VENUES
FULL_BARS = ("binance", "bybit", "okx")  # perp, spot, mark, index and open interest
BTC = {v: "BTC/USDC:USDC" if v in ("hyperliquid", "deribit") else "BTC/USDT:USDT" for v in VENUES}


def serve(bases, start):
    """An emulator on its own event-loop thread; yields it, then stops both."""
    with emulator_in_thread(bases=bases, start=start, speed=1.0) as running:
        yield running


@pytest.fixture(scope="module")
def emulator():
    yield from serve(BASES, NOW)


@pytest.fixture()
def source(emulator):
    emulator.state.faults = Faults(retry_after_s=0)
    emulator.state.counters.clear()
    return CcxtSource(
        venues=VENUES, api_base_url=emulator.base_url, backoff_base_s=0.01, now=emulator.state.clock.now, throttle=False
    )


def sim_prints(venue, start, end):
    prints = SimulatedMarket(bases=BASES).funding_prints(venue, start, end)
    return prints[prints["kind"] == "settled"].sort_values(["symbol", "funding_time"]).reset_index(drop=True)


@pytest.mark.parametrize(("venue", "symbol"), [("binance", "PEPE/USDT:USDT"), ("bybit", "WIF/USDT:USDT")])
def test_4h_symbol_has_every_window_over_several_days(source, venue, symbol):
    start, end = pd.Timestamp("2025-01-03", tz="UTC"), pd.Timestamp("2025-01-09", tz="UTC")
    got = source.funding_prints(venue, start, end)
    four_hourly = got[got["symbol"] == symbol]
    want = sim_prints(venue, start, end)
    assert four_hourly["funding_time"].tolist() == want.loc[want["symbol"] == symbol, "funding_time"].tolist()
    assert len(four_hourly) >= 6 * 24 // 4 - 1
    assert (four_hourly["interval_h"] == 4.0).all()


@pytest.mark.parametrize("venue", VENUES)
def test_funding_prints_match_the_simulated_market(source, venue):
    start, end = pd.Timestamp("2025-01-10", tz="UTC"), pd.Timestamp("2025-01-12", tz="UTC")
    got = source.funding_prints(venue, start, end)
    want = sim_prints(venue, start, end)
    assert list(got.columns) == PRINT_COLUMNS
    assert str(got["funding_time"].dtype) == "datetime64[ns, UTC]"
    assert (got["source"] == "rest").all()
    assert got["funding_time"].tolist() == want["funding_time"].tolist()
    assert got["symbol"].tolist() == want["symbol"].tolist()
    np.testing.assert_allclose(got["rate"], want["rate"], rtol=1e-12)
    np.testing.assert_array_equal(got["interval_h"], want["interval_h"])


def test_a_missing_settlement_is_not_a_longer_interval(source):
    """bybit BTC misses its 2025-01-10 16:00 settlement; the next print still covers 8h, not 16h."""
    start, end = pd.Timestamp("2025-01-10", tz="UTC"), pd.Timestamp("2025-01-12", tz="UTC")
    want = sim_prints("bybit", start, end)
    btc = want[want["symbol"] == "BTC/USDT:USDT"]
    gaps = btc["funding_time"].diff().dropna()
    assert (gaps == pd.Timedelta(hours=16)).sum() == 1, "the simulated market must miss one settlement here"
    got = source.funding_prints("bybit", start, end)
    assert (got.loc[got["symbol"] == "BTC/USDT:USDT", "interval_h"] == 8.0).all()


@pytest.mark.parametrize("venue", VENUES)
def test_bars_match_the_simulated_market(source, venue):
    start, end = pd.Timestamp("2025-01-11", tz="UTC"), pd.Timestamp("2025-01-11 06:00", tz="UTC")
    got = source.bars(venue, start, end)
    want = SimulatedMarket(bases=BASES).bars(venue, start, end).sort_values(["symbol", "ts"]).reset_index(drop=True)
    assert list(got.columns) == BAR_COLUMNS
    assert str(got["ts"].dtype) == "datetime64[ns, UTC]"
    assert got["ts"].tolist() == want["ts"].tolist()
    assert got["symbol"].tolist() == want["symbol"].tolist()
    served = ["open", "high", "low", "close", "volume_usd"]
    if venue in FULL_BARS:
        served += [
            "spot_open",
            "spot_high",
            "spot_low",
            "spot_close",
            "spot_volume_usd",
            "mark_price",
            "index_price",
            "open_interest_usd",
        ]
    else:
        assert got[["spot_close", "mark_price", "index_price", "open_interest_usd"]].isna().all().all()
    np.testing.assert_allclose(got[served].to_numpy(float), want[served].to_numpy(float), rtol=1e-9)


@pytest.mark.parametrize("venue", VENUES)
def test_markets_match_the_simulated_market(source, venue):
    day = pd.Timestamp("2025-01-12", tz="UTC")
    got = source.markets(venue, day)
    want = SimulatedMarket(bases=BASES).markets(venue, day).sort_values("symbol").reset_index(drop=True)
    assert list(got.columns) == MARKET_COLUMNS
    assert got["symbol"].tolist() == want["symbol"].tolist()
    np.testing.assert_array_equal(got["interval_h"], want["interval_h"])
    np.testing.assert_allclose(got["volume_usd_24h"], want["volume_usd_24h"], rtol=1e-9)
    if venue in FULL_BARS:
        np.testing.assert_allclose(got["open_interest_usd"], want["open_interest_usd"], rtol=1e-9)
    else:
        assert got["open_interest_usd"].isna().all()
    if venue == "binance":
        assert got["max_leverage"].isna().all()
    else:
        np.testing.assert_array_equal(got["max_leverage"], want["max_leverage"])


@pytest.mark.parametrize("venue", VENUES)
def test_last_settled_and_settled_since(source, venue):
    symbol = BTC[venue]
    history = sim_prints(venue, NOW - pd.Timedelta(days=3), NOW + pd.Timedelta(milliseconds=1))
    history = history[history["symbol"] == symbol]
    last = source.last_settled(venue, symbol, n=7)
    assert last["funding_time"].tolist() == history["funding_time"].tail(7).tolist()
    assert last["funding_time"].iloc[-1] == NOW
    np.testing.assert_allclose(last["rate"], history["rate"].tail(7), rtol=1e-12)
    since = NOW - pd.Timedelta(hours=16)
    got = source.settled_since(venue, symbol, since)
    assert got["funding_time"].tolist() == history.loc[history["funding_time"] >= since, "funding_time"].tolist()


@pytest.fixture(scope="module")
def okx_after_the_change():
    """An emulator two days after the okx symbol's interval went from 8h to 4h."""
    yield from serve((OKX_INTERVAL_CHANGE_BASE,), OKX_INTERVAL_CHANGE_AT + pd.Timedelta(days=2))


def test_okx_interval_change_from_8h_to_4h(okx_after_the_change):
    emulator, at = okx_after_the_change, OKX_INTERVAL_CHANGE_AT
    symbol = f"{OKX_INTERVAL_CHANGE_BASE}/USDT:USDT"
    source = CcxtSource(venues=("okx",), api_base_url=emulator.base_url, now=emulator.state.clock.now, throttle=False)
    start, end = at - pd.Timedelta(days=2), at + pd.Timedelta(days=2)
    got = source.funding_prints("okx", start, end)
    want = SimulatedMarket(bases=(OKX_INTERVAL_CHANGE_BASE,)).funding_prints("okx", start, end)
    assert got["funding_time"].tolist() == want["funding_time"].tolist()
    np.testing.assert_allclose(got["rate"], want["rate"], rtol=1e-12)
    before, after = got[got["funding_time"] <= at], got[got["funding_time"] > at]
    assert before["funding_time"].tolist() == list(pd.date_range(start, at, freq="8h"))
    assert after["funding_time"].tolist() == list(
        pd.date_range(at + pd.Timedelta(hours=4), end - pd.Timedelta(hours=4), freq="4h")
    )
    assert (before["interval_h"] == 8.0).all() and (after["interval_h"] == 4.0).all()
    assert source.markets("okx", at - pd.Timedelta(days=1))["interval_h"].tolist() == [8.0]
    assert source.markets("okx", at)["interval_h"].tolist() == [4.0]
    last = source.last_settled("okx", symbol, n=3)
    assert (last["interval_h"] == 4.0).all() and last["funding_time"].diff().dropna().eq(pd.Timedelta(hours=4)).all()


@pytest.mark.parametrize("venue", VENUES)
def test_429_then_success_is_retried(emulator, source, venue):
    emulator.state.faults = Faults(http_429_first_n=2, http_418_first_n=1, retry_after_s=0)
    start = NOW - pd.Timedelta(hours=16)
    got = source.funding_prints(venue, start, NOW)
    assert got["funding_time"].tolist() == sim_prints(venue, start, NOW)["funding_time"].tolist()
    assert len(got) > 0
    assert emulator.state.counters[f"rest:{venue}"] > 3


def test_retry_after_is_honoured(emulator, source):
    emulator.state.faults = Faults(http_429_first_n=1, retry_after_s=1)
    started = time.monotonic()
    source.last_settled("okx", BTC["okx"], n=1)
    assert time.monotonic() - started >= 1.0


def test_venue_kept_down_fails_only_that_venue(emulator, source):
    emulator.state.faults = Faults(venue_down=frozenset({"binance"}))
    fast_give_up = CcxtSource(
        venues=VENUES, api_base_url=emulator.base_url, max_retries=2, backoff_base_s=0.01, throttle=False
    )
    with pytest.raises(VenueUnavailableError, match="binance.*3 attempts"):
        fast_give_up.funding_prints("binance", NOW - pd.Timedelta(days=1), NOW)
    start = NOW - pd.Timedelta(hours=2)
    still_up = fast_give_up.funding_prints("hyperliquid", start, NOW)
    assert still_up["funding_time"].tolist() == sim_prints("hyperliquid", start, NOW)["funding_time"].tolist()
    assert len(still_up) > 0


def test_unknown_venue_and_symbol(emulator, source):
    with pytest.raises(UnknownVenueError, match="kraken"):
        source.funding_prints("kraken", NOW - pd.Timedelta(days=1), NOW)
    with pytest.raises(UnknownVenueError, match="kraken"):
        CcxtSource(venues=("kraken",), api_base_url=emulator.base_url)
    with pytest.raises(UnknownVenueError, match="DOGE/USDT:USDT"):
        source.last_settled("binance", "DOGE/USDT:USDT")
    with pytest.raises(UnknownVenueError, match="XYZ/USDT:USDT"):
        CcxtSource(
            venues=VENUES, symbols={"binance": ["XYZ/USDT:USDT"]}, api_base_url=emulator.base_url
        ).funding_prints("binance", NOW - pd.Timedelta(days=1), NOW)


def test_a_source_without_the_emulator_url_is_refused():
    with pytest.raises(AssertionError, match="emulator"):
        CcxtSource(venues=("okx",))
