"""One weekly forecast model trained the way it was before its training rows were narrowed: the reference path.

The whole feature frame is copied before the week, given its mass features, and sorted whole per
horizon to keep each horizon's most recent rows. Same fits, same bytes as `train_forecast_model`
(the benchmark compares the two); what differs is how the training rows are gathered and that the
horizons are fitted one after the other (each by the library's `fit_horizon`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fund_pipeline.domain.forecast import (
    EXTRA_FEATURES,
    MIN_HORIZON_ROWS,
    TOP_FEATURES,
    VENUE_FEATURE,
    HorizonModel,
    InsufficientHistoryError,
    ModelParams,
    TrainedModel,
    _checked_feature_columns,
    _make_reproducible,
    _utc_timestamp,
    fit_horizon,
)
from fund_pipeline.domain.forecast_horizons import AR1, HORIZONS, add_mass_features, find_mass_points


def reference_train_forecast_model(
    frame: pd.DataFrame,
    feature_columns: Sequence[str],
    week_start,
    params: ModelParams,
    horizons: Sequence[str] = tuple(HORIZONS),
) -> TrainedModel:
    columns = _checked_feature_columns(feature_columns)
    start = _utc_timestamp(week_start, "week_start")
    past = frame.loc[frame["funding_time"] < start].reset_index(drop=True)
    if past.empty:
        raise InsufficientHistoryError(f"reference training: no rows before the week {start}")
    mass_points = find_mass_points(past)
    ar1 = AR1.fit(past)
    rows = add_mass_features(past, mass_points)
    inputs = [*columns, *EXTRA_FEATURES]
    models: dict[str, HorizonModel] = {}
    train_end = pd.Timestamp.min.tz_localize("UTC")
    for horizon in horizons:
        known = rows[f"y_{horizon}"].notna() & (rows[f"target_time_{horizon}"] < start)
        train = rows.loc[known].sort_values("funding_time", kind="stable").tail(params.max_rows_per_horizon)
        train = train.sort_index().reset_index(drop=True)
        if len(train) < MIN_HORIZON_ROWS:
            raise InsufficientHistoryError(f"reference training, horizon {horizon}: {len(train)} row(s)")
        models[horizon] = fit_horizon(train, horizon, inputs, ar1, params)
        train_end = max(train_end, pd.Timestamp(train[f"target_time_{horizon}"].max()))
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
