"""Bybit's v5 REST endpoints (spot, linear and inverse categories) in their real formats, from the simulated market.

Inverse perpetuals count size in USD contracts (1 USD each): their kline `volume`, open interest and
ticker `volume24h` are in contracts, `turnover` in the coin; linear ones count in the base coin.
"""

from __future__ import annotations

import pandas as pd
from aiohttp import web

from fund_pipeline.domain.predicted import FundingFormula
from fund_pipeline.emulator.rest_core import (
    MS,
    STATE,
    Handler,
    VenueRequestError,
    closed_bars,
    contracts,
    from_ms,
    history_start,
    int_param,
    last_day_bars,
    listed,
    newest_first,
    next_funding_times,
    num,
    ohlc_of,
    predicted_rate,
    premium_minutes,
    settled_prints,
    timeframe_hours,
    to_ms,
)
from fund_pipeline.venues.bybit import ADAPTER

# ---------------------------------------------------------------- bybit (v5; spot and linear categories)

VENUE = ADAPTER.name


def bybit_ok(state, result: dict) -> web.Response:
    return web.json_response(
        {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": to_ms(state.clock.now())}
    )


def _bybit_category(request: web.Request, allowed: tuple[str, ...]) -> str:
    category = request.query.get("category", "")
    if category not in allowed:
        raise VenueRequestError(400, f"Illegal category {category!r}; the emulator serves {list(allowed)}", "10001")
    return category


# The perps' margin each derivatives category lists; spot pairs are those of the linear perps' bases.
CATEGORY_MARGIN = {"spot": "linear", "linear": "linear", "inverse": "inverse"}
DERIVATIVES = ("linear", "inverse")


def _bybit_listed(request: web.Request, category: str) -> pd.DataFrame:
    return listed(request.app[STATE], VENUE, CATEGORY_MARGIN[category])


def _bybit_instrument(request: web.Request, category: str):
    """The listed instrument row named by `symbol` within `category`."""
    raw = request.query.get("symbol")
    if not raw:
        raise VenueRequestError(400, "params error: symbol is required", "10001")
    inst = _bybit_listed(request, category)
    found = inst[inst["symbol"].map(ADAPTER.native_symbol) == raw]
    if found.empty:
        raise VenueRequestError(400, f"params error: symbol invalid {raw!r} in category {category}", "10001")
    return next(found.itertuples())


def _bybit_symbol(request: web.Request, category: str = "linear") -> str:
    return str(_bybit_instrument(request, category).symbol)


def _bybit_range(request: web.Request, start_key: str, end_key: str) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    return from_ms(request.query.get(start_key), start_key), from_ms(request.query.get(end_key), end_key)


async def bybit_instruments_info(request: web.Request) -> web.Response:
    """Spot, linear and inverse instruments; the option category is served empty.

    A `status` filter other than Trading (e.g. PreLaunch) matches nothing; `cursor` is an offset.
    """
    state = request.app[STATE]
    category = _bybit_category(request, ("spot", "linear", "inverse", "option"))
    limit = int_param(request.query.get("limit"), "limit", 500, 1000)
    offset = int(request.query.get("cursor") or 0)
    status = request.query.get("status", "Trading")
    inst = _bybit_listed(request, category) if category in CATEGORY_MARGIN else listed(state, VENUE)[:0]
    if status != "Trading":
        inst = inst[:0]
    page = inst.iloc[offset : offset + limit]
    if category == "spot":
        rows = [_bybit_spot_instrument(r) for r in page.itertuples()]
    else:
        formulas = state.market.funding_formulas(VENUE, [str(s) for s in page["symbol"]])
        rows = [_bybit_perp_instrument(r, formulas[r.symbol]) for r in page.itertuples()]
    cursor = str(offset + limit) if offset + limit < len(inst) else ""
    return bybit_ok(state, {"category": category, "list": rows, "nextPageCursor": cursor})


def _bybit_spot_instrument(row) -> dict:
    return {
        "symbol": ADAPTER.native_symbol(row.symbol),
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


def _bybit_perp_instrument(row, formula: FundingFormula) -> dict:
    """One perp as instruments-info lists it; its funding bounds are those it settles with (`formula`)."""
    inverse = row.margin == "inverse"
    return {
        "symbol": ADAPTER.native_symbol(row.symbol),
        "contractType": "InversePerpetual" if inverse else "LinearPerpetual",
        "status": "Trading",
        "baseCoin": row.base,
        "quoteCoin": row.quote,
        "settleCoin": row.settle,
        "launchTime": str(to_ms(history_start())),
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": "2",
        "leverageFilter": {"minLeverage": "1", "maxLeverage": f"{row.max_leverage:.2f}", "leverageStep": "0.01"},
        "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
        "lotSizeFilter": (
            {"maxOrderQty": "150000000", "minOrderQty": "1", "qtyStep": "1", "postOnlyMaxOrderQty": "150000000"}
            if inverse
            else {
                "maxOrderQty": "1190.000",
                "minOrderQty": "0.001",
                "qtyStep": "0.001",
                "postOnlyMaxOrderQty": "1190.000",
                "maxMktOrderQty": "500.000",
                "minNotionalValue": "5",
            }
        ),
        "unifiedMarginTrade": not inverse,
        "fundingInterval": int(row.interval_h * 60),
        "copyTrading": "both",
        "upperFundingRate": num(formula.cap),
        "lowerFundingRate": num(formula.lower),
        "isPreListing": False,
        "preListingInfo": None,
    }


async def bybit_funding_history(request: web.Request) -> web.Response:
    """Newest first, at most `limit` (<= 200) rows; startTime needs endTime, as on bybit."""
    state = request.app[STATE]
    category = _bybit_category(request, DERIVATIVES)
    symbol = _bybit_symbol(request, category)
    start, end = _bybit_range(request, "startTime", "endTime")
    if start is not None and end is None:
        raise VenueRequestError(400, "startTime and endTime must be passed together or both omitted", "10001")
    limit = int_param(request.query.get("limit"), "limit", 200, 200)
    rows = newest_first(settled_prints(state, VENUE, symbol, start, end), limit)
    return bybit_ok(
        state,
        {
            "category": category,
            "list": [
                {
                    "symbol": ADAPTER.native_symbol(symbol),
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
        category = _bybit_category(request, ("spot", *DERIVATIVES) if price == "perp" else DERIVATIVES)
        instrument = _bybit_instrument(request, category)
        symbol = str(instrument.symbol)
        timeframe_hours(request.query.get("interval"), BYBIT_INTERVALS, "interval")
        start, end = _bybit_range(request, "start", "end")
        limit = int_param(request.query.get("limit"), "limit", 200, 1000)
        bars = newest_first(closed_bars(state, VENUE, symbol, start, end), limit)
        o, h, l, c, quote_volume = ohlc_of(bars, "spot" if category == "spot" else price)
        rows = []
        for i in range(len(bars)):
            row = [str(to_ms(bars["ts"].iloc[i])), num(o.iloc[i]), num(h.iloc[i]), num(l.iloc[i]), num(c.iloc[i])]
            if price == "perp" and category == "inverse":
                row += [num(contracts(quote_volume.iloc[i], instrument)), num(quote_volume.iloc[i] / c.iloc[i])]
            elif price == "perp":
                row += [num(quote_volume.iloc[i] / c.iloc[i]), num(quote_volume.iloc[i])]
            rows.append(row)
        return bybit_ok(state, {"symbol": ADAPTER.native_symbol(symbol), "category": category, "list": rows})

    return kline


async def bybit_premium_index_kline(request: web.Request) -> web.Response:
    """/v5/market/premium-index-price-kline at interval 1 (minute): newest first, limit <= 1000, no volume."""
    state = request.app[STATE]
    _bybit_category(request, ("linear",))
    symbol = _bybit_symbol(request)
    if request.query.get("interval") != "1":
        raise VenueRequestError(400, "Invalid period!", "10001")
    start, end = _bybit_range(request, "start", "end")
    limit = int_param(request.query.get("limit"), "limit", 200, 1000)
    rows = newest_first(premium_minutes(state, VENUE, symbol, start, end), limit)
    listed_rows = [
        [str(to_ms(t)), num(p), num(p), num(p), num(p)] for t, p in zip(rows["open_time"], rows["premium"], strict=True)
    ]
    return bybit_ok(state, {"symbol": ADAPTER.native_symbol(symbol), "category": "linear", "list": listed_rows})


BYBIT_OI_INTERVALS = {"1h": 1}


async def bybit_open_interest(request: web.Request) -> web.Response:
    """Open interest at each hour (bar open time), newest first, limit <= 200, cursor paging.

    Linear perps count it in the base coin, inverse ones in USD contracts.
    """
    state = request.app[STATE]
    category = _bybit_category(request, DERIVATIVES)
    instrument = _bybit_instrument(request, category)
    symbol = str(instrument.symbol)
    timeframe_hours(request.query.get("intervalTime"), BYBIT_OI_INTERVALS, "intervalTime")
    start, end = _bybit_range(request, "startTime", "endTime")
    cursor = from_ms(request.query.get("cursor"), "cursor")
    if cursor is not None:
        end = cursor - MS if end is None else min(end, cursor - MS)
    limit = int_param(request.query.get("limit"), "limit", 50, 200)
    everything = closed_bars(state, VENUE, symbol, start, end)
    bars = newest_first(everything, limit)
    more = len(everything) > limit
    return bybit_ok(
        state,
        {
            "symbol": ADAPTER.native_symbol(symbol),
            "category": category,
            "list": [
                {"openInterest": num(_open_interest(r, instrument)), "timestamp": str(to_ms(r.ts))}
                for r in bars.itertuples()
            ],
            "nextPageCursor": str(to_ms(bars["ts"].iloc[-1])) if more else "",
        },
    )


def _open_interest(bar, instrument) -> float:
    """Open interest as bybit counts it: base coin for linear perps, USD contracts for inverse ones."""
    if instrument.margin == "inverse":
        return contracts(bar.open_interest_usd, instrument)
    return float(bar.open_interest_usd / bar.close)


async def bybit_tickers(request: web.Request) -> web.Response:
    """24h volume and turnover over the last 24 closed hours; OI at the last close; the predicted rate.

    Inverse perps: `volume24h` in USD contracts, `turnover24h` and `openInterestValue` in the coin.
    """
    state = request.app[STATE]
    category = _bybit_category(request, ("spot", *DERIVATIVES))
    now = state.clock.now()
    inst = _bybit_listed(request, category)
    if request.query.get("symbol"):
        wanted = _bybit_symbol(request, category)
        inst = inst[inst["symbol"] == wanted]
    day = last_day_bars(state, VENUE)
    out = []
    for row in inst.itertuples():
        bars = day[day["symbol"] == row.symbol]
        if bars.empty:
            continue
        prefix = "spot_" if category == "spot" else ""
        last = bars.iloc[-1]
        turnover = bars[f"{prefix}volume_usd"]
        coins = (turnover / bars[f"{prefix}close"]).sum()
        inverse = category == "inverse"
        ticker = {
            "symbol": ADAPTER.native_symbol(row.symbol),
            "lastPrice": num(last[f"{prefix}close"]),
            "prevPrice24h": num(bars[f"{prefix}open"].iloc[0]),
            "highPrice24h": num(bars[f"{prefix}high"].max()),
            "lowPrice24h": num(bars[f"{prefix}low"].min()),
            "turnover24h": num(coins if inverse else turnover.sum()),
            "volume24h": num(contracts(turnover.sum(), row) if inverse else coins),
        }
        if category in DERIVATIVES:
            value = last["open_interest_usd"] / last["close"] if inverse else last["open_interest_usd"]
            funding_time, _ = next_funding_times(row, now, state.market, VENUE)
            ticker.update(
                {
                    "indexPrice": num(last["index_price"]),
                    "markPrice": num(last["mark_price"]),
                    "openInterest": num(_open_interest(last, row)),
                    "openInterestValue": num(value),
                    "fundingRate": num(predicted_rate(state, VENUE, row.symbol, now)),
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


async def bybit_time(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ns = state.clock.now().value
    return bybit_ok(state, {"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)})


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v5/market/time", bybit_time),
    ("GET", "/v5/market/instruments-info", bybit_instruments_info),
    ("GET", "/v5/market/funding/history", bybit_funding_history),
    ("GET", "/v5/market/kline", _bybit_kline("perp")),
    ("GET", "/v5/market/mark-price-kline", _bybit_kline("mark")),
    ("GET", "/v5/market/index-price-kline", _bybit_kline("index")),
    ("GET", "/v5/market/premium-index-price-kline", bybit_premium_index_kline),
    ("GET", "/v5/market/open-interest", bybit_open_interest),
    ("GET", "/v5/market/tickers", bybit_tickers),
]
