"""Feature store: one row per settled funding window, features from the past only, next-window target.

A row at funding_time T uses curve snapshots and prints with funding_time <= T and hourly bars
closed by T (bar ts is the bar OPEN, so ts + 1h <= T). Its target is the stream's next settled
print after T, taken only from prints the caller passed (never invented).

With predicted prints (reconstructed history, or live ones) a row also carries the settling window's
intra-window path, computed by the same rule as the live features (`intra_window_features` at T):
its drift and its quotes h hours before T. Those columns are NaN where no predicted print exists.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from fund_pipeline.domain.factors import (
    ANN_BUCKETS,
    DECAY_COLUMNS,
    RATE_BUCKETS,
    PcaSignChain,
    decay_ratio_matrix,
    hourly_dispersion,
    hours_since_shock,
    rolling_pcs,
)
from fund_pipeline.domain.features.market import (
    BARS_FLAG,
    MARKET_FEATURES,
    market_features,
    rolling_sum,
)
from fund_pipeline.domain.features.streams import SettledPrints, latest_snapshots, stream_bases
from fund_pipeline.domain.predicted import INTRA_WINDOW_HOURS, intra_window_features
from fund_pipeline.domain.prints import SchemaError, rate_to_8h, require_columns
from fund_pipeline.domain.records import CURVE_COLUMNS
from fund_pipeline.domain.time import NS_PER_HOUR, aware_utc, utc_from_ns

# Longest look-back of any feature: 21 settled 8h windows (160h), shock stats + censoring (144h),
# PCA window (3 days), EMA(48) on hourly bars. EMAs have infinite memory: after 7 days of hourly
# bars the weight left on older data is below 0.1 %.
FEATURE_WARMUP = pd.Timedelta(days=7)
PCA_WINDOW = pd.Timedelta(days=3)
PCA_REFIT_EVERY = pd.Timedelta(days=1)
RATE_MEAN_WINDOWS = 21

KEY_COLUMNS = ["venue", "symbol", "base", "funding_time", "interval_h"]
FUNDING_FEATURES = [
    "rate",
    "rate_8h",
    "rate_mean_21",
    "level",
    "slope",
    "curvature",
    *DECAY_COLUMNS,
    "pc1",
    "pc2",
    "time_since_shock_h",
    "dispersion_8h",
    "dispersion_n_venues",
    "n_interpolated",
    "hour_of_day",
]
FEATURE_COLUMNS = FUNDING_FEATURES + MARKET_FEATURES
# The settling window's path of predicted quotes: known at T, present only where predicted prints are.
INTRA_WINDOW_FEATURES = ["predicted_drift", *[f"predicted_{h:g}h_before" for h in INTRA_WINDOW_HOURS]]
TARGET_COLUMNS = ["target_time", "target_rate", "target_interval_h"]
OUTPUT_COLUMNS = KEY_COLUMNS + FEATURE_COLUMNS + INTRA_WINDOW_FEATURES + [BARS_FLAG] + TARGET_COLUMNS

# Columns whose NaN is by design, not a warm-up gap: ratios to a zero bucket.
OPTIONAL_FEATURES = list(DECAY_COLUMNS)

# Every snapshot column but n_filled, which no feature uses.
CURVE_INPUT_COLUMNS = [c for c in CURVE_COLUMNS if c != "n_filled"]
PRINT_INPUT_COLUMNS = ["venue", "symbol", "base", "kind", "funding_time", "rate", "interval_h"]


def build_feature_store(
    curves: pd.DataFrame,
    prints: pd.DataFrame,
    bars: pd.DataFrame | None,
    start,
    end,
    predicted: pd.DataFrame | None = None,
    pca_chain: PcaSignChain | None = None,
) -> pd.DataFrame:
    """Features and next-window targets for every settled window with funding_time in [start, end).

    Pass inputs from at least `start - FEATURE_WARMUP`; pass prints after `end` to get targets for
    the last windows. Streams without bars get NaN market features; without `predicted` prints of a
    window, NaN intra-window features. Builds of consecutive spans, oldest first, that share a
    `pca_chain` sign their PCs as one build over the whole span would (see `rolling_pcs`).

    Streams are integer codes and every column a numpy array in (stream, funding_time) order; the
    input frames are read column by column and never copied whole.
    """
    start, end = aware_utc(start, "start"), aware_utc(end, "end")
    if start >= end:
        raise ValueError(f"build_feature_store: start {start} must be before end {end}")
    require_columns(curves, CURVE_INPUT_COLUMNS, "curve snapshots")
    require_columns(prints, PRINT_INPUT_COLUMNS, "funding prints")
    streams, stream, rows, funding_ns = latest_snapshots(curves)
    settled = SettledPrints.from_prints(prints, streams)
    base = stream_bases(streams, settled, bars)
    interval_h = curves["interval_h"].to_numpy()[rows]
    buckets = curves[RATE_BUCKETS].to_numpy(dtype="float64")[rows]
    rate = buckets[:, 0]
    rate_8h = rate_to_8h(rate, interval_h)

    curve_vectors = curves[ANN_BUCKETS].to_numpy(dtype="float64")[rows]
    pcs = rolling_pcs(funding_ns, curve_vectors, PCA_WINDOW, PCA_REFIT_EVERY, n_components=2, chain=pca_chain)
    stream_base = base.code[stream]
    dispersion = hourly_dispersion(stream_base, streams.venue_code[stream], stream, funding_ns, interval_h, rate)
    dispersion_8h, n_venues = dispersion.at(stream_base, funding_ns // NS_PER_HOUR)
    since_shock = hours_since_shock(stream, funding_ns, rate_8h)
    # Streams are contiguous: a window is kept only when all its rows are the row's own stream's.
    window_sum = rolling_sum(rate[:, None], RATE_MEAN_WINDOWS, RATE_MEAN_WINDOWS)[:, 0]
    row_in_stream = np.arange(len(stream)) - np.searchsorted(stream, np.arange(len(streams)))[stream]
    rate_mean = np.where(row_in_stream >= RATE_MEAN_WINDOWS - 1, window_sum / RATE_MEAN_WINDOWS, np.nan)

    keep = np.flatnonzero((funding_ns >= start.value) & (funding_ns < end.value))
    stream, rows, funding_ns, buckets = stream[keep], rows[keep], funding_ns[keep], buckets[keep]
    features = {
        "venue": streams.venue[stream],
        "symbol": streams.symbol[stream],
        "base": base.label[stream],
        "funding_time": utc_from_ns(funding_ns),
        "interval_h": interval_h[keep],
        "rate": rate[keep],
        "rate_8h": rate_8h[keep],
        "rate_mean_21": rate_mean[keep],
    }
    for column in ("level", "slope", "curvature"):
        features[column] = curves[column].to_numpy(dtype="float64")[rows]
    features.update(zip(DECAY_COLUMNS, decay_ratio_matrix(buckets).T, strict=True))
    features["pc1"], features["pc2"] = pcs[keep, 0], pcs[keep, 1]
    features["time_since_shock_h"] = since_shock[keep]
    features["dispersion_8h"] = dispersion_8h[keep]
    features["dispersion_n_venues"] = n_venues[keep].astype("float64")
    features["n_interpolated"] = _count_bits(curves["interpolated_mask"].to_numpy()[rows])
    features["hour_of_day"] = funding_ns // NS_PER_HOUR % 24
    features.update(market_features(bars, streams, stream, funding_ns))
    features.update(settled.next_after(stream, funding_ns))
    features.update(_settling_window_path(predicted, features))
    return pd.DataFrame({name: features[name] for name in OUTPUT_COLUMNS})


def _settling_window_path(predicted: pd.DataFrame | None, features: dict) -> dict[str, np.ndarray]:
    """Intra-window features of each row's settling window at its settlement (quotes sent by then only)."""
    n = len(features["funding_time"])
    if predicted is None or predicted.empty or n == 0:
        return {name: np.full(n, np.nan) for name in INTRA_WINDOW_FEATURES}
    at = pd.DataFrame(
        {"venue": features["venue"], "symbol": features["symbol"], "funding_time": features["funding_time"]}
    )
    path = intra_window_features(predicted, at.assign(at=at["funding_time"]))
    return {name: path[name].to_numpy(dtype="float64") for name in INTRA_WINDOW_FEATURES}


