"""Hyperliquid's REST API (one POST /info endpoint) in its real format, from the simulated market.

The request types ccxt's default `load_markets` sends are all served: `metaAndAssetCtxs` (the perps and
their live contexts), `spotMetaAndAssetCtxs` (USDC only: no spot pair is simulated) and `perpDexs` (the
first, default dex only: no HIP-3 dex is simulated).
"""

from __future__ import annotations

import pandas as pd
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
    last_day_bars,
    listed,
    num,
    page,
    predicted_rate,
    settled_prints,
    symbol_of,
    timeframe_hours,
    to_ms,
    window_premiums,
)
from fund_pipeline.venues.hyperliquid import ADAPTER

# ---------------------------------------------------------------- hyperliquid (one POST /info endpoint)

VENUE = ADAPTER.name


def _hyperliquid_symbol(state, coin) -> str:
    inst = listed(state, VENUE)
    return symbol_of(inst, str(coin), inst["base"])


USDC = {
    "name": "USDC",
    "szDecimals": 8,
    "weiDecimals": 8,
    "index": 0,
    "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054",
    "isCanonical": True,
    "evmContract": None,
    "fullName": None,
}


def _asset_contexts(state, inst: pd.DataFrame) -> list[dict]:
    """Each perp's context now: the running hour's predicted rate, OI (coins) and prices at the last closed
    hour, 24h notional volume and the price 24h earlier."""
    now = state.clock.now()
    day = last_day_bars(state, VENUE)
    out = []
    for row in inst.itertuples():
        bars = day[day["symbol"] == row.symbol]
        if bars.empty:
            raise VenueRequestError(500, f"no closed hour yet for {row.base}")
        last = bars.iloc[-1]
        mark = num(last["mark_price"])
        out.append(
            {
                "funding": num(predicted_rate(state, VENUE, row.symbol, now)),
                "openInterest": num(last["open_interest_usd"] / last["close"]),
                "prevDayPx": num(bars["open"].iloc[0]),
                "dayNtlVlm": num(bars["volume_usd"].sum()),
                "premium": num(last["mark_price"] / last["index_price"] - 1),
                "oraclePx": num(last["index_price"]),
                "markPx": mark,
                "midPx": num(last["close"]),
                "impactPxs": [num(last["close"]), num(last["close"])],
                "dayBaseVlm": num((bars["volume_usd"] / bars["close"]).sum()),
            }
        )
    return out


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
        inst = listed(state, VENUE)
        universe = [
            {"name": row.base, "szDecimals": 4, "maxLeverage": int(row.max_leverage), "marginTableId": 1}
            for row in inst.itertuples()
        ]
        return web.json_response([{"universe": universe, "marginTables": []}, _asset_contexts(state, inst)])
    if kind == "spotMeta":
        return web.json_response({"tokens": [USDC], "universe": []})
    if kind == "spotMetaAndAssetCtxs":
        return web.json_response([{"tokens": [USDC], "universe": []}, []])
    if kind == "perpDexs":
        return web.json_response([None])
    if kind == "fundingHistory":
        symbol = _hyperliquid_symbol(state, body.get("coin"))
        start = _json_ms(body, "startTime")
        if start is None:
            raise VenueRequestError(422, "Failed to deserialize the JSON body: missing field `startTime`")
        rows = page(settled_prints(state, VENUE, symbol, start, _json_ms(body, "endTime")), 500, True)
        # `premium`: the hour's average premium, the input of the 8h formula paid at 1/8.
        premiums = window_premiums(state, VENUE, rows)
        return web.json_response(
            [
                {"coin": body["coin"], "fundingRate": num(r.rate), "premium": num(p), "time": to_ms(r.funding_time)}
                for r, p in zip(rows.itertuples(), premiums, strict=True)
            ]
        )
    if kind == "candleSnapshot":
        req = body.get("req") or {}
        symbol = _hyperliquid_symbol(state, req.get("coin"))
        timeframe_hours(req.get("interval"), {"1h": 1}, "interval")
        start, oldest = _json_ms(req, "startTime"), depth_floor(state, VENUE, "/info candleSnapshot")
        start = oldest if start is None or (oldest is not None and start < oldest) else start
        bars = page(closed_bars(state, VENUE, symbol, start, _json_ms(req, "endTime")), 5000, True)
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
    if kind == "exchangeStatus":
        return web.json_response({"specialStatuses": None, "time": str(to_ms(state.clock.now()))})
    raise VenueRequestError(422, f"Failed to deserialize the JSON body: unknown variant {kind!r}")


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/info", hyperliquid_info),
]
