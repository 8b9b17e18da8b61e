"""Curve factors: decay ratios, time since shock, PCA with sign alignment, cross-venue dispersion.

Inputs are curve snapshot frames (venue, symbol, funding_time, interval_h, b0..b7, b0_ann..b7_ann,
...): bucket 0 is the newest settled window, bucket k the window k rolls earlier. Every function
is vectorised and uses, for a row at funding_time T, only rows with funding_time <= T.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fund_pipeline.domain.prints import SchemaError, rate_to_8h, require_columns
from fund_pipeline.domain.records import ANN_COLUMNS as ANN_BUCKETS
from fund_pipeline.domain.records import N_BUCKETS
from fund_pipeline.domain.records import RATE_COLUMNS as RATE_BUCKETS
from fund_pipeline.domain.time import NS_PER_HOUR, time_ns, utc_from_ns

DECAY_COLUMNS = [f"decay_{k + 1}_{k}" for k in range(N_BUCKETS - 1)]
STREAM_KEYS = ["venue", "symbol"]

# Funding rates are quoted to ~1e-8: below that a bucket is zero and a ratio to it is noise.
ZERO_RATE_TOL = 1e-8

SHOCK_STATS_WINDOW = pd.Timedelta(hours=72)
SHOCK_MAX_HOURS = 72.0
HOUR = pd.Timedelta(hours=1)
DISPERSION_COLUMNS = ["base", "ts", "dispersion_8h", "n_venues"]


def decay_ratios(curves: pd.DataFrame, zero_tol: float = ZERO_RATE_TOL) -> pd.DataFrame:
    """b(k+1)/b(k) for k = 0..6: how fast the fossil curve decays; NaN where |b(k)| <= zero_tol."""
    require_columns(curves, RATE_BUCKETS, "curve snapshots")
    ratios = decay_ratio_matrix(curves[RATE_BUCKETS].to_numpy(dtype="float64"), zero_tol)
    return pd.DataFrame(ratios, columns=DECAY_COLUMNS, index=curves.index)


def decay_ratio_matrix(buckets: np.ndarray, zero_tol: float = ZERO_RATE_TOL) -> np.ndarray:
    """`decay_ratios` on the (rows x N_BUCKETS) bucket matrix."""
    numerator, denominator = buckets[:, 1:], buckets[:, :-1]
    usable = np.abs(denominator) > zero_tol
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(usable, numerator / np.where(usable, denominator, 1.0), np.nan)


def time_since_shock(
    curves: pd.DataFrame,
    k: float = 3.0,
    stats_window: pd.Timedelta = SHOCK_STATS_WINDOW,
    max_hours: float = SHOCK_MAX_HOURS,
    min_move: float = ZERO_RATE_TOL,
) -> pd.Series:
    """Hours since bucket 0's 8h rate last moved more than k rolling std from its rolling mean.

    The mean/std of a row come from the stream's rows in [t - stats_window, t) (past only). A shock
    older than `max_hours` reads as `max_hours` (censored). A row is NaN until the stream has
    `stats_window + max_hours` of history, so the value never depends on how far back the caller's
    data happens to reach. A move must also exceed `min_move` (a flat series has std 0).
    """
    require_columns(curves, [*STREAM_KEYS, "funding_time", "interval_h", "b0"], "curve snapshots")
    _check_shock_parameters(k, max_hours)
    if curves.empty:
        return pd.Series(np.nan, index=curves.index, name="time_since_shock_h", dtype="float64")
    ordered = _sorted_streams(curves)
    stream = ordered.groupby(STREAM_KEYS, sort=False, dropna=False).ngroup().to_numpy()
    rate_8h = rate_to_8h(ordered["b0"], ordered["interval_h"])
    hours = hours_since_shock(stream, time_ns(ordered["funding_time"]), rate_8h, k, stats_window, max_hours, min_move)
    out = pd.Series(hours, index=ordered.index, dtype="float64")
    return out.reindex(curves.index).rename("time_since_shock_h")


def hours_since_shock(
    stream: np.ndarray,
    times: np.ndarray,
    rate_8h: np.ndarray,
    k: float = 3.0,
    stats_window: pd.Timedelta = SHOCK_STATS_WINDOW,
    max_hours: float = SHOCK_MAX_HOURS,
    min_move: float = ZERO_RATE_TOL,
) -> np.ndarray:
    """`time_since_shock` on arrays whose rows are sorted by (stream code, time), one row per stream and time.

    The feature store already holds its rows in that order, so it skips the frame sort.
    """
    _check_shock_parameters(k, max_hours)
    window_ns, horizon_ns = pd.Timedelta(stats_window).value, int(max_hours * NS_PER_HOUR)
    hours = np.full(len(times), np.nan)
    for lo, hi in stream_bounds(stream):
        t, x = times[lo:hi], rate_8h[lo:hi]
        hours[lo:hi] = _stream_hours_since_shock(t, x, k, window_ns, min_move)
        hours[lo:hi][t - t[0] < window_ns + horizon_ns] = np.nan
    return np.minimum(hours, max_hours)


def _check_shock_parameters(k: float, max_hours: float) -> None:
    if k <= 0 or max_hours <= 0:
        raise ValueError(f"time_since_shock: k and max_hours must be > 0, got k={k}, max_hours={max_hours}")


@dataclass(frozen=True)
class CurvePCA:
    """Principal components of curve vectors: rows of `loadings` are unit components."""

    loadings: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    mean: np.ndarray

    def transform(self, matrix) -> np.ndarray:
        return (np.asarray(matrix, dtype="float64") - self.mean) @ self.loadings.T


def canonical_signs(loadings: np.ndarray) -> np.ndarray:
    """Flip each component so its largest-|loading| entry is positive (first one on ties)."""
    loadings = np.asarray(loadings, dtype="float64")
    pivot = np.argmax(np.abs(loadings), axis=1)
    signs = np.where(loadings[np.arange(len(loadings)), pivot] < 0, -1.0, 1.0)
    return loadings * signs[:, None]


def align_signs(loadings: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    """Canonical signs, then flip any component whose dot product with the previous fit's is negative.

    Starting from the canonical sign makes the result independent of the sign an SVD returns.
    """
    aligned = canonical_signs(loadings)
    if previous is None:
        return aligned
    previous = np.asarray(previous, dtype="float64")
    if previous.shape != aligned.shape:
        raise ValueError(f"align_signs: previous loadings shape {previous.shape} != {aligned.shape}")
    dots = np.einsum("ij,ij->i", aligned, previous)
    return aligned * np.where(dots < 0, -1.0, 1.0)[:, None]


def fit_curve_pca(matrix, n_components: int = 2, previous: CurvePCA | np.ndarray | None = None) -> CurvePCA:
    """PCA of curve vectors (rows = snapshots), signs aligned to `previous` so loadings never flip."""
    values = np.asarray(matrix, dtype="float64")
    if values.ndim != 2:
        raise ValueError(f"fit_curve_pca: matrix must be 2-D, got shape {values.shape}")
    n_rows, n_cols = values.shape
    if not 1 <= n_components <= n_cols:
        raise ValueError(f"fit_curve_pca: n_components={n_components} must be in [1, {n_cols}]")
    if n_rows <= n_components:
        raise ValueError(f"fit_curve_pca: need more than {n_components} rows, got {n_rows}")
    if not np.isfinite(values).all():
        raise ValueError("fit_curve_pca: matrix has NaN or infinite values; drop incomplete curves first")
    mean = values.mean(axis=0)
    centred = values - mean
    # Eigen-decomposition of the small n_cols x n_cols covariance: the SVD of a tall matrix is far slower.
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / (n_rows - 1))
    variance = np.clip(eigenvalues[::-1], 0.0, None)
    vt = eigenvectors[:, ::-1].T
    total = variance.sum()
    ratio = variance / total if total > 0 else np.zeros_like(variance)
    prior = previous.loadings if isinstance(previous, CurvePCA) else previous
    loadings = align_signs(vt[:n_components], prior)
    return CurvePCA(loadings, variance[:n_components], ratio[:n_components], mean)


def rolling_curve_pcs(
    curves: pd.DataFrame,
    window: pd.Timedelta,
    refit_every: pd.Timedelta,
    n_components: int = 2,
    columns: list[str] = ANN_BUCKETS,
    min_rows: int = 24,
) -> pd.DataFrame:
    """Scores pc1..pcn from a PCA refit every `refit_every` on the PAST `window` of complete curves.

    Refit times are on an epoch-anchored grid; the fit at time R uses rows with funding_time in
    [R - window, R) (all streams pooled) and scores rows in [R, R + refit_every). Signs chain to the
    previous successful fit. Rows without a fit (too little history) or with a NaN bucket are NaN.
    """
    require_columns(curves, ["funding_time", *columns], "curve snapshots")
    values = curves[columns].to_numpy(dtype="float64")
    scores = rolling_pcs(time_ns(curves["funding_time"]), values, window, refit_every, n_components, min_rows)
    return pd.DataFrame(scores, columns=[f"pc{i + 1}" for i in range(n_components)], index=curves.index)


def rolling_pcs(
    times: np.ndarray,
    values: np.ndarray,
    window: pd.Timedelta,
    refit_every: pd.Timedelta,
    n_components: int = 2,
    min_rows: int = 24,
    chain: PcaSignChain | None = None,
) -> np.ndarray:
    """`rolling_curve_pcs` on arrays (UTC ns times, curve matrix): the feature store's form, without a frame.

    With `chain`, a refit time the chain already holds uses the chain's fit; any other is fitted with
    its signs following the chain's latest fit before it, and recorded. Consecutive calls over
    overlapping spans, oldest first, then score as one call over the whole span would.
    """
    window, refit_every = pd.Timedelta(window), pd.Timedelta(refit_every)
    if window <= pd.Timedelta(0) or refit_every <= pd.Timedelta(0):
        raise ValueError(f"rolling_curve_pcs: window and refit_every must be > 0, got {window}, {refit_every}")
    scores = np.full((len(times), n_components), np.nan)
    complete = np.isfinite(values).all(axis=1)
    order = np.argsort(times, kind="stable")
    order = order[complete[order]]
    sorted_times, sorted_values = times[order], values[order]
    step = refit_every.value
    blocks = sorted_times // step * step
    block_starts, block_first = np.unique(blocks, return_index=True)
    block_ends = np.append(block_first[1:], len(blocks))[: len(block_first)]
    fit_from = np.searchsorted(sorted_times, block_starts - window.value, side="left")
    previous = None
    for block, lo, first, last in zip(block_starts, fit_from, block_first, block_ends, strict=True):
        if first - lo < max(min_rows, n_components + 1):
            continue
        if chain is None:
            fit = previous = fit_curve_pca(sorted_values[lo:first], n_components, previous)
        else:
            fit = chain.fits.get(int(block)) or chain.record(
                int(block), fit_curve_pca(sorted_values[lo:first], n_components, chain.before(int(block)))
            )
        scores[order[first:last]] = fit.transform(sorted_values[first:last])
    return scores


@dataclass
class PcaSignChain:
    """The fits of successive `rolling_pcs` calls by refit time (UTC ns), the first one made kept.

    A later call's first fits, made from a window truncated by the start of its input, never replace
    an earlier call's fits of the same refit times, made from the whole window.
    """

    fits: dict[int, CurvePCA] = field(default_factory=dict)

    def before(self, block: int) -> CurvePCA | None:
        """The latest fit before this refit time, the one a new fit's signs follow."""
        earlier = [b for b in self.fits if b < block]
        return self.fits[max(earlier)] if earlier else None

    def record(self, block: int, fit: CurvePCA) -> CurvePCA:
        self.fits[block] = fit
        return fit