class WarmupCount(NamedTuple):
    """Of one feature column: the rows it is checked on, and how many of them are NaN."""

    nan_rows: int
    rows_checked: int


def warmup_counts(features: pd.DataFrame) -> dict[str, WarmupCount]:
    """NaN rows of each feature column among the rows it is checked on (see `feature_warmup_report`).

    Counts of several chunks of a build add up to the whole build's: `warmup_report_of`.
    """
    require_columns(features, [*FEATURE_COLUMNS, BARS_FLAG], "feature store")
    has_bars = features[BARS_FLAG].to_numpy(dtype=bool)
    several_venues = features["dispersion_n_venues"].to_numpy(dtype="float64") >= 2
    counts = {}
    for name in [*FEATURE_COLUMNS, *(c for c in INTRA_WINDOW_FEATURES if c in features)]:
        if name in MARKET_FEATURES:
            checked = has_bars
        elif name == "dispersion_8h":
            checked = several_venues
        else:
            checked = np.ones(len(features), dtype=bool)
        values = features[name].to_numpy(dtype="float64")[checked]
        counts[name] = WarmupCount(int(np.isnan(values).sum()), int(checked.sum()))
    return counts


def feature_warmup_report(features: pd.DataFrame) -> dict:
    """Share of NaN rows per feature column, and which required columns are incomplete.

    Funding features are checked on every row (decay ratios are reported but optional: NaN by design
    next to a zero bucket; so are intra-window features, present only with predicted prints;
    dispersion only where the base has >= 2 venues); market features only on
    streams that have bars. Returns {"columns": {name: {nan_share, rows_checked, required, complete}},
    "failed": [names], "complete": bool}.
    """
    return warmup_report_of(warmup_counts(features))


def warmup_report_of(counts: dict[str, WarmupCount]) -> dict:
    """`feature_warmup_report` from the NaN counts of its columns."""
    columns = {}
    for name, count in counts.items():
        nan_share = count.nan_rows / count.rows_checked if count.rows_checked else 0.0
        columns[name] = {
            "nan_share": nan_share,
            "rows_checked": count.rows_checked,
            "required": name not in OPTIONAL_FEATURES and name not in INTRA_WINDOW_FEATURES,
            "complete": nan_share == 0.0,
        }
    failed = [name for name, info in columns.items() if info["required"] and not info["complete"]]
    return {"columns": columns, "failed": failed, "complete": not failed}


def _count_bits(mask: np.ndarray) -> np.ndarray:
    values = pd.to_numeric(pd.Series(mask), errors="raise").to_numpy()
    if not np.isfinite(values.astype("float64")).all() or (values < 0).any():
        raise SchemaError("curve snapshots: interpolated_mask must be a non-negative integer bitmask")
    return np.bitwise_count(values.astype("uint64")).astype("int64")
