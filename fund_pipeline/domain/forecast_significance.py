"""How sure a verdict is: bootstrap intervals of the model against the best baseline, weeks resampled whole.

A verdict (`forecast_metrics.verdicts`) is one number per venue, horizon and metric; on a couple of years
of weekly models a few stressed weeks can carry it. Here the weeks are drawn with replacement (each week
whole: its forecasts share one model and their errors are correlated), and in every draw the verdict is
worked out again, the best baseline chosen again among all of them, exactly as `verdicts` would on the
drawn weeks' forecasts. Choosing the best per draw leans towards the baselines (a minimum of noisy errors
is low), so the interval does not flatter the model.

`compare_models` does the same for two runs of the model on the same forecasts (an A/B of a change): the
difference of their errors, the draws shared, so that a change's effect is told apart from the weeks' noise.

MAE and SMAPE are means over forecasts, so a draw's value is the sum of its weeks' error sums over the sum
of their counts, computed from one table of per-week sums.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

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
COMPARISON_COLUMNS = [
    "venue",
    "horizon",
    "metric",
    "first_model",
    "second_model",
    "difference_pct",
    "p5_pct",
    "p95_pct",
    "second_better_share",
    "weeks",
]
# The rows two forecast runs must share to be compared forecast by forecast.
COMPARISON_KEY = [WEEK_COLUMN, "venue", "symbol", "funding_time", "horizon"]
METRICS = ("mae", "smape")
# The skill the forecasts aim at: an error 10 % below the best baseline's (bench/forecast_skill.py reports it).
TARGET_PCT = -10.0
DEFAULT_RESAMPLES = 1000


def week_draws(n_weeks: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n_weeks) week indices drawn with replacement; deterministic for a seed."""
    if n_weeks < 2:
        raise ValueError(f"bootstrap intervals need at least 2 weeks of forecasts, got {n_weeks}")
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
    week_index, counts = _weeks_drawn(forecasts.reset_index(drop=True), n_resamples, seed)
    rows = []
    for cell in _cells(forecasts.reset_index(drop=True), week_index):
        for metric in METRICS:
            sums = _weekly_error_sums(cell.frame, cell.week, len(cell.n), metric)
            point = _model_vs_best_pct(sums.sum(axis=0, keepdims=True), cell.n.sum(keepdims=True))[0]
            drawn = _model_vs_best_pct(counts @ sums, counts @ cell.n)
            rows.append(
                {
                    "venue": cell.venue,
                    "horizon": cell.horizon,
                    "metric": metric,
                    "model_vs_best_pct": point,
                    **_spread(drawn[np.isfinite(drawn)], "model_better_share"),
                    "weeks": int((cell.n > 0).sum()),
                }
            )
    return pd.DataFrame(rows, columns=INTERVAL_COLUMNS)


@dataclass(frozen=True)
class _Cell:
    """The forecasts of one venue (or all) at one horizon, each row's week index, and the rows per week."""

    venue: str
    horizon: str
    frame: pd.DataFrame
    week: np.ndarray
    n: np.ndarray


def _weeks_drawn(rows: pd.DataFrame, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's week index, and how often each week is drawn per draw (a draw's sums are this matrix
    times the per-week sums)."""
    weeks, week_index = np.unique(rows[WEEK_COLUMN].to_numpy(), return_inverse=True)
    draws = week_draws(len(weeks), n_resamples, seed)
    counts = np.zeros((n_resamples, len(weeks)))
    np.add.at(counts, (np.repeat(np.arange(n_resamples), len(weeks)), draws.ravel()), 1.0)
    return week_index, counts


def _cells(rows: pd.DataFrame, week_index: np.ndarray) -> Iterator[_Cell]:
    """Per horizon, each venue's rows and then all of them (`rows` with a RangeIndex)."""
    n_weeks = int(week_index.max()) + 1
    for horizon, block in rows.groupby("horizon", sort=False):
        groups = [(str(v), frame) for v, frame in block.groupby("venue", sort=True)] + [(ALL_VENUES, block)]
        for venue, frame in groups:
            week = week_index[frame.index.to_numpy()]
            yield _Cell(venue, str(horizon), frame, week, np.bincount(week, minlength=n_weeks).astype("float64"))


def _spread(values: np.ndarray, share_column: str) -> dict:
    """The 5th and 95th percentile of the draws' percentages, and the share of them below 0."""
    if not values.size:
        return {"p5_pct": float("nan"), "p95_pct": float("nan"), share_column: float("nan")}
    return {
        "p5_pct": float(np.percentile(values, 5)),
        "p95_pct": float(np.percentile(values, 95)),
        share_column: float((values < 0).mean()),
    }


def _weekly_error_sums(frame: pd.DataFrame, week: np.ndarray, n_weeks: int, metric: str) -> np.ndarray:
    """(n_weeks, len(PREDICTORS)) sums of each predictor's absolute errors or SMAPE terms per week."""
    return np.column_stack([_week_sums(frame, f"pred_{p}", week, n_weeks, metric) for p in PREDICTORS])


