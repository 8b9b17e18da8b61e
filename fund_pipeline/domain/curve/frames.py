"""Snapshot frames: one place that fixes the curve table's dtypes, and the missing-bucket share."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fund_pipeline.domain.curve.rules import skipped_windows
from fund_pipeline.domain.prints import require_columns
from fund_pipeline.domain.records import ANN_COLUMNS, CURVE_COLUMNS, N_BUCKETS, RATE_COLUMNS, CurveSnapshot
from fund_pipeline.domain.time import time_ns


def curve_frame(columns: dict) -> pd.DataFrame:
    """One place that fixes the output dtypes, so every path returns the same frame."""
    frame = pd.DataFrame(
        {
            "venue": np.asarray(columns["venue"], dtype=object),
            "symbol": np.asarray(columns["symbol"], dtype=object),
            "ts_snap": pd.to_datetime(np.asarray(columns["ts_snap"], dtype=np.int64), utc=True),
            "funding_time": pd.to_datetime(np.asarray(columns["funding_time"], dtype=np.int64), utc=True),
            **{
                c: np.asarray(columns[c], dtype=np.float64)
                for c in ["interval_h", *RATE_COLUMNS, *ANN_COLUMNS, "level", "slope", "curvature"]
            },
            "n_filled": np.asarray(columns["n_filled"], dtype=np.int64),
            "interpolated_mask": np.asarray(columns["interpolated_mask"], dtype=np.int64),
        }
    )
    return frame[CURVE_COLUMNS]


def snapshots_frame(rows: list[CurveSnapshot]) -> pd.DataFrame:
    """Snapshots from builders as a CURVE_COLUMNS frame with UTC timestamps."""
    transposed: list[tuple] = list(zip(*rows, strict=True)) if rows else [() for _ in CURVE_COLUMNS]
    return curve_frame(dict(zip(CURVE_COLUMNS, transposed, strict=True)))


# The snapshot columns `missing_bucket_pct` reads.
MISSING_BUCKET_INPUTS = ["venue", "symbol", "funding_time", "interval_h", "interpolated_mask"]


def missing_bucket_pct(curves: pd.DataFrame) -> float:
    """Share (%) of funding windows on the curves' timeline that had no print and were interpolated.

    Each real window is counted once (its first snapshot). The windows skipped before it come from
    the funding-time jump to the previous window of the stream; for a stream's first window in the
    frame (its predecessor is outside the frame) from the run of interpolated buckets 1, 2, ….
    """
    require_columns(curves, MISSING_BUCKET_INPUTS, "missing_bucket_pct")
    if curves.empty:
        return 0.0
    windows = curves.drop_duplicates(["venue", "symbol", "funding_time"], keep="first").sort_values(
        ["venue", "symbol", "funding_time"], kind="stable"
    )
    funding_time = time_ns(windows["funding_time"], copy=False)
    mask = windows["interpolated_mask"].to_numpy(dtype=np.int64)
    run_from_bucket_1 = np.zeros(mask.size, dtype=np.int64)
    still_running = np.ones(mask.size, dtype=bool)
    for k in range(1, N_BUCKETS):
        still_running &= ((mask >> k) & 1) == 1
        run_from_bucket_1 += still_running
    same_stream = np.zeros(mask.size, dtype=bool)
    same_stream[1:] = (windows["venue"].to_numpy()[1:] == windows["venue"].to_numpy()[:-1]) & (
        windows["symbol"].to_numpy()[1:] == windows["symbol"].to_numpy()[:-1]
    )
    delta = np.zeros(mask.size, dtype=np.int64)
    delta[1:] = np.diff(funding_time)
    skipped = np.where(
        same_stream, skipped_windows(delta, windows["interval_h"].to_numpy(dtype=np.float64)), run_from_bucket_1
    )
    total_skipped = int(skipped.sum())
    return 100.0 * total_skipped / (total_skipped + len(windows))
