"""Coin-margined perps: in the simulated market only when asked for, in the emulator's REST answers with the
venues' own fields (contract size, margin asset, sizes in USD contracts) and on their WebSocket streams."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request

import aiohttp
import pandas as pd
import pytest

from fund_pipeline.sources.simulated import SimulatedMarket
from fund_pipeline.venues.adapter import ParseContext
from fund_pipeline.venues.registry import SIM_VENUES, adapter
from fund_pipeline_tests.emulator_thread import emulator_in_thread

NOW = pd.Timestamp("2026-06-10 05:30", tz="UTC")
BASES = ("BTC", "ETH")
COIN_M = {"binance": "BTCUSD_PERP", "bybit": "BTCUSD", "okx": "BTC-USD-SWAP", "deribit": "BTC-PERPETUAL"}


def test_inverse_perps_are_listed_only_when_asked_for():
    plain, with_inverse = SimulatedMarket(bases=BASES), SimulatedMarket(bases=BASES, inverse=True)
    for venue in SIM_VENUES:
        before, after = plain.instruments(venue, NOW), with_inverse.instruments(venue, NOW)
        assert set(before["margin"]) == {"linear"}
        coins = after[after["margin"] == "inverse"]
        assert set(coins["symbol"]) == {p.symbol for p in adapter(venue).inverse_perps}
        assert (coins["settle"] == coins["base"]).all() and (coins["quote"] == "USD").all()
        # the linear perps do not move when the coin-margined ones are added
        start = NOW - pd.Timedelta(days=2)
        linear = with_inverse.funding_prints(venue, start, NOW)
        linear = linear[~linear["symbol"].isin(coins["symbol"])].reset_index(drop=True)
        pd.testing.assert_frame_equal(linear, plain.funding_prints(venue, start, NOW))


def test_inverse_perp_funding_follows_its_coin_below_the_linear_one():
    market = SimulatedMarket(bases=("BTC",), inverse=True)
    start = NOW - pd.Timedelta(days=20)
    samples = market.premium_samples("binance", start, NOW)
    by_symbol = samples.groupby("symbol")["premium"].mean()
    assert by_symbol["BTC/USD:BTC"] < by_symbol["BTC/USDT:USDT"]
    settled = market.funding_prints("binance", start, NOW)
    assert set(settled["symbol"]) == {"BTC/USD:BTC", "BTC/USDT:USDT"}
    assert settled["rate"].abs().max() <= adapter("binance").facts.rate_cap


@pytest.mark.parametrize(("venue", "native"), COIN_M.items())
def test_native_ids_round_trip(venue, native):
    found = adapter(venue).unified_symbol(native)
    assert found == ("BTC/USD:BTC", "BTC")
    assert adapter(venue).native_symbol("BTC/USD:BTC") == native
    assert adapter(venue).terms("BTC/USD:BTC").margin == "inverse"


def _serve(speed: float):
    with emulator_in_thread(bases=BASES, start=NOW, speed=speed, inverse=True) as running:
        yield running


@pytest.fixture(scope="module")
def emulator():
    """The clock held at NOW (speed 1e-9), for REST answers computed at one instant."""
    yield from _serve(1e-9)


@pytest.fixture(scope="module")
def streaming_emulator():
    """A clock 60x fast, so that OKX's 30-90 s push cadence is a second or so of wall time."""
    yield from _serve(60.0)


def _get(emulator, path: str, **params):
    with urllib.request.urlopen(f"{emulator.base_url}{path}?{urllib.parse.urlencode(params)}", timeout=10) as r:
        return json.loads(r.read().decode())


