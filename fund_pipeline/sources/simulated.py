"""Deterministic simulated market: the embedded default source.

Realistic enough that every downstream number means something: factor-driven correlated
prices (market + sector + idiosyncratic, with jumps), a persistent (AR) premium per venue
and base with calm / euphoric / stressed regimes, spot and perp legs, each venue's funding
formula with its clamp and cap (so the 0.01%/8h interest is the real mass point of settled
rates), mixed and changing funding intervals, open interest and volume in USD, and rare
missing settlements.

Determinism: random numbers are drawn in per-day blocks seeded from (seed, day index,
stream) and the hourly path is simulated forward from SIM_EPOCH with causal filters, so
the value of any hour never depends on the requested range (prefix consistency). Within a
day block, draws are laid out base-major with the named bases first and the synthetic
extra bases last, so a base's path does not depend on `bases=` nor on `n_extra_bases`.
Paths are cached per process, simulated up to a whole number of CHUNK_DAYS.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter
from scipy.stats import norm

from fund_pipeline.domain.prints import (
    BAR_COLUMNS,
    INTEREST_RATE_8H,
    MARKET_COLUMNS,
    PRINT_COLUMNS,
)
from fund_pipeline.venues.registry import SIM_VENUES, UnknownVenueError

SIM_EPOCH = pd.Timestamp("2025-01-01 00:00", tz="UTC")
# Paths are simulated to a multiple of this many days, so successive daily requests reuse the cache.
CHUNK_DAYS = 32
HOUR_NS = 3_600_000_000_000
HOURS_PER_YEAR = 8760.0

# Share of funding windows whose settlement is missing from funding_prints.
MISSING_SETTLEMENT_SHARE = 0.003
# |I - P| inside this band settles exactly at the interest: the clamp of binance/bybit/okx/hyperliquid.
FUNDING_CLAMP = 0.0005
# Deribit charges nothing inside +-0.05% of premium (its dead band).
DERIBIT_DEAD_BAND = 0.0005
# The OKX symbol whose funding interval changes from 8h to 4h, and when.
OKX_INTERVAL_CHANGE_BASE = "SUI"
OKX_INTERVAL_CHANGE_AT = pd.Timestamp("2025-07-01 00:00", tz="UTC")

CALM, EUPHORIC, STRESSED = 0, 1, 2
# Hourly regime transition matrix (rows: from; columns: to): calm lasts weeks, stress days.
REGIME_TRANSITIONS = np.array(
    [
        [1 - 1 / (24 * 45) - 1 / (24 * 70), 1 / (24 * 45), 1 / (24 * 70)],
        [1 / (24 * 8), 1 - 1 / (24 * 8) - 1 / (24 * 40), 1 / (24 * 40)],
        [1 / (24 * 4), 1 / (24 * 200), 1 - 1 / (24 * 4) - 1 / (24 * 200)],
    ]
)
REGIME_VOL_SCALE = np.array([1.0, 1.3, 2.0])
REGIME_MARKET_DRIFT = np.array([0.0, 0.9, -1.8]) / HOURS_PER_YEAR
REGIME_VOLUME_SCALE = np.array([1.0, 1.6, 2.2])
# Premium (perp / index - 1) mean and stationary std by regime, before each base's sensitivity.
REGIME_PREMIUM_MEAN = np.array([0.00007, 0.0008, -0.00035])
REGIME_PREMIUM_STD = np.array([0.00012, 0.00045, 0.0006])

MARKET_VOL_ANNUAL = 0.45
SECTOR_VOL_ANNUAL = 0.35
SECTORS = ("majors", "layer1", "infra", "defi", "meme", "payments")
PREMIUM_AR = 0.97  # hourly persistence of a base's premium (half-life ~ a day)
PREMIUM_MEAN_AR = 1 - 1 / 12  # regime mean reached over ~ half a day
VENUE_PREMIUM_AR = 0.8
VENUE_PREMIUM_STD = 0.00008
OI_AR = 0.998
OI_STD = 0.15
OI_PREMIUM_SENSITIVITY = 120.0  # log-OI per unit of 24h-average premium
JUMP_PROBABILITY = 1 / 2000  # per base and hour
JUMP_SIZE_IN_HOURLY_VOLS = 6.0
PREMIUM_JUMP = 0.0012
PREDICTED_NOISE = 0.00001  # per-second noise of the predicted rate, shrinking to 0 at the window end


@dataclass(frozen=True)
class BaseSpec:
    """A simulated base asset: its start price, risk (total vol, market beta) and premium sensitivity."""

    name: str
    sector: str
    price0: float
    vol_annual: float
    beta: float
    premium_sensitivity: float
    size: float  # liquidity relative to BTC


NAMED_BASES = (
    BaseSpec("BTC", "majors", 94000.0, 0.50, 1.0, 0.8, 1.0),
    BaseSpec("ETH", "majors", 3300.0, 0.65, 1.15, 0.9, 0.55),
    BaseSpec("SOL", "layer1", 190.0, 0.85, 1.3, 1.1, 0.2),
    BaseSpec("XRP", "payments", 2.1, 0.90, 1.1, 1.0, 0.15),
    BaseSpec("BNB", "layer1", 700.0, 0.50, 0.8, 0.7, 0.06),
    BaseSpec("DOGE", "meme", 0.32, 1.00, 1.3, 1.4, 0.12),
    BaseSpec("ADA", "layer1", 0.85, 0.90, 1.2, 1.0, 0.05),
    BaseSpec("AVAX", "layer1", 36.0, 0.95, 1.3, 1.1, 0.04),
    BaseSpec("LINK", "defi", 21.0, 0.90, 1.2, 1.0, 0.04),
    BaseSpec("DOT", "layer1", 6.8, 0.90, 1.2, 0.9, 0.025),
    BaseSpec("LTC", "payments", 100.0, 0.80, 1.0, 0.8, 0.03),
    BaseSpec("TRX", "payments", 0.25, 0.60, 0.6, 0.7, 0.02),
    BaseSpec("TON", "layer1", 5.2, 0.80, 0.8, 0.9, 0.02),
    BaseSpec("SUI", "layer1", 4.1, 1.10, 1.4, 1.3, 0.06),
    BaseSpec("APT", "layer1", 8.9, 1.00, 1.3, 1.1, 0.02),
    BaseSpec("ARB", "infra", 0.75, 1.00, 1.3, 1.1, 0.025),
    BaseSpec("OP", "infra", 1.8, 1.00, 1.3, 1.1, 0.02),
    BaseSpec("NEAR", "layer1", 5.1, 1.00, 1.3, 1.0, 0.02),
    BaseSpec("UNI", "defi", 13.0, 1.00, 1.2, 1.0, 0.02),
    BaseSpec("AAVE", "defi", 330.0, 1.00, 1.2, 1.0, 0.025),
    BaseSpec("PEPE", "meme", 0.000018, 1.20, 1.5, 1.6, 0.07),
    BaseSpec("WIF", "meme", 1.9, 1.40, 1.6, 1.8, 0.05),
    BaseSpec("FIL", "infra", 5.0, 1.00, 1.2, 1.0, 0.015),
    BaseSpec("ATOM", "layer1", 6.5, 0.90, 1.1, 0.9, 0.015),
    BaseSpec("INJ", "defi", 23.0, 1.10, 1.4, 1.2, 0.015),
)
EXTRA_BASE_KEY_OFFSET = 1000  # hash key of extra base i is 1000 + i: disjoint from named ones


@dataclass(frozen=True)
class VenueSpec:
    """What differs between venues: quote, funding formula and cap, listings, intervals, liquidity."""

    quote: str
    formula: str  # "clamped" (binance/bybit/okx), "hourly_clamped" (hyperliquid), "dead_band" (deribit)
    cap: float  # max |rate| per interval
    premium_offset: float
    volume_share: float  # of the reference (binance) perp volume
    spot_volume_share: float  # spot volume / perp volume
    max_leverage_major: int
    max_leverage_alt: int
    default_interval_h: int
    excluded: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None
    lists_extras: bool = True
    interval_overrides: tuple[tuple[str, int], ...] = ()
    extra_4h_every: int = 0  # every n-th extra base settles every 4h (0: none)
    listed_from: tuple[tuple[str, str], ...] = ()


VENUE_SPECS = {
    "binance": VenueSpec(
        "USDT",
        "clamped",
        0.0075,
        0.0,
        1.0,
        0.35,
        125,
        75,
        8,
        interval_overrides=(("PEPE", 4), ("WIF", 4), ("INJ", 4)),
        extra_4h_every=5,
    ),
    "bybit": VenueSpec(
        "USDT",
        "clamped",
        0.02,
        0.00002,
        0.55,
        0.2,
        100,
        50,
        8,
        excluded=("ATOM",),
        interval_overrides=(("WIF", 4), ("APT", 4)),
        extra_4h_every=7,
    ),
    "okx": VenueSpec(
        "USDT",
        "clamped",
        0.015,
        -0.00001,
        0.35,
        0.25,
        100,
        50,
        8,
        excluded=("INJ", "FIL"),
        listed_from=(("WIF", "2025-03-15"),),
    ),
    "hyperliquid": VenueSpec(
        "USDC",
        "hourly_clamped",
        0.04,
        0.00008,
        0.25,
        0.05,
        40,
        20,
        1,
        excluded=("TRX", "TON", "FIL", "LTC"),
        listed_from=(("AAVE", "2025-02-20"),),
    ),
    "deribit": VenueSpec(
        "USDC",
        "dead_band",
        0.005,
        0.0,
        0.04,
        0.02,
        50,
        20,
        8,
        only=("BTC", "ETH", "SOL", "XRP", "DOGE", "AVAX"),
        lists_extras=False,
    ),
}
REFERENCE_HOURLY_VOLUME_USD = 20e9 / 24  # BTC perp on binance
OI_TO_DAILY_VOLUME = 0.5


def extra_base_names(n_extra: int) -> tuple[str, ...]:
    return tuple(f"X{i + 1:03d}" for i in range(n_extra))


@dataclass(frozen=True)
class _Universe:
    """Named + synthetic extra bases as aligned arrays (column j = base j)."""

    names: tuple[str, ...]
    keys: np.ndarray  # stable hash key per base
    sector: np.ndarray  # sector index
    price0: np.ndarray
    beta: np.ndarray
    sigma_hour: np.ndarray  # total hourly vol
    sigma_idio_hour: np.ndarray
    premium_sensitivity: np.ndarray
    size: np.ndarray


@functools.lru_cache(maxsize=8)
def _universe(n_extra: int) -> _Universe:
    extras = []
    for i, name in enumerate(extra_base_names(n_extra)):
        u = _unit_hash(0, 99, np.array([EXTRA_BASE_KEY_OFFSET + i]), np.arange(6))
        extras.append(
            BaseSpec(
                name,
                SECTORS[1 + i % (len(SECTORS) - 1)],
                float(10 ** (-3 + 5 * u[0])),
                0.8 + 0.6 * u[1],
                0.9 + 0.7 * u[2],
                0.9 + 0.9 * u[3],
                0.002 + 0.018 * u[4],
            )
        )
    specs = NAMED_BASES + tuple(extras)
    vol = np.array([b.vol_annual for b in specs])
    beta = np.array([b.beta for b in specs])
    systematic = np.sqrt(beta**2 * MARKET_VOL_ANNUAL**2 + SECTOR_VOL_ANNUAL**2)
    idio = np.sqrt(np.maximum(vol**2 - systematic**2, (0.3 * vol) ** 2))
    to_hour = 1 / np.sqrt(HOURS_PER_YEAR)
    return _Universe(
        names=tuple(b.name for b in specs),
        keys=np.concatenate([np.arange(len(NAMED_BASES)), EXTRA_BASE_KEY_OFFSET + np.arange(n_extra)]),
        sector=np.array([SECTORS.index(b.sector) for b in specs]),
        price0=np.array([b.price0 for b in specs]),
        beta=beta,
        sigma_hour=np.sqrt(systematic**2 + idio**2) * to_hour,
        sigma_idio_hour=idio * to_hour,
        premium_sensitivity=np.array([b.premium_sensitivity for b in specs]),
        size=np.array([b.size for b in specs]),
    )


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a counter-based hash, so per-window draws need no sequential state."""
    x = np.asarray(x).astype(np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _unit_hash(seed: int, stream: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) deterministic in (seed, stream, a, b), broadcasting a against b."""
    with np.errstate(over="ignore"):
        h = _mix64(np.uint64(seed) * np.uint64(1_000_003) + np.uint64(stream))
    h = _mix64(h ^ np.asarray(a).astype(np.uint64))
    h = _mix64(h ^ np.asarray(b).astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _day_rng(seed: int, day: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, day, stream])


def _draw_blocks(rng: np.random.Generator, n_extra: int, components: int) -> np.ndarray:
    """(components, 24, n_bases) float32 normals; base-major draws with the extras last (see module doc)."""
    named = rng.standard_normal((len(NAMED_BASES), 24, components), dtype=np.float32)
    extra = rng.standard_normal((n_extra, 24, components), dtype=np.float32)
    return np.concatenate([named, extra]).transpose(2, 1, 0)


def _ar1(innovations: np.ndarray, phi: float) -> np.ndarray:
    """x_t = phi x_{t-1} + e_t along axis 0, from x_{-1} = 0 (causal: prefix-consistent)."""
    return lfilter([1.0], [1.0, -phi], innovations, axis=0)


def _simulate_regimes(uniforms: np.ndarray) -> np.ndarray:
    cumulative = np.cumsum(REGIME_TRANSITIONS, axis=1)
    states = np.empty(len(uniforms), dtype=np.int8)
    state = CALM
    for i, u in enumerate(uniforms.tolist()):
        row = cumulative[state]
        state = CALM if u < row[0] else (EUPHORIC if u < row[1] else STRESSED)
        states[i] = state
    return states


@dataclass(frozen=True)
class _BasePath:
    regimes: np.ndarray  # (T,) int8
    index_close: np.ndarray  # (T, U) index price at each hour's end
    log_return: np.ndarray  # (T, U)
    premium: np.ndarray  # (T, U) base premium shared by venues
    oi_state: np.ndarray  # (T, U) slow log-OI deviation


@functools.lru_cache(maxsize=4)
def _simulate_bases(seed: int, n_extra: int, n_days: int) -> _BasePath:
    uni = _universe(n_extra)
    n_bases, hours = len(uni.names), n_days * 24
    regime_u = np.empty(hours)
    market_z = np.empty(hours)
    sector_z = np.empty((hours, len(SECTORS)))
    idio_z, premium_z, jump_z, jump_size_z, oi_z = np.empty((5, hours, n_bases), dtype=np.float32)
    for day in range(n_days):
        rng = _day_rng(seed, day, 0)
        rows = slice(day * 24, day * 24 + 24)
        regime_u[rows] = rng.random(24)
        market_z[rows] = rng.standard_normal(24)
        sector_z[rows] = rng.standard_normal((24, len(SECTORS)))
        idio_z[rows], premium_z[rows], jump_z[rows], jump_size_z[rows], oi_z[rows] = _draw_blocks(rng, n_extra, 5)

    regimes = _simulate_regimes(regime_u)
    vol_scale = REGIME_VOL_SCALE[regimes][:, None]
    to_hour = 1 / np.sqrt(HOURS_PER_YEAR)
    market = REGIME_MARKET_DRIFT[regimes] + MARKET_VOL_ANNUAL * to_hour * REGIME_VOL_SCALE[regimes] * market_z
    sector = SECTOR_VOL_ANNUAL * to_hour * vol_scale * sector_z
    jumped = jump_z < norm.ppf(JUMP_PROBABILITY)
    jump = np.where(jumped, JUMP_SIZE_IN_HOURLY_VOLS * uni.sigma_hour * jump_size_z, 0.0)
    log_return = uni.beta * market[:, None]
    log_return += sector[:, uni.sector]
    log_return += (uni.sigma_idio_hour * vol_scale) * idio_z
    log_return += jump
    index_close = np.log(uni.price0) + np.cumsum(log_return, axis=0)
    np.exp(index_close, out=index_close)

    sens = uni.premium_sensitivity
    regime_mean = lfilter(
        [1 - PREMIUM_MEAN_AR],
        [1.0, -PREMIUM_MEAN_AR],
        REGIME_PREMIUM_MEAN[regimes],
        zi=[PREMIUM_MEAN_AR * REGIME_PREMIUM_MEAN[CALM]],
    )[0]
    innovation = (sens * np.sqrt(1 - PREMIUM_AR**2)) * REGIME_PREMIUM_STD[regimes][:, None] * premium_z
    innovation += np.where(jumped, PREMIUM_JUMP * sens * np.sign(jump) * np.abs(premium_z), 0.0)
    premium = _ar1(innovation, PREMIUM_AR)
    premium += sens * regime_mean[:, None]
    oi_state = _ar1(oi_z * np.float32(OI_STD * np.sqrt(1 - OI_AR**2)), OI_AR).astype(np.float32)
    return _BasePath(regimes, index_close, log_return, premium, oi_state)


@dataclass(frozen=True)
class _VenuePath:
    columns: np.ndarray  # universe column of each listed base
    premium: np.ndarray  # (T, n) perp / index - 1, hourly
    premium_cumsum: np.ndarray  # (T + 1, n), row 0 = 0


@functools.lru_cache(maxsize=8)
def _simulate_venue(seed: int, n_extra: int, venue: str, n_days: int) -> _VenuePath:
    base = _simulate_bases(seed, n_extra, n_days)
    columns = _venue_columns(venue, n_extra)
    venue_index = SIM_VENUES.index(venue)
    z = np.empty((n_days * 24, len(columns)), dtype=np.float32)
    for day in range(n_days):
        z[day * 24 : day * 24 + 24] = _draw_blocks(_day_rng(seed, day, 1 + venue_index), n_extra, 1)[0][:, columns]
    venue_noise = _ar1(VENUE_PREMIUM_STD * np.sqrt(1 - VENUE_PREMIUM_AR**2) * z, VENUE_PREMIUM_AR)
    premium = base.premium[:, columns] + VENUE_SPECS[venue].premium_offset + venue_noise
    cumsum = np.vstack([np.zeros((1, len(columns))), np.cumsum(premium, axis=0)])
    return _VenuePath(columns, premium, cumsum)


@functools.lru_cache(maxsize=16)
def _venue_columns(venue: str, n_extra: int) -> np.ndarray:
    spec = VENUE_SPECS[venue]
    names = _universe(n_extra).names
    listed = [
        j
        for j, name in enumerate(names)
        if (j >= len(NAMED_BASES) and spec.lists_extras)
        or (j < len(NAMED_BASES) and name not in spec.excluded and (spec.only is None or name in spec.only))
    ]
    return np.array(listed, dtype=np.int64)


def funding_rate(venue: str, avg_premium: np.ndarray, interval_h: np.ndarray) -> np.ndarray:
    """The venue's settled rate per interval from the window-average premium (perp / index - 1).

    binance/bybit/okx: F = P + clamp(I - P, +-0.05%) with P and the 0.01%/8h interest I scaled
    to the interval; inside the clamp F is exactly I (the real mass point of funding).
    hyperliquid: the 8h formula paid hourly (1/8 of it). deribit: dead band, no interest.
    Every venue caps |F| at its own limit.
    """
    spec = VENUE_SPECS[venue]
    avg_premium = np.asarray(avg_premium, dtype=np.float64)
    scale = np.asarray(interval_h, dtype=np.float64) / 8.0
    if spec.formula == "dead_band":
        rate = scale * (
            np.maximum(0.0, avg_premium - DERIBIT_DEAD_BAND) + np.minimum(0.0, avg_premium + DERIBIT_DEAD_BAND)
        )
    else:
        if spec.formula == "hourly_clamped":
            premium, interest, pay = avg_premium, INTEREST_RATE_8H, scale
        else:
            premium, interest, pay = scale * avg_premium, INTEREST_RATE_8H * scale, 1.0
        gap = interest - premium
        rate = pay * np.where(
            np.abs(gap) <= FUNDING_CLAMP, interest, premium + np.clip(gap, -FUNDING_CLAMP, FUNDING_CLAMP)
        )
    return np.clip(rate, -spec.cap, spec.cap)


def _as_utc(value, what: str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ValueError(f"{what}: got NaT; expected a timestamp")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if ts < SIM_EPOCH:
        raise ValueError(
            f"{what} {ts} is before the simulation epoch {SIM_EPOCH}; the simulated market has no data then"
        )
    return ts.as_unit("ns")


def _hours_since_epoch_ceil(ts: pd.Timestamp) -> int:
    return -((SIM_EPOCH.value - ts.value) // HOUR_NS)


def _utc_times(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.asarray(ns, dtype="datetime64[ns]")).tz_localize("UTC")


def _prints_frame(columns: dict, n_rows: int) -> pd.DataFrame:
    """A frame already in the FundingPrint schema (dtypes as normalise_prints gives them), built cheaply."""
    data = {}
    for name in PRINT_COLUMNS:
        if name == "received_at":
            data[name] = _utc_times(np.full(n_rows, np.datetime64("NaT", "ns")))
        elif isinstance(columns[name], str):
            data[name] = np.full(n_rows, columns[name], dtype=object)
        else:
            data[name] = columns[name]
    return pd.DataFrame(data, copy=False)


@dataclass(frozen=True)
class _Listing:
    """Listed perps of one venue as aligned arrays (row i = one symbol).

    The interval schedule is interval_h before change_hour and next_interval_h from it
    (change_hour beyond any horizon when the interval never changes).
    """

    symbol: np.ndarray
    base: np.ndarray
    key: np.ndarray  # stable hash key of the base
    path_column: np.ndarray  # column in the venue path
    max_leverage: np.ndarray
    listed_hour: np.ndarray  # hours since the epoch
    interval_h: np.ndarray
    next_interval_h: np.ndarray
    change_hour: np.ndarray

    def take(self, rows) -> _Listing:
        return _Listing(**{name: getattr(self, name)[rows] for name in self.__dataclass_fields__})

    def interval_at(self, hour) -> np.ndarray:
        """Interval in force during `hour` (broadcast against the rows on the last axis)."""
        return np.where(np.asarray(hour) >= self.change_hour, self.next_interval_h, self.interval_h)

    def __len__(self) -> int:
        return len(self.symbol)


@functools.lru_cache(maxsize=32)
def _venue_listing(venue: str, n_extra: int) -> _Listing:
    spec = VENUE_SPECS[venue]
    uni = _universe(n_extra)
    columns = _venue_columns(venue, n_extra)
    overrides = dict(spec.interval_overrides)
    listed_from = {b: _hours_since_epoch_ceil(pd.Timestamp(d, tz="UTC")) for b, d in spec.listed_from}
    never = np.iinfo(np.int64).max // HOUR_NS
    names = [uni.names[j] for j in columns.tolist()]
    interval, next_interval, change = [], [], []
    for j, name in zip(columns.tolist(), names):
        extra_index = j - len(NAMED_BASES)
        h = overrides.get(name, spec.default_interval_h)
        if extra_index >= 0 and spec.extra_4h_every and extra_index % spec.extra_4h_every == 0:
            h = 4
        interval.append(h)
        if venue == "okx" and name == OKX_INTERVAL_CHANGE_BASE:
            next_interval.append(4)
            change.append(_hours_since_epoch_ceil(OKX_INTERVAL_CHANGE_AT))
        else:
            next_interval.append(h)
            change.append(never)
    return _Listing(
        symbol=np.array([f"{name}/{spec.quote}:{spec.quote}" for name in names], dtype=object),
        base=np.array(names, dtype=object),
        key=uni.keys[columns],
        path_column=np.arange(len(columns)),
        max_leverage=np.array(
            [spec.max_leverage_major if n in ("BTC", "ETH") else spec.max_leverage_alt for n in names], dtype=np.float64
        ),
        listed_hour=np.array([listed_from.get(n, 0) for n in names], dtype=np.int64),
        interval_h=np.array(interval, dtype=np.int64),
        next_interval_h=np.array(next_interval, dtype=np.int64),
        change_hour=np.array(change, dtype=np.int64),
    )


def _settlement_hours(listing: _Listing, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
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


class SimulatedMarket:
    """The simulated venues SIM_VENUES, implementing MarketSource (name "simulated").

    `n_extra_bases` adds synthetic bases "X001".. listed on every venue except deribit,
    for benchmarks that need hundreds of symbols per venue.
    """

    name = "simulated"

    def __init__(
        self,
        seed: int = 7,
        venues: tuple[str, ...] = SIM_VENUES,
        bases: tuple[str, ...] | None = None,
        n_extra_bases: int = 0,
    ):
        if int(seed) != seed or seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
        if int(n_extra_bases) != n_extra_bases or not 0 <= n_extra_bases <= 999:
            raise ValueError(f"n_extra_bases must be an integer in [0, 999]; got {n_extra_bases!r}")
        unknown = [v for v in venues if v not in SIM_VENUES]
        if unknown:
            raise UnknownVenueError(f"venue(s) {unknown} are not simulated; valid venues are {list(SIM_VENUES)}")
        self.seed = int(seed)
        self.n_extra_bases = int(n_extra_bases)
        self._venues = tuple(venues)
        universe = _universe(self.n_extra_bases).names
        if bases is None:
            self._bases = universe
        else:
            unknown = [b for b in bases if b not in universe]
            if unknown:
                raise UnknownVenueError(f"base(s) {unknown} are not simulated; valid bases are {list(universe)}")
            self._bases = tuple(b for b in universe if b in set(bases))
        self._listings: dict[str, _Listing] = {}

    def venues(self) -> tuple[str, ...]:
        return self._venues

    def bases(self) -> tuple[str, ...]:
        return self._bases

    def _check_venue(self, venue: str) -> VenueSpec:
        if venue not in self._venues:
            raise UnknownVenueError(
                f"venue {venue!r} is not served by the {self.name!r} source; it serves {list(self._venues)}"
            )
        return VENUE_SPECS[venue]

    def _listing(self, venue: str) -> _Listing:
        """The venue's listed perps restricted to `bases` (listing dates not applied)."""
        if venue not in self._listings:
            full = _venue_listing(venue, self.n_extra_bases)
            self._listings[venue] = full.take(np.isin(full.base, list(self._bases)))
        return self._listings[venue]

    def _paths(self, venue: str, end_hour: int) -> tuple[_BasePath, _VenuePath]:
        """Cached paths covering hours [0, end_hour)."""
        days = max(1, -(-end_hour // 24))
        n_days = -(-days // CHUNK_DAYS) * CHUNK_DAYS
        return (
            _simulate_bases(self.seed, self.n_extra_bases, n_days),
            _simulate_venue(self.seed, self.n_extra_bases, venue, n_days),
        )

    def instruments(self, venue: str, at: pd.Timestamp) -> pd.DataFrame:
        """Perps listed on `venue` at `at`: symbol, base, quote, interval_h, max_leverage."""
        spec = self._check_venue(venue)
        at = _as_utc(at, "instruments: at")
        hour = (at.value - SIM_EPOCH.value) // HOUR_NS
        listing = self._listing(venue)
        listing = listing.take(listing.listed_hour <= hour)
        return pd.DataFrame(
            {
                "symbol": listing.symbol,
                "base": listing.base,
                "quote": spec.quote,
                "interval_h": listing.interval_at(hour).astype(np.float64),
                "max_leverage": listing.max_leverage,
            }
        )

    def markets(self, venue: str, day: pd.Timestamp) -> pd.DataFrame:
        """Daily summary of `day` (as published at its end): 24h perp volume, OI at the day's close."""
        spec = self._check_venue(venue)
        day = _as_utc(day, "markets: day").floor("D")
        first = _hours_since_epoch_ceil(day)
        hours, listing, bars = self._bar_arrays(venue, first, first + 24)
        listed = listing.listed_hour <= first
        return pd.DataFrame(
            {
                "date": day,
                "venue": venue,
                "symbol": listing.symbol[listed],
                "base": listing.base[listed],
                "quote": spec.quote,
                "interval_h": listing.interval_at(first)[listed].astype(np.float64),
                "volume_usd_24h": bars["volume_usd"].sum(axis=0)[listed],
                "open_interest_usd": bars["open_interest_usd"][-1][listed],
                "max_leverage": listing.max_leverage[listed],
            },
            columns=MARKET_COLUMNS,
        )

    def funding_prints(self, venue: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Settled prints with funding_time in [start, end); a window [t - h, t) settles at t."""
        self._check_venue(venue)
        start, end = _as_utc(start, "funding_prints: start"), _as_utc(end, "funding_prints: end")
        if end < start:
            raise ValueError(f"funding_prints: end {end} is before start {start}")
        first, stop = _hours_since_epoch_ceil(start), _hours_since_epoch_ceil(end)
        base_path, path = self._paths(venue, stop)
        listing = self._listing(venue)
        rows, settle = _settlement_hours(listing, first, stop)
        venue_index = SIM_VENUES.index(venue)
        keys = listing.key[rows]
        kept = _unit_hash(self.seed, 10 + venue_index, keys, settle) >= MISSING_SETTLEMENT_SHARE
        rows, settle, keys = rows[kept], settle[kept], keys[kept]
        order = np.lexsort((rows, settle))
        rows, settle, keys = rows[order], settle[order], keys[order]

        interval = listing.take(rows).interval_at(settle - 1)
        col = listing.path_column[rows]
        avg = (path.premium_cumsum[settle, col] - path.premium_cumsum[settle - interval, col]) / interval
        jitter_ms = 1 + np.floor(250 * _unit_hash(self.seed, 20 + venue_index, keys, settle)).astype(np.int64)
        funding_ns = SIM_EPOCH.value + settle * HOUR_NS
        index_price = base_path.index_close[settle - 1, path.columns[col]]
        return _prints_frame(
            {
                "venue": venue,
                "symbol": listing.symbol[rows],
                "base": listing.base[rows],
                "kind": "settled",
                "funding_time": _utc_times(funding_ns),
                "ts": _utc_times(funding_ns + jitter_ms * 1_000_000),
                "rate": funding_rate(venue, avg, interval),
                "interval_h": interval.astype(np.float64),
                "mark_price": index_price * (1 + path.premium[settle - 1, col]),
                "index_price": index_price,
                "source": "sim",
            },
            len(rows),
        )

    def bars(self, venue: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Hourly perp + spot OHLCV (USD volume), mark/index and OI at the bar close; ts = bar open."""
        self._check_venue(venue)
        start, end = _as_utc(start, "bars: start"), _as_utc(end, "bars: end")
        if end < start:
            raise ValueError(f"bars: end {end} is before start {start}")
        first, stop = _hours_since_epoch_ceil(start), _hours_since_epoch_ceil(end)
        hours, listing, values = self._bar_arrays(venue, first, max(stop, first))
        flat = (hours[:, None] >= listing.listed_hour[None, :]).ravel()
        n_hours = len(hours)
        columns = {
            "venue": np.full(int(flat.sum()), venue, dtype=object),
            "symbol": np.tile(listing.symbol, n_hours)[flat],
            "base": np.tile(listing.base, n_hours)[flat],
            "ts": _utc_times(SIM_EPOCH.value + np.repeat(hours, len(listing))[flat] * HOUR_NS),
        }
        columns.update({name: array.ravel()[flat] for name, array in values.items()})
        return pd.DataFrame(columns, columns=BAR_COLUMNS)

    def _bar_arrays(self, venue: str, first: int, stop: int) -> tuple[np.ndarray, _Listing, dict[str, np.ndarray]]:
        """Hours [first, stop), the listing, and each BAR_COLUMNS value as an (hours, symbols) array."""
        spec = VENUE_SPECS[venue]
        listing = self._listing(venue)
        hours = np.arange(first, stop)
        if len(hours) == 0:
            empty = np.empty((0, len(listing)))
            return hours, listing, {name: empty for name in BAR_COLUMNS[4:]}
        base_path, path = self._paths(venue, stop)
        col = listing.path_column
        uni_col = path.columns[col]
        uni = _universe(self.n_extra_bases)
        noise = self._bar_noise(venue, first, stop)[:, :, uni_col]  # (8, H, n)

        index_close = base_path.index_close[hours][:, uni_col]
        previous = np.maximum(hours - 1, 0)
        index_open = np.where((hours == 0)[:, None], uni.price0[uni_col], base_path.index_close[previous][:, uni_col])
        premium = path.premium[hours][:, col]
        premium_open = path.premium[previous][:, col]
        mark_close = index_close * (1 + premium)
        perp_open = index_open * (1 + premium_open) * (1 + 3e-5 * noise[0])
        perp_close = mark_close * (1 + 3e-5 * noise[1])
        spot_open = index_open * (1 + 1.5e-5 * noise[5])
        spot_close = index_close * (1 + 1.5e-5 * noise[6])
        sigma = uni.sigma_hour[uni_col] * REGIME_VOL_SCALE[base_path.regimes[hours]][:, None]
        up, down = np.exp(0.6 * sigma * np.abs(noise[2])), np.exp(-0.6 * sigma * np.abs(noise[3]))

        seasonality = 1 + 0.3 * np.sin(2 * np.pi * (hours % 24 - 8) / 24)
        activity = (REGIME_VOLUME_SCALE[base_path.regimes[hours]] * seasonality)[:, None] * (
            1 + 2.5 * np.abs(base_path.log_return[hours][:, uni_col]) / sigma
        )
        level = REFERENCE_HOURLY_VOLUME_USD * spec.volume_share * uni.size[uni_col]
        volume = level * activity * np.exp(0.35 * noise[4] - 0.06)
        window = np.minimum(hours + 1, 24)[:, None]
        premium_24h = (
            path.premium_cumsum[hours + 1][:, col] - path.premium_cumsum[hours[:, None] + 1 - window, col]
        ) / window
        oi_level = OI_TO_DAILY_VOLUME * 24 * level / uni.price0[uni_col]
        return (
            hours,
            listing,
            {
                "open": perp_open,
                "high": np.maximum(perp_open, perp_close) * up,
                "low": np.minimum(perp_open, perp_close) * down,
                "close": perp_close,
                "volume_usd": volume,
                "spot_open": spot_open,
                "spot_high": np.maximum(spot_open, spot_close) * up**0.95,
                "spot_low": np.minimum(spot_open, spot_close) * down**0.95,
                "spot_close": spot_close,
                "spot_volume_usd": volume * spec.spot_volume_share * np.exp(0.3 * noise[7] - 0.045),
                "mark_price": mark_close,
                "index_price": index_close,
                "open_interest_usd": oi_level
                * np.exp(base_path.oi_state[hours][:, uni_col] + OI_PREMIUM_SENSITIVITY * premium_24h)
                * index_close,
            },
        )

    def _bar_noise(self, venue: str, first: int, stop: int) -> np.ndarray:
        """Per-hour bar noise (8, H, U) for hours [first, stop), drawn only for the days asked."""
        venue_index = SIM_VENUES.index(venue)
        first_day, last_day = first // 24, (stop - 1) // 24
        blocks = [
            _draw_blocks(_day_rng(self.seed, day, 10 + venue_index), self.n_extra_bases, 8)
            for day in range(first_day, last_day + 1)
        ]
        offset = first_day * 24
        return np.concatenate(blocks, axis=1)[:, first - offset : stop - offset].astype(np.float64)

    def predicted_rates(self, venue: str, symbols: list[str] | None, times: pd.DatetimeIndex) -> pd.DataFrame:
        """Intra-window predicted rates at `times` for `symbols` (None: all listed).

        At t the venue formula is applied to the premium averaged from the window start to t,
        plus per-second noise that shrinks to zero at the window end, so the prediction
        converges to the window's settled rate. funding_time = settlement of the window containing t.
        """
        self._check_venue(venue)
        times = pd.DatetimeIndex(times)
        times = (times.tz_localize("UTC") if times.tz is None else times.tz_convert("UTC")).as_unit("ns")
        if len(times) and times.min() < SIM_EPOCH:
            raise ValueError(f"predicted_rates: time {times.min()} is before the simulation epoch {SIM_EPOCH}")
        listing = self._listing(venue)
        if symbols is not None:
            position = {s: i for i, s in enumerate(listing.symbol)}
            unknown = [s for s in symbols if s not in position]
            if unknown:
                raise UnknownVenueError(
                    f"symbol(s) {unknown} are not listed on simulated {venue}; valid symbols are {sorted(position)}"
                )
            listing = listing.take(np.array([position[s] for s in symbols], dtype=np.int64))
        t_ns = times.asi8 - SIM_EPOCH.value
        hour = (t_ns // HOUR_NS)[:, None]
        base_path, path = self._paths(venue, int(hour.max(initial=0)) + 1)
        interval = listing.interval_at(hour)  # (T, n)
        window_ns = interval * HOUR_NS
        window_start = (t_ns[:, None] // window_ns) * window_ns
        elapsed = (t_ns[:, None] - window_start) / HOUR_NS
        col = listing.path_column[None, :]
        within_hour = (t_ns % HOUR_NS / HOUR_NS)[:, None]
        current = path.premium[hour, col]
        summed = (
            path.premium_cumsum[hour, col] - path.premium_cumsum[window_start // HOUR_NS, col] + within_hour * current
        )
        avg = np.where(elapsed > 0, summed / np.maximum(elapsed, 1e-12), current)
        seconds = (t_ns // 1_000_000_000)[:, None]
        u = _unit_hash(self.seed, 30 + SIM_VENUES.index(venue), listing.key[None, :], seconds)
        z = np.clip(norm.ppf(u), -3.0, 3.0)
        remaining = np.sqrt(np.clip(1 - elapsed / interval, 0.0, 1.0))
        rate = funding_rate(venue, avg, interval) + PREDICTED_NOISE * interval / 8 * remaining * z
        uni_col = path.columns[col]
        index_open = np.where(
            hour == 0,
            _universe(self.n_extra_bases).price0[uni_col],
            base_path.index_close[np.maximum(hour - 1, 0), uni_col],
        )
        index_price = index_open + within_hour * (base_path.index_close[hour, uni_col] - index_open)
        flat = (hour >= listing.listed_hour[None, :]).ravel()
        n_times = len(times)
        return _prints_frame(
            {
                "venue": venue,
                "symbol": np.tile(listing.symbol, n_times)[flat],
                "base": np.tile(listing.base, n_times)[flat],
                "kind": "predicted",
                "funding_time": _utc_times(SIM_EPOCH.value + (window_start + window_ns).ravel()[flat]),
                "ts": times.repeat(len(listing))[flat],
                "rate": rate.ravel()[flat],
                "interval_h": interval.ravel()[flat].astype(np.float64),
                "mark_price": (index_price * (1 + current)).ravel()[flat],
                "index_price": index_price.ravel()[flat],
                "source": "sim",
            },
            int(flat.sum()),
        )
