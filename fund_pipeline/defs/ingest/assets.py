"""Ingest: market universe, raw funding prints and hourly bars per day × venue."""

from typing import Any

import dagster as dg
import pandas as pd

from fund_pipeline.defs.ingest.expectations import validate_raw_prints
from fund_pipeline.defs.partitions import DAILY_VENUE_PARTITIONS
from fund_pipeline.defs.scope import daily_venue_spans
from fund_pipeline.domain.predicted import ReconstructionConfig, thin_to_cadence
from fund_pipeline.domain.prints import MARKET_COLUMNS, require_columns, storable_prints
from fund_pipeline.domain.quality import off_grid_prints
from fund_pipeline.domain.universe import LiquidityFilter, without_liquidity_figures
from fund_pipeline.live.landing import SegmentProblem, read_landed_prints
from fund_pipeline.resources import WAREHOUSE_POOL, LandingZone, MarketSourceResource, Warehouse
from fund_pipeline.venues.registry import settlement_phase_h

INGEST: dict[str, Any] = dict(
    partitions_def=DAILY_VENUE_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingest",
    pool=WAREHOUSE_POOL,
)


_LIQUIDITY = LiquidityFilter()


class UniverseConfig(dg.Config):
    """Liquidity floors (domain's LiquidityFilter, same defaults); a figure a source lacks passes, counted."""

    min_volume_usd_24h: float = _LIQUIDITY.min_volume_usd_24h
    min_open_interest_usd: float = _LIQUIDITY.min_open_interest_usd
    min_max_leverage: float = _LIQUIDITY.min_max_leverage

    def liquidity_filter(self) -> LiquidityFilter:
        return LiquidityFilter(self.min_volume_usd_24h, self.min_open_interest_usd, self.min_max_leverage)


@dg.asset(kinds={"duckdb"}, **INGEST)
def market_universe(
    context: dg.AssetExecutionContext,
    config: UniverseConfig,
    market_source: MarketSourceResource,
    warehouse: Warehouse,
) -> dg.MaterializeResult:
    """Perp markets per day and venue that pass the liquidity filters, with each symbol's funding interval, margin
    (linear or inverse), margin and settlement asset and contract size."""
    listed = unknown = 0
    liquidity, parts, by_margin = config.liquidity_filter(), [], pd.Series(dtype="int64")
    for venue, start, end in daily_venue_spans(context):
        source = market_source.venue_source(venue)
        days = pd.date_range(start, end - pd.Timedelta(days=1), freq="D")
        markets = pd.concat([source.markets(venue, day) for day in days], ignore_index=True)
        if markets.empty:
            raise dg.Failure(
                f"market_universe: the {market_source.kind} source lists no markets on {venue} "
                f"in [{start:%Y-%m-%d}, {end:%Y-%m-%d})"
            )
        what = f"market_universe: the {market_source.kind} source's markets on {venue}"
        require_columns(markets, MARKET_COLUMNS, what)
        unknown += without_liquidity_figures(markets)
        listed += len(markets)
        passing = markets.loc[liquidity.passes(markets), MARKET_COLUMNS]
        by_margin = by_margin.add(passing["margin"].value_counts(), fill_value=0)
        parts.append((passing, {"venue": [venue], "date": (start, end)}))
    kept = warehouse.replace_partitions("market_universe", parts)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": kept,
            "markets_listed": listed,
            "markets_filtered_out": listed - kept,
            "markets_without_liquidity_figures": unknown,
            "markets_by_margin": dg.MetadataValue.json({str(k): int(v) for k, v in by_margin.items()}),
        }
    )


