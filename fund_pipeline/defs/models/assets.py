"""Models: weekly walk-forward CatBoost fits, their out-of-sample forecasts and the scorecard."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from fund_pipeline.defs.ingest.reconstructed import RECONSTRUCTED_TABLE
from fund_pipeline.defs.live.forecasts import FEATURE_LOOKBACK as LIVE_FEATURE_LOOKBACK
from fund_pipeline.defs.models.calibration_plot import calibration_png
from fund_pipeline.defs.models.stored import MODEL_TABLE, stored_models
from fund_pipeline.defs.models.verdict_plot import verdict_intervals_png
from fund_pipeline.defs.partitions import MODEL_LOOKBACK, WEEKLY_PARTITIONS, weeks_before
from fund_pipeline.defs.scope import Week, weekly_blocks
from fund_pipeline.domain.features import FEATURE_COLUMNS
from fund_pipeline.domain.forecast import (
    InsufficientHistoryError,
    ModelParams,
    TrainedModel,
    build_forecasts,
    train_forecast_model,
    walk_forward_split,
)
from fund_pipeline.domain.forecast_horizons import (
    FORECAST_INPUT_WARMUP,
    MAX_HORIZON,
    QUOTE_INPUT_COLUMNS,
    VENUE_QUOTE,
    forecast_frame,
    with_venue_quotes,
)
from fund_pipeline.domain.forecast_metrics import (
    ALL_VENUES,
    FORECASTS_COLUMN,
    LIVE_FORECASTS,
    WEEKLY_FORECASTS,
    calibration_deciles,
    labelled_scores,
    landing_rates,
)
from fund_pipeline.domain.forecast_significance import TARGET_PCT, pooled_verdict, verdict_intervals
from fund_pipeline.domain.live_forecast import score_live_forecasts
from fund_pipeline.domain.time import time_ns, utc_timestamp
from fund_pipeline.plots import markdown_image, markdown_table
from fund_pipeline.resources import WAREHOUSE_POOL, Warehouse

WEEKLY: dict[str, Any] = dict(
    partitions_def=WEEKLY_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="models",
    pool=WAREHOUSE_POOL,
)


class ForecastModelConfig(dg.Config):
    """training_window_days is the look-back the asset declares to Dagster (MODEL_LOOKBACK) unless changed here."""

    training_window_days: int = MODEL_LOOKBACK.days
    min_train_rows: int = 200
    seed: int = ModelParams().seed


# Weeks whose inputs are read, and whose rows are written, at once (`weekly_blocks`).
WEEKS_PER_BLOCK = 4


def rows_between(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The rows with funding_time in [start, end): the rows a read of that span returns, in the frame's order.

    A frame in time order (the block reads are) gives a slice of itself, not a copy: at universe scale a
    week's training rows are half a GiB.
    """
    times = frame["funding_time"]
    if not times.is_monotonic_increasing:
        return frame.loc[(times >= start) & (times < end)].reset_index(drop=True)
    ns = time_ns(times, copy=False)
    lo, hi = np.searchsorted(ns, [utc_timestamp(start).value, utc_timestamp(end).value], side="left")
    return frame.iloc[lo:hi]


def training_features(warehouse: Warehouse, block: Sequence[Week], window: pd.Timedelta) -> pd.DataFrame:
    """The feature rows of every training window of the block's weeks (the `window` before each week), in one
    read in time order; the split keeps those whose target settled before their week."""
    span = (block[0].start - window, block[-1].start)
    return warehouse.read("feature_store", {"funding_time": span}, order_by="funding_time")


