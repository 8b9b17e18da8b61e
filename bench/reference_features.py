"""The feature store computed the notebook way: one Python loop over every curve row, in time order.

Each row's features come from the history available at its funding_time, kept incrementally: per
stream the last 21 rates and 72 h of 8h rates (mean, shock timer), per base each stream's latest
known rates (cross-venue dispersion), and a pooled buffer of the last 3 days of curves from which
the PCA is refit whenever a row opens a new day (same schedule as the library: the fit at day R uses
rows in [R - 3 d, R)). Market features come from a per-stream loop over the hourly bars. Values are
compared row by row with `build_feature_store`'s.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pandas as pd

from fund_pipeline.domain.factors import ZERO_RATE_TOL
from fund_pipeline.domain.time import NS_PER_DAY, NS_PER_HOUR

SHOCK_WINDOW_NS = 72 * NS_PER_HOUR
SHOCK_MAX_H = 72.0
PCA_WINDOW_NS = 3 * NS_PER_DAY
PCA_MIN_ROWS = 24
# Rows a stream keeps for dispersion: the latest known rate of an hour is among its last few windows.
KNOWN_RATES_KEPT = 4
MARKET = ["ret_1h", "ret_24h", "realised_vol_24h", "rsi_14", "mfi_14", "ema_ratio_12_48", "basis", "oi_change_24h"]
REFERENCE_COLUMNS = [
    "rate",
    "rate_8h",
    "rate_mean_21",
    "level",
    "slope",
    "curvature",
    *[f"decay_{k + 1}_{k}" for k in range(7)],
    "pc1",
    "pc2",
    "time_since_shock_h",
    "dispersion_8h",
    "dispersion_n_venues",
    "n_interpolated",
    "hour_of_day",
    *MARKET,
    "target_rate",
    "target_interval_h",
]
# Scores and dispersions cross zero: their differences are measured against the column's scale.
SCALED_COLUMNS = ["pc1", "pc2", "dispersion_8h"]


class _Ewm:
    """pandas ewm(adjust=True).mean() with min_periods, one observation at a time."""

    def __init__(self, alpha: float, min_periods: int):
        self.decay = 1.0 - alpha
        self.min_periods = min_periods
        self.numerator = self.denominator = 0.0
        self.count = 0

    def add(self, x: float) -> float:
        if math.isnan(x):
            if self.count:
                self.numerator *= self.decay
                self.denominator *= self.decay
        else:
            self.numerator = x + self.decay * self.numerator
            self.denominator = 1.0 + self.decay * self.denominator
            self.count += 1
        return self.numerator / self.denominator if self.count >= self.min_periods else math.nan


class _CurvePCA:
    """Pooled PCA of annualised curves, refit on the first row of each day from the past 3 days."""

    def __init__(self):
        self.history: deque = deque()
        self.day = None
        self.mean = self.loadings = None
        self.previous = None

    def scores(self, t: int, curve: list[float]) -> tuple[float, float]:
        day = t // NS_PER_DAY * NS_PER_DAY
        if day != self.day:
            self.day = day
            self._refit(day)
        if self.loadings is None or any(math.isnan(v) for v in curve):
            return math.nan, math.nan
        centred = [v - m for v, m in zip(curve, self.mean, strict=True)]
        return tuple(sum(c * w for c, w in zip(centred, component, strict=True)) for component in self.loadings)

    def add(self, t: int, curve: list[float]) -> None:
        if not any(math.isnan(v) for v in curve):
            self.history.append((t, curve))

    def _refit(self, day: int) -> None:
        while self.history and self.history[0][0] < day - PCA_WINDOW_NS:
            self.history.popleft()
        self.mean = self.loadings = None
        if len(self.history) < PCA_MIN_ROWS:
            return
        matrix = np.array([curve for _, curve in self.history])
        mean = matrix.mean(axis=0)
        # The covariance written as the library writes it: when a window's curves span fewer than two
        # directions, the second component is rounding noise, and only the same arithmetic on the same
        # rows (both in time, then stream order) picks the same one.
        centred = matrix - mean
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / (len(matrix) - 1))
        loadings = eigenvectors[:, ::-1][:, :2].T
        pivot = np.abs(loadings).argmax(axis=1)
        loadings = loadings * np.where(loadings[[0, 1], pivot] < 0, -1.0, 1.0)[:, None]
        if self.previous is not None:
            loadings = loadings * np.where((loadings * self.previous).sum(axis=1) < 0, -1.0, 1.0)[:, None]
        self.previous = loadings
        self.mean, self.loadings = mean.tolist(), loadings.tolist()


def _ratio(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b) or b == 0.0:
        return math.nan
    value = a / b - 1.0
    return value if math.isfinite(value) else math.nan


def _market_rows(bars: list[tuple], first_hour: int, n_hours: int) -> list[list[float]]:
    """Market features per hour of the common grid for one stream's bars (ts_ns, high, low, close, volume, spot, oi)."""
    by_hour = {(ts - first_hour) // NS_PER_HOUR: bar for ts, *bar in bars}
    nan = math.nan
    close_hist: list[float] = []
    oi_hist: list[float] = []
    logret_sq: deque[float] = deque(maxlen=24)
    flows: deque[tuple[float, float]] = deque(maxlen=14)
    gain, loss = _Ewm(1 / 14, 14), _Ewm(1 / 14, 14)
    fast, slow = _Ewm(2 / 13, 12), _Ewm(2 / 49, 48)
    previous_typical = nan
    out = []
    for hour in range(n_hours):
        high, low, close, volume, spot, oi = by_hour.get(hour, (nan,) * 6)
        previous = close_hist[-1] if close_hist else nan
        change = close - previous
        logret_sq.append(math.log(close / previous) ** 2 if previous > 0 and close > 0 else nan)
        valid = [v for v in logret_sq if not math.isnan(v)]
        vol = math.sqrt(sum(valid) / len(valid) * 24.0) if len(valid) >= 20 else nan
        g = gain.add(max(change, 0.0) if not math.isnan(change) else nan)
        lo = loss.add(max(-change, 0.0) if not math.isnan(change) else nan)
        typical = (high + low + close) / 3.0
        typical_change = typical - previous_typical
        if math.isnan(typical_change):
            flows.append((nan, nan))
        else:
            flows.append((volume if typical_change > 0 else 0.0, volume if typical_change < 0 else 0.0))
        previous_typical = typical
        valid_flows = [f for f in flows if not math.isnan(f[0])]
        if len(valid_flows) >= 14:
            positive, negative = sum(f[0] for f in valid_flows), sum(f[1] for f in valid_flows)
            mfi = 100.0 * positive / (positive + negative) if positive + negative else nan
        else:
            mfi = nan
        ema_fast, ema_slow = fast.add(close), slow.add(close)
        close_hist.append(close)
        oi_hist.append(oi)
        out.append(
            [
                _ratio(close, previous),
                _ratio(close, close_hist[-25]) if len(close_hist) > 24 else nan,
                vol,
                100.0 * g / (g + lo) if g + lo else nan,
                mfi,
                ema_fast / ema_slow if ema_slow else nan,
                _ratio(close, spot),
                _ratio(oi, oi_hist[-25]) if len(oi_hist) > 24 else nan,
            ]
        )
    return out


def _dispersion(known_rates: dict, hour_ns: int) -> tuple[float, int]:
    """Std (ddof=1) across venues of each venue's mean latest known 8h rate at this hour, and the venue count."""
    by_venue: dict[str, list[float]] = {}
    for (venue, _), windows in known_rates.items():
        for known_ns, until_ns, rate_8h in reversed(windows):
            if known_ns <= hour_ns < until_ns:
                by_venue.setdefault(venue, []).append(rate_8h)
                break
    means = [sum(rates) / len(rates) for rates in by_venue.values()]
    if len(means) < 2:
        return math.nan, len(means)
    centre = sum(means) / len(means)
    return math.sqrt(sum((m - centre) ** 2 for m in means) / (len(means) - 1)), len(means)


def feature_rows_by_loop(curves: pd.DataFrame, prints: pd.DataFrame, bars: pd.DataFrame, start, end) -> pd.DataFrame:
    """One row per (venue, symbol, funding_time) in [start, end) with REFERENCE_COLUMNS, from Python loops."""
    start_ns, end_ns = pd.Timestamp(start).value, pd.Timestamp(end).value
    settled = prints[prints["kind"] == "settled"].sort_values(["venue", "symbol", "funding_time"], kind="stable")
    settled = settled.drop_duplicates(["venue", "symbol", "funding_time"], keep="last")
    targets: dict[tuple, list] = {}
    bases: dict[tuple, str] = {}
    for venue, symbol, base, ft, rate, ih in zip(
        settled["venue"],
        settled["symbol"],
        settled["base"],
        settled["funding_time"].array.asi8,
        settled["rate"],
        settled["interval_h"],
        strict=True,
    ):
        targets.setdefault((venue, symbol), []).append((int(ft), float(rate), float(ih)))
        bases.setdefault((venue, symbol), base)

    bar_ts = bars["ts"].array.asi8
    first_hour, n_hours = int(bar_ts.min()), int((bar_ts.max() - bar_ts.min()) // NS_PER_HOUR) + 1
    bar_lists: dict[tuple, list] = {}
    for row in zip(
        bars["venue"],
        bars["symbol"],
        bar_ts.tolist(),
        bars["high"],
        bars["low"],
        bars["close"],
        bars["volume_usd"],
        bars["spot_close"],
        bars["open_interest_usd"],
        strict=True,
    ):
        bar_lists.setdefault(row[:2], []).append(row[2:])
    for venue, symbol, base in zip(bars["venue"], bars["symbol"], bars["base"], strict=True):
        bases.setdefault((venue, symbol), base)
    market = {key: _market_rows(stream_bars, first_hour, n_hours) for key, stream_bars in bar_lists.items()}

    curve_columns = [
        "venue",
        "symbol",
        "funding_time",
        "interval_h",
        "level",
        "slope",
        "curvature",
        "interpolated_mask",
        *[f"b{k}" for k in range(8)],
        *[f"b{k}_ann" for k in range(8)],
    ]
    ordered = curves.sort_values(["venue", "symbol", "funding_time", "ts_snap"], kind="stable")
    ordered = ordered.drop_duplicates(["venue", "symbol", "funding_time"], keep="last")
    ordered = ordered.sort_values("funding_time", kind="stable")[curve_columns]

    pca = _CurvePCA()
    past_21: dict[tuple, deque] = {}
    shock_history: dict[tuple, deque] = {}
    last_shock: dict[tuple, int] = {}
    first_time: dict[tuple, int] = {}
    target_index: dict[tuple, int] = {}
    known_rates: dict[str, dict[tuple, deque]] = {}
    out = []
    rows = list(ordered.itertuples(index=False))
    lo = 0
    while lo < len(rows):
        t = rows[lo].funding_time.value
        hi = lo
        while hi < len(rows) and rows[hi].funding_time.value == t:
            hi += 1
        # Every rate settled at t is known at t: make them all visible before any row at t reads them.
        for row in rows[lo:hi]:
            rate, key = float(row.b0), (row.venue, row.symbol)
            if math.isfinite(rate):
                until_ns = t + round(row.interval_h * NS_PER_HOUR)
                windows = known_rates.setdefault(bases[key], {}).setdefault(key, deque(maxlen=KNOWN_RATES_KEPT))
                windows.append((-(-t // NS_PER_HOUR) * NS_PER_HOUR, until_ns, rate * 8.0 / row.interval_h))
        for row in rows[lo:hi]:
            key = (row.venue, row.symbol)
            rate = float(row.b0)
            x8 = rate * 8.0 / row.interval_h
            curve = [float(getattr(row, f"b{k}_ann")) for k in range(8)]
            pcs = pca.scores(t, curve)
            pca.add(t, curve)
            recent = past_21.setdefault(key, deque(maxlen=21))
            recent.append(rate)
            history = shock_history.setdefault(key, deque())
            first_time.setdefault(key, t)
            while history and history[0][0] < t - SHOCK_WINDOW_NS:
                history.popleft()
            if len(history) >= 3:
                values = [v for _, v in history]
                mean = sum(values) / len(values)
                std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                move = abs(x8 - mean)
                if move > 3.0 * std and move > ZERO_RATE_TOL:
                    last_shock[key] = t
            history.append((t, x8))
            if not start_ns <= t < end_ns:
                continue
            since = min((t - last_shock[key]) / NS_PER_HOUR, SHOCK_MAX_H) if key in last_shock else SHOCK_MAX_H
            if t - first_time[key] < SHOCK_WINDOW_NS + SHOCK_MAX_H * NS_PER_HOUR:
                since = math.nan
            dispersion, n_venues = _dispersion(known_rates.get(bases[key], {}), t // NS_PER_HOUR * NS_PER_HOUR)
            buckets = [float(getattr(row, f"b{k}")) for k in range(8)]
            decays = [buckets[k + 1] / buckets[k] if abs(buckets[k]) > ZERO_RATE_TOL else math.nan for k in range(7)]
            hour = (t - NS_PER_HOUR - first_hour) // NS_PER_HOUR
            stream_market = market.get(key)
            features = (
                stream_market[hour] if stream_market is not None and 0 <= hour < n_hours else [math.nan] * len(MARKET)
            )
            stream_targets = targets.get(key, [])
            index = target_index.get(key, 0)
            while index < len(stream_targets) and stream_targets[index][0] <= t:
                index += 1
            target_index[key] = index
            target = stream_targets[index][1:] if index < len(stream_targets) else (math.nan, math.nan)
            out.append(
                [
                    row.venue,
                    row.symbol,
                    t,
                    rate,
                    x8,
                    sum(recent) / 21 if len(recent) == 21 else math.nan,
                    float(row.level),
                    float(row.slope),
                    float(row.curvature),
                    *decays,
                    *pcs,
                    since,
                    dispersion,
                    float(n_venues),
                    bin(int(row.interpolated_mask)).count("1"),
                    row.funding_time.hour,
                    *features,
                    *target,
                ]
            )
        lo = hi
    return pd.DataFrame(out, columns=["venue", "symbol", "funding_ns", *REFERENCE_COLUMNS])


def compare_features(library: pd.DataFrame, reference: pd.DataFrame, rtol: float = 1e-7) -> dict:
    """Row-aligned comparison of REFERENCE_COLUMNS: rows matched, worst relative difference, NaN mismatches.

    Differences are relative to the reference value, or for SCALED_COLUMNS to the larger of it and
    the column's median magnitude (a PCA score near zero carries the rounding of the whole curve).
    """
    left = library.assign(funding_ns=library["funding_time"].array.asi8)[
        ["venue", "symbol", "funding_ns", *REFERENCE_COLUMNS]
    ]
    merged = left.merge(
        reference, on=["venue", "symbol", "funding_ns"], how="outer", suffixes=("_lib", "_ref"), indicator=True
    )
    unmatched = int((merged["_merge"] != "both").sum())
    worst, worst_column, nan_mismatch = 0.0, None, 0
    for column in REFERENCE_COLUMNS:
        a = merged[f"{column}_lib"].to_numpy(dtype=np.float64)
        b = merged[f"{column}_ref"].to_numpy(dtype=np.float64)
        nan_mismatch += int((np.isnan(a) != np.isnan(b)).sum())
        both = ~np.isnan(a) & ~np.isnan(b)
        scale = np.abs(b[both])
        if column in SCALED_COLUMNS and both.any():
            scale = np.maximum(scale, np.median(scale))
        relative = np.abs(a[both] - b[both]) / np.maximum(scale, 1e-12)
        if relative.size and relative.max() > worst:
            worst, worst_column = float(relative.max()), column
    return {
        "rows": len(merged),
        "unmatched": unmatched,
        "nan_mismatch": nan_mismatch,
        "worst_rel": worst,
        "worst_column": worst_column,
        "agree": unmatched == 0 and nan_mismatch == 0 and worst <= rtol,
    }
