"""OKX's v5 REST endpoints (SPOT and SWAP) in their real formats, from the simulated market.

Swaps count size in contracts: a USDT-margined swap's contract is LINEAR_CONTRACT of the base coin, a
coin-margined one's (BTC-USD-SWAP, `ctType` inverse, settled in the coin) its `ctVal` in USD.
"""

from __future__ import annotations

import pandas as pd
from aiohttp import web

from fund_pipeline.domain.liquidations import liquidation_records
from fund_pipeline.domain.predicted import FORMULA_BASIS_H
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
    newest_first,
    next_funding_times,
    num,
    ohlc_of,
    predicted_rate,
    premium_minutes,
    settled_prints,
    symbol_of,
    timeframe_hours,
    to_ms,
)
from fund_pipeline.sources.sim_liquidations import simulated_liquidations
from fund_pipeline.venues.okx import (
    ADAPTER,
    CURRENCY_OI_PATH,
    LINEAR_CONTRACT_COINS,
    LIQUIDATION_HISTORY_DAYS,
    LIQUIDATION_PAGE,
    OPEN_INTEREST_PAGE,
    OPEN_INTEREST_PATH,
    OPEN_INTEREST_ROWS_KEPT,
)

# ---------------------------------------------------------------- okx (v5; SPOT and SWAP)

VENUE = ADAPTER.name
# Base coin per contract of the simulated USDT-margined swaps (the adapter's, which its liquidation frames count in).
LINEAR_CONTRACT = LINEAR_CONTRACT_COINS


def okx_ok(data: list) -> web.Response:
    return web.json_response({"code": "0", "msg": "", "data": data})


def okx_family(symbol: str) -> str:
    base, quote = symbol.split(":")[0].split("/")
    return f"{base}-{quote}"


def _okx_instrument(request: web.Request, key: str = "instId") -> tuple[str, str]:
    """(unified perp symbol, kind) of instId: "swap" for BTC-USDT-SWAP, "spot" for BTC-USDT (spot pair or index)."""
    raw = request.query.get(key)
    if not raw:
        raise VenueRequestError(400, f"Parameter {key} can not be empty", "50014")
    inst = listed(request.app[STATE], VENUE)
    if raw.endswith("-SWAP"):
        return symbol_of(inst, raw, inst["symbol"].map(ADAPTER.native_symbol)), "swap"
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
    inst = (
        listed(state, VENUE, "linear" if kind == "SPOT" else None)
        if kind in ("SPOT", "SWAP")
        else listed(state, VENUE)[:0]
    )
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
                instId=ADAPTER.native_symbol(r.symbol),
                instFamily=okx_family(r.symbol),
                uly=okx_family(r.symbol),
                baseCcy="",
                quoteCcy="",
                settleCcy=r.settle,
                ctVal=num(r.contract_size) if r.margin == "inverse" else num(LINEAR_CONTRACT),
                ctMult="1",
                ctValCcy=r.quote if r.margin == "inverse" else r.base,
                ctType=r.margin,
                lever=str(int(r.max_leverage)),
                lotSz="0.01",
                minSz="0.01",
                maxMktSz="5000",
            )
            for r in inst.itertuples()
        ]
    return okx_ok(data)


async def okx_funding_rate(request: web.Request) -> web.Response:
    """The running window of one swap, or of every swap with `instId=ANY`: its predicted rate, its settlement
    time and the next one (their gap = interval)."""
    state = request.app[STATE]
    now = state.clock.now()
    inst = listed(state, VENUE)
    if request.query.get("instId") != "ANY":
        symbol, kind = _okx_instrument(request)
        if kind != "swap":
            raise VenueRequestError(400, "Instrument ID does not exist", "51001")
        inst = inst[inst["symbol"] == symbol]
    return okx_ok([_okx_running_window(state, row, now) for row in inst.itertuples()])


def _okx_running_window(state, row, now: pd.Timestamp) -> dict:
    """The floor, cap and interest rate (0.01 % per 8 h scaled to the interval) are the formula the swap settles by."""
    funding_time, next_time = next_funding_times(row, now, state.market, VENUE)
    rate = num(predicted_rate(state, VENUE, row.symbol, now))
    formula = state.market.funding_formulas(VENUE, [row.symbol])[row.symbol]
    return {
        "instType": "SWAP",
        "instId": ADAPTER.native_symbol(row.symbol),
        "fundingRate": rate,
        "nextFundingRate": "",
        "fundingTime": str(to_ms(funding_time)),
        "nextFundingTime": str(to_ms(next_time)),
        "minFundingRate": num(formula.lower),
        "maxFundingRate": num(formula.cap),
        "method": "current_period",
        "formulaType": "withRate",
        "interestRate": num(formula.interest_rate_8h * float(row.interval_h) / FORMULA_BASIS_H),
        "impactValue": "20000",
        "premium": "0",
        "sign": "",
        "settState": "settled",
        "settFundingRate": rate,
        "ts": str(to_ms(now)),
    }