def _week_sums(frame: pd.DataFrame, column: str, week: np.ndarray, n_weeks: int, metric: str) -> np.ndarray:
    """Per week, the sum of `column`'s absolute errors or SMAPE terms against `actual`."""
    actual = frame["actual"].to_numpy(dtype="float64")
    forecast = frame[column].to_numpy(dtype="float64")
    if not (np.isfinite(actual).all() and np.isfinite(forecast).all()):
        raise SchemaError(f"forecast intervals: NaN or infinite actual or {column} values")
    errors = smape_terms(actual, forecast) if metric == "smape" else np.abs(forecast - actual)
    return np.bincount(week, weights=errors, minlength=n_weeks)


def _model_vs_best_pct(error_sums: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per row (a draw): 100·(model − best baseline)/best of the mean errors; NaN where the best is 0 or no rows."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = error_sums / n[:, None]
        model = mean[:, PREDICTORS.index("model")]
        best = mean[:, [PREDICTORS.index(b) for b in BASELINES]].min(axis=1)
        return np.where(best > 0, 100.0 * (model - best) / best, np.nan)


def pooled_verdict(
    forecasts: pd.DataFrame, metric: str = "smape", n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> dict:
    """The model over every venue and horizon at once against each (venue, horizon)'s own best baseline.

    The issue's "SMAPE overall": the model's mean error over all forecasts, against the mean error of the
    forecasts of the best baseline of each forecast's venue and horizon (the one `verdicts` names there),
    with its interval, the best chosen again per cell in every draw.
    """
    if metric not in METRICS:
        raise ValueError(f"pooled_verdict: metric must be one of {METRICS}, got {metric!r}")
    require_columns(forecasts, [WEEK_COLUMN, *FORECAST_COLUMNS], "forecasts")
    if forecasts.empty:
        raise ValueError("pooled_verdict: no forecasts to score")
    rows = forecasts.reset_index(drop=True)
    week_index, counts = _weeks_drawn(rows, n_resamples, seed)
    model_at, baselines_at = PREDICTORS.index("model"), [PREDICTORS.index(b) for b in BASELINES]
    model_sum, best_sum = 0.0, 0.0
    drawn_model, drawn_best = np.zeros(n_resamples), np.zeros(n_resamples)
    for cell in _cells(rows, week_index):
        if cell.venue == ALL_VENUES:
            continue
        sums = _weekly_error_sums(cell.frame, cell.week, len(cell.n), metric)
        total, drawn = sums.sum(axis=0), counts @ sums
        model_sum += total[model_at]
        best_sum += total[baselines_at].min()
        drawn_model += drawn[:, model_at]
        drawn_best += drawn[:, baselines_at].min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(drawn_best > 0, 100.0 * (drawn_model - drawn_best) / drawn_best, np.nan)
    return {
        "metric": metric,
        "model": float(model_sum / len(rows)),
        "best_baselines": float(best_sum / len(rows)),
        "model_vs_best_pct": float(100.0 * (model_sum - best_sum) / best_sum) if best_sum > 0 else float("nan"),
        **_spread(pct[np.isfinite(pct)], "model_better_share"),
        "forecasts": len(rows),
    }


def compare_models(
    first: pd.DataFrame, second: pd.DataFrame, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> pd.DataFrame:
    """COMPARISON_COLUMNS: two runs' models (e.g. before and after a change) on the forecasts both made.

    difference_pct is 100·(second − first)/first of the model's mean error (negative: the second is
    better), with its 5th..95th percentile and the share of draws where the second is better, the weeks
    drawn whole and shared by both: an A/B's spread is far narrower than either verdict's.
    """
    for name, frame in (("first", first), ("second", second)):
        require_columns(frame, [*COMPARISON_KEY, "actual", "pred_model"], f"{name} forecasts")
        if frame.duplicated(COMPARISON_KEY).any():
            raise SchemaError(f"compare_models: the {name} forecasts repeat a (week, stream, window, horizon)")
    rows = first[[*COMPARISON_KEY, "actual", "pred_model"]].merge(
        second[[*COMPARISON_KEY, "actual", "pred_model"]], on=COMPARISON_KEY, suffixes=("_first", "_second")
    )
    if rows.empty:
        raise ValueError("compare_models: the two runs share no forecast")
    if not np.allclose(rows["actual_first"], rows["actual_second"], rtol=1e-12, atol=0.0):
        raise SchemaError("compare_models: the two runs score different actual values for the same forecasts")
    rows = rows.rename(columns={"actual_first": "actual"})
    week_index, counts = _weeks_drawn(rows, n_resamples, seed)
    out = []
    for cell in _cells(rows, week_index):
        for metric in METRICS:
            sums = np.column_stack(
                [
                    _week_sums(cell.frame, f"pred_model_{run}", cell.week, len(cell.n), metric)
                    for run in ("first", "second")
                ]
            )
            total = sums.sum(axis=0) / cell.n.sum()
            with np.errstate(divide="ignore", invalid="ignore"):
                drawn = counts @ sums
                pct = np.where(drawn[:, 0] > 0, 100.0 * (drawn[:, 1] - drawn[:, 0]) / drawn[:, 0], np.nan)
            out.append(
                {
                    "venue": cell.venue,
                    "horizon": cell.horizon,
                    "metric": metric,
                    "first_model": float(total[0]),
                    "second_model": float(total[1]),
                    "difference_pct": 100.0 * (total[1] - total[0]) / total[0] if total[0] > 0 else float("nan"),
                    **_spread(pct[np.isfinite(pct)], "second_better_share"),
                    "weeks": int((cell.n > 0).sum()),
                }
            )
    return pd.DataFrame(out, columns=COMPARISON_COLUMNS)
