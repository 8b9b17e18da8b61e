"""Forced liquidations: the record, its size in base coins and USD, and the hourly buy/sell aggregate.

Side convention: `side` is the side of the LIQUIDATED POSITION, "long" or "short". Venues state it
differently and each adapter maps its own: Binance `forceOrder` `S` is the liquidation ORDER's side
(SELL closes a long), Bybit `allLiquidation` `S` is the position's side (Buy: a long was
liquidated), OKX `liquidation-orders` gives `posSide` (long/short; "net" in one-way mode, where the
order `side` decides: sell closes a long). The hourly aggregate speaks in the data vendors' terms
of the forced order: `sell_usd` is liquidated longs (the venue sold them out), `buy_usd` liquidated
shorts.

Size: venues state a liquidation's size in contracts, coins or USD. `sized` turns a venue's
contracts into base coins and USD with the contract rule of `domain.contracts` (a linear contract is
`contract_size` base coins, an inverse one `contract_size` US dollars).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from fund_pipeline.domain.contracts import INVERSE, contract_margin
from fund_pipeline.domain.prints import SchemaError, require_columns
from fund_pipeline.domain.time import to_utc, utc_timestamp

LONG = "long"
SHORT = "short"
SIDES = (LONG, SHORT)


class Liquidation(NamedTuple):
    """One forced liquidation as a venue (or the simulator) reported it; times are int ns UTC.

    `ts` is the venue's time of the liquidation (its trade/update time), `received_at` the local
    receive time (0 when not received live); `price` the fill (Binance average, Bybit price) or
    bankruptcy price (OKX `bkPx`); `quantity` in base coins; `notional_usd` in US dollars.
    """

    venue: str
    symbol: str
    base: str
    ts: int
    received_at: int
    side: str  # long | short: the liquidated position
    price: float
    quantity: float
    notional_usd: float
    source: str  # ws | rest | sim


LIQUIDATION_COLUMNS = list(Liquidation._fields)
# What makes two reports the same liquidation (a REST page and the stream can both carry one).
LIQUIDATION_KEY = ["venue", "symbol", "ts", "side", "price", "quantity"]
HOURLY_COLUMNS = ["venue", "base", "ts", "buy_usd", "sell_usd", "count"]


class Size(NamedTuple):
    """A liquidation's size in base coins and in US dollars."""

    quantity: float
    notional_usd: float


def sized(symbol: str, contracts: float, contract_size: float, price: float) -> Size:
    """Base coins and USD of `contracts` of `symbol` at `price` (contract_size: coins if linear, USD if inverse)."""
    if not (contracts > 0 and contract_size > 0 and price > 0):
        raise ValueError(
            f"liquidation of {symbol}: size {contracts!r} × contract {contract_size!r} at price {price!r} "
            "must all be positive"
        )
    if contract_margin(symbol) == INVERSE:
        usd = contracts * contract_size
        return Size(usd / price, usd)
    coins = contracts * contract_size
    return Size(coins, coins * price)


def liquidations_frame(rows: list[Liquidation]) -> pd.DataFrame:
    """Records to a frame of LIQUIDATION_COLUMNS, times tz-aware UTC."""
    frame = pd.DataFrame(rows, columns=LIQUIDATION_COLUMNS)
    return normalise_liquidations(frame)


def liquidation_records(frame: pd.DataFrame) -> list[Liquidation]:
    """A frame of LIQUIDATION_COLUMNS back to records, times as int ns."""
    columns = {name: frame[name].tolist() for name in LIQUIDATION_COLUMNS}
    for col in ("ts", "received_at"):
        columns[col] = frame[col].astype("int64").tolist()
    return [Liquidation(*values) for values in zip(*columns.values(), strict=True)]


def normalise_liquidations(frame: pd.DataFrame) -> pd.DataFrame:
    """LIQUIDATION_COLUMNS with their types; bad sides or non-positive sizes are refused, naming rows."""
    require_columns(frame, LIQUIDATION_COLUMNS, "liquidations")
    out = frame[LIQUIDATION_COLUMNS].copy()
    for col in ("ts", "received_at"):
        values = out[col]
        out[col] = to_utc(values.astype("int64") if pd.api.types.is_integer_dtype(values) else values)
    for col in ("price", "quantity", "notional_usd"):
        out[col] = pd.to_numeric(out[col], errors="raise").astype("float64")
    for col in ("venue", "symbol", "base", "side", "source"):
        out[col] = out[col].astype("object")
    bad_side = ~out["side"].isin(SIDES)
    if bad_side.any():
        raise SchemaError(f"liquidations: side must be one of {SIDES}, got {sorted(set(out.loc[bad_side, 'side']))}")
    bad_size = ~((out["price"] > 0) & (out["quantity"] > 0) & (out["notional_usd"] > 0))
    if bad_size.any():
        sample = out.loc[bad_size, ["venue", "symbol", "ts"]].head(3).to_dict("records")
        raise SchemaError(f"liquidations: {int(bad_size.sum())} row(s) with a non-positive price or size: {sample}")
    return out.reset_index(drop=True)


def merge_liquidations(*frames: pd.DataFrame) -> pd.DataFrame:
    """One row per liquidation across sources (stream, REST history, simulator), the first report kept, by time."""
    parts = [normalise_liquidations(f) for f in frames if len(f)]
    if not parts:
        return normalise_liquidations(pd.DataFrame(columns=LIQUIDATION_COLUMNS))
    merged = pd.concat(parts, ignore_index=True).drop_duplicates(LIQUIDATION_KEY, keep="first")
    return merged.sort_values(["ts", "venue", "symbol"], kind="stable").reset_index(drop=True)


def liquidations_hourly(liquidations: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """USD liquidated per venue × base and hour in [start, end): `sell_usd` longs, `buy_usd` shorts, `count` events.

    Hours without a liquidation have no row; `ts` is the hour's start.
    """
    frame = normalise_liquidations(liquidations)
    frame = frame[(frame["ts"] >= utc_timestamp(start)) & (frame["ts"] < utc_timestamp(end))]
    if frame.empty:
        return pd.DataFrame(
            {
                "venue": pd.Series(dtype="object"),
                "base": pd.Series(dtype="object"),
                "ts": pd.Series(dtype="datetime64[ns, UTC]"),
                "buy_usd": pd.Series(dtype="float64"),
                "sell_usd": pd.Series(dtype="float64"),
                "count": pd.Series(dtype="int64"),
            }
        )
    hour = frame["ts"].dt.floor("h")
    longs = frame["side"].to_numpy() == LONG
    grouped = (
        frame.assign(
            ts=hour,
            sell_usd=np.where(longs, frame["notional_usd"], 0.0),
            buy_usd=np.where(longs, 0.0, frame["notional_usd"]),
        )
        .groupby(["venue", "base", "ts"], sort=True)
        .agg(buy_usd=("buy_usd", "sum"), sell_usd=("sell_usd", "sum"), count=("notional_usd", "size"))
        .reset_index()
    )
    grouped["count"] = grouped["count"].astype("int64")
    return grouped[HOURLY_COLUMNS]
