"""Next-window funding forecasts: walk-forward CatBoost, naive baselines, honest metrics.

The feature store gives one row per settled (venue, symbol, funding_time) window with the
next window's settled rate as target. A weekly model may only learn from rows whose target
was already settled before the week starts (walk-forward), and it is judged out of sample
against the baselines a trader would use anyway.

The model learns the change of the 8h-equivalent rate from the window just settled, so that
1h, 4h and 8h venues share one model and persistence, the strongest naive forecast, is its
starting point. It minimises absolute error: a conditional median lands exactly on the
0.01 %/8h mass point where rates sit for long stretches, where a mean lands beside it and a
relative metric such as SMAPE punishes that. Predictions are converted back to the target
window's own interval.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from catboost import CatBoostRegressor, Pool

from fund_pipeline.domain.prints import INTEREST_RATE_8H, SchemaError, rate_to_8h, require_columns, to_utc

SPLIT_COLUMNS = ["funding_time", "target_time", "target_rate", "target_interval_h"]
TRAIN_COLUMNS = ["venue", "rate", "interval_h", "target_time", "target_rate", "target_interval_h"]
BASELINE_COLUMNS = ["pred_interest", "pred_last", "pred_rolling_mean"]
PREDICTION_COLUMNS = ["pred_model", *BASELINE_COLUMNS]
PREDICTORS = tuple(c.removeprefix("pred_") for c in PREDICTION_COLUMNS)
BASELINE_PREDICTORS = tuple(c.removeprefix("pred_") for c in BASELINE_COLUMNS)

# One row per out-of-sample forecast. `rate` is the current window's settled rate per
# `interval_h`; `actual` and every `pred_*` are the next window's rate per `target_interval_h`.
FORECAST_COLUMNS = [
    "venue",
    "symbol",
    "funding_time",
    "target_time",
    "interval_h",
    "target_interval_h",
    "rate",
    "actual",
    *PREDICTION_COLUMNS,
]
SCORECARD_COLUMNS = ["venue", "predictor", "smape", "mae", "hit_rate", "n"]
ALL_VENUES = "all"

VENUE_FEATURE = "venue"
TOP_FEATURES = 10
FLAT_TOLERANCE = 1e-12
_BLOB_MAGIC = b"FPFCST1\n"


class InsufficientHistoryError(ValueError):
    """Too few rows with a settled target before the week to train a model for it."""


@dataclass(frozen=True)
class TrainedModel:
    """A fitted regressor of the next window's 8h-equivalent rate, with what it was fitted on."""

    regressor: CatBoostRegressor
    feature_columns: tuple[str, ...]
    n_train: int
    train_end: pd.Timestamp
    top_features: tuple[tuple[str, float], ...]

    @property
    def metadata(self) -> dict:
        return {
            "feature_columns": list(self.feature_columns),
            "n_train": self.n_train,
            "train_end": self.train_end.isoformat(),
            "top_features": [[name, importance] for name, importance in self.top_features],
        }

    def to_bytes(self) -> bytes:
        """Self-contained blob for the warehouse: magic, metadata length, JSON metadata, CatBoost cbm."""
        meta = json.dumps(self.metadata, sort_keys=True).encode("utf-8")
        return _BLOB_MAGIC + struct.pack(">Q", len(meta)) + meta + bytes(self.regressor._serialize_model())

    @classmethod
    def from_bytes(cls, blob: bytes) -> TrainedModel:
        if not blob.startswith(_BLOB_MAGIC):
            raise ValueError(
                "forecast model blob: unknown format (missing header); was it written by TrainedModel.to_bytes?"
            )
        start = len(_BLOB_MAGIC)
        (meta_len,) = struct.unpack(">Q", blob[start : start + 8])
        meta = json.loads(blob[start + 8 : start + 8 + meta_len].decode("utf-8"))
        regressor = CatBoostRegressor()
        regressor.load_model(blob=blob[start + 8 + meta_len :])
        return cls(
            regressor=regressor,
            feature_columns=tuple(meta["feature_columns"]),
            n_train=int(meta["n_train"]),
            train_end=pd.Timestamp(meta["train_end"]),
            top_features=tuple((name, float(importance)) for name, importance in meta["top_features"]),
        )


