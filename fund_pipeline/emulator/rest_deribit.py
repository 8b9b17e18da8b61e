"""Deribit's v2 REST endpoints (USDC linear and BTC/ETH inverse perpetuals) in their real formats, from the simulated
market. The inverse ones (`BTC-PERPETUAL`, instrument_type "reversed") count amounts in USD contracts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from aiohttp import web

from fund_pipeline.emulator.rest_core import (
    HOUR,
    STATE,
    Handler,
    VenueRequestError,
    closed_bars,
    from_ms,
    history_start,
    last_day_bars,
    listed,
    predicted_rate,
    settled_prints,
    timeframe_hours,
    to_ms,
)
from fund_pipeline.venues.deribit import ADAPTER

# ---------------------------------------------------------------- deribit (v2; USDC linear perpetuals)

DERIBIT_PERPETUAL_EXPIRY_MS = 32503708800000

VENUE = ADAPTER.name


def deribit_ok(state, result) -> web.Response:
    us = int(state.clock.now().value // 1000)
    return web.json_response(
        {"jsonrpc": "2.0", "result": result, "usIn": us, "usOut": us + 60, "usDiff": 60, "testnet": False}
    )


def _deribit_row(request: web.Request):
    raw = request.query.get("instrument_name")
    if not raw:
        raise VenueRequestError(400, "Invalid params: instrument_name is required")
    inst = listed(request.app[STATE], VENUE)
    found = inst[inst["symbol"].map(ADAPTER.native_symbol) == raw]
    if found.empty:
        raise VenueRequestError(400, f"Invalid params: instrument_name {raw!r} not found", "-32602")
    return next(found.itertuples())


def _deribit_instrument(request: web.Request) -> str:
    return str(_deribit_row(request).symbol)


def _deribit_range(request: web.Request) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = from_ms(request.query.get("start_timestamp"), "start_timestamp")
    end = from_ms(request.query.get("end_timestamp"), "end_timestamp")
    if start is None or end is None:
        raise VenueRequestError(400, "Invalid params: start_timestamp and end_timestamp are required")
    return start, end


async def deribit_currencies(request: web.Request) -> web.Response:
    state = request.app[STATE]
    inst = listed(state, VENUE)
    codes = list(dict.fromkeys([*inst["base"], *inst["settle"]]))  # the inverse perps' USD is no currency there
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
    """Perpetuals (kind future): USDC linear ones and the coin's inverse ones; other kinds are served empty."""
    state = request.app[STATE]
    inst = listed(state, VENUE)
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
                "instrument_name": ADAPTER.native_symbol(r.symbol),
                "instrument_id": 100 + i,
                "kind": "future",
                "instrument_type": _kind(r),
                "future_type": _kind(r),
                "settlement_period": "perpetual",
                "base_currency": r.base,
                "quote_currency": r.quote,
                "counter_currency": r.quote,
                "settlement_currency": r.settle,
                "price_index": f"{r.base.lower()}_{r.quote.lower()}",
                "is_active": True,
                "max_leverage": int(r.max_leverage),
                "max_liquidation_commission": 0.0075,
                "tick_size": 0.5,
                "tick_size_steps": [],
                "min_trade_amount": r.contract_size if r.margin == "inverse" else 0.0001,
                "contract_size": r.contract_size if r.margin == "inverse" else 0.0001,
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


def _kind(row) -> str:
    """Deribit's instrument_type: "reversed" for an inverse perpetual."""
    return "reversed" if row.margin == "inverse" else "linear"


def _amount(coins: float, usd: float, row) -> float:
    """An amount as deribit counts it: USD contracts for inverse perpetuals, the coin for linear ones."""
    return usd if row.margin == "inverse" else coins


DERIBIT_FUNDING_PAGE = 744


