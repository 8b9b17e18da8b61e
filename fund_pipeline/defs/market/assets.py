"""Market-wide aggregates: OI-weighted funding per base asset and cumulative funding."""

from typing import Any

import dagster as dg
import pandas as pd

from fund_pipeline.defs.partitions import DAILY_PARTITIONS
from fund_pipeline.defs.scope import daily_spans
from fund_pipeline.domain.aggregates import aggregate_funding_rate as aggregate_funding
from fund_pipeline.domain.aggregates import cumulative_funding_rate as cumulative_funding
from fund_pipeline.domain.aggregates import venue_day_rate_8h
from fund_pipeline.plots import heatmap, markdown_image
from fund_pipeline.resources import WAREHOUSE_POOL, Warehouse

# The latest settled rate as of an hour can be a day old on 8h venues after a missed settlement.
# Both look-backs read day × venue prints from a daily asset: Dagster's built-in mappings cannot
# declare them (see defs/partitions.py); the deps map the same day.
RATE_LOOKBACK = pd.Timedelta(days=2)
CUMULATIVE_LOOKBACK = pd.Timedelta(days=30)

DAILY: dict[str, Any] = dict(
    partitions_def=DAILY_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="market",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
)


def venue_day_heatmap(warehouse: Warehouse, start: pd.Timestamp, end: pd.Timestamp) -> str:
    """Mean 8h-normalised settled funding per venue and day, in basis points."""
    matrix = venue_day_rate_8h(warehouse.settled_prints(start, end))
    matrix.columns = [d.strftime("%m-%d") for d in matrix.columns]
    return markdown_image(heatmap(matrix, "mean 8h funding per venue and day", "bp per 8h"), "venue × day funding")


@dg.asset(deps=["raw_funding_prints", "market_bars"], **DAILY)
def aggregate_funding_rate(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Hourly OI-weighted funding per base asset across venues, as 8h, daily, 30-day and yearly rates."""
    parts = []
    for start, end in daily_spans(context):
        prints = warehouse.settled_prints(start - RATE_LOOKBACK, end)
        bars = warehouse.read("market_bars", {"ts": (start, end)})
        if prints.empty:
            raise dg.Failure(f"aggregate_funding_rate: no settled prints before {end}")
        parts.append((aggregate_funding(prints, bars, start, end), {"ts": (start, end)}))
    rows = warehouse.replace_partitions("aggregate_funding_rate", parts)
    first, last = daily_spans(context)[0][0], daily_spans(context)[-1][1]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "venue_day_heatmap": dg.MetadataValue.md(venue_day_heatmap(warehouse, first, last)),
        }
    )


@dg.asset(deps=["raw_funding_prints"], **DAILY)
def cumulative_funding_rate(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Rolling compounded funding over 1, 7 and 30 days per venue × symbol."""
    parts = [
        (
            cumulative_funding(warehouse.settled_prints(start - CUMULATIVE_LOOKBACK, end), start, end),
            {"funding_time": (start, end)},
        )
        for start, end in daily_spans(context)
    ]
    rows = warehouse.replace_partitions("cumulative_funding_rate", parts)
    return dg.MaterializeResult(metadata={"dagster/row_count": rows})
