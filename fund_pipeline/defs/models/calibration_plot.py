"""The calibration plot of the forecast scorecard: mean realised against mean predicted by decile, per horizon."""

from __future__ import annotations

import pandas as pd

from fund_pipeline.plots import _png, pyplot


def calibration_png(deciles: pd.DataFrame) -> bytes:
    """One panel per horizon; points on the diagonal are calibrated (values in % per 8h)."""
    horizons = list(dict.fromkeys(deciles["horizon"]))
    fig, axes = pyplot().subplots(1, len(horizons), figsize=(3.2 * len(horizons), 3.2), squeeze=False)
    for ax, horizon in zip(axes[0], horizons, strict=True):
        block = deciles.loc[deciles["horizon"] == horizon]
        x, y = block["mean_predicted"] * 100, block["mean_realised"] * 100
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--")
        ax.plot(x, y, marker="o", lw=1)
        ax.set_title(f"{horizon}: by decile of the forecast", fontsize=8)
        ax.set_xlabel("mean predicted, % per 8h", fontsize=7)
        ax.set_ylabel("mean realised, % per 8h", fontsize=7)
        ax.tick_params(labelsize=6)
    return _png(fig)