async def okx_funding_rate_history(request: web.Request) -> web.Response:
    """Newest first, at most `limit` (<= 400) rows between the exclusive cursors; nothing older than 3 months."""
    state = request.app[STATE]
    symbol, kind = _okx_instrument(request)
    if kind != "swap":
        raise VenueRequestError(400, "Instrument ID does not exist", "51001")
    start, end = _okx_bounds(request)
    limit = int_param(request.query.get("limit"), "limit", 100, 400)
    oldest = depth_floor(state, VENUE, "/api/v5/public/funding-rate-history")
    start = oldest if start is None or (oldest is not None and start < oldest) else start
    rows = newest_first(settled_prints(state, VENUE, symbol, start, end), limit)
    return okx_ok(
        [
            {
                "instType": "SWAP",
                "instId": ADAPTER.native_symbol(symbol),
                "fundingRate": num(r.rate),
                "realizedRate": num(r.rate),
                "fundingTime": str(to_ms(r.funding_time)),
                "method": "current_period",
                "formulaType": "withRate",
            }
            for r in rows.itertuples()
        ]
    )


# A simulated premium sample is generated at its minute's last millisecond (rest_core.premium_minutes' rule).
SAMPLE_AFTER_OPEN = pd.Timedelta(minutes=1) - MS


