"""The venues' public WebSocket funding streams: URLs, subscriptions, pings, message parsing.

Every data message becomes predicted FundingPrint tuples (PRINT_COLUMNS order, times as int
nanoseconds UTC): the exchange time of the message as `ts`, the local receive time as
`received_at`. `funding_time` is the settlement the venue announces (T, nextFundingTime,
fundingTime) as sent: snapping it to the grid of an assumed interval would, when the assumption
is wrong, move it before the message itself. Values a builder cannot take (non-finite rates,
rates <= -1, intervals outside a minute..a day, times outside int64 ns, booleans for numbers)
make the frame malformed. Parsing is plain dict work, no pandas: a 300-symbol `!markPrice@arr`
frame must cost well under a millisecond per symbol. Streams by venue:

- binance  `<symbol>@markPrice@1s` / `!markPrice@arr@1s`: E (event ms), s, p (mark), i (index),
           r (rate), T (next funding ms). No interval in the message: the caller's per-symbol
           intervals, else 8h (Binance's default for symbols without a fundingInfo entry).
- bybit    v5 `tickers.<symbol>`: a snapshot then deltas holding only the changed fields; the
           parser merges them per symbol. `fundingIntervalHour` when sent.
- okx      `funding-rate`: fundingTime (next settlement), nextFundingTime, fundingRate, ts.
- hyperliquid `activeAssetCtx`: funding (hourly), markPx, oraclePx; the message has no time, so
           `ts` is the receive time and the funding time the next hour.
"""

from __future__ import annotations

import json
import math

import pandas as pd

HOUR_NS = 3_600_000_000_000
MS_NS = 1_000_000
WS_VENUES = ("binance", "bybit", "okx", "hyperliquid")

PUBLIC_WS_URLS = {
    "binance": "wss://fstream.binance.com/ws",
    "bybit": "wss://stream.bybit.com/v5/public/linear",
    "okx": "wss://ws.okx.com:8443/ws/v5/public",
    "hyperliquid": "wss://api.hyperliquid.xyz/ws",
}

# Application-level ping each venue expects, and how often (seconds). Binance pings the client
# itself (protocol pings, answered by the websockets library).
APP_PINGS: dict[str, tuple[str, float]] = {
    "bybit": ('{"op":"ping"}', 20.0),
    "okx": ("ping", 25.0),
    "hyperliquid": ('{"method":"ping"}', 50.0),
}

# Connection age limits: Binance closes a connection after 24h.
MAX_CONNECTION_AGE_S = {"binance": 24 * 3600.0}

BINANCE_ALL_MARKET = "!markPrice@arr@1s"
BINANCE_DEFAULT_INTERVAL_H = 8.0
MIN_INTERVAL_H = 1 / 60
MAX_INTERVAL_H = 24.0
MAX_MS = (2**63 - 1) // MS_NS
QUOTES = ("USDT", "USDC")


class MalformedMessage(ValueError):
    """A frame that is not valid JSON or not in the venue's format."""


class UnknownMessage(MalformedMessage):
    """Valid JSON in no shape this parser knows (new event type, error frame ...)."""


def venue_symbol(venue: str, base: str) -> str:
    """ccxt unified symbol of a base asset's linear perp on `venue`."""
    quote = "USDC" if venue == "hyperliquid" else "USDT"
    return f"{base}/{quote}:{quote}"


def native_symbol(venue: str, symbol: str) -> str:
    """ccxt unified symbol to the venue's own id: BTCUSDT, BTC-USDT-SWAP, BTC."""
    base, _, rest = symbol.partition("/")
    quote = rest.partition(":")[0]
    if venue in ("binance", "bybit"):
        return f"{base}{quote}"
    if venue == "okx":
        return f"{base}-{quote}-SWAP"
    if venue == "hyperliquid":
        return base
    raise ValueError(f"no WebSocket stream for venue {venue!r}; streams exist for {WS_VENUES}")


def unified_symbol(venue: str, native: str) -> tuple[str, str]:
    """The venue's id to (ccxt unified symbol, base)."""
    if venue == "hyperliquid":
        return f"{native}/USDC:USDC", native
    if venue == "okx":
        base, quote, _ = native.split("-", 2)
        return f"{base}/{quote}:{quote}", base
    for quote in QUOTES:
        if native.endswith(quote) and len(native) > len(quote):
            base = native[: -len(quote)]
            return f"{base}/{quote}:{quote}", base
    raise MalformedMessage(f"{venue}: symbol {native!r} has no known quote currency")


