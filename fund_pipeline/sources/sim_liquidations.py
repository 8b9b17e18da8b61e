"""Simulated liquidations, consistent with the simulated market's hourly price path.

Per venue × perp × hour, from that hour's bar: the number of liquidations is Poisson with mean
BASE_PER_HOUR + PER_PCT_MOVE × |the hour's return in %| (a calm hour about one, a 3 % move ten); each
liquidates a long with probability 0.5 - 0.45·tanh(return / SIDE_SCALE), so a drop liquidates longs and a
rally shorts; times are uniform in the hour (whole milliseconds, as venues send them), the price on the
line from the bar's open to its close at that time, inside [low, high]; the USD size is lognormal around
NOTIONAL_SHARE of the market's open interest, a whole number of contracts on coin-margined perps. The
events depend only on (seed, venue, symbol, hour), so any range gives the same events for its hours.
Only venues with a liquidation channel (binance, bybit, okx) have them.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd
from scipy.stats import norm, poisson

from fund_pipeline.domain.liquidations import LIQUIDATION_COLUMNS, LONG, SHORT, normalise_liquidations
from fund_pipeline.domain.time import MS_PER_HOUR, NS_PER_HOUR, NS_PER_MS, utc_timestamp
from fund_pipeline.sources.sim_paths import unit_hash
from fund_pipeline.venues.registry import SIM_VENUES, UnknownVenueError, adapter

LIQUIDATION_VENUES = tuple(v for v in SIM_VENUES if adapter(v).liquidation_channel is not None)
BASE_PER_HOUR = 0.5
PER_PCT_MOVE = 3.0
SIDE_SCALE = 0.004
NOTIONAL_SHARE = 4e-5
NOTIONAL_SIGMA = 1.2
# Open interest assumed where a bar states none (USD).
FALLBACK_OI_USD = 1e7
# At most this many liquidations per perp and hour (the draw's index space).
MAX_PER_HOUR = 1024
# The first of the random streams of liquidations (four per venue), apart from the simulator's other streams.
LIQUIDATION_STREAM = 700


def _empty() -> pd.DataFrame:
    return normalise_liquidations(pd.DataFrame(columns=LIQUIDATION_COLUMNS))


def simulated_liquidations(market, venue: str, start, end) -> pd.DataFrame:
    """Liquidations of `market` (a SimulatedMarket) on `venue` with ts in [start, end), LIQUIDATION_COLUMNS."""
    if venue not in LIQUIDATION_VENUES:
        raise UnknownVenueError(
            f"{venue} has no liquidation channel; liquidations are simulated on {LIQUIDATION_VENUES}"
        )
    start, end = utc_timestamp(start), utc_timestamp(end)
    if end <= start:
        return _empty()
    bars = market.bars(venue, start.floor("h"), end.ceil("h"))
    if bars.empty:
        return _empty()
    streams = LIQUIDATION_STREAM + 10 * SIM_VENUES.index(venue) + np.arange(4)  # count, time, side, size
    hours = bars["ts"].astype("int64").to_numpy() // NS_PER_HOUR
    keys = np.array([zlib.crc32(s.encode()) for s in bars["symbol"]], dtype=np.uint64)
    open_, high, low, close = (bars[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close"))
    move = close / open_ - 1.0
    mean = BASE_PER_HOUR + PER_PCT_MOVE * np.abs(move) * 100.0
    counts = poisson.ppf(unit_hash(market.seed, streams[0], keys, hours), mean).astype(np.int64)
    counts = np.minimum(counts, MAX_PER_HOUR)
    row = np.repeat(np.arange(len(bars)), counts)
    if not len(row):
        return _empty()
    nth = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)  # k-th event of its hour
    draw = hours[row] * MAX_PER_HOUR + nth
    at_ms = np.floor(unit_hash(market.seed, streams[1], keys[row], draw) * MS_PER_HOUR).astype(np.int64)
    longs = unit_hash(market.seed, streams[2], keys[row], draw) < 0.5 - 0.45 * np.tanh(move[row] / SIDE_SCALE)
    price = np.clip(open_[row] + (close[row] - open_[row]) * at_ms / MS_PER_HOUR, low[row], high[row])
    oi = bars["open_interest_usd"].fillna(FALLBACK_OI_USD).to_numpy(dtype=np.float64)
    size = np.exp(NOTIONAL_SIGMA * norm.ppf(unit_hash(market.seed, streams[3], keys[row], draw)))
    notional = oi[row] * NOTIONAL_SHARE * size
    contract_usd = bars["symbol"].map({s: _contract_usd(venue, s) for s in bars["symbol"].unique()}).to_numpy()[row]
    notional = np.where(
        np.isnan(contract_usd), notional, np.maximum(1.0, np.round(notional / contract_usd)) * contract_usd
    )
    ts = hours[row] * NS_PER_HOUR + at_ms * NS_PER_MS
    symbols = bars["symbol"].to_numpy()[row]
    inside = (ts >= start.value) & (ts < end.value)
    order = np.lexsort((symbols[inside], ts[inside]))
    row, ts, longs, price, notional = (a[inside][order] for a in (row, ts, longs, price, notional))
    frame = normalise_liquidations(
        pd.DataFrame(
            {
                "venue": venue,
                "symbol": bars["symbol"].to_numpy()[row],
                "base": bars["base"].to_numpy()[row],
                "ts": pd.to_datetime(ts, utc=True),
                "received_at": pd.Timestamp(0, tz="UTC"),
                "side": np.where(longs, LONG, SHORT),
                "price": price,
                "quantity": notional / price,
                "notional_usd": notional,
                "source": "sim",
            }
        )
    )
    return frame


def _contract_usd(venue: str, symbol: str) -> float:
    """USD per contract of a coin-margined perp (NaN for a linear one)."""
    inverse = adapter(venue).inverse_perp(symbol)
    return math.nan if inverse is None else inverse.contract_usd
