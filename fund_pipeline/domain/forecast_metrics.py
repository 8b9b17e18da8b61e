"""Honest out-of-sample scoring: MAE, 0/0-safe SMAPE, hit rate with "unchanged", calibration, best baseline.

The model is judged per venue and horizon against the best trader baseline there (lowest MAE, and
separately lowest SMAPE), never against a straw man; "all" pools the venues.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fund_pipeline.domain.forecast import FORECAST_COLUMNS, PREDICTORS
from fund_pipeline.domain.forecast_horizons import BASELINES, on_mass
from fund_pipeline.domain.prints import SchemaError, require_columns

SCORECARD_COLUMNS = ["venue", "horizon", "predictor", "smape", "mae", "hit_rate", "n"]
# Which forecasts a stored scorecard or verdict row scores: the weekly walk-forward ones or the live ones.
FORECASTS_COLUMN = "forecasts"
WEEKLY_FORECASTS, LIVE_FORECASTS = "weekly", "live"
VERDICT_COLUMNS = [
    "venue",
    "horizon",
    "metric",
    "best_baseline",
    "best_baseline_value",
    "model_value",
    "model_vs_best_pct",
    "n",
]
CALIBRATION_COLUMNS = ["horizon", "decile", "mean_predicted", "mean_realised", "n"]
ALL_VENUES = "all"
FLAT_TOLERANCE = 1e-12
CALIBRATION_BINS = 10


def smape(actual, forecast) -> float:
    """Symmetric MAPE on the 0..2 scale: mean of 2·|F − A| / (|A| + |F|).

    0 means every forecast is exact, 2 means every forecast has the wrong sign or is zero
    against a non-zero actual. A pair of zeros is an exact forecast and counts as 0 error
    (funding sits at exactly 0 on some venues, so 0/0 is common, not an edge case).
    """
    a, f = _paired(actual, forecast, "smape")
    return float(smape_terms(a, f).mean())


def smape_terms(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """Each forecast's SMAPE term, 2·|F − A| / (|A| + |F|), 0 for a pair of zeros (`smape` is their mean)."""
    diff = np.abs(forecast - actual)
    scale = np.abs(actual) + np.abs(forecast)
    return np.divide(2.0 * diff, scale, out=np.zeros_like(diff), where=scale > 0)


def mae(actual, forecast) -> float:
    """Mean absolute error, in the units of the inputs."""
    a, f = _paired(actual, forecast, "mae")
    return float(np.abs(f - a).mean())


def direction_hit_rate(current, actual, forecast, tolerance: float = FLAT_TOLERANCE) -> float:
    """Share of rows where the forecast's move from the current rate has the actual move's sign.

    Moves within `tolerance` are flat, and flat is its own direction: a forecast of no change
    is a hit only when the rate did not change, and a predicted move is a miss when it did not.
    All three inputs must be in the same units.
    """
    a, f = _paired(actual, forecast, "direction_hit_rate")
    c, _ = _paired(current, a, "direction_hit_rate")
    predicted = np.where(np.abs(f - c) <= tolerance, 0, np.sign(f - c))
    realised = np.where(np.abs(a - c) <= tolerance, 0, np.sign(a - c))
    return float((predicted == realised).mean())


def scorecard(forecasts: pd.DataFrame) -> pd.DataFrame:
    """One row per (venue or "all", horizon, predictor): SMAPE, MAE and hit rate of the accrued funding.

    "Unchanged" is persistence, the last rate carried over the horizon (pred_last).
    """
    require_columns(forecasts, FORECAST_COLUMNS, "forecasts")
    if forecasts.empty:
        raise ValueError("scorecard: no forecasts to score")
    rows = []
    for horizon, block in forecasts.groupby("horizon", sort=False):
        groups = [(str(v), frame) for v, frame in block.groupby("venue", sort=True)] + [(ALL_VENUES, block)]
        for venue, frame in groups:
            actual, current = frame["actual"], frame["pred_last"]
            for predictor in PREDICTORS:
                forecast = frame[f"pred_{predictor}"]
                rows.append(
                    {
                        "venue": venue,
                        "horizon": str(horizon),
                        "predictor": predictor,
                        "smape": smape(actual, forecast),
                        "mae": mae(actual, forecast),
                        "hit_rate": direction_hit_rate(current, actual, forecast),
                        "n": len(frame),
                    }
                )
    return pd.DataFrame(rows, columns=SCORECARD_COLUMNS)


