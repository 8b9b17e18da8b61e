"""A Binance-format mark-price stream on loopback that a test or the live fault benchmark steers, and the collector
run against it."""

import asyncio
import json
import time

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from fund_pipeline.domain.prints import empty_prints
from fund_pipeline.live.collector import Collector, CollectorConfig
from fund_pipeline.live.landing import read_landed

H = 3_600_000_000_000


class NoSettledRest:
    """A REST source with no settled history that records what the collector asks for."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def last_settled(self, venue, symbol, n):
        self.calls.append(("last_settled", venue, symbol))
        return empty_prints()

    def settled_since(self, venue, symbol, since):
        self.calls.append(("settled_since", venue, symbol, since))
        return empty_prints()

    def stream_intervals(self, venue, symbols):
        """Binance's fundingInfo lists none of them: each settles on its 8h default."""
        self.calls.append(("stream_intervals", venue))
        return dict.fromkeys(symbols, 8.0)


class TickStream:
    """A Binance-format mark-price stream on loopback: numbered ticks broadcast to every subscribed connection.

    Tick k carries E = k ms, so landed prints say exactly which ticks arrived. `drop_after` aborts a
    connection after that many data frames; `junk` frames follow every tick.
    """

    def __init__(self, period_s: float, drop_after: int | None = None, junk: tuple = ()) -> None:
        self.period_s = period_s
        self.drop_after = drop_after
        self.junk = junk
        self.attempts: list[float] = []
        self.subscriptions: list[list[dict]] = []
        self.tick = 0
        self.junk_sent = 0
        self._subscribed: dict = {}
        self.funding_ms = (time.time_ns() // (8 * H) + 1) * 8 * H // 1_000_000

    async def handler(self, ws) -> None:
        self.attempts.append(time.monotonic())
        requests: list[dict] = []
        self.subscriptions.append(requests)
        try:
            async for text in ws:
                request = json.loads(text)
                requests.append(request)
                await ws.send(json.dumps({"result": None, "id": request["id"]}))
                self._subscribed[ws] = 0
        except ConnectionClosed:
            pass
        finally:
            self._subscribed.pop(ws, None)

    def frame(self) -> str:
        return json.dumps({
            "e": "markPriceUpdate", "E": self.tick, "s": "BTCUSDT", "p": "60000.0", "i": "60001.0",
            "P": "60000.5", "r": "0.00010000", "T": self.funding_ms,
        })  # fmt: skip

    async def broadcast(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            self.tick += 1
            for ws, sent in list(self._subscribed.items()):
                if self.drop_after is not None and sent >= self.drop_after:
                    self._subscribed.pop(ws, None)
                    ws.transport.abort()
                    continue
                self._subscribed[ws] = sent + 1
                try:
                    await ws.send(self.frame())
                    for junk in self.junk:
                        await ws.send(junk)
                        self.junk_sent += 1
                except Exception:  # noqa: BLE001 - a client gone mid-send is the client's business
                    self._subscribed.pop(ws, None)


def run_against_ticks(tmp_path, stream: TickStream, config: CollectorConfig, seconds: float, rest=None):
    async def go():
        async with serve(stream.handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            ticking = asyncio.create_task(stream.broadcast())
            collector = Collector(
                ["binance"], ["BTC"], tmp_path / "landing", api_base_url=f"http://127.0.0.1:{port}",
                config=config, rest_source=rest or NoSettledRest(), seed=11,
            )  # fmt: skip
            try:
                return collector, await collector.run(seconds)
            finally:
                ticking.cancel()

    return asyncio.run(go())


def landed_ticks(tmp_path) -> list[int]:
    prints = read_landed(tmp_path / "landing", "prints")
    live = prints.loc[prints["source"] == "ws"]
    return sorted(set((live["ts"].astype("int64") // 1_000_000).tolist()))
