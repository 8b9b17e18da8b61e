"""Liquidations through the landing zone and the emulator: segments, the venues' channels, the REST history."""

from __future__ import annotations

import asyncio
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fund_pipeline.domain.liquidations import LONG, SHORT, Liquidation, liquidations_frame
from fund_pipeline.emulator.server import start_emulator
from fund_pipeline.live.collector import Collector, CollectorConfig
from fund_pipeline.live.connection import Link
from fund_pipeline.live.landing import (
    SegmentWriter,
    landing_problems,
    liquidations_table,
    read_landed,
    read_landed_liquidations,
)
from fund_pipeline.sources.liquidation_history import rest_liquidations
from fund_pipeline.sources.sim_liquidations import simulated_liquidations
from fund_pipeline.sources.simulated import SimulatedMarket
from fund_pipeline.venues.streams import StreamParser
from fund_pipeline_tests.test_liquidations import OKX_LIQUIDATION_ORDERS

START = pd.Timestamp("2025-03-01 05:00", tz="UTC")
DAYS = ("2025-03-01", "2025-03-04")
ROWS = [
    Liquidation(
        "bybit", "BTC/USDT:USDT", "BTC", START.value + 5, START.value + 9, LONG, 84_000.5, 0.5, 42_000.25, "ws"
    ),
    Liquidation("okx", "ETH/USD:ETH", "ETH", START.value + 7_000, 0, SHORT, 2_100.0, 10 / 2_100.0, 10.0, "rest"),
]


def test_landing_round_trip(tmp_path):
    writer = SegmentWriter(tmp_path)
    try:
        seq = writer.write({"liquidations": liquidations_table(ROWS)})
    finally:
        writer.close()
    assert (tmp_path / "liquidations" / f"{seq:012d}.parquet").is_file()
    landed = read_landed_liquidations(tmp_path, START, START + pd.Timedelta(hours=1))
    pd.testing.assert_frame_equal(landed, liquidations_frame(ROWS))
    assert read_landed_liquidations(tmp_path, START + pd.Timedelta(hours=1), START + pd.Timedelta(hours=2)).empty
    assert landing_problems(tmp_path) == []


def test_a_liquidation_segment_of_the_wrong_schema_is_reported(tmp_path):
    (tmp_path / "liquidations").mkdir()
    pq.write_table(pa.table({"venue": ["okx"], "ts": [1]}), tmp_path / "liquidations" / "000000000000.parquet")
    (problem,) = landing_problems(tmp_path)
    assert problem.reason == "no column 'symbol'"
    problems: list = []
    assert read_landed_liquidations(tmp_path, START, START + pd.Timedelta(days=1), problems=problems).empty
    assert len(problems) == 1


def test_simulated_liquidations_follow_the_price_path():
    """Drops liquidate longs, rallies shorts; bigger moves more of them; any range gives the same events."""
    market = SimulatedMarket(seed=7, bases=("BTC", "ETH", "SOL"))
    day = simulated_liquidations(market, "binance", *DAYS)
    bars = market.bars("binance", pd.Timestamp("2025-03-01", tz="UTC"), pd.Timestamp("2025-03-04", tz="UTC"))
    bars = bars.assign(move=bars["close"] / bars["open"] - 1)
    per_hour = day.assign(ts=day["ts"].dt.floor("h"), long=day["side"] == LONG).groupby(["symbol", "ts"])
    joined = bars.merge(per_hour.agg(n=("side", "size"), longs=("long", "mean")).reset_index(), on=["symbol", "ts"])
    drops, rallies = joined[joined["move"] < -0.005], joined[joined["move"] > 0.005]
    assert drops["longs"].mean() > 0.8 and rallies["longs"].mean() < 0.2
    calm = joined[joined["move"].abs() < 0.002]
    assert joined.loc[joined["move"].abs() > 0.01, "n"].mean() > 2 * calm["n"].mean()
    part = simulated_liquidations(market, "binance", "2025-03-02 03:17", "2025-03-02 09:00")
    inside = day[(day["ts"] >= "2025-03-02 03:17") & (day["ts"] < "2025-03-02 09:00")].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, inside)
    bases = ("BTC", "ETH", "SOL")
    pd.testing.assert_frame_equal(simulated_liquidations(SimulatedMarket(seed=7, bases=bases), "binance", *DAYS), day)
    other = simulated_liquidations(SimulatedMarket(seed=8, bases=bases), "binance", *DAYS)
    assert other["ts"].tolist() != day["ts"].tolist()


def liquidation_events(frame: pd.DataFrame) -> list[tuple]:
    """Landed or simulated liquidations as comparable rows, in one order."""
    return sorted(
        (r.venue, r.symbol, r.ts.value, r.side, round(r.price, 6), round(r.notional_usd, 4))
        for r in frame.itertuples(index=False)
    )


