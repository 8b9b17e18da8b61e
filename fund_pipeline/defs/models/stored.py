"""The weekly models as stored: one reader for every asset that forecasts with them (weekly, live, arbitrage)."""

from collections.abc import Sequence

import pandas as pd

from fund_pipeline.domain.forecast import TrainedModel
from fund_pipeline.warehouse import Warehouse

MODEL_TABLE = "funding_forecast_model"


def stored_models(warehouse: Warehouse, week_starts: Sequence[pd.Timestamp]) -> dict[pd.Timestamp, TrainedModel | str]:
    """Each stored week's model, or the reason it was skipped, in one read; a week with no record is absent."""
    stored = warehouse.read(MODEL_TABLE, {"week_start": list(week_starts)})
    models: dict[pd.Timestamp, TrainedModel | str] = {}
    for row in stored.itertuples(index=False):
        reason = str(row.skip_reason)
        models[pd.Timestamp(row.week_start)] = reason if reason else TrainedModel.from_bytes(bytes(row.model))
    return models
