"""The simulated venues: market structure (listings, intervals, liquidity), premium paths and funding formula.

The formula's constants (interest, clamp, dead band, cap, shape) are the venue adapters' facts;
what is only the simulation's (premium offsets, volume shares, which bases each venue lists,
interval overrides and changes) is in VENUE_SPECS.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from fund_pipeline.domain.predicted import FormulaKind, FundingFormula
from fund_pipeline.domain.time import NS_PER_HOUR
from fund_pipeline.sources.sim_paths import (
    EXTRA_BASE_KEY_OFFSET,
    NAMED_BASES,
    SIM_EPOCH,
    VENUE_PREMIUM_AR,
    VENUE_PREMIUM_STD,
    ar1,
    day_rng,
    draw_blocks,
    simulate_bases,
    universe,
)
from fund_pipeline.venues.registry import SIM_VENUES, adapter, facts

# The OKX symbol whose funding interval changes from 8h to 4h, and when.
OKX_INTERVAL_CHANGE_BASE = "SUI"
OKX_INTERVAL_CHANGE_AT = pd.Timestamp("2025-07-01 00:00", tz="UTC")


@dataclass(frozen=True)
class VenueSpec:
    """What the simulation adds to a venue's facts: premium offset, liquidity, listings, intervals."""

    venue: str
    premium_offset: float
    volume_share: float  # of the reference (binance) perp volume
    spot_volume_share: float  # spot volume / perp volume
    max_leverage_major: int
    max_leverage_alt: int
    excluded: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None
    lists_extras: bool = True
    interval_overrides: tuple[tuple[str, int], ...] = ()
    extra_4h_every: int = 0  # every n-th extra base settles every 4h (0: none)
    listed_from: tuple[tuple[str, str], ...] = ()
    # (base, from, new interval h): a listed symbol whose interval changes once.
    interval_change: tuple[str, pd.Timestamp, int] | None = None

    @property
    def cap(self) -> float:
        """Largest |rate| per interval (the venue's cap)."""
        return facts(self.venue).rate_cap

    @property
    def default_interval_h(self) -> float:
        return facts(self.venue).default_interval_h


VENUE_SPECS = {
    "binance": VenueSpec(
        "binance", 0.0, 1.0, 0.35, 125, 75, interval_overrides=(("PEPE", 4), ("WIF", 4), ("INJ", 4)), extra_4h_every=5
    ),
    "bybit": VenueSpec(
        "bybit",
        0.00002,
        0.55,
        0.2,
        100,
        50,
        excluded=("ATOM",),
        interval_overrides=(("WIF", 4), ("APT", 4)),
        extra_4h_every=7,
    ),
    "okx": VenueSpec(
        "okx",
        -0.00001,
        0.35,
        0.25,
        100,
        50,
        excluded=("INJ", "FIL"),
        listed_from=(("WIF", "2025-03-15"),),
        interval_change=(OKX_INTERVAL_CHANGE_BASE, OKX_INTERVAL_CHANGE_AT, 4),
    ),
    "hyperliquid": VenueSpec(
        "hyperliquid",
        0.00008,
        0.25,
        0.05,
        40,
        20,
        excluded=("TRX", "TON", "FIL", "LTC"),
        listed_from=(("AAVE", "2025-02-20"),),
    ),
    "deribit": VenueSpec(
        "deribit", 0.0, 0.04, 0.02, 50, 20, only=("BTC", "ETH", "SOL", "XRP", "DOGE", "AVAX"), lists_extras=False
    ),
}
REFERENCE_HOURLY_VOLUME_USD = 20e9 / 24  # BTC perp on binance
OI_TO_DAILY_VOLUME = 0.5
# Coin-margined perps (the adapters' `inverse_perps`, only when asked for): they follow their base's linear
# premium a little lower (longs there post the coin itself as margin), on a fraction of its volume, with
# their own hash key (missing settlements and predicted-rate noise of their own).
INVERSE_PREMIUM_OFFSET = -0.00002
INVERSE_VOLUME_SHARE = 0.15
INVERSE_KEY_OFFSET = 2 * EXTRA_BASE_KEY_OFFSET


@dataclass(frozen=True)
class VenuePath:
    columns: np.ndarray  # universe column of each listed base
    premium: np.ndarray  # (T, n) perp / index - 1, hourly
    premium_cumsum: np.ndarray  # (T + 1, n), row 0 = 0


