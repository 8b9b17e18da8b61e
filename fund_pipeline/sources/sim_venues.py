"""The simulated venues: market structure (listings, intervals, liquidity), premium paths and funding formula.

The formula (interest, clamp, dead band, caps, weighting, averaging window) is the venue adapters' documented
`FundingFormula`, applied to the minute premium samples the market serves;
what is only the simulation's (premium offsets, volume shares, which bases each venue lists,
interval overrides and changes) is in VENUE_SPECS.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from fund_pipeline.domain.predicted import AveragingWindow, FundingFormula, sample_values
from fund_pipeline.domain.predicted import funding_rate as predicted_rate
from fund_pipeline.domain.time import KNOWN_INTERVALS_H, NS_PER_HOUR
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

MINUTES_PER_HOUR = 60
# Rows of `window_rates` computed at once (bounds its (rows, hours) intermediates).
WINDOW_ROWS_PER_BLOCK = 1 << 15
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
    # (symbol, cap, floor): symbols whose cap and floor the venue set apart from its default (binance lists them in
    # `fundingInfo`, bybit in every instrument's upper/lowerFundingRate); the emulator serves them so.
    funding_bounds: tuple[tuple[str, float, float], ...] = ()

    @property
    def cap(self) -> float:
        """Largest |rate| per interval (the venue's cap)."""
        return facts(self.venue).rate_cap

    @property
    def default_interval_h(self) -> float:
        return facts(self.venue).default_interval_h


VENUE_SPECS = {
    "binance": VenueSpec(
        "binance",
        0.0,
        1.0,
        0.35,
        125,
        75,
        interval_overrides=(("PEPE", 4), ("WIF", 4), ("INJ", 4)),
        extra_4h_every=5,
        # BTC and ETH at Binance's FAQ example (BTCUSDT ±0.3 %), COIN-M at its dapi fundingInfo example (BTCUSD_PERP
        # ±2.5 %); DOGE tight enough (±0.1 %) to bind in about 5 % of its windows.
        funding_bounds=(
            ("BTC/USDT:USDT", 0.003, -0.003),
            ("ETH/USDT:USDT", 0.003, -0.003),
            ("DOGE/USDT:USDT", 0.001, -0.001),
            ("BTC/USD:BTC", 0.025, -0.025),
            ("ETH/USD:ETH", 0.025, -0.025),
        ),
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
        # BTC at Bybit's instruments-info example (±0.375 %); WIF (4h) tight enough (±0.12 %) to bind at times.
        funding_bounds=(("BTC/USDT:USDT", 0.00375, -0.00375), ("WIF/USDT:USDT", 0.0012, -0.0012)),
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


def symbol_formulas(venue: str, symbols) -> list[FundingFormula]:
    """The documented formula of each symbol, as the venue's adapter states it now (one formula for the whole
    simulation: okx's of 2025-04-10 also before that date, from SIM_EPOCH on), with the symbol's own cap and floor
    where the simulated venue sets them (`VenueSpec.funding_bounds`)."""
    venue_adapter = adapter(venue)
    bounds = {symbol: (cap, floor) for symbol, cap, floor in VENUE_SPECS[venue].funding_bounds}
    formulas = []
    for symbol in map(str, symbols):
        formula = venue_adapter.funding_formula(symbol)
        formulas.append(formula.bounded(*bounds[symbol]) if symbol in bounds else formula)
    return formulas


def funding_rate(
    venue: str, premium: npt.ArrayLike, interval_h: npt.ArrayLike, symbol: str | None = None
) -> np.ndarray:
    """The rate per interval of a window whose premium stays at `premium` throughout, by the venue's formula
    (the symbol's own, when named: OKX caps by currency, binance and bybit set some symbols' caps apart)."""
    formula = symbol_formulas(venue, [symbol])[0] if symbol else facts(venue).funding
    return predicted_rate(sample_values(premium, interval_h, formula), interval_h, formula)


def minute_weights(
    lo: np.ndarray, hi: np.ndarray, hour: np.ndarray, formula: FundingFormula, interval_h: np.ndarray
) -> np.ndarray:
    """Weight of hour `hour`'s minute samples (minutes [60·hour, 60·hour + 60) from the window's start) among
    the window's samples in minutes [lo, hi): how many of them, or their linear slots 1, 2, ... summed (where the
    formula weighs windows of `interval_h` linearly).

    A minute sample is the hour's premium (the simulated premium is hourly), so a window's average is a
    weighted sum of its hours' premiums, exactly what the reconstruction computes from the served samples.
    """
    a = np.clip(MINUTES_PER_HOUR * hour, lo, hi).astype(np.float64)
    b = np.clip(MINUTES_PER_HOUR * (hour + 1), lo, hi).astype(np.float64)
    return np.where(formula.linear_on(interval_h), (b * (b + 1) - a * (a + 1)) / 2, b - a)


def window_rates(
    path: VenuePath,
    listing: Listing,
    formulas: list[FundingFormula],
    rows: np.ndarray,
    start_hour: np.ndarray,
    interval_h: np.ndarray,
    minutes_done: np.ndarray,
    current_premium: np.ndarray,
) -> np.ndarray:
    """Each row's rate by its symbol's formula on the minute samples of its window known after `minutes_done`
    minutes: the window so far, or the last N hours under a moving average (samples only from the listing on).

    `rows` index `listing` (and `formulas`), `start_hour` is the window's first hour since the epoch. A window
    with no sample yet (the first minute) quotes the formula on `current_premium`.
    """
    span = int(max(KNOWN_INTERVALS_H))
    rate = np.empty(len(rows))
    codes, groups = _formula_groups(formulas, rows)
    for code, formula in enumerate(groups):
        moving = formula.window is AveragingWindow.MOVING
        # Hours of the window, and under a moving average the previous window's (negative slots).
        slot = np.arange(-span if moving else 0, span)[None, :]
        group = np.flatnonzero(codes == code)
        for at in np.array_split(group, -(-len(group) // WINDOW_ROWS_PER_BLOCK) or 1):
            row = rows[at]
            hours = start_hour[at][:, None] + slot
            premium = path.premium[np.clip(hours, 0, len(path.premium) - 1), listing.path_column[row][:, None]]
            premium = premium + listing.premium_offset[row][:, None]
            done, interval = minutes_done[at][:, None], interval_h[at][:, None]
            lo = done - MINUTES_PER_HOUR * interval if moving else np.zeros_like(done)
            known = hours >= listing.listed_hour[row][:, None]
            weights = np.where(known, minute_weights(lo, done, slot, formula, interval), 0.0)
            total = weights.sum(axis=1)
            fallback = sample_values(current_premium[at], interval_h[at], formula)
            with np.errstate(invalid="ignore", divide="ignore"):
                summed = (weights * sample_values(premium, interval, formula)).sum(axis=1)
                average = np.where(total > 0, summed / total, fallback)
            rate[at] = predicted_rate(average, interval_h[at], formula)
    return rate


def _formula_groups(formulas: list[FundingFormula], rows: np.ndarray) -> tuple[np.ndarray, list[FundingFormula]]:
    """Each row's formula as a code into the distinct formulas."""
    distinct: dict[FundingFormula, int] = {}
    code_of_row = np.array([distinct.setdefault(f, len(distinct)) for f in formulas], dtype=np.int64)
    return code_of_row[rows], list(distinct)


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
