"""Data-quality rules behind the asset checks: pure functions returning what failed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fund_pipeline.domain.prints import SETTLEMENT_PHASE_H

HOUR_NS = 3_600_000_000_000


def off_grid_prints(prints: pd.DataFrame) -> pd.DataFrame:
    """Settled prints whose funding_time is off the venue grid: multiples of the interval from the
    venue's first daily settlement (00:00 UTC, or its SETTLEMENT_PHASE_H)."""
    if prints.empty:
        return prints
    phase_h = prints["venue"].map(SETTLEMENT_PHASE_H).fillna(0.0).to_numpy(dtype="float64")
    ns = prints["funding_time"].astype("int64").to_numpy() - np.rint(phase_h * HOUR_NS).astype("int64")
    step = np.rint(prints["interval_h"].to_numpy(dtype="float64") * HOUR_NS).astype("int64")
    step = np.where(step > 0, step, 1)
    return prints.loc[(ns % step) != 0]


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
