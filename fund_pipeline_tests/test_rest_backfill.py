"""CcxtSource against the in-process exchange emulator: pagination, schemas, values, retries, outages."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.prints import BAR_COLUMNS, MARKET_COLUMNS, PRINT_COLUMNS
from fund_pipeline.venues.base import UnknownVenueError
from fund_pipeline.venues.emulator.server import Faults, start_emulator
from fund_pipeline.venues.rest import CcxtSource, VenueUnavailableError
from fund_pipeline.venues.simulated import SimulatedMarket

BASES = ("BTC", "PEPE")  # PEPE settles every 4h on binance
NOW = pd.Timestamp("2025-01-20", tz="UTC")
VENUES = ("binance", "hyperliquid")


@pytest.fixture(scope="module")
def emulator():
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    running = asyncio.run_coroutine_threadsafe(start_emulator(bases=BASES, start=NOW, speed=1.0), loop).result()
    yield running
    asyncio.run_coroutine_threadsafe(running.stop(), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)


@pytest.fixture()
def source(emulator):
    emulator.state.faults = Faults()
    emulator.state.counters.clear()
    return CcxtSource(venues=VENUES, api_base_url=emulator.base_url, backoff_base_s=0.01,
                      now=emulator.state.clock.now)


def sim_prints(venue, start, end):
    prints = SimulatedMarket(bases=BASES).funding_prints(venue, start, end)
    return prints[prints["kind"] == "settled"].sort_values(["symbol", "funding_time"]).reset_index(drop=True)


def test_4h_binance_symbol_has_every_window_over_several_days(source):
    start, end = pd.Timestamp("2025-01-03", tz="UTC"), pd.Timestamp("2025-01-09", tz="UTC")
    got = source.funding_prints("binance", start, end)
    pepe = got[got["symbol"] == "PEPE/USDT:USDT"]
    assert len(pepe) == 6 * 24 // 4
    assert (pepe["funding_time"].diff().dropna() == pd.Timedelta(hours=4)).all()
    assert (pepe["interval_h"] == 4.0).all()


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


@pytest.mark.parametrize("venue", VENUES)
def test_bars_match_the_simulated_market(source, venue):
    start, end = pd.Timestamp("2025-01-11", tz="UTC"), pd.Timestamp("2025-01-11 06:00", tz="UTC")
    got = source.bars(venue, start, end)
    want = SimulatedMarket(bases=BASES).bars(venue, start, end).sort_values(["symbol", "ts"]).reset_index(drop=True)
    assert list(got.columns) == BAR_COLUMNS
    assert str(got["ts"].dtype) == "datetime64[ns, UTC]"
    assert got["ts"].tolist() == want["ts"].tolist()
    served = ["open", "high", "low", "close", "volume_usd"]
    if venue == "binance":
        served += ["spot_open", "spot_close", "spot_volume_usd", "mark_price", "index_price", "open_interest_usd"]
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
    if venue == "binance":
        np.testing.assert_allclose(got["open_interest_usd"], want["open_interest_usd"], rtol=1e-9)
        assert got["max_leverage"].isna().all()
    else:
        np.testing.assert_array_equal(got["max_leverage"], want["max_leverage"])


def test_last_settled_and_settled_since(source):
    last = source.last_settled("binance", "BTC/USDT:USDT", n=7)
    assert len(last) == 7
    assert last["funding_time"].iloc[-1] == NOW
    since = source.settled_since("binance", "BTC/USDT:USDT", NOW - pd.Timedelta(hours=16))
    assert since["funding_time"].tolist() == [NOW - pd.Timedelta(hours=16), NOW - pd.Timedelta(hours=8), NOW]


def test_429_then_success_is_retried(emulator, source):
    emulator.state.faults = Faults(http_429_first_n=2, http_418_first_n=1)
    start = NOW - pd.Timedelta(hours=3)
    got = source.funding_prints("hyperliquid", start, NOW)
    assert got["funding_time"].tolist() == sim_prints("hyperliquid", start, NOW)["funding_time"].tolist()
    assert emulator.state.counters["rest:hyperliquid"] > 3


def test_venue_kept_down_fails_only_that_venue(emulator, source):
    emulator.state.faults = Faults(venue_down=frozenset({"binance"}))
    fast_give_up = CcxtSource(venues=VENUES, api_base_url=emulator.base_url, max_retries=2, backoff_base_s=0.01)
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
        CcxtSource(venues=("kraken",))
    with pytest.raises(UnknownVenueError, match="DOGE/USDT:USDT"):
        source.last_settled("binance", "DOGE/USDT:USDT")
    with pytest.raises(UnknownVenueError, match="XYZ/USDT:USDT"):
        CcxtSource(venues=VENUES, symbols={"binance": ["XYZ/USDT:USDT"]}, api_base_url=emulator.base_url).funding_prints(
            "binance", NOW - pd.Timedelta(days=1), NOW
        )
