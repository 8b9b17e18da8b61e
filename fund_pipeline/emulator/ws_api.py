"""The venues' funding WebSocket streams, in their real formats, from the simulated market.

Routes: `/{venue}/ws` (subscribe by message), and for binance also `/binance/ws/<stream>` and
`/binance/stream?streams=a/b` (combined: each frame wrapped in {"stream", "data"}).
Each connection pushes the predicted rates of its subscribed symbols at the emulator clock's
now, every PUSH_SECONDS (wall) — the clock may run fast. Pings follow each venue: binance
pings the client (protocol ping), bybit answers `{"op":"ping"}`, okx answers text "ping" with
"pong", hyperliquid answers `{"method":"ping"}` with `{"channel":"pong"}`.

WebSocket faults (`Faults`): 429 on the first connects, a drop (transport aborted) or silence
(data stops, pings still answered) some wall seconds into each connection, every n-th data
frame malformed / duplicated / followed by a late frame from the previous window, and from
`jump_windows_at` on, funding times two windows ahead of the truth.
"""

from __future__ import annotations

import asyncio
import json
import math
import time

import pandas as pd
from aiohttp import WSMsgType, web

from fund_pipeline.venues.streams import WS_VENUES, native_symbol, unified_symbol

PUSH_SECONDS = {"binance": 1.0, "bybit": 0.5, "okx": 1.0, "hyperliquid": 1.0}
BINANCE_PING_SECONDS = 180.0
MS = 1_000_000
HOUR_NS = 3_600_000_000_000


def add_ws_routes(app: web.Application, state) -> None:
    for venue in WS_VENUES:
        if venue in state.venues:
            app.router.add_get(f"/{venue}/ws", _handler(state, venue))
    if "binance" in state.venues:
        app.router.add_get("/binance/ws/{stream}", _handler(state, "binance"))
        app.router.add_get("/binance/stream", _handler(state, "binance", combined=True))


def _handler(state, venue: str, combined: bool = False):
    async def handle(request: web.Request) -> web.StreamResponse:
        n = state.bump(f"ws_connect:{venue}")
        if n <= state.faults.ws_429_first_n:
            return web.Response(status=429, text="Too many requests", headers={"Retry-After": "1"})
        heartbeat = BINANCE_PING_SECONDS if venue == "binance" else None
        ws = web.WebSocketResponse(heartbeat=heartbeat, autoping=True)
        await ws.prepare(request)
        session = _Session(state, venue, ws, combined)
        streams = request.match_info.get("stream") or request.query.get("streams")
        if streams:
            session.subscribe_binance(streams.split("/"))
        await session.run(request)
        return ws

    return handle