@functools.lru_cache(maxsize=8)
def simulate_venue(seed: int, n_extra: int, venue: str, n_days: int) -> VenuePath:
    base = simulate_bases(seed, n_extra, n_days)
    columns = venue_columns(venue, n_extra)
    venue_index = SIM_VENUES.index(venue)
    z = np.empty((n_days * 24, len(columns)), dtype=np.float32)
    for day in range(n_days):
        z[day * 24 : day * 24 + 24] = draw_blocks(day_rng(seed, day, 1 + venue_index), n_extra, 1)[0][:, columns]
    venue_noise = ar1(VENUE_PREMIUM_STD * np.sqrt(1 - VENUE_PREMIUM_AR**2) * z, VENUE_PREMIUM_AR)
    premium = base.premium[:, columns] + VENUE_SPECS[venue].premium_offset + venue_noise
    cumsum = np.vstack([np.zeros((1, len(columns))), np.cumsum(premium, axis=0)])
    return VenuePath(columns, premium, cumsum)


@functools.lru_cache(maxsize=16)
def venue_columns(venue: str, n_extra: int) -> np.ndarray:
    spec = VENUE_SPECS[venue]
    names = universe(n_extra).names
    listed = [
        j
        for j, name in enumerate(names)
        if (j >= len(NAMED_BASES) and spec.lists_extras)
        or (j < len(NAMED_BASES) and name not in spec.excluded and (spec.only is None or name in spec.only))
    ]
    return np.array(listed, dtype=np.int64)


def funding_rate(venue: str, avg_premium: npt.ArrayLike, interval_h: npt.ArrayLike) -> np.ndarray:
    """The venue's settled rate per interval from the window-average premium (perp / index - 1).

    The shape and constants are the adapter's facts: "clamped" F = P + clamp(I - P, ±0.05 %) with
    P and the 0.01 %/8h interest I scaled to the interval (inside the clamp F is exactly I, the real
    mass point of funding); "hourly_clamped" the 8h formula paid hourly (1/8 of it); "dead_band"
    no interest and nothing inside the band. Every venue caps |F| at its own limit.
    """
    rules = facts(venue)
    avg_premium = np.asarray(avg_premium, dtype=np.float64)
    scale = np.asarray(interval_h, dtype=np.float64) / 8.0
    if rules.formula == "dead_band":
        band = rules.dead_band_8h
        rate = scale * (np.maximum(0.0, avg_premium - band) + np.minimum(0.0, avg_premium + band))
    else:
        premium: np.ndarray
        interest: float | np.ndarray
        pay: float | np.ndarray
        if rules.formula == "hourly_clamped":
            premium, interest, pay = avg_premium, rules.interest_rate_8h, scale
        else:
            premium, interest, pay = scale * avg_premium, rules.interest_rate_8h * scale, 1.0
        gap = interest - premium
        clamp = rules.clamp_8h
        rate = pay * np.where(np.abs(gap) <= clamp, interest, premium + np.clip(gap, -clamp, clamp))
    return np.clip(rate, -rules.rate_cap, rules.rate_cap)


def sim_formula(venue: str) -> FundingFormula:
    """`funding_rate` as data, for the reconstruction: uniform averages of the hourly premium.

    "clamped": premium and interest scaled to the interval, the clamp as it is; "hourly_clamped":
    the 8h formula paid at interval/8, so premium, interest and clamp all scaled; "dead_band": the
    band applied to the window's average, scaled like the hourly formula.
    """
    rules = facts(venue)
    if rules.formula == "dead_band":
        return FundingFormula(0.0, rules.dead_band_8h, rules.rate_cap, kind=FormulaKind.DEAD_BAND, clamp_scaled=True)
    return FundingFormula(
        rules.interest_rate_8h, rules.clamp_8h, rules.rate_cap, clamp_scaled=rules.formula == "hourly_clamped"
    )


def hours_since_epoch_ceil(ts: pd.Timestamp) -> int:
    return -((SIM_EPOCH.value - ts.value) // NS_PER_HOUR)


@dataclass(frozen=True)
class Listing:
    """Listed perps of one venue as aligned arrays (row i = one symbol).

    The interval schedule is interval_h before change_hour and next_interval_h from it
    (change_hour beyond any horizon when the interval never changes).
    """

    symbol: np.ndarray
    base: np.ndarray
    quote: np.ndarray
    key: np.ndarray  # stable hash key of the symbol
    path_column: np.ndarray  # column in the venue path
    max_leverage: np.ndarray
    listed_hour: np.ndarray  # hours since the epoch
    interval_h: np.ndarray
    next_interval_h: np.ndarray
    change_hour: np.ndarray
    premium_offset: np.ndarray  # added to the venue path's premium (inverse perps)
    volume_scale: np.ndarray  # of the base's linear perp volume and open interest

    def take(self, rows) -> Listing:
        return Listing(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})

    def interval_at(self, hour) -> np.ndarray:
        """Interval in force during `hour` (broadcast against the rows on the last axis)."""
        return np.where(np.asarray(hour) >= self.change_hour, self.next_interval_h, self.interval_h)

    def __len__(self) -> int:
        return len(self.symbol)


