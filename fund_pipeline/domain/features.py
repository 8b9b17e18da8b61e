"""Feature store: one row per settled funding window, features from the past only, next-window target.

A row at funding_time T uses curve snapshots and prints with funding_time <= T and hourly bars
closed by T (bar ts is the bar OPEN, so ts + 1h <= T). Its target is the stream's next settled
print after T, taken only from prints the caller passed (never invented).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from fund_pipeline.domain.factors import (
    DECAY_COLUMNS,
    HOUR_NS,
    RATE_BUCKETS,
    STREAM_KEYS,
    cross_venue_dispersion,
    decay_ratios,
    rolling_curve_pcs,
    time_ns,
    time_since_shock,
)
from fund_pipeline.domain.prints import (
    INTEREST_RATE_8H,
    SchemaError,
    rate_to_8h,
    require_columns,
    to_utc,
)

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
MARKET_FEATURES = [
    "ret_1h",
    "ret_24h",
    "realised_vol_24h",
    "rsi_14",
    "mfi_14",
    "ema_ratio_12_48",
    "basis",
    "oi_change_24h",
]
FEATURE_COLUMNS = FUNDING_FEATURES + MARKET_FEATURES
TARGET_COLUMNS = ["target_time", "target_rate", "target_interval_h"]
# Whether the stream has any hourly bars at all: market features are only expected where it does.
BARS_FLAG = "has_bars"
OUTPUT_COLUMNS = KEY_COLUMNS + FEATURE_COLUMNS + [BARS_FLAG] + TARGET_COLUMNS

# Columns whose NaN is by design, not a warm-up gap: ratios to a zero bucket.
OPTIONAL_FEATURES = list(DECAY_COLUMNS)

CURVE_INPUT_COLUMNS = [
    "venue",
    "symbol",
    "ts_snap",
    "funding_time",
    "interval_h",
    *RATE_BUCKETS,
    *[f"{b}_ann" for b in RATE_BUCKETS],
    "level",
    "slope",
    "curvature",
    "interpolated_mask",
]
PRINT_INPUT_COLUMNS = ["venue", "symbol", "base", "kind", "funding_time", "rate", "interval_h"]
BAR_INPUT_COLUMNS = [
    "venue",
    "symbol",
    "base",
    "ts",
    "high",
    "low",
    "close",
    "volume_usd",
    "spot_close",
    "open_interest_usd",
]
SYMBOL_FEATURES = ["rate_8h_mean", "rate_8h_std", "rate_8h_autocorr_1", "slope_mean", "interest_mass_share"]
# Rates within this of 0.0001/8h sit on the interest mass point (quotes have ~8 decimals).
MASS_POINT_TOL = 5e-9
# A rate series moving less than this (far below quote precision) is flat: its correlation is undefined.
FLAT_RATE_STD = 1e-10


def build_feature_store(
    curves: pd.DataFrame,
    prints: pd.DataFrame,
    bars: pd.DataFrame | None,
    start,
    end,
) -> pd.DataFrame:
    """Features and next-window targets for every settled window with funding_time in [start, end).

    Pass inputs from at least `start - FEATURE_WARMUP`; pass prints after `end` to get targets for
    the last windows. Streams without bars get NaN market features.
    """
    start, end = _utc_timestamp(start, "start"), _utc_timestamp(end, "end")
    if start >= end:
        raise ValueError(f"build_feature_store: start {start} must be before end {end}")
    require_columns(curves, CURVE_INPUT_COLUMNS, "curve snapshots")
    require_columns(prints, PRINT_INPUT_COLUMNS, "funding prints")
    settled = _settled_prints(prints)
    curves = _latest_snapshots(curves)
    curves["base"] = _stream_base(curves, settled, bars)

    features = curves[["venue", "symbol", "base", "funding_time", "interval_h"]].copy()
    features["rate"] = curves["b0"].to_numpy(dtype="float64")
    features["rate_8h"] = rate_to_8h(features["rate"], features["interval_h"])
    # Aligned by row label: a grouped rolling result is not in the frame's row order.
    features["rate_mean_21"] = (
        features.groupby(STREAM_KEYS, sort=False)["rate"]
        .rolling(RATE_MEAN_WINDOWS, min_periods=RATE_MEAN_WINDOWS)
        .mean()
        .droplevel(list(range(len(STREAM_KEYS))))
    )
    for column in ("level", "slope", "curvature"):
        features[column] = curves[column].to_numpy(dtype="float64")
    features[DECAY_COLUMNS] = decay_ratios(curves)
    features[["pc1", "pc2"]] = rolling_curve_pcs(curves, PCA_WINDOW, PCA_REFIT_EVERY, n_components=2)
    features["time_since_shock_h"] = time_since_shock(curves)
    features[["dispersion_8h", "dispersion_n_venues"]] = _dispersion_at_rows(curves)
    features["n_interpolated"] = _count_bits(curves["interpolated_mask"])
    features["hour_of_day"] = features["funding_time"].dt.hour.astype("int64")

    in_range = (features["funding_time"] >= start) & (features["funding_time"] < end)
    features = features.loc[in_range].reset_index(drop=True)
    features[MARKET_FEATURES + [BARS_FLAG]] = market_features_at(bars, features)
    features[TARGET_COLUMNS] = _next_settled(features, settled)
    return features[OUTPUT_COLUMNS]


def market_features_at(bars: pd.DataFrame | None, rows: pd.DataFrame) -> pd.DataFrame:
    """Market features of each row's stream from the last hourly bar closed at or before its funding_time."""
    out = pd.DataFrame(np.nan, index=rows.index, columns=MARKET_FEATURES)
    out[BARS_FLAG] = False
    if bars is None or bars.empty or rows.empty:
        return out
    require_columns(bars, BAR_INPUT_COLUMNS, "hourly bars")
    bars = bars.assign(ts=to_utc(bars["ts"]))
    open_ns = time_ns(bars["ts"])
    if (open_ns % HOUR_NS != 0).any():
        sample = bars.loc[open_ns % HOUR_NS != 0, ["venue", "symbol", "ts"]].head(3).to_dict("records")
        raise SchemaError(f"hourly bars: ts must be the bar open on the hour, e.g. {sample}")
    bars = bars.drop_duplicates(["venue", "symbol", "ts"], keep="last")
    wide = _hourly_wide(bars)
    grid_start = wide["close"].index[0].value
    streams = wide["close"].columns
    computed = _market_features_wide(wide)

    codes = pd.DataFrame(list(streams), columns=STREAM_KEYS).assign(column=np.arange(len(streams)))
    column = rows[STREAM_KEYS].merge(codes, on=STREAM_KEYS, how="left")["column"].fillna(-1)
    column = column.to_numpy(dtype="int64")
    last_open = (time_ns(rows["funding_time"]) - HOUR_NS - grid_start) // HOUR_NS
    n_hours = len(wide["close"].index)
    usable = (column >= 0) & (last_open >= 0) & (last_open < n_hours)
    for name in MARKET_FEATURES:
        values = computed[name].to_numpy(dtype="float64")
        out.loc[usable, name] = values[last_open[usable], column[usable]]
    out[BARS_FLAG] = column >= 0
    return out


