"""The scorecard's verdict plot: the model against the best baseline per venue and horizon, with its interval."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fund_pipeline.domain.forecast_horizons import HORIZONS
from fund_pipeline.domain.forecast_metrics import ALL_VENUES
from fund_pipeline.domain.forecast_significance import INTERVAL_COLUMNS, METRICS
from fund_pipeline.domain.prints import require_columns
from fund_pipeline.plots import _png, pyplot


def verdict_intervals_png(intervals: pd.DataFrame, target_pct: float | None = None) -> bytes:
    """One panel per metric, a row per venue and horizon: the verdict (dot) and its 5th..95th percentile (bar).

    Left of zero the model beats the best baseline; `target_pct` (e.g. -10) draws the target line.
    """
    require_columns(intervals, INTERVAL_COLUMNS, "verdict intervals")
    if intervals.empty:
        raise ValueError("verdict_intervals_png: no intervals to plot")
    rows = intervals.sort_values(["venue", "horizon"], key=_venue_then_horizon)
    fig, axes = pyplot().subplots(1, len(METRICS), figsize=(9.0, 0.3 * len(rows) / len(METRICS) + 1.4), squeeze=False)
    for ax, metric in zip(axes[0], METRICS, strict=True):
        block = rows.loc[rows["metric"] == metric]
        y = np.arange(len(block))[::-1]
        point = block["model_vs_best_pct"].to_numpy(dtype="float64")
        low, high = block["p5_pct"].to_numpy(dtype="float64"), block["p95_pct"].to_numpy(dtype="float64")
        colours = np.where(high < 0, "tab:green", np.where(low > 0, "tab:red", "tab:grey"))
        ax.hlines(y, low, high, colors=colours, lw=2)
        ax.scatter(point, y, c=colours, s=12, zorder=3)
        ax.axvline(0.0, color="black", lw=0.8)
        if target_pct is not None:
            ax.axvline(target_pct, color="tab:blue", lw=0.8, ls="--")
        ax.set_yticks(y, [f"{v} {h}" for v, h in zip(block["venue"], block["horizon"], strict=True)], fontsize=6)
        ax.set_title(f"{metric.upper()}: model vs best baseline, %", fontsize=8)
        ax.tick_params(axis="x", labelsize=6)
    fig.text(
        0.5,
        0.005,
        "green: the whole interval below 0 (model better), red: above 0, grey: spans 0"
        + ("; dashed: the target" if target_pct is not None else ""),
        ha="center",
        fontsize=6,
    )
    return _png(fig)


def _venue_then_horizon(column: pd.Series) -> pd.Series:
    """Sort key: all venues first, then by name; horizons in their order of length."""
    if column.name == "venue":
        return column.map(lambda v: "" if v == ALL_VENUES else v)
    order = list(HORIZONS)
    return column.map(lambda h: order.index(h) if h in order else len(order))
