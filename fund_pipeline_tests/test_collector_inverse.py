"""The collector on coin-margined perps (`CollectorConfig.inverse`, `collect --inverse`): their connections on the
venues' real routes (binance COIN-M on wss://dstream.binance.com/ws, bybit /v5/public/inverse, okx beside the
linear swaps), the venues' documented inverse frames parsed, and emulator → collector → landing with the
coin-margined prints and liquidations landed under their own unified symbol."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fund_pipeline.defs.live.assets import snapshots_in_window
from fund_pipeline.domain.curve import SnapshotPolicy
from fund_pipeline.domain.liquidations import LONG, SHORT, Liquidation
from fund_pipeline.domain.time import NS_PER_MS
from fund_pipeline.emulator.server import start_emulator
from fund_pipeline.live.collect_cli import build_parser
from fund_pipeline.live.collector import Collector, CollectorConfig
from fund_pipeline.live.landing import read_landed
from fund_pipeline.sources.sim_liquidations import simulated_liquidations
from fund_pipeline.sources.simulated import SimulatedMarket
from fund_pipeline.venues.registry import adapter
from fund_pipeline.venues.streams import StreamParser
from fund_pipeline_tests.test_liquidations_live import liquidation_events
from fund_pipeline_tests.test_venue_fixtures import as_expected, unified

FIXTURES = Path(__file__).parent / "fixtures" / "venues" / "inverse"
VENUES = ["binance", "bybit", "okx"]
LINEAR, INVERSE = "BTC/USDT:USDT", "BTC/USD:BTC"
START = pd.Timestamp("2025-03-01 05:00", tz="UTC")


# ---------------------------------------------------------------- connections and subscriptions


def test_coin_margined_perps_get_their_own_connections_on_the_venues_routes(tmp_path):
    collector = Collector([*VENUES, "hyperliquid"], ["BTC"], tmp_path, config=CollectorConfig(inverse=True))
    assert collector.symbols == {
        "binance": [LINEAR, INVERSE], "bybit": [LINEAR, INVERSE], "okx": [LINEAR, INVERSE],
        "hyperliquid": ["BTC/USDC:USDC"],  # it lists no coin-margined perp
    }  # fmt: skip
    groups = {v: collector.connection_groups(v) for v in VENUES}
    assert groups == {"binance": [[LINEAR], [INVERSE]], "bybit": [[LINEAR], [INVERSE]], "okx": [[LINEAR, INVERSE]]}
    urls = {v: [collector.ws_url(v, g) for g in groups[v]] for v in VENUES}
    assert urls == {
        "binance": ["wss://fstream.binance.com/market/ws", "wss://dstream.binance.com/ws"],
        "bybit": ["wss://stream.bybit.com/v5/public/linear", "wss://stream.bybit.com/v5/public/inverse"],
        "okx": ["wss://ws.okx.com:8443/ws/v5/public"],
    }
    assert collector.subscriptions("binance", [INVERSE]) == [
        json.dumps({"method": "SUBSCRIBE", "params": ["btcusd_perp@markPrice@1s"], "id": 1}),
        *adapter("binance").liquidation_subscribe_messages([INVERSE]),
    ]
    assert "allLiquidation.BTCUSD" in collector.subscriptions("bybit", [INVERSE])[-1]
    under_emulator = Collector(
        VENUES, ["BTC"], tmp_path, api_base_url="http://127.0.0.1:9", config=CollectorConfig(inverse=True)
    )
    assert under_emulator.ws_url("binance", [INVERSE]) == "ws://127.0.0.1:9/binance/dstream/ws"
    assert under_emulator.ws_url("bybit", [INVERSE]) == "ws://127.0.0.1:9/bybit/v5/public/inverse"


def test_without_inverse_nothing_changes_and_whole_market_is_the_linear_connections(tmp_path):
    plain = Collector(VENUES, ["BTC", "ETH"], tmp_path)
    assert plain.symbols["binance"] == [LINEAR, "ETH/USDT:USDT"]
    assert plain.connection_groups("okx") == [[LINEAR, "ETH/USDT:USDT"]]
    whole = Collector(["binance"], ["BTC"], tmp_path, config=CollectorConfig(inverse=True, all_market=True))
    assert whole.connection_groups("binance") == [[LINEAR], [INVERSE]]
    assert "!markPrice@arr" in whole.subscriptions("binance", [LINEAR])[0]
    assert "btcusd_perp@markPrice@1s" in whole.subscriptions("binance", [INVERSE])[0]


def test_the_cli_flag_turns_it_on():
    assert build_parser().parse_args(["--inverse"]).inverse is True
    assert build_parser().parse_args([]).inverse is False


# ---------------------------------------------------------------- the venues' documented inverse frames


def inverse_fixture(venue: str) -> dict[str, Any]:
    (path,) = FIXTURES.glob(f"{venue}_*.json")
    return json.loads(path.read_text())


def as_liquidation(row: dict[str, Any]) -> Liquidation:
    return Liquidation(
        row["venue"], row["symbol"], row["base"], row["ts_ms"] * NS_PER_MS, row["received_at_ms"] * NS_PER_MS,
        {"long": LONG, "short": SHORT}[row["side"]], row["price"], row["quantity"], row["notional_usd"], "ws",
    )  # fmt: skip


@pytest.mark.parametrize("venue", VENUES)
def test_documented_inverse_frames_parse_into_the_coin_margined_perps_prints_and_liquidations(venue):
    doc = inverse_fixture(venue)
    intervals = {unified(venue, n): h for n, h in doc["intervals"].items()}
    parser = StreamParser(venue, intervals, wanted={unified(venue, n) for n in doc["wanted"]})
    received = doc["received_at_ms"] * NS_PER_MS
    prints = [p for frame in doc["frames"] for p in parser.parse(json.dumps(frame), received)]
    assert [as_expected(p) for p in prints] == doc["expected"]
    assert all(p.symbol == INVERSE and p.kind == "predicted" for p in prints)
    liquidations = parser.ctx.liquidations
    expected = [as_liquidation({**row, "venue": venue, "received_at_ms": doc["received_at_ms"]})
                for row in doc["expected_liquidations"]]  # fmt: skip
    assert len(liquidations) == len(expected)
    for got, want in zip(liquidations, expected, strict=True):
        assert got._replace(quantity=0.0, notional_usd=0.0) == want._replace(quantity=0.0, notional_usd=0.0)
        assert got.notional_usd == pytest.approx(want.notional_usd, rel=1e-12)
        assert got.quantity == pytest.approx(want.quantity, rel=1e-12)
    assert parser.ctx.skipped == doc["skipped"]
    assert parser.ctx.bad_items == []


# ---------------------------------------------------------------- emulator → collector → landing


@pytest.mark.e2e
def test_emulator_to_collector_lands_coin_margined_prints_and_liquidations(tmp_path):
    landing = tmp_path / "landing"

    async def go():
        emulator = await start_emulator(bases=("BTC",), speed=3600, start=START, inverse=True)
        try:
            collector = Collector(
                VENUES, ["BTC"], landing, api_base_url=emulator.base_url, clock=emulator.state.clock.now,
                policy=SnapshotPolicy("every_update"), config=CollectorConfig(inverse=True), seed=5,
            )  # fmt: skip
            running = asyncio.create_task(collector.run())
            want = {(v, INVERSE) for v in VENUES}
            for _ in range(120):  # until every venue landed coin-margined prints and liquidations, at most 60 s
                await asyncio.sleep(0.5)
                prints = await asyncio.to_thread(read_landed, landing, "prints", -1, ["venue", "symbol", "source"])
                liqs = await asyncio.to_thread(read_landed, landing, "liquidations", -1, ["venue", "symbol"])
                live = prints[prints["source"] == "ws"] if len(prints) else prints
                if (
                    len(live)
                    and len(liqs)
                    and want <= set(zip(live["venue"], live["symbol"], strict=True))
                    and (want <= set(zip(liqs["venue"], liqs["symbol"], strict=True)))
                ):
                    break
            collector.stop()
            stats = await running
            return stats, collector, emulator.state.market
        finally:
            await emulator.stop()

    stats, collector, market = asyncio.run(go())
    quarantine = read_landed(landing, "quarantine")
    assert not quarantine.size, quarantine
    prints = read_landed(landing, "prints")
    live = prints[(prints["source"] == "ws") & (prints["symbol"] == INVERSE)]
    assert set(live["venue"]) == set(VENUES), dict(stats)
    assert (live["kind"] == "predicted").all() and (live["base"] == "BTC").all()
    # The rates are the simulated coin-margined perps' own, at the prints' venue times.
    sim = SimulatedMarket(bases=("BTC",), inverse=True)
    for venue, got in live.groupby("venue"):
        last = got.iloc[-1]
        expected = sim.predicted_rates(venue, [INVERSE], pd.DatetimeIndex([last["ts"]]))
        assert last["rate"] == pytest.approx(float(expected["rate"].iloc[0]), rel=1e-6, abs=1e-12), venue
        assert last["funding_time"] == expected["funding_time"].iloc[0], venue
        linear = prints[(prints["venue"] == venue) & (prints["symbol"] == LINEAR) & (prints["source"] == "ws")]
        assert len(linear), venue  # the linear perp streams beside it
    # The warm start seeded them from the REST history of the coin-margined perps.
    seeded = prints[(prints["source"] == "rest") & (prints["symbol"] == INVERSE)]
    assert set(seeded["venue"]) == set(VENUES)
    assert {(v, INVERSE) for v in VENUES} <= set(collector.builders)
    # live_curve's snapshots: a curve of its own per venue, bucket 0 the coin-margined perp's own last quote.
    snapshots = snapshots_in_window(landing, START - pd.Timedelta(days=1), START + pd.Timedelta(days=30))
    for venue in VENUES:
        mine = snapshots[(snapshots["venue"] == venue) & (snapshots["symbol"] == INVERSE)]
        assert len(mine) and len(snapshots[(snapshots["venue"] == venue) & (snapshots["symbol"] == LINEAR)]), venue
        last = live[live["venue"] == venue].sort_values("received_at").iloc[-1]
        assert mine.sort_values("ts_snap")["b0"].iloc[-1] == last["rate"], venue
    liquidations = read_landed(landing, "liquidations")
    coin = liquidations[liquidations["symbol"] == INVERSE]
    assert set(coin["venue"]) == set(VENUES)
    # Every landed liquidation is the simulator's, and none was missed between a perp's first and last: per perp,
    # since binance's and bybit's coin-margined perps stream on connections of their own, which open and close
    # at their own instants (the inverse one closing first once made bybit's window look one event short).
    for (venue, symbol), got in liquidations.groupby(["venue", "symbol"]):
        first, last = got["ts"].min(), got["ts"].max() + pd.Timedelta(milliseconds=1)
        simulated = simulated_liquidations(market, venue, first, last)
        expected = simulated[simulated["symbol"] == symbol]
        assert liquidation_events(got) == liquidation_events(expected), (venue, symbol)
    assert set(liquidations["symbol"]) == {INVERSE, LINEAR}
    # Each coin-margined connection went to its venue's own route: one more connection on binance and bybit.
    assert stats["connects:binance"] >= 2 and stats["connects:bybit"] >= 2 and stats["connects:okx"] >= 1


# ---------------------------------------------------------------- the emulator's routes are the venues'


class _State:
    """What an emulator session reads of the emulator's state to know a symbol."""

    bases = ("BTC",)

    class faults:
        refuse_subscribe = ()


