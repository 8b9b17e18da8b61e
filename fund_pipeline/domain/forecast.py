"""Walk-forward funding forecasts at every horizon a carry trade needs, against the trader baselines.

The feature store gives one row per settled (venue, symbol, funding_time) window. A weekly model
may only learn from rows whose target was settled before the week starts (walk-forward), per
horizon: a 7-day target of a row settles 7 days after it, so that row trains the 7-day model only
when T + 7 days is before the week.

Per horizon (`forecast_horizons.HORIZONS`) the model forecasts y, the mean 8h-equivalent rate over
the horizon, in two parts, because settled rates sit exactly on a few mass points for long spells:

- at the next window and 1 day, a classifier of "y lands on the mass point nearest to the current
  rate" (stays on it, or goes back to it); where its probability exceeds the horizon's
  `SNAP_PROBABILITY`, the forecast is that mass point exactly. More than half the probability on
  one value makes it the median, the forecast an absolute loss wants; at the next window the snap
  comes at 0.4, because an exact hit also zeroes SMAPE (chosen on the design weeks).
- elsewhere a CatBoost regressor of the change from a trailing baseline (`ANCHORS`) with an
  absolute loss (its conditional median), with the distance to the mass point, the time spent on
  it, the EWMA, the other venues' rates settled by then (the hourly ones lead an 8h window's
  premium) and the curve and market features as inputs.
- the regressor's forecast is averaged with equal weights with stable trader baselines
  (`COMBINED_BASELINES`) before that snap: its correction is noisy, and the average cut MAE on the
  design weeks (with the AR(1) at the next window, the last value for an hourly stream's; rolling
  mean, EWMA and AR(1) at 1, 3 and 7 days, and the interest constant at 3 and 7).

Every number is converted to the funding accrued over the horizon in the symbol's own windows for
scoring (`build_forecasts`).

A little over 500 lines on purpose: training, the model's bytes and prediction share the horizon parts
(`HorizonModel`, the anchors, the combination and the snap); split apart, each half would reach into the
other's internals. Scoring lives in `forecast_metrics`, the targets and baselines in `forecast_horizons`.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from catboost import CatBoost, CatBoostClassifier, CatBoostRegressor, Pool

from fund_pipeline.domain.forecast_horizons import (
    AR1,
    BASELINES,
    CROSS_VENUE_FEATURES,
    HORIZONS,
    HOURLY_INTERVAL_H,
    MASS_FEATURES,
    STREAM,
    add_mass_features,
    baseline_y,
    find_mass_points,
    on_mass,
    to_accrued,
)
from fund_pipeline.domain.prints import SchemaError, require_columns
from fund_pipeline.domain.time import to_utc

SPLIT_COLUMNS = ["funding_time", "target_time", "target_rate", "target_interval_h"]
PREDICTORS = ("model", *BASELINES)
PREDICTION_COLUMNS = [f"pred_{p}" for p in PREDICTORS]
# One row per out-of-sample forecast and horizon. `actual` and every `pred_*` are the funding
# accrued over the horizon in the symbol's own windows; `y_scale` converts them to the mean 8h rate
# (divide by it), the unit of `mass_8h`, the mass point nearest the current rate (NaN if none).
FORECAST_COLUMNS = [
    "venue",
    "symbol",
    "funding_time",
    "horizon",
    "target_time",
    "interval_h",
    "target_interval_h",
    "y_scale",
    "mass_8h",
    "actual",
    *PREDICTION_COLUMNS,
]
EXTRA_FEATURES = ["ewma_8h", "rolling_mean_8h", *CROSS_VENUE_FEATURES, *MASS_FEATURES]
# What training reads besides the feature columns and the horizons' targets (mass points, AR(1), baselines).
TRAINING_BASE_COLUMNS = ["funding_time", "interval_h", "rate_8h", "ewma_8h", "rolling_mean_8h", *CROSS_VENUE_FEATURES]
# Baselines the regressor may start from: the one with the lowest training MAE for the horizon.
# Parameter-free ones only: the AR(1) is fitted on the same rows and would win in sample. (Per-venue
# anchors, with the interest constant among them, were tried on the design weeks: worse MAE at every horizon.)
ANCHORS = ("last", "rolling_mean", "ewma")
VENUE_FEATURE = "venue"
TOP_FEATURES = 10
# Below this many rows of a horizon's targets before the week, its model would be noise.
MIN_HORIZON_ROWS = 50
# The mass-point classifier needs both outcomes this often to be worth fitting.
MIN_CLASS_ROWS = 20
# The horizons with a mass classifier, and its probability above which the forecast is the mass point.
# Next window: 0.3, 0.35, 0.4, 0.45, 0.5 and 0.6 tried on the design weeks; 0.4 gained the most on
# MAE and SMAPE together and gained on both in each half of them. At 3 and 7 days (0.5 before) a whole
# horizon seldom sits on one point: without their classifiers the design weeks gained 0.0-0.05 pt and the
# held-out weeks lost at most 0.1 pt, for two of a week's eight CatBoost fits (bench/RESULTS.md).
SNAP_PROBABILITY = {"next": 0.4, "1d": 0.5}
# Per horizon, the baselines averaged with equal weights with the regressor's forecast. Long
# horizons: chosen on every 2nd design week, confirmed on the other ten (weights fitted per venue
# and horizon on an inner validation split of the training rows did worse there). At 3 and 7 days
# the interest constant too: funding drifts back to it over days, and with it the design weeks gained
# 1.3-2.9 pt of MAE and 1.1-1.2 pt of SMAPE, in both halves; at 1 day it gained MAE but lost SMAPE in
# one half, so not there. Next window: the AR(1) alone (EWMA alone, the last value alone and all
# three long-horizon baselines were worse).
COMBINED_BASELINES: dict[str, tuple[str, ...]] = {
    "next": ("ar1",),
    "1d": ("rolling_mean", "ewma", "ar1"),
    "3d": ("rolling_mean", "ewma", "ar1", "interest"),
    "7d": ("rolling_mean", "ewma", "ar1", "interest"),
}
# A stream settling at least every HOURLY_INTERVAL_H hours averages its next window with the last value
# instead: its last rate is an hour old, and the AR(1) pulls it towards the mean. On the design weeks
# (both halves, two seeds) next-window SMAPE −4.2 → −5.5 % against the best baseline, MAE −12.6 → −12.4 %.
HOURLY_COMBINED_BASELINES: dict[str, tuple[str, ...]] = {"next": ("last",)}
_BLOB_MAGIC = b"FPFCST2\n"


class InsufficientHistoryError(ValueError):
    """Too few rows with a settled target before the week to train a model for it."""


@dataclass(frozen=True)
class ModelParams:
    """CatBoost settings shared by every part of a weekly model (fixed seed and threads: same data, same bytes)."""

    seed: int = 7
    # 100 trees at 0.16 with 64 borders (classifier 50 trees) instead of 200 at 0.08 with CatBoost's
    # 254: a third of the CPU, design-week skill within the seed-to-seed spread (bench/RESULTS.md).
    iterations: int = 100
    depth: int = 5
    learning_rate: float = 0.16
    classifier_iterations: int = 50
    # Histogram bins per feature.
    border_count: int = 64
    thread_count: int = 1
    # Horizons fitted at once, each in a thread of its own (CatBoost releases the GIL while it fits): the
    # second core without a second CatBoost thread, so the bytes do not depend on it.
    fit_workers: int = 2
    # At universe scale a horizon keeps its most recent rows only: training time grows with rows,
    # and the newest windows say most about next week. The shipped sample stays far below it.
    max_rows_per_horizon: int = 60_000


@dataclass(frozen=True)
class HorizonModel:
    """One horizon's parts: the baseline the regressor corrects (`anchor`), the regressor, the mass classifier."""

    anchor: str
    regressor: CatBoostRegressor
    classifier: CatBoostClassifier | None
    n_train: int


