"""Feature store: one row per settled funding window, features from the past only, next-window target.

A row at funding_time T uses curve snapshots and prints with funding_time <= T and hourly bars
closed by T (bar ts is the bar OPEN, so ts + 1h <= T). Its target is the stream's next settled
print after T, taken only from prints the caller passed (never invented).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.signal import lfilter
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from fund_pipeline.domain.curve import CURVE_COLUMNS, dictionary_codes
from fund_pipeline.domain.factors import (
    ANN_BUCKETS,
    DECAY_COLUMNS,
    HOUR_NS,
    RATE_BUCKETS,
    STREAM_KEYS,
    decay_ratio_matrix,
    ends_of_runs,
    hourly_dispersion,
    hours_since_shock,
    rolling_pcs,
    time_ns,
    utc_times,
)
from fund_pipeline.domain.prints import (
    INTEREST_RATE_8H,
    SchemaError,
    rate_to_8h,
    require_columns,
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

# Every snapshot column but n_filled, which no feature uses.
CURVE_INPUT_COLUMNS = [c for c in CURVE_COLUMNS if c != "n_filled"]
PRINT_INPUT_COLUMNS = ["venue", "symbol", "base", "kind", "funding_time", "rate", "interval_h"]
_BAR_VALUE_COLUMNS = ["high", "low", "close", "volume_usd", "spot_close", "open_interest_usd"]
BAR_INPUT_COLUMNS = ["venue", "symbol", "base", "ts", *_BAR_VALUE_COLUMNS]
SYMBOL_FEATURES = ["rate_8h_mean", "rate_8h_std", "rate_8h_autocorr_1", "slope_mean", "interest_mass_share"]
# How numpy reads NaT as int64 nanoseconds.
NAT_NS = np.iinfo("int64").min
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

    Streams are integer codes and every column a numpy array in (stream, funding_time) order; the
    input frames are read column by column and never copied whole.
    """
    start, end = _utc_timestamp(start, "start"), _utc_timestamp(end, "end")
    if start >= end:
        raise ValueError(f"build_feature_store: start {start} must be before end {end}")
    require_columns(curves, CURVE_INPUT_COLUMNS, "curve snapshots")
    require_columns(prints, PRINT_INPUT_COLUMNS, "funding prints")
    streams, stream, rows, funding_ns = _latest_snapshots(curves)
    settled = _SettledPrints.from_prints(prints, streams)
    base = _stream_bases(streams, settled, bars)
    interval_h = curves["interval_h"].to_numpy()[rows]
    buckets = curves[RATE_BUCKETS].to_numpy(dtype="float64")[rows]
    rate = buckets[:, 0]
    rate_8h = rate_to_8h(rate, interval_h)

    curve_vectors = curves[ANN_BUCKETS].to_numpy(dtype="float64")[rows]
    pcs = rolling_pcs(funding_ns, curve_vectors, PCA_WINDOW, PCA_REFIT_EVERY, n_components=2)
    stream_base = base.code[stream]
    dispersion = hourly_dispersion(stream_base, streams.venue_code[stream], stream, funding_ns, interval_h, rate)
    dispersion_8h, n_venues = dispersion.at(stream_base, funding_ns // HOUR_NS)
    since_shock = hours_since_shock(stream, funding_ns, rate_8h)
    # Streams are contiguous: a window is kept only when all its rows are the row's own stream's.
    window_sum = _rolling_sum(rate[:, None], RATE_MEAN_WINDOWS, RATE_MEAN_WINDOWS)[:, 0]
    row_in_stream = np.arange(len(stream)) - np.searchsorted(stream, np.arange(len(streams)))[stream]
    rate_mean = np.where(row_in_stream >= RATE_MEAN_WINDOWS - 1, window_sum / RATE_MEAN_WINDOWS, np.nan)

    keep = np.flatnonzero((funding_ns >= start.value) & (funding_ns < end.value))
    stream, rows, funding_ns, buckets = stream[keep], rows[keep], funding_ns[keep], buckets[keep]
    features = {
        "venue": streams.venue[stream],
        "symbol": streams.symbol[stream],
        "base": base.label[stream],
        "funding_time": utc_times(funding_ns),
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
    features["hour_of_day"] = funding_ns // HOUR_NS % 24
    features.update(_market_features(bars, streams, stream, funding_ns))
    features.update(settled.next_after(stream, funding_ns))
    return pd.DataFrame({name: features[name] for name in OUTPUT_COLUMNS})


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


@dataclass(frozen=True)
class _Streams:
    """The curve streams (venue x symbol), coded 0..n-1 in (venue, symbol) order."""

    venue: np.ndarray
    symbol: np.ndarray
    venue_code: np.ndarray
    venue_labels: pd.Index
    symbol_labels: pd.Index
    pair: np.ndarray

    def __len__(self) -> int:
        return len(self.pair)

    @classmethod
    def coded(cls, venue: pd.Series, symbol: pd.Series) -> tuple[_Streams, np.ndarray]:
        """The streams of these key columns, and each row's stream code."""
        venue_code, venue_labels = _key_codes(venue)
        symbol_code, symbol_labels = _key_codes(symbol)
        if (venue_code < 0).any() or (symbol_code < 0).any():
            raise SchemaError("curve snapshots: venue and symbol must not be null")
        n_symbols = len(symbol_labels)
        pair, stream = np.unique(venue_code.astype("int64") * n_symbols + symbol_code, return_inverse=True)
        streams = cls(
            venue=np.asarray(venue_labels, dtype=object)[pair // n_symbols],
            symbol=np.asarray(symbol_labels, dtype=object)[pair % n_symbols],
            venue_code=pair // n_symbols,
            venue_labels=pd.Index(venue_labels),
            symbol_labels=pd.Index(symbol_labels),
            pair=pair,
        )
        return streams, stream

    def code(self, venue: pd.Series, symbol: pd.Series) -> np.ndarray:
        """Stream code of each row of another frame; -1 where the stream has no curve."""
        if not len(self.pair):
            return np.full(len(venue), -1)
        venue_code = _codes_in(venue, self.venue_labels)
        symbol_code = _codes_in(symbol, self.symbol_labels)
        # A table over all (venue label, symbol label) pairs, plus one slot for keys not among the labels.
        n_pairs = len(self.venue_labels) * len(self.symbol_labels)
        stream_of_pair = np.full(n_pairs + 1, -1)
        stream_of_pair[self.pair] = np.arange(len(self.pair))
        known = (venue_code >= 0) & (symbol_code >= 0)
        return stream_of_pair[np.where(known, venue_code * len(self.symbol_labels) + symbol_code, n_pairs)]


def _key_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of a text key column (-1 where missing) numbered in label order, and the sorted labels.

    Categorical and pyarrow dictionary columns reuse their codes (renumbered by one gather when their
    categories are unsorted): hashing a million repeated strings costs more than the features.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, labels = column.array.codes, np.asarray(column.cat.categories, dtype=object)
    elif isinstance(column.dtype, pd.ArrowDtype) and pa.types.is_dictionary(column.dtype.pyarrow_dtype):
        codes, labels = dictionary_codes(column)
    else:
        codes, labels = pd.factorize(column)
        labels = np.asarray(labels, dtype=object)
    order = np.argsort(labels, kind="stable")
    if np.any(order[1:] < order[:-1]):
        rank = np.empty(len(order) + 1, dtype="int64")
        rank[order], rank[-1] = np.arange(len(order)), -1
        codes, labels = rank[codes], labels[order]
    return codes, labels


def _codes_in(column: pd.Series, labels: pd.Index) -> np.ndarray:
    """Position of each row's key in `labels` (-1 where missing or not there), looking up each distinct key once."""
    codes, column_labels = _key_codes(column)
    position = np.append(labels.get_indexer(column_labels), -1)
    return position[codes]


def _key_labels(column: pd.Series, rows: np.ndarray) -> np.ndarray:
    """The text keys of these rows (None where missing) as an object array, without converting the whole column."""
    codes, labels = _key_codes(column)
    return np.append(labels, None)[codes[rows]]


@dataclass(frozen=True)
class _StreamBases:
    """Each stream's base asset: its label, and a code in label order."""

    label: np.ndarray
    code: np.ndarray


@dataclass(frozen=True)
class _SettledPrints:
    """Settled prints of the curve streams, one per stream and funding_time, sorted by (stream, funding_time)."""

    stream: np.ndarray
    funding_ns: np.ndarray
    rate: np.ndarray
    interval_h: np.ndarray
    base: np.ndarray

    @classmethod
    def from_prints(cls, prints: pd.DataFrame, streams: _Streams) -> _SettledPrints:
        """Keeps the latest event of a window a venue re-sent (latest `ts` when present, else the last row)."""
        stream = streams.code(prints["venue"], prints["symbol"])
        settled = np.flatnonzero((prints["kind"] == "settled").to_numpy() & (stream >= 0))
        stream, funding_ns = stream[settled], time_ns(prints["funding_time"])[settled]
        sent_ns = None
        if "ts" in prints.columns:
            sent_ns = time_ns(prints["ts"])[settled]
            # NaT sorts last, as in sort_values.
            sent_ns[sent_ns == NAT_NS] = np.iinfo("int64").max
        order = _window_order(stream, funding_ns, sent_ns)
        stream, funding_ns = stream[order], funding_ns[order]
        last = ends_of_runs(stream, funding_ns)
        kept = settled[order[last]]
        return cls(
            stream=stream[last],
            funding_ns=funding_ns[last],
            rate=prints["rate"].to_numpy(dtype="float64")[kept],
            interval_h=prints["interval_h"].to_numpy(dtype="float64")[kept],
            base=_key_labels(prints["base"], kept),
        )

    def next_after(self, stream: np.ndarray, funding_ns: np.ndarray) -> dict:
        """TARGET_COLUMNS: the stream's first settled print strictly after each funding_time, if passed."""
        target_ns = np.full(len(stream), NAT_NS)
        target_rate, target_interval_h = np.full(len(stream), np.nan), np.full(len(stream), np.nan)
        if len(self.stream) and len(stream):
            # Ranks among the settled times (a row: of the last settled time at or before it) make (stream, time)
            # one sortable integer key; the distinct times are few, so they are hashed out, not sorted out.
            times = np.sort(pd.unique(self.funding_ns))
            settled_key = self.stream * len(times) + np.searchsorted(times, self.funding_ns)
            row_key = stream * len(times) + np.searchsorted(times, funding_ns, side="right") - 1
            position = np.searchsorted(settled_key, row_key, side="right")
            found = np.flatnonzero(position < len(settled_key))
            found = found[self.stream[position[found]] == stream[found]]
            target = position[found]
            target_ns[found] = self.funding_ns[target]
            target_rate[found], target_interval_h[found] = self.rate[target], self.interval_h[target]
        return {
            "target_time": utc_times(target_ns),
            "target_rate": target_rate,
            "target_interval_h": target_interval_h,
        }


def _latest_snapshots(curves: pd.DataFrame) -> tuple[_Streams, np.ndarray, np.ndarray, np.ndarray]:
    """One snapshot per window (the last taken): the streams, and each kept row's stream, position, funding ns.

    Kept rows are in (stream, funding_time) order, the order every per-stream feature needs.
    """
    streams, stream = _Streams.coded(curves["venue"], curves["symbol"])
    funding_ns = time_ns(curves["funding_time"])
    order = _window_order(stream, funding_ns, time_ns(curves["ts_snap"]))
    stream, funding_ns = stream[order], funding_ns[order]
    last = ends_of_runs(stream, funding_ns)
    return streams, stream[last], order[last], funding_ns[last]


def _window_order(stream: np.ndarray, funding_ns: np.ndarray, sent_ns: np.ndarray | None) -> np.ndarray:
    """Row order by (stream, funding_time), the rows of one window by `sent_ns` (ties and no `sent_ns`: row order).

    Ordering by send time is a third sort pass, so it is done only when some window has more than one row.
    """
    order = np.lexsort((funding_ns, stream))
    if sent_ns is not None and not ends_of_runs(stream[order], funding_ns[order]).all():
        order = np.lexsort((sent_ns, funding_ns, stream))
    return order


def _stream_bases(streams: _Streams, settled: _SettledPrints, bars: pd.DataFrame | None) -> _StreamBases:
    """Base asset of each stream, from its first settled print naming one (or its bars); unknown is an error."""
    label = np.full(len(streams), None, dtype=object)
    _fill_first(label, settled.stream, settled.base)
    if bars is not None and not bars.empty and pd.isna(label).any():
        _fill_first(label, streams.code(bars["venue"], bars["symbol"]), _key_labels(bars["base"], np.arange(len(bars))))
    if pd.isna(label).any():
        missing = np.flatnonzero(pd.isna(label))[:5]
        sample = [{"venue": streams.venue[i], "symbol": streams.symbol[i]} for i in missing]
        raise SchemaError(f"curve snapshots: no base asset known (no prints or bars) for streams {sample}")
    code, _ = pd.factorize(label, sort=True)
    return _StreamBases(label, code)


def _fill_first(label: np.ndarray, stream: np.ndarray, base: np.ndarray) -> None:
    """Set still-unknown labels from each stream's first row that names a base."""
    named = (stream >= 0) & ~pd.isna(base)
    first_stream, first_row = np.unique(stream[named], return_index=True)
    unknown = pd.isna(label[first_stream])
    label[first_stream[unknown]] = base[named][first_row[unknown]]


def _count_bits(mask: np.ndarray) -> np.ndarray:
    values = pd.to_numeric(pd.Series(mask), errors="raise").to_numpy()
    if not np.isfinite(values.astype("float64")).all() or (values < 0).any():
        raise SchemaError("curve snapshots: interpolated_mask must be a non-negative integer bitmask")
    return np.bitwise_count(values.astype("uint64")).astype("int64")


def _market_features(bars: pd.DataFrame | None, streams: _Streams, stream: np.ndarray, funding_ns: np.ndarray) -> dict:
    """MARKET_FEATURES and BARS_FLAG of each row, from its stream's last hourly bar closed by its funding_time."""
    out = {name: np.full(len(stream), np.nan) for name in MARKET_FEATURES}
    out[BARS_FLAG] = np.zeros(len(stream), dtype=bool)
    if bars is None or bars.empty or not len(stream):
        return out
    require_columns(bars, BAR_INPUT_COLUMNS, "hourly bars")
    open_ns = time_ns(bars["ts"])
    off_hour = open_ns % HOUR_NS != 0
    if off_hour.any():
        sample = bars.loc[off_hour, ["venue", "symbol", "ts"]].head(3).to_dict("records")
        raise SchemaError(f"hourly bars: ts must be the bar open on the hour, e.g. {sample}")
    bar_stream = streams.code(bars["venue"], bars["symbol"])
    has_bars = np.bincount(bar_stream[bar_stream >= 0], minlength=len(streams)) > 0
    out[BARS_FLAG] = has_bars[stream]
    if not has_bars.any():
        return out
    wide, first_hour = _hourly_wide(bars, bar_stream, open_ns // HOUR_NS, len(streams))
    last_open = funding_ns // HOUR_NS - 1 - first_hour
    usable = has_bars[stream] & (last_open >= 0) & (last_open < len(wide["close"]))
    for name, values in _market_features_at(wide, last_open[usable], stream[usable]).items():
        out[name][usable] = values
    return out


def _hourly_wide(bars: pd.DataFrame, stream: np.ndarray, hour: np.ndarray, n_streams: int) -> tuple[dict, int]:
    """Bar columns scattered into (hour x stream) arrays on one complete grid, and the grid's first hour.

    Missing bars are NaN; of a bar sent twice the last row counts. Rows of streams without curves
    (code -1) are left out. Duplicates are looked for with one scatter; the slower unbuffered
    `maximum.at` runs only when there are some.
    """
    rows = np.flatnonzero(stream >= 0)
    first_hour = int(hour[rows].min())
    n_hours = int(hour[rows].max()) - first_hour + 1
    cell = (hour[rows] - first_hour) * n_streams + stream[rows]
    position = np.arange(len(rows))
    last_row = np.full(n_hours * n_streams, -1)
    last_row[cell] = position
    if not np.array_equal(last_row[cell], position):
        np.maximum.at(last_row, cell, position)
        is_last = last_row[cell] == position
        rows, cell = rows[is_last], cell[is_last]
    wide = {}
    for name in _BAR_VALUE_COLUMNS:
        grid = np.full(n_hours * n_streams, np.nan)
        values = bars[name].to_numpy(dtype="float64", na_value=np.nan)
        grid[cell] = values if len(rows) == len(values) else values[rows]
        wide[name] = grid.reshape(n_hours, n_streams)
    return wide, first_hour


def _market_features_at(wide: dict[str, np.ndarray], hour: np.ndarray, column: np.ndarray) -> dict[str, np.ndarray]:
    """MARKET_FEATURES at grid cells (hour, stream column), each using bars up to and including that hour.

    Only the smoothed and windowed inputs are computed on the whole (hour x stream) grid, each in one
    pass over all streams; ratios are taken at the requested cells only.
    """
    close, high, low = wide["close"], wide["high"], wide["low"]
    n_streams = close.shape[1]

    cell = hour * n_streams + column

    def at(grid: np.ndarray, lag: int = 0) -> np.ndarray:
        if not lag:
            return grid.reshape(-1)[cell]
        inside = hour >= lag
        return np.where(inside, grid.reshape(-1)[np.where(inside, cell - lag * n_streams, 0)], np.nan)

    def observations_at(values: np.ndarray) -> np.ndarray:
        return at(np.cumsum(~np.isnan(values), axis=0, dtype=np.int32))

    with np.errstate(divide="ignore", invalid="ignore"):
        change = close - _shift(close, 1)
        # Gains and losses are observed at the same hours, so their EMAs share one weight, which cancels in RSI.
        # fmax reads a missing change as 0, which is how the decayed sums skip it.
        gain_sum, loss_sum = (
            at(_decayed_sum(np.fmax(change, 0.0), 1 / 14)),
            at(_decayed_sum(np.fmax(-change, 0.0), 1 / 14)),
        )
        rsi = np.where(observations_at(change) >= 14, 100.0 * gain_sum / (gain_sum + loss_sum), np.nan)
        observed_close = ~np.isnan(close)
        close_filled, close_weight = np.where(observed_close, close, 0.0), observed_close.astype("float64")
        fast = at(_decayed_sum(close_filled, 2 / 13)) / at(_decayed_sum(close_weight, 2 / 13))
        slow = at(_decayed_sum(close_filled, 2 / 49)) / at(_decayed_sum(close_weight, 2 / 49))
        ema_ratio = np.where(observations_at(close) >= 48, fast / slow, np.nan)
        typical = (high + low + close) / 3.0
        typical_change = typical - _shift(typical, 1)
        flow = wide["volume_usd"]
        known = ~np.isnan(typical_change)
        positive = np.where(known, np.where(typical_change > 0, flow, 0.0), np.nan)
        negative = np.where(known, np.where(typical_change < 0, flow, 0.0), np.nan)
        positive_sum = at(_rolling_sum(positive, 14, 14))
        negative_sum = at(_rolling_sum(negative, 14, 14))
        square_sum, square_count = _rolling_sum(np.log(close / _shift(close, 1)) ** 2, 24, 20, with_count=True)
        mean_square = at(square_sum / square_count)
        close_now, open_interest = at(close), at(wide["open_interest_usd"])
        features = {
            "ret_1h": close_now / at(close, 1) - 1.0,
            "ret_24h": close_now / at(close, 24) - 1.0,
            "realised_vol_24h": np.sqrt(mean_square * 24.0),
            "rsi_14": rsi,
            "mfi_14": 100.0 * positive_sum / (positive_sum + negative_sum),
            "ema_ratio_12_48": ema_ratio,
            "basis": close_now / at(wide["spot_close"]) - 1.0,
            "oi_change_24h": open_interest / at(wide["open_interest_usd"], 24) - 1.0,
        }
    return {name: np.where(np.isinf(values), np.nan, values) for name, values in features.items()}


def _decayed_sum(values: np.ndarray, alpha: float) -> np.ndarray:
    """Sum of each column's values up to each row, weighted (1 - alpha) ** age; pass missing values as 0.

    `DataFrame.ewm(alpha=alpha, min_periods=m).mean()` (adjusted, NaN kept in place) is this sum of the
    values over this sum of the observation indicator, where m values have been observed; `lfilter`
    runs the recursion down all columns in one call.
    """
    return lfilter([1.0], [1.0, alpha - 1.0], values, axis=0)


def _rolling_sum(
    values: np.ndarray, window: int, min_periods: int, with_count: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """`DataFrame.rolling(window, min_periods).sum()` of every column in one pass (and the observation counts).

    The window sum is built from sums over power-of-two spans (a few whole-grid additions), so every
    value is a direct sum of its window rather than a running total's difference. NaN where fewer
    than `min_periods` of the window's rows are observed.
    """
    observed = ~np.isnan(values)
    span = np.where(observed, values, 0.0)
    # Spans are doubled into a second buffer and the two swapped: grid-sized temporaries cost page faults.
    spare, total = np.empty_like(span), np.zeros_like(span)
    covered, span_rows, remaining = 0, 1, window
    while remaining:
        if remaining & 1:
            total[covered:] += span[: max(len(span) - covered, 0)]
            covered += span_rows
        remaining >>= 1
        if remaining:
            spare[:span_rows] = span[:span_rows]
            np.add(span[span_rows:], span[: max(len(span) - span_rows, 0)], out=spare[span_rows:])
            span, spare = spare, span
            span_rows *= 2
    seen = np.cumsum(observed, axis=0, dtype=np.int32)
    count = seen.copy()
    count[window:] -= seen[: max(len(seen) - window, 0)]
    total[count < min_periods] = np.nan
    return (total, count) if with_count else total


def _shift(values: np.ndarray, hours: int) -> np.ndarray:
    """`DataFrame.shift(hours)` of an (hour x stream) array: the value `hours` rows earlier, NaN before the grid."""
    out = np.full_like(values, np.nan)
    out[hours:] = values[: max(len(values) - hours, 0)]
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
