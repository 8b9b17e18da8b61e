"""`live_forecasts`: per funding window, the model's forecast of the open window and the next days.

Partitioned like `live_curve` and run with it, after `live_features` (the open window's signal):
at the window's newest live snapshot t, every live symbol gets the week's model forecast of its
open window's settlement and of the funding accrued over 1 and 3 days, beside the naive baselines
and the venue's own quote (`domain/live_forecast.py`). Reads the feature rows of the days before
t and the model of the week containing t (fitted before the week); a forecast made at t is stored
once (keyed by t), so the open window's forecasts accumulate through it. `forecast_scorecard`
scores those whose horizon has settled, in rows of their own.
"""

import dagster as dg
import pandas as pd

from fund_pipeline.defs.models.stored import stored_models
from fund_pipeline.defs.partitions import FUNDING_WINDOW_PARTITIONS, WEEKLY_PARTITIONS
from fund_pipeline.domain.forecast import TrainedModel
from fund_pipeline.domain.live_forecast import live_forecasts as forecast_live
from fund_pipeline.domain.live_forecast import live_rows
from fund_pipeline.plots import grouped_bars, markdown_image
from fund_pipeline.warehouse import WAREHOUSE_POOL, Warehouse

# Feature rows read before t: the EWMA input of forecast_frame settles within a few windows.
FEATURE_LOOKBACK_DAYS = 10
FEATURE_LOOKBACK = pd.Timedelta(days=FEATURE_LOOKBACK_DAYS)
# Windows per day of the funding-window partitions (00/08/16 UTC): offsets count windows.
WINDOWS_PER_DAY = 3
PLOT_SYMBOLS = 12


def week_start_of(t: pd.Timestamp) -> pd.Timestamp:
    """Start (Monday 12:00 UTC) of the weekly partition containing t."""
    key = WEEKLY_PARTITIONS.get_partition_key_for_timestamp(t.timestamp())
    return pd.Timestamp(WEEKLY_PARTITIONS.time_window_for_partition_key(key).start).tz_convert("UTC")


def model_or_note(warehouse: Warehouse, week_start: pd.Timestamp) -> tuple[TrainedModel | None, str]:
    """The week's model, or None and why there is none: a live forecast goes on without one."""
    found = stored_models(warehouse, [week_start]).get(week_start)
    if found is None:
        return None, f"no funding_forecast_model for the week of {week_start:%Y-%m-%d}"
    if isinstance(found, str):
        return None, f"the week's model was skipped: {found}"
    return found, ""


def forecast_plot(forecasts: pd.DataFrame, t: pd.Timestamp) -> str:
    """The open window's settlement: model, venue quote and last value per symbol, in bp."""
    nxt = forecasts[forecasts["horizon"] == "next"].copy()
    nxt["label"] = nxt["venue"] + ":" + nxt["symbol"].str.split("/").str[0]
    nxt = nxt.reindex(nxt["pred_venue"].abs().sort_values(ascending=False).index).head(PLOT_SYMBOLS)
    table = nxt.set_index("label")[["pred_model", "pred_venue", "pred_last"]] * 1e4
    png = grouped_bars(table, f"open window settlement forecast at {t:%Y-%m-%d %H:%M} UTC", "bp per window")
    return markdown_image(png, "live forecasts")


@dg.asset(
    partitions_def=FUNDING_WINDOW_PARTITIONS,
    group_name="models",
    kinds={"duckdb", "catboost"},
    pool=WAREHOUSE_POOL,
    deps=[
        dg.AssetDep("live_curve"),
        dg.AssetDep("live_features"),
        dg.AssetDep(
            "feature_store",
            partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-WINDOWS_PER_DAY * FEATURE_LOOKBACK_DAYS),
        ),
        dg.AssetDep("funding_forecast_model", partition_mapping=dg.TimeWindowPartitionMapping()),
    ],
)
def live_forecasts(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Forecasts at the window's newest live snapshot, stored under that time (re-runs at the same t replace)."""
    start, end = context.partition_time_window
    start, end = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    snapshots = warehouse.read("live_curve", {"ts_snap": (start, end)})
    if snapshots.empty:
        raise dg.Failure(f"live_forecasts: no live_curve snapshots in [{start}, {end}); materialise live_curve first")
    t = pd.Timestamp(snapshots["ts_snap"].max())
    model, note = model_or_note(warehouse, week_start_of(t))
    if model is None:
        context.log.warning(f"live_forecasts at {t}: {note}")
        return dg.MaterializeResult(metadata={"dagster/row_count": 0, "ts_forecast": str(t), "note": note})
    features = warehouse.read("feature_store", {"funding_time": (t - FEATURE_LOOKBACK, t)})
    rows, missing = live_rows(model, features, snapshots, t)
    forecasts = forecast_live(model, rows)
    written = warehouse.replace("live_forecasts", forecasts, {"ts_forecast": (t, t + pd.Timedelta(1, "us"))})
    metadata: dict = {
        "dagster/row_count": written,
        "ts_forecast": str(t),
        "model_week": str(week_start_of(t)),
        "symbols_forecast": int(rows[["venue", "symbol"]].drop_duplicates().shape[0]),
        "symbols_without_feature_row": len(missing),
    }
    if len(missing):
        metadata["without_feature_row"] = dg.MetadataValue.json(missing.head(10).astype(str).to_dict("records"))
    if len(forecasts):
        metadata["forecast_plot"] = dg.MetadataValue.md(forecast_plot(forecasts, t))
    return dg.MaterializeResult(metadata=metadata)
