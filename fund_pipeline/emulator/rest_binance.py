"""Binance's REST endpoints (spot and USD-M futures) in their real formats, from the simulated market."""

from __future__ import annotations

import numpy as np
from aiohttp import web

from fund_pipeline.emulator.rest_core import (
    HOUR,
    MS,
    STATE,
    Handler,
    VenueRequestError,
    closed_bars,
    depth_floor,
    from_ms,
    history_start,
    int_param,
    listed,
    num,
    ohlc_of,
    page,
    premium_minutes,
    settled_prints,
    symbol_of,
    timeframe_hours,
    to_ms,
)
from fund_pipeline.venues.binance import ADAPTER

# ---------------------------------------------------------------- binance (spot + USD-M futures)

VENUE = ADAPTER.name
MINUTE_MS = 60_000


async def binance_spot_exchange_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    symbols = [
        {
            "symbol": ADAPTER.native_symbol(row.symbol),
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
        for row in listed(state, VENUE).itertuples()
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
            "symbol": ADAPTER.native_symbol(row.symbol),
            "pair": ADAPTER.native_symbol(row.symbol),
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
        for row in listed(state, VENUE).itertuples()
    ]
    return web.json_response(
        {"timezone": "UTC", "serverTime": to_ms(state.clock.now()), "rateLimits": [], "assets": [], "symbols": symbols}
    )


def _binance_symbol(request: web.Request, param: str = "symbol") -> str:
    state = request.app[STATE]
    raw = request.query.get(param)
    if not raw:
        raise VenueRequestError(400, f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed.")
    inst = listed(state, VENUE)
    return symbol_of(inst, raw, inst["symbol"].map(ADAPTER.native_symbol))


async def binance_funding_rate(request: web.Request) -> web.Response:
    state = request.app[STATE]
    symbol = _binance_symbol(request)
    start = from_ms(request.query.get("startTime"), "startTime")
    end = from_ms(request.query.get("endTime"), "endTime")
    limit = int_param(request.query.get("limit"), "limit", 100, 1000)
    rows = page(settled_prints(state, VENUE, symbol, start, end), limit, from_start=start is not None)
    return web.json_response(
        [
            {
                "symbol": ADAPTER.native_symbol(symbol),
                "fundingTime": to_ms(row.funding_time),
                "fundingRate": num(row.rate),
                "markPrice": num(row.mark_price),
            }
            for row in rows.itertuples()
        ]
    )


async def binance_funding_info(request: web.Request) -> web.Response:
    """Binance lists only symbols with non-default funding settings (interval other than 8h)."""
    inst = listed(request.app[STATE], VENUE)
    return web.json_response(
        [
            {
                "symbol": ADAPTER.native_symbol(row.symbol),
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
        bars = page(closed_bars(state, VENUE, symbol, start, end), limit, from_start=start is not None)
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


async def binance_premium_index_klines(request: web.Request) -> web.Response:
    """/fapi/v1/premiumIndexKlines: one-minute klines of the premium index (no volume)."""
    state = request.app[STATE]
    symbol = _binance_symbol(request)
    if request.query.get("interval") != "1m":
        raise VenueRequestError(400, "Invalid interval.", "-1120")
    start = from_ms(request.query.get("startTime"), "startTime")
    end = from_ms(request.query.get("endTime"), "endTime")
    limit = int_param(request.query.get("limit"), "limit", 500, 1500)
    rows = page(premium_minutes(state, VENUE, symbol, start, end), limit, from_start=start is not None)
    return web.json_response(
        [
            [t, num(p), num(p), num(p), num(p), "0", t + MINUTE_MS - 1, "0", 0, "0", "0", "0"]
            for t, p in zip((to_ms(x) for x in rows["open_time"]), rows["premium"], strict=True)
        ]
    )


async def binance_open_interest_hist(request: web.Request) -> web.Response:
    state = request.app[STATE]
    symbol = _binance_symbol(request)
    timeframe_hours(request.query.get("period"), BINANCE_INTERVALS, "period")
    start = from_ms(request.query.get("startTime"), "startTime")
    end = from_ms(request.query.get("endTime"), "endTime")
    limit = int_param(request.query.get("limit"), "limit", 30, 500)
    oldest = depth_floor(state, VENUE, "/futures/data/openInterestHist")
    if oldest is not None and start is not None and start < oldest:
        raise VenueRequestError(400, "Parameter 'startTime' is invalid: only the latest 30 days are served.", "-1130")
    bars = page(closed_bars(state, VENUE, symbol, start, end), limit, from_start=start is not None)
    return web.json_response(
        [
            {
                "symbol": ADAPTER.native_symbol(symbol),
                "sumOpenInterest": num(row.open_interest_usd / row.close),
                "sumOpenInterestValue": num(row.open_interest_usd),
                "timestamp": to_ms(row.ts),
            }
            for row in bars.itertuples()
        ]
    )


async def binance_time(request: web.Request) -> web.Response:
    return web.json_response({"serverTime": to_ms(request.app[STATE].clock.now())})


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/fapi/v1/time", binance_time),
    ("GET", "/api/v3/exchangeInfo", binance_spot_exchange_info),
    ("GET", "/api/v3/klines", _binance_klines("spot", 1000)),
    ("GET", "/fapi/v1/exchangeInfo", binance_futures_exchange_info),
    ("GET", "/fapi/v1/fundingRate", binance_funding_rate),
    ("GET", "/fapi/v1/fundingInfo", binance_funding_info),
    ("GET", "/fapi/v1/klines", _binance_klines("perp", 1500)),
    ("GET", "/fapi/v1/markPriceKlines", _binance_klines("mark", 1500)),
    ("GET", "/fapi/v1/indexPriceKlines", _binance_klines("index", 1500, symbol_param="pair")),
    ("GET", "/fapi/v1/premiumIndexKlines", binance_premium_index_klines),
    ("GET", "/futures/data/openInterestHist", binance_open_interest_hist),
]
