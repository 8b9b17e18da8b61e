"""Deterministic simulated market: the embedded default source.

Realistic enough that every downstream number means something: factor-driven correlated
prices (market + sector + idiosyncratic, with jumps), a persistent (AR) premium per venue
and base with calm / euphoric / stressed regimes, spot and perp legs, each venue's funding
formula with its clamp and cap (so the 0.01%/8h interest is the real mass point of settled
rates), mixed and changing funding intervals, open interest and volume in USD, and rare
missing settlements.

Over 500 lines on purpose: the per-day random blocks, the path cache and every MarketSource read
share one seeded state, and splitting them would pass that state between modules for no reader's gain
(the venues' settlement rules are already in `sim_venues`, the paths in `sim_paths`).

Determinism: random numbers are drawn in per-day blocks seeded from (seed, day index,
stream) and the hourly path is simulated forward from SIM_EPOCH with causal filters, so
the value of any hour never depends on the requested range (prefix consistency). Within a
day block, draws are laid out base-major with the named bases first and the synthetic
extra bases last, so a base's path does not depend on `bases=` nor on `n_extra_bases`.
Paths are cached per process, simulated up to a whole number of CHUNK_DAYS. The base paths are
in `sim_paths`, the venues' structure and funding formula in `sim_venues`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from fund_pipeline.domain.predicted import SAMPLE_COLUMNS, FundingFormula
from fund_pipeline.domain.prints import BAR_COLUMNS, MARKET_COLUMNS, MARKET_TERMS_COLUMNS, PRINT_COLUMNS
from fund_pipeline.domain.time import NS_PER_HOUR as HOUR_NS
from fund_pipeline.domain.time import NS_PER_MS, NS_PER_SECOND
from fund_pipeline.sources.sim_paths import (
    OI_PREMIUM_SENSITIVITY,
    PREDICTED_NOISE,
    REGIME_VOL_SCALE,
    REGIME_VOLUME_SCALE,
    SIM_EPOCH,
    BasePath,
    day_rng,
    draw_blocks,
    simulate_bases,
    unit_hash,
    universe,
)
from fund_pipeline.sources.sim_venues import (
    MINUTES_PER_HOUR,
    OI_TO_DAILY_VOLUME,
    OKX_INTERVAL_CHANGE_AT,
    OKX_INTERVAL_CHANGE_BASE,
    REFERENCE_HOURLY_VOLUME_USD,
    VENUE_SPECS,
    Listing,
    VenuePath,
    VenueSpec,
    funding_rate,
    hours_since_epoch_ceil,
    settlement_hours,
    simulate_venue,
    symbol_formulas,
    venue_listing,
    window_rates,
)
from fund_pipeline.venues.registry import SIM_VENUES, UnknownVenueError, adapter

__all__ = [
    "OKX_INTERVAL_CHANGE_AT",
    "OKX_INTERVAL_CHANGE_BASE",
    "SIM_EPOCH",
    "VENUE_SPECS",
    "SimulatedMarket",
    "funding_rate",
]

# Paths are simulated to a multiple of this many days, so successive daily requests reuse the cache.
CHUNK_DAYS = 32
# Share of funding windows whose settlement is missing from funding_prints.
MISSING_SETTLEMENT_SHARE = 0.003


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


class SimulatedMarket:
    """The simulated venues SIM_VENUES, implementing MarketSource (name "simulated").

    `n_extra_bases` adds synthetic bases "X001".. listed on every venue except deribit,
    for benchmarks that need hundreds of symbols per venue. `inverse` adds the coin-margined perps
    the venues list (binance COIN-M, bybit inverse, okx coin-margined swaps, deribit BTC/ETH-PERPETUAL),
    off by default so the default universe, and every figure computed from it, stays as it was.
    """

    name = "simulated"

    def __init__(
        self,
        seed: int = 7,
        venues: tuple[str, ...] = SIM_VENUES,
        bases: tuple[str, ...] | None = None,
        n_extra_bases: int = 0,
        inverse: bool = False,
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
        self.inverse = bool(inverse)
        self._venues = tuple(venues)
        names = universe(self.n_extra_bases).names
        if bases is None:
            self._bases = names
        else:
            unknown = [b for b in bases if b not in names]
            if unknown:
                raise UnknownVenueError(f"base(s) {unknown} are not simulated; valid bases are {list(names)}")
            self._bases = tuple(b for b in names if b in set(bases))
        self._listings: dict[str, Listing] = {}
        self._listing_terms: dict[str, dict[str, np.ndarray]] = {}
        self._listing_formulas: dict[str, list[FundingFormula]] = {}
        self._liquidity_blocks: dict[str, tuple[int, list[np.ndarray], list[np.ndarray]]] = {}
        self._simulated_days = 0

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

    def _listing(self, venue: str) -> Listing:
        """The venue's listed perps restricted to `bases` (listing dates not applied)."""
        if venue not in self._listings:
            full = venue_listing(venue, self.n_extra_bases, self.inverse)
            self._listings[venue] = full.take(np.isin(full.base, list(self._bases)))
        return self._listings[venue]

    def _paths(self, venue: str, end_hour: int) -> tuple[BasePath, VenuePath]:
        """Cached paths covering hours [0, end_hour): at least twice the days simulated before.

        Runs ask for a day at a time, each a little further; re-simulating from the epoch for every
        new CHUNK_DAYS would cost the whole history each time. Paths are prefix-consistent, so a
        longer simulation gives the same hours.
        """
        days = max(1, -(-end_hour // 24))
        n_days = -(-days // CHUNK_DAYS) * CHUNK_DAYS
        if n_days > self._simulated_days:
            self._simulated_days = max(n_days, 2 * self._simulated_days)
        return (
            simulate_bases(self.seed, self.n_extra_bases, self._simulated_days),
            simulate_venue(self.seed, self.n_extra_bases, venue, self._simulated_days),
        )

    def instruments(self, venue: str, at: pd.Timestamp) -> pd.DataFrame:
        """Perps listed on `venue` at `at`: symbol, base, quote, interval_h, max_leverage, and how each is
        margined (the adapter's terms): margin ("linear" | "inverse"), settle (margin and settlement asset),
        contract_size (base units for linear perps, USD for inverse ones)."""
        self._check_venue(venue)
        at = _as_utc(at, "instruments: at")
        hour = (at.value - SIM_EPOCH.value) // HOUR_NS
        listing = self._listing(venue)
        listed = listing.listed_hour <= hour
        listing = listing.take(listed)
        return pd.DataFrame(
            {
                "symbol": listing.symbol,
                "base": listing.base,
                "quote": listing.quote,
                "interval_h": listing.interval_at(hour).astype(np.float64),
                "max_leverage": listing.max_leverage,
                **self._terms(venue, listed),
            }
        )

    def _terms(self, venue: str, listed: np.ndarray) -> dict[str, np.ndarray]:
        """MARKET_TERMS_COLUMNS of the listed perps, as the venue's adapter states them (computed once per venue)."""
        if venue not in self._listing_terms:
            terms = [adapter(venue).terms(str(s)) for s in self._listing(venue).symbol]
            self._listing_terms[venue] = dict(
                zip(
                    MARKET_TERMS_COLUMNS,
                    (
                        np.array([t.margin for t in terms], dtype=object),
                        np.array([t.settle for t in terms], dtype=object),
                        np.array([t.contract_size for t in terms], dtype=np.float64),
                    ),
                    strict=True,
                )
            )
        return {name: values[listed] for name, values in self._listing_terms[venue].items()}

    def markets(self, venue: str, day: pd.Timestamp) -> pd.DataFrame:
        """Daily summary of `day` (as published at its end): 24h perp volume, OI at the day's close."""
        self._check_venue(venue)
        day = _as_utc(day, "markets: day").floor("D")
        first = hours_since_epoch_ceil(day)
        listing = self._listing(venue)
        volume_24h, open_interest_close = self._daily_liquidity(venue, first // 24)
        listed = listing.listed_hour <= first
        return pd.DataFrame(
            {
                "date": day,
                "venue": venue,
                "symbol": listing.symbol[listed],
                "base": listing.base[listed],
                "quote": listing.quote[listed],
                "interval_h": listing.interval_at(first)[listed].astype(np.float64),
                "volume_usd_24h": volume_24h[listed],
                "open_interest_usd": open_interest_close[listed],
                "max_leverage": listing.max_leverage[listed],
                **self._terms(venue, listed),
            },
            columns=MARKET_COLUMNS,
        )

    def _daily_liquidity(self, venue: str, day: int) -> tuple[np.ndarray, np.ndarray]:
        """The day's 24h perp volume and closing OI per listed symbol (day counted from the epoch).

        The bars of the day's whole CHUNK_DAYS block are drawn once (the venue's latest block is kept),
        so a run over a year of days draws each hour once, not a day of 13 bar columns per call; each
        day's figures are reduced from its own 24 rows as from a one-day draw: the same values.
        """
        block = day // CHUNK_DAYS
        cached = self._liquidity_blocks.get(venue)
        if cached is None or cached[0] != block:
            first = block * CHUNK_DAYS * 24
            _, _, bars = self._bar_arrays(venue, first, first + CHUNK_DAYS * 24)
            days = [slice(24 * d, 24 * d + 24) for d in range(CHUNK_DAYS)]
            # summed from a copy, aligned as a one-day draw's array: a sum over a view can round differently
            volume = [bars["volume_usd"][rows].copy().sum(axis=0) for rows in days]
            open_interest = [bars["open_interest_usd"][rows.stop - 1] for rows in days]
            cached = self._liquidity_blocks[venue] = (block, volume, open_interest)
        return cached[1][day % CHUNK_DAYS], cached[2][day % CHUNK_DAYS]

    def funding_prints(self, venue: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Settled prints with funding_time in [start, end); a window [t - h, t) settles at t."""
        self._check_venue(venue)
        start, end = _as_utc(start, "funding_prints: start"), _as_utc(end, "funding_prints: end")
        if end < start:
            raise ValueError(f"funding_prints: end {end} is before start {start}")
        first, stop = hours_since_epoch_ceil(start), hours_since_epoch_ceil(end)
        base_path, path = self._paths(venue, stop)
        listing = self._listing(venue)
        rows, settle = settlement_hours(listing, first, stop)
        venue_index = SIM_VENUES.index(venue)
        keys = listing.key[rows]
        kept = unit_hash(self.seed, 10 + venue_index, keys, settle) >= MISSING_SETTLEMENT_SHARE
        rows, settle, keys = rows[kept], settle[kept], keys[kept]
        order = np.lexsort((rows, settle))
        rows, settle, keys = rows[order], settle[order], keys[order]

        interval = listing.take(rows).interval_at(settle - 1)
        col = listing.path_column[rows]
        offset = listing.premium_offset[rows]
        minutes = MINUTES_PER_HOUR * interval
        last_premium = path.premium[settle - 1, col] + offset
        rate = window_rates(
            path, listing, self._formulas(venue), rows, settle - interval, interval, minutes, last_premium
        )
        jitter_ms = 1 + np.floor(250 * unit_hash(self.seed, 20 + venue_index, keys, settle)).astype(np.int64)
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
                "rate": rate,
                "interval_h": interval.astype(np.float64),
                "mark_price": index_price * (1 + last_premium),
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
        first, stop = hours_since_epoch_ceil(start), hours_since_epoch_ceil(end)
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

    def _bar_arrays(self, venue: str, first: int, stop: int) -> tuple[np.ndarray, Listing, dict[str, np.ndarray]]:
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
        uni = universe(self.n_extra_bases)
        noise = self._bar_noise(venue, first, stop)[:, :, uni_col]  # (8, H, n)

        index_close = base_path.index_close[hours][:, uni_col]
        previous = np.maximum(hours - 1, 0)
        index_open = np.where((hours == 0)[:, None], uni.price0[uni_col], base_path.index_close[previous][:, uni_col])
        premium = path.premium[hours][:, col] + listing.premium_offset
        premium_open = path.premium[previous][:, col] + listing.premium_offset
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
        level = REFERENCE_HOURLY_VOLUME_USD * spec.volume_share * uni.size[uni_col] * listing.volume_scale
        volume = level * activity * np.exp(0.35 * noise[4] - 0.06)
        window = np.minimum(hours + 1, 24)[:, None]
        premium_24h = (
            path.premium_cumsum[hours + 1][:, col] - path.premium_cumsum[hours[:, None] + 1 - window, col]
        ) / window + listing.premium_offset
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
            draw_blocks(day_rng(self.seed, day, 10 + venue_index), self.n_extra_bases, 8)
            for day in range(first_day, last_day + 1)
        ]
        offset = first_day * 24
        return np.concatenate(blocks, axis=1)[:, first - offset : stop - offset].astype(np.float64)

    def premium_samples(self, venue: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Premium-index history, one sample a minute with ts in [start, end): SAMPLE_COLUMNS + mark, index.

        A sample is stamped at its minute's close (1 ms before the next minute, as a one-minute
        kline closes) and is the hour's premium: the simulated premium is hourly, and a window's settled
        rate is its formula on exactly these samples (`window_rates`), weighted as the venue documents.
        """
        self._check_venue(venue)
        start, end = _as_utc(start, "premium_samples: start"), _as_utc(end, "premium_samples: end")
        if end < start:
            raise ValueError(f"premium_samples: end {end} is before start {start}")
        first, stop = (start - SIM_EPOCH).value // HOUR_NS, hours_since_epoch_ceil(end)
        if stop <= first:
            return pd.DataFrame(columns=[*SAMPLE_COLUMNS, "mark_price", "index_price"])
        base_path, path = self._paths(venue, stop)
        listing = self._listing(venue)
        hours = np.arange(first, stop)
        listed = hours[:, None] >= listing.listed_hour[None, :]  # (H, n)
        h_idx, s_idx = np.nonzero(listed)
        minute = np.arange(60, dtype=np.int64)
        ts = (
            SIM_EPOCH.value
            + np.repeat(hours[h_idx] * HOUR_NS, 60)
            + np.tile((minute + 1) * 60 * NS_PER_SECOND - NS_PER_MS, len(h_idx))
        )
        keep = (ts >= start.value) & (ts < end.value)
        col = listing.path_column[s_idx]
        premium = path.premium[hours[h_idx], col] + listing.premium_offset[s_idx]
        index_price = base_path.index_close[hours[h_idx], path.columns[col]]
        interval = listing.take(s_idx).interval_at(hours[h_idx])
        return pd.DataFrame(
            {
                "symbol": np.repeat(listing.symbol[s_idx], 60)[keep],
                "base": np.repeat(listing.base[s_idx], 60)[keep],
                "ts": _utc_times(ts[keep]),
                "premium": np.repeat(premium, 60)[keep],
                "interval_h": np.repeat(interval.astype(np.float64), 60)[keep],
                "mark_price": np.repeat(index_price * (1 + premium), 60)[keep],
                "index_price": np.repeat(index_price, 60)[keep],
            }
        )

    def funding_formulas(self, venue: str, symbols: list[str]) -> dict[str, FundingFormula]:
        """The formula each symbol settles with: its venue adapter's documented one (`window_rates`)."""
        self._check_venue(venue)
        listed = set(self._listing(venue).symbol.tolist())
        unknown = [s for s in symbols if s not in listed]
        if unknown:
            raise UnknownVenueError(f"symbol(s) {unknown} are not listed on simulated {venue}")
        return dict(zip(symbols, symbol_formulas(venue, symbols), strict=True))

    def _formulas(self, venue: str) -> list[FundingFormula]:
        """The formula of each row of the venue's listing (computed once per venue)."""
        if venue not in self._listing_formulas:
            self._listing_formulas[venue] = symbol_formulas(venue, self._listing(venue).symbol)
        return self._listing_formulas[venue]

    def predicted_rates(self, venue: str, symbols: list[str] | None, times: pd.DatetimeIndex) -> pd.DataFrame:
        """Intra-window predicted rates at `times` for `symbols` (None: all listed).

        At t the symbol's formula is applied to the minute samples known at t (`window_rates`: the window so
        far, or the last N hours under a moving average), plus per-second noise that shrinks to zero at the
        window end, so the prediction converges to the window's settled rate. funding_time = settlement of the
        window containing t.
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
        offset = listing.premium_offset[None, :]
        current = path.premium[hour, col] + offset
        rows = np.broadcast_to(np.arange(len(listing)), interval.shape).ravel()
        minutes_done = (t_ns[:, None] - window_start) // (MINUTES_PER_HOUR * NS_PER_SECOND)
        formulas = symbol_formulas(venue, listing.symbol)
        start_hour = (window_start // HOUR_NS).ravel()
        settled_so_far = window_rates(
            path, listing, formulas, rows, start_hour, interval.ravel(), minutes_done.ravel(), current.ravel()
        ).reshape(interval.shape)
        seconds = (t_ns // 1_000_000_000)[:, None]
        u = unit_hash(self.seed, 30 + SIM_VENUES.index(venue), listing.key[None, :], seconds)
        z = np.clip(norm.ppf(u), -3.0, 3.0)
        remaining = np.sqrt(np.clip(1 - elapsed / interval, 0.0, 1.0))
        rate = settled_so_far + PREDICTED_NOISE * interval / 8 * remaining * z
        uni_col = path.columns[col]
        index_open = np.where(
            hour == 0,
            universe(self.n_extra_bases).price0[uni_col],
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
