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

from fund_pipeline.domain.prints import BAR_COLUMNS

if TYPE_CHECKING:
    from fund_pipeline.emulator.server import EmulatorState

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

    5xx (and bybit's 403 ban) come from the venues' gateways as plain text, not from their APIs. `code` overrides the
    venue's default error code for the status.
    """
    if status >= 500 or (venue == "bybit" and status == 403):
        return web.Response(status=status, text=f"{status} {message}", headers=_retry_headers(retry_after_s))
    if venue == "binance":
        body = {"code": int(code or {429: -1003, 418: -1003}.get(status, -1121)), "msg": message}
    elif venue == "bybit":
        body = {
            "retCode": int(code or (10006 if status == 429 else 10001)),
            "retMsg": message,
            "result": {},
            "retExtInfo": {},
            "time": 0,
        }
    elif venue == "okx":
        body = {"code": code or ("50011" if status == 429 else "51001"), "msg": message, "data": []}
    elif venue == "deribit":
        body = {
            "jsonrpc": "2.0",
            "error": {"code": int(code or (10028 if status == 429 else -32602)), "message": message},
            "testnet": False,
        }
    else:
        return web.Response(status=status, text=message, headers=_retry_headers(retry_after_s))
    return web.json_response(body, status=status, headers=_retry_headers(retry_after_s))


def _retry_headers(retry_after_s: int | None) -> dict[str, str]:
    return {} if retry_after_s is None else {"Retry-After": str(retry_after_s)}


# How each venue answers an IP over its limits for a while: binance 418, bybit's gateway 403
# ("access too frequent"), the others their ordinary 429.
BAN_STATUS = {"binance": 418, "bybit": 403, "hyperliquid": 418}


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Inject the configured REST faults, then render VenueRequestError in the venue's format."""
    state = request.app[STATE]
    venue = request.path.strip("/").split("/", 1)[0]
    if (
        venue not in state.venues
        or request.path.rstrip("/").endswith("/ws")
        or "/ws/" in request.path
        or (request.path.startswith("/binance/stream"))
    ):
        return await handler(request)
    faults = state.faults
    if venue in faults.venue_down:
        return error_response(venue, 503, f"{venue} service unavailable")
    n = state.bump(f"rest:{venue}")
    if n <= faults.http_429_first_n:
        return error_response(
            venue, 429, "Too many requests; current limit exceeded", retry_after_s=faults.retry_after_s
        )
    if n <= faults.http_429_first_n + faults.http_418_first_n:
        return error_response(
            venue, BAN_STATUS.get(venue, 429), "Way too many requests; IP banned", retry_after_s=faults.retry_after_s
        )
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
    from fund_pipeline.sources.simulated import SIM_EPOCH

    return (
        pd.Timestamp(SIM_EPOCH).tz_localize("UTC")
        if pd.Timestamp(SIM_EPOCH).tzinfo is None
        else pd.Timestamp(SIM_EPOCH)
    )


def listed(state, venue: str) -> pd.DataFrame:
    """Instruments listed now on `venue`, restricted to the emulator's bases."""
    inst = state.market.instruments(venue, state.clock.now())
    return inst[inst["base"].isin(state.bases)].reset_index(drop=True)


def settled_prints(
    state, venue: str, symbol: str, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> pd.DataFrame:
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
        return pd.DataFrame(columns=BAR_COLUMNS)
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
                [
                    to_ms(ts),
                    num(o.iloc[i]),
                    num(h.iloc[i]),
                    num(l.iloc[i]),
                    num(c.iloc[i]),
                    num(base_volume),
                    to_ms(ts + HOUR - MS),
                    num(qv),
                    0,
                    "0",
                    "0",
                    "0",
                ]
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
        contexts = [
            {
                "funding": "0.0",
                "openInterest": "0.0",
                "markPx": "0.0",
                "oraclePx": "0.0",
                "dayNtlVlm": "0.0",
                "prevDayPx": "0.0",
            }
            for _ in universe
        ]
        return web.json_response([{"universe": universe, "marginTables": []}, contexts])
    if kind == "spotMeta":
        usdc = {
            "name": "USDC",
            "szDecimals": 8,
            "weiDecimals": 8,
            "index": 0,
            "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054",
            "isCanonical": True,
            "evmContract": None,
            "fullName": None,
        }
        return web.json_response({"tokens": [usdc], "universe": []})
    if kind == "fundingHistory":
        symbol = _hyperliquid_symbol(state, body.get("coin"))
        start = _json_ms(body, "startTime")
        if start is None:
            raise VenueRequestError(422, "Failed to deserialize the JSON body: missing field `startTime`")
        rows = page(settled_prints(state, "hyperliquid", symbol, start, _json_ms(body, "endTime")), 500, True)
        return web.json_response(
            [
                {"coin": body["coin"], "fundingRate": num(r.rate), "premium": "0.0", "time": to_ms(r.funding_time)}
                for r in rows.itertuples()
            ]
        )
    if kind == "candleSnapshot":
        req = body.get("req") or {}
        symbol = _hyperliquid_symbol(state, req.get("coin"))
        timeframe_hours(req.get("interval"), {"1h": 1}, "interval")
        bars = page(
            closed_bars(state, "hyperliquid", symbol, _json_ms(req, "startTime"), _json_ms(req, "endTime")), 5000, True
        )
        return web.json_response(
            [
                {
                    "t": to_ms(r.ts),
                    "T": to_ms(r.ts + HOUR - MS),
                    "s": req["coin"],
                    "i": "1h",
                    "o": num(r.open),
                    "c": num(r.close),
                    "h": num(r.high),
                    "l": num(r.low),
                    "v": num(r.volume_usd / r.close),
                    "n": 0,
                }
                for r in bars.itertuples()
            ]
        )
    raise VenueRequestError(422, f"Failed to deserialize the JSON body: unknown variant {kind!r}")


# ---------------------------------------------------------------- shared by bybit, okx and deribit


def newest_first(rows: pd.DataFrame, limit: int) -> pd.DataFrame:
    """The latest `limit` rows, newest first: how bybit and okx page their histories."""
    return rows.tail(limit).iloc[::-1]


def last_day_bars(state, venue: str) -> pd.DataFrame:
    """The last 24 closed hourly bars of every listed symbol: what tickers summarise."""
    last_open = (state.clock.now() - HOUR).floor("h")
    first = max(last_open - 23 * HOUR, history_start())
    if last_open < first:
        return pd.DataFrame(columns=BAR_COLUMNS)
    bars = state.market.bars(venue, first, last_open + MS)
    return bars[bars["base"].isin(state.bases)].sort_values(["symbol", "ts"])


def next_funding_times(inst_row, now: pd.Timestamp, market, venue: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(end of the window running at `now`, end of the window after it), following interval changes."""
    current = pd.Timedelta(hours=float(inst_row.interval_h))
    funding_time = now.floor(current) + current
    following = market.instruments(venue, funding_time)
    nxt = following.loc[following["symbol"] == inst_row.symbol, "interval_h"]
    return funding_time, funding_time + pd.Timedelta(hours=float(nxt.iloc[0] if len(nxt) else inst_row.interval_h))


def predicted_rate(state, venue: str, symbol: str, now: pd.Timestamp) -> float:
    rates = state.market.predicted_rates(venue, [symbol], pd.DatetimeIndex([now]))
    return float(rates["rate"].iloc[0])


# ---------------------------------------------------------------- bybit (v5; spot and linear categories)


def bybit_ok(state, result: dict) -> web.Response:
    return web.json_response(
        {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": to_ms(state.clock.now())}
    )


def _bybit_category(request: web.Request, allowed: tuple[str, ...]) -> str:
    category = request.query.get("category", "")
    if category not in allowed:
        raise VenueRequestError(400, f"Illegal category {category!r}; the emulator serves {list(allowed)}", "10001")
    return category


def _bybit_symbol(request: web.Request) -> str:
    raw = request.query.get("symbol")
    if not raw:
        raise VenueRequestError(400, "params error: symbol is required", "10001")
    inst = listed(request.app[STATE], "bybit")
    return symbol_of(inst, raw, inst["symbol"].map(binance_id))


def _bybit_range(request: web.Request, start_key: str, end_key: str) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    return from_ms(request.query.get(start_key), start_key), from_ms(request.query.get(end_key), end_key)


async def bybit_instruments_info(request: web.Request) -> web.Response:
    """Spot and linear instruments; inverse and option categories are served empty.

    A `status` filter other than Trading (e.g. PreLaunch) matches nothing; `cursor` is an offset.
    """
    state = request.app[STATE]
    category = _bybit_category(request, ("spot", "linear", "inverse", "option"))
    limit = int_param(request.query.get("limit"), "limit", 500, 1000)
    offset = int(request.query.get("cursor") or 0)
    status = request.query.get("status", "Trading")
    inst = (
        listed(state, "bybit") if category in ("spot", "linear") and status == "Trading" else listed(state, "bybit")[:0]
    )
    rows = [
        _bybit_spot_instrument(r) if category == "spot" else _bybit_linear_instrument(r)
        for r in inst.iloc[offset : offset + limit].itertuples()
    ]
    cursor = str(offset + limit) if offset + limit < len(inst) else ""
    return bybit_ok(state, {"category": category, "list": rows, "nextPageCursor": cursor})


def _bybit_spot_instrument(row) -> dict:
    return {
        "symbol": binance_id(row.symbol),
        "baseCoin": row.base,
        "quoteCoin": row.quote,
        "innovation": "0",
        "status": "Trading",
        "marginTrading": "none",
        "stTag": "0",
        "lotSizeFilter": {
            "basePrecision": "0.000001",
            "quotePrecision": "0.00000001",
            "minOrderQty": "0.000048",
            "maxOrderQty": "71.73956243",
            "minOrderAmt": "1",
            "maxOrderAmt": "2000000",
        },
        "priceFilter": {"tickSize": "0.01"},
        "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
    }


def _bybit_linear_instrument(row) -> dict:
    return {
        "symbol": binance_id(row.symbol),
        "contractType": "LinearPerpetual",
        "status": "Trading",
        "baseCoin": row.base,
        "quoteCoin": row.quote,
        "settleCoin": row.quote,
        "launchTime": str(to_ms(history_start())),
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": "2",
        "leverageFilter": {"minLeverage": "1", "maxLeverage": f"{row.max_leverage:.2f}", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
        "lotSizeFilter": {
            "maxOrderQty": "1190.000",
            "minOrderQty": "0.001",
            "qtyStep": "0.001",
            "postOnlyMaxOrderQty": "1190.000",
            "maxMktOrderQty": "500.000",
            "minNotionalValue": "5",
        },
        "unifiedMarginTrade": True,
        "fundingInterval": int(row.interval_h * 60),
        "copyTrading": "both",
        "upperFundingRate": "0.02",
        "lowerFundingRate": "-0.02",
        "isPreListing": False,
        "preListingInfo": None,
    }


async def bybit_funding_history(request: web.Request) -> web.Response:
    """Newest first, at most `limit` (<= 200) rows; startTime needs endTime, as on bybit."""
    state = request.app[STATE]
    _bybit_category(request, ("linear",))
    symbol = _bybit_symbol(request)
    start, end = _bybit_range(request, "startTime", "endTime")
    if start is not None and end is None:
        raise VenueRequestError(400, "startTime and endTime must be passed together or both omitted", "10001")
    limit = int_param(request.query.get("limit"), "limit", 200, 200)
    rows = newest_first(settled_prints(state, "bybit", symbol, start, end), limit)
    return bybit_ok(
        state,
        {
            "category": "linear",
            "list": [
                {
                    "symbol": binance_id(symbol),
                    "fundingRate": num(r.rate),
                    "fundingRateTimestamp": str(to_ms(r.funding_time)),
                }
                for r in rows.itertuples()
            ],
        },
    )


BYBIT_INTERVALS = {"60": 1}


def _bybit_kline(price: str) -> Handler:
    """kline (perp or spot by category), mark-price-kline and index-price-kline: newest first, limit <= 1000."""

    async def kline(request: web.Request) -> web.Response:
        state = request.app[STATE]
        category = _bybit_category(request, ("spot", "linear") if price == "perp" else ("linear",))
        symbol = _bybit_symbol(request)
        timeframe_hours(request.query.get("interval"), BYBIT_INTERVALS, "interval")
        start, end = _bybit_range(request, "start", "end")
        limit = int_param(request.query.get("limit"), "limit", 200, 1000)
        bars = newest_first(closed_bars(state, "bybit", symbol, start, end), limit)
        o, h, l, c, quote_volume = ohlc_of(bars, "spot" if category == "spot" else price)
        rows = []
        for i in range(len(bars)):
            row = [str(to_ms(bars["ts"].iloc[i])), num(o.iloc[i]), num(h.iloc[i]), num(l.iloc[i]), num(c.iloc[i])]
            if price == "perp":
                row += [num(quote_volume.iloc[i] / c.iloc[i]), num(quote_volume.iloc[i])]
            rows.append(row)
        return bybit_ok(state, {"symbol": binance_id(symbol), "category": category, "list": rows})

    return kline


BYBIT_OI_INTERVALS = {"1h": 1}


async def bybit_open_interest(request: web.Request) -> web.Response:
    """Open interest in base coin at each hour (bar open time), newest first, limit <= 200, cursor paging."""
    state = request.app[STATE]
    _bybit_category(request, ("linear",))
    symbol = _bybit_symbol(request)
    timeframe_hours(request.query.get("intervalTime"), BYBIT_OI_INTERVALS, "intervalTime")
    start, end = _bybit_range(request, "startTime", "endTime")
    cursor = from_ms(request.query.get("cursor"), "cursor")
    if cursor is not None:
        end = cursor - MS if end is None else min(end, cursor - MS)
    limit = int_param(request.query.get("limit"), "limit", 50, 200)
    everything = closed_bars(state, "bybit", symbol, start, end)
    bars = newest_first(everything, limit)
    more = len(everything) > limit
    return bybit_ok(
        state,
        {
            "symbol": binance_id(symbol),
            "category": "linear",
            "list": [
                {"openInterest": num(r.open_interest_usd / r.close), "timestamp": str(to_ms(r.ts))}
                for r in bars.itertuples()
            ],
            "nextPageCursor": str(to_ms(bars["ts"].iloc[-1])) if more else "",
        },
    )


async def bybit_tickers(request: web.Request) -> web.Response:
    """24h volume and turnover over the last 24 closed hours; OI at the last close; the predicted rate."""
    state = request.app[STATE]
    category = _bybit_category(request, ("spot", "linear"))
    now = state.clock.now()
    inst = listed(state, "bybit")
    if request.query.get("symbol"):
        wanted = _bybit_symbol(request)
        inst = inst[inst["symbol"] == wanted]
    day = last_day_bars(state, "bybit")
    out = []
    for row in inst.itertuples():
        bars = day[day["symbol"] == row.symbol]
        if bars.empty:
            continue
        prefix = "spot_" if category == "spot" else ""
        last = bars.iloc[-1]
        turnover = bars[f"{prefix}volume_usd"]
        ticker = {
            "symbol": binance_id(row.symbol),
            "lastPrice": num(last[f"{prefix}close"]),
            "prevPrice24h": num(bars[f"{prefix}open"].iloc[0]),
            "highPrice24h": num(bars[f"{prefix}high"].max()),
            "lowPrice24h": num(bars[f"{prefix}low"].min()),
            "turnover24h": num(turnover.sum()),
            "volume24h": num((turnover / bars[f"{prefix}close"]).sum()),
        }
        if category == "linear":
            funding_time, _ = next_funding_times(row, now, state.market, "bybit")
            ticker.update(
                {
                    "indexPrice": num(last["index_price"]),
                    "markPrice": num(last["mark_price"]),
                    "openInterest": num(last["open_interest_usd"] / last["close"]),
                    "openInterestValue": num(last["open_interest_usd"]),
                    "fundingRate": num(predicted_rate(state, "bybit", row.symbol, now)),
                    "nextFundingTime": str(to_ms(funding_time)),
                    "fundingIntervalHour": str(int(row.interval_h)),
                    "fundingCap": "0.02",
                    "deliveryTime": "0",
                    "deliveryFeeRate": "",
                    "predictedDeliveryPrice": "",
                    "basisRate": "",
                    "basis": "",
                }
            )
        out.append(ticker)
    return bybit_ok(state, {"category": category, "list": out})


# ---------------------------------------------------------------- okx (v5; SPOT and SWAP)


def okx_ok(data: list) -> web.Response:
    return web.json_response({"code": "0", "msg": "", "data": data})


def okx_family(symbol: str) -> str:
    base, quote = symbol.split(":")[0].split("/")
    return f"{base}-{quote}"


def okx_swap_id(symbol: str) -> str:
    return okx_family(symbol) + "-SWAP"


def _okx_instrument(request: web.Request, key: str = "instId") -> tuple[str, str]:
    """(unified perp symbol, kind) of instId: "swap" for BTC-USDT-SWAP, "spot" for BTC-USDT (spot pair or index)."""
    raw = request.query.get(key)
    if not raw:
        raise VenueRequestError(400, f"Parameter {key} can not be empty", "50014")
    inst = listed(request.app[STATE], "okx")
    if raw.endswith("-SWAP"):
        return symbol_of(inst, raw, inst["symbol"].map(okx_swap_id)), "swap"
    return symbol_of(inst, raw, inst["symbol"].map(okx_family)), "spot"


def _okx_bounds(request: web.Request) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """okx's exclusive cursors as an inclusive range: `before` = newer than, `after` = older than."""
    before = from_ms(request.query.get("before"), "before")
    after = from_ms(request.query.get("after"), "after")
    return (None if before is None else before + MS), (None if after is None else after - MS)


async def okx_instruments(request: web.Request) -> web.Response:
    """SPOT and SWAP instruments; FUTURES and OPTION are served empty."""
    state = request.app[STATE]
    kind = request.query.get("instType", "")
    if kind not in ("SPOT", "SWAP", "FUTURES", "OPTION", "MARGIN"):
        raise VenueRequestError(400, "Parameter instType error", "51000")
    inst = listed(state, "okx") if kind in ("SPOT", "SWAP") else listed(state, "okx")[:0]
    listed_ms = str(to_ms(history_start()))
    common = {
        "alias": "",
        "category": "1",
        "expTime": "",
        "optType": "",
        "stk": "",
        "state": "live",
        "listTime": listed_ms,
        "ruleType": "normal",
        "tickSz": "0.1",
    }
    if kind == "SPOT":
        data = [
            dict(
                common,
                instType="SPOT",
                instId=okx_family(r.symbol),
                instFamily="",
                uly="",
                baseCcy=r.base,
                quoteCcy=r.quote,
                settleCcy="",
                ctVal="",
                ctMult="",
                ctValCcy="",
                ctType="",
                lever="10",
                lotSz="0.00000001",
                minSz="0.00001",
                maxMktSz="1000000",
            )
            for r in inst.itertuples()
        ]
    else:
        data = [
            dict(
                common,
                instType="SWAP",
                instId=okx_swap_id(r.symbol),
                instFamily=okx_family(r.symbol),
                uly=okx_family(r.symbol),
                baseCcy="",
                quoteCcy="",
                settleCcy=r.quote,
                ctVal="0.01",
                ctMult="1",
                ctValCcy=r.base,
                ctType="linear",
                lever=str(int(r.max_leverage)),
                lotSz="0.01",
                minSz="0.01",
                maxMktSz="5000",
            )
            for r in inst.itertuples()
        ]
    return okx_ok(data)


async def okx_funding_rate(request: web.Request) -> web.Response:
    """The running window: its predicted rate, its settlement time and the next one (their gap = interval)."""
    state = request.app[STATE]
    symbol, kind = _okx_instrument(request)
    if kind != "swap":
        raise VenueRequestError(400, "Instrument ID does not exist", "51001")
    now = state.clock.now()
    inst = listed(state, "okx")
    row = next(inst[inst["symbol"] == symbol].itertuples())
    funding_time, next_time = next_funding_times(row, now, state.market, "okx")
    rate = num(predicted_rate(state, "okx", symbol, now))
    return okx_ok(
        [
            {
                "instType": "SWAP",
                "instId": okx_swap_id(symbol),
                "fundingRate": rate,
                "nextFundingRate": "",
                "fundingTime": str(to_ms(funding_time)),
                "nextFundingTime": str(to_ms(next_time)),
                "minFundingRate": "-0.015",
                "maxFundingRate": "0.015",
                "method": "current_period",
                "formulaType": "withRate",
                "interestRate": "0.0001",
                "impactValue": "20000",
                "premium": "0",
                "sign": "",
                "settState": "settled",
                "settFundingRate": rate,
                "ts": str(to_ms(now)),
            }
        ]
    )


async def okx_funding_rate_history(request: web.Request) -> web.Response:
    """Newest first, at most `limit` (<= 100) rows between the exclusive `before` and `after` cursors."""
    state = request.app[STATE]
    symbol, kind = _okx_instrument(request)
    if kind != "swap":
        raise VenueRequestError(400, "Instrument ID does not exist", "51001")
    start, end = _okx_bounds(request)
    limit = int_param(request.query.get("limit"), "limit", 100, 100)
    rows = newest_first(settled_prints(state, "okx", symbol, start, end), limit)
    return okx_ok(
        [
            {
                "instType": "SWAP",
                "instId": okx_swap_id(symbol),
                "fundingRate": num(r.rate),
                "realizedRate": num(r.rate),
                "fundingTime": str(to_ms(r.funding_time)),
                "method": "current_period",
                "formulaType": "withRate",
            }
            for r in rows.itertuples()
        ]
    )


OKX_BARS = {"1H": 1}
# /market/candles holds only the most recent 1440 bars; the history endpoints hold everything.
OKX_RECENT_BARS = 1440


def _okx_candles(price: str, max_limit: int, recent_only: bool) -> Handler:
    """Candles newest first; perp/spot rows carry volumes (contracts, base, quote), mark/index rows do not."""

    async def candles(request: web.Request) -> web.Response:
        state = request.app[STATE]
        symbol, kind = _okx_instrument(request)
        if (price == "mark" and kind != "swap") or (price == "index" and kind != "spot"):
            raise VenueRequestError(400, "Instrument ID does not exist", "51001")
        timeframe_hours(request.query.get("bar"), OKX_BARS, "bar")
        start, end = _okx_bounds(request)
        if recent_only:
            oldest = (state.clock.now() - HOUR).floor("h") - (OKX_RECENT_BARS - 1) * HOUR
            start = oldest if start is None else max(start, oldest)
        limit = int_param(request.query.get("limit"), "limit", 100, max_limit)
        bars = newest_first(closed_bars(state, "okx", symbol, start, end), limit)
        series = "spot" if price == "perp" and kind == "spot" else price
        o, h, l, c, quote_volume = ohlc_of(bars, series)
        rows = []
        for i in range(len(bars)):
            row = [str(to_ms(bars["ts"].iloc[i])), num(o.iloc[i]), num(h.iloc[i]), num(l.iloc[i]), num(c.iloc[i])]
            if price == "perp":
                base_volume = quote_volume.iloc[i] / c.iloc[i]
                first = base_volume if kind == "spot" else base_volume / 0.01  # swaps count 0.01-base contracts
                row += [
                    num(first),
                    num(base_volume if kind == "swap" else quote_volume.iloc[i]),
                    num(quote_volume.iloc[i]),
                ]
            rows.append(row + ["1"])
        return okx_ok(rows)

    return candles


OKX_OI_PERIODS = {"1H": 1}


async def okx_open_interest_volume(request: web.Request) -> web.Response:
    """Per currency, newest first: [ts, open interest (USD), volume (USD)] of its perps, at most 1440 rows."""
    state = request.app[STATE]
    ccy = request.query.get("ccy", "")
    inst = listed(state, "okx")
    symbols = inst.loc[inst["base"] == ccy, "symbol"].tolist()
    if not symbols:
        raise VenueRequestError(400, f"Parameter ccy error: {ccy!r}", "51000")
    timeframe_hours(request.query.get("period"), OKX_OI_PERIODS, "period")
    start = from_ms(request.query.get("begin"), "begin")
    end = from_ms(request.query.get("end"), "end")
    bars = pd.concat([closed_bars(state, "okx", s, start, end) for s in symbols])
    summed = bars.groupby("ts")[["open_interest_usd", "volume_usd"]].sum().reset_index()
    rows = newest_first(summed, 1440)
    return okx_ok([[str(to_ms(r.ts)), num(r.open_interest_usd), num(r.volume_usd)] for r in rows.itertuples()])


async def okx_tickers(request: web.Request) -> web.Response:
    """24h volumes over the last 24 closed hours (swap vol24h in contracts, volCcy24h in base)."""
    state = request.app[STATE]
    kind = request.query.get("instType", "")
    if kind not in ("SPOT", "SWAP"):
        raise VenueRequestError(400, "Parameter instType error", "51000")
    day = last_day_bars(state, "okx")
    prefix = "spot_" if kind == "SPOT" else ""
    now_ms = str(to_ms(state.clock.now()))
    out = []
    for symbol, bars in day.groupby("symbol", sort=True):
        base_volume = (bars[f"{prefix}volume_usd"] / bars[f"{prefix}close"]).sum()
        out.append(
            {
                "instType": kind,
                "instId": okx_family(symbol) if kind == "SPOT" else okx_swap_id(symbol),
                "last": num(bars[f"{prefix}close"].iloc[-1]),
                "open24h": num(bars[f"{prefix}open"].iloc[0]),
                "high24h": num(bars[f"{prefix}high"].max()),
                "low24h": num(bars[f"{prefix}low"].min()),
                "vol24h": num(base_volume if kind == "SPOT" else base_volume / 0.01),
                "volCcy24h": num(bars[f"{prefix}volume_usd"].sum() if kind == "SPOT" else base_volume),
                "sodUtc0": num(bars[f"{prefix}open"].iloc[0]),
                "sodUtc8": num(bars[f"{prefix}open"].iloc[0]),
                "ts": now_ms,
            }
        )
    return okx_ok(out)


async def okx_open_interest(request: web.Request) -> web.Response:
    """Open interest of every swap at the last closed hour: contracts, base and USD."""
    state = request.app[STATE]
    if request.query.get("instType") != "SWAP":
        raise VenueRequestError(400, "Parameter instType error", "51000")
    day = last_day_bars(state, "okx")
    out = []
    for symbol, bars in day.groupby("symbol", sort=True):
        last = bars.iloc[-1]
        base = last["open_interest_usd"] / last["close"]
        out.append(
            {
                "instType": "SWAP",
                "instId": okx_swap_id(symbol),
                "oi": num(base / 0.01),
                "oiCcy": num(base),
                "oiUsd": num(last["open_interest_usd"]),
                "ts": str(to_ms(last["ts"] + HOUR)),
            }
        )
    return okx_ok(out)


# ---------------------------------------------------------------- deribit (v2; USDC linear perpetuals)

DERIBIT_PERPETUAL_EXPIRY_MS = 32503708800000


def deribit_ok(state, result) -> web.Response:
    us = int(state.clock.now().value // 1000)
    return web.json_response(
        {"jsonrpc": "2.0", "result": result, "usIn": us, "usOut": us + 60, "usDiff": 60, "testnet": False}
    )


def deribit_name(symbol: str) -> str:
    base, quote = symbol.split(":")[0].split("/")
    return f"{base}_{quote}-PERPETUAL"


def _deribit_instrument(request: web.Request) -> str:
    raw = request.query.get("instrument_name")
    if not raw:
        raise VenueRequestError(400, "Invalid params: instrument_name is required")
    inst = listed(request.app[STATE], "deribit")
    return symbol_of(inst, raw, inst["symbol"].map(deribit_name))


def _deribit_range(request: web.Request) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = from_ms(request.query.get("start_timestamp"), "start_timestamp")
    end = from_ms(request.query.get("end_timestamp"), "end_timestamp")
    if start is None or end is None:
        raise VenueRequestError(400, "Invalid params: start_timestamp and end_timestamp are required")
    return start, end


async def deribit_currencies(request: web.Request) -> web.Response:
    state = request.app[STATE]
    inst = listed(state, "deribit")
    codes = list(dict.fromkeys([*inst["base"], *inst["quote"]]))
    return deribit_ok(
        state,
        [
            {
                "currency": c,
                "currency_long": c,
                "coin_type": c,
                "network_currency": c,
                "withdrawal_fee": "0.0001",
                "min_withdrawal_fee": "0.0001",
                "network_fee": "0.0001",
                "min_confirmations": "1",
                "apr": "0.0",
                "withdrawal_priorities": [],
                "in_cross_collateral_pool": True,
            }
            for c in codes
        ],
    )


async def deribit_instruments(request: web.Request) -> web.Response:
    """USDC linear perpetuals (kind future); other kinds and currencies are served empty."""
    state = request.app[STATE]
    inst = listed(state, "deribit")
    currency, kind = request.query.get("currency", "any"), request.query.get("kind", "future")
    if kind != "future":
        inst = inst[:0]
    if currency not in ("any", "USDC"):
        inst = inst[inst["base"] == currency]
    created = to_ms(history_start())
    return deribit_ok(
        state,
        [
            {
                "instrument_name": deribit_name(r.symbol),
                "instrument_id": 100 + i,
                "kind": "future",
                "instrument_type": "linear",
                "future_type": "linear",
                "settlement_period": "perpetual",
                "base_currency": r.base,
                "quote_currency": r.quote,
                "counter_currency": r.quote,
                "settlement_currency": r.quote,
                "price_index": f"{r.base.lower()}_{r.quote.lower()}",
                "is_active": True,
                "max_leverage": int(r.max_leverage),
                "max_liquidation_commission": 0.0075,
                "tick_size": 0.5,
                "tick_size_steps": [],
                "min_trade_amount": 0.0001,
                "contract_size": 0.0001,
                "taker_commission": 0.0005,
                "maker_commission": 0.0,
                "block_trade_commission": 0.00025,
                "block_trade_min_trade_amount": 25,
                "block_trade_tick_size": 0.01,
                "creation_timestamp": created,
                "expiration_timestamp": DERIBIT_PERPETUAL_EXPIRY_MS,
                "rfq": False,
            }
            for i, r in enumerate(inst.itertuples())
        ],
    )


DERIBIT_FUNDING_PAGE = 744


async def deribit_funding_rate_history(request: web.Request) -> web.Response:
    """One record an hour: interest_1h of that hour and interest_8h of the 8 hours to it, at most 744.

    On the 8h grid interest_8h is the simulated market's settled rate (no record where its
    settlement is missing); between, it is deribit's formula on the trailing 8h mean premium.
    """
    from fund_pipeline.sources.simulated import funding_rate

    state = request.app[STATE]
    symbol = _deribit_instrument(request)
    start, end = _deribit_range(request)
    last = min(end, state.clock.now()).floor("h")
    first = max(start.ceil("h"), history_start() + 8 * HOUR)
    if last < first:
        return deribit_ok(state, [])
    first = max(first, last - (DERIBIT_FUNDING_PAGE - 1) * HOUR)
    bars = state.market.bars("deribit", first - 8 * HOUR, last)
    bars = bars[bars["symbol"] == symbol].set_index("ts").sort_index()
    premium = bars["mark_price"] / bars["index_price"] - 1
    hours = pd.date_range(first, last, freq="h")
    prior = hours - HOUR
    trailing = premium.rolling(8).mean().reindex(prior).to_numpy()
    interest_8h = pd.Series(funding_rate("deribit", trailing, 8), index=hours)
    interest_1h = funding_rate("deribit", premium.reindex(prior).to_numpy(), 1)
    settled = settled_prints(state, "deribit", symbol, first, last).set_index("funding_time")["rate"]
    on_grid = (hours.asi8 % (8 * HOUR).value) == 0
    interest_8h[on_grid] = settled.reindex(hours[on_grid]).to_numpy()
    index_price = bars["index_price"].reindex(prior).to_numpy()
    prev_index = bars["index_price"].reindex(prior - HOUR).to_numpy()
    out = [
        {
            "timestamp": to_ms(t),
            "index_price": float(index_price[i]),
            "prev_index_price": float(prev_index[i]) if not np.isnan(prev_index[i]) else float(index_price[i]),
            "interest_8h": float(interest_8h.iloc[i]),
            "interest_1h": float(interest_1h[i]),
        }
        for i, t in enumerate(hours)
        if not np.isnan(interest_8h.iloc[i])
    ]
    return deribit_ok(state, out)


DERIBIT_RESOLUTIONS = {"60": 1}
DERIBIT_CHART_BARS = 5000


async def deribit_chart_data(request: web.Request) -> web.Response:
    """TradingView columns (ticks = bar open ms; volume in base, cost in USD), the latest 5000 bars."""
    state = request.app[STATE]
    symbol = _deribit_instrument(request)
    timeframe_hours(request.query.get("resolution"), DERIBIT_RESOLUTIONS, "resolution")
    start, end = _deribit_range(request)
    bars = closed_bars(state, "deribit", symbol, start, end).tail(DERIBIT_CHART_BARS)
    if bars.empty:
        return deribit_ok(
            state,
            {
                "status": "no_data",
                "ticks": [],
                "open": [],
                "high": [],
                "low": [],
                "close": [],
                "volume": [],
                "cost": [],
            },
        )
    return deribit_ok(
        state,
        {
            "status": "ok",
            "ticks": [to_ms(t) for t in bars["ts"]],
            "open": bars["open"].tolist(),
            "high": bars["high"].tolist(),
            "low": bars["low"].tolist(),
            "close": bars["close"].tolist(),
            "volume": (bars["volume_usd"] / bars["close"]).tolist(),
            "cost": bars["volume_usd"].tolist(),
        },
    )


async def deribit_book_summary(request: web.Request) -> web.Response:
    """Per perp: 24h volume (base and USD) over the last 24 closed hours, open interest (base) at the last close."""
    state = request.app[STATE]
    currency = request.query.get("currency")
    if not currency:
        raise VenueRequestError(400, "Invalid params: currency is required")
    day = last_day_bars(state, "deribit")
    if currency != "USDC":
        day = day[day["base"] == currency]
    now = state.clock.now()
    out = []
    for symbol, bars in day.groupby("symbol", sort=True):
        last = bars.iloc[-1]
        out.append(
            {
                "instrument_name": deribit_name(symbol),
                "base_currency": last["base"],
                "quote_currency": "USDC",
                "volume": float((bars["volume_usd"] / bars["close"]).sum()),
                "volume_usd": float(bars["volume_usd"].sum()),
                "open_interest": float(last["open_interest_usd"] / last["close"]),
                "mark_price": float(last["mark_price"]),
                "estimated_delivery_price": float(last["index_price"]),
                "last": float(last["close"]),
                "high": float(bars["high"].max()),
                "low": float(bars["low"].min()),
                "current_funding": predicted_rate(state, "deribit", symbol, now),
                "funding_8h": predicted_rate(state, "deribit", symbol, now),
                "creation_timestamp": to_ms(now),
                "price_change": None,
                "mid_price": None,
                "bid_price": None,
                "ask_price": None,
                "interest_rate": 0.0,
            }
        )
    return deribit_ok(state, out)


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
    ("bybit", "GET", "/v5/market/instruments-info", bybit_instruments_info),
    ("bybit", "GET", "/v5/market/funding/history", bybit_funding_history),
    ("bybit", "GET", "/v5/market/kline", _bybit_kline("perp")),
    ("bybit", "GET", "/v5/market/mark-price-kline", _bybit_kline("mark")),
    ("bybit", "GET", "/v5/market/index-price-kline", _bybit_kline("index")),
    ("bybit", "GET", "/v5/market/open-interest", bybit_open_interest),
    ("bybit", "GET", "/v5/market/tickers", bybit_tickers),
    ("okx", "GET", "/api/v5/public/instruments", okx_instruments),
    ("okx", "GET", "/api/v5/public/funding-rate", okx_funding_rate),
    ("okx", "GET", "/api/v5/public/funding-rate-history", okx_funding_rate_history),
    ("okx", "GET", "/api/v5/market/candles", _okx_candles("perp", 300, recent_only=True)),
    ("okx", "GET", "/api/v5/market/history-candles", _okx_candles("perp", 100, recent_only=False)),
    ("okx", "GET", "/api/v5/market/mark-price-candles", _okx_candles("mark", 100, recent_only=True)),
    ("okx", "GET", "/api/v5/market/history-mark-price-candles", _okx_candles("mark", 100, recent_only=False)),
    ("okx", "GET", "/api/v5/market/index-candles", _okx_candles("index", 100, recent_only=True)),
    ("okx", "GET", "/api/v5/market/history-index-candles", _okx_candles("index", 100, recent_only=False)),
    ("okx", "GET", "/api/v5/rubik/stat/contracts/open-interest-volume", okx_open_interest_volume),
    ("okx", "GET", "/api/v5/market/tickers", okx_tickers),
    ("okx", "GET", "/api/v5/public/open-interest", okx_open_interest),
    ("deribit", "GET", "/api/v2/public/get_currencies", deribit_currencies),
    ("deribit", "GET", "/api/v2/public/get_instruments", deribit_instruments),
    ("deribit", "GET", "/api/v2/public/get_funding_rate_history", deribit_funding_rate_history),
    ("deribit", "GET", "/api/v2/public/get_tradingview_chart_data", deribit_chart_data),
    ("deribit", "GET", "/api/v2/public/get_book_summary_by_currency", deribit_book_summary),
]
