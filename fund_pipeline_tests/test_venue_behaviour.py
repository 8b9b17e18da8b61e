"""The venues as they behave (routes, cadences, history depths, rate limits, subscriptions): emulated, coped with.

The emulator enforces what the adapters state; the collector and the ccxt source must cope: Binance's
legacy route delivers nothing, OKX pushes every 30-90 s, Bybit's 100 ms deltas are mostly book
traffic, an endpoint older than its depth is refused by name, limits answer 429 then 418, streams
split at the per-connection limit, refused subscriptions are reported and retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import pandas as pd
import pytest

from fund_pipeline.emulator.limits import RateLimits
from fund_pipeline.emulator.server import Faults, start_emulator
from fund_pipeline.live.collect_cli import build_parser
from fund_pipeline.live.collector import Collector, CollectorConfig
from fund_pipeline.live.landing import read_landed
from fund_pipeline.sources.ccxt import CcxtSource, HistoryDepthError
from fund_pipeline.venues.registry import WS_VENUES, adapter
from fund_pipeline.venues.streams import StreamParser
from fund_pipeline_tests.emulator_thread import emulator_in_thread

BTC = "BTC/USDT:USDT"


class StaticRest:
    """REST stand-in: no settled history, every symbol on an 8h interval."""

    def last_settled(self, venue, symbol, n):
        return pd.DataFrame()

    def settled_since(self, venue, symbol, since):
        return pd.DataFrame()

    def stream_intervals(self, venue, symbols):
        return dict.fromkeys(symbols, 8.0)


# --- the adapters state their venue's behaviour ---------------------------------------------------------


def test_every_stream_states_its_route_cadence_and_silence_limit():
    for venue in WS_VENUES:
        spec = adapter(venue).stream
        assert spec is not None and spec.route.startswith("/")
        assert spec.silence_s >= 3 * spec.push_every_s[1], f"{venue}: a silence limit below three pushes"
    assert adapter("binance").stream.route == "/market/ws" and "/ws" in adapter("binance").stream.dead_routes
    assert adapter("okx").stream.push_every_s == (30.0, 90.0) and adapter("okx").stream.silence_s >= 270
    assert CollectorConfig().silence_for("okx") > CollectorConfig().silence_for("binance")


def test_rate_limits_answer_429_then_418_for_a_client_that_does_not_back_off():
    now = [0.0]
    limits = RateLimits(scale=1.0, clock=lambda: now[0])
    path = "/fapi/v1/fundingRate"
    assert all(limits.admit("binance", path) is None for _ in range(480))  # 480 × weight 5 = the 2,400/min budget
    status, retry_after, message = limits.admit("binance", path)
    assert status == 429 and 0 < retry_after <= 60 and "fapi request weight" in message
    now[0] += 0.5
    assert limits.admit("binance", path)[0] == 418, "asking again inside Retry-After is banned"
    now[0] += 10 * 60
    assert limits.admit("binance", path) is None, "the ban ends"


def test_the_pacer_keeps_a_client_under_every_limit():
    from fund_pipeline.sources.pacing import Pacer

    pacer = Pacer(adapter("okx").rest.rate_limits, scale=0.01)
    started = time.monotonic()
    for _ in range(31):
        pacer.wait("fetch_funding_rate_history")
    # 10 per 2 s → one per 0.2 s, scaled by 0.01: 30 gaps of 2 ms at least.
    assert time.monotonic() - started >= 30 * 0.002


# --- the emulator enforces it, the code copes -----------------------------------------------------------


async def first_frames(url: str, subscribe: str, seconds: float) -> list[str]:
    frames: list[str] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_str(subscribe)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                msg = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break
            if msg.type == aiohttp.WSMsgType.TEXT:
                frames.append(msg.data)
    return frames


@pytest.mark.e2e
def test_binance_legacy_route_acknowledges_and_delivers_nothing_the_market_route_delivers():
    async def go():
        emulator = await start_emulator(bases=("BTC",), speed=60)
        try:
            base = emulator.base_url.replace("http", "ws") + "/binance"
            subscribe = json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s"], "id": 1})
            legacy = await first_frames(base + "/ws", subscribe, 1.5)
            routed = await first_frames(base + "/market/ws", subscribe, 1.5)
        finally:
            await emulator.stop()
        return legacy, routed

    legacy, routed = asyncio.run(go())
    assert legacy == ['{"result": null, "id": 1}']
    assert len(routed) >= 3 and json.loads(routed[1])["e"] == "markPriceUpdate"


@pytest.mark.e2e
def test_okx_pushes_every_30_to_90_venue_seconds():
    async def go():
        emulator = await start_emulator(bases=("BTC",), speed=60)
        try:
            subscribe = json.dumps(
                {"op": "subscribe", "args": [{"channel": "funding-rate", "instId": "BTC-USDT-SWAP"}]}
            )
            return await first_frames(emulator.base_url.replace("http", "ws") + "/okx/ws/v5/public", subscribe, 4.0)
        finally:
            await emulator.stop()

    frames = asyncio.run(go())
    times = [int(json.loads(f)["data"][0]["ts"]) for f in frames if '"data"' in f]
    gaps_s = [(b - a) / 1000 for a, b in zip(times, times[1:], strict=False)]
    assert gaps_s and all(28 <= g <= 95 for g in gaps_s), f"okx push gaps {gaps_s} (venue seconds)"


@pytest.mark.e2e
def test_bybit_pushes_every_100_ms_mostly_book_only_deltas_that_make_no_print():
    async def go():
        emulator = await start_emulator(bases=("BTC",), speed=1)
        try:
            subscribe = json.dumps({"op": "subscribe", "args": ["tickers.BTCUSDT"]})
            return await first_frames(
                emulator.base_url.replace("http", "ws") + "/bybit/v5/public/linear", subscribe, 2.0
            )
        finally:
            await emulator.stop()

    frames = asyncio.run(go())
    data = [f for f in frames if '"topic"' in f]
    assert len(data) >= 10, f"{len(data)} pushes in 2 s"
    stream = StreamParser("bybit")
    prints = [p for f in data for p in stream.parse(f, time.time_ns())]
    assert 1 <= len(prints) < len(data) / 2, "the funding estimate moves once a second, the book every push"
    assert stream.ctx.skipped["book_only_delta"] == len(data) - len(prints)


@pytest.fixture(scope="module")
def late_emulator():
    """An emulator eight months after the simulation starts, with the venues' rate limits on (compressed)."""
    faults = Faults(rate_limits=True, rate_limit_scale=0.01)
    start = pd.Timestamp("2025-09-01", tz="UTC")
    with emulator_in_thread(bases=("BTC",), start=start, speed=1e-9, faults=faults) as running:
        yield running