def whole_weeks(span: pd.Timedelta) -> int:
    """A span as weekly partition offsets (rounded up: the weeks that contain it)."""
    return -(-span // pd.Timedelta(days=7))


# The week's own days, the warm-up before it and the longest horizon's settlements after it.
FORECAST_INPUTS = dg.TimeWindowPartitionMapping(
    start_offset=-whole_weeks(FORECAST_INPUT_WARMUP), end_offset=whole_weeks(MAX_HORIZON)
)


# The open windows of a week's rows settle by its end plus the longest funding interval (8h).
OPEN_WINDOW_REACH = pd.Timedelta(hours=8)


def quote_span(start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The funding times of the predicted prints that quote the open windows of rows in [start, end)."""
    return start, end + OPEN_WINDOW_REACH + pd.Timedelta(1, "us")


@dataclass(frozen=True)
class ForecastInputs:
    """A block of weeks' feature rows (with warm-up and horizons) and venue quotes (None: no quote at all)."""

    features: pd.DataFrame
    quotes: pd.DataFrame | None


def forecast_inputs(warehouse: Warehouse, start: pd.Timestamp, end: pd.Timestamp) -> ForecastInputs:
    """What `week_frame` needs for every week in [start, end), in three reads: the live and reconstructed
    predicted prints are the venue's quotes."""
    features = warehouse.read(
        "feature_store", {"funding_time": (start - FORECAST_INPUT_WARMUP, end + MAX_HORIZON)}, order_by="funding_time"
    )
    span = quote_span(start, end)
    parts = [warehouse.predicted_prints(*span), warehouse.read(RECONSTRUCTED_TABLE, {"funding_time": span})]
    quotes = [p[QUOTE_INPUT_COLUMNS] for p in parts if not p.empty]
    return ForecastInputs(features, pd.concat(quotes, ignore_index=True) if quotes else None)


def week_frame(inputs: ForecastInputs, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """`forecast_frame` of the week with its warm-up and horizons, each row with the venue's quote of its
    open window at its time (NaN where there is none)."""
    frame = forecast_frame(rows_between(inputs.features, start - FORECAST_INPUT_WARMUP, end + MAX_HORIZON))
    quotes = None if inputs.quotes is None else rows_between(inputs.quotes, *quote_span(start, end))
    if quotes is None or quotes.empty:
        return frame.assign(**{VENUE_QUOTE: float("nan")})
    return with_venue_quotes(frame, quotes)


def week_models(warehouse: Warehouse, weeks: Sequence[Week]) -> dict[str, TrainedModel | str]:
    """Each week's model, or the reason it was skipped; fails naming a week with no record at all."""
    found = stored_models(warehouse, [week.start for week in weeks])
    for week in weeks:
        if week.start not in found:
            raise dg.Failure(f"week {week.key}: no {MODEL_TABLE} for the week; materialise it first")
    return {week.key: found[week.start] for week in weeks}


def stored_model(warehouse: Warehouse, key: str, start: pd.Timestamp) -> TrainedModel | str:
    """The week's model, or the reason it was skipped; fails when the week has no record at all."""
    return week_models(warehouse, [Week(key, start, start + pd.Timedelta(days=7))])[key]


def skipped_record(start: pd.Timestamp, reason: str) -> pd.DataFrame:
    """A week's funding_forecast_model row when it has no model: why, in skip_reason."""
    return pd.DataFrame(
        {
            "week_start": [start],
            "train_end": pd.to_datetime([pd.NaT], utc=True),
            "n_train": [0],
            "model": [b""],
            "skip_reason": [reason],
        }
    )


@dg.asset(
    kinds={"duckdb", "catboost"},
    deps=[dg.AssetDep("feature_store", partition_mapping=weeks_before(MODEL_LOOKBACK))],
    **WEEKLY,
)
def funding_forecast_model(
    context: dg.AssetExecutionContext, config: ForecastModelConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Per horizon, CatBoost fitted only on rows whose target settled before the week starts (walk-forward).

    A week with too little history is skipped, not failed: its record says why (skip_reason) and
    the other weeks of the run are trained.
    """
    meta: dict = {}
    skipped: dict[str, str] = {}
    window = pd.Timedelta(days=config.training_window_days)
    for block in weekly_blocks(context, WEEKS_PER_BLOCK):
        features = training_features(warehouse, block, window)
        records: list[tuple[pd.DataFrame, dict]] = []
        for key, start, end in block:
            rows = rows_between(features, start - window, start)
            try:
                walk_forward_split(rows, start, end, config.min_train_rows)
                model = train_forecast_model(
                    forecast_frame(rows), FEATURE_COLUMNS, start, ModelParams(seed=config.seed)
                )
            except InsufficientHistoryError as exc:
                skipped[key] = str(exc)
                context.log.warning(f"week {key}: skipped, {exc}")
                records.append((skipped_record(start, str(exc)), {"week_start": start}))
                continue
            record = pd.DataFrame(
                {
                    "week_start": [start],
                    "train_end": [model.train_end],
                    "n_train": [model.n_train],
                    "model": [model.to_bytes()],
                    "skip_reason": [""],
                }
            )
            records.append((record, {"week_start": start}))
            meta = {
                "n_train_by_horizon": dg.MetadataValue.json({h: m.n_train for h, m in model.horizons.items()}),
                "anchor_by_horizon": dg.MetadataValue.json({h: m.anchor for h, m in model.horizons.items()}),
                "train_end": str(model.train_end),
                "mass_points": dg.MetadataValue.md(markdown_table(model.mass_points.set_index("venue"))),
                "top_features": dg.MetadataValue.md(
                    markdown_table(
                        pd.DataFrame(model.top_features, columns=["feature", "importance"]).set_index("feature")
                    )
                ),
            }
            context.log.info(f"week {key}: trained on {model.n_train} rows with next-window targets before {start}")
        warehouse.replace_partitions("funding_forecast_model", records)
    n_weeks = len(context.partition_keys)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": n_weeks,
            "weeks_trained": n_weeks - len(skipped),
            "weeks_skipped": dg.MetadataValue.json(skipped),
            **meta,
        }
    )


@dg.asset(
    kinds={"duckdb"},
    deps=[
        "funding_forecast_model",
        dg.AssetDep("feature_store", partition_mapping=FORECAST_INPUTS),
        "raw_funding_prints",
        RECONSTRUCTED_TABLE,
    ],
    **WEEKLY,
)
def funding_forecasts(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Out-of-sample forecasts of the week's windows at every horizon, beside the trader baselines.

    The "venue" baseline is the venue's own predicted rate of the open window at the row's time,
    from the live and reconstructed predicted prints (the last value where there are none).

    A horizon's row is stored once all its windows have settled (`build_forecasts`); re-running the
    week later completes the longer horizons. Weeks whose model was skipped are skipped too.
    """
    written = 0
    skipped: dict[str, str] = {}
    quoted: dict[str, float] = {}
    for block in weekly_blocks(context, WEEKS_PER_BLOCK):
        models = week_models(warehouse, block)
        inputs = forecast_inputs(warehouse, block[0].start, block[-1].end)
        parts: list[tuple[pd.DataFrame, dict]] = []
        for key, start, end in block:
            model = models[key]
            if isinstance(model, str):
                skipped[key] = f"no model for the week: {model}"
                context.log.warning(f"week {key}: skipped, no model ({model})")
                continue
            frame = week_frame(inputs, start, end)
            forecasts = build_forecasts(model, frame, start, end)
            if forecasts.empty:
                raise dg.Failure(f"funding_forecasts {key}: no feature rows with a settled target in the week")
            in_week = frame.loc[(frame["funding_time"] >= start) & (frame["funding_time"] < end)]
            quoted[key] = round(float(in_week[VENUE_QUOTE].notna().mean()), 4) if len(in_week) else 0.0
            forecasts.insert(0, "week_start", start)
            parts.append((forecasts, {"week_start": start}))
        written += warehouse.replace_partitions("funding_forecasts", parts)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": written,
            "weeks_skipped": dg.MetadataValue.json(skipped),
            # Share of the week's rows whose "venue" baseline is the venue's quote (the rest: the last value).
            "venue_quote_share": dg.MetadataValue.json(quoted),
        }
    )


def live_summary(labelled: pd.DataFrame) -> dict:
    """The live forecasts' verdicts over all venues as metadata (none before a live forecast has settled)."""
    live = labelled.loc[(labelled[FORECASTS_COLUMN] == LIVE_FORECASTS) & (labelled["venue"] == ALL_VENUES)]
    if live.empty:
        return {}
    table = live.drop(columns=[FORECASTS_COLUMN, "venue"]).set_index(["horizon", "metric"])
    return {"live_verdicts_all_venues": dg.MetadataValue.md(markdown_table(table))}


def settled_live_forecasts(warehouse: Warehouse) -> pd.DataFrame:
    """The stored live forecasts whose horizon has settled, `actual` from the feature store (empty if none)."""
    live = warehouse.read("live_forecasts")
    if live.empty:
        return live
    # The feature rows from before the first forecast's inputs to past the last horizon's end.
    first, last = pd.Timestamp(live["funding_time"].min()), pd.Timestamp(live["target_time"].max())
    features = warehouse.read(
        "feature_store", {"funding_time": (first - LIVE_FEATURE_LOOKBACK, last + pd.Timedelta(days=1))}
    )
    return score_live_forecasts(live, features)


@dg.asset(
    group_name="models",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    deps=["funding_forecasts", "live_forecasts", "feature_store"],
    check_specs=[
        dg.AssetCheckSpec(
            "model_beats_best_baseline",
            asset="forecast_scorecard",
            description="Out of sample, at every horizon, the weekly model's MAE and SMAPE are below the best "
            "baseline's over all venues (warns otherwise).",
        )
    ],
)
def forecast_scorecard(warehouse: Warehouse):
    """SMAPE, MAE and hit rate per venue, horizon and predictor; the best baseline named per venue and horizon.

    Weekly forecasts and, in their own rows (`forecasts` = live), the live forecasts whose windows
    have settled. Also stores the verdicts (forecast_verdicts), their 90 % intervals with the weeks
    resampled whole (forecast_verdict_intervals, from two weeks of forecasts on; the metadata adds SMAPE
    over every venue and horizon at once against each one's best baseline), how often the weekly
    model and the realised rate land on each venue's mass points (forecast_mass_landing) and the
    weekly calibration deciles (forecast_calibration).
    """
    forecasts = warehouse.read("funding_forecasts")
    if forecasts.empty:
        raise dg.Failure("forecast_scorecard: no funding_forecasts stored yet")
    live = settled_live_forecasts(warehouse)
    card, labelled = labelled_scores(forecasts, live)
    table = labelled.loc[labelled[FORECASTS_COLUMN] == WEEKLY_FORECASTS].drop(columns=[FORECASTS_COLUMN])
    landing = landing_rates(forecasts)
    deciles = calibration_deciles(forecasts)
    warehouse.replace("forecast_scorecard", card, {})
    warehouse.replace("forecast_verdicts", labelled, {})
    warehouse.replace("forecast_mass_landing", landing, {})
    warehouse.replace("forecast_calibration", deciles, {})
    overall = table.loc[table["venue"] == ALL_VENUES]
    pooled: dict = {}
    if forecasts["week_start"].nunique() >= 2:
        intervals = verdict_intervals(forecasts)
        warehouse.replace("forecast_verdict_intervals", intervals, {})
        overall_smape = pooled_verdict(forecasts, "smape")
        pooled = {
            f"smape_all_horizons_model_vs_best_{name}": round(float(overall_smape[key]), 2)
            for name, key in (("pct", "model_vs_best_pct"), ("p5_pct", "p5_pct"), ("p95_pct", "p95_pct"))
        }
        spread: dg.MetadataValue = dg.MetadataValue.md(
            markdown_table(
                intervals.loc[intervals["venue"] == ALL_VENUES]
                .drop(columns=["venue"])
                .set_index(["horizon", "metric"])
                .round(2)
            )
            + "\n\n"
            + markdown_image(verdict_intervals_png(intervals, TARGET_PCT), "verdict intervals")
        )
    else:
        spread = dg.MetadataValue.text("one week of forecasts: no interval (weeks are resampled whole)")
        if warehouse.has_table("forecast_verdict_intervals"):
            # Intervals of forecasts no longer stored would sit beside the new verdicts: cleared instead.
            warehouse.replace("forecast_verdict_intervals", warehouse.read("forecast_verdict_intervals").iloc[0:0], {})
    wins = overall["model_value"] < overall["best_baseline_value"]
    summary = {
        f"{r.horizon}_{r.metric}_model_vs_{r.best_baseline}_pct": round(float(r.model_vs_best_pct), 2)
        for r in overall.itertuples()
    }
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(card),
            "forecasts_scored": len(forecasts),
            "live_forecasts_scored": len(live),
            "weeks": int(forecasts["week_start"].nunique()),
            "verdicts_all_venues": dg.MetadataValue.md(
                markdown_table(overall.drop(columns=["venue"]).set_index(["horizon", "metric"]))
            ),
            "verdict_intervals_all_venues": spread,
            **pooled,
            "calibration_plot": dg.MetadataValue.md(markdown_image(calibration_png(deciles), "calibration")),
            **live_summary(labelled),
            **summary,
        }
    )
    yield dg.AssetCheckResult(
        check_name="model_beats_best_baseline",
        passed=bool(wins.all()),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"cells_won": int(wins.sum()), "cells": len(overall), **summary},
    )
