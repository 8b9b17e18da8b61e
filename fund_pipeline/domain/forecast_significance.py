"""How sure a verdict is: bootstrap intervals of the model against the best baseline, weeks resampled whole.

A verdict (`forecast_metrics.verdicts`) is one number per venue, horizon and metric; on a couple of years
of weekly models a few stressed weeks can carry it. Here the weeks are drawn with replacement (each week
whole: its forecasts share one model and their errors are correlated), and in every draw the verdict is
worked out again, the best baseline chosen again among all of them, exactly as `verdicts` would on the
drawn weeks' forecasts. Choosing the best per draw leans towards the baselines (a minimum of noisy errors
is low), so the interval does not flatter the model.

MAE and SMAPE are means over forecasts, so a draw's value is the sum of its weeks' error sums over the sum
of their counts, computed from one table of per-week sums.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fund_pipeline.domain.forecast import FORECAST_COLUMNS, PREDICTORS
from fund_pipeline.domain.forecast_horizons import BASELINES
from fund_pipeline.domain.forecast_metrics import ALL_VENUES, smape_terms
from fund_pipeline.domain.prints import SchemaError, require_columns

WEEK_COLUMN = "week_start"
INTERVAL_COLUMNS = [
    "venue",
    "horizon",
    "metric",
    "model_vs_best_pct",
    "p5_pct",
    "p95_pct",
    "model_better_share",
    "weeks",
]
METRICS = ("mae", "smape")
# The skill the forecasts aim at: an error 10 % below the best baseline's (bench/forecast_skill.py reports it).
TARGET_PCT = -10.0
DEFAULT_RESAMPLES = 1000


def week_draws(n_weeks: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n_weeks) week indices drawn with replacement; deterministic for a seed."""
    if n_weeks < 2:
        raise ValueError(f"verdict intervals need at least 2 weeks of forecasts, got {n_weeks}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    return np.random.default_rng(seed).integers(0, n_weeks, size=(n_resamples, n_weeks))


def verdict_intervals(forecasts: pd.DataFrame, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """INTERVAL_COLUMNS per venue (and "all"), horizon and metric.

    model_vs_best_pct is the verdict on all the weeks; p5_pct and p95_pct bound it over the draws;
    model_better_share is the share of draws in which the model's error is below the best baseline's.
    Every group is scored over the same draws of the same weeks (a week without rows of a group adds
    nothing to it).
    """
    require_columns(forecasts, [WEEK_COLUMN, *FORECAST_COLUMNS], "forecasts")
    if forecasts.empty:
        raise ValueError("verdict_intervals: no forecasts to score")
    forecasts = forecasts.reset_index(drop=True)
    weeks, week_index = np.unique(forecasts[WEEK_COLUMN].to_numpy(), return_inverse=True)
    draws = week_draws(len(weeks), n_resamples, seed)
    # How often each week is drawn, per draw: the draw's sums are this matrix times the per-week sums.
    counts = np.zeros((n_resamples, len(weeks)))
    np.add.at(counts, (np.repeat(np.arange(n_resamples), len(weeks)), draws.ravel()), 1.0)
    rows = []
    for horizon, block in forecasts.groupby("horizon", sort=False):
        groups = [(str(v), frame) for v, frame in block.groupby("venue", sort=True)] + [(ALL_VENUES, block)]
        for venue, frame in groups:
            index = week_index[frame.index.to_numpy()]
            n = np.bincount(index, minlength=len(weeks)).astype("float64")
            for metric in METRICS:
                sums = _weekly_error_sums(frame, index, len(weeks), metric)
                point = _model_vs_best_pct(sums.sum(axis=0, keepdims=True), n.sum(keepdims=True))[0]
                drawn = _model_vs_best_pct(counts @ sums, counts @ n)
                valid = drawn[np.isfinite(drawn)]
                rows.append(
                    {
                        "venue": venue,
                        "horizon": str(horizon),
                        "metric": metric,
                        "model_vs_best_pct": point,
                        "p5_pct": float(np.percentile(valid, 5)) if valid.size else float("nan"),
                        "p95_pct": float(np.percentile(valid, 95)) if valid.size else float("nan"),
                        "model_better_share": float((valid < 0).mean()) if valid.size else float("nan"),
                        "weeks": int((n > 0).sum()),
                    }
                )
    return pd.DataFrame(rows, columns=INTERVAL_COLUMNS)


def _weekly_error_sums(frame: pd.DataFrame, week: np.ndarray, n_weeks: int, metric: str) -> np.ndarray:
    """(n_weeks, len(PREDICTORS)) sums of each predictor's absolute errors or SMAPE terms per week."""
    actual = frame["actual"].to_numpy(dtype="float64")
    out = np.empty((n_weeks, len(PREDICTORS)))
    for j, predictor in enumerate(PREDICTORS):
        forecast = frame[f"pred_{predictor}"].to_numpy(dtype="float64")
        if not (np.isfinite(actual).all() and np.isfinite(forecast).all()):
            raise SchemaError(f"verdict_intervals: NaN or infinite actual or pred_{predictor} values")
        errors = smape_terms(actual, forecast) if metric == "smape" else np.abs(forecast - actual)
        out[:, j] = np.bincount(week, weights=errors, minlength=n_weeks)
    return out


def _model_vs_best_pct(error_sums: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per row (a draw): 100·(model − best baseline)/best of the mean errors; NaN where the best is 0 or no rows."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = error_sums / n[:, None]
        model = mean[:, PREDICTORS.index("model")]
        best = mean[:, [PREDICTORS.index(b) for b in BASELINES]].min(axis=1)
        return np.where(best > 0, 100.0 * (model - best) / best, np.nan)
