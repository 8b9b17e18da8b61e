"""Curve factors: decay ratios, time since shock, PCA with sign alignment, cross-venue dispersion.

Inputs are curve snapshot frames (venue, symbol, funding_time, interval_h, b0..b7, b0_ann..b7_ann,
...): bucket 0 is the newest settled window, bucket k the window k rolls earlier. Every function
is vectorised and uses, for a row at funding_time T, only rows with funding_time <= T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fund_pipeline.domain.prints import SchemaError, rate_to_8h, require_columns, to_utc

N_BUCKETS = 8
RATE_BUCKETS = [f"b{k}" for k in range(N_BUCKETS)]
ANN_BUCKETS = [f"b{k}_ann" for k in range(N_BUCKETS)]
DECAY_COLUMNS = [f"decay_{k + 1}_{k}" for k in range(N_BUCKETS - 1)]
STREAM_KEYS = ["venue", "symbol"]

# Funding rates are quoted to ~1e-8: below that a bucket is zero and a ratio to it is noise.
ZERO_RATE_TOL = 1e-8

SHOCK_STATS_WINDOW = pd.Timedelta(hours=72)
SHOCK_MAX_HOURS = 72.0
HOUR = pd.Timedelta(hours=1)
HOUR_NS = 3_600_000_000_000
DISPERSION_COLUMNS = ["base", "ts", "dispersion_8h", "n_venues"]
_DISPERSION_DTYPES = ["object", "datetime64[ns, UTC]", "float64", "int64"]


def decay_ratios(curves: pd.DataFrame, zero_tol: float = ZERO_RATE_TOL) -> pd.DataFrame:
    """b(k+1)/b(k) for k = 0..6: how fast the fossil curve decays; NaN where |b(k)| <= zero_tol."""
    require_columns(curves, RATE_BUCKETS, "curve snapshots")
    buckets = curves[RATE_BUCKETS].to_numpy(dtype="float64")
    numerator, denominator = buckets[:, 1:], buckets[:, :-1]
    usable = np.abs(denominator) > zero_tol
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(usable, numerator / np.where(usable, denominator, 1.0), np.nan)
    return pd.DataFrame(ratios, columns=DECAY_COLUMNS, index=curves.index)


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
    if k <= 0 or max_hours <= 0:
        raise ValueError(f"time_since_shock: k and max_hours must be > 0, got k={k}, max_hours={max_hours}")
    if curves.empty:
        return pd.Series(np.nan, index=curves.index, name="time_since_shock_h", dtype="float64")
    ordered = _sorted_streams(curves)
    ordered["x8"] = rate_to_8h(ordered["b0"], ordered["interval_h"])
    rolling = ordered.groupby(STREAM_KEYS, sort=False).rolling(
        stats_window, on="funding_time", closed="left", min_periods=3
    )["x8"]
    # Streams are contiguous and time-sorted, so the grouped result is in `ordered` row order.
    mean = rolling.mean().to_numpy()
    std = rolling.std().to_numpy()
    move = (ordered["x8"] - mean).abs()
    shock = (move > k * std) & (move > min_move)
    shock_time = ordered["funding_time"].where(shock)
    last_shock = shock_time.groupby([ordered[c] for c in STREAM_KEYS], sort=False).ffill()
    hours = (ordered["funding_time"] - last_shock) / HOUR
    hours = hours.where(hours <= max_hours, max_hours)
    first_time = ordered.groupby(STREAM_KEYS, sort=False)["funding_time"].transform("min")
    covered = ordered["funding_time"] - first_time >= stats_window + max_hours * HOUR
    out = hours.where(covered).astype("float64")
    return out.reindex(curves.index).rename("time_since_shock_h")


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
    """PCA of curve vectors (rows = snapshots) by SVD, signs aligned to `previous` so loadings never flip."""
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
    _, singular, vt = np.linalg.svd(values - mean, full_matrices=False)
    variance = singular**2 / (n_rows - 1)
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
    window, refit_every = pd.Timedelta(window), pd.Timedelta(refit_every)
    if window <= pd.Timedelta(0) or refit_every <= pd.Timedelta(0):
        raise ValueError(f"rolling_curve_pcs: window and refit_every must be > 0, got {window}, {refit_every}")
    names = [f"pc{i + 1}" for i in range(n_components)]
    scores = np.full((len(curves), n_components), np.nan)
    times = time_ns(curves["funding_time"])
    values = curves[columns].to_numpy(dtype="float64")
    complete = np.isfinite(values).all(axis=1)
    order = np.argsort(times, kind="stable")
    fit_times, fit_values = times[order][complete[order]], values[order][complete[order]]
    step = refit_every.value
    blocks = times // step * step
    previous = None
    for block_start in np.unique(blocks):
        lo, hi = np.searchsorted(fit_times, [block_start - window.value, block_start], side="left")
        if hi - lo < max(min_rows, n_components + 1):
            continue
        fit = fit_curve_pca(fit_values[lo:hi], n_components, previous)
        previous = fit
        rows = (blocks == block_start) & complete
        scores[rows] = fit.transform(values[rows])
    return pd.DataFrame(scores, columns=names, index=curves.index)


def cross_venue_dispersion(rates: pd.DataFrame, rate_column: str = "rate") -> pd.DataFrame:
    """Hourly std (ddof=1) across venues of the 8h-normalised rate, per base asset.

    Each rate is known from its funding_time rounded UP to the hour (never earlier) and stays the
    venue's latest known rate until funding_time + interval_h; venues with several symbols of one
    base count once (their mean). Returns base, ts (hour), dispersion_8h (NaN with < 2 venues),
    n_venues.
    """
    require_columns(rates, ["venue", "symbol", "base", "funding_time", "interval_h", rate_column], "rates")
    columns = DISPERSION_COLUMNS
    usable = rates[np.isfinite(rates[rate_column].to_numpy(dtype="float64"))]
    if usable.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(columns, _DISPERSION_DTYPES, strict=True)})
    interval_h = usable["interval_h"].to_numpy(dtype="float64")
    if (interval_h <= 0).any() or not np.isfinite(interval_h).all():
        raise SchemaError("rates: interval_h must be finite and > 0")
    funding_ns = time_ns(usable["funding_time"])
    known_ns = -(-funding_ns // HOUR_NS) * HOUR_NS
    until_ns = funding_ns + np.rint(interval_h * HOUR_NS).astype("int64")
    n_hours = np.maximum(-(-(until_ns - known_ns) // HOUR_NS), 0)
    repeat = np.repeat(np.arange(len(usable)), n_hours)
    offset = np.arange(len(repeat)) - np.repeat(np.cumsum(n_hours) - n_hours, n_hours)
    expanded = pd.DataFrame(
        {
            "base": usable["base"].to_numpy()[repeat],
            "venue": usable["venue"].to_numpy()[repeat],
            "symbol": usable["symbol"].to_numpy()[repeat],
            "funding_ns": funding_ns[repeat],
            "ts": known_ns[repeat] + offset * HOUR_NS,
            "x8": rate_to_8h(usable[rate_column], interval_h)[repeat],
        }
    )
    latest = expanded.sort_values("funding_ns", kind="stable").drop_duplicates(
        ["base", "venue", "symbol", "ts"], keep="last"
    )
    per_venue = latest.groupby(["base", "ts", "venue"], sort=False)["x8"].mean()
    grouped = per_venue.groupby(level=["base", "ts"], sort=True)
    out = pd.DataFrame({"dispersion_8h": grouped.std(ddof=1), "n_venues": grouped.size()}).reset_index()
    out["ts"] = pd.to_datetime(out["ts"].to_numpy(dtype="int64"), utc=True)
    return out[columns]


def time_ns(times: pd.Series) -> np.ndarray:
    """UTC nanoseconds since the epoch, for fast integer time arithmetic."""
    return np.asarray(to_utc(times).astype("int64"), dtype="int64")


def _sorted_streams(curves: pd.DataFrame) -> pd.DataFrame:
    ordered = curves.sort_values([*STREAM_KEYS, "funding_time"], kind="stable")
    duplicated = ordered.duplicated([*STREAM_KEYS, "funding_time"])
    if duplicated.any():
        sample = ordered.loc[duplicated, [*STREAM_KEYS, "funding_time"]].head(3).to_dict("records")
        raise SchemaError(f"curve snapshots: more than one row per venue, symbol, funding_time, e.g. {sample}")
    return ordered.copy()
