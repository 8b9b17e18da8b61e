"""The reference notebooks' curve builder: a Python loop over prints and a pandas frame per snapshot.

Same rules as fund_pipeline.domain.curve (roll / replace / late, skipped windows interpolated in
annualised yield, snapshot on roll), written the way the research notebooks did it, so the
benchmarks can time the library against it on the same prints and compare the snapshots.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from fund_pipeline.domain.curve import CURVE_COLUMNS, N_BUCKETS, snapshots_frame
from fund_pipeline.domain.time import HOURS_PER_YEAR, NS_PER_HOUR


class PandasCurveBuilder:
    """One venue × symbol: plain lists for the ring, a DataFrame built for every snapshot."""

    def __init__(self, venue: str, symbol: str):
        self.venue = venue
        self.symbol = symbol
        self.funding_time: int | None = None
        self.rates = [math.nan] * N_BUCKETS
        self.intervals = [math.nan] * N_BUCKETS
        self.interpolated = [False] * N_BUCKETS
        self.n_filled = 0

    def update(self, funding_time: int, rate: float, interval_h: float, ts: int) -> tuple | None:
        if self.funding_time is not None and funding_time < self.funding_time:
            return None
        if self.funding_time is not None and funding_time == self.funding_time:
            self.rates[0] = rate
            self.intervals[0] = interval_h
            return None
        skipped = (
            0
            if self.funding_time is None
            else max(round((funding_time - self.funding_time) / (interval_h * NS_PER_HOUR)) - 1, 0)
        )
        kept = min(skipped, N_BUCKETS - 1)
        filled = []
        if kept:
            ann_old = (1.0 + self.rates[0]) ** (HOURS_PER_YEAR / self.intervals[0]) - 1.0
            ann_new = (1.0 + rate) ** (HOURS_PER_YEAR / interval_h) - 1.0
            for position in range(skipped, skipped - kept, -1):
                ann = ann_old + (ann_new - ann_old) * (position / (skipped + 1.0))
                filled.append((1.0 + ann) ** (interval_h / HOURS_PER_YEAR) - 1.0)
        keep_old = N_BUCKETS - 1 - kept
        self.rates = [rate, *filled, *self.rates[:keep_old]]
        self.intervals = [interval_h, *([interval_h] * kept), *self.intervals[:keep_old]]
        self.interpolated = [False, *([True] * kept), *self.interpolated[:keep_old]]
        self.n_filled = min(N_BUCKETS, self.n_filled + 1 + kept)
        self.funding_time = funding_time
        return self.snapshot(ts)

    def snapshot(self, ts: int) -> tuple:
        curve = pd.DataFrame({"rate": self.rates, "interval_h": self.intervals, "interpolated": self.interpolated})
        curve["ann"] = (1.0 + curve["rate"]) ** (HOURS_PER_YEAR / curve["interval_h"]) - 1.0
        ann = curve["ann"]
        mask = int((curve["interpolated"].astype("int64") * (2 ** np.arange(N_BUCKETS))).sum())
        return (
            self.venue,
            self.symbol,
            ts,
            self.funding_time,
            self.intervals[0],
            *curve["rate"].tolist(),
            *ann.tolist(),
            ann.iloc[0],
            ann.iloc[7] - ann.iloc[0],
            ann.iloc[2] + ann.iloc[5] - 2.0 * ann.iloc[3],
            self.n_filled,
            mask,
        )


def snapshots_per_print(prints: pd.DataFrame, make_builder) -> list:
    """Feed every print, row by row in arrival order, to its stream's builder; the snapshots they emit."""
    builders: dict[tuple[str, str], Any] = {}
    rows: list = []
    for venue, symbol, funding_time, ts, rate, interval_h in zip(
        prints["venue"].tolist(),
        prints["symbol"].tolist(),
        prints["funding_time"].array.asi8.tolist(),
        prints["ts"].array.asi8.tolist(),
        prints["rate"].tolist(),
        prints["interval_h"].tolist(),
        strict=True,
    ):
        builder = builders.get((venue, symbol))
        if builder is None:
            builder = builders[(venue, symbol)] = make_builder(venue, symbol)
        row = builder.update(funding_time, rate, interval_h, ts)
        if row is not None:
            rows.append(row)
    return rows


def build_curves_per_print(prints: pd.DataFrame) -> pd.DataFrame:
    """The notebooks' way: a pandas-backed builder per stream, fed print by print; sorted like the library's."""
    frame = snapshots_frame(snapshots_per_print(prints, PandasCurveBuilder))
    return frame.sort_values(["venue", "symbol"], kind="stable").reset_index(drop=True)[CURVE_COLUMNS]


def max_abs_difference(left: pd.DataFrame, right: pd.DataFrame) -> float:
    """Largest absolute difference over the numeric curve columns (NaN in both places counts as equal);
    infinity when the frames differ in shape, keys or NaN pattern."""
    if left.shape != right.shape or not left[["venue", "symbol", "ts_snap", "funding_time"]].equals(
        right[["venue", "symbol", "ts_snap", "funding_time"]]
    ):
        return math.inf
    numeric = [c for c in CURVE_COLUMNS if c not in ("venue", "symbol", "ts_snap", "funding_time")]
    a = left[numeric].to_numpy(dtype=np.float64)
    b = right[numeric].to_numpy(dtype=np.float64)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return math.inf
    diff = np.abs(np.where(np.isnan(a), 0.0, a) - np.where(np.isnan(b), 0.0, b))
    return float(diff.max()) if diff.size else 0.0
