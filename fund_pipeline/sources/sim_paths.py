"""The simulated market's hourly paths: bases (factor-driven prices, regimes, premium, open interest).

Random numbers are drawn in per-day blocks seeded from (seed, day index, stream), base-major
with the named bases first and the synthetic extra bases last, and the hourly path is
simulated forward from SIM_EPOCH with causal filters (see `fund_pipeline.sources.simulated`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.signal import lfilter
from scipy.stats import norm

from fund_pipeline.domain.time import HOURS_PER_YEAR

SIM_EPOCH = pd.Timestamp("2025-01-01 00:00", tz="UTC")

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


def extra_base_names(n_extra: int) -> tuple[str, ...]:
    return tuple(f"X{i + 1:03d}" for i in range(n_extra))


@dataclass(frozen=True)
class Universe:
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
def universe(n_extra: int) -> Universe:
    extras = []
    for i, name in enumerate(extra_base_names(n_extra)):
        u = unit_hash(0, 99, np.array([EXTRA_BASE_KEY_OFFSET + i]), np.arange(6))
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
    return Universe(
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


def mix64(value: npt.ArrayLike) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser: a counter-based hash, so per-window draws need no sequential state."""
    x: npt.NDArray[np.uint64] = np.asarray(value).astype(np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def unit_hash(seed: int, stream: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) deterministic in (seed, stream, a, b), broadcasting a against b."""
    with np.errstate(over="ignore"):
        h = mix64(np.uint64(seed) * np.uint64(1_000_003) + np.uint64(stream))
    h = mix64(h ^ np.asarray(a).astype(np.uint64))
    h = mix64(h ^ np.asarray(b).astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def day_rng(seed: int, day: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, day, stream])


def draw_blocks(rng: np.random.Generator, n_extra: int, components: int) -> np.ndarray:
    """(components, 24, n_bases) float32 normals; base-major draws with the extras last (see module doc)."""
    named = rng.standard_normal((len(NAMED_BASES), 24, components), dtype=np.float32)
    extra = rng.standard_normal((n_extra, 24, components), dtype=np.float32)
    return np.concatenate([named, extra]).transpose(2, 1, 0)


def ar1(innovations: np.ndarray, phi: float) -> np.ndarray:
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
class BasePath:
    regimes: np.ndarray  # (T,) int8
    index_close: np.ndarray  # (T, U) index price at each hour's end
    log_return: np.ndarray  # (T, U)
    premium: np.ndarray  # (T, U) base premium shared by venues
    oi_state: np.ndarray  # (T, U) slow log-OI deviation


@functools.lru_cache(maxsize=4)
def simulate_bases(seed: int, n_extra: int, n_days: int) -> BasePath:
    uni = universe(n_extra)
    n_bases, hours = len(uni.names), n_days * 24
    regime_u = np.empty(hours)
    market_z = np.empty(hours)
    sector_z = np.empty((hours, len(SECTORS)))
    idio_z, premium_z, jump_z, jump_size_z, oi_z = np.empty((5, hours, n_bases), dtype=np.float32)
    for day in range(n_days):
        rng = day_rng(seed, day, 0)
        rows = slice(day * 24, day * 24 + 24)
        regime_u[rows] = rng.random(24)
        market_z[rows] = rng.standard_normal(24)
        sector_z[rows] = rng.standard_normal((24, len(SECTORS)))
        idio_z[rows], premium_z[rows], jump_z[rows], jump_size_z[rows], oi_z[rows] = draw_blocks(rng, n_extra, 5)

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
    premium = ar1(innovation, PREMIUM_AR)
    premium += sens * regime_mean[:, None]
    oi_state = ar1(oi_z * np.float32(OI_STD * np.sqrt(1 - OI_AR**2)), OI_AR).astype(np.float32)
    return BasePath(regimes, index_close, log_return, premium, oi_state)