@dg.asset(
    kinds={"duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            "prints_pass_expectations",
            asset="raw_funding_prints",
            description="Great Expectations suite: nulls, rate range, intervals, kinds, unique key. Blocking.",
            blocking=True,
        ),
        dg.AssetCheckSpec(
            "funding_times_on_venue_grid",
            asset="raw_funding_prints",
            description="Settled funding times sit on the venue's settlement grid. Blocking.",
            blocking=True,
        ),
        dg.AssetCheckSpec(
            "landed_segments_readable",
            asset="raw_funding_prints",
            description="Every landing segment read had the prints schema; bad ones are skipped and listed (warns).",
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

    Landed quotes are thinned to the reconstruction's cadence (the quote in force at each 5-minute
    point, `thin_to_cadence`): the warehouse holds live and reconstructed quotes on one grid,
    never the stream's 1 Hz.

    Before anything is written: unusable or implausible rates fail the run naming the rows; rows
    sharing a key collapse to one (exact copies, and conflicts resolved by the rule in
    `domain.prints.storable_prints`), counted in metadata; the schema and grid checks run on what
    would be stored and, being blocking, stop the run with nothing written when they fail. All
    partitions of the run are then written in one transaction.
    """
    parts, reports = [], []
    problems: list[SegmentProblem] = []
    for venue, start, end in daily_venue_spans(context):
        settled = market_source.venue_source(venue).funding_prints(venue, start, end)
        if settled.empty:
            raise dg.Failure(
                f"raw_funding_prints: the {market_source.kind} source returned no settled prints for {venue} "
                f"in [{start:%Y-%m-%d}, {end:%Y-%m-%d})"
            )
        landed = thin_to_cadence(
            read_landed_prints(landing.root(), venue, start, end, problems), ReconstructionConfig().cadence_s
        )
        prints, report = storable_prints(pd.concat([settled, landed], ignore_index=True) if len(landed) else settled)
        parts.append((prints, {"venue": [venue], "funding_time": (start, end)}))
        reports.append(report)
    everything = pd.concat([frame for frame, _ in parts], ignore_index=True)
    success, summaries = validate_raw_prints(everything)
    off_grid = off_grid_prints(everything.loc[everything["kind"] == "settled"], settlement_phase_h())
    skipped = {p.path: p.reason for p in problems}
    for path, reason in skipped.items():
        context.log.warning(f"landing segment skipped: {path}: {reason}")
    checks = [
        dg.AssetCheckResult(
            check_name="landed_segments_readable",
            passed=not skipped,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"segments_skipped": len(skipped), "skipped": skipped},
        ),
        dg.AssetCheckResult(
            check_name="prints_pass_expectations",
            passed=success,
            metadata={"failed": [s for s in summaries if not s["success"]], "expectations": len(summaries)},
        ),
        dg.AssetCheckResult(
            check_name="funding_times_on_venue_grid",
            passed=off_grid.empty,
            metadata={
                "off_grid_prints": len(off_grid),
                "examples": off_grid.head(5)[["venue", "symbol", "funding_time", "interval_h"]]
                .astype(str)
                .to_dict("records"),
            },
        ),
    ]
    if not (success and off_grid.empty):
        yield from checks
        raise dg.Failure(
            "raw_funding_prints: a blocking check failed (see the check results); nothing was written",
            metadata={"failed_expectations": [s["expectation"] for s in summaries if not s["success"]]},
        )
    warehouse.replace_partitions("raw_funding_prints", parts)
    by_kind = everything["kind"].value_counts().to_dict()
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(everything),
            "settled_prints": int(by_kind.get("settled", 0)),
            "predicted_prints": int(by_kind.get("predicted", 0)),
            "symbols": int(everything["symbol"].nunique()),
            "intervals_h": sorted(float(x) for x in everything["interval_h"].unique()),
            "duplicate_rows_collapsed": sum(r.duplicates for r in reports),
            "key_conflicts_resolved": sum(r.conflicts for r in reports),
            "landing_segments_skipped": len(skipped),
        }
    )
    yield from checks


@dg.asset(kinds={"duckdb"}, **INGEST)
def market_bars(
    context: dg.AssetExecutionContext,
    market_source: MarketSourceResource,
    warehouse: Warehouse,
) -> dg.MaterializeResult:
    """Hourly perp and spot OHLCV, mark/index and open interest (empty where a source has no bars)."""
    parts = [
        (market_source.venue_source(venue).bars(venue, start, end), {"venue": [venue], "ts": (start, end)})
        for venue, start, end in daily_venue_spans(context)
    ]
    rows = warehouse.replace_partitions("market_bars", parts)
    if rows == 0:
        context.log.warning(f"the {market_source.kind} source provides no bars for this partition")
    return dg.MaterializeResult(metadata={"dagster/row_count": rows})
