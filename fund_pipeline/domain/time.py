"""Time, grids and funding intervals: the one definition of each unit and rule.

Times are UTC. Inside hot loops they travel as int nanoseconds since the epoch; in frames as
tz-aware `datetime64[ns, UTC]`. Every module takes its units and conversions from here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NS_PER_MS = 1_000_000
NS_PER_SECOND = 1_000_000_000
MS_PER_HOUR = 3_600_000
NS_PER_HOUR = 3_600_000_000_000
NS_PER_DAY = 24 * NS_PER_HOUR
HOURS_PER_YEAR = 8760.0
# How numpy reads NaT as int64 nanoseconds.
NAT_NS = np.iinfo("int64").min
# Largest epoch-millisecond value whose nanoseconds fit in int64.
MAX_EPOCH_MS = (2**63 - 1) // NS_PER_MS

# The warehouse stores times to the microsecond; live prints land in nanoseconds. Instants read back
# from the warehouse are compared with landed times at this resolution.
STORED_TIME_RESOLUTION = pd.Timedelta(1, "us")

# Funding intervals a venue can plausibly announce: from a minute to a day. Anything outside is a
# broken field, not a new product.
MIN_INTERVAL_H = 1 / 60
MAX_INTERVAL_H = 24.0
# Intervals the supported venues actually use (hours); a settled print with another one is suspect.
KNOWN_INTERVALS_H = (1.0, 2.0, 4.0, 8.0)


def to_utc(values) -> pd.Series | pd.DatetimeIndex:
    """Parse to tz-aware UTC nanosecond timestamps (naive input is taken as UTC)."""
    out = pd.to_datetime(values, utc=True)
    if isinstance(out, pd.Series):
        return out.astype("datetime64[ns, UTC]")
    return out.as_unit("ns")


def utc_timestamp(value) -> pd.Timestamp:
    """One instant as a tz-aware UTC timestamp (naive input is taken as UTC)."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def aware_utc(value, what: str) -> pd.Timestamp:
    """A bound that must say its time zone: naive input is refused (a window edge is ambiguous without it)."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(f"{what} must be tz-aware UTC, got naive {stamp}")
    return stamp.tz_convert("UTC")


def utc_from_ns(ns) -> pd.DatetimeIndex:
    """Int nanoseconds since the epoch to a UTC DatetimeIndex (int64 min is NaT).

    A view of the integers as datetime64, without `pd.to_datetime`'s per-value path.
    """
    return pd.DatetimeIndex(np.asarray(ns, dtype="int64").view("datetime64[ns]")).tz_localize("UTC")


def time_ns(times: pd.Series | pd.DatetimeIndex, copy: bool = True) -> np.ndarray:
    """UTC nanoseconds since the epoch as int64 (NaT as int64 min; naive times are taken as UTC).

    Datetime columns already hold epoch integers: they are read, not parsed (parsing costs more
    than the features). `copy=False` returns the column's own buffer, for callers that only read it.
    """
    if times.dtype.kind == "M":
        values = times.array
        ns = (values if values.unit == "ns" else values.as_unit("ns")).asi8  # as_unit copies even to its own unit
        return ns.copy() if copy else ns
    return np.asarray(to_utc(times).array.asi8, dtype="int64")


def epoch_ms(t) -> int:
    """An instant as integer epoch milliseconds."""
    return int(utc_timestamp(t).value // NS_PER_MS)


def floor_hour_ns(ns: int) -> int:
    return ns - ns % NS_PER_HOUR


def floor_to_grid(times: pd.Series, interval_h: pd.Series | float, offset_h: float = 0.0) -> pd.Series:
    """Floor timestamps to a venue's settlement grid: exchanges add millisecond jitter.

    The grid of an interval of h hours is every h hours from midnight UTC plus `offset_h`.
    """
    t = to_utc(times)
    ns = t.astype("int64").to_numpy()
    step = (np.asarray(interval_h, dtype="float64") * NS_PER_HOUR).astype("int64")
    off = int(offset_h * NS_PER_HOUR)
    floored = ((ns - off) // step) * step + off
    return pd.Series(pd.to_datetime(floored, utc=True), index=t.index)


def is_plausible_interval(hours: float) -> bool:
    return MIN_INTERVAL_H <= hours <= MAX_INTERVAL_H
