"""Bybit v5 linear perpetuals: symbols, REST mapping onto ccxt, the `tickers` stream, its wire format.

Intervals: each instrument lists `fundingInterval` (minutes); the ticker stream carries
`fundingIntervalHour`. The `tickers.<symbol>` topic sends a snapshot, then every 100 ms a delta
holding only the changed fields (often only the book: bid1Price, ask1Price ...); the parser merges
them per symbol and emits a print only when a funding field (rate, next funding time, interval,
mark, index) changed. At most 10 topics per subscribe request; a refused subscribe answers
`success: false` with the bad topics in `ret_msg`. The client pings `{"op":"ping"}` every 20 s.
REST: 600 requests per 5 s per IP; past it the gateway answers 403 "access too frequent".

Liquidations ("All Liquidation", `allLiquidation.<symbol>`, one topic per symbol, pushed every 500 ms):
`data` is a list of {T (ms), s, S, v (executed size), p (price)}; `S` is the POSITION's side ("When you
receive a Buy update, this means that a long position has been liquidated"); `v` is base coins on
linear contracts, contracts of 1 USD on inverse ones. Bybit has no public REST history of liquidations.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fund_pipeline.domain.liquidations import LONG, SHORT, Liquidation, sized
from fund_pipeline.domain.predicted import FundingFormula, Weighting
from fund_pipeline.domain.records import FundingPrint
from fund_pipeline.venues.adapter import (
    MINUTE_MS,
    EmulatedSession,
    InversePerp,
    ParseContext,
    PremiumHistory,
    PremiumSample,
    RateLimit,
    RestSpec,
    StreamSpec,
    VenueAdapter,
    VenueFacts,
)
from fund_pipeline.venues.wire import (
    MalformedMessage,
    UnknownMessage,
    collect_items,
    emit_number,
    funding_rate,
    interval_hours,
    liquidated_side,
    optional_price,
    positive,
    premium_list,
    premium_sample,
    split_linear,
    time_ns,
    unified,
    wanted,
)

QUOTES = ("USDT", "USDC")
# Inverse perpetuals are `<BASE>USD`, margined in the base coin.
INVERSE_QUOTE = "USD"
# Ticker fields a print is made of: a delta changing none of them is book traffic, not funding.
FUNDING_FIELDS = ("fundingRate", "nextFundingTime", "fundingIntervalHour", "markPrice", "indexPrice")
LIQUIDATION_TOPIC = "allLiquidation"
# allLiquidation's `S` is the liquidated position's side.
POSITION_SIDES = {"Buy": LONG, "Sell": SHORT}


class BybitAdapter(VenueAdapter):
    # Funding (help centre, "Introduction to Funding Rate"): the premium index every minute, averaged with
    # weights 1, 2, ..., 60·N over an N-hour window (480 per 8h), F = P + clamp(I - P, 0.05 %, -0.05 %) with P
    # that N-hour average as it is and I = 0.03 % / (24 / N): only the interest is scaled to the interval. Capped
    # per symbol (instruments-info `upperFundingRate`, `lowerFundingRate`); 2 % where an instrument lists none.
    facts = VenueFacts(
        "bybit",
        funding=FundingFormula(
            0.0001, 0.0005, cap=0.02, weighting=Weighting.LINEAR, premium_scaled=False, sample_step_s=60.0
        ),
    )
    rest = RestSpec(
        "bybit",
        {"defaultType": "swap", "fetchMarkets": {"types": ["spot", "linear"]}, "fetchCurrencies": False},
        funding_page=200,
        ohlcv_page=1000,
        oi_page=200,
        has_spot=True,
        has_mark_index=True,
        rate_limits=(RateLimit("ip", 600, 5.0),),
        ban_status=403,
        premium=PremiumHistory(
            "publicGetV5MarketPremiumIndexPriceKline", "/v5/market/premium-index-price-kline", 1000, MINUTE_MS
        ),
        inverse_market_types=("inverse",),
    )
    # Inverse perpetuals (category=inverse): one contract is 1 USD.
    inverse_perps = (InversePerp("BTC", 1.0), InversePerp("ETH", 1.0))
    liquidation_channel = LIQUIDATION_TOPIC
    stream = StreamSpec(
        url="wss://stream.bybit.com",
        route="/v5/public/linear",
        inverse_route="/v5/public/inverse",
        app_ping=('{"op":"ping"}', 20.0),
        push_every_s=(0.1, 0.1),
        subscribe_batch=10,
    )

    def native_symbol(self, symbol: str) -> str:
        base, _, rest = symbol.partition("/")
        return base + rest.partition(":")[0]

    def unified_symbol(self, native: str) -> tuple[str, str] | None:
        if "-" in native:  # dated futures: BTCUSDT-26DEC25
            return None
        found = split_linear(native, QUOTES)
        if found is None and native.endswith(INVERSE_QUOTE) and len(native) > len(INVERSE_QUOTE):
            base = native.removesuffix(INVERSE_QUOTE)
            return f"{base}/USD:{base}", base
        if found is None:
            raise MalformedMessage(f"bybit: symbol {native!r} has no known quote currency")
        return found

    def rest_interval_h(self, market: dict[str, Any], call: Any) -> float:
        minutes = (market.get("info") or {}).get("fundingInterval")
        if not minutes:
            raise MalformedMessage(f"bybit: instrument {market.get('id')} lists no fundingInterval")
        return float(minutes) / 60.0

    def rest_funding_formulas(self, markets: dict[str, dict[str, Any]], call: Any) -> dict[str, FundingFormula]:
        """Each instrument's `upperFundingRate` and `lowerFundingRate` (instruments-info, in ccxt's market `info`)."""
        return {symbol: self._bounded(symbol, market.get("info") or {}) for symbol, market in markets.items()}

    def _bounded(self, symbol: str, info: dict[str, Any]) -> FundingFormula:
        formula = self.funding_formula(symbol)
        upper: Any = info.get("upperFundingRate")
        lower: Any = info.get("lowerFundingRate")
        if upper in (None, "") and lower in (None, ""):
            return formula
        try:
            cap, floor = float(upper), float(lower)
        except (TypeError, ValueError) as bad:
            raise MalformedMessage(f"bybit: instrument {symbol} lists funding bounds {upper!r}/{lower!r}") from bad
        if not (0 < cap < math.inf and -math.inf < floor < cap):
            raise MalformedMessage(f"bybit: instrument {symbol} lists unusable funding bounds {upper!r}/{lower!r}")
        return formula.bounded(cap, floor)

    def premium_params(self, symbol: str, lo_ms: int, hi_ms: int, limit: int) -> dict[str, Any]:
        """One-minute candles closing in [lo, hi): start times from lo - 59,999 to hi - 60,000 (both inclusive)."""
        return {
            "category": "linear",
            "symbol": self.native_symbol(symbol),
            "interval": "1",
            "start": lo_ms - MINUTE_MS + 1,
            "end": hi_ms - MINUTE_MS,
            "limit": limit,
        }

    def premium_rows(self, response: Any) -> list[PremiumSample]:
        """`result.list` of [startTime, open, high, low, close] strings, newest first: the close, known when the
        minute ends (startTime + 59,999 ms)."""
        what = "bybit premium-index-price-kline"
        result = response.get("result") if isinstance(response, dict) else None
        rows = premium_list(result.get("list") if isinstance(result, dict) else None, what)
        bad = next((row for row in rows if not (isinstance(row, list) and len(row) >= 5)), None)
        if bad is not None:
            raise MalformedMessage(f"{what}: row {bad!r} is not a candle array")
        opened = [premium_sample(row[0], row[4], what) for row in rows]
        return [PremiumSample(s.known_ms + MINUTE_MS - 1, s.premium) for s in opened]

    # ------------------------------------------------------------ WebSocket: client

    def subscribe_messages(self, symbols: list[str], all_market: bool = False) -> list[str]:
        topics = [f"tickers.{self.native_symbol(s)}" for s in symbols]
        batch = self.stream.subscribe_batch if self.stream else len(topics)
        return [
            json.dumps({"op": "subscribe", "req_id": f"sub{i // batch}", "args": topics[i : i + batch]})
            for i in range(0, len(topics), batch)
        ]

    def parse(self, msg: Any, received_at_ns: int, ctx: ParseContext) -> list[FundingPrint]:
        if not isinstance(msg, dict):
            raise UnknownMessage(f"bybit: unexpected {type(msg).__name__}")
        topic = msg.get("topic")
        if topic is None:
            if msg.get("op") in ("subscribe", "ping", "pong", "unsubscribe") and "success" in msg:
                if msg.get("op") == "subscribe" and msg.get("success") is False:
                    ctx.failed_subscriptions.append(f"{msg.get('req_id', '')}: {msg.get('ret_msg', '')}")
                return ctx.control()
            raise UnknownMessage(f"bybit: unknown message keys {sorted(msg)[:8]}")
        if topic.startswith(LIQUIDATION_TOPIC + "."):
            if not isinstance(msg.get("data"), list):
                raise MalformedMessage(f"bybit: {topic} data is not a list")
            ctx.liquidations.extend(collect_items(msg["data"], ctx, self._liquidation, received_at_ns))
            return []
        if not topic.startswith("tickers."):
            raise UnknownMessage(f"bybit: unknown topic {topic!r}")
        data = msg["data"]
        native = data["symbol"]
        kind = msg.get("type")
        if kind == "snapshot":
            state = ctx.state[native] = dict(data)
        elif kind == "delta":
            if native not in ctx.state:
                raise MalformedMessage(f"bybit: delta for {native} before its snapshot")
            state = ctx.state[native]
            if not any(k in data for k in FUNDING_FIELDS):
                state.update(data)
                ctx.skip("book_only_delta")
                return []
            state.update(data)
        else:
            raise UnknownMessage(f"bybit: unknown message type {kind!r}")
        found = unified(self, ctx, native)
        if not wanted(ctx, found):
            return []
        assert found is not None
        symbol, base = found
        interval = optional_price(state.get("fundingIntervalHour"))
        if not interval > 0:
            interval = ctx.intervals.get(symbol, math.nan)
        if not interval > 0:
            raise MalformedMessage(f"bybit: no funding interval known for {symbol}")
        interval_hours(interval, f"bybit {symbol}")
        return [FundingPrint(
            "bybit", symbol, base, "predicted", time_ns(state["nextFundingTime"]), time_ns(msg["ts"]), received_at_ns,
            funding_rate(state["fundingRate"]), interval, optional_price(state.get("markPrice")),
            optional_price(state.get("indexPrice")), "ws",
        )]  # fmt: skip

    # ------------------------------------------------------------ WebSocket: the emulator's side

    def encode_prints(self, prints: list[FundingPrint], session: EmulatedSession) -> list[str]:
        """A snapshot per symbol first, then deltas of the changed fields; unchanged funding → a book-only delta."""
        frames = []
        for p in prints:
            if p.symbol not in session.symbols:
                continue
            native = self.native_symbol(p.symbol)
            sent = session.sent.get(native)
            book = repr(float(sent["bid1Size"]) % 9 + 1.0) if sent else "1.0"
            mark = emit_number(p.mark_price)
            ticker = {
                "symbol": native, "tickDirection": "ZeroPlusTick", "price24hPcnt": "0", "lastPrice": mark,
                "prevPrice24h": mark, "highPrice24h": mark, "lowPrice24h": mark, "prevPrice1h": mark,
                "markPrice": mark, "indexPrice": emit_number(p.index_price), "openInterest": "0",
                "openInterestValue": "0", "turnover24h": "0", "volume24h": "0",
                "nextFundingTime": str(p.funding_time // 1_000_000), "fundingRate": emit_number(p.rate),
                "fundingIntervalHour": str(int(p.interval_h)), "bid1Price": mark, "bid1Size": book,
                "ask1Price": mark, "ask1Size": "1.0",
            }  # fmt: skip
            if sent is None:
                kind, data = "snapshot", ticker
            else:
                kind = "delta"
                data = {"symbol": native} | {k: v for k, v in ticker.items() if sent.get(k) != v}
            session.sent[native] = ticker
            ms = p.ts // 1_000_000
            frames.append(json.dumps({"topic": f"tickers.{native}", "type": kind, "data": data, "cs": ms, "ts": ms}))
        return frames

    def serve_request(self, text: str, session: EmulatedSession) -> list[str]:
        try:
            msg = json.loads(text)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            return [json.dumps({"success": False, "ret_msg": f"invalid request: {text[:64]!r}", "conn_id": "emu"})]
        op = msg.get("op")
        reply = {"conn_id": "emu", "req_id": msg.get("req_id", ""), "op": op}
        if op == "ping":
            return [json.dumps({"success": True, "ret_msg": "pong", **reply})]
        if op != "subscribe":
            return [json.dumps({"success": False, "ret_msg": f"unknown op {op!r}", **reply})]
        bad = []
        for arg in msg.get("args", []):
            channel, _, native = str(arg).partition(".")
            symbol = session.known(native) if channel in ("tickers", LIQUIDATION_TOPIC) else None
            if symbol is None or (channel == "tickers" and symbol in session.fail_subscriptions):
                bad.append(arg)
            else:
                (session.symbols if channel == "tickers" else session.liquidation_symbols)[symbol] = arg
        return [json.dumps({"success": not bad, "ret_msg": f"Invalid symbol :{bad}" if bad else "", **reply})]

    def error_body(self, status: int, message: str, code: str | None) -> dict[str, Any] | None:
        if status == 403:  # the gateway's ban answers plain text
            return None
        return {
            "retCode": int(code or (10006 if status == 429 else 10001)),
            "retMsg": message,
            "result": {},
            "retExtInfo": {},
            "time": 0,
        }

    # ------------------------------------------------------------ liquidations

    def liquidation_subscribe_messages(self, symbols: list[str]) -> list[str]:
        topics = [f"{LIQUIDATION_TOPIC}.{self.native_symbol(s)}" for s in symbols]
        batch = self.stream.subscribe_batch if self.stream else len(topics)
        return [
            json.dumps({"op": "subscribe", "req_id": f"liq{i // batch}", "args": topics[i : i + batch]})
            for i in range(0, len(topics), batch)
        ]

    def _liquidation(self, item: Any, received_at_ns: int, ctx: ParseContext) -> list[Liquidation]:
        found = unified(self, ctx, item["s"])
        if not wanted(ctx, found):
            return []
        assert found is not None
        symbol, base = found
        what = f"bybit allLiquidation {symbol}"
        price = positive(item["p"], f"{what} price")
        size = sized(symbol, positive(item["v"], f"{what} size"), self.terms(symbol).contract_size, price)
        side = liquidated_side(item["S"], POSITION_SIDES, what)
        return [Liquidation("bybit", symbol, base, time_ns(item["T"]), received_at_ns, side, price, size.quantity,
                            size.notional_usd, "ws")]  # fmt: skip

    def encode_liquidations(self, liquidations: list[Liquidation], session: EmulatedSession) -> list[str]:
        """One snapshot frame per symbol with its liquidations, as the 500 ms push batches them."""
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for liq in liquidations:
            topic = session.liquidation_symbols.get(liq.symbol)
            if topic is None:
                continue
            inverse = self.inverse_perp(liq.symbol)
            size = liq.quantity if inverse is None else liq.notional_usd / inverse.contract_usd
            by_topic.setdefault(topic, []).append(
                {
                    "T": liq.ts // 1_000_000,
                    "s": self.native_symbol(liq.symbol),
                    "S": "Buy" if liq.side == LONG else "Sell",
                    "v": emit_number(size),
                    "p": emit_number(liq.price),
                }
            )
        return [
            json.dumps({"topic": topic, "type": "snapshot", "ts": max(i["T"] for i in items), "data": items})
            for topic, items in by_topic.items()
        ]


ADAPTER = BybitAdapter()