@pytest.mark.e2e
def test_a_backfill_older_than_the_history_depth_fails_naming_venue_endpoint_and_depth(late_emulator, caplog):
    source = CcxtSource(
        venues=["okx", "binance"], api_base_url=late_emulator.base_url, now=late_emulator.state.clock.now,
        rate_limit_scale=0.01,
    )  # fmt: skip
    with pytest.raises(HistoryDepthError, match=r"okx /api/v5/public/funding-rate-history keeps only 92 days"):
        source.funding_prints("okx", "2025-04-01", "2025-04-02")
    recent = source.funding_prints("okx", "2025-08-20", "2025-08-21")
    assert len(recent) == 3, "inside the depth the backfill is whole"
    with caplog.at_level(logging.WARNING, logger="fund_pipeline.sources.ccxt"):
        bars = source.bars("binance", "2025-06-01", "2025-06-01 03:00")
    assert bars["open_interest_usd"].isna().all() and bars["close"].notna().all()
    assert "binance /futures/data/openInterestHist keeps only 30 days" in caplog.text
    assert not any(k.startswith("rate_limited") for k in late_emulator.state.counters), "the pacer kept under"


def collect(landing, faults: Faults, venues: list[str], bases: list[str], config: CollectorConfig, seconds: float):
    async def go():
        emulator = await start_emulator(bases=tuple(bases), speed=60, faults=faults)
        try:
            collector = Collector(
                venues, bases, landing, api_base_url=emulator.base_url, clock=emulator.state.clock.now,
                config=config, rest_source=StaticRest(), seed=2,
            )  # fmt: skip
            return collector, await collector.run(seconds)
        finally:
            await emulator.stop()

    return asyncio.run(go())


@pytest.mark.e2e
def test_streams_split_at_the_per_connection_limit_and_refused_subscriptions_are_retried(tmp_path, caplog):
    landing = tmp_path / "landing"
    bases = ["BTC", "ETH", "SOL", "XRP", "DOGE"]
    config = CollectorConfig(
        streams_per_connection={"binance": 2}, backoff_base_s=0.1, resubscribe_attempts=2, status_every_s=1.0
    )
    refused = Faults(refuse_subscribe=frozenset({"ETH"}))
    with caplog.at_level(logging.INFO, logger="fund_pipeline.live.collector"):
        collector, stats = collect(landing, refused, ["binance", "bybit"], bases, config, 4.0)
    assert collector.connection_groups("binance") == [
        ["BTC/USDT:USDT", "ETH/USDT:USDT"], ["SOL/USDT:USDT", "XRP/USDT:USDT"], ["DOGE/USDT:USDT"],
    ]  # fmt: skip
    assert stats["connects:binance"] == 3
    prints = read_landed(landing, "prints")
    assert set(prints.loc[prints["venue"] == "binance", "base"]) == set(bases)
    assert set(prints.loc[prints["venue"] == "bybit", "base"]) == set(bases) - {"ETH"}
    assert stats["subscribe_failed:bybit"] == 3 and stats["resubscribes:bybit"] == 2
    assert "bybit: subscription refused" in caplog.text and "not retried again" in caplog.text
    status = [r.getMessage() for r in caplog.records if r.getMessage().startswith("status:")]
    assert status and "binance 3/3 connected" in status[0] and "bybit 1/1 connected" in status[0]


def test_collect_help_describes_every_flag():
    parser = build_parser()
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
    text = parser.format_help()
    for flag in ("--venues", "--bases", "--landing", "--api-base-url", "--snapshot", "--all-market", "--status-every"):
        assert flag in text
