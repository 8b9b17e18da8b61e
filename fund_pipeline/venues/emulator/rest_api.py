"""The venues' REST endpoints, in their real formats, served from the simulated market.

Only what ccxt's `load_markets`, `fetch_funding_rate_history`, `fetch_ohlcv` (perp, spot,
mark, index) and `fetch_open_interest_history` read is emulated, with each venue's field
names, string-encoded numbers, pagination parameters and page limits, and error bodies.
Nothing later than the emulator clock is served: prints with funding_time <= now, bars
(and open interest) only once their hour has closed.

URL layout: `/{venue}{the venue's real path}`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from aiohttp import web

if TYPE_CHECKING:
    from fund_pipeline.venues.emulator.server import EmulatorState

HOUR = pd.Timedelta(hours=1)
MS = pd.Timedelta(milliseconds=1)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Where the application keeps the EmulatorState every handler reads.
STATE: web.AppKey[EmulatorState] = web.AppKey("emulator_state")


def add_rest_routes(app: web.Application, state) -> None:
    """Mount every venue's REST routes on `app` and the fault-injecting middleware."""
    app.middlewares.append(fault_middleware)
    for venue, method, path, handler in ROUTES:
        app.router.add_route(method, f"/{venue}{path}", handler)


class VenueRequestError(Exception):
    """A request the real venue would reject; rendered in the venue's error format."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


# ---------------------------------------------------------------- errors and faults


def error_response(
    venue: str, status: int, message: str, retry_after_s: int | None = None, code: str | None = None
) -> web.Response:
    """An error in the venue's own body format (what ccxt's handle_errors parses).

    5xx come from the venues' gateways as plain text, not from their APIs. `code` overrides the
    venue's default error code for the status.
    """
    if status >= 500:
        return web.Response(status=status, text=f"{status} {message}", headers=_retry_headers(retry_after_s))
    if venue == "binance":
        body = {"code": int(code or {429: -1003, 418: -1003}.get(status, -1121)), "msg": message}
    elif venue == "bybit":
        body = {"retCode": int(code or (10006 if status == 429 else 10001)), "retMsg": message, "result": {},
                "retExtInfo": {}, "time": 0}
    elif venue == "okx":
        body = {"code": code or ("50011" if status == 429 else "51001"), "msg": message, "data": []}
    elif venue == "deribit":
        body = {"jsonrpc": "2.0", "error": {"code": int(code or (10028 if status == 429 else -32602)),
                                            "message": message}, "testnet": False}
    else:
        return web.Response(status=status, text=message, headers=_retry_headers(retry_after_s))
    return web.json_response(body, status=status, headers=_retry_headers(retry_after_s))


def _retry_headers(retry_after_s: int | None) -> dict[str, str]:
    return {} if retry_after_s is None else {"Retry-After": str(retry_after_s)}


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Inject the configured REST faults, then render VenueRequestError in the venue's format."""
    state = request.app[STATE]
    venue = request.path.strip("/").split("/", 1)[0]
    if venue not in state.venues or request.path.rstrip("/").endswith("/ws") or "/ws/" in request.path or (
        request.path.startswith("/binance/stream")
    ):
        return await handler(request)
    faults = state.faults
    if venue in faults.venue_down:
        return error_response(venue, 503, f"{venue} service unavailable")
    n = state.bump(f"rest:{venue}")
    if n <= faults.http_429_first_n:
        return error_response(venue, 429, "Too many requests; current limit exceeded", retry_after_s=1)
    if n <= faults.http_429_first_n + faults.http_418_first_n:
        return error_response(venue, 418, "Way too many requests; IP banned for 1s", retry_after_s=1)
    if faults.http_5xx_every_n and n % faults.http_5xx_every_n == 0:
        return error_response(venue, 502, "Bad gateway")
    try:
        return await handler(request)
    except VenueRequestError as bad:
        return error_response(venue, bad.status, bad.message, code=bad.code)


# ---------------------------------------------------------------- helpers


def num(value: float) -> str:
    """Venues send numbers as strings; repr round-trips a float exactly."""
    return repr(float(value))