@dataclass(frozen=True)
class TrainedModel:
    """One week's forecaster: a HorizonModel per horizon, the mass points and AR(1) fits it was built with."""

    horizons: dict[str, HorizonModel]
    feature_columns: tuple[str, ...]
    mass_points: pd.DataFrame
    ar1: AR1
    train_end: pd.Timestamp
    top_features: tuple[tuple[str, float], ...] = field(default=())

    @property
    def n_train(self) -> int:
        return self.horizons["next"].n_train

    @property
    def metadata(self) -> dict:
        return {
            "feature_columns": list(self.feature_columns),
            "horizons": list(self.horizons),
            "n_train": {h: m.n_train for h, m in self.horizons.items()},
            "train_end": self.train_end.isoformat(),
            "top_features": [[name, importance] for name, importance in self.top_features],
            "mass_points": self.mass_points[["venue", "mass_8h", "share"]].values.tolist(),
            "ar1": self.ar1.to_records(),
            "classifiers": [h for h, m in self.horizons.items() if m.classifier is not None],
            "anchors": {h: m.anchor for h, m in self.horizons.items()},
        }

    def to_bytes(self) -> bytes:
        """Self-contained blob: magic, JSON metadata, then each CatBoost model (length-prefixed cbm)."""
        meta = json.dumps(self.metadata, sort_keys=True).encode("utf-8")
        parts = [_BLOB_MAGIC, struct.pack(">Q", len(meta)), meta]
        for model in self.horizons.values():
            for part in (model.regressor, model.classifier):
                if part is not None:
                    cbm = bytes(part._serialize_model())
                    parts += [struct.pack(">Q", len(cbm)), cbm]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, blob: bytes) -> TrainedModel:
        if not blob.startswith(_BLOB_MAGIC):
            raise ValueError(
                "forecast model blob: unknown format (missing header); was it written by TrainedModel.to_bytes?"
            )
        offset = len(_BLOB_MAGIC)

        def take() -> bytes:
            nonlocal offset
            (length,) = struct.unpack(">Q", blob[offset : offset + 8])
            chunk = blob[offset + 8 : offset + 8 + length]
            offset += 8 + length
            return chunk

        meta = json.loads(take().decode("utf-8"))
        horizons = {}
        # The models follow in the order of meta["horizons"] (the JSON's own keys are sorted).
        for horizon in meta["horizons"]:
            n_train = meta["n_train"][horizon]
            regressor = CatBoostRegressor()
            regressor.load_model(blob=take())
            classifier = None
            if horizon in meta["classifiers"]:
                classifier = CatBoostClassifier()
                classifier.load_model(blob=take())
            horizons[horizon] = HorizonModel(meta["anchors"][horizon], regressor, classifier, int(n_train))
        return cls(
            horizons=horizons,
            feature_columns=tuple(meta["feature_columns"]),
            mass_points=pd.DataFrame(meta["mass_points"], columns=["venue", "mass_8h", "share"]),
            ar1=AR1.from_records(meta["ar1"]),
            train_end=pd.Timestamp(meta["train_end"]),
            top_features=tuple((name, float(importance)) for name, importance in meta["top_features"]),
        )