@functools.lru_cache(maxsize=32)
def venue_listing(venue: str, n_extra: int, inverse: bool = False) -> Listing:
    """The venue's linear perps, then (with `inverse`) its coin-margined perps of the bases it lists."""
    linear = _linear_listing(venue, n_extra)
    if not inverse:
        return linear
    row_of = {str(b): i for i, b in enumerate(linear.base)}
    perps = [p for p in adapter(venue).inverse_perps if p.base in row_of]
    rows = np.array([row_of[p.base] for p in perps], dtype=np.int64)
    coins = linear.take(rows)
    default_h = VENUE_SPECS[venue].default_interval_h
    coin_m = Listing(
        symbol=np.array([p.symbol for p in perps], dtype=object),
        base=coins.base,
        quote=np.full(len(perps), "USD", dtype=object),
        key=coins.key + INVERSE_KEY_OFFSET,
        path_column=coins.path_column,
        max_leverage=coins.max_leverage,
        listed_hour=coins.listed_hour,
        interval_h=np.full(len(perps), default_h, dtype=np.int64),
        next_interval_h=np.full(len(perps), default_h, dtype=np.int64),
        change_hour=np.full(len(perps), np.iinfo(np.int64).max // NS_PER_HOUR, dtype=np.int64),
        premium_offset=np.full(len(perps), INVERSE_PREMIUM_OFFSET),
        volume_scale=np.full(len(perps), INVERSE_VOLUME_SHARE),
    )
    return Listing(
        **{
            name: np.concatenate([getattr(linear, name), getattr(coin_m, name)])
            for name in Listing.__dataclass_fields__
        }
    )


def _linear_listing(venue: str, n_extra: int) -> Listing:
    spec = VENUE_SPECS[venue]
    uni = universe(n_extra)
    columns = venue_columns(venue, n_extra)
    overrides = dict(spec.interval_overrides)
    listed_from = {b: hours_since_epoch_ceil(pd.Timestamp(d, tz="UTC")) for b, d in spec.listed_from}
    never = np.iinfo(np.int64).max // NS_PER_HOUR
    change_base, change_at, change_to = spec.interval_change or (None, SIM_EPOCH, 0)
    names = [uni.names[j] for j in columns.tolist()]
    interval: list[float] = []
    next_interval: list[float] = []
    change: list[int] = []
    for j, name in zip(columns.tolist(), names, strict=True):
        extra_index = j - len(NAMED_BASES)
        h = overrides.get(name, spec.default_interval_h)
        if extra_index >= 0 and spec.extra_4h_every and extra_index % spec.extra_4h_every == 0:
            h = 4
        interval.append(h)
        if name == change_base:
            next_interval.append(change_to)
            change.append(hours_since_epoch_ceil(change_at))
        else:
            next_interval.append(h)
            change.append(never)
    return Listing(
        symbol=np.array([adapter(venue).venue_symbol(name) for name in names], dtype=object),
        base=np.array(names, dtype=object),
        quote=np.full(len(names), facts(venue).quote, dtype=object),
        key=uni.keys[columns],
        path_column=np.arange(len(columns)),
        max_leverage=np.array(
            [spec.max_leverage_major if n in ("BTC", "ETH") else spec.max_leverage_alt for n in names], dtype=np.float64
        ),
        listed_hour=np.array([listed_from.get(n, 0) for n in names], dtype=np.int64),
        interval_h=np.array(interval, dtype=np.int64),
        next_interval_h=np.array(next_interval, dtype=np.int64),
        change_hour=np.array(change, dtype=np.int64),
        premium_offset=np.zeros(len(names)),
        volume_scale=np.ones(len(names)),
    )


def settlement_hours(listing: Listing, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """(listing row, settlement hour) of every window settling in hours [first, stop).

    A window [k - h, k) exists when k is on the h-grid and the window starts at or after the
    listing, inside the segment of the interval schedule whose interval is h.
    """
    row_parts, hour_parts = [], []
    for row in range(len(listing)):
        change, listed = int(listing.change_hour[row]), int(listing.listed_hour[row])
        segments = ((int(listing.interval_h[row]), 0, change), (int(listing.next_interval_h[row]), change, None))
        for h, seg_start, seg_end in segments:
            if seg_start >= stop:
                continue
            lo = max(first, seg_start + h, listed + h)
            hi = stop if seg_end is None else min(stop, seg_end + h)
            k0 = -(-lo // h) * h
            if k0 < hi:
                hours = np.arange(k0, hi, h)
                row_parts.append(np.full(len(hours), row))
                hour_parts.append(hours)
    if not row_parts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(row_parts), np.concatenate(hour_parts)