def subscribe_messages(venue: str, symbols: list[str], all_market: bool = False) -> list[str]:
    """Frames that subscribe to the funding stream of `symbols` (ccxt unified) on `venue`."""
    natives = [native_symbol(venue, s) for s in symbols]
    if venue == "binance":
        params = [BINANCE_ALL_MARKET] if all_market else [f"{n.lower()}@markPrice@1s" for n in natives]
        return [json.dumps({"method": "SUBSCRIBE", "params": params, "id": 1})]
    if venue == "bybit":
        # Bybit takes at most 10 args per subscribe request.
        return [
            json.dumps({"op": "subscribe", "req_id": f"sub{i}", "args": [f"tickers.{n}" for n in natives[i : i + 10]]})
            for i in range(0, len(natives), 10)
        ]
    if venue == "okx":
        return [json.dumps({"op": "subscribe", "args": [{"channel": "funding-rate", "instId": n} for n in natives]})]
    if venue == "hyperliquid":
        return [
            json.dumps({"method": "subscribe", "subscription": {"type": "activeAssetCtx", "coin": n}}) for n in natives
        ]
    raise ValueError(f"no WebSocket stream for venue {venue!r}; streams exist for {WS_VENUES}")


def _number(value) -> float:
    """A JSON number or decimal string as float; a bool is a wrong type, not 0 or 1."""
    if isinstance(value, bool):
        raise MalformedMessage(f"boolean {value!r} where a number belongs")
    return float(value)


def _num(value) -> float:
    """An optional price: NaN when absent."""
    if value is None or value == "":
        return math.nan
    return _number(value)


def _rate(value) -> float:
    """A usable funding rate: finite and > -1, else the frame is malformed (it must never reach a builder)."""
    rate = _number(value)
    if not (math.isfinite(rate) and rate > -1.0):
        raise MalformedMessage(f"unusable funding rate {value!r}")
    return rate


def _interval(hours: float, what: str) -> float:
    """A funding interval between a minute and a day; anything else is a broken field."""
    if not MIN_INTERVAL_H <= hours <= MAX_INTERVAL_H:
        raise MalformedMessage(f"{what}: funding interval {hours!r} h outside [{MIN_INTERVAL_H:.4f}, {MAX_INTERVAL_H}]")
    return hours


def _time_ns(value) -> int:
    """Venue epoch milliseconds (number or digit string) as int ns, within what int64 ns can hold."""
    if isinstance(value, bool):
        raise MalformedMessage(f"boolean {value!r} where a time belongs")
    ms = int(value)
    if not 0 < ms <= MAX_MS:
        raise MalformedMessage(f"time {value!r} ms is out of range")
    return ms * MS_NS


def _hour_floor(ns: int) -> int:
    return ns - ns % HOUR_NS


