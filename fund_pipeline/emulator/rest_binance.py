"""Binance's REST endpoints (spot, USD-M and COIN-M futures) in their real formats, from the simulated market.

USD-M (`/fapi`) lists the linear perps, COIN-M (`/dapi`) the coin-margined ones (`BTCUSD_PERP`), whose
sizes count contracts of `contractSize` USD: kline and ticker `volume` in contracts beside a `baseVolume`
in the coin, open interest in contracts and its value in the coin. `/futures/data` serves both, as
ccxt addresses it (COIN-M requests name a `pair` and a `contractType`).
"""

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
    contracts,
    depth_floor,
    from_ms,
    history_start,
    int_param,
    last_day_bars,
    listed,
    next_funding_times,
    num,
    ohlc_of,
    page,
    predicted_rate,
    premium_minutes,
    settled_prints,
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
        for row in listed(state, VENUE, "linear").itertuples()
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


def _margin(request: web.Request) -> str:
    """The perps a request addresses: COIN-M's (`/dapi`, or `/futures/data` naming a pair) or USD-M's."""
    coin_m = request.path.startswith(f"/{VENUE}/dapi/") or (
        request.path.startswith(f"/{VENUE}/futures/data/") and "pair" in request.query
    )
    return "inverse" if coin_m else "linear"


def _pair(row) -> str:
    """COIN-M's `pair` (BTCUSD) of a perp; a USD-M perp's pair is its symbol."""
    return f"{row.base}{row.quote}" if row.margin == "inverse" else ADAPTER.native_symbol(row.symbol)


async def binance_futures_exchange_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    symbols = []
    for row in listed(state, VENUE, _margin(request)).itertuples():
        symbol = {
            "symbol": ADAPTER.native_symbol(row.symbol),
            "pair": _pair(row),
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": to_ms(history_start()),
            "baseAsset": row.base,
            "quoteAsset": row.quote,
            "marginAsset": row.settle,
            "pricePrecision": 2 if row.margin == "linear" else 1,
            "quantityPrecision": 3 if row.margin == "linear" else 0,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "triggerProtect": "0.0500",
            "filters": _binance_filters(),
            "orderTypes": ["LIMIT", "MARKET"],
            "timeInForce": ["GTC"],
        }
        if row.margin == "inverse":  # COIN-M states contractStatus and contractSize, USD-M a status
            symbol |= {"contractStatus": "TRADING", "contractSize": int(row.contract_size), "equalQtyPrecision": 4}
        else:
            symbol["status"] = "TRADING"
        symbols.append(symbol)
    return web.json_response(
        {"timezone": "UTC", "serverTime": to_ms(state.clock.now()), "rateLimits": [], "assets": [], "symbols": symbols}
    )


