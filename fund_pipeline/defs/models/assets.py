"""Models: weekly walk-forward CatBoost fits, their out-of-sample forecasts and the scorecard."""

from typing import Any

import dagster as dg
import pandas as pd

from fund_pipeline.defs.partitions import MODEL_LOOKBACK, WEEKLY_PARTITIONS, weeks_before
from fund_pipeline.defs.scope import weekly_windows
from fund_pipeline.domain.features import FEATURE_COLUMNS
from fund_pipeline.domain.forecast import (
    InsufficientHistoryError,
    TrainedModel,
    build_forecasts,
    forecast_rows,
    scorecard,
    scorecard_summary,
    train_forecast_model,
    walk_forward_split,
)
from fund_pipeline.plots import grouped_bars, markdown_image, markdown_table
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
    seed: int = 7


def training_rows(warehouse: Warehouse, week_start: pd.Timestamp, window_days: int) -> pd.DataFrame:
    """Feature rows of the training window before the week; the split keeps those whose target settled before it."""
    return warehouse.read("feature_store", {"funding_time": (week_start - pd.Timedelta(days=window_days), week_start)})


def week_key(start: pd.Timestamp) -> dict:
    """`start` as a warehouse `where` for the rows stored at exactly that instant."""
    return {"week_start": (start, start + pd.Timedelta(seconds=1))}


@dg.asset(
    kinds={"duckdb", "catboost"},
    deps=[dg.AssetDep("feature_store", partition_mapping=weeks_before(MODEL_LOOKBACK))],
    **WEEKLY,
)
def funding_forecast_model(
    context: dg.AssetExecutionContext, config: ForecastModelConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """CatBoost fitted only on rows whose target settled before the week starts (walk-forward).

    A week with too little history is skipped, not failed: its record says why (skip_reason) and
    the other weeks of the run are trained.
    """
    meta: dict = {}
    skipped: dict[str, str] = {}
    for key, start, end in weekly_windows(context):
        rows = training_rows(warehouse, start, config.training_window_days)
        try:
            train, _ = walk_forward_split(rows, start, end, config.min_train_rows)
        except InsufficientHistoryError as exc:
            skipped[key] = str(exc)
            context.log.warning(f"week {key}: skipped, {exc}")
            record = pd.DataFrame(
                {
                    "week_start": [start],
                    "train_end": [pd.NaT],
                    "n_train": [0],
                    "model": [b""],
                    "skip_reason": [str(exc)],
                }
            )
            record["train_end"] = pd.to_datetime(record["train_end"], utc=True)
            warehouse.replace("funding_forecast_model", record, week_key(start))
            continue
        model = train_forecast_model(train, FEATURE_COLUMNS, config.seed)
        record = pd.DataFrame(
            {
                "week_start": [start],
                "train_end": [model.train_end],
                "n_train": [len(train)],
                "model": [model.to_bytes()],
                "skip_reason": [""],
            }
        )
        warehouse.replace("funding_forecast_model", record, week_key(start))
        meta = {
            "n_train": len(train),
            "train_end": str(model.train_end),
            "top_features": dg.MetadataValue.md(
                markdown_table(pd.DataFrame(model.top_features, columns=["feature", "importance"]).set_index("feature"))
            ),
        }
        context.log.info(f"week {key}: trained on {len(train)} rows with targets before {start}")
    n_weeks = len(context.partition_keys)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": n_weeks,
            "weeks_trained": n_weeks - len(skipped),
            "weeks_skipped": dg.MetadataValue.json(skipped),
            **meta,
        }
    )


@dg.asset(kinds={"duckdb"}, deps=["funding_forecast_model", "feature_store"], **WEEKLY)
def funding_forecasts(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Out-of-sample predictions for the week's windows, beside the naive baselines (`build_forecasts`).

    Weeks whose model was skipped for too little history are skipped too, with the model's note.
    """
    written = 0
    skipped: dict[str, str] = {}
    for key, start, end in weekly_windows(context):
        stored = warehouse.read("funding_forecast_model", week_key(start))
        if stored.empty:
            raise dg.Failure(f"funding_forecasts {key}: no funding_forecast_model for the week; materialise it first")
        reason = str(stored["skip_reason"].iloc[0])
        if reason:
            skipped[key] = f"no model for the week: {reason}"
            context.log.warning(f"week {key}: skipped, no model ({reason})")
            continue
        model = TrainedModel.from_bytes(bytes(stored["model"].iloc[0]))
        test = forecast_rows(warehouse.read("feature_store", {"funding_time": (start, end)}), start, end)
        if test.empty:
            raise dg.Failure(f"funding_forecasts {key}: no feature rows with a settled target in the week")
        forecasts = build_forecasts(model, test)
        forecasts.insert(0, "week_start", start)
        written += warehouse.replace("funding_forecasts", forecasts, week_key(start))
    return dg.MaterializeResult(
        metadata={"dagster/row_count": written, "weeks_skipped": dg.MetadataValue.json(skipped)}
    )


@dg.asset(
    group_name="models",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    deps=["funding_forecasts"],
    check_specs=[
        dg.AssetCheckSpec(
            "model_beats_best_baseline",
            asset="forecast_scorecard",
            description="Out of sample, the model's SMAPE is below the best naive baseline's (warns otherwise).",
        )
    ],
)
def forecast_scorecard(warehouse: Warehouse):
    """SMAPE, MAE and direction hit-rate per venue for the model and each naive baseline, all weeks."""
    forecasts = warehouse.read("funding_forecasts")
    if forecasts.empty:
        raise dg.Failure("forecast_scorecard: no funding_forecasts stored yet")
    card = scorecard(forecasts)
    warehouse.replace("forecast_scorecard", card, {})
    summary = scorecard_summary(card)
    overall = card.loc[card["venue"] == "all"].set_index("predictor")
    plot = grouped_bars(
        card.pivot(index="venue", columns="predictor", values="smape"),
        "out-of-sample SMAPE by venue (lower is better)",
        "SMAPE",
    )
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(card),
            "forecasts_scored": len(forecasts),
            "weeks": int(forecasts["week_start"].nunique()),
            "scorecard_all_venues": dg.MetadataValue.md(markdown_table(overall[["smape", "mae", "hit_rate", "n"]])),
            "smape_plot": dg.MetadataValue.md(markdown_image(plot, "scorecard")),
            **{k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool))},
        }
    )
    yield dg.AssetCheckResult(
        check_name="model_beats_best_baseline",
        passed=bool(summary["model_beats_best_baseline"]),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool))},
    )
