"""Market-wide aggregates: weighted funding and cumulative funding per base, venue × base and margin type."""

from typing import Any

import dagster as dg
import pandas as pd

from fund_pipeline.defs.partitions import DAILY_PARTITIONS
from fund_pipeline.defs.scope import daily_spans
from fund_pipeline.domain.aggregates import (
    ALL_VENUES,
    CUMULATIVE_LOOKBACK,
    MARKET_KEY,
    VOLUME_LOOKBACK,
    venue_day_rate_8h,
)
from fund_pipeline.domain.aggregates import aggregate_funding_rate as aggregate_funding
from fund_pipeline.domain.aggregates import cumulative_funding_rate as cumulative_funding
from fund_pipeline.domain.contracts import ALL_MARGIN, CONTRACT_SIZE
from fund_pipeline.plots import heatmap, markdown_image, markdown_table
from fund_pipeline.resources import WAREHOUSE_POOL, Warehouse

# The latest settled rate as of an hour can be a day old on 8h venues after a missed settlement.
# The look-backs read day × venue prints and bars from a daily asset: Dagster's built-in mappings
# cannot declare them (see defs/partitions.py); the deps map the same day.
RATE_LOOKBACK = pd.Timedelta(days=2)
DAY = pd.Timedelta(days=1)

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


def bars_with_contract_size(warehouse: Warehouse, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Hourly bars in [start, end), with each market's contract size from the universe where it states one
    (open interest stated in contracts needs it) and the bars do not."""
    bars = warehouse.read("market_bars", {"ts": (start, end)})
    if CONTRACT_SIZE in bars.columns:
        return bars
    universe = warehouse.read("market_universe", {"date": (start - DAY, end)})
    if CONTRACT_SIZE not in universe.columns:
        return bars
    sizes = universe.dropna(subset=[CONTRACT_SIZE]).sort_values("date").drop_duplicates(MARKET_KEY, keep="last")
    return bars.merge(sizes[[*MARKET_KEY, CONTRACT_SIZE]], on=MARKET_KEY, how="left")


def latest_by_base(afr: pd.DataFrame) -> str:
    """The last hour's cross-venue aggregates per base, OI- and volume-weighted, as a markdown table."""
    last = afr.loc[(afr["ts"] == afr["ts"].max()) & (afr["venue"] == ALL_VENUES)]
    table = last.pivot_table(index="base", columns=["margin", "weighting"], values="afr_1y", dropna=False)
    table.columns = [f"{margin} {weighting} APR" for margin, weighting in table.columns]
    return markdown_table(table.sort_values(f"{ALL_MARGIN} oi APR", ascending=False), "{:.4f}")


@dg.asset(deps=["raw_funding_prints", "market_bars", "market_universe"], **DAILY)
def aggregate_funding_rate(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Hourly funding per base and per venue × base, by margin type, OI- and 24h-volume-weighted, as 8h, daily,
    30-day and yearly rates."""
    parts = []
    for start, end in daily_spans(context):
        prints = warehouse.settled_prints(start - RATE_LOOKBACK, end)
        if prints.empty:
            raise dg.Failure(f"aggregate_funding_rate: no settled prints before {end}")
        bars = bars_with_contract_size(warehouse, start - VOLUME_LOOKBACK, end)
        parts.append((aggregate_funding(prints, bars, start, end), {"ts": (start, end)}))
    rows = warehouse.replace_partitions("aggregate_funding_rate", parts)
    first, last = daily_spans(context)[0][0], daily_spans(context)[-1][1]
    newest = parts[-1][0]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "venue_day_heatmap": dg.MetadataValue.md(venue_day_heatmap(warehouse, first, last)),
            "latest_hour_by_base": dg.MetadataValue.md(latest_by_base(newest) if len(newest) else "no rows"),
            "groups_without_weight": int(newest["total_weight_usd"].eq(0).sum()),
        }
    )


@dg.asset(deps=["raw_funding_prints", "market_bars", "market_universe"], **DAILY)
def cumulative_funding_rate(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """Hourly compounded funding over 1, 7 and 30 days per base and per venue × base, by margin type, OI-weighted."""
    parts = [
        (
            cumulative_funding(
                warehouse.settled_prints(start - CUMULATIVE_LOOKBACK, end),
                bars_with_contract_size(warehouse, start, end),
                start,
                end,
            ),
            {"ts": (start, end)},
        )
        for start, end in daily_spans(context)
    ]
    rows = warehouse.replace_partitions("cumulative_funding_rate", parts)
    return dg.MaterializeResult(metadata={"dagster/row_count": rows})