@pytest.mark.e2e
def test_emulator_to_collector_lands_the_simulated_liquidations(tmp_path):
    """binance, bybit and okx channels in their formats, collected and landed; the same events as the simulator's."""
    venues = ["binance", "bybit", "okx"]

    async def go():
        emulator = await start_emulator(bases=("BTC", "ETH"), speed=3600, start=START)
        try:
            collector = Collector(
                venues, ["BTC", "ETH"], tmp_path / "landing", api_base_url=emulator.base_url,
                clock=emulator.state.clock.now, config=CollectorConfig(), seed=3,
            )  # fmt: skip
            running = asyncio.create_task(collector.run())
            for _ in range(60):  # until every venue landed some (a few seconds), at most 30 s on a loaded machine
                await asyncio.sleep(0.5)
                landed = await asyncio.to_thread(read_landed, tmp_path / "landing", "liquidations", -1, ["venue"])
                if len(landed) and set(landed["venue"]) == set(venues):
                    break
            collector.stop()
            stats = await running
            okx_history = await asyncio.to_thread(
                rest_liquidations, collector.rest().caller("okx"), "okx", ["BTC/USDT:USDT"],
                START, emulator.state.clock.now(),
            )  # fmt: skip
            return stats, okx_history, emulator.state.market
        finally:
            await emulator.stop()

    stats, okx_history, market = asyncio.run(go())
    landed = read_landed(tmp_path / "landing", "liquidations")
    assert set(landed["venue"]) == set(venues), dict(stats)
    assert not read_landed(tmp_path / "landing", "quarantine").size, read_landed(tmp_path / "landing", "quarantine")
    assert (landed["received_at"] > pd.Timestamp(0, tz="UTC")).all() and set(landed["source"]) == {"ws"}
    for venue, got in landed.groupby("venue"):
        first, last = got["ts"].min(), got["ts"].max() + pd.Timedelta(milliseconds=1)
        expected = simulated_liquidations(market, venue, first, last)
        # every landed liquidation is the simulator's, and the stream missed none between its first and last
        assert liquidation_events(got) == liquidation_events(expected), venue
    assert len(okx_history) and set(okx_history["source"]) == {"rest"}
    sim_okx = simulated_liquidations(market, "okx", okx_history["ts"].min(), okx_history["ts"].max() + pd.Timedelta(1))
    assert liquidation_events(okx_history) == liquidation_events(sim_okx[sim_okx["symbol"] == "BTC/USDT:USDT"])


def test_the_collector_subscribes_liquidations_unless_told_not_to(tmp_path):
    venues = ["binance", "bybit", "okx"]
    channels = {"binance": "!forceOrder@arr", "bybit": "allLiquidation.BTCUSDT", "okx": "liquidation-orders"}
    on = Collector(venues, ["BTC"], tmp_path / "on")
    off = Collector(venues, ["BTC"], tmp_path / "off", config=CollectorConfig(liquidation_venues=()))
    for venue in venues:
        assert any(channels[venue] in f for f in on.subscriptions(venue, on.symbols[venue])), venue
        assert not any(channels[venue] in f for f in off.subscriptions(venue, off.symbols[venue])), venue
        assert off.subscriptions(venue, off.symbols[venue]) == on.subscriptions(venue, on.symbols[venue])[:-1]


class FlakyMarkets:
    """ccxt markets over a REST source whose first load fails."""

    def __init__(self) -> None:
        self.loads = 0

    def caller(self, venue):
        def call(method, *args):
            assert (venue, method) == ("okx", "load_markets")
            self.loads += 1
            if self.loads == 1:
                raise OSError("okx REST down")
            return {"IOST/USDT:USDT": {"contractSize": 1000.0}}

        return call


def test_okx_liquidations_wait_for_the_contract_size(tmp_path):
    """Counted in contracts of an unknown size they are quarantined, and the sizes are asked for again."""
    rest = FlakyMarkets()
    collector = Collector(["okx"], ["IOST"], tmp_path, rest_source=rest, clock=lambda: pd.Timestamp("2023-08-17 10:00"))

    async def go() -> list[bool]:
        await collector.learn_contract_sizes("okx")
        link = Link(ws=None, parser=StreamParser("okx"), opened=0.0, next_ping=0.0)
        link.parser.ctx.contract_sizes = collector.contract_sizes["okx"]
        frame = json.dumps(OKX_LIQUIDATION_ORDERS)
        return [await collector.on_frame("okx", link, frame) for _ in range(2)]

    assert asyncio.run(go()) == [False, True]
    assert rest.loads == 2 and collector.stats["quarantined:okx"] == 1
    (liq,) = collector._liquidations
    assert (liq.symbol, liq.quantity, liq.side) == ("IOST/USDT:USDT", 13_000.0, SHORT)