class _Session:
    """One client connection: its subscriptions, its push loop, its faults."""

    def __init__(self, state, venue: str, ws: web.WebSocketResponse, combined: bool) -> None:
        self.state = state
        self.venue = venue
        self.ws = ws
        self.combined = combined
        self.symbols: dict[str, str] = {}  # unified -> binance stream name (or native id)
        self.all_market = False
        self.sent_tickers: dict[str, dict] = {}
        self.opened = time.monotonic()

    # ------------------------------------------------------------ subscriptions and pings

    def _known(self, native: str) -> str | None:
        try:
            symbol, base = unified_symbol(self.venue, native)
        except ValueError:
            return None
        return symbol if base in self.state.bases else None

    def subscribe_binance(self, streams: list[str]) -> None:
        for stream in streams:
            if stream.startswith("!markPrice@arr"):
                self.all_market = True
                continue
            native = stream.split("@", 1)[0].upper()
            symbol = self._known(native)
            if symbol is not None and "@markPrice" in stream:
                self.symbols[symbol] = stream

    async def on_text(self, text: str) -> None:
        if self.venue == "okx" and text == "ping":
            await self.ws.send_str("pong")
            return
        try:
            msg = json.loads(text)
        except ValueError:
            await self._error(f"invalid request: {text[:64]!r}")
            return
        if self.venue == "binance":
            if msg.get("method") == "SUBSCRIBE":
                self.subscribe_binance(list(msg.get("params", [])))
                await self.ws.send_str(json.dumps({"result": None, "id": msg.get("id")}))
            else:
                await self._error("Invalid request", msg.get("id"))
        elif self.venue == "bybit":
            op = msg.get("op")
            if op == "ping":
                await self.ws.send_json(
                    {
                        "success": True,
                        "ret_msg": "pong",
                        "conn_id": "emu",
                        "req_id": msg.get("req_id", ""),
                        "op": "ping",
                    }
                )
            elif op == "subscribe":
                bad = []
                for arg in msg.get("args", []):
                    symbol = self._known(arg.removeprefix("tickers.")) if arg.startswith("tickers.") else None
                    if symbol is None:
                        bad.append(arg)
                    else:
                        self.symbols[symbol] = arg
                await self.ws.send_json(
                    {
                        "success": not bad,
                        "ret_msg": f"Invalid symbol :{bad}" if bad else "",
                        "conn_id": "emu",
                        "req_id": msg.get("req_id", ""),
                        "op": "subscribe",
                    }
                )
            else:
                await self._error(f"unknown op {op!r}")
        elif self.venue == "okx":
            if msg.get("op") != "subscribe":
                await self._error(f"unknown op {msg.get('op')!r}")
                return
            for arg in msg.get("args", []):
                symbol = self._known(arg.get("instId", "")) if arg.get("channel") == "funding-rate" else None
                if symbol is None:
                    await self.ws.send_json(
                        {"event": "error", "code": "60018", "msg": f"Wrong URL or channel:{arg}", "connId": "emu"}
                    )
                else:
                    self.symbols[symbol] = arg["instId"]
                    await self.ws.send_json({"event": "subscribe", "arg": arg, "connId": "emu"})
        else:
            method = msg.get("method")
            if method == "ping":
                await self.ws.send_json({"channel": "pong"})
            elif method == "subscribe" and msg.get("subscription", {}).get("type") == "activeAssetCtx":
                symbol = self._known(msg["subscription"].get("coin", ""))
                if symbol is None:
                    await self.ws.send_json({"channel": "error", "data": f"Invalid subscription {text}"})
                else:
                    self.symbols[symbol] = msg["subscription"]["coin"]
                    await self.ws.send_json({"channel": "subscriptionResponse", "data": msg})
            else:
                await self.ws.send_json({"channel": "error", "data": f"Invalid request {text}"})

    async def _error(self, message: str, req_id=None) -> None:
        if self.venue == "binance":
            await self.ws.send_json({"error": {"code": 2, "msg": message}, "id": req_id})
        elif self.venue == "bybit":
            await self.ws.send_json({"success": False, "ret_msg": message, "conn_id": "emu", "op": ""})
        elif self.venue == "okx":
            await self.ws.send_json({"event": "error", "code": "60012", "msg": message, "connId": "emu"})
        else:
            await self.ws.send_json({"channel": "error", "data": message})

    # ------------------------------------------------------------ data

    async def run(self, request: web.Request) -> None:
        pusher = asyncio.create_task(self._push_loop(request))
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.TEXT:
                    await self.on_text(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            pusher.cancel()
            await asyncio.gather(pusher, return_exceptions=True)

    async def _push_loop(self, request: web.Request) -> None:
        faults = self.state.faults
        period = PUSH_SECONDS[self.venue]
        while not self.ws.closed:
            await asyncio.sleep(period)
            age = time.monotonic() - self.opened
            if faults.drop_after_s is not None and age >= faults.drop_after_s:
                if request.transport is not None:
                    request.transport.abort()
                return
            if faults.silent_after_s is not None and age >= faults.silent_after_s:
                continue
            if not self.symbols and not self.all_market:
                continue
            for frame in self._frames(self.state.clock.now()):
                n = self.state.bump(f"ws_frame:{self.venue}")
                if faults.malformed_every_n and n % faults.malformed_every_n == 0:
                    frame = frame[: len(frame) // 2]
                await self.ws.send_str(frame)
                if faults.duplicate_every_n and n % faults.duplicate_every_n == 0:
                    await self.ws.send_str(frame)
                if faults.late_every_n and n % faults.late_every_n == 0:
                    for late in self._frames(self.state.clock.now(), late=True):
                        await self.ws.send_str(late)

    def _rates(self, now: pd.Timestamp, late: bool) -> pd.DataFrame:
        symbols = None if self.all_market else sorted(self.symbols)
        if self.all_market:
            listed = self.state.market.instruments(self.venue, now)
            symbols = [s for s, b in zip(listed["symbol"], listed["base"]) if b in self.state.bases]
        rates = self.state.market.predicted_rates(self.venue, symbols, pd.DatetimeIndex([now]))
        if late:
            # The same symbols one window back: an older funding time, i.e. a late message.
            back = now - pd.to_timedelta(rates["interval_h"], unit="h")
            rates = pd.concat(
                [
                    self.state.market.predicted_rates(self.venue, [s], pd.DatetimeIndex([t]))
                    for s, t in zip(rates["symbol"], back)
                ],
                ignore_index=True,
            )
        jump = self.state.faults.jump_windows_at
        if jump is not None and now >= jump:
            rates = rates.assign(
                funding_time=rates["funding_time"] + pd.to_timedelta(2 * rates["interval_h"], unit="h")
            )
        return rates

    def _frames(self, now: pd.Timestamp, late: bool = False) -> list[str]:
        rates = self._rates(now, late)
        rows = list(
            zip(
                rates["symbol"],
                rates["funding_time"].astype("int64") // MS,
                rates["ts"].astype("int64") // MS,
                rates["rate"],
                rates["interval_h"],
                rates["mark_price"],
                rates["index_price"],
            )
        )
        return getattr(self, f"_frames_{self.venue}")(rows, int(now.value // MS))

    def _frames_binance(self, rows, now_ms: int) -> list[str]:
        def event(symbol, funding_ms, ts_ms, rate, _interval, mark, index):
            return {
                "e": "markPriceUpdate", "E": int(ts_ms), "s": native_symbol("binance", symbol), "p": _num(mark),
                "P": _num(index), "i": _num(index), "r": _num(rate), "T": int(funding_ms),
            }  # fmt: skip

        frames = []
        if self.all_market:
            payload = [event(*row) for row in rows]
            frames.append(self._wrap("!markPrice@arr@1s", payload))
        else:
            for row in rows:
                frames.append(self._wrap(self.symbols[row[0]], event(*row)))
        return frames

    def _wrap(self, stream: str, payload) -> str:
        return json.dumps({"stream": stream, "data": payload} if self.combined else payload)

    def _frames_bybit(self, rows, now_ms: int) -> list[str]:
        frames = []
        for symbol, funding_ms, ts_ms, rate, interval, mark, index in rows:
            native = native_symbol("bybit", symbol)
            ticker = {
                "symbol": native, "markPrice": _num(mark), "indexPrice": _num(index), "fundingRate": _num(rate),
                "nextFundingTime": str(int(funding_ms)), "fundingIntervalHour": str(int(interval)),
            }  # fmt: skip
            sent = self.sent_tickers.get(native)
            if sent is None:
                kind, data = "snapshot", ticker
            else:
                kind = "delta"
                data = {"symbol": native} | {k: v for k, v in ticker.items() if sent.get(k) != v}
            self.sent_tickers[native] = ticker
            frames.append(
                json.dumps({"topic": f"tickers.{native}", "type": kind, "data": data, "cs": now_ms, "ts": int(ts_ms)})
            )
        return frames

    def _frames_okx(self, rows, now_ms: int) -> list[str]:
        frames = []
        for symbol, funding_ms, ts_ms, rate, interval, _mark, _index in rows:
            native = native_symbol("okx", symbol)
            item = {
                "formulaType": "withRate", "fundingRate": _num(rate), "fundingTime": str(int(funding_ms)),
                "impactValue": "", "instId": native, "instType": "SWAP", "interestRate": "0.0001",
                "method": "current_period", "nextFundingRate": "", "premium": "",
                "nextFundingTime": str(int(funding_ms + interval * 3_600_000)), "settState": "settled",
                "settFundingRate": "", "ts": str(int(ts_ms)),
            }  # fmt: skip
            frames.append(json.dumps({"arg": {"channel": "funding-rate", "instId": native}, "data": [item]}))
        return frames

    def _frames_hyperliquid(self, rows, now_ms: int) -> list[str]:
        frames = []
        for symbol, _funding_ms, _ts_ms, rate, _interval, mark, index in rows:
            ctx = {
                "funding": _num(rate),
                "markPx": _num(mark),
                "oraclePx": _num(index),
                "midPx": _num(mark),
                "premium": "0.0",
                "impactPxs": [_num(mark), _num(mark)],
            }
            frames.append(
                json.dumps(
                    {"channel": "activeAssetCtx", "data": {"coin": native_symbol("hyperliquid", symbol), "ctx": ctx}}
                )
            )
        return frames


def _num(value: float) -> str:
    value = float(value)
    return "" if math.isnan(value) else repr(value)