@pytest.mark.e2e
def test_rest_states_contract_size_and_margin_asset(emulator):
    dapi = {s["symbol"]: s for s in _get(emulator, "/binance/dapi/v1/exchangeInfo")["symbols"]}
    assert dapi["BTCUSD_PERP"]["contractSize"] == 100 and dapi["BTCUSD_PERP"]["marginAsset"] == "BTC"
    assert dapi["BTCUSD_PERP"]["pair"] == "BTCUSD" and dapi["BTCUSD_PERP"]["contractStatus"] == "TRADING"
    fapi = {s["symbol"] for s in _get(emulator, "/binance/fapi/v1/exchangeInfo")["symbols"]}
    assert fapi == {"BTCUSDT", "ETHUSDT"}  # USD-M lists no coin-margined perp
    bybit = _get(emulator, "/bybit/v5/market/instruments-info", category="inverse")["result"]["list"]
    assert {(r["symbol"], r["contractType"], r["settleCoin"]) for r in bybit} == {
        ("BTCUSD", "InversePerpetual", "BTC"),
        ("ETHUSD", "InversePerpetual", "ETH"),
    }
    okx = {r["instId"]: r for r in _get(emulator, "/okx/api/v5/public/instruments", instType="SWAP")["data"]}
    assert okx["BTC-USD-SWAP"]["ctType"] == "inverse" and okx["BTC-USD-SWAP"]["ctVal"] == "100.0"
    assert okx["BTC-USD-SWAP"]["settleCcy"] == "BTC" and okx["BTC-USD-SWAP"]["ctValCcy"] == "USD"
    deribit = {r["instrument_name"]: r for r in _get(emulator, "/deribit/api/v2/public/get_instruments")["result"]}
    assert deribit["BTC-PERPETUAL"]["instrument_type"] == "reversed" and deribit["BTC-PERPETUAL"]["contract_size"] == 10
    assert deribit["ETH-PERPETUAL"]["contract_size"] == 1 and deribit["ETH-PERPETUAL"]["settlement_currency"] == "ETH"


