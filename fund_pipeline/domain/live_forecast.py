"""Live forecasts: the open window's settlement and the funding of the next days, made at time t.

At t a symbol's open window is quoted by the venue (bucket 0 of its newest live snapshot). The
weekly model forecasts from the feature row of the window that settled last, the one the open
window follows, with the same horizons, baselines and units as the weekly forecasts
(`forecast_horizons`): "next" is the open window's settlement, "1d"/"3d" the funding accrued over
the windows settling in (T, T + 1 or 3 days], T the last settlement. Nothing after t is used:
the feature rows are those settled before t with their targets blanked, the model the week's
(fitted before the week). The venue's own quote at t is the "venue" baseline, held flat over
each horizon beside them.

Once a horizon's windows have settled, `score_live_forecasts` gives the rows
`forecast_metrics.scorecard` scores (the venue's quote among the baselines), the realised value
taken from the feature store exactly as for the weekly forecasts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fund_pipeline.domain.forecast import FORECAST_COLUMNS, TrainedModel, predict_y, with_mass_features
from fund_pipeline.domain.forecast_horizons import (
    BASELINES,
    STREAM,
    VENUE_QUOTE,
    baseline_y,
    forecast_frame,
    to_accrued,
)
from fund_pipeline.domain.prints import rate_to_8h, require_columns
from fund_pipeline.domain.time import NS_PER_HOUR, utc_timestamp

LIVE_HORIZONS = ("next", "1d", "3d")
LIVE_FORECAST_COLUMNS = [*FORECAST_COLUMNS, "ts_forecast", "open_funding_time"]
SNAPSHOT_INPUT_COLUMNS = ["venue", "symbol", "ts_snap", "funding_time", "interval_h", "b0"]
_TARGETS = ["target_time", "target_rate", "target_interval_h"]


def open_windows(snapshots: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    """Each venue × symbol's newest live snapshot at or before t whose window is still open at t."""
    require_columns(snapshots, SNAPSHOT_INPUT_COLUMNS, "live snapshots")
    seen = snapshots[(snapshots["ts_snap"] <= t) & (snapshots["funding_time"] >= t)]
    newest = seen.sort_values("ts_snap", kind="stable").groupby(STREAM, sort=True).tail(1)
    out = newest[SNAPSHOT_INPUT_COLUMNS].reset_index(drop=True)
    out["open_start"] = out["funding_time"] - pd.to_timedelta(out["interval_h"] * NS_PER_HOUR, unit="ns")
    return out


def live_rows(
    model: TrainedModel, features: pd.DataFrame, snapshots: pd.DataFrame, t
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows to forecast at t with `model`, and the open windows that have none.

    A row is the stream's feature row whose window ended where its open window began, built from
    the rows settled before t only, its next window being the open one (time and interval from
    the live snapshot), with its mass features from the rows before it (`with_mass_features`). An
    open window without it (the feature store has not run since the last settlement) is returned
    in the second frame rather than forecast from an older row.
    """
    t = utc_timestamp(t)
    past = features[features["funding_time"] < t].copy()
    # What settled after t is not known at t.
    past["target_time"] = pd.Series(pd.NaT, index=past.index, dtype=features["target_time"].dtype)
    past[["target_rate", "target_interval_h"]] = np.nan
    frame = with_mass_features(model, forecast_frame(past))
    latest = frame.groupby(STREAM, sort=False).tail(1).drop(columns=_TARGETS)
    windows = open_windows(snapshots, t).rename(
        columns={"funding_time": "target_time", "interval_h": "target_interval_h", "b0": "quote"}
    )
    joined = windows.merge(latest, left_on=[*STREAM, "open_start"], right_on=[*STREAM, "funding_time"], how="left")
    found = joined["funding_time"].notna()
    missing = joined.loc[~found, [*STREAM, "target_time", "target_interval_h"]].reset_index(drop=True)
    rows = joined.loc[found].drop(columns=["open_start"]).reset_index(drop=True)
    rows["ts_forecast"] = t
    return rows, missing


def live_forecasts(model: TrainedModel, rows: pd.DataFrame, horizons=LIVE_HORIZONS) -> pd.DataFrame:
    """LIVE_FORECAST_COLUMNS for `live_rows`: model, baselines and the venue's quote, per horizon.

    `actual` is NaN: nothing has settled yet. `pred_*` are funding accrued over the horizon.
    """
    if rows.empty:
        return pd.DataFrame(columns=LIVE_FORECAST_COLUMNS)
    rows = rows.reset_index(drop=True)
    rows[VENUE_QUOTE] = rate_to_8h(rows["quote"], rows["target_interval_h"])
    blocks = []
    for horizon in horizons:
        scale = to_accrued(np.ones(len(rows)), rows, horizon)
        block = rows[[*STREAM, "funding_time", "interval_h", "target_interval_h", "mass_8h", "ts_forecast"]].copy()
        block["open_funding_time"] = rows["target_time"]
        block["horizon"] = horizon
        hours = None if horizon == "next" else pd.Timedelta(horizon)
        block["target_time"] = rows["target_time"] if hours is None else rows["funding_time"] + hours
        block["y_scale"] = scale
        block["actual"] = np.nan
        block["pred_model"] = predict_y(model, rows, horizon) * scale
        baselines = baseline_y(rows, horizon, model.ar1)
        for name in BASELINES:
            block[f"pred_{name}"] = baselines[name].to_numpy() * scale
        blocks.append(block)
    return pd.concat(blocks, ignore_index=True)[LIVE_FORECAST_COLUMNS]


def score_live_forecasts(forecasts: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """The live forecasts whose horizon has settled, with `actual` from the feature store's targets.

    The realised value is the same `accrued_<horizon>` the weekly forecasts are scored on; a
    forecast whose windows are not all settled (or have a gap) is left out, not guessed.
    """
    require_columns(forecasts, LIVE_FORECAST_COLUMNS, "live forecasts")
    if forecasts.empty:
        return forecasts.copy()
    frame = forecast_frame(features)
    realised = []
    for horizon, block in forecasts.drop(columns=["actual"]).groupby("horizon", sort=False):
        truth = frame[[*STREAM, "funding_time", f"accrued_{horizon}"]].rename(columns={f"accrued_{horizon}": "actual"})
        realised.append(block.merge(truth, on=[*STREAM, "funding_time"], how="inner"))
    scored = pd.concat(realised, ignore_index=True)
    return scored.loc[scored["actual"].notna(), LIVE_FORECAST_COLUMNS].reset_index(drop=True)
