"""FundingPrint schema and the normalisation every source goes through.

One schema for settled and predicted prints from every source, so that history and live
join without a gap. Times are tz-aware UTC pandas timestamps; rates are decimals per
funding interval; intervals are per symbol and time (never assume 8h).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

PRINT_KINDS = ("settled", "predicted")
PRINT_SOURCES = ("sim", "file", "rest", "ws")

PRINT_COLUMNS = [
    "venue",
    "symbol",
    "base",
    "kind",
    "funding_time",
    "ts",
    "received_at",
    "rate",
    "interval_h",
    "mark_price",
    "index_price",
    "source",
]
PRINT_KEY = ["venue", "symbol", "kind", "funding_time", "ts"]

MARKET_COLUMNS = [
    "date",
    "venue",
    "symbol",
    "base",
    "quote",
    "interval_h",
    "volume_usd_24h",
    "open_interest_usd",
    "max_leverage",
]

BAR_COLUMNS = [
    "venue",
    "symbol",
    "base",
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume_usd",
    "spot_open",
    "spot_high",
    "spot_low",
    "spot_close",
    "spot_volume_usd",
    "mark_price",
    "index_price",
    "open_interest_usd",
]

# Hour of the first daily settlement in UTC, where it is not midnight. Venue knowledge, not a
# fitted number: KuCoin settles at 04/12/20 UTC; the other venues at 00/08/16 (or every hour).
SETTLEMENT_PHASE_H = {"kucoin": 4}

# 8h interest component that sits in most venues' formula: the real mass point of funding.
INTEREST_RATE_8H = 0.0001


class SchemaError(ValueError):
    """A frame does not have the columns or values its schema requires."""


def to_utc(values) -> pd.Series | pd.DatetimeIndex:
    """Parse to tz-aware UTC nanosecond timestamps (naive input is taken as UTC)."""
    out = pd.to_datetime(values, utc=True)
    if isinstance(out, pd.Series):
        return out.astype("datetime64[ns, UTC]")
    return out.as_unit("ns")


def floor_to_grid(times: pd.Series, interval_h: pd.Series | float, offset_h: float = 0.0) -> pd.Series:
    """Floor timestamps to a venue's settlement grid: exchanges add millisecond jitter.

    The grid of an interval of h hours is every h hours from midnight UTC plus `offset_h`.
    """
    t = to_utc(times)
    ns = t.astype("int64").to_numpy()
    step = (np.asarray(interval_h, dtype="float64") * 3_600_000_000_000).astype("int64")
    off = int(offset_h * 3_600_000_000_000)
    floored = ((ns - off) // step) * step + off
    return pd.Series(pd.to_datetime(floored, utc=True), index=t.index)


def rate_to_8h(rate, interval_h):
    """Normalise a per-interval rate to its 8h equivalent, to compare venues."""
    return np.asarray(rate, dtype="float64") * 8.0 / np.asarray(interval_h, dtype="float64")


def annualise(rate, interval_h):
    """Compound a per-interval rate to a yearly yield with its own interval."""
    return np.power(1.0 + np.asarray(rate, dtype="float64"), 8760.0 / np.asarray(interval_h, dtype="float64")) - 1.0


def deannualise(ann, interval_h):
    """Inverse of `annualise`."""
    return np.power(1.0 + np.asarray(ann, dtype="float64"), np.asarray(interval_h, dtype="float64") / 8760.0) - 1.0


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"{what}: missing column(s) {missing}; got {list(frame.columns)}")


def empty_prints() -> pd.DataFrame:
    return normalise_prints(pd.DataFrame({c: [] for c in PRINT_COLUMNS}))


def normalise_prints(frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce a frame to the FundingPrint schema, with a clear error for what does not fit."""
    require_columns(frame, [c for c in PRINT_COLUMNS if c != "received_at"], "funding prints")
    out = frame.copy()
    if "received_at" not in out.columns:
        out["received_at"] = pd.NaT
    for col in ("funding_time", "ts", "received_at"):
        out[col] = to_utc(out[col])
    for col in ("rate", "interval_h", "mark_price", "index_price"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    for col in ("venue", "symbol", "base", "kind", "source"):
        out[col] = out[col].astype("object")
    bad_kind = set(out["kind"].unique()) - set(PRINT_KINDS)
    if bad_kind:
        raise SchemaError(f"funding prints: unknown kind(s) {sorted(bad_kind)}; expected {PRINT_KINDS}")
    return out[PRINT_COLUMNS].reset_index(drop=True)


def invalid_rate_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose rate or interval cannot be used: NaN, infinite, or a non-positive interval."""
    rate = frame["rate"].to_numpy(dtype="float64")
    interval = frame["interval_h"].to_numpy(dtype="float64")
    bad = ~np.isfinite(rate) | ~np.isfinite(interval) | (interval <= 0)
    return frame.loc[bad]


def validate_prints(frame: pd.DataFrame) -> pd.DataFrame:
    """Normalise and reject unusable rows loudly (naming them) instead of storing them."""
    out = normalise_prints(frame)
    bad = invalid_rate_rows(out)
    if len(bad):
        sample = bad.head(3)[["venue", "symbol", "funding_time", "rate", "interval_h"]].to_dict("records")
        raise SchemaError(f"funding prints: {len(bad)} row(s) with NaN/infinite rate or bad interval, e.g. {sample}")
    return out