def cross_venue_dispersion(rates: pd.DataFrame, rate_column: str = "rate") -> pd.DataFrame:
    """Hourly std (ddof=1) across venues of the 8h-normalised rate, per base asset.

    Each rate is known from its funding_time rounded UP to the hour (never earlier) and stays the
    venue's latest known rate until funding_time + interval_h; venues with several symbols of one
    base count once (their mean). Returns base, ts (hour), dispersion_8h (NaN with < 2 venues),
    n_venues.
    """
    require_columns(rates, ["venue", "symbol", "base", "funding_time", "interval_h", rate_column], "rates")
    base, base_labels = pd.factorize(rates["base"], sort=True)
    venue = pd.factorize(rates["venue"], sort=True)[0]
    stream = rates.groupby(["venue", "symbol"], sort=True, dropna=False).ngroup().to_numpy()
    # A row without a base or venue belongs to no group.
    rate = np.where((base >= 0) & (venue >= 0), rates[rate_column].to_numpy(dtype="float64"), np.nan)
    interval_h = rates["interval_h"].to_numpy(dtype="float64")
    table = hourly_dispersion(base, venue, stream, time_ns(rates["funding_time"]), interval_h, rate)
    return pd.DataFrame(
        {
            "base": np.asarray(base_labels, dtype=object)[table.base],
            "ts": utc_from_ns(table.hour * NS_PER_HOUR),
            "dispersion_8h": table.dispersion_8h,
            "n_venues": table.n_venues,
        }
    )[DISPERSION_COLUMNS]


