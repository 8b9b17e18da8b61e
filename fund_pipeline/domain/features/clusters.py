"""Symbols grouped by how their funding behaves: per-symbol summaries, KMeans and a 2-D projection."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fund_pipeline.domain.factors import STREAM_KEYS
from fund_pipeline.domain.prints import INTEREST_RATE_8H, require_columns
from fund_pipeline.domain.time import aware_utc

SYMBOL_FEATURES = ["rate_8h_mean", "rate_8h_std", "rate_8h_autocorr_1", "slope_mean", "interest_mass_share"]
# The feature store columns they are computed from.
SYMBOL_FEATURE_INPUTS = ["venue", "symbol", "base", "funding_time", "rate_8h", "slope"]
# Rates within this of 0.0001/8h sit on the interest mass point (quotes have ~8 decimals).
MASS_POINT_TOL = 5e-9
# A rate series moving less than this (far below quote precision) is flat: its correlation is undefined.
FLAT_RATE_STD = 1e-10


def symbol_features(features: pd.DataFrame, end, lookback: pd.Timedelta) -> pd.DataFrame:
    """Per venue x symbol summary of windows in [end - lookback, end), the inputs to clustering."""
    end = aware_utc(end, "end")
    lookback = pd.Timedelta(lookback)
    if lookback <= pd.Timedelta(0):
        raise ValueError(f"symbol_features: lookback must be > 0, got {lookback}")
    require_columns(features, SYMBOL_FEATURE_INPUTS, "feature store")
    window = features[(features["funding_time"] >= end - lookback) & (features["funding_time"] < end)]
    window = window.sort_values([*STREAM_KEYS, "funding_time"], kind="stable")
    rate = window["rate_8h"]
    grouped = window.groupby(STREAM_KEYS, sort=True)
    previous = grouped["rate_8h"].shift(1)
    out = pd.DataFrame(
        {
            "base": grouped["base"].last(),
            "rate_8h_mean": grouped["rate_8h"].mean(),
            "rate_8h_std": grouped["rate_8h"].std(ddof=1),
            "rate_8h_autocorr_1": grouped_corr(rate, previous, [window[c] for c in STREAM_KEYS]),
            "slope_mean": grouped["slope"].mean(),
            "interest_mass_share": (rate - INTEREST_RATE_8H)
            .abs()
            .le(MASS_POINT_TOL)
            .groupby([window[c] for c in STREAM_KEYS])
            .mean(),
        }
    )
    return out.reset_index()[["venue", "symbol", "base", *SYMBOL_FEATURES]]


def cluster_symbols(sym_features: pd.DataFrame, n_clusters: int, seed: int) -> pd.DataFrame:
    """KMeans on standardised symbol features plus a 2-D PCA projection: (venue, symbol, base, cluster, x, y).

    Rows are sorted first, and clusters numbered by first appearance, so the result does not depend
    on input order. An undefined feature (e.g. autocorrelation of a constant series) counts as average.
    """
    require_columns(sym_features, ["venue", "symbol", "base", *SYMBOL_FEATURES], "symbol features")
    if n_clusters < 1:
        raise ValueError(f"cluster_symbols: n_clusters must be >= 1, got {n_clusters}")
    if len(sym_features) < n_clusters:
        raise ValueError(
            f"cluster_symbols: {len(sym_features)} symbol(s) but n_clusters={n_clusters}; need at least as many symbols"
        )
    ordered = sym_features.sort_values(["venue", "symbol"], kind="stable").reset_index(drop=True)
    values = ordered[SYMBOL_FEATURES].to_numpy(dtype="float64")
    values[~np.isfinite(values)] = np.nan
    mean = np.nanmean(values, axis=0) if len(values) else np.zeros(values.shape[1])
    std = np.nanstd(values, axis=0)
    scaled = np.where(std > 0, (values - mean) / np.where(std > 0, std, 1.0), 0.0)
    scaled = np.nan_to_num(scaled, nan=0.0)
    # sklearn (with scipy.stats) costs seconds to import: paid by the runs that cluster, not by loading the definitions.
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    labels = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(scaled)
    _, first_seen = np.unique(labels, return_index=True)
    renumber = {label: rank for rank, label in enumerate(labels[np.sort(first_seen)])}
    n_components = min(2, len(ordered), scaled.shape[1])
    projected = np.zeros((len(ordered), 2))
    projected[:, :n_components] = PCA(n_components=n_components, random_state=seed).fit_transform(scaled)
    return pd.DataFrame(
        {
            "venue": ordered["venue"],
            "symbol": ordered["symbol"],
            "base": ordered["base"],
            "cluster": np.array([renumber[label] for label in labels], dtype="int64"),
            "x": projected[:, 0],
            "y": projected[:, 1],
        }
    )


def grouped_corr(x: pd.Series, y: pd.Series, keys: list[pd.Series]) -> pd.Series:
    """Pearson correlation of x and y within each group (NaN pairs dropped; NaN for a flat series)."""
    both = x.notna() & y.notna()
    frame = pd.DataFrame({"x": x.where(both), "y": y.where(both)})
    grouped = frame.groupby(keys, sort=True)
    centred = frame - grouped.transform("mean")
    frame["xy"], frame["xx"], frame["yy"] = (
        centred["x"] * centred["y"],
        centred["x"] ** 2,
        centred["y"] ** 2,
    )
    frame["n"] = both.astype("float64")
    sums = frame.groupby(keys, sort=True)[["xy", "xx", "yy", "n"]].sum()
    n = sums["n"]
    flat = FLAT_RATE_STD**2 * n
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = sums["xy"] / np.sqrt(sums["xx"] * sums["yy"])
    return corr.where((n >= 3) & (sums["xx"] > flat) & (sums["yy"] > flat))