async def okx_premium_history(request: web.Request) -> web.Response:
    """/api/v5/public/premium-history: the premium of each minute, newest first, limit <= 100; `ts` is the sample's
    data generation time (the documented example's 1713925924000 is 04 s into a minute, not a minute's open), here
    the simulated sample's own time, and `before`/`after` page on it."""
    state = request.app[STATE]
    symbol, kind = _okx_instrument(request)
    if kind != "swap":
        raise VenueRequestError(400, "Instrument ID does not exist", "51001")
    start, end = _okx_bounds(request)
    limit = int_param(request.query.get("limit"), "limit", 100, 100)
    opens = [None if t is None else t - SAMPLE_AFTER_OPEN for t in (start, end)]
    rows = newest_first(premium_minutes(state, VENUE, symbol, *opens), limit)
    return okx_ok(
        [
            {"instId": ADAPTER.native_symbol(symbol), "premium": num(p), "ts": str(to_ms(t + SAMPLE_AFTER_OPEN))}
            for t, p in zip(rows["open_time"], rows["premium"], strict=True)
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
        instrument = _okx_row(state, symbol)
        timeframe_hours(request.query.get("bar"), OKX_BARS, "bar")
        start, end = _okx_bounds(request)
        if recent_only:
            oldest = (state.clock.now() - HOUR).floor("h") - (OKX_RECENT_BARS - 1) * HOUR
            start = oldest if start is None else max(start, oldest)
        limit = int_param(request.query.get("limit"), "limit", 100, max_limit)
        bars = newest_first(closed_bars(state, VENUE, symbol, start, end), limit)
        series = "spot" if price == "perp" and kind == "spot" else price
        o, h, l, c, quote_volume = ohlc_of(bars, series)
        rows = []
        for i in range(len(bars)):
            row = [str(to_ms(bars["ts"].iloc[i])), num(o.iloc[i]), num(h.iloc[i]), num(l.iloc[i]), num(c.iloc[i])]
            if price == "perp":
                base_volume = quote_volume.iloc[i] / c.iloc[i]
                first = base_volume if kind == "spot" else _okx_contracts(quote_volume.iloc[i], base_volume, instrument)
                row += [
                    num(first),
                    num(base_volume if kind == "swap" else quote_volume.iloc[i]),
                    num(quote_volume.iloc[i]),
                ]
            rows.append(row + ["1"])
        return okx_ok(rows)

    return candles


def _okx_row(state, symbol: str):
    inst = listed(state, VENUE)
    return next(inst[inst["symbol"] == symbol].itertuples())


def _okx_contracts(usd: float, coins: float, instrument) -> float:
    """An amount (`usd`, or `coins` of the base) in a swap's contracts: USD ones for coin-margined swaps,
    LINEAR_CONTRACT coins otherwise."""
    if instrument.margin == "inverse":
        return contracts(usd, instrument)
    return coins / LINEAR_CONTRACT


OKX_OI_PERIODS = {"1H": 1}


async def okx_open_interest_volume(request: web.Request) -> web.Response:
    """Per currency, newest first: [ts, open interest (USD), volume (USD)] of its perps, at most 1440 rows."""
    state = request.app[STATE]
    ccy = request.query.get("ccy", "")
    inst = listed(state, VENUE)
    symbols = inst.loc[inst["base"] == ccy, "symbol"].tolist()
    if not symbols:
        raise VenueRequestError(400, f"Parameter ccy error: {ccy!r}", "51000")
    timeframe_hours(request.query.get("period"), OKX_OI_PERIODS, "period")
    start = from_ms(request.query.get("begin"), "begin")
    end = from_ms(request.query.get("end"), "end")
    oldest = depth_floor(state, VENUE, CURRENCY_OI_PATH)
    start = oldest if start is None or (oldest is not None and start < oldest) else start
    bars = pd.concat([closed_bars(state, VENUE, s, start, end) for s in symbols])
    summed = bars.groupby("ts")[["open_interest_usd", "volume_usd"]].sum().reset_index()
    rows = newest_first(summed, 1440)
    return okx_ok([[str(to_ms(r.ts)), num(r.open_interest_usd), num(r.volume_usd)] for r in rows.itertuples()])


async def okx_open_interest_history(request: web.Request) -> web.Response:
    """One instrument's open interest per closed hour, newest first: [ts, oi (contracts), oiCcy (coins), oiUsd];
    `begin` newer than and `end` earlier than a ts (exclusive), `limit` <= 100, only the latest
    OPEN_INTEREST_ROWS_KEPT closed hours. Summed over a currency's swaps it is open-interest-volume's row."""
    state = request.app[STATE]
    symbol, kind = _okx_instrument(request)
    if kind != "swap":
        raise VenueRequestError(400, "Instrument ID does not exist", "51001")
    timeframe_hours(request.query.get("period"), OKX_OI_PERIODS, "period")
    begin = from_ms(request.query.get("begin"), "begin")
    end = from_ms(request.query.get("end"), "end")
    start, stop = (None if begin is None else begin + MS), (None if end is None else end - MS)
    oldest = (state.clock.now() - HOUR).floor("h") - (OPEN_INTEREST_ROWS_KEPT - 1) * HOUR
    start = oldest if start is None else max(start, oldest)
    limit = int_param(request.query.get("limit"), "limit", OPEN_INTEREST_PAGE, OPEN_INTEREST_PAGE)
    instrument = _okx_row(state, symbol)
    rows = []
    for bar in newest_first(closed_bars(state, VENUE, symbol, start, stop), limit).itertuples():
        coins = bar.open_interest_usd / bar.close
        held = _okx_contracts(bar.open_interest_usd, coins, instrument)
        rows.append([str(to_ms(bar.ts)), num(held), num(coins), num(bar.open_interest_usd)])
    return okx_ok(rows)


async def okx_tickers(request: web.Request) -> web.Response:
    """/market/tickers: every instrument of `instType` (SPOT or SWAP), optionally of one `instFamily`."""
    state = request.app[STATE]
    kind = request.query.get("instType", "")
    if kind not in ("SPOT", "SWAP"):
        raise VenueRequestError(400, "Parameter instType error", "51000")
    inst = listed(state, VENUE, "linear" if kind == "SPOT" else None)
    family = request.query.get("instFamily") or request.query.get("uly")
    if family:
        inst = inst[inst["symbol"].map(okx_family) == family]
    return okx_ok(_okx_tickers(state, inst, spot=kind == "SPOT"))


async def okx_ticker(request: web.Request) -> web.Response:
    """/market/ticker: one instrument's ticker (a swap, or a spot pair)."""
    state = request.app[STATE]
    symbol, kind = _okx_instrument(request)
    inst = listed(state, VENUE, "linear" if kind == "spot" else None)
    return okx_ok(_okx_tickers(state, inst[inst["symbol"] == symbol], spot=kind == "spot"))


def _okx_tickers(state, inst: pd.DataFrame, spot: bool) -> list[dict]:
    """24h volumes over the last 24 closed hours (swap vol24h in contracts, volCcy24h in the base coin)."""
    day = last_day_bars(state, VENUE)
    prefix = "spot_" if spot else ""
    now_ms = str(to_ms(state.clock.now()))
    out = []
    for row in inst.sort_values("symbol").itertuples():
        bars = day[day["symbol"] == row.symbol]
        if bars.empty:
            continue
        usd = bars[f"{prefix}volume_usd"].sum()
        base_volume = (bars[f"{prefix}volume_usd"] / bars[f"{prefix}close"]).sum()
        last = bars[f"{prefix}close"].iloc[-1]
        out.append(
            {
                "instType": "SPOT" if spot else "SWAP",
                "instId": okx_family(row.symbol) if spot else ADAPTER.native_symbol(row.symbol),
                "last": num(last),
                "open24h": num(bars[f"{prefix}open"].iloc[0]),
                "high24h": num(bars[f"{prefix}high"].max()),
                "low24h": num(bars[f"{prefix}low"].min()),
                "vol24h": num(base_volume if spot else _okx_contracts(usd, base_volume, row)),
                "volCcy24h": num(usd if spot else base_volume),
                "sodUtc0": num(bars[f"{prefix}open"].iloc[0]),
                "sodUtc8": num(bars[f"{prefix}open"].iloc[0]),
                "ts": now_ms,
            }
        )
    return out


async def okx_open_interest(request: web.Request) -> web.Response:
    """Open interest of every swap at the last closed hour: contracts, base and USD."""
    state = request.app[STATE]
    if request.query.get("instType") != "SWAP":
        raise VenueRequestError(400, "Parameter instType error", "51000")
    day = last_day_bars(state, VENUE)
    out = []
    for row in listed(state, VENUE).sort_values("symbol").itertuples():
        bars = day[day["symbol"] == row.symbol]
        if bars.empty:
            continue
        last = bars.iloc[-1]
        base = last["open_interest_usd"] / last["close"]
        out.append(
            {
                "instType": "SWAP",
                "instId": ADAPTER.native_symbol(row.symbol),
                "oi": num(_okx_contracts(last["open_interest_usd"], base, row)),
                "oiCcy": num(base),
                "oiUsd": num(last["open_interest_usd"]),
                "ts": str(to_ms(last["ts"] + HOUR)),
            }
        )
    return okx_ok(out)


async def okx_time(request: web.Request) -> web.Response:
    return okx_ok([{"ts": str(to_ms(request.app[STATE].clock.now()))}])


# Hours of simulated liquidations the history handler takes at a time, walking back from the cursor.
LIQUIDATION_CHUNK = pd.Timedelta(hours=12)


async def okx_liquidation_orders(request: web.Request) -> web.Response:
    """Filled swap liquidations of one instrument family (instFamily or uly), newest first, at most `limit`
    (<= 100) a page; `after` pages back in time, `before` keeps newer ones; LIQUIDATION_HISTORY_DAYS deep."""
    state = request.app[STATE]
    query = request.query
    if query.get("instType") != "SWAP":
        raise VenueRequestError(400, f"Parameter instType error: {query.get('instType')!r} (swaps are served)", "51000")
    family = query.get("instFamily") or query.get("uly")
    if not family:
        raise VenueRequestError(400, "Parameter instFamily can not be empty", "50014")
    if query.get("state") not in ("filled", "unfilled"):
        raise VenueRequestError(400, "Parameter state error", "51000")
    symbols = {s for s in listed(state, VENUE)["symbol"] if okx_family(s) == family}
    if not symbols:
        raise VenueRequestError(400, f"Instrument family {family} does not exist", "51001")
    limit = int_param(query.get("limit"), "limit", LIQUIDATION_PAGE, LIQUIDATION_PAGE)
    lower, upper = _okx_bounds(request)
    now = state.clock.now()
    floor = now - pd.Timedelta(days=LIQUIDATION_HISTORY_DAYS)
    oldest = floor if lower is None else max(lower, floor)
    end = now if upper is None else min(upper + MS, now)
    found: list = []
    while query["state"] == "filled" and end > oldest and len(found) < limit:
        start = max(oldest, end - LIQUIDATION_CHUNK)
        chunk = simulated_liquidations(state.market, VENUE, start, end)
        found += liquidation_records(chunk[chunk["symbol"].isin(symbols)])[::-1]
        end = start
    return okx_ok(ADAPTER.liquidation_items(found[:limit]))


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/api/v5/public/time", okx_time),
    ("GET", "/api/v5/public/instruments", okx_instruments),
    ("GET", "/api/v5/public/funding-rate", okx_funding_rate),
    ("GET", "/api/v5/public/funding-rate-history", okx_funding_rate_history),
    ("GET", "/api/v5/public/premium-history", okx_premium_history),
    ("GET", "/api/v5/market/candles", _okx_candles("perp", 300, recent_only=True)),
    ("GET", "/api/v5/market/history-candles", _okx_candles("perp", 100, recent_only=False)),
    ("GET", "/api/v5/market/mark-price-candles", _okx_candles("mark", 100, recent_only=True)),
    ("GET", "/api/v5/market/history-mark-price-candles", _okx_candles("mark", 100, recent_only=False)),
    ("GET", "/api/v5/market/index-candles", _okx_candles("index", 100, recent_only=True)),
    ("GET", "/api/v5/market/history-index-candles", _okx_candles("index", 100, recent_only=False)),
    ("GET", CURRENCY_OI_PATH, okx_open_interest_volume),
    ("GET", OPEN_INTEREST_PATH, okx_open_interest_history),
    ("GET", "/api/v5/market/tickers", okx_tickers),
    ("GET", "/api/v5/market/ticker", okx_ticker),
    ("GET", "/api/v5/public/open-interest", okx_open_interest),
    ("GET", "/api/v5/public/liquidation-orders", okx_liquidation_orders),
]