@dataclass(frozen=True)
class HourlyDispersion:
    """Cross-venue dispersion per (base code, hour since the epoch), sorted by base then hour."""

    base: np.ndarray
    hour: np.ndarray
    dispersion_8h: np.ndarray
    n_venues: np.ndarray

    def at(self, base: np.ndarray, hour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(dispersion_8h, n_venues) at each (base code, hour): NaN and 0 where no venue had a known rate."""
        dispersion, n_venues = np.full(len(base), np.nan), np.zeros(len(base), dtype="int64")
        if not len(self.base) or not len(base):
            return dispersion, n_venues
        first_hour = min(self.hour.min(), hour.min())
        hour_span = int(max(self.hour.max(), hour.max()) - first_hour + 1)
        table_key = self.base * hour_span + (self.hour - first_hour)
        key = base * hour_span + (hour - first_hour)
        position = np.minimum(np.searchsorted(table_key, key), len(table_key) - 1)
        found = table_key[position] == key
        dispersion[found] = self.dispersion_8h[position[found]]
        n_venues[found] = self.n_venues[position[found]]
        return dispersion, n_venues


def hourly_dispersion(
    base: np.ndarray,
    venue: np.ndarray,
    stream: np.ndarray,
    funding_ns: np.ndarray,
    interval_h: np.ndarray,
    rate: np.ndarray,
) -> HourlyDispersion:
    """`cross_venue_dispersion` on integer codes (base, venue, venue x symbol stream; all >= 0).

    Each row is expanded to the hours it is the stream's known rate; a stable sort by (stream, hour)
    keeps the latest funding_time per stream and hour, a sort by (base, hour, venue) and
    `np.add.reduceat` give the venue means and their std: no text keys, no frame.
    """
    empty = HourlyDispersion(*(np.zeros(0, dtype="int64"),) * 2, np.zeros(0), np.zeros(0, dtype="int64"))
    usable = np.isfinite(rate)
    if not usable.any():
        return empty
    usable_interval_h = np.asarray(interval_h, dtype="float64")[usable]
    if not (np.isfinite(usable_interval_h) & (usable_interval_h > 0)).all():
        raise SchemaError("rates: interval_h must be finite and > 0")
    base, venue, stream = base[usable], venue[usable], stream[usable]
    funding_ns, interval_h = funding_ns[usable], usable_interval_h
    rate_8h = rate_to_8h(rate[usable], interval_h)
    by_stream_time = np.lexsort((funding_ns, stream))
    known_hour = -(-funding_ns[by_stream_time] // NS_PER_HOUR)
    until_ns = funding_ns[by_stream_time] + np.rint(interval_h[by_stream_time] * NS_PER_HOUR).astype("int64")
    n_hours = np.maximum(-(-(until_ns - known_hour * NS_PER_HOUR) // NS_PER_HOUR), 0)
    row = np.repeat(by_stream_time, n_hours)
    if not len(row):
        return empty
    hour = np.repeat(known_hour, n_hours) + np.arange(len(row)) - np.repeat(np.cumsum(n_hours) - n_hours, n_hours)
    first_hour = hour.min()
    hour_span = int(hour.max() - first_hour + 1)

    # Rows are in (stream, funding_time) order, so the last of each (stream, hour) run is the latest rate.
    stream_hour = stream[row] * hour_span + (hour - first_hour)
    order = np.argsort(stream_hour, kind="stable")
    latest = order[ends_of_runs(stream_hour[order])]
    row, hour = row[latest], hour[latest]

    n_venue_codes = int(venue.max()) + 1
    base_hour = base[row] * hour_span + (hour - first_hour)
    venue_key = base_hour * n_venue_codes + venue[row]
    order = np.argsort(venue_key, kind="stable")
    venue_key, values = venue_key[order], rate_8h[row[order]]
    venue_start = np.flatnonzero(np.r_[True, venue_key[1:] != venue_key[:-1]])
    venue_mean = np.add.reduceat(values, venue_start) / np.diff(np.r_[venue_start, len(values)])
    group_key = venue_key[venue_start] // n_venue_codes
    group_start = np.flatnonzero(np.r_[True, group_key[1:] != group_key[:-1]])
    n_venues = np.diff(np.r_[group_start, len(group_key)])
    mean = np.add.reduceat(venue_mean, group_start) / n_venues
    squares = np.add.reduceat((venue_mean - np.repeat(mean, n_venues)) ** 2, group_start)
    with np.errstate(divide="ignore", invalid="ignore"):
        dispersion = np.where(n_venues >= 2, np.sqrt(squares / (n_venues - 1)), np.nan)
    key = group_key[group_start]
    return HourlyDispersion(key // hour_span, key % hour_span + first_hour, dispersion, n_venues.astype("int64"))


def _stream_hours_since_shock(t: np.ndarray, x: np.ndarray, k: float, window_ns: int, min_move: float) -> np.ndarray:
    """One time-sorted stream: hours since the last shock (inf if none), stats over [t - window, t)."""
    valid = np.isfinite(x)
    values = np.where(valid, x, 0.0)
    count = np.r_[0, np.cumsum(valid)]
    total = np.r_[0.0, np.cumsum(values)]
    squares = np.r_[0.0, np.cumsum(values**2)]
    row = np.arange(len(t))
    first = np.searchsorted(t, t - window_ns, side="left")
    n = count[row] - count[first]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (total[row] - total[first]) / n
        variance = np.maximum((squares[row] - squares[first]) - n * mean**2, 0.0) / (n - 1)
    move = np.abs(x - mean)
    shock = valid & (n >= 3) & (move > k * np.sqrt(variance)) & (move > min_move)
    last_shock = np.maximum.accumulate(np.where(shock, row, -1))
    since = (t - t[np.maximum(last_shock, 0)]) / NS_PER_HOUR
    return np.where(last_shock >= 0, since, np.inf)


def ends_of_runs(*keys: np.ndarray) -> np.ndarray:
    """True at the last element of each run of equal consecutive (key, ...) tuples."""
    end = np.ones(len(keys[0]), dtype=bool)
    end[:-1] = False
    for key in keys:
        end[:-1] |= key[1:] != key[:-1]
    return end


def stream_bounds(stream: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) row ranges of each stream in an array of stream codes sorted so that streams are contiguous."""
    starts = np.flatnonzero(np.r_[True, stream[1:] != stream[:-1]]) if len(stream) else np.zeros(0, dtype="int64")
    ends = np.r_[starts[1:], len(stream)]
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _sorted_streams(curves: pd.DataFrame) -> pd.DataFrame:
    ordered = curves.sort_values([*STREAM_KEYS, "funding_time"], kind="stable")
    duplicated = ordered.duplicated([*STREAM_KEYS, "funding_time"])
    if duplicated.any():
        sample = ordered.loc[duplicated, [*STREAM_KEYS, "funding_time"]].head(3).to_dict("records")
        raise SchemaError(f"curve snapshots: more than one row per venue, symbol, funding_time, e.g. {sample}")
    return ordered.copy()