def forecast_rows(features: pd.DataFrame, week_start, week_end) -> pd.DataFrame:
    """The week's test rows: funding_time in [week_start, week_end) and a known next-window target.

    A target is known when its time, rate and interval are all present. The one rule for which
    rows a week's model is judged on, in the split and in the pipeline alike (longer horizons
    further need all their windows, `forecast_frame`).
    """
    require_columns(features, SPLIT_COLUMNS, "forecast rows")
    start, end = _week_bounds(features, week_start, week_end)
    in_week = (features["funding_time"] >= start) & (features["funding_time"] < end)
    return features.loc[_known_target(features) & in_week].reset_index(drop=True)


def walk_forward_split(
    features: pd.DataFrame, week_start, week_end, min_train_rows: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split for one week: train on rows whose next-window target settled before the week, test on the week.

    Train rows need `target_time < week_start` (a row whose funding_time is before the week
    but whose target settles inside it would leak the week). Test rows are `forecast_rows`.
    Raises InsufficientHistoryError below `min_train_rows` training rows.
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


def train_forecast_model(
    frame: pd.DataFrame,
    feature_columns: Sequence[str],
    week_start,
    params: ModelParams = ModelParams(),
    horizons: Sequence[str] = tuple(HORIZONS),
) -> TrainedModel:
    """Fit every horizon's classifier and regressor on `forecast_frame` rows whose target settled before the week.

    Mass points and the AR(1) baseline are fitted on the rows before the week too. Deterministic
    for a given frame and params.
    """
    columns = _checked_feature_columns(feature_columns)
    start = _utc_timestamp(week_start, "week_start")
    targets = [name for horizon in horizons for name in (f"y_{horizon}", f"target_time_{horizon}")]
    needed = list(dict.fromkeys([*STREAM, *TRAINING_BASE_COLUMNS, *columns, *targets]))
    require_columns(frame, needed, "forecast training rows")
    # Only the columns training reads: at universe scale every copy of the whole frame costs seconds.
    past = frame.loc[frame["funding_time"] < start, needed].reset_index(drop=True)
    if past.empty:
        raise InsufficientHistoryError(f"train_forecast_model: no rows before the week {start}")
    mass_points = find_mass_points(past)
    ar1 = AR1.fit(past)
    rows = add_mass_features(past, mass_points)
    inputs = [*columns, *EXTRA_FEATURES]
    fits: dict[str, HorizonFit] = {}
    train_end = pd.Timestamp.min.tz_localize("UTC")
    for horizon in horizons:
        train = horizon_training_rows(rows, horizon, start, params.max_rows_per_horizon)
        if len(train) < MIN_HORIZON_ROWS:
            raise InsufficientHistoryError(
                f"train_forecast_model, horizon {horizon}: {len(train)} row(s) with the target settled before "
                f"{start}, need at least {MIN_HORIZON_ROWS}"
            )
        fits[horizon] = prepare_horizon(train, horizon, inputs, ar1, params)
        train_end = max(train_end, pd.Timestamp(train[f"target_time_{horizon}"].max()))
    with ThreadPoolExecutor(max_workers=max(1, params.fit_workers)) as pool:
        models = dict(zip(fits, pool.map(HorizonFit.run, fits.values()), strict=True))
    for model in models.values():
        for part in (model.regressor, model.classifier):
            if part is not None:
                _make_reproducible(part, train_end)
    names = [VENUE_FEATURE, *inputs]
    importances = models["next"].regressor.get_feature_importance() if "next" in models else np.zeros(len(names))
    order = np.argsort(-importances, kind="stable")[:TOP_FEATURES]
    return TrainedModel(
        horizons=models,
        feature_columns=tuple(columns),
        mass_points=mass_points,
        ar1=ar1,
        train_end=train_end,
        top_features=tuple((names[i], float(importances[i])) for i in order),
    )


def horizon_training_rows(rows: pd.DataFrame, horizon: str, week_start: pd.Timestamp, max_rows: int) -> pd.DataFrame:
    """The `max_rows` most recent rows (by funding_time, ties in row order) whose horizon target settled
    before the week, in their original row order."""
    if max_rows < 1:
        raise ValueError(f"max_rows_per_horizon must be at least 1, got {max_rows}")
    known = np.flatnonzero((rows[f"y_{horizon}"].notna() & (rows[f"target_time_{horizon}"] < week_start)).to_numpy())
    # As integers: a tz-aware column's to_numpy() is an object array, whose argsort is ~10× slower.
    times = rows["funding_time"].astype("int64").to_numpy()[known]
    newest = known[np.argsort(times, kind="stable")][max(len(known) - max_rows, 0) :]
    return rows.take(np.sort(newest)).reset_index(drop=True)


def with_mass_features(model: TrainedModel, history: pd.DataFrame) -> pd.DataFrame:
    """`history` (sorted `forecast_frame` rows) with the mass features of the model's mass points.

    Added to a stream's whole history before the rows to forecast are cut out of it: the time spent on a
    mass point and the share of recent windows on it look back, and were learned that way; cut first,
    a week's first rows (or a live row, alone) would seem to have just arrived on the point.
    """
    return add_mass_features(history.reset_index(drop=True), model.mass_points)


def predict_y(model: TrainedModel, frame: pd.DataFrame, horizon: str) -> np.ndarray:
    """The model's mean 8h-equivalent rate over `horizon` for `forecast_frame` rows with their mass
    features (`with_mass_features`)."""
    if horizon not in model.horizons:
        raise ValueError(f"forecast model has no horizon {horizon!r}; it has {list(model.horizons)}")
    if frame.empty:
        return np.empty(0, dtype="float64")
    missing = [c for c in ("mass_8h", *MASS_FEATURES) if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"forecast rows: no mass feature column(s) {missing}; add them with with_mass_features on the rows' history"
        )
    rows = frame.reset_index(drop=True)
    return _predicted_y(model, rows, horizon, baseline_y(rows, horizon, model.ar1))


def _predicted_y(model: TrainedModel, rows: pd.DataFrame, horizon: str, baselines: pd.DataFrame) -> np.ndarray:
    """`predict_y` on checked rows, given their `baseline_y` (which `build_forecasts` also reports)."""
    part = model.horizons[horizon]
    pool = _pool(rows, [*model.feature_columns, *EXTRA_FEATURES])
    y = baselines[part.anchor].to_numpy() + part.regressor.predict(pool)
    y = horizon_combination(y, baselines, horizon, rows["interval_h"].to_numpy(dtype="float64"))
    if part.classifier is not None:
        has_mass = np.isfinite(rows["mass_8h"].to_numpy())
        stays = part.classifier.predict_proba(pool)[:, 1] > SNAP_PROBABILITY[horizon]
        y = np.where(has_mass & stays, rows["mass_8h"].to_numpy(), y)
    return y


def horizon_combination(
    regressed: np.ndarray, baselines: pd.DataFrame, horizon: str, interval_h: np.ndarray
) -> np.ndarray:
    """`combined_forecast` with the horizon's COMBINED_BASELINES, or HOURLY_COMBINED_BASELINES for hourly streams."""
    combined = combined_forecast(regressed, baselines, COMBINED_BASELINES[horizon])
    if horizon not in HOURLY_COMBINED_BASELINES:
        return combined
    hourly = combined_forecast(regressed, baselines, HOURLY_COMBINED_BASELINES[horizon])
    return np.where(np.asarray(interval_h, dtype="float64") <= HOURLY_INTERVAL_H, hourly, combined)


def combined_forecast(regressed: np.ndarray, baselines: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """Equal-weight mean of the regressor's forecast and the `names` columns of `baseline_y` (none: the forecast)."""
    parts = [
        np.asarray(regressed, dtype="float64"),
        *(baselines[name].to_numpy(dtype="float64") for name in names),
    ]
    if len({len(part) for part in parts}) != 1:
        raise ValueError(f"combined_forecast: {len(parts[0])} regressed value(s) but {len(baselines)} baseline row(s)")
    return np.mean(parts, axis=0)


def build_forecasts(model: TrainedModel, frame: pd.DataFrame, week_start, week_end) -> pd.DataFrame:
    """FORECAST_COLUMNS for the `forecast_frame` rows of the week, every horizon whose target is complete.

    `frame` holds the days before the week too (`FORECAST_INPUT_WARMUP`): the mass features look back.
    """
    start, end = _utc_timestamp(week_start, "week_start"), _utc_timestamp(week_end, "week_end")
    history = with_mass_features(model, frame)
    times = history["funding_time"]
    rows = history.loc[(times >= start) & (times < end)].reset_index(drop=True)
    out = []
    for horizon in model.horizons:
        known = rows.loc[rows[f"y_{horizon}"].notna()].reset_index(drop=True)
        if known.empty:
            continue
        scale = to_accrued(np.ones(len(known)), known, horizon)
        block = known[["venue", "symbol", "funding_time", "interval_h", "target_interval_h", "mass_8h"]].copy()
        block["horizon"] = horizon
        block["target_time"] = known[f"target_time_{horizon}"]
        block["y_scale"] = scale
        block["actual"] = known[f"accrued_{horizon}"].to_numpy(dtype="float64")
        baselines = baseline_y(known, horizon, model.ar1)
        block["pred_model"] = _predicted_y(model, known, horizon, baselines) * scale
        for name in BASELINES:
            block[f"pred_{name}"] = baselines[name].to_numpy() * scale
        out.append(block)
    if not out:
        return pd.DataFrame(columns=FORECAST_COLUMNS)
    return pd.concat(out, ignore_index=True)[FORECAST_COLUMNS]


def forecast_as_of(model: TrainedModel, frame: pd.DataFrame, as_of, horizon: str) -> pd.DataFrame:
    """Per stream, the forecast from its last window settled before `as_of`: venue, symbol, funding_time, y_8h.

    What a basket formed at `as_of` can know: the model is the week's (trained before it) and the
    input row is the stream's latest one before `as_of`.
    """
    stamp = _utc_timestamp(as_of, "as_of")
    before = with_mass_features(model, frame.loc[frame["funding_time"] < stamp])
    latest = before.groupby(STREAM, sort=True).tail(1).reset_index(drop=True)
    result = latest[[*STREAM, "funding_time"]].copy()
    result["y_8h"] = predict_y(model, latest, horizon)
    return result


@dataclass(frozen=True)
class HorizonFit:
    """A horizon's unfitted parts and their pools, made in the calling thread (pandas is not thread-safe), so
    that `run`, CatBoost alone, may go to another thread."""

    model: HorizonModel
    regressor_pool: Pool
    classifier_pool: Pool | None

    def run(self) -> HorizonModel:
        self.model.regressor.fit(self.regressor_pool)
        if self.model.classifier is not None:
            self.model.classifier.fit(self.classifier_pool)
        return self.model


def prepare_horizon(train: pd.DataFrame, horizon: str, inputs: list[str], ar1: AR1, params: ModelParams) -> HorizonFit:
    """One horizon's anchor (the best ANCHORS baseline on its rows, first of ties), the regressor of the
    change from it, and the mass classifier (none past the SNAP_PROBABILITY horizons, or when a class has
    too few rows), ready to fit."""
    baselines = baseline_y(train, horizon, ar1)
    y = train[f"y_{horizon}"].to_numpy()
    anchor = min(ANCHORS, key=lambda name: float(np.abs(y - baselines[name].to_numpy()).mean()))
    regressor = CatBoostRegressor(loss_function="MAE", **_catboost_args(params, params.iterations))
    regressor_pool = _pool(train, inputs, y - baselines[anchor].to_numpy())
    rows = train.loc[np.isfinite(train["mass_8h"].to_numpy())].reset_index(drop=True)
    label = on_mass(rows[f"y_{horizon}"], rows["mass_8h"]).astype("int64")
    if horizon not in SNAP_PROBABILITY or min(int(label.sum()), int(len(label) - label.sum())) < MIN_CLASS_ROWS:
        return HorizonFit(HorizonModel(anchor, regressor, None, len(train)), regressor_pool, None)
    classifier = CatBoostClassifier(loss_function="Logloss", **_catboost_args(params, params.classifier_iterations))
    return HorizonFit(
        HorizonModel(anchor, regressor, classifier, len(train)), regressor_pool, _pool(rows, inputs, label)
    )


def fit_horizon(train: pd.DataFrame, horizon: str, inputs: list[str], ar1: AR1, params: ModelParams) -> HorizonModel:
    """`prepare_horizon`'s parts, fitted in this thread."""
    return prepare_horizon(train, horizon, inputs, ar1, params).run()


def _catboost_args(params: ModelParams, iterations: int) -> dict:
    return {
        "iterations": iterations,
        "depth": params.depth,
        "learning_rate": params.learning_rate,
        "border_count": params.border_count,
        "random_seed": params.seed,
        "thread_count": params.thread_count,
        "verbose": False,
        "allow_writing_files": False,
    }


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


def _make_reproducible(model: CatBoost, train_end: pd.Timestamp) -> None:
    """Replace CatBoost's random model GUID and wall-clock finish time, so equal fits give equal bytes."""
    metadata = model.get_metadata()
    metadata["train_finish_time"] = train_end.isoformat()
    metadata["model_guid"] = ""
    metadata["model_guid"] = hashlib.sha256(bytes(model._serialize_model())).hexdigest()[:32]


def _checked_feature_columns(feature_columns: Sequence[str]) -> list[str]:
    if isinstance(feature_columns, str):
        raise TypeError(f"feature_columns must be a list of column names, got the string {feature_columns!r}")
    columns = [c for c in dict.fromkeys(feature_columns) if c not in EXTRA_FEATURES]
    if not columns:
        raise ValueError("feature_columns: need at least one feature column")
    if VENUE_FEATURE in columns:
        raise ValueError("feature_columns: 'venue' is added as the categorical feature; do not list it")
    return columns


def _numeric_features(rows: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The columns as float64; a column of another dtype only when every value it holds is a number."""
    block = rows[columns]
    if all(pd.api.types.is_numeric_dtype(dtype) for dtype in block.dtypes):
        return pd.DataFrame(block.to_numpy(dtype="float64", na_value=np.nan), columns=columns)
    numeric = block.apply(pd.to_numeric, errors="coerce").astype("float64")
    lost = block.notna().to_numpy().sum(axis=0) != numeric.notna().to_numpy().sum(axis=0)
    if lost.any():
        named = [c for c, x in zip(columns, lost, strict=True) if x]
        raise SchemaError(f"forecast features: non-numeric values in column(s) {named}")
    return numeric.reset_index(drop=True)


def _pool(rows: pd.DataFrame, columns: list[str], target: np.ndarray | None = None) -> Pool:
    numeric = _numeric_features(rows, columns)
    infinite = [c for c, x in zip(columns, np.isinf(numeric.to_numpy()).any(axis=0), strict=True) if x]
    if infinite:
        raise SchemaError(f"forecast features: infinite values in column(s) {infinite} (NaN is allowed, inf is not)")
    if rows[VENUE_FEATURE].isna().any():
        raise SchemaError("forecast features: missing venue")
    if target is not None and not np.isfinite(target).all():
        raise SchemaError(f"forecast training rows: {int((~np.isfinite(target)).sum())} missing or infinite target(s)")
    numeric.insert(0, VENUE_FEATURE, rows[VENUE_FEATURE].astype(str).to_numpy())
    return Pool(numeric, label=target, cat_features=[VENUE_FEATURE])


def _utc_timestamp(value, what: str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"{what} must be tz-aware UTC, got naive {ts}")
    return to_utc(pd.DatetimeIndex([ts]))[0]
