"""Stress of a funding curve: level and slope z-scores per venue × symbol on a rolling window.

A carry book is hurt by a curve that moves far from where it has been, not by a high curve: so
each snapshot's level (b0 annualised) and slope (b7 - b0 annualised) are scored against the same
symbol's snapshots in the look-back before it (the current one excluded, so a shock does not
dilute its own score). Beyond ±threshold a symbol is flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

STRESS_MEASURES = ("level", "slope")
KEY = ["venue", "symbol"]


@dataclass(frozen=True)
class StressConfig:
    """`window`: the look-back (a pandas offset, e.g. "7D"); `min_periods`: snapshots it needs
    before a score counts; `threshold`: |z| beyond which a symbol is flagged; `min_std`: floor of
    the look-back's standard deviation (annualised), since a rate pinned at the interest rate for
    a week has none and any move would score infinite — half a percent a year is below what a
    hedge notices."""

    window: str = "7D"
    min_periods: int = 12
    threshold: float = 2.0
    min_std: float = 0.005

    def __post_init__(self) -> None:
        try:
            pd.Timedelta(self.window)
        except ValueError as exc:
            raise ValueError(f"StressConfig: window {self.window!r} is not a time span (e.g. '7D')") from exc
        if self.min_periods < 2:
            raise ValueError(f"StressConfig: min_periods must be at least 2, got {self.min_periods}")
        if not self.threshold > 0:
            raise ValueError(f"StressConfig: threshold must be positive, got {self.threshold}")
        if not self.min_std > 0:
            raise ValueError(f"StressConfig: min_std must be positive, got {self.min_std}")


def stress_zscores(snapshots: pd.DataFrame, config: StressConfig | None = None) -> pd.DataFrame:
    """venue, symbol, ts_snap, level, slope, level_z, slope_z, flagged for every snapshot.

    A z-score is NaN until the look-back holds `min_periods` snapshots; `flagged` is True where
    |level_z| or |slope_z| exceeds the threshold.
    """
    config = config or StressConfig()
    missing = [c for c in [*KEY, "ts_snap", *STRESS_MEASURES] if c not in snapshots.columns]
    if missing:
        raise ValueError(f"stress_zscores: snapshots lack column(s) {missing}")
    frame = snapshots[[*KEY, "ts_snap", *STRESS_MEASURES]].sort_values([*KEY, "ts_snap"], kind="stable")
    frame = frame.reset_index(drop=True)
    frame["ts_snap"] = pd.to_datetime(frame["ts_snap"], utc=True)
    window = pd.Timedelta(config.window)
    rolling = frame.groupby(KEY, sort=False, observed=True).rolling(
        window, on="ts_snap", closed="left", min_periods=config.min_periods
    )[list(STRESS_MEASURES)]
    # Groups come out in the frame's (sorted) order, each in its rows' order: aligned by position.
    mean, std = rolling.mean().to_numpy(dtype=np.float64), rolling.std().to_numpy(dtype=np.float64)
    flagged = np.zeros(len(frame), dtype=bool)
    for j, measure in enumerate(STRESS_MEASURES):
        x = frame[measure].to_numpy(dtype=np.float64)
        frame[f"{measure}_z"] = (x - mean[:, j]) / np.maximum(std[:, j], config.min_std)
        flagged |= np.abs(frame[f"{measure}_z"].to_numpy()) > config.threshold
    frame["flagged"] = flagged
    return frame


def stressed_symbols(zscores: pd.DataFrame, since: pd.Timestamp | None = None) -> pd.DataFrame:
    """Each flagged venue × symbol's newest snapshot (at or after `since`), worst |z| first."""
    rows = zscores if since is None else zscores[zscores["ts_snap"] >= since]
    newest = rows.sort_values("ts_snap").groupby(KEY, sort=False, observed=True).tail(1)
    flagged = newest[newest["flagged"]].copy()
    flagged["worst_z"] = flagged[["level_z", "slope_z"]].abs().max(axis=1)
    return flagged.sort_values(["worst_z", "venue", "symbol"], ascending=[False, True, True]).reset_index(drop=True)
