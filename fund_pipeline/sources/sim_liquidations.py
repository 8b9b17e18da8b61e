"""Simulated liquidations, consistent with the simulated market's hourly price path.

Per venue × perp × hour, from that hour's bar: the number of liquidations is Poisson with mean
BASE_PER_HOUR + PER_PCT_MOVE × |the hour's return in %| (a calm hour a few, a 3 % move dozens); each
liquidates a long with probability 0.5 - 0.45·tanh(return / SIDE_SCALE), so a drop liquidates longs and a
rally shorts; times are uniform in the hour (whole milliseconds, as venues send them), the price on the
line from the bar's open to its close at that time, inside [low, high]; the USD size is lognormal around
NOTIONAL_SHARE of the market's open interest, a whole number of contracts on coin-margined perps. The
events depend only on (seed, venue, symbol, hour), so any range gives the same events for its hours.
Only venues with a liquidation channel (binance, bybit, okx) have them.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from fund_pipeline.domain.liquidations import LIQUIDATION_COLUMNS, LONG, SHORT, normalise_liquidations
from fund_pipeline.domain.time import MS_PER_HOUR, NS_PER_HOUR, NS_PER_MS, utc_timestamp
from fund_pipeline.venues.registry import SIM_VENUES, UnknownVenueError, adapter

LIQUIDATION_VENUES = tuple(v for v in SIM_VENUES if adapter(v).liquidation_channel is not None)
BASE_PER_HOUR = 2.0
PER_PCT_MOVE = 8.0
SIDE_SCALE = 0.004
NOTIONAL_SHARE = 2e-5
NOTIONAL_SIGMA = 1.2
# Open interest assumed where a bar states none (USD).
FALLBACK_OI_USD = 1e7
# The random stream of liquidations, apart from the simulator's other streams.
LIQUIDATION_STREAM = 71


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
    venue_index = SIM_VENUES.index(venue)
    venue_adapter = adapter(venue)
    hours = bars["ts"].astype("int64").to_numpy() // NS_PER_HOUR
    oi = bars["open_interest_usd"].fillna(FALLBACK_OI_USD).to_numpy()
    columns: dict[str, list[np.ndarray]] = {name: [] for name in ("row", "ts", "long", "price", "notional")}
    for i, (symbol, open_, high, low, close) in enumerate(
        zip(bars["symbol"], bars["open"], bars["high"], bars["low"], bars["close"], strict=True)
    ):
        key = [market.seed, LIQUIDATION_STREAM, venue_index, zlib.crc32(symbol.encode()), hours[i]]
        rng = np.random.default_rng(key)
        move = close / open_ - 1.0
        n = int(rng.poisson(BASE_PER_HOUR + PER_PCT_MOVE * abs(move) * 100.0))
        if n == 0:
            continue
        at_ms = np.sort(rng.integers(0, MS_PER_HOUR, n))
        notional = oi[i] * NOTIONAL_SHARE * rng.lognormal(0.0, NOTIONAL_SIGMA, n)
        inverse = venue_adapter.inverse_perp(symbol)
        if inverse is not None:
            notional = np.maximum(1.0, np.round(notional / inverse.contract_usd)) * inverse.contract_usd
        columns["row"].append(np.full(n, i))
        columns["ts"].append(hours[i] * NS_PER_HOUR + at_ms * NS_PER_MS)
        columns["long"].append(rng.random(n) < 0.5 - 0.45 * np.tanh(move / SIDE_SCALE))
        columns["price"].append(np.clip(open_ + (close - open_) * at_ms / MS_PER_HOUR, low, high))
        columns["notional"].append(notional)
    if not columns["row"]:
        return _empty()
    row, ts, longs, price, notional = (np.concatenate(columns[name]) for name in columns)
    frame = normalise_liquidations(
        pd.DataFrame(
            {
                "venue": venue,
                "symbol": bars["symbol"].to_numpy()[row],
                "base": bars["base"].to_numpy()[row],
                "ts": ts,
                "received_at": 0,
                "side": np.where(longs, LONG, SHORT),
                "price": price,
                "quantity": notional / price,
                "notional_usd": notional,
                "source": "sim",
            }
        )
    )
    frame = frame[(frame["ts"] >= start) & (frame["ts"] < end)]
    return frame.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)