async def deribit_funding_rate_history(request: web.Request) -> web.Response:
    """One record an hour: interest_1h of that hour and interest_8h of the 8 hours to it, at most 744.

    On the 8h grid interest_8h is the simulated market's settled rate (no record where its
    settlement is missing); between, the trailing 8h mean of deribit's formula on each hour's premium (its
    damper applies to every measurement, as the settlement's does).
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
    bars = state.market.bars(VENUE, first - 8 * HOUR, last)
    bars = bars[bars["symbol"] == symbol].set_index("ts").sort_index()
    premium = bars["mark_price"] / bars["index_price"] - 1
    hours = pd.date_range(first, last, freq="h")
    prior = hours - HOUR
    hourly_8h = pd.Series(funding_rate(VENUE, premium.to_numpy(), 8), index=premium.index)
    interest_8h = pd.Series(hourly_8h.rolling(8).mean().reindex(prior).to_numpy(), index=hours)
    interest_1h = funding_rate(VENUE, premium.reindex(prior).to_numpy(), 1)
    settled = settled_prints(state, VENUE, symbol, first, last).set_index("funding_time")["rate"]
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


async def deribit_funding_rate_value(request: web.Request) -> web.Response:
    """/public/get_funding_rate_value: the funding accrued over [start, end], the sum of the hourly rates
    (deribit's formula on each closed hour's premium) of the hours that have closed inside it."""
    from fund_pipeline.sources.simulated import funding_rate

    state = request.app[STATE]
    symbol = _deribit_instrument(request)
    start, end = _deribit_range(request)
    bars = closed_bars(state, VENUE, symbol, start.floor("h"), end - HOUR)
    premium = (bars["mark_price"] / bars["index_price"] - 1).to_numpy()
    return deribit_ok(state, float(funding_rate(VENUE, premium, 1).sum()))


async def deribit_ticker(request: web.Request) -> web.Response:
    """/public/ticker: prices and open interest at the last closed hour, 24h stats, the running funding."""
    state = request.app[STATE]
    row = _deribit_row(request)
    day = last_day_bars(state, VENUE)
    bars = day[day["symbol"] == row.symbol]
    if bars.empty:
        raise VenueRequestError(400, f"no closed hour yet for {row.symbol}")
    last = bars.iloc[-1]
    now = state.clock.now()
    coins = float((bars["volume_usd"] / bars["close"]).sum())
    rate = predicted_rate(state, VENUE, str(row.symbol), now)
    return deribit_ok(
        state,
        {
            "instrument_name": ADAPTER.native_symbol(row.symbol),
            "timestamp": to_ms(now),
            "state": "open",
            "last_price": float(last["close"]),
            "mark_price": float(last["mark_price"]),
            "index_price": float(last["index_price"]),
            "estimated_delivery_price": float(last["index_price"]),
            "settlement_price": float(last["mark_price"]),
            "open_interest": _amount(
                float(last["open_interest_usd"] / last["close"]), float(last["open_interest_usd"]), row
            ),
            "current_funding": rate,
            "funding_8h": rate,
            "interest_value": 0.0,
            "min_price": float(last["mark_price"]) * 0.985,
            "max_price": float(last["mark_price"]) * 1.015,
            "stats": {
                "volume": coins,
                "volume_usd": float(bars["volume_usd"].sum()),
                "price_change": float(100 * (last["close"] / bars["open"].iloc[0] - 1)),
                "high": float(bars["high"].max()),
                "low": float(bars["low"].min()),
            },
        },
    )


DERIBIT_RESOLUTIONS = {"60": 1}
DERIBIT_CHART_BARS = 5000


async def deribit_chart_data(request: web.Request) -> web.Response:
    """TradingView columns (ticks = bar open ms; volume in base, cost in USD), the latest 5000 bars."""
    state = request.app[STATE]
    symbol = _deribit_instrument(request)
    timeframe_hours(request.query.get("resolution"), DERIBIT_RESOLUTIONS, "resolution")
    start, end = _deribit_range(request)
    bars = closed_bars(state, VENUE, symbol, start, end).tail(DERIBIT_CHART_BARS)
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
    day = last_day_bars(state, VENUE)
    inst = listed(state, VENUE)
    inst = inst[inst["margin"] == "linear"] if currency == "USDC" else inst[inst["base"] == currency]
    now = state.clock.now()
    out = []
    for row in inst.sort_values("symbol").itertuples():
        symbol = str(row.symbol)
        bars = day[day["symbol"] == symbol]
        if bars.empty:
            continue
        last = bars.iloc[-1]
        out.append(
            {
                "instrument_name": ADAPTER.native_symbol(symbol),
                "base_currency": row.base,
                "quote_currency": row.quote,
                "volume": float((bars["volume_usd"] / bars["close"]).sum()),
                "volume_usd": float(bars["volume_usd"].sum()),
                "open_interest": _amount(
                    float(last["open_interest_usd"] / last["close"]), float(last["open_interest_usd"]), row
                ),
                "mark_price": float(last["mark_price"]),
                "estimated_delivery_price": float(last["index_price"]),
                "last": float(last["close"]),
                "high": float(bars["high"].max()),
                "low": float(bars["low"].min()),
                "current_funding": predicted_rate(state, VENUE, symbol, now),
                "funding_8h": predicted_rate(state, VENUE, symbol, now),
                "creation_timestamp": to_ms(now),
                "price_change": None,
                "mid_price": None,
                "bid_price": None,
                "ask_price": None,
                "interest_rate": 0.0,
            }
        )
    return deribit_ok(state, out)


async def deribit_time(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return deribit_ok(state, to_ms(state.clock.now()))


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/api/v2/public/get_time", deribit_time),
    ("GET", "/api/v2/public/get_currencies", deribit_currencies),
    ("GET", "/api/v2/public/get_instruments", deribit_instruments),
    ("GET", "/api/v2/public/get_funding_rate_history", deribit_funding_rate_history),
    ("GET", "/api/v2/public/get_tradingview_chart_data", deribit_chart_data),
    ("GET", "/api/v2/public/get_book_summary_by_currency", deribit_book_summary),
    ("GET", "/api/v2/public/get_funding_rate_value", deribit_funding_rate_value),
    ("GET", "/api/v2/public/ticker", deribit_ticker),
]
