"""The feature store computed the notebook way: Python loops over bars and rows, one stream at a time.

Covers the per-stream columns of fund_pipeline.domain.features (funding, curve, shock, market
features and next-window targets) with the same definitions, so values can be compared row by row.
The pooled cross-stream columns (pc1, pc2 from the rolling PCA; cross-venue dispersion) are not
re-implemented: the reference does less work than the library, which makes the ratio conservative.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pandas as pd

from fund_pipeline.domain.factors import ZERO_RATE_TOL

HOUR_NS = 3_600_000_000_000
SHOCK_WINDOW_NS = 72 * HOUR_NS
SHOCK_MAX_H = 72.0
REFERENCE_COLUMNS = [
    "rate", "rate_8h", "rate_mean_21", "level", "slope", "curvature",
    *[f"decay_{k + 1}_{k}" for k in range(7)],
    "time_since_shock_h", "n_interpolated", "hour_of_day",
    "ret_1h", "ret_24h", "realised_vol_24h", "rsi_14", "mfi_14", "ema_ratio_12_48", "basis", "oi_change_24h",
    "target_rate", "target_interval_h",
]
MARKET = ["ret_1h", "ret_24h", "realised_vol_24h", "rsi_14", "mfi_14", "ema_ratio_12_48", "basis", "oi_change_24h"]


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


def _ratio(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b) or b == 0.0:
        return math.nan
    value = a / b - 1.0
    return value if math.isfinite(value) else math.nan


def _market_rows(bars: list[tuple], first_hour: int, n_hours: int) -> list[list[float]]:
    """Market features per hour of the common grid for one stream's bars (ts_ns, high, low, close, volume, spot, oi)."""
    by_hour = {(ts - first_hour) // HOUR_NS: bar for ts, *bar in bars}
    nan = math.nan
    close_hist, oi_hist, logret_sq, flows = [], [], deque(maxlen=24), deque(maxlen=14)
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
        out.append([
            _ratio(close, previous),
            _ratio(close, close_hist[-25]) if len(close_hist) > 24 else nan,
            vol,
            100.0 * g / (g + lo) if g + lo else nan,
            mfi,
            ema_fast / ema_slow if ema_slow else nan,
            _ratio(close, spot),
            _ratio(oi, oi_hist[-25]) if len(oi_hist) > 24 else nan,
        ])
    return out


def feature_rows_by_loop(curves: pd.DataFrame, prints: pd.DataFrame, bars: pd.DataFrame, start, end) -> pd.DataFrame:
    """One row per (venue, symbol, funding_time) in [start, end) with REFERENCE_COLUMNS, from Python loops."""
    start_ns, end_ns = pd.Timestamp(start).value, pd.Timestamp(end).value
    settled = prints[prints["kind"] == "settled"].sort_values(["venue", "symbol", "funding_time"], kind="stable")
    settled = settled.drop_duplicates(["venue", "symbol", "funding_time"], keep="last")
    targets: dict[tuple, list] = {}
    for venue, symbol, ft, rate, ih in zip(settled["venue"], settled["symbol"], settled["funding_time"].array.asi8, settled["rate"], settled["interval_h"]):
        targets.setdefault((venue, symbol), []).append((int(ft), float(rate), float(ih)))

    bar_ts = bars["ts"].array.asi8
    first_hour, n_hours = int(bar_ts.min()), int((bar_ts.max() - bar_ts.min()) // HOUR_NS) + 1
    bar_lists: dict[tuple, list] = {}
    for row in zip(bars["venue"], bars["symbol"], bar_ts.tolist(), bars["high"], bars["low"], bars["close"], bars["volume_usd"], bars["spot_close"], bars["open_interest_usd"]):
        bar_lists.setdefault(row[:2], []).append(row[2:])

    curve_columns = ["venue", "symbol", "funding_time", "interval_h", "level", "slope", "curvature", "interpolated_mask", *[f"b{k}" for k in range(8)]]
    ordered = curves.sort_values(["venue", "symbol", "funding_time", "ts_snap"], kind="stable")
    ordered = ordered.drop_duplicates(["venue", "symbol", "funding_time"], keep="last")
    out = []
    stream_rows: dict[tuple, list] = {}
    for row in ordered[curve_columns].itertuples(index=False):
        stream_rows.setdefault((row.venue, row.symbol), []).append(row)
    for key, rows in stream_rows.items():
        market = _market_rows(bar_lists[key], first_hour, n_hours) if key in bar_lists else None
        stream_targets = targets.get(key, [])
        first_time = rows[0].funding_time.value
        past_21: deque = deque(maxlen=21)
        history: deque = deque()
        last_shock = None
        target_index = 0
        for row in rows:
            t = row.funding_time.value
            rate = float(row.b0)
            x8 = rate * 8.0 / row.interval_h
            past_21.append(rate)
            while history and history[0][0] < t - SHOCK_WINDOW_NS:
                history.popleft()
            if len(history) >= 3:
                values = [v for _, v in history]
                mean = sum(values) / len(values)
                std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                move = abs(x8 - mean)
                if move > 3.0 * std and move > ZERO_RATE_TOL:
                    last_shock = t
            history.append((t, x8))
            if not start_ns <= t < end_ns:
                continue
            since = SHOCK_MAX_H if last_shock is None else min((t - last_shock) / HOUR_NS, SHOCK_MAX_H)
            if t - first_time < SHOCK_WINDOW_NS + SHOCK_MAX_H * HOUR_NS:
                since = math.nan
            buckets = [float(getattr(row, f"b{k}")) for k in range(8)]
            decays = [buckets[k + 1] / buckets[k] if abs(buckets[k]) > ZERO_RATE_TOL else math.nan for k in range(7)]
            hour = (t - HOUR_NS - first_hour) // HOUR_NS
            features = market[hour] if market is not None and 0 <= hour < n_hours else [math.nan] * len(MARKET)
            while target_index < len(stream_targets) and stream_targets[target_index][0] <= t:
                target_index += 1
            target = stream_targets[target_index][1:] if target_index < len(stream_targets) else (math.nan, math.nan)
            out.append([
                row.venue, row.symbol, t,
                rate, x8, sum(past_21) / 21 if len(past_21) == 21 else math.nan,
                float(row.level), float(row.slope), float(row.curvature), *decays,
                since, bin(int(row.interpolated_mask)).count("1"), row.funding_time.hour,
                *features, *target,
            ])
    frame = pd.DataFrame(out, columns=["venue", "symbol", "funding_ns", *REFERENCE_COLUMNS])
    return frame


def compare_features(library: pd.DataFrame, reference: pd.DataFrame, rtol: float = 1e-7) -> dict:
    """Row-aligned comparison of REFERENCE_COLUMNS: rows matched, worst relative difference, NaN mismatches."""
    left = library.assign(funding_ns=library["funding_time"].array.asi8)[["venue", "symbol", "funding_ns", *REFERENCE_COLUMNS]]
    merged = left.merge(reference, on=["venue", "symbol", "funding_ns"], how="outer", suffixes=("_lib", "_ref"), indicator=True)
    unmatched = int((merged["_merge"] != "both").sum())
    worst, nan_mismatch = 0.0, 0
    for column in REFERENCE_COLUMNS:
        a = merged[f"{column}_lib"].to_numpy(dtype=np.float64)
        b = merged[f"{column}_ref"].to_numpy(dtype=np.float64)
        nan_mismatch += int((np.isnan(a) != np.isnan(b)).sum())
        both = ~np.isnan(a) & ~np.isnan(b)
        relative = np.abs(a[both] - b[both]) / np.maximum(np.abs(b[both]), 1e-12)
        worst = max(worst, float(relative.max()) if relative.size else 0.0)
    return {"rows": len(merged), "unmatched": unmatched, "nan_mismatch": nan_mismatch, "worst_rel": worst, "agree": unmatched == 0 and nan_mismatch == 0 and worst <= rtol}