def feature_warmup_report(features: pd.DataFrame) -> dict:
    """Share of NaN rows per feature column, and which required columns are incomplete.

    Funding features are checked on every row (decay ratios are reported but optional: NaN by design
    next to a zero bucket; dispersion only where the base has >= 2 venues); market features only on
    streams that have bars. Returns {"columns": {name: {nan_share, rows_checked, required, complete}},
    "failed": [names], "complete": bool}.
    """
    require_columns(features, [*FEATURE_COLUMNS, BARS_FLAG], "feature store")
    has_bars = features[BARS_FLAG].to_numpy(dtype=bool)
    several_venues = features["dispersion_n_venues"].to_numpy(dtype="float64") >= 2
    columns = {}
    for name in FEATURE_COLUMNS:
        if name in MARKET_FEATURES:
            checked = has_bars
        elif name == "dispersion_8h":
            checked = several_venues
        else:
            checked = np.ones(len(features), dtype=bool)
        values = features.loc[checked, name].to_numpy(dtype="float64")
        nan_share = float(np.isnan(values).mean()) if len(values) else 0.0
        required = name not in OPTIONAL_FEATURES
        columns[name] = {
            "nan_share": nan_share,
            "rows_checked": int(checked.sum()),
            "required": required,
            "complete": nan_share == 0.0,
        }
    failed = [name for name, info in columns.items() if info["required"] and not info["complete"]]
    return {"columns": columns, "failed": failed, "complete": not failed}


