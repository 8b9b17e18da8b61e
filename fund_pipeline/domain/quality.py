"""Data-quality rules behind the asset checks: pure functions returning what failed."""

from __future__ import annotations

import numpy as np
import pandas as pd

HOUR_NS = 3_600_000_000_000


def off_grid_prints(prints: pd.DataFrame) -> pd.DataFrame:
    """Settled prints whose funding_time is not on the venue grid (multiples of the interval from 00:00 UTC)."""
    if prints.empty:
        return prints
    ns = prints["funding_time"].astype("int64").to_numpy()
    step = np.rint(prints["interval_h"].to_numpy(dtype="float64") * HOUR_NS).astype("int64")
    step = np.where(step > 0, step, 1)
    return prints.loc[(ns % step) != 0]