class StreamParser:
    """Parses one connection's frames; keeps what it needs across frames (Bybit's ticker state).

    `intervals` maps a unified symbol to its funding interval in hours, for venues whose
    messages do not carry it; the caller may update it (e.g. from REST) at any time.
    """

    def __init__(self, venue: str, intervals: dict[str, float] | None = None) -> None:
        if venue not in WS_VENUES:
            raise ValueError(f"no WebSocket stream for venue {venue!r}; streams exist for {WS_VENUES}")
        self.venue = venue
        self.intervals = intervals if intervals is not None else {}
        self.control_messages = 0
        self._tickers: dict[str, dict] = {}
        self._symbols: dict[str, tuple[str, str]] = {}
        self._parse = getattr(self, f"_parse_{venue}")

    def parse(self, raw: str | bytes, received_at_ns: int) -> list[tuple]:
        """Prints in the frame; [] for acks and pongs; MalformedMessage otherwise."""
        if raw in ("pong", b"pong"):
            self.control_messages += 1
            return []
        try:
            msg = json.loads(raw)
        except (ValueError, TypeError, RecursionError) as bad:
            raise MalformedMessage(f"{self.venue}: not JSON ({bad})") from bad
        try:
            return self._parse(msg, received_at_ns)
        except MalformedMessage:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as bad:
            raise MalformedMessage(f"{self.venue}: {type(bad).__name__}: {bad}") from bad

    def _unified(self, native: str) -> tuple[str, str]:
        if not isinstance(native, str):
            raise MalformedMessage(f"{self.venue}: symbol {native!r} is not a string")
        found = self._symbols.get(native)
        if found is None:
            found = self._symbols[native] = unified_symbol(self.venue, native)
        return found

    def _control(self) -> list[tuple]:
        self.control_messages += 1
        return []

    def _parse_binance(self, msg, received_at_ns: int) -> list[tuple]:
        if isinstance(msg, dict) and "stream" in msg and "data" in msg:
            msg = msg["data"]
        if isinstance(msg, dict):
            if msg.get("e") == "markPriceUpdate":
                return [self._binance_print(msg, received_at_ns)]
            if "result" in msg and "id" in msg:
                return self._control()
            raise UnknownMessage(f"binance: unknown message keys {sorted(msg)[:8]}")
        if isinstance(msg, list):
            return [self._binance_print(item, received_at_ns) for item in msg]
        raise UnknownMessage(f"binance: unexpected {type(msg).__name__}")

    def _binance_print(self, item: dict, received_at_ns: int) -> tuple:
        if item.get("e") != "markPriceUpdate":
            raise UnknownMessage(f"binance: unknown event {item.get('e')!r}")
        symbol, base = self._unified(item["s"])
        interval = self.intervals.get(symbol, BINANCE_DEFAULT_INTERVAL_H)
        return (
            "binance", symbol, base, "predicted", _time_ns(item["T"]), _time_ns(item["E"]), received_at_ns,
            _rate(item["r"]), interval, _num(item.get("p")), _num(item.get("i")), "ws",
        )  # fmt: skip

    def _parse_bybit(self, msg, received_at_ns: int) -> list[tuple]:
        if not isinstance(msg, dict):
            raise UnknownMessage(f"bybit: unexpected {type(msg).__name__}")
        topic = msg.get("topic")
        if topic is None:
            if msg.get("op") in ("subscribe", "ping", "pong", "unsubscribe") and "success" in msg:
                return self._control()
            raise UnknownMessage(f"bybit: unknown message keys {sorted(msg)[:8]}")
        if not topic.startswith("tickers."):
            raise UnknownMessage(f"bybit: unknown topic {topic!r}")
        data = msg["data"]
        native = data["symbol"]
        kind = msg.get("type")
        if kind == "snapshot":
            state = self._tickers[native] = dict(data)
        elif kind == "delta":
            state = self._tickers.get(native)
            if state is None:
                raise MalformedMessage(f"bybit: delta for {native} before its snapshot")
            state.update(data)
        else:
            raise UnknownMessage(f"bybit: unknown message type {kind!r}")
        symbol, base = self._unified(native)
        interval = _num(state.get("fundingIntervalHour"))
        if not interval > 0:
            interval = self.intervals.get(symbol, math.nan)
        if not interval > 0:
            raise MalformedMessage(f"bybit: no funding interval known for {symbol}")
        _interval(interval, f"bybit {symbol}")
        return [(
            "bybit", symbol, base, "predicted", _time_ns(state["nextFundingTime"]), _time_ns(msg["ts"]), received_at_ns,
            _rate(state["fundingRate"]), interval, _num(state.get("markPrice")), _num(state.get("indexPrice")), "ws",
        )]  # fmt: skip

    def _parse_okx(self, msg, received_at_ns: int) -> list[tuple]:
        if not isinstance(msg, dict):
            raise UnknownMessage(f"okx: unexpected {type(msg).__name__}")
        if "event" in msg:
            if msg["event"] == "error":
                raise UnknownMessage(f"okx: error event {msg.get('code')} {msg.get('msg')}")
            return self._control()
        arg = msg.get("arg") or {}
        if arg.get("channel") != "funding-rate" or "data" not in msg:
            raise UnknownMessage(f"okx: unknown message keys {sorted(msg)[:8]}")
        out = []
        for item in msg["data"]:
            symbol, base = self._unified(item["instId"])
            funding = _time_ns(item["fundingTime"])
            next_ms = item.get("nextFundingTime")
            interval = (_time_ns(next_ms) - funding) / HOUR_NS if next_ms else self.intervals.get(symbol, math.nan)
            if not interval > 0:
                raise MalformedMessage(f"okx: no funding interval known for {symbol}")
            _interval(interval, f"okx {symbol}")
            out.append((
                "okx", symbol, base, "predicted", funding, _time_ns(item["ts"]),
                received_at_ns, _rate(item["fundingRate"]), interval, math.nan, math.nan, "ws",
            ))  # fmt: skip
        return out

    def _parse_hyperliquid(self, msg, received_at_ns: int) -> list[tuple]:
        if not isinstance(msg, dict):
            raise UnknownMessage(f"hyperliquid: unexpected {type(msg).__name__}")
        channel = msg.get("channel")
        if channel in ("subscriptionResponse", "pong"):
            return self._control()
        if channel != "activeAssetCtx":
            raise UnknownMessage(f"hyperliquid: unknown channel {channel!r}")
        data = msg["data"]
        ctx = data["ctx"]
        symbol, base = self._unified(data["coin"])
        funding = _hour_floor(received_at_ns) + HOUR_NS
        return [(
            "hyperliquid", symbol, base, "predicted", funding, received_at_ns, received_at_ns,
            _rate(ctx["funding"]), 1.0, _num(ctx.get("markPx")), _num(ctx.get("oraclePx")), "ws",
        )]  # fmt: skip


def parse_message(venue: str, raw: str | bytes, received_at, parser: StreamParser | None = None) -> list[tuple]:
    """One frame to predicted FundingPrint tuples (PRINT_COLUMNS order, int ns times).

    `received_at` is int ns or anything pandas reads as a time. Pass the stream's `parser` to
    keep state across frames (Bybit deltas); without it each frame stands alone.
    """
    if not isinstance(received_at, int):
        received_at = pd.Timestamp(received_at).value
    return (parser or StreamParser(venue)).parse(raw, received_at)