def _binance_instrument(request: web.Request, param: str = "symbol"):
    """The listed perp named by `param` among those the request's API serves (USD-M or COIN-M).

    A COIN-M `pair` (BTCUSD) names its perp; so does the perp's symbol (BTCUSD_PERP), which is what ccxt sends.
    """
    raw = request.query.get(param)
    if not raw:
        raise VenueRequestError(400, f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed.")
    inst = listed(request.app[STATE], VENUE, _margin(request))
    for row in inst.itertuples():
        if raw == ADAPTER.native_symbol(row.symbol) or (param == "pair" and raw == _pair(row)):
            return row
    raise VenueRequestError(400, "Invalid symbol.", "-1121")


def _binance_symbol(request: web.Request, param: str = "symbol") -> str:
    return str(_binance_instrument(request, param).symbol)


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
    """Binance lists only symbols with non-default funding settings: those whose interval is not its default 8h
    or whose cap and floor are their own (the simulated market's `funding_formulas`: what they settle with)."""
    state = request.app[STATE]
    inst = listed(state, VENUE, _margin(request))
    formulas = state.market.funding_formulas(VENUE, [str(s) for s in inst["symbol"]])
    rows = []
    for row in inst.itertuples():
        formula, default = formulas[row.symbol], ADAPTER.funding_formula(row.symbol)
        own_bounds = (formula.cap, formula.lower) != (default.cap, default.lower)
        if own_bounds or row.interval_h != ADAPTER.facts.default_interval_h:
            rows.append(
                {
                    "symbol": ADAPTER.native_symbol(row.symbol),
                    "adjustedFundingRateCap": f"{formula.cap:.8f}",
                    "adjustedFundingRateFloor": f"{formula.lower:.8f}",
                    "fundingIntervalHours": int(row.interval_h),
                    "disclaimer": False,
                }
            )
    return web.json_response(rows)


BINANCE_INTERVALS = {"1h": 1}


def _binance_klines(price: str, max_limit: int, symbol_param: str = "symbol") -> Handler:
    async def klines(request: web.Request) -> web.Response:
        state = request.app[STATE]
        instrument = _binance_instrument(request, symbol_param)
        symbol = str(instrument.symbol)
        coin_m = instrument.margin == "inverse"
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
            # USD-M: volume in the coin, then quote volume; COIN-M: volume in contracts, then in the coin.
            volume, second = (contracts(qv, instrument), base_volume) if coin_m else (base_volume, qv)
            out.append(
                [
                    to_ms(ts),
                    num(o.iloc[i]),
                    num(h.iloc[i]),
                    num(l.iloc[i]),
                    num(c.iloc[i]),
                    num(volume),
                    to_ms(ts + HOUR - MS),
                    num(second),
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
    """USD-M by `symbol`: open interest in the coin, its value in USD. COIN-M by `pair` and `contractType`
    (PERPETUAL: the emulator lists no dated futures): open interest in contracts, its value in the coin."""
    state = request.app[STATE]
    coin_m = _margin(request) == "inverse"
    if coin_m and request.query.get("contractType") != "PERPETUAL":
        raise VenueRequestError(400, "contractType: the emulator lists only PERPETUAL contracts.", "-1130")
    instrument = _binance_instrument(request, "pair" if coin_m else "symbol")
    symbol = str(instrument.symbol)
    timeframe_hours(request.query.get("period"), BINANCE_INTERVALS, "period")
    start = from_ms(request.query.get("startTime"), "startTime")
    end = from_ms(request.query.get("endTime"), "endTime")
    limit = int_param(request.query.get("limit"), "limit", 30, 500)
    oldest = depth_floor(state, VENUE, "/futures/data/openInterestHist")
    if oldest is not None and start is not None and start < oldest:
        raise VenueRequestError(400, "Parameter 'startTime' is invalid: only the latest 30 days are served.", "-1130")
    bars = page(closed_bars(state, VENUE, symbol, start, end), limit, from_start=start is not None)
    if coin_m:
        return web.json_response(
            [
                {
                    "pair": _pair(instrument),
                    "contractType": "PERPETUAL",
                    "sumOpenInterest": num(contracts(row.open_interest_usd, instrument)),
                    "sumOpenInterestValue": num(row.open_interest_usd / row.close),
                    "timestamp": to_ms(row.ts),
                }
                for row in bars.itertuples()
            ]
        )
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


def _requested(request: web.Request):
    """The perps a market-wide endpoint answers for: the one named by `symbol`, else all the API lists."""
    if request.query.get("symbol"):
        return [_binance_instrument(request)]
    return list(listed(request.app[STATE], VENUE, _margin(request)).itertuples())


def _one_or_all(request: web.Request, items: list[dict]) -> web.Response:
    """USD-M answers one object when a symbol is named, COIN-M always a list."""
    if request.query.get("symbol") and _margin(request) == "linear":
        return web.json_response(items[0])
    return web.json_response(items)


async def binance_premium_index(request: web.Request) -> web.Response:
    """/premiumIndex: mark and index price at the last closed hour, the running window's predicted rate."""
    state = request.app[STATE]
    now = state.clock.now()
    day = last_day_bars(state, VENUE)
    items = []
    for row in _requested(request):
        bars = day[day["symbol"] == row.symbol]
        if bars.empty:
            continue
        last = bars.iloc[-1]
        funding_time, _ = next_funding_times(row, now, state.market, VENUE)
        item = {
            "symbol": ADAPTER.native_symbol(row.symbol),
            "markPrice": num(last["mark_price"]),
            "indexPrice": num(last["index_price"]),
            "estimatedSettlePrice": num(last["index_price"]),
            "lastFundingRate": num(predicted_rate(state, VENUE, row.symbol, now)),
            "interestRate": num(ADAPTER.facts.interest_rate_8h),
            "nextFundingTime": to_ms(funding_time),
            "time": to_ms(now),
        }
        items.append({"pair": _pair(row)} | item if row.margin == "inverse" else item)
    return _one_or_all(request, items)


async def binance_ticker_24hr(request: web.Request) -> web.Response:
    """/ticker/24hr over the last 24 closed hours (COIN-M: volume in contracts, baseVolume in the coin)."""
    state = request.app[STATE]
    day = last_day_bars(state, VENUE)
    items = []
    for row in _requested(request):
        bars = day[day["symbol"] == row.symbol]
        if bars.empty:
            continue
        usd = float(bars["volume_usd"].sum())
        coins = float((bars["volume_usd"] / bars["close"]).sum())
        first, last = bars["open"].iloc[0], bars["close"].iloc[-1]
        item = {
            "symbol": ADAPTER.native_symbol(row.symbol),
            "priceChange": num(last - first),
            "priceChangePercent": num(100 * (last / first - 1)),
            "weightedAvgPrice": num(usd / coins),
            "lastPrice": num(last),
            "openPrice": num(first),
            "highPrice": num(bars["high"].max()),
            "lowPrice": num(bars["low"].min()),
            "openTime": to_ms(bars["ts"].iloc[0]),
            "closeTime": to_ms(bars["ts"].iloc[-1] + HOUR - MS),
        }
        if row.margin == "inverse":
            item |= {"pair": _pair(row), "volume": num(contracts(usd, row)), "baseVolume": num(coins)}
        else:
            item |= {"volume": num(coins), "quoteVolume": num(usd)}
        items.append(item)
    return _one_or_all(request, items)


async def binance_time(request: web.Request) -> web.Response:
    return web.json_response({"serverTime": to_ms(request.app[STATE].clock.now())})


# The futures routes USD-M serves under /fapi/v1 and COIN-M under /dapi/v1, with their page limits.
FUTURES_ROUTES: list[tuple[str, Handler]] = [
    ("/time", binance_time),
    ("/exchangeInfo", binance_futures_exchange_info),
    ("/fundingRate", binance_funding_rate),
    ("/fundingInfo", binance_funding_info),
    ("/premiumIndex", binance_premium_index),
    ("/ticker/24hr", binance_ticker_24hr),
    ("/klines", _binance_klines("perp", 1500)),
    ("/markPriceKlines", _binance_klines("mark", 1500)),
    ("/indexPriceKlines", _binance_klines("index", 1500, symbol_param="pair")),
    ("/premiumIndexKlines", binance_premium_index_klines),
]

ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/api/v3/exchangeInfo", binance_spot_exchange_info),
    ("GET", "/api/v3/klines", _binance_klines("spot", 1000)),
    *(("GET", f"/{api}/v1{path}", handler) for api in ("fapi", "dapi") for path, handler in FUTURES_ROUTES),
    ("GET", "/futures/data/openInterestHist", binance_open_interest_hist),
]
