"""The emulator's REST core: request state, errors in each venue's format, faults, rate limits, data access.

Every venue's routes (`rest_<venue>.py`) serve the simulated market through these helpers, so
nothing later than the emulator clock is served: prints with funding_time <= now, bars (and open
interest) only once their hour has closed. Error bodies, ban statuses, rate limits and history
depths come from the venue adapters; `Faults` adds outages and forced 429/418/5xx on demand.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from aiohttp import web

from fund_pipeline.domain.prints import BAR_COLUMNS
from fund_pipeline.venues.registry import adapter

if TYPE_CHECKING:
    from fund_pipeline.emulator.state import EmulatorState

HOUR = pd.Timedelta(hours=1)
MS = pd.Timedelta(milliseconds=1)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Where the application keeps the EmulatorState every handler reads.
STATE: web.AppKey[EmulatorState] = web.AppKey("emulator_state")


class VenueRequestError(Exception):
    """A request the real venue would reject; rendered in the venue's error format."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


# ---------------------------------------------------------------- errors and faults


def error_response(
    venue: str, status: int, message: str, retry_after_s: float | None = None, code: str | None = None
) -> web.Response:
    """An error in the venue's own body format (what ccxt's handle_errors parses).

    5xx come from the venues' gateways as plain text, not from their APIs, and so do the errors of
    venues whose adapter has no error body (bybit's 403 ban). `code` overrides the default code.
    """
    body = None if status >= 500 else adapter(venue).error_body(status, message, code)
    if body is None:
        return web.Response(status=status, text=f"{status} {message}", headers=_retry_headers(retry_after_s))
    return web.json_response(body, status=status, headers=_retry_headers(retry_after_s))


def _retry_headers(retry_after_s: float | None) -> dict[str, str]:
    return {} if retry_after_s is None else {"Retry-After": str(max(0, math.ceil(retry_after_s)))}


def _ban_status(venue: str) -> int:
    spec = adapter(venue).rest
    return 429 if spec is None else spec.ban_status


def _is_stream(request: web.Request, venue: str) -> bool:
    spec = adapter(venue).stream
    if spec is None:
        return False
    path = request.path.removeprefix(f"/{venue}")
    inverse = () if spec.inverse_route is None else (spec.inverse_route,)
    routes = (spec.route, *inverse, *spec.dead_routes, spec.route.removesuffix("/ws") + "/stream")
    return any(path == r or path.startswith(r + "/") for r in routes)


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Inject the configured REST faults and the venue's rate limits, then render VenueRequestError."""
    state = request.app[STATE]
    venue = request.path.strip("/").split("/", 1)[0]
    if venue not in state.venues or _is_stream(request, venue):
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
            venue, _ban_status(venue), "Way too many requests; IP banned", retry_after_s=faults.retry_after_s
        )
    if faults.http_5xx_every_n and n % faults.http_5xx_every_n == 0:
        return error_response(venue, 502, "Bad gateway")
    if faults.http_drop_every_n and n % faults.http_drop_every_n == 0 and request.transport is not None:
        request.transport.abort()  # the client sees its connection reset; the response below is never sent
        return web.Response(status=502)
    if faults.rate_limits:
        refused = state.limits.admit(venue, request.path.removeprefix(f"/{venue}"))
        if refused is not None:
            status, retry_after, message = refused
            state.bump(f"rate_limited:{venue}:{status}")
            return error_response(venue, status if status == 429 else _ban_status(venue), message, retry_after)
    try:
        return await handler(request)
    except VenueRequestError as bad:
        return error_response(venue, bad.status, bad.message, code=bad.code)


def depth_floor(state: EmulatorState, venue: str, path: str) -> pd.Timestamp | None:
    """The oldest time `path` of `venue` still serves at the emulator's now (None: all history)."""
    spec = adapter(venue).rest
    depth = None if spec is None else next((h for h in spec.history if h.endpoint == path), None)
    if depth is None:
        return None
    return pd.Timestamp(depth.oldest_ms(to_ms(state.clock.now())), unit="ms", tz="UTC")


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


def listed(state, venue: str, margin: str | None = None) -> pd.DataFrame:
    """Instruments listed now on `venue`, restricted to the emulator's bases (and to one `margin`, when given)."""
    inst = state.market.instruments(venue, state.clock.now())
    keep = inst["base"].isin(state.bases)
    if margin is not None:
        keep &= inst["margin"] == margin
    return inst[keep].reset_index(drop=True)


def contracts(usd: float, row) -> float:
    """A USD amount as the number of an instrument's contracts (inverse perps count size in USD contracts)."""
    return usd / row.contract_size


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


def premium_minutes(
    state, venue: str, symbol: str, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> pd.DataFrame:
    """Minute premium samples of one symbol opening in [start, end], only minutes that have closed."""
    last_open = (state.clock.now() - pd.Timedelta(minutes=1)).floor("min")
    lo = history_start() if start is None else max(start.ceil("min"), history_start())
    hi = last_open if end is None else min(end, last_open)
    if hi < lo:
        return pd.DataFrame(columns=["open_time", "premium"])
    samples = state.market.premium_samples(venue, lo, hi + pd.Timedelta(minutes=1))
    samples = samples[samples["symbol"] == symbol]
    opened = samples["ts"] + MS - pd.Timedelta(minutes=1)  # a sample is stamped at its minute's close
    out = pd.DataFrame({"open_time": opened, "premium": samples["premium"].to_numpy()})
    return out[(out["open_time"] >= lo) & (out["open_time"] <= hi)].reset_index(drop=True)


def window_premiums(state, venue: str, prints: pd.DataFrame) -> list[float]:
    """The average premium of each settled print's window (what its rate was computed from)."""
    if prints.empty:
        return []
    first = prints["funding_time"].min() - pd.to_timedelta(prints["interval_h"].max(), unit="h")
    symbol = prints["symbol"].iloc[0]
    samples = state.market.premium_samples(venue, first, prints["funding_time"].max())
    samples = samples[samples["symbol"] == symbol].sort_values("ts")
    ts = samples["ts"].to_numpy()
    summed = np.concatenate([[0.0], np.cumsum(samples["premium"].to_numpy(dtype=np.float64))])
    ends = prints["funding_time"].to_numpy()
    starts = (prints["funding_time"] - pd.to_timedelta(prints["interval_h"], unit="h")).to_numpy()
    lo, hi = np.searchsorted(ts, starts, side="left"), np.searchsorted(ts, ends, side="left")
    with np.errstate(invalid="ignore", divide="ignore"):
        return [float(x) for x in (summed[hi] - summed[lo]) / (hi - lo)]


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