def symbol_features(features: pd.DataFrame, end, lookback: pd.Timedelta) -> pd.DataFrame:
    """Per venue x symbol summary of windows in [end - lookback, end), the inputs to clustering."""
    end = _utc_timestamp(end, "end")
    lookback = pd.Timedelta(lookback)
    if lookback <= pd.Timedelta(0):
        raise ValueError(f"symbol_features: lookback must be > 0, got {lookback}")
    require_columns(features, ["venue", "symbol", "base", "funding_time", "rate_8h", "slope"], "feature store")
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
            "rate_8h_autocorr_1": _grouped_corr(rate, previous, [window[c] for c in STREAM_KEYS]),
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


def _utc_timestamp(value, what: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(f"{what} must be tz-aware UTC, got naive {stamp}")
    return stamp.tz_convert("UTC")


def _settled_prints(prints: pd.DataFrame) -> pd.DataFrame:
    """Settled prints, one per stream and funding_time (the latest event if a venue re-sent one)."""
    settled = prints.loc[prints["kind"] == "settled"].copy()
    settled["funding_time"] = to_utc(settled["funding_time"])
    order = ["venue", "symbol", "funding_time"] + (["ts"] if "ts" in settled.columns else [])
    settled = settled.sort_values(order, kind="stable")
    return settled.drop_duplicates(["venue", "symbol", "funding_time"], keep="last").reset_index(drop=True)


def _latest_snapshots(curves: pd.DataFrame) -> pd.DataFrame:
    """One snapshot per window (the last taken), streams contiguous and time-sorted."""
    out = curves.copy()
    out["funding_time"] = to_utc(out["funding_time"])
    out["ts_snap"] = to_utc(out["ts_snap"])
    out = out.sort_values(["venue", "symbol", "funding_time", "ts_snap"], kind="stable")
    out = out.drop_duplicates(["venue", "symbol", "funding_time"], keep="last")
    return out.reset_index(drop=True)


def _stream_base(curves: pd.DataFrame, settled: pd.DataFrame, bars: pd.DataFrame | None) -> pd.Series:
    """Base asset of each curve row's stream, from the prints (or bars); an unknown stream is an error."""
    sources = [settled[["venue", "symbol", "base"]]]
    if bars is not None and not bars.empty:
        sources.append(bars[["venue", "symbol", "base"]])
    known = pd.concat(sources).dropna().drop_duplicates(["venue", "symbol"])
    base = curves[STREAM_KEYS].merge(known, on=STREAM_KEYS, how="left")["base"]
    if base.isna().any():
        missing = curves.loc[base.isna().to_numpy(), STREAM_KEYS].drop_duplicates().head(5).to_dict("records")
        raise SchemaError(f"curve snapshots: no base asset known (no prints or bars) for streams {missing}")
    return pd.Series(base.to_numpy(), index=curves.index)


def _dispersion_at_rows(curves: pd.DataFrame) -> pd.DataFrame:
    """Cross-venue dispersion of the row's base at the last full hour at or before its funding_time."""
    dispersion = cross_venue_dispersion(curves, rate_column="b0")
    hour_ns = time_ns(curves["funding_time"]) // HOUR_NS * HOUR_NS
    keys = pd.DataFrame({"base": curves["base"].to_numpy(), "ts": pd.to_datetime(hour_ns, utc=True)})
    joined = keys.merge(dispersion, on=["base", "ts"], how="left")
    return pd.DataFrame(
        {
            "dispersion_8h": joined["dispersion_8h"].to_numpy(dtype="float64"),
            "dispersion_n_venues": joined["n_venues"].fillna(0).to_numpy(dtype="float64"),
        },
        index=curves.index,
    )


def _count_bits(mask: pd.Series) -> np.ndarray:
    values = pd.to_numeric(mask, errors="raise").to_numpy()
    if not np.isfinite(values.astype("float64")).all() or (values < 0).any():
        raise SchemaError("curve snapshots: interpolated_mask must be a non-negative integer bitmask")
    return np.bitwise_count(values.astype("uint64")).astype("int64")


def _hourly_wide(bars: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Bar columns pivoted to (hourly open time x stream) on one complete grid; missing bars are NaN."""
    grid = pd.date_range(bars["ts"].min(), bars["ts"].max(), freq="h")
    indexed = bars.set_index(["ts", "venue", "symbol"])
    wide = {}
    for name in ("high", "low", "close", "volume_usd", "spot_close", "open_interest_usd"):
        frame = indexed[name].astype("float64").unstack(["venue", "symbol"])
        wide[name] = frame.reindex(grid)
    streams = wide["close"].columns
    return {name: frame.reindex(columns=streams) for name, frame in wide.items()}


def _market_features_wide(wide: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Hourly market features per stream (columns), each row using bars up to and including that hour."""
    close, high, low = wide["close"], wide["high"], wide["low"]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_return = np.log(close / close.shift(1))
        change = close.diff()
        gain_average = change.clip(lower=0).ewm(alpha=1 / 14, min_periods=14).mean()
        loss_average = (-change).clip(lower=0).ewm(alpha=1 / 14, min_periods=14).mean()
        typical = (high + low + close) / 3.0
        typical_change = typical.diff()
        flow = wide["volume_usd"]
        positive = flow.where(typical_change > 0, 0.0).where(typical_change.notna())
        negative = flow.where(typical_change < 0, 0.0).where(typical_change.notna())
        positive_sum = positive.rolling(14, min_periods=14).sum()
        negative_sum = negative.rolling(14, min_periods=14).sum()
        features = {
            "ret_1h": close / close.shift(1) - 1.0,
            "ret_24h": close / close.shift(24) - 1.0,
            "realised_vol_24h": np.sqrt((log_return**2).rolling(24, min_periods=20).mean() * 24.0),
            "rsi_14": 100.0 * gain_average / (gain_average + loss_average),
            "mfi_14": 100.0 * positive_sum / (positive_sum + negative_sum),
            "ema_ratio_12_48": close.ewm(span=12, min_periods=12).mean() / close.ewm(span=48, min_periods=48).mean(),
            "basis": close / wide["spot_close"] - 1.0,
            "oi_change_24h": wide["open_interest_usd"] / wide["open_interest_usd"].shift(24) - 1.0,
        }
    return {name: frame.replace([np.inf, -np.inf], np.nan) for name, frame in features.items()}


def _next_settled(rows: pd.DataFrame, settled: pd.DataFrame) -> pd.DataFrame:
    """The stream's first settled print strictly after each row's funding_time, if the caller passed it."""
    out = pd.DataFrame(index=rows.index)
    out["target_time"] = pd.Series(pd.NaT, index=rows.index, dtype="datetime64[ns, UTC]")
    out["target_rate"] = np.nan
    out["target_interval_h"] = np.nan
    if rows.empty or settled.empty:
        return out
    left = rows[["venue", "symbol", "funding_time"]].reset_index().sort_values("funding_time", kind="stable")
    right = settled[["venue", "symbol", "funding_time", "rate", "interval_h"]].rename(
        columns={"rate": "target_rate", "interval_h": "target_interval_h"}
    )
    right["target_time"] = right["funding_time"]
    right = right.sort_values("funding_time", kind="stable")
    joined = pd.merge_asof(
        left, right, on="funding_time", by=STREAM_KEYS, direction="forward", allow_exact_matches=False
    ).set_index("index")
    out["target_time"] = joined["target_time"].reindex(rows.index).astype("datetime64[ns, UTC]")
    out["target_rate"] = joined["target_rate"].reindex(rows.index).astype("float64")
    out["target_interval_h"] = joined["target_interval_h"].reindex(rows.index).astype("float64")
    return out


def _grouped_corr(x: pd.Series, y: pd.Series, keys: list[pd.Series]) -> pd.Series:
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
