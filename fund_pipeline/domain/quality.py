"""Data-quality rules behind the asset checks: pure functions returning what failed, and their limits."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from fund_pipeline.domain.time import NS_PER_HOUR

# Interpolated (missing) bucket-0 windows allowed over the trailing window, per venue (history and live).
MAX_MISSING_BUCKET_PCT = 2.0
MISSING_BUCKET_WINDOW = pd.Timedelta(days=30)
# A live stream whose newest snapshot is older than its newest landed print by more than this is stale:
# the collector's builder stopped emitting while prints kept arriving.
MAX_SNAPSHOT_LAG = pd.Timedelta(minutes=30)


def off_grid_prints(prints: pd.DataFrame, settlement_phase_h: Mapping[str, float]) -> pd.DataFrame:
    """Settled prints whose funding_time is off the venue grid: multiples of the interval from the
    venue's first daily settlement (00:00 UTC, or its phase in `settlement_phase_h`, a venue fact)."""
    if prints.empty:
        return prints
    phase_h = prints["venue"].map(dict(settlement_phase_h)).fillna(0.0).to_numpy(dtype="float64")
    ns = prints["funding_time"].astype("int64").to_numpy() - np.rint(phase_h * NS_PER_HOUR).astype("int64")
    step = np.rint(prints["interval_h"].to_numpy(dtype="float64") * NS_PER_HOUR).astype("int64")
    step = np.where(step > 0, step, 1)
    return prints.loc[(ns % step) != 0]


def snapshot_lag(snapshots: pd.DataFrame, prints: pd.DataFrame) -> pd.DataFrame:
    """Per venue × symbol: newest landed print time minus newest snapshot time (NaT snapshot: never)."""
    newest_print = prints.groupby(["venue", "symbol"])["ts"].max().rename("newest_print")
    newest_snap = snapshots.groupby(["venue", "symbol"])["ts_snap"].max().rename("newest_snapshot")
    lag = pd.concat([newest_print, newest_snap], axis=1)
    lag["lag"] = lag["newest_print"] - lag["newest_snapshot"]
    return lag.reset_index()


def stale_streams(lag: pd.DataFrame, max_lag: pd.Timedelta = MAX_SNAPSHOT_LAG) -> pd.DataFrame:
    """Rows of `snapshot_lag` that are stale: no snapshot at all, or one older than `max_lag`."""
    return lag.loc[lag["lag"].isna() | (lag["lag"] > max_lag)]


def basket_violations(weights: pd.DataFrame, summary: pd.DataFrame, tolerance: float = 1e-5) -> dict:
    """What is wrong with a set of baskets: solver status, Σw ≠ 1, w < 0, w > cap. Empty dict when valid."""
    sums = weights.groupby(["as_of", "target_venue", "target_symbol"])["weight"].sum()
    found = {
        "not_optimal": summary.loc[summary["status"] != "optimal", ["target_venue", "target_symbol", "status"]]
        .astype(str)
        .to_dict("records"),
        "sum_not_one": {str(k): float(v) for k, v in sums[(sums - 1).abs() > tolerance].items()},
        "negative_weights": int((weights["weight"] < -tolerance).sum()),
        "weights_over_cap": int((weights["weight"] > weights["cap"] + tolerance).sum()),
    }
    return {k: v for k, v in found.items() if v}
