"""FundingPrint schema and the normalisation every source goes through.

One schema for settled and predicted prints from every source, so that history and live
join without a gap. Times are tz-aware UTC pandas timestamps; rates are decimals per
funding interval; intervals are per symbol and time (never assume 8h).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import pandas as pd

from fund_pipeline.domain.records import PRINT_COLUMNS, PRINT_KEY
from fund_pipeline.domain.time import HOURS_PER_YEAR, to_utc
from fund_pipeline.domain.time import floor_to_grid as floor_to_grid  # defined in time; sources import it here

PRINT_KINDS = ("settled", "predicted")
PRINT_SOURCES = ("sim", "file", "rest", "ws", "reconstructed")

# Venue caps are at most a few percent per interval (Hyperliquid's 4 %/h is the widest): a rate
# beyond 10 % per interval is a unit error (percent read as a decimal), not a market.
MAX_PLAUSIBLE_RATE = 0.10

# How each market is margined: "linear" | "inverse" (domain.contracts), its margin and settlement asset, and its
# contract size (ccxt's convention: base units for a linear contract, USD for an inverse one).
MARKET_TERMS_COLUMNS = ["margin", "settle", "contract_size"]
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
    *MARKET_TERMS_COLUMNS,
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

# 8h interest component that sits in most venues' formula: the real mass point of funding.
INTEREST_RATE_8H = 0.0001


class SchemaError(ValueError):
    """A frame does not have the columns or values its schema requires."""


def rate_to_8h(rate, interval_h):
    """Normalise a per-interval rate to its 8h equivalent, to compare venues."""
    return np.asarray(rate, dtype="float64") * 8.0 / np.asarray(interval_h, dtype="float64")


def annualise(rate, interval_h):
    """Compound a per-interval rate to a yearly yield with its own interval."""
    exponent = HOURS_PER_YEAR / np.asarray(interval_h, dtype="float64")
    return np.power(1.0 + np.asarray(rate, dtype="float64"), exponent) - 1.0


def deannualise(ann, interval_h):
    """Inverse of `annualise`."""
    exponent = np.asarray(interval_h, dtype="float64") / HOURS_PER_YEAR
    return np.power(1.0 + np.asarray(ann, dtype="float64"), exponent) - 1.0


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(f"{what}: missing column(s) {missing}; got {list(frame.columns)}")


def empty_prints() -> pd.DataFrame:
    return normalise_prints(pd.DataFrame({c: [] for c in PRINT_COLUMNS}))


_PRINT_TIME_COLUMNS = ("funding_time", "ts", "received_at")
_PRINT_NUMBER_COLUMNS = ("rate", "interval_h", "mark_price", "index_price")


def normalise_prints(frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce a frame to the FundingPrint schema, with a clear error for what does not fit."""
    require_columns(frame, [c for c in PRINT_COLUMNS if c != "received_at"], "funding prints")
    # Column by column into one new frame: copying the input and assigning into it copies a year of
    # hourly prints several times over.
    columns = {}
    for col in PRINT_COLUMNS:
        values = frame[col] if col in frame.columns else pd.Series(pd.NaT, index=frame.index)
        if col in _PRINT_TIME_COLUMNS:
            values = to_utc(values)
        elif col in _PRINT_NUMBER_COLUMNS:
            values = pd.to_numeric(values, errors="coerce").astype("float64")
        else:
            values = values.astype("object")
        columns[col] = values.array
    out = pd.DataFrame(columns)
    bad_kind = set(out["kind"].unique()) - set(PRINT_KINDS)
    if bad_kind:
        raise SchemaError(f"funding prints: unknown kind(s) {sorted(bad_kind)}; expected {PRINT_KINDS}")
    return out


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


class PrintsReport(NamedTuple):
    """What `storable_prints` did: rows in, rows kept, exact duplicates and key conflicts collapsed."""

    rows_in: int
    rows_kept: int
    duplicates: int
    conflicts: int


# Conflict rule: of rows sharing a key (venue, symbol, kind, funding_time, ts) but not their values,
# the one received last wins (received_at, NaT first), then the later row of the input: a re-sent
# frame or a source's later revision supersedes the earlier one.
CONFLICT_VALUE_COLUMNS = ["base", "received_at", "rate", "interval_h", "mark_price", "index_price", "source"]


def implausible_rows(frame: pd.DataFrame, max_abs_rate: float = MAX_PLAUSIBLE_RATE) -> pd.DataFrame:
    """Rows no venue can have stated: |rate| above `max_abs_rate`, or a yield that annualises to ±inf."""
    rate = frame["rate"].to_numpy(dtype="float64")
    interval = frame["interval_h"].to_numpy(dtype="float64")
    with np.errstate(over="ignore", invalid="ignore"):
        ann = annualise(rate, interval)
    return frame.loc[(np.abs(rate) > max_abs_rate) | ~np.isfinite(ann)]


def storable_prints(frame: pd.DataFrame, max_abs_rate: float = MAX_PLAUSIBLE_RATE) -> tuple[pd.DataFrame, PrintsReport]:
    """Prints fit to store: validated, nothing implausible, one row per key (see CONFLICT_VALUE_COLUMNS).

    Raises SchemaError naming the rows when any rate is unusable or implausible: storing it would
    make every annualised number downstream infinite.
    """
    out = validate_prints(frame)
    bad = implausible_rows(out, max_abs_rate)
    if len(bad):
        sample = bad.head(3)[["venue", "symbol", "funding_time", "rate", "interval_h"]].to_dict("records")
        raise SchemaError(
            f"funding prints: {len(bad)} row(s) with an implausible rate (|rate| > {max_abs_rate} per interval, "
            f"or an infinite annualised yield), e.g. {sample}"
        )
    if not out.duplicated(PRINT_KEY).any():
        # No key shared: nothing to collapse (the sort below costs seconds on a year of hourly prints).
        return out, PrintsReport(len(out), len(out), 0, 0)
    ordered = out.assign(_row=np.arange(len(out))).sort_values(
        [*PRINT_KEY, "received_at", "_row"], kind="stable", na_position="first"
    )
    exact = ordered.duplicated([*PRINT_KEY, *CONFLICT_VALUE_COLUMNS], keep="last")
    distinct = ordered.loc[~exact]
    superseded = distinct.duplicated(PRINT_KEY, keep="last")
    kept = distinct.loc[~superseded].sort_values("_row", kind="stable").drop(columns="_row")
    report = PrintsReport(len(out), len(kept), int(exact.sum()), int(superseded.sum()))
    return kept.reset_index(drop=True), report
