"""Binance USDⓈ-M futures: symbols, REST mapping onto ccxt, the mark-price stream, its wire format.

Intervals: Binance's `fundingInfo` lists only symbols with non-default funding settings; a symbol
absent from a successfully loaded list settles every 8h (Binance's documented default). When the
list could not be loaded the interval is unknown, and prints are quarantined, never labelled 8h.

Streams (2026): USDⓈ-M WebSocket base URLs are split by traffic (notice of 2026-03-06, legacy URLs
retired 2026-04-23): mark-price streams under `wss://fstream.binance.com/market/...`; the legacy
`/ws` still accepts a SUBSCRIBE and acknowledges it, then delivers nothing. `<symbol>@markPrice@1s`
pushes every second, `!markPrice@arr@1s` one frame with every USD-M contract (dated futures
`BTCUSDT_YYMMDD` included, with an empty `r` and `T` 0). 200 streams per connection; the server
pings, the client's protocol pongs answer; connections close after 24h. Fields: E (event ms),
s, p (mark), i (index), P (estimated settle), r (rate), T (next funding ms).

Liquidations ("Liquidation Order Streams"): `!forceOrder@arr` on the same market-data base URL pushes
a `forceOrder` event per liquidated contract, at most the latest one per symbol each 1000 ms: `o.S`
is the liquidation ORDER's side (SELL closes a long), `o.ap` the average fill price, `o.z` the filled
quantity (base coins on USDⓈ-M, contracts of `contractSize` USD on COIN-M), `o.T` the trade time.
The REST history `GET /fapi/v1/allForceOrders` is retired: the stream is the only source.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fund_pipeline.domain.liquidations import LONG, SHORT, Liquidation, sized
from fund_pipeline.domain.predicted import FundingFormula, Weighting
from fund_pipeline.domain.records import FundingPrint
from fund_pipeline.domain.time import MAX_EPOCH_MS, NS_PER_MS
from fund_pipeline.venues.adapter import (
    MINUTE_MS,
    EmulatedSession,
    HistoryDepth,
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
    emit_number,
    funding_rate,
    known_interval,
    liquidated_side,
    optional_price,
    parse_items,
    positive,
    premium_list,
    premium_sample,
    split_linear,
    time_ns,
    unified,
    wanted,
)

ALL_MARKET = "!markPrice@arr@1s"
ALL_LIQUIDATIONS = "!forceOrder@arr"
# The id of the liquidation SUBSCRIBE, apart from the funding ones (1, 2, ...).
LIQUIDATION_REQUEST_ID = 1_000_001
# forceOrder's `S` is the order's side: a SELL closes (liquidates) a long.
ORDER_SIDES = {"SELL": LONG, "BUY": SHORT}
_UNSEEN: Any = object()


def _ms(value: Any) -> int:
    """Epoch ms as int ns; an int in range is the common case, the rest goes through the full check."""
    if type(value) is int and 0 < value <= MAX_EPOCH_MS:
        return value * NS_PER_MS
    return time_ns(value)


def _price(value: Any) -> float:
    return float(value) if type(value) is str and value else optional_price(value)


# "Get Funding Rate Info" (USDⓈ-M `/fapi/v1/fundingInfo`, COIN-M `/dapi/v1/fundingInfo`): only the symbols whose
# cap, floor or interval Binance adjusted, as {symbol, adjustedFundingRateCap, adjustedFundingRateFloor,
# fundingIntervalHours, disclaimer}; ccxt's implicit methods by margin.
FUNDING_INFO_METHODS = {"linear": "fapiPublicGetFundingInfo", "inverse": "dapiPublicGetFundingInfo"}


def funding_info_bounds(rows: Any) -> dict[str, tuple[float, float]]:
    """(cap, floor) per native symbol of a fundingInfo response; MalformedMessage naming a row that has none."""
    if not isinstance(rows, list):
        raise MalformedMessage(f"binance fundingInfo: expected a list, got {type(rows).__name__}")
    bounds = {}
    for row in rows:
        try:
            symbol, cap, floor = (
                row["symbol"],
                float(row["adjustedFundingRateCap"]),
                float(row["adjustedFundingRateFloor"]),
            )
        except (TypeError, KeyError, ValueError) as bad:
            raise MalformedMessage(f"binance fundingInfo: row {row!r} has no cap and floor ({bad!r})") from bad
        if not (isinstance(symbol, str) and 0 < cap < math.inf and -math.inf < floor < cap):
            raise MalformedMessage(f"binance fundingInfo: row {row!r} has no usable cap and floor")
        bounds[symbol] = (cap, floor)
    return bounds


QUOTES = ("USDT", "USDC")
# COIN-M perpetuals are `<BASE>USD_PERP`; any other `_` suffix is a dated future.
COIN_M_PERP_SUFFIX = "USD_PERP"


class BinanceAdapter(VenueAdapter):
    # Funding (help centre, "Introduction to Binance Futures Funding Rates", and its notices): the premium index
    # every 5 s, its time-weighted average (1·P1 + 2·P2 + ... + n·Pn) / (1 + 2 + ... + n) over the window (5,760
    # points per 8h; a 1-hour window averages uniformly), F = [P + clamp(I - P, 0.05 %, -0.05 %)] / (8 / N) with I
    # the 8h interest (0.01 %): on an N-hour interval the whole 8h formula is scaled, clamp included. Capped per
    # symbol (`fundingInfo`); 0.75 % where it lists no cap of its own.
    facts = VenueFacts(
        "binance",
        funding=FundingFormula(
            0.0001,
            0.0005,
            cap=0.0075,
            weighting=Weighting.LINEAR,
            clamp_scaled=True,
            sample_step_s=5.0,
            uniform_up_to_h=1.0,
        ),
    )
    rest = RestSpec(
        "binance",
        {
            "defaultType": "swap",
            "fetchMarkets": {"types": ["spot", "linear"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
        },
        funding_page=1000,
        ohlcv_page=1000,
        oi_page=500,
        has_spot=True,
        has_mark_index=True,
        rate_limits=(
            # /fapi/v1/fundingRate shares 500 requests per 5 minutes per IP with /fapi/v1/fundingInfo.
            RateLimit(
                "fundingRate+fundingInfo",
                500,
                300.0,
                methods=("fetch_funding_rate_history", "fapiPublicGetFundingInfo"),
                paths=("/fapi/v1/fundingRate", "/fapi/v1/fundingInfo"),
            ),
            # Every /fapi request counts against 2,400 weight per minute per IP (klines weigh up to 10).
            RateLimit("fapi request weight", 2400, 60.0, paths=("/fapi/", "/futures/"), weight=5.0),
        ),
        history=(HistoryDepth("fetch_open_interest_history", "/futures/data/openInterestHist", days=30),),
        ban_status=418,
        # "Premium index Kline Data": 1,000 one-minute klines weigh 5 (the request weight above).
        premium=PremiumHistory(
            "fapiPublicGetPremiumIndexKlines",
            "/fapi/v1/premiumIndexKlines",
            1000,
            MINUTE_MS,
            inverse_method="dapiPublicGetPremiumIndexKlines",
        ),
        inverse_market_types=("inverse",),
        inverse_oi_value="coin",
    )
    # COIN-M perpetuals (dapi), contract sizes as exchangeInfo's `contractSize` states them.
    inverse_perps = (InversePerp("BTC", 100.0), InversePerp("ETH", 10.0))
    liquidation_channel = ALL_LIQUIDATIONS
    stream = StreamSpec(
        url="wss://fstream.binance.com",
        route="/market/ws",
        dead_routes=("/ws",),
        # COIN-M ("Websocket Market Streams"): wss://dstream.binance.com, raw streams at /ws, combined at /stream.
        inverse_url="wss://dstream.binance.com",
        inverse_route="/ws",
        server_ping_s=180.0,
        max_connection_age_s=24 * 3600.0,
        push_every_s=(1.0, 1.0),
        streams_per_connection=200,
        subscribe_batch=200,
    )

    def native_symbol(self, symbol: str) -> str:
        inverse = self.inverse_perp(symbol)
        if inverse is not None:
            return inverse.base + COIN_M_PERP_SUFFIX
        base, _, rest = symbol.partition("/")
        return base + rest.partition(":")[0]

    def unified_symbol(self, native: str) -> tuple[str, str] | None:
        if native.endswith(COIN_M_PERP_SUFFIX) and len(native) > len(COIN_M_PERP_SUFFIX):
            base = native.removesuffix(COIN_M_PERP_SUFFIX)
            return f"{base}/USD:{base}", base
        if "_" in native:  # a dated future, BTCUSDT_261225 (or BTCUSD_261225 on COIN-M)
            return None
        found = split_linear(native, QUOTES)
        if found is None:
            raise MalformedMessage(f"binance: symbol {native!r} has no known quote currency")
        return found

    # ------------------------------------------------------------ REST

    def rest_interval_h(self, market: dict[str, Any], call: Any) -> float:
        return self.stream_intervals(call, [market["symbol"]])[market["symbol"]]

    def history_params(self, method: str, symbol: str) -> dict[str, Any]:
        """COIN-M open-interest history is asked by pair and contract type; ccxt's default type is CURRENT_QUARTER."""
        if method == "fetch_open_interest_history" and self.inverse_perp(symbol) is not None:
            return {"contractType": "PERPETUAL"}
        return {}

    def premium_params(self, symbol: str, lo_ms: int, hi_ms: int, limit: int) -> dict[str, Any]:
        """One-minute klines closing in [lo, hi): open times from lo - 59,999 to hi - 60,000 (both inclusive)."""
        return {
            "symbol": self.native_symbol(symbol),
            "interval": "1m",
            "startTime": lo_ms - MINUTE_MS + 1,
            "endTime": hi_ms - MINUTE_MS,
            "limit": limit,
        }

    def premium_rows(self, response: Any) -> list[PremiumSample]:
        """Klines [openTime, open, high, low, close, ignore, closeTime, ...]: the close, known at closeTime."""
        what = "binance premiumIndexKlines"
        rows = premium_list(response, what)
        bad = next((row for row in rows if not (isinstance(row, list) and len(row) >= 7)), None)
        if bad is not None:
            raise MalformedMessage(f"{what}: row {bad!r} is not a kline array")
        return [premium_sample(row[6], row[4], what) for row in rows]

    def rest_funding_formulas(self, markets: dict[str, dict[str, Any]], call: Any) -> dict[str, FundingFormula]:
        """fundingInfo's adjusted cap and floor (USDⓈ-M's list for linear perps, COIN-M's for coin-margined ones);
        the venue's formula for a symbol its list does not name."""
        listed: dict[str, dict[str, tuple[float, float]]] = {}
        formulas = {}
        for symbol in markets:
            method = self.funding_info_method(symbol)
            if method not in listed:
                listed[method] = funding_info_bounds(call(method))
            bounds = listed[method].get(self.native_symbol(symbol))
            formula = self.funding_formula(symbol)
            formulas[symbol] = formula if bounds is None else formula.bounded(*bounds)
        return formulas

    def funding_info_method(self, symbol: str) -> str:
        """USDⓈ-M's fundingInfo for a linear perp, COIN-M's for a coin-margined one."""
        return FUNDING_INFO_METHODS["linear" if self.inverse_perp(symbol) is None else "inverse"]

    def stream_intervals(self, call: Any, symbols: list[str]) -> dict[str, float]:
        """fundingInfo's exceptions (each symbol's own list), Binance's 8h default for every symbol it does not list."""
        listed: dict[str, dict[str, float]] = {}
        for method in {self.funding_info_method(s) for s in symbols}:
            listed[method] = {r["symbol"]: float(r["fundingIntervalHours"]) for r in call(method)}
        default = self.facts.default_interval_h
        return {s: listed[self.funding_info_method(s)].get(self.native_symbol(s), default) for s in symbols}

    # ------------------------------------------------------------ WebSocket: client

    def subscribe_messages(self, symbols: list[str], all_market: bool = False) -> list[str]:
        params = [ALL_MARKET] if all_market else [f"{self.native_symbol(s).lower()}@markPrice@1s" for s in symbols]
        batch = self.stream.subscribe_batch if self.stream else len(params)
        return [
            json.dumps({"method": "SUBSCRIBE", "params": params[i : i + batch], "id": 1 + i // batch})
            for i in range(0, len(params), batch)
        ]

    def parse(self, msg: Any, received_at_ns: int, ctx: ParseContext) -> list[FundingPrint]:
        if isinstance(msg, dict) and "stream" in msg and "data" in msg:
            msg = msg["data"]
        if isinstance(msg, dict):
            if msg.get("e") == "markPriceUpdate":
                found = self._print(msg, received_at_ns, ctx)
                return [] if found is None else [found]
            if msg.get("e") == "forceOrder":
                self._liquidation(msg, received_at_ns, ctx)
                return []
            if "result" in msg and "id" in msg:
                return ctx.control()
            if isinstance(msg.get("error"), dict) and "id" in msg:
                ctx.failed_subscriptions.append(f"request {msg['id']}: {msg['error'].get('msg')}")
                return ctx.control()
            raise UnknownMessage(f"binance: unknown message keys {sorted(msg)[:8]}")
        if isinstance(msg, list):
            return parse_items(msg, ctx, self._print, received_at_ns)
        raise UnknownMessage(f"binance: unexpected {type(msg).__name__}")

    def _print(self, item: Any, received_at_ns: int, ctx: ParseContext) -> FundingPrint | None:
        """One markPriceUpdate; the common shapes (decimal strings, int ms) take a fast path, the rest the checks."""
        if type(item) is not dict or item.get("e") != "markPriceUpdate":
            raise UnknownMessage(f"binance: unknown event {item.get('e') if isinstance(item, dict) else item!r}")
        native = item["s"]
        found = ctx.symbols.get(native, _UNSEEN) if type(native) is str else unified(self, ctx, native)
        if found is _UNSEEN:
            found = unified(self, ctx, native)
        if found is None or (ctx.wanted is not None and found[0] not in ctx.wanted):
            wanted(ctx, found)
            return None
        symbol, base = found
        interval = ctx.intervals.get(symbol)
        if interval is None:
            interval = known_interval(ctx, symbol)
        raw_rate = item["r"]
        rate = float(raw_rate) if type(raw_rate) is str else funding_rate(raw_rate)
        if not -1.0 < rate < math.inf:
            funding_rate(raw_rate)  # raises, naming the value
        return FundingPrint(
            "binance", symbol, base, "predicted", _ms(item["T"]), _ms(item["E"]), received_at_ns, rate, interval,
            _price(item.get("p")), _price(item.get("i")), "ws",
        )  # fmt: skip

    # ------------------------------------------------------------ WebSocket: the emulator's side

    def encode_prints(self, prints: list[FundingPrint], session: EmulatedSession) -> list[str]:
        def event(p: FundingPrint) -> dict[str, Any]:
            return {
                "e": "markPriceUpdate", "E": p.ts // 1_000_000, "s": self.native_symbol(p.symbol),
                "p": emit_number(p.mark_price), "P": emit_number(p.index_price), "i": emit_number(p.index_price),
                "r": emit_number(p.rate), "T": p.funding_time // 1_000_000,
            }  # fmt: skip

        if session.all_market:
            payload = [event(p) for p in prints]
            if prints:  # the dated quarterly listed beside the perp, as the real frame carries it
                dated = event(prints[0]) | {"s": self.native_symbol(prints[0].symbol) + "_261225", "r": "", "T": 0}
                payload.append(dated)
            return [self._wrap(session, ALL_MARKET, payload)]
        return [self._wrap(session, session.symbols[p.symbol], event(p)) for p in prints if p.symbol in session.symbols]

    @staticmethod
    def _wrap(session: EmulatedSession, stream: str, payload: Any) -> str:
        return json.dumps({"stream": stream, "data": payload} if session.combined else payload)

    def subscribe_streams(self, streams: list[str], session: EmulatedSession) -> str | None:
        """Take `streams` onto the session; an error text when they would pass the per-connection limit."""
        limit = self.stream.streams_per_connection if self.stream else len(streams)
        if len(session.symbols) + len(streams) > limit:
            return f"Too many streams: at most {limit} per connection"
        for name in streams:
            if name.startswith("!markPrice@arr"):
                session.all_market = True
                continue
            if name == ALL_LIQUIDATIONS:
                session.liquidations_all = True
                continue
            symbol = session.known(name.split("@", 1)[0].upper())
            if symbol is not None and "@markPrice" in name:
                session.symbols[symbol] = name
            elif symbol is not None and name.endswith("@forceOrder"):
                session.liquidation_symbols[symbol] = name
        return None

    def serve_request(self, text: str, session: EmulatedSession) -> list[str]:
        try:
            msg = json.loads(text)
        except ValueError:
            return [json.dumps({"error": {"code": 2, "msg": f"Invalid request: {text[:64]!r}"}, "id": None})]
        if not isinstance(msg, dict) or msg.get("method") != "SUBSCRIBE":
            req_id = msg.get("id") if isinstance(msg, dict) else None
            return [json.dumps({"error": {"code": 2, "msg": "Invalid request"}, "id": req_id})]
        refused = self.subscribe_streams([str(p) for p in msg.get("params", [])], session)
        if refused is not None:
            return [json.dumps({"error": {"code": 1, "msg": refused}, "id": msg.get("id")})]
        return [json.dumps({"result": None, "id": msg.get("id")})]

    def error_body(self, status: int, message: str, code: str | None) -> dict[str, Any] | None:
        return {"code": int(code or {429: -1003, 418: -1003}.get(status, -1121)), "msg": message}

    # ------------------------------------------------------------ liquidations

    def liquidation_subscribe_messages(self, symbols: list[str]) -> list[str]:
        """The whole-market `!forceOrder@arr`: the parser keeps the connection's symbols (`ParseContext.wanted`)."""
        return [json.dumps({"method": "SUBSCRIBE", "params": [ALL_LIQUIDATIONS], "id": LIQUIDATION_REQUEST_ID})]

    def _liquidation(self, msg: dict[str, Any], received_at_ns: int, ctx: ParseContext) -> None:
        order = msg["o"]
        found = unified(self, ctx, order["s"])
        if not wanted(ctx, found):
            return
        assert found is not None
        symbol, base = found
        side = liquidated_side(order["S"], ORDER_SIDES, f"binance forceOrder {symbol}")
        average = optional_price(order.get("ap"))
        price = average if average > 0 else positive(order["p"], f"binance forceOrder {symbol} price")
        size = sized(symbol, positive(order["z"], f"binance forceOrder {symbol} filled quantity"),
                     self.terms(symbol).contract_size, price)  # fmt: skip
        at = _ms(order["T"])
        liquidation = Liquidation(
            "binance", symbol, base, at, received_at_ns, side, price, size.quantity, size.notional_usd, "ws"
        )
        ctx.liquidations.append(liquidation)

    def encode_liquidations(self, liquidations: list[Liquidation], session: EmulatedSession) -> list[str]:
        frames = []
        for liq in liquidations:
            stream = ALL_LIQUIDATIONS if session.liquidations_all else session.liquidation_symbols.get(liq.symbol)
            if stream is None:
                continue
            inverse = self.inverse_perp(liq.symbol)
            filled = emit_number(liq.quantity if inverse is None else liq.notional_usd / inverse.contract_usd)
            ms = liq.ts // NS_PER_MS
            order = {
                "s": self.native_symbol(liq.symbol), "S": "SELL" if liq.side == LONG else "BUY", "o": "LIMIT",
                "f": "IOC", "q": filled, "p": emit_number(liq.price), "ap": emit_number(liq.price), "X": "FILLED",
                "l": filled, "z": filled, "T": ms,
            }  # fmt: skip
            if inverse is not None:
                order["ps"] = inverse.base + "USD"
            frames.append(self._wrap(session, stream, {"e": "forceOrder", "E": ms, "o": order}))
        return frames


ADAPTER = BinanceAdapter()
