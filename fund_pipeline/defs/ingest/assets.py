"""Ingest: market universe, raw funding prints and hourly bars per day × venue."""

import dagster as dg
import pandas as pd

from fund_pipeline.defs.ingest.expectations import validate_raw_prints
from fund_pipeline.defs.partitions import DAILY_VENUE_PARTITIONS
from fund_pipeline.defs.scope import daily_venue_spans
from fund_pipeline.domain.prints import MARKET_COLUMNS, validate_prints
from fund_pipeline.domain.quality import off_grid_prints
from fund_pipeline.live.landing import read_landed_prints
from fund_pipeline.resources import WAREHOUSE_POOL, LandingZone, MarketSourceResource, Warehouse

INGEST = dict(
    partitions_def=DAILY_VENUE_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingest",
    pool=WAREHOUSE_POOL,
)


class UniverseConfig(dg.Config):
    """Liquidity filters. Markets whose source does not publish a figure are kept and counted."""

    min_volume_usd_24h: float = 2_000_000.0
    min_open_interest_usd: float = 1_000_000.0
    min_max_leverage: float = 5.0


def passes_filters(markets: pd.DataFrame, config: UniverseConfig) -> pd.Series:
    def at_least(col: str, floor: float) -> pd.Series:
        return markets[col].isna() | (markets[col] >= floor)

    return (
        at_least("volume_usd_24h", config.min_volume_usd_24h)
        & at_least("open_interest_usd", config.min_open_interest_usd)
        & at_least("max_leverage", config.min_max_leverage)
    )


@dg.asset(kinds={"duckdb"}, **INGEST)
def market_universe(
    context: dg.AssetExecutionContext,
    config: UniverseConfig,
    market_source: MarketSourceResource,
    warehouse: Warehouse,
) -> dg.MaterializeResult:
    """Perp markets per day and venue that pass the liquidity filters, with each symbol's funding interval."""
    listed = kept = unknown = 0
    for venue, start, end in daily_venue_spans(context):
        source = market_source.venue_source(venue)
        days = pd.date_range(start, end - pd.Timedelta(days=1), freq="D")
        markets = pd.concat([source.markets(venue, day) for day in days], ignore_index=True)
        if markets.empty:
            raise dg.Failure(
                f"market_universe: the {market_source.kind} source lists no markets on {venue} in [{start:%Y-%m-%d}, {end:%Y-%m-%d})"
            )
        keep = passes_filters(markets, config)
        unknown += int(markets[["volume_usd_24h", "open_interest_usd"]].isna().any(axis=1).sum())
        listed += len(markets)
        kept += warehouse.replace(
            "market_universe", markets.loc[keep, MARKET_COLUMNS], {"venue": [venue], "date": (start, end)}
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": kept,
            "markets_listed": listed,
            "markets_filtered_out": listed - kept,
            "markets_without_liquidity_figures": unknown,
        }
    )


@dg.asset(
    kinds={"duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            "prints_pass_expectations",
            asset="raw_funding_prints",
            description="Great Expectations suite: nulls, rate range, intervals, kinds, unique key.",
        ),
        dg.AssetCheckSpec(
            "funding_times_on_venue_grid",
            asset="raw_funding_prints",
            description="Settled funding times sit on the venue's settlement grid.",
        ),
    ],
    **INGEST,
)
def raw_funding_prints(
    context: dg.AssetExecutionContext,
    market_source: MarketSourceResource,
    warehouse: Warehouse,
    landing: LandingZone,
):
    """Settled prints from the source plus predicted prints landed by the live collector.

    A partition with no prints, or with NaN/infinite rates, fails before anything is written:
    the rows stored from an earlier run stay as they were.
    """
    frames = []
    for venue, start, end in daily_venue_spans(context):
        settled = market_source.venue_source(venue).funding_prints(venue, start, end)
        if settled.empty:
            raise dg.Failure(
                f"raw_funding_prints: the {market_source.kind} source returned no settled prints for {venue} in [{start:%Y-%m-%d}, {end:%Y-%m-%d})"
            )
        landed = read_landed_prints(landing.root(), venue, start, end)
        prints = validate_prints(pd.concat([settled, landed], ignore_index=True) if len(landed) else settled)
        frames.append((venue, start, end, prints))
    everything = pd.concat([f[3] for f in frames], ignore_index=True)
    success, summaries = validate_raw_prints(everything)
    off_grid = off_grid_prints(everything.loc[everything["kind"] == "settled"])
    for venue, start, end, prints in frames:
        warehouse.replace("raw_funding_prints", prints, {"venue": [venue], "funding_time": (start, end)})
    by_kind = everything["kind"].value_counts().to_dict()
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(everything),
            "settled_prints": int(by_kind.get("settled", 0)),
            "predicted_prints": int(by_kind.get("predicted", 0)),
            "symbols": int(everything["symbol"].nunique()),
            "intervals_h": sorted(float(x) for x in everything["interval_h"].unique()),
        }
    )
    yield dg.AssetCheckResult(
        check_name="prints_pass_expectations",
        passed=success,
        metadata={"failed": [s for s in summaries if not s["success"]], "expectations": len(summaries)},
    )
    yield dg.AssetCheckResult(
        check_name="funding_times_on_venue_grid",
        passed=off_grid.empty,
        metadata={
            "off_grid_prints": len(off_grid),
            "examples": off_grid.head(5)[["venue", "symbol", "funding_time", "interval_h"]]
            .astype(str)
            .to_dict("records"),
        },
    )


@dg.asset(kinds={"duckdb"}, **INGEST)
def market_bars(
    context: dg.AssetExecutionContext,
    market_source: MarketSourceResource,
    warehouse: Warehouse,
) -> dg.MaterializeResult:
    """Hourly perp and spot OHLCV, mark/index and open interest (empty where a source has no bars)."""
    rows = 0
    for venue, start, end in daily_venue_spans(context):
        bars = market_source.venue_source(venue).bars(venue, start, end)
        rows += warehouse.replace("market_bars", bars, {"venue": [venue], "ts": (start, end)})
    if rows == 0:
        context.log.warning(f"the {market_source.kind} source provides no bars for this partition")
    return dg.MaterializeResult(metadata={"dagster/row_count": rows})
