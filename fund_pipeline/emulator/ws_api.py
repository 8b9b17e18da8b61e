"""The venues' funding WebSocket streams, in their real formats, from the simulated market.

Routes come from each adapter's StreamSpec: `/{venue}{route}` (subscribe by message), for binance
also `{route}/<stream>` and the combined `/binance/market/stream?streams=a/b` (each frame wrapped
in {"stream", "data"}); a venue's dead routes (Binance's retired `/ws`) accept and acknowledge
subscriptions and then deliver nothing, as the real ones do. Frames, acks, errors and pongs are
the adapters' encoders. Each connection pushes its subscribed symbols' predicted rates at the
emulator clock's now at the venue's cadence in emulator seconds (OKX every 30-90 s, Bybit every
100 ms with book-only deltas between funding changes); whole-market frames carry every listed
symbol (configured or not) and a dated contract. Venues that ping their clients (Binance) do so at
their stated interval; application pings are answered by the adapters. Coin-margined perps
(`start_emulator(inverse=True)`) stream in the same frames under their own ids: where the venue
streams them apart (`StreamSpec.separate_inverse`) only there, at `/{venue}{inverse_path}` (Bybit's
`/v5/public/inverse`; Binance COIN-M's host `dstream.binance.com` as `/binance/dstream/ws`, with its
raw and combined forms), and that route knows no linear perp nor the main route a coin-margined one
(a subscription to the other kind is refused as an unknown symbol, whole-market frames and
liquidations carry only the route's kind); else (OKX) on the one route beside the linear perps.

Liquidations: a session subscribed to the venue's liquidation channel (binance `!forceOrder@arr`, bybit
`allLiquidation.<symbol>`, okx `liquidation-orders`) is pushed the simulated liquidations
(sources/sim_liquidations) whose time passed since its previous liquidation push, at most every
LIQUIDATION_PUSH_S wall seconds, in the venue's format (the adapters' encoders).

WebSocket faults (`Faults`): 429 on the first connects, a drop (transport aborted) or silence
(data stops, pings still answered) some wall seconds into each connection, every n-th data
frame malformed / duplicated / followed by a late frame from the previous window, from
`jump_windows_at` on funding times two windows ahead of the truth, and refused subscriptions.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pandas as pd
from aiohttp import WSMsgType, web

from fund_pipeline.domain.liquidations import Liquidation, liquidation_records
from fund_pipeline.domain.records import FundingPrint
from fund_pipeline.domain.time import NS_PER_HOUR, NS_PER_SECOND
from fund_pipeline.sources.sim_liquidations import simulated_liquidations
from fund_pipeline.venues.adapter import EmulatedSession, StreamSpec, VenueAdapter
from fund_pipeline.venues.registry import WS_VENUES, adapter

# The predicted rate a venue pushes is recomputed at most this often (emulator seconds); pushes in
# between repeat it, as the venues' own funding estimates move slower than their book.
RATE_REFRESH_S = 1.0
# A clock running fast compresses the venues' cadences, but never below this many wall seconds a push.
MIN_PUSH_WALL_S = 0.1
# Liquidations are pushed at most this often (wall seconds): Bybit batches them every 500 ms, Binance every 1000 ms.
LIQUIDATION_PUSH_S = 0.5


def _spec(venue: str) -> StreamSpec:
    spec = adapter(venue).stream
    if spec is None:
        raise ValueError(f"emulator: venue {venue!r} has no WebSocket stream")
    return spec


# The perps a route streams: both kinds, or only linear or only coin-margined ones (`inverse` of `_Session`).
BOTH_KINDS = None


def add_ws_routes(app: web.Application, state: Any) -> None:
    for venue in WS_VENUES:
        if venue not in state.venues:
            continue
        spec = _spec(venue)
        routes = [(spec.route, False if spec.separate_inverse else BOTH_KINDS)]
        if spec.separate_inverse:
            routes.append((spec.inverse_path, True))
        for route, inverse in routes:
            app.router.add_get(f"/{venue}{route}", _handler(state, venue, inverse=inverse))
            if route.endswith("/ws"):  # binance: raw streams by path and combined streams by query
                app.router.add_get(f"/{venue}{route}/{{stream}}", _handler(state, venue, inverse=inverse))
                combined = route.removesuffix("/ws") + "/stream"
                app.router.add_get(f"/{venue}{combined}", _handler(state, venue, combined=True, inverse=inverse))
        for dead in spec.dead_routes:
            app.router.add_get(f"/{venue}{dead}", _handler(state, venue, dead=True, inverse=routes[0][1]))


def _handler(state: Any, venue: str, combined: bool = False, dead: bool = False, inverse: bool | None = BOTH_KINDS):
    async def handle(request: web.Request) -> web.StreamResponse:
        n = state.bump(f"ws_connect:{venue}")
        if n <= state.faults.ws_429_first_n:
            return web.Response(status=429, text="Too many requests", headers={"Retry-After": "1"})
        heartbeat = _spec(venue).server_ping_s
        ws = web.WebSocketResponse(heartbeat=heartbeat, autoping=True)
        await ws.prepare(request)
        session = _Session(state, venue, ws, combined, dead, inverse)
        streams = request.match_info.get("stream") or request.query.get("streams")
        if streams:
            refused = session.venue_adapter.subscribe_streams(streams.split("/"), session.view)
            if refused is not None:
                await ws.close(message=refused.encode())
                return ws
        await session.run(request)
        return ws

    return handle


class _Session:
    """One client connection: its subscriptions (the EmulatedSession the adapter encodes for), pushes, faults."""

    def __init__(
        self, state: Any, venue: str, ws: web.WebSocketResponse, combined: bool, dead: bool, inverse: bool | None
    ) -> None:
        self.state = state
        self.venue = venue
        self.ws = ws
        self.dead = dead
        self.inverse = inverse
        self.venue_adapter: VenueAdapter = adapter(venue)
        self.view = EmulatedSession(venue, self._known, combined)
        self.view.fail_subscriptions = {
            self.venue_adapter.venue_symbol(b) for b in state.faults.refuse_subscribe if b in state.bases
        }
        self.opened = time.monotonic()
        self._rng = random.Random(hash((venue, id(self))))
        self._rates: list[FundingPrint] = []
        self._rates_at = -1.0
        # Liquidations pushed up to this emulator time (ns); the simulated ones per hour, computed once.
        self._liquidations_until: int | None = None
        self._liquidations_pushed_at = 0.0
        self._liquidation_hours: dict[int, list[Liquidation]] = {}

    def _known(self, native: str) -> str | None:
        try:
            found = self.venue_adapter.unified_symbol(native)
        except ValueError:
            return None
        return found[0] if found is not None and found[1] in self.state.bases and self._serves(found[0]) else None

    def _serves(self, symbol: str) -> bool:
        """Whether this route streams `symbol`: a route of one kind (linear or coin-margined) only that kind's."""
        return self.inverse is BOTH_KINDS or (self.venue_adapter.inverse_perp(symbol) is not None) == self.inverse

    async def run(self, request: web.Request) -> None:
        pusher = asyncio.create_task(self._push_loop(request))
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    for reply in self.venue_adapter.serve_request(msg.data, self.view):
                        await self.ws.send_str(reply)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            pusher.cancel()
            await asyncio.gather(pusher, return_exceptions=True)

    def _period_s(self) -> float:
        """Wall seconds to the next push: the venue's cadence in emulator seconds, drawn in its range."""
        low, high = _spec(self.venue).push_every_s
        return max(self._rng.uniform(low, high) / self.state.clock.speed, MIN_PUSH_WALL_S)

    async def _push_loop(self, request: web.Request) -> None:
        faults = self.state.faults
        while not self.ws.closed:
            await asyncio.sleep(self._period_s())
            age = time.monotonic() - self.opened
            if faults.drop_after_s is not None and age >= faults.drop_after_s:
                if request.transport is not None:
                    request.transport.abort()
                return
            if self.dead or (faults.silent_after_s is not None and age >= faults.silent_after_s):
                continue
            if not self.view.symbols and not self.view.all_market:
                continue
            now = self.state.clock.now()
            for frame in self.venue_adapter.encode_prints(self._prints(now), self.view):
                n = self.state.bump(f"ws_frame:{self.venue}")
                if faults.malformed_every_n and n % faults.malformed_every_n == 0:
                    frame = frame[: len(frame) // 2]
                await self.ws.send_str(frame)
                if faults.duplicate_every_n and n % faults.duplicate_every_n == 0:
                    await self.ws.send_str(frame)
                if faults.late_every_n and n % faults.late_every_n == 0:
                    for late in self.venue_adapter.encode_prints(self._prints(now, late=True), self.view):
                        await self.ws.send_str(late)
            for frame in self._liquidation_frames(now):
                await self.ws.send_str(frame)

    def _liquidation_frames(self, now: pd.Timestamp) -> list[str]:
        """Frames of the liquidations since the last liquidation push, when the session subscribed to them."""
        view = self.view
        if self.venue_adapter.liquidation_channel is None or not (view.liquidations_all or view.liquidation_symbols):
            return []
        if time.monotonic() - self._liquidations_pushed_at < LIQUIDATION_PUSH_S:
            return []
        self._liquidations_pushed_at = time.monotonic()
        since, until = self._liquidations_until, now.value
        self._liquidations_until = until
        if since is None or until <= since:
            return []
        due = []
        for hour in range(since // NS_PER_HOUR, until // NS_PER_HOUR + 1):
            if hour not in self._liquidation_hours:
                start = pd.Timestamp(hour * NS_PER_HOUR, tz="UTC")
                frame = simulated_liquidations(self.state.market, self.venue, start, start + pd.Timedelta(hours=1))
                frame = frame[frame["base"].isin(self.state.bases) & frame["symbol"].map(self._serves)]
                self._liquidation_hours[hour] = liquidation_records(frame)
            due += [liq for liq in self._liquidation_hours[hour] if since <= liq.ts < until]
        for hour in [h for h in self._liquidation_hours if h < since // NS_PER_HOUR]:
            del self._liquidation_hours[hour]
        return self.venue_adapter.encode_liquidations(due, view)

    def _prints(self, now: pd.Timestamp, late: bool = False) -> list[FundingPrint]:
        """The predicted prints to push at `now`, refreshed at most every RATE_REFRESH_S emulator seconds."""
        if late:
            return self._frame_rates(now, late=True)
        seconds = now.value / NS_PER_SECOND
        if seconds - self._rates_at >= RATE_REFRESH_S or len(self._rates) != self._expected():
            self._rates, self._rates_at = self._frame_rates(now), seconds
        return self._rates

    def _expected(self) -> int:
        return -1 if self.view.all_market else len(self.view.symbols)

    def _frame_rates(self, now: pd.Timestamp, late: bool = False) -> list[FundingPrint]:
        market = self.state.market
        if self.view.all_market:
            symbols = [s for s in market.instruments(self.venue, now)["symbol"] if self._serves(s)]
        else:
            symbols = sorted(self.view.symbols)
        rates = market.predicted_rates(self.venue, symbols, pd.DatetimeIndex([now]))
        if late:
            # The same symbols one window back: an older funding time, i.e. a late message.
            back = now - pd.to_timedelta(rates["interval_h"], unit="h")
            rates = pd.concat(
                [
                    market.predicted_rates(self.venue, [s], pd.DatetimeIndex([t]))
                    for s, t in zip(rates["symbol"], back, strict=True)
                ],
                ignore_index=True,
            )
        jump = self.state.faults.jump_windows_at
        if jump is not None and now >= jump:
            rates = rates.assign(
                funding_time=rates["funding_time"] + pd.to_timedelta(2 * rates["interval_h"], unit="h")
            )
        return [
            FundingPrint(
                self.venue,
                symbol,
                base,
                "predicted",
                int(funding),
                int(ts),
                0,
                float(rate),
                float(interval),
                float(mark),
                float(index),
                "ws",
            )  # fmt: skip
            for symbol, base, funding, ts, rate, interval, mark, index in zip(
                rates["symbol"],
                rates["base"],
                rates["funding_time"].astype("int64"),
                rates["ts"].astype("int64"),
                rates["rate"],
                rates["interval_h"],
                rates["mark_price"],
                rates["index_price"],
                strict=True,
            )  # fmt: skip
        ]
