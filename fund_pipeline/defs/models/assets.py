"""Models: weekly walk-forward CatBoost fits, their out-of-sample forecasts and the scorecard."""

import dagster as dg
import pandas as pd

from fund_pipeline.defs.partitions import WEEKLY_PARTITIONS
from fund_pipeline.defs.scope import weekly_windows
from fund_pipeline.domain.features import FEATURE_COLUMNS
from fund_pipeline.domain.forecast import (
    FORECAST_COLUMNS,
    TrainedModel,
    baseline_predictions,
    predict,
    scorecard,
    scorecard_summary,
    train_forecast_model,
    walk_forward_split,
)
from fund_pipeline.plots import grouped_bars, markdown_image, markdown_table
from fund_pipeline.resources import WAREHOUSE_POOL, Warehouse

WEEKLY = dict(
    partitions_def=WEEKLY_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="models",
    pool=WAREHOUSE_POOL,
)


class ForecastModelConfig(dg.Config):
    training_window_days: int = 120
    min_train_rows: int = 200
    seed: int = 7


def training_rows(
    warehouse: Warehouse, week_start: pd.Timestamp, week_end: pd.Timestamp, window_days: int
) -> pd.DataFrame:
    """Feature rows from the training window through the week; the split decides who sees what."""
    return warehouse.read("feature_store", {"funding_time": (week_start - pd.Timedelta(days=window_days), week_end)})


@dg.asset(kinds={"duckdb", "catboost"}, deps=["feature_store"], **WEEKLY)
def funding_forecast_model(
    context: dg.AssetExecutionContext, config: ForecastModelConfig, warehouse: Warehouse
) -> dg.MaterializeResult:
    """CatBoost fitted only on rows whose target settled before the week starts (walk-forward)."""
    meta = {}
    for key, start, end in weekly_windows(context):
        rows = training_rows(warehouse, start, end, config.training_window_days)
        train, _ = walk_forward_split(rows, start, end, config.min_train_rows)
        model = train_forecast_model(train, FEATURE_COLUMNS, config.seed)
        record = pd.DataFrame(
            {
                "week_start": [start],
                "train_end": [train["target_time"].max()],
                "n_train": [len(train)],
                "model": [model.to_bytes()],
            }
        )
        warehouse.replace("funding_forecast_model", record, {"week_start": (start, start + pd.Timedelta(seconds=1))})
        meta = {
            "n_train": len(train),
            "train_end": str(train["target_time"].max()),
            "top_features": dg.MetadataValue.md(
                markdown_table(pd.DataFrame(model.top_features, columns=["feature", "importance"]).set_index("feature"))
            ),
        }
        context.log.info(f"week {key}: trained on {len(train)} rows with targets before {start}")
    return dg.MaterializeResult(metadata={"dagster/row_count": len(weekly_windows(context)), **meta})


@dg.asset(kinds={"duckdb"}, deps=["funding_forecast_model", "feature_store"], **WEEKLY)
def funding_forecasts(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Out-of-sample predictions for the week's windows, beside the naive baselines."""
    written = 0
    for key, start, end in weekly_windows(context):
        stored = warehouse.read("funding_forecast_model", {"week_start": (start, start + pd.Timedelta(seconds=1))})
        if stored.empty:
            raise dg.Failure(f"funding_forecasts {key}: no funding_forecast_model for the week; materialise it first")
        model = TrainedModel.from_bytes(bytes(stored["model"].iloc[0]))
        test = warehouse.read("feature_store", {"funding_time": (start, end)})
        test = test.loc[test["target_rate"].notna()].reset_index(drop=True)
        if test.empty:
            raise dg.Failure(f"funding_forecasts {key}: no feature rows with a settled target in the week")
        forecasts = pd.concat([test, baseline_predictions(test)], axis=1)
        forecasts["pred_model"] = predict(model, test)
        forecasts["actual"] = test["target_rate"]
        forecasts["week_start"] = start
        written += warehouse.replace(
            "funding_forecasts",
            forecasts[["week_start", *FORECAST_COLUMNS]],
            {"week_start": (start, start + pd.Timedelta(seconds=1))},
        )
    return dg.MaterializeResult(metadata={"dagster/row_count": written})


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