def verdicts(card: pd.DataFrame) -> pd.DataFrame:
    """Per venue, horizon and metric (mae, smape): the best baseline, and the model against it in %.

    model_vs_best_pct < 0 means the model's error is that much lower than the best baseline's.
    """
    require_columns(card, SCORECARD_COLUMNS, "scorecard")
    rows = []
    for (venue, horizon), block in card.groupby(["venue", "horizon"], sort=False):
        table = block.set_index("predictor")
        missing = [p for p in PREDICTORS if p not in table.index]
        if missing:
            raise SchemaError(f"scorecard: {venue} {horizon} has no row for predictor(s) {missing}")
        for metric in ("mae", "smape"):
            best = str(table.loc[list(BASELINES), metric].idxmin())
            base, model = float(table.loc[best, metric]), float(table.loc["model", metric])
            rows.append(
                {
                    "venue": venue,
                    "horizon": horizon,
                    "metric": metric,
                    "best_baseline": best,
                    "best_baseline_value": base,
                    "model_value": model,
                    "model_vs_best_pct": 100.0 * (model - base) / base if base > 0 else float("nan"),
                    "n": int(table.loc["model", "n"]),
                }
            )
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def scorecard_summary(card: pd.DataFrame, metric: str = "smape", horizon: str = "next") -> dict:
    """The model against its best baseline over all venues at one horizon, best = lowest `metric`.

    `model_beats_best_baseline` is True only when the model's `metric` is strictly lower.
    """
    if metric not in ("smape", "mae"):
        raise ValueError(f"scorecard_summary: metric must be 'smape' or 'mae', got {metric!r}")
    table = verdicts(card)
    row = table.loc[(table["venue"] == ALL_VENUES) & (table["horizon"] == horizon) & (table["metric"] == metric)]
    if row.empty:
        raise SchemaError(f"scorecard: no '{ALL_VENUES}' rows for horizon {horizon!r}")
    verdict = row.iloc[0]
    return {
        "metric": metric,
        "horizon": horizon,
        "best_baseline": str(verdict["best_baseline"]),
        "n": int(verdict["n"]),
        f"model_{metric}": float(verdict["model_value"]),
        f"best_baseline_{metric}": float(verdict["best_baseline_value"]),
        "model_vs_best_pct": float(verdict["model_vs_best_pct"]),
        "model_beats_best_baseline": bool(verdict["model_value"] < verdict["best_baseline_value"]),
    }


def labelled_scores(weekly: pd.DataFrame, live: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scorecard and verdicts of the weekly forecasts and, in their own rows, of the settled live ones.

    Each row says which forecasts it scores (FORECASTS_COLUMN): live forecasts are made at a later
    information time (inside the open window, beside the venue's quote then), so they are never
    pooled with the weekly ones. `live` may be None or empty: no live rows.
    """
    cards, tables = [], []
    for kind, forecasts in ((WEEKLY_FORECASTS, weekly), (LIVE_FORECASTS, live)):
        if forecasts is None or forecasts.empty:
            continue
        card = scorecard(forecasts)
        cards.append(card.assign(**{FORECASTS_COLUMN: kind})[[FORECASTS_COLUMN, *SCORECARD_COLUMNS]])
        tables.append(verdicts(card).assign(**{FORECASTS_COLUMN: kind})[[FORECASTS_COLUMN, *VERDICT_COLUMNS]])
    if not cards:
        raise ValueError("labelled_scores: no forecasts to score")
    return pd.concat(cards, ignore_index=True), pd.concat(tables, ignore_index=True)


def calibration_deciles(forecasts: pd.DataFrame, predictor: str = "model") -> pd.DataFrame:
    """Per horizon, forecasts cut into deciles of the predicted value: mean predicted vs mean realised.

    In the mean 8h-rate unit (accrued / y_scale) so venues of every interval share the bins.
    Ties (mass points) share a decile, so a horizon can have fewer than ten.
    """
    require_columns(forecasts, ["horizon", "actual", "y_scale", f"pred_{predictor}"], "forecasts")
    out = []
    for horizon, block in forecasts.groupby("horizon", sort=False):
        predicted = block[f"pred_{predictor}"] / block["y_scale"]
        realised = block["actual"] / block["y_scale"]
        ranks = predicted.rank(method="min", pct=True)
        decile = np.minimum((ranks * CALIBRATION_BINS).apply(np.ceil).astype(int), CALIBRATION_BINS)
        table = pd.DataFrame({"decile": decile, "p": predicted, "r": realised}).groupby("decile")
        out.append(
            pd.DataFrame(
                {
                    "horizon": str(horizon),
                    "decile": table.size().index,
                    "mean_predicted": table["p"].mean().to_numpy(),
                    "mean_realised": table["r"].mean().to_numpy(),
                    "n": table.size().to_numpy(),
                }
            )
        )
    return pd.concat(out, ignore_index=True)[CALIBRATION_COLUMNS] if out else pd.DataFrame(columns=CALIBRATION_COLUMNS)


def _paired(actual, forecast, what: str) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype="float64").ravel()
    f = np.asarray(forecast, dtype="float64").ravel()
    if a.shape != f.shape:
        raise ValueError(f"{what}: {a.size} actual value(s) but {f.size} forecast(s)")
    if a.size == 0:
        raise ValueError(f"{what}: no values to score")
    if not (np.isfinite(a).all() and np.isfinite(f).all()):
        raise ValueError(f"{what}: inputs contain NaN or infinite values")
    return a, f


def landing_rates(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Per venue, symbol and horizon: how often the realised value, the model and the last value sit on a mass point."""
    require_columns(forecasts, FORECAST_COLUMNS, "forecasts")
    scale = forecasts["y_scale"].to_numpy(dtype="float64")
    mass = forecasts["mass_8h"].to_numpy(dtype="float64")
    flags = pd.DataFrame(
        {
            "realised_on_mass": on_mass(forecasts["actual"].to_numpy() / scale, mass),
            "model_on_mass": on_mass(forecasts["pred_model"].to_numpy() / scale, mass),
            "last_on_mass": on_mass(forecasts["pred_last"].to_numpy() / scale, mass),
        }
    )
    keys = forecasts[["venue", "symbol", "horizon"]].reset_index(drop=True)
    flags["both_on_mass"] = flags["realised_on_mass"] & flags["model_on_mass"]
    table = pd.concat([keys, flags.astype("float64")], axis=1).groupby(["venue", "symbol", "horizon"]).mean()
    table["n"] = keys.groupby(["venue", "symbol", "horizon"]).size()
    return table.reset_index()