@pytest.mark.e2e
def test_rest_counts_coin_margined_sizes_in_usd_contracts(emulator):
    """Open interest in contracts of the contract's USD face value: USD open interest / contract size."""
    market = SimulatedMarket(bases=BASES, inverse=True)
    last = market.bars("binance", NOW.floor("h") - pd.Timedelta(hours=1), NOW.floor("h"))
    last = last[last["symbol"] == "BTC/USD:BTC"].iloc[-1]
    oi = _get(
        emulator,
        "/binance/futures/data/openInterestHist",
        pair="BTCUSD",
        contractType="PERPETUAL",
        period="1h",
        limit=1,
    )
    assert oi[0]["timestamp"] == int(last["ts"].value // 1_000_000)
    assert float(oi[0]["sumOpenInterest"]) == pytest.approx(last["open_interest_usd"] / 100, rel=1e-12)
    assert float(oi[0]["sumOpenInterestValue"]) == pytest.approx(last["open_interest_usd"] / last["close"], rel=1e-12)
    bybit = _get(emulator, "/bybit/v5/market/open-interest", category="inverse", symbol="BTCUSD", intervalTime="1h")
    bybit_last = market.bars("bybit", NOW.floor("h") - pd.Timedelta(hours=1), NOW.floor("h"))
    bybit_last = bybit_last[bybit_last["symbol"] == "BTC/USD:BTC"].iloc[-1]
    assert float(bybit["result"]["list"][0]["openInterest"]) == pytest.approx(
        bybit_last["open_interest_usd"], rel=1e-12
    )


async def _first_print(url: str, venue: str, native: str, interval_h: float):
    """Subscribe to one coin-margined perp as the collector does; the first print the adapter parses."""
    spec = adapter(venue)
    ctx = ParseContext(venue, intervals={"BTC/USD:BTC": interval_h})
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        for message in spec.subscribe_messages(["BTC/USD:BTC"]):
            await ws.send_str(message)
        async with asyncio.timeout(15):
            async for frame in ws:
                prints = spec.parse(json.loads(frame.data), 0, ctx)
                if prints:
                    return prints[0], frame.data
    raise AssertionError(f"{venue}: no print for {native}")


@pytest.mark.e2e
@pytest.mark.parametrize("venue", ["binance", "bybit", "okx"])
def test_websocket_streams_coin_margined_perps_in_the_venues_frames(streaming_emulator, venue):
    spec = adapter(venue).stream
    assert spec is not None
    url = f"ws://{streaming_emulator.host}:{streaming_emulator.port}/{venue}{spec.inverse_path}"
    found, raw = asyncio.run(_first_print(url, venue, COIN_M[venue], 8.0))
    assert COIN_M[venue] in raw  # the frame names the perp by the venue's own id
    assert found.symbol == "BTC/USD:BTC" and found.base == "BTC"
    expected = SimulatedMarket(bases=BASES, inverse=True).predicted_rates(
        venue, ["BTC/USD:BTC"], pd.DatetimeIndex([pd.Timestamp(found.ts, tz="UTC")])
    )
    assert found.rate == pytest.approx(float(expected["rate"].iloc[0]), rel=1e-6, abs=1e-12)
    assert found.funding_time == expected["funding_time"].iloc[0].value


@pytest.mark.e2e
def test_coin_margined_endpoints_keep_the_documented_limits(emulator):
    """COIN-M pages like USD-M (fundingRate at most 1000 rows, klines 1500); OKX's coin-margined swap keeps
    the 3-month funding-history window and its 400-row page."""
    start = int(pd.Timestamp("2025-01-01", tz="UTC").value // 1_000_000)
    funding = _get(emulator, "/binance/dapi/v1/fundingRate", symbol="BTCUSD_PERP", startTime=start, limit=5000)
    assert len(funding) == 1000 and funding[0]["symbol"] == "BTCUSD_PERP"
    klines = _get(emulator, "/binance/dapi/v1/klines", symbol="BTCUSD_PERP", interval="1h", startTime=start, limit=9999)
    assert len(klines) == 1500
    okx = _get(emulator, "/okx/api/v5/public/funding-rate-history", instId="BTC-USD-SWAP", limit=1000)["data"]
    window = SimulatedMarket(bases=BASES, inverse=True).funding_prints("okx", NOW - pd.Timedelta(days=92), NOW)
    window = window[window["symbol"] == "BTC/USD:BTC"]
    # 92 days of 8h settlements (fewer than one 400-row page), newest first
    assert [int(r["fundingTime"]) for r in okx] == [int(t.value // 1_000_000) for t in window["funding_time"][::-1]]
    oldest = pd.Timestamp(int(okx[-1]["fundingTime"]), unit="ms", tz="UTC")
    assert NOW - pd.Timedelta(days=92) <= oldest < NOW - pd.Timedelta(days=91)
    older = _get(
        emulator, "/okx/api/v5/public/funding-rate-history", instId="BTC-USD-SWAP", after=okx[-1]["fundingTime"]
    )
    assert older["data"] == []


def test_binance_coin_m_frame_has_the_documented_fields():
    """Binance's documented COIN-M mark-price event (developers.binance.com, coin-margined-futures
    Mark-Price-Stream): e, E, s, p, P, i, r, T, the perp named `BTCUSD_PERP`; parsed back to the same print."""
    from fund_pipeline.domain.records import FundingPrint
    from fund_pipeline.venues.adapter import EmulatedSession

    binance = adapter("binance")
    session = EmulatedSession("binance", lambda native: "BTC/USD:BTC" if native == "BTCUSD_PERP" else None)
    assert binance.subscribe_streams(["btcusd_perp@markPrice@1s"], session) is None
    sent = FundingPrint(
        "binance", "BTC/USD:BTC", "BTC", "predicted", 1_781_078_400_000_000_000, 1_781_071_234_000_000_000, 0,
        0.0001, 8.0, 70_010.5, 70_000.25, "ws",
    )  # fmt: skip
    (frame,) = binance.encode_prints([sent], session)
    event = json.loads(frame)
    assert set(event) == {"e", "E", "s", "p", "P", "i", "r", "T"} and event["s"] == "BTCUSD_PERP"
    (parsed,) = binance.parse(event, 5, ParseContext("binance", intervals={"BTC/USD:BTC": 8.0}))
    assert (parsed.symbol, parsed.funding_time, parsed.ts, parsed.rate) == (
        sent.symbol,
        sent.funding_time,
        sent.ts,
        sent.rate,
    )