@pytest.mark.parametrize(
    ("venue", "inverse", "known"),
    [
        ("binance", False, {"BTCUSDT": LINEAR, "BTCUSD_PERP": None}),  # fstream: USDⓈ-M only
        ("binance", True, {"BTCUSDT": None, "BTCUSD_PERP": INVERSE}),  # dstream: COIN-M only
        ("bybit", False, {"BTCUSDT": LINEAR, "BTCUSD": None}),
        ("bybit", True, {"BTCUSDT": None, "BTCUSD": INVERSE}),
        ("okx", None, {"BTC-USDT-SWAP": LINEAR, "BTC-USD-SWAP": INVERSE}),  # one route for both
    ],
)
def test_each_emulated_route_knows_only_the_perps_the_venues_route_streams(venue, inverse, known):
    from fund_pipeline.emulator.ws_api import _Session

    session = _Session(_State(), venue, ws=None, combined=False, dead=False, inverse=inverse)  # type: ignore[arg-type]
    assert {native: session.view.known(native) for native in known} == known


@pytest.mark.e2e
def test_a_coin_margined_subscription_on_bybits_linear_route_is_refused():
    import aiohttp

    async def go() -> list[dict]:
        emulator = await start_emulator(bases=("BTC",), speed=1e-9, start=START, inverse=True)
        try:
            answers = []
            async with aiohttp.ClientSession() as http:
                for route in ("/v5/public/linear", "/v5/public/inverse"):
                    async with http.ws_connect(f"{emulator.base_url}/bybit{route}") as ws:
                        await ws.send_str(adapter("bybit").subscribe_messages([INVERSE])[0])
                        answers.append(json.loads((await ws.receive(timeout=10)).data))
            return answers
        finally:
            await emulator.stop()

    linear, inverse = asyncio.run(go())
    assert linear["success"] is False and "BTCUSD" in linear["ret_msg"]
    assert inverse["success"] is True