def to_ms(t: pd.Timestamp) -> int:
    return int(t.value // 1_000_000)


def from_ms(raw: str | None, what: str) -> pd.Timestamp | None:
    if raw is None or raw == "":
        return None
    try:
        return pd.Timestamp(int(raw), unit="ms", tz="UTC")
    except ValueError as bad:
        raise VenueRequestError(400, f"parameter {what!r} is not an integer millisecond time: {raw!r}") from bad


def int_param(raw: str | None, what: str, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as bad:
        raise VenueRequestError(400, f"parameter {what!r} is not an integer: {raw!r}") from bad
    if value <= 0:
        raise VenueRequestError(400, f"parameter {what!r} must be positive, got {value}")
    return min(value, maximum)


def history_start() -> pd.Timestamp:
    from fund_pipeline.venues.simulated import SIM_EPOCH

    return pd.Timestamp(SIM_EPOCH).tz_localize("UTC") if pd.Timestamp(SIM_EPOCH).tzinfo is None else pd.Timestamp(
        SIM_EPOCH
    )


def listed(state, venue: str) -> pd.DataFrame:
    """Instruments listed now on `venue`, restricted to the emulator's bases."""
    inst = state.market.instruments(venue, state.clock.now())
    return inst[inst["base"].isin(state.bases)].reset_index(drop=True)


def settled_prints(state, venue: str, symbol: str, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
    """Settled prints of one symbol with funding_time in [start, end], never after now."""
    now = state.clock.now()
    lo = history_start() if start is None else max(start, history_start())
    hi = now if end is None else min(end, now)
    if hi < lo:
        return pd.DataFrame(columns=["funding_time", "rate", "mark_price", "index_price", "interval_h"])
    prints = state.market.funding_prints(venue, lo, hi + MS)
    prints = prints[(prints["symbol"] == symbol) & (prints["kind"] == "settled")]
    prints = prints[(prints["funding_time"] >= lo) & (prints["funding_time"] <= hi)]
    return prints.sort_values("funding_time").reset_index(drop=True)


def closed_bars(state, venue: str, symbol: str, start: pd.Timestamp | None, end: pd.Timestamp | None) -> pd.DataFrame:
    """Hourly bars of one symbol with ts (bar open) in [start, end], only bars that have closed."""
    last_open = (state.clock.now() - HOUR).floor("h")
    lo = history_start() if start is None else max(start.ceil("h"), history_start())
    hi = last_open if end is None else min(end, last_open)
    if hi < lo:
        return pd.DataFrame(columns=["ts"])
    bars = state.market.bars(venue, lo, hi + MS)
    bars = bars[(bars["symbol"] == symbol) & (bars["ts"] >= lo) & (bars["ts"] <= hi)]
    return bars.sort_values("ts").reset_index(drop=True)


def page(rows: pd.DataFrame, limit: int, from_start: bool) -> pd.DataFrame:
    """The venue's page: the first `limit` rows after a start time, else the latest `limit`."""
    return rows.head(limit) if from_start else rows.tail(limit)


def timeframe_hours(raw: str | None, accepted: dict[str, int], what: str) -> int:
    if raw not in accepted:
        raise VenueRequestError(400, f"unsupported {what} {raw!r}; the emulator serves {sorted(accepted)}")
    return accepted[raw]


def ohlc_of(bars: pd.DataFrame, price: str) -> tuple[pd.Series, pd.Series, pd.Series, pd.Series, pd.Series]:
    """(open, high, low, close, quote volume) of the perp, spot, mark or index series of `bars`.

    Mark and index carry one price per hour in the simulated market, so their candles are flat.
    """
    if price == "perp":
        return bars["open"], bars["high"], bars["low"], bars["close"], bars["volume_usd"]
    if price == "spot":
        return bars["spot_open"], bars["spot_high"], bars["spot_low"], bars["spot_close"], bars["spot_volume_usd"]
    column = {"mark": "mark_price", "index": "index_price"}[price]
    flat = bars[column]
    return flat, flat, flat, flat, pd.Series(np.nan, index=bars.index)


def symbol_of(inst: pd.DataFrame, venue_id: str, ids: pd.Series) -> str:
    match = inst.loc[ids == venue_id, "symbol"]
    if match.empty:
        raise VenueRequestError(400, f"Invalid symbol {venue_id!r}")
    return str(match.iloc[0])


# ---------------------------------------------------------------- binance (spot + USD-M futures)


def binance_id(symbol: str) -> str:
    base, quote = symbol.split(":")[0].split("/")
    return base + quote


async def binance_spot_exchange_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    symbols = [
        {
            "symbol": binance_id(row.symbol),
            "status": "TRADING",
            "baseAsset": row.base,
            "baseAssetPrecision": 8,
            "quoteAsset": row.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": _binance_filters(),
            "permissions": [],
            "permissionSets": [["SPOT"]],
        }
        for row in listed(state, "binance").itertuples()
    ]
    return web.json_response(
        {"timezone": "UTC", "serverTime": to_ms(state.clock.now()), "rateLimits": [], "symbols": symbols}
    )


def _binance_filters() -> list[dict]:
    return [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "10000", "stepSize": "0.001"},
        {"filterType": "MIN_NOTIONAL", "notional": "5"},
    ]


async def binance_futures_exchange_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    symbols = [
        {
            "symbol": binance_id(row.symbol),
            "pair": binance_id(row.symbol),
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": to_ms(history_start()),
            "status": "TRADING",
            "baseAsset": row.base,
            "quoteAsset": row.quote,
            "marginAsset": row.quote,
            "pricePrecision": 2,
            "quantityPrecision": 3,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "triggerProtect": "0.0500",
            "filters": _binance_filters(),
            "orderTypes": ["LIMIT", "MARKET"],
            "timeInForce": ["GTC"],
        }
        for row in listed(state, "binance").itertuples()
    ]
    return web.json_response(
        {"timezone": "UTC", "serverTime": to_ms(state.clock.now()), "rateLimits": [], "assets": [], "symbols": symbols}
    )


def _binance_symbol(request: web.Request, param: str = "symbol") -> str:
    state = request.app[STATE]
    raw = request.query.get(param)
    if not raw:
        raise VenueRequestError(400, f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed.")
    inst = listed(state, "binance")
    return symbol_of(inst, raw, inst["symbol"].map(binance_id))


async def binance_funding_rate(request: web.Request) -> web.Response:
    state = request.app[STATE]
    symbol = _binance_symbol(request)
    start = from_ms(request.query.get("startTime"), "startTime")
    end = from_ms(request.query.get("endTime"), "endTime")
    limit = int_param(request.query.get("limit"), "limit", 100, 1000)
    rows = page(settled_prints(state, "binance", symbol, start, end), limit, from_start=start is not None)
    return web.json_response(
        [
            {
                "symbol": binance_id(symbol),
                "fundingTime": to_ms(row.funding_time),
                "fundingRate": num(row.rate),
                "markPrice": num(row.mark_price),
            }
            for row in rows.itertuples()
        ]
    )


async def binance_funding_info(request: web.Request) -> web.Response:
    """Binance lists only symbols with non-default funding settings (interval other than 8h)."""
    inst = listed(request.app[STATE], "binance")
    return web.json_response(
        [
            {
                "symbol": binance_id(row.symbol),
                "adjustedFundingRateCap": "0.02000000",
                "adjustedFundingRateFloor": "-0.02000000",
                "fundingIntervalHours": int(row.interval_h),
                "disclaimer": False,
            }
            for row in inst.itertuples()
            if row.interval_h != 8
        ]
    )


BINANCE_INTERVALS = {"1h": 1}


def _binance_klines(price: str, max_limit: int, symbol_param: str = "symbol") -> Handler:
    async def klines(request: web.Request) -> web.Response:
        state = request.app[STATE]
        symbol = _binance_symbol(request, symbol_param)
        timeframe_hours(request.query.get("interval"), BINANCE_INTERVALS, "interval")
        start = from_ms(request.query.get("startTime"), "startTime")
        end = from_ms(request.query.get("endTime"), "endTime")
        limit = int_param(request.query.get("limit"), "limit", 500, max_limit)
        bars = page(closed_bars(state, "binance", symbol, start, end), limit, from_start=start is not None)
        o, h, l, c, quote_volume = ohlc_of(bars, price)
        out = []
        for i in range(len(bars)):
            ts = bars["ts"].iloc[i]
            qv = quote_volume.iloc[i]
            base_volume = 0.0 if np.isnan(qv) else qv / c.iloc[i]
            qv = 0.0 if np.isnan(qv) else qv
            out.append(
                [to_ms(ts), num(o.iloc[i]), num(h.iloc[i]), num(l.iloc[i]), num(c.iloc[i]), num(base_volume),
                 to_ms(ts + HOUR - MS), num(qv), 0, "0", "0", "0"]
            )
        return web.json_response(out)

    return klines


async def binance_open_interest_hist(request: web.Request) -> web.Response:
    state = request.app[STATE]
    symbol = _binance_symbol(request)
    timeframe_hours(request.query.get("period"), BINANCE_INTERVALS, "period")
    start = from_ms(request.query.get("startTime"), "startTime")
    end = from_ms(request.query.get("endTime"), "endTime")
    limit = int_param(request.query.get("limit"), "limit", 30, 500)
    bars = page(closed_bars(state, "binance", symbol, start, end), limit, from_start=start is not None)
    return web.json_response(
        [
            {
                "symbol": binance_id(symbol),
                "sumOpenInterest": num(row.open_interest_usd / row.close),
                "sumOpenInterestValue": num(row.open_interest_usd),
                "timestamp": to_ms(row.ts),
            }
            for row in bars.itertuples()
        ]
    )


# ---------------------------------------------------------------- hyperliquid (one POST /info endpoint)


def _hyperliquid_symbol(state, coin) -> str:
    inst = listed(state, "hyperliquid")
    return symbol_of(inst, str(coin), inst["base"])


def _json_ms(body: dict, key: str) -> pd.Timestamp | None:
    value = body.get(key)
    return None if value is None else from_ms(str(value), key)


async def hyperliquid_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = await request.json()
    except ValueError as bad:
        raise VenueRequestError(422, "Failed to deserialize the JSON body into the target type") from bad
    kind = body.get("type")
    if kind == "metaAndAssetCtxs":
        inst = listed(state, "hyperliquid")
        universe = [
            {"name": row.base, "szDecimals": 4, "maxLeverage": int(row.max_leverage), "marginTableId": 1}
            for row in inst.itertuples()
        ]
        contexts = [{"funding": "0.0", "openInterest": "0.0", "markPx": "0.0", "oraclePx": "0.0",
                     "dayNtlVlm": "0.0", "prevDayPx": "0.0"} for _ in universe]
        return web.json_response([{"universe": universe, "marginTables": []}, contexts])
    if kind == "spotMeta":
        usdc = {"name": "USDC", "szDecimals": 8, "weiDecimals": 8, "index": 0,
                "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054", "isCanonical": True, "evmContract": None,
                "fullName": None}
        return web.json_response({"tokens": [usdc], "universe": []})
    if kind == "fundingHistory":
        symbol = _hyperliquid_symbol(state, body.get("coin"))
        start = _json_ms(body, "startTime")
        if start is None:
            raise VenueRequestError(422, "Failed to deserialize the JSON body: missing field `startTime`")
        rows = page(settled_prints(state, "hyperliquid", symbol, start, _json_ms(body, "endTime")), 500, True)
        return web.json_response(
            [{"coin": body["coin"], "fundingRate": num(r.rate), "premium": "0.0", "time": to_ms(r.funding_time)}
             for r in rows.itertuples()]
        )
    if kind == "candleSnapshot":
        req = body.get("req") or {}
        symbol = _hyperliquid_symbol(state, req.get("coin"))
        timeframe_hours(req.get("interval"), {"1h": 1}, "interval")
        bars = page(closed_bars(state, "hyperliquid", symbol, _json_ms(req, "startTime"), _json_ms(req, "endTime")),
                    5000, True)
        return web.json_response(
            [
                {"t": to_ms(r.ts), "T": to_ms(r.ts + HOUR - MS), "s": req["coin"], "i": "1h", "o": num(r.open),
                 "c": num(r.close), "h": num(r.high), "l": num(r.low), "v": num(r.volume_usd / r.close), "n": 0}
                for r in bars.itertuples()
            ]
        )
    raise VenueRequestError(422, f"Failed to deserialize the JSON body: unknown variant {kind!r}")


ROUTES: list[tuple[str, str, str, Handler]] = [
    ("binance", "GET", "/api/v3/exchangeInfo", binance_spot_exchange_info),
    ("binance", "GET", "/api/v3/klines", _binance_klines("spot", 1000)),
    ("binance", "GET", "/fapi/v1/exchangeInfo", binance_futures_exchange_info),
    ("binance", "GET", "/fapi/v1/fundingRate", binance_funding_rate),
    ("binance", "GET", "/fapi/v1/fundingInfo", binance_funding_info),
    ("binance", "GET", "/fapi/v1/klines", _binance_klines("perp", 1500)),
    ("binance", "GET", "/fapi/v1/markPriceKlines", _binance_klines("mark", 1500)),
    ("binance", "GET", "/fapi/v1/indexPriceKlines", _binance_klines("index", 1500, symbol_param="pair")),
    ("binance", "GET", "/futures/data/openInterestHist", binance_open_interest_hist),
    ("hyperliquid", "POST", "/info", hyperliquid_info),
]