def forecast_rows(features: pd.DataFrame, week_start, week_end) -> pd.DataFrame:
    """The week's test rows: funding_time in [week_start, week_end) and a known target.

    A target is known when its time, rate and interval are all present. The one rule for which
    rows a week's model is judged on, in the split and in the pipeline alike.
    """
    require_columns(features, SPLIT_COLUMNS, "forecast rows")
    start, end = _week_bounds(features, week_start, week_end)
    in_week = (features["funding_time"] >= start) & (features["funding_time"] < end)
    return features.loc[_known_target(features) & in_week].reset_index(drop=True)


def walk_forward_split(
    features: pd.DataFrame, week_start, week_end, min_train_rows: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split for one week: train on rows whose target settled before the week, test on the week.

    Train rows need `target_time < week_start` (a row whose funding_time is before the week
    but whose target settles inside it would leak the week). Test rows are `forecast_rows`.
    """
    require_columns(features, SPLIT_COLUMNS, "walk-forward features")
    start, _ = _week_bounds(features, week_start, week_end)
    train = features.loc[_known_target(features) & (features["target_time"] < start)]
    if len(train) < min_train_rows:
        raise InsufficientHistoryError(
            f"walk-forward split for week {start}: {len(train)} training row(s) with target_time before the week, "
            f"need at least {min_train_rows}"
        )
    return train.reset_index(drop=True), forecast_rows(features, week_start, week_end)


def _known_target(features: pd.DataFrame) -> pd.Series:
    return features[["target_time", "target_rate", "target_interval_h"]].notna().all(axis=1)


def _week_bounds(features: pd.DataFrame, week_start, week_end) -> tuple[pd.Timestamp, pd.Timestamp]:
    for column in ("funding_time", "target_time"):
        if not isinstance(features[column].dtype, pd.DatetimeTZDtype):
            raise SchemaError(f"walk-forward features: {column} must be tz-aware UTC, got {features[column].dtype}")
    start, end = _utc_timestamp(week_start, "week_start"), _utc_timestamp(week_end, "week_end")
    if not start < end:
        raise ValueError(f"walk-forward split: week_start {start} must be before week_end {end}")
    return start, end


def train_forecast_model(
    train: pd.DataFrame,
    feature_columns: Sequence[str],
    seed: int,
    iterations: int = 200,
    depth: int = 5,
    learning_rate: float = 0.08,
    thread_count: int = 1,
) -> TrainedModel:
    """Fit CatBoost on the change to the next window's 8h-equivalent rate, venue as a categorical feature.

    Deterministic for a given frame and seed (fixed seed and thread count), so the same
    history always yields the same model bytes.
    """
    columns = _checked_feature_columns(feature_columns)
    require_columns(train, [*TRAIN_COLUMNS, *columns], "forecast training rows")
    if train.empty:
        raise InsufficientHistoryError("train_forecast_model: no training rows")
    target = rate_to_8h(train["target_rate"], train["target_interval_h"]) - rate_to_8h(
        train["rate"], train["interval_h"]
    )
    if not np.isfinite(target).all():
        raise SchemaError(
            f"forecast training rows: {int((~np.isfinite(target)).sum())} row(s) with a missing or infinite "
            "rate, interval_h, target_rate or target_interval_h; drop them before training"
        )
    regressor = CatBoostRegressor(
        iterations=iterations,
        depth=depth,
        learning_rate=learning_rate,
        loss_function="MAE",
        random_seed=seed,
        thread_count=thread_count,
        verbose=False,
        allow_writing_files=False,
    )
    regressor.fit(_pool(train, columns, target))
    train_end = pd.Timestamp(train["target_time"].max())
    _make_reproducible(regressor, train_end)
    importances = regressor.get_feature_importance()
    names = [VENUE_FEATURE, *columns]
    order = np.argsort(-importances, kind="stable")[:TOP_FEATURES]
    return TrainedModel(
        regressor=regressor,
        feature_columns=tuple(columns),
        n_train=len(train),
        train_end=train_end,
        top_features=tuple((names[i], float(importances[i])) for i in order),
    )


def predict(model: TrainedModel, rows: pd.DataFrame) -> np.ndarray:
    """Next-window rate per `target_interval_h` for each row."""
    require_columns(
        rows, [VENUE_FEATURE, "rate", "interval_h", "target_interval_h", *model.feature_columns], "forecast rows"
    )
    if rows.empty:
        return np.empty(0, dtype="float64")
    change_8h = model.regressor.predict(_pool(rows, list(model.feature_columns)))
    pred_8h = rate_to_8h(rows["rate"], rows["interval_h"]) + change_8h
    return pred_8h * rows["target_interval_h"].to_numpy(dtype="float64") / 8.0


def baseline_predictions(rows: pd.DataFrame) -> pd.DataFrame:
    """The naive forecasts, each per `target_interval_h`, indexed like `rows`.

    interest: the 0.0001/8h interest constant; last: the current settled rate; rolling_mean:
    the mean of the last 21 settled rates. Current-window rates are rescaled from
    `interval_h` to `target_interval_h` when the interval changes.
    """
    require_columns(rows, ["rate", "interval_h", "rate_mean_21", "target_interval_h"], "baseline rows")
    target_h = rows["target_interval_h"].to_numpy(dtype="float64")
    to_target = target_h / rows["interval_h"].to_numpy(dtype="float64")
    return pd.DataFrame(
        {
            "pred_interest": INTEREST_RATE_8H * target_h / 8.0,
            "pred_last": rows["rate"].to_numpy(dtype="float64") * to_target,
            "pred_rolling_mean": rows["rate_mean_21"].to_numpy(dtype="float64") * to_target,
        },
        index=rows.index,
    )


def build_forecasts(model: TrainedModel, rows: pd.DataFrame) -> pd.DataFrame:
    """The FORECAST_COLUMNS frame for test rows: actual target, model and baseline forecasts."""
    require_columns(rows, ["symbol", "funding_time", "target_time", "target_rate"], "forecast rows")
    out = rows[["venue", "symbol", "funding_time", "target_time", "interval_h", "target_interval_h", "rate"]].copy()
    out["actual"] = rows["target_rate"].to_numpy(dtype="float64")
    out["pred_model"] = predict(model, rows)
    out[BASELINE_COLUMNS] = baseline_predictions(rows)
    return out[FORECAST_COLUMNS].reset_index(drop=True)


def smape(actual, forecast) -> float:
    """Symmetric MAPE on the 0..2 scale: mean of 2·|F − A| / (|A| + |F|).

    0 means every forecast is exact, 2 means every forecast has the wrong sign or is zero
    against a non-zero actual. A pair of zeros is an exact forecast and counts as 0 error
    (funding sits at exactly 0 on some venues, so 0/0 is common, not an edge case).
    """
    a, f = _paired(actual, forecast, "smape")
    diff = np.abs(f - a)
    scale = np.abs(a) + np.abs(f)
    terms = np.divide(2.0 * diff, scale, out=np.zeros_like(diff), where=scale > 0)
    return float(terms.mean())


def mae(actual, forecast) -> float:
    """Mean absolute error, in the units of the inputs."""
    a, f = _paired(actual, forecast, "mae")
    return float(np.abs(f - a).mean())


def direction_hit_rate(current, actual, forecast, tolerance: float = FLAT_TOLERANCE) -> float:
    """Share of rows where the forecast's move from the current rate has the actual move's sign.

    Moves within `tolerance` are flat, and flat is its own direction: a forecast of no change
    is a hit only when the rate did not change, and a predicted move is a miss when it did not.
    All three inputs must be in the same units (the target window's interval).
    """
    a, f = _paired(actual, forecast, "direction_hit_rate")
    c, _ = _paired(current, a, "direction_hit_rate")
    predicted = np.where(np.abs(f - c) <= tolerance, 0, np.sign(f - c))
    realised = np.where(np.abs(a - c) <= tolerance, 0, np.sign(a - c))
    return float((predicted == realised).mean())


def scorecard(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Out-of-sample metrics per venue and over all venues ("all"), one row per (venue, predictor)."""
    require_columns(forecasts, FORECAST_COLUMNS, "forecasts")
    if forecasts.empty:
        raise ValueError("scorecard: no forecasts to score")
    current = forecasts["rate"] * forecasts["target_interval_h"] / forecasts["interval_h"]
    groups = [(str(venue), frame.index) for venue, frame in forecasts.groupby("venue", sort=True)]
    groups.append((ALL_VENUES, forecasts.index))
    rows = []
    for venue, index in groups:
        actual = forecasts.loc[index, "actual"]
        for predictor, column in zip(PREDICTORS, PREDICTION_COLUMNS, strict=True):
            forecast = forecasts.loc[index, column]
            rows.append(
                {
                    "venue": venue,
                    "predictor": predictor,
                    "smape": smape(actual, forecast),
                    "mae": mae(actual, forecast),
                    "hit_rate": direction_hit_rate(current.loc[index], actual, forecast),
                    "n": len(index),
                }
            )
    return pd.DataFrame(rows, columns=SCORECARD_COLUMNS)


def scorecard_summary(card: pd.DataFrame, metric: str = "smape") -> dict:
    """Model against its best baseline over all venues, the best being the lowest `metric`.

    `model_beats_best_baseline` is True only when the model's `metric` is strictly lower.
    """
    if metric not in ("smape", "mae"):
        raise ValueError(f"scorecard_summary: metric must be 'smape' or 'mae', got {metric!r}")
    require_columns(card, SCORECARD_COLUMNS, "scorecard")
    overall = card.loc[card["venue"] == ALL_VENUES].set_index("predictor")
    missing = [p for p in PREDICTORS if p not in overall.index]
    if missing:
        raise SchemaError(f"scorecard: no '{ALL_VENUES}' row for predictor(s) {missing}")
    best = str(overall.loc[list(BASELINE_PREDICTORS), metric].idxmin())
    model, baseline = overall.loc["model"], overall.loc[best]
    return {
        "metric": metric,
        "best_baseline": best,
        "n": int(model["n"]),
        "model_smape": float(model["smape"]),
        "model_mae": float(model["mae"]),
        "model_hit_rate": float(model["hit_rate"]),
        "best_baseline_smape": float(baseline["smape"]),
        "best_baseline_mae": float(baseline["mae"]),
        "best_baseline_hit_rate": float(baseline["hit_rate"]),
        "model_beats_best_baseline": bool(model[metric] < baseline[metric]),
    }


def _make_reproducible(regressor: CatBoostRegressor, train_end: pd.Timestamp) -> None:
    """Replace CatBoost's random model GUID and wall-clock finish time, so equal fits give equal bytes.

    The GUID becomes a digest of the fitted model itself; the finish time becomes the data's end.
    """
    metadata = regressor.get_metadata()
    metadata["train_finish_time"] = train_end.isoformat()
    metadata["model_guid"] = ""
    metadata["model_guid"] = hashlib.sha256(bytes(regressor._serialize_model())).hexdigest()[:32]


def _checked_feature_columns(feature_columns: Sequence[str]) -> list[str]:
    if isinstance(feature_columns, str):
        raise TypeError(f"feature_columns must be a list of column names, got the string {feature_columns!r}")
    columns = list(dict.fromkeys(feature_columns))
    if not columns:
        raise ValueError("feature_columns: need at least one feature column")
    if VENUE_FEATURE in columns:
        raise ValueError("feature_columns: 'venue' is added as the categorical feature; do not list it")
    return columns


def _pool(rows: pd.DataFrame, columns: list[str], target: np.ndarray | None = None) -> Pool:
    numeric = rows[columns].apply(pd.to_numeric, errors="coerce").astype("float64")
    not_numeric = [c for c in columns if rows[c].notna().sum() != numeric[c].notna().sum()]
    if not_numeric:
        raise SchemaError(f"forecast features: non-numeric values in column(s) {not_numeric}")
    infinite = [c for c in columns if np.isinf(numeric[c].to_numpy()).any()]
    if infinite:
        raise SchemaError(f"forecast features: infinite values in column(s) {infinite} (NaN is allowed, inf is not)")
    if rows[VENUE_FEATURE].isna().any():
        raise SchemaError("forecast features: missing venue")
    data = pd.concat([rows[[VENUE_FEATURE]].astype(str), numeric], axis=1).reset_index(drop=True)
    return Pool(data, label=target, cat_features=[VENUE_FEATURE])


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


def _utc_timestamp(value, what: str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"{what} must be tz-aware UTC, got naive {ts}")
    return to_utc(pd.DatetimeIndex([ts]))[0]
