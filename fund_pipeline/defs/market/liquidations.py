"""Liquidations: the events per venue (landed by the live collector, and the market source's history) and their
hourly buy/sell USD per venue × base, with the notebooks' plots."""

from typing import Any

import dagster as dg
import pandas as pd

from fund_pipeline.defs.market.assets import DAILY, bars_with_contract_size
from fund_pipeline.defs.scope import daily_spans
from fund_pipeline.domain.contracts import open_interest_usd
from fund_pipeline.domain.liquidations import liquidations_hourly as hourly_liquidations
from fund_pipeline.domain.liquidations import merge_liquidations
from fund_pipeline.live.landing import SegmentProblem, read_landed_liquidations, reject_segments
from fund_pipeline.plots import (
    liquidation_bars_with_open_interest,
    liquidations_against_price,
    markdown_image,
    markdown_table,
    open_interest_stacked,
)
from fund_pipeline.resources import LandingZone, MarketSourceResource, Warehouse
from fund_pipeline.sources.liquidation_history import source_liquidations

LIQUIDATIONS_TABLE = "liquidations"
HOURLY_TABLE = "liquidations_hourly"


@dg.asset(**DAILY)
def liquidations(
    context: dg.AssetExecutionContext, warehouse: Warehouse, market_source: MarketSourceResource, landing: LandingZone
) -> dg.MaterializeResult:
    """Every forced liquidation of the day, per venue: what the live collector landed and the source's history
    (the simulated market's, OKX's REST history over ccxt), one row per liquidation."""
    source = market_source.get()
    problems: list[SegmentProblem] = []
    parts = []
    from_source = landed = 0
    for start, end in daily_spans(context):
        history = [source_liquidations(source, v, start, end, market_source.bases) for v in source.venues()]
        live = read_landed_liquidations(landing.root(), start, end, problems)
        from_source += sum(len(h) for h in history)
        landed += len(live)
        parts.append((typed(merge_liquidations(live, *history)), {"ts": (start, end)}))
    set_aside = reject_segments(landing.root(), problems, "liquidations")
    rows = warehouse.replace_partitions(LIQUIDATIONS_TABLE, parts)
    everything = pd.concat([frame for frame, _ in parts], ignore_index=True)
    by_venue = everything.groupby(["venue", "side"])["notional_usd"].sum().unstack(fill_value=0.0)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "landed_rows": landed,
            "source_rows": from_source,
            "bad_segments_set_aside": len(set_aside),
            "usd_by_venue_and_side": dg.MetadataValue.md(
                markdown_table(by_venue, "{:,.0f}") if len(by_venue) else "no liquidations"
            ),
        }
    )


@dg.asset(deps=["liquidations", "market_bars", "market_universe"], **DAILY)
def liquidations_hourly(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """USD liquidated per venue × base and hour: `sell_usd` longs, `buy_usd` shorts, and the count of events."""
    spans = daily_spans(context)
    events = [stored(warehouse, s, e) for s, e in spans]
    parts = [(typed(hourly_liquidations(ev, s, e)), {"ts": (s, e)}) for ev, (s, e) in zip(events, spans, strict=True)]
    rows = warehouse.replace_partitions(HOURLY_TABLE, parts)
    shown = plots(warehouse, pd.concat(events, ignore_index=True), spans[0][0], spans[-1][1])
    return dg.MaterializeResult(metadata={"dagster/row_count": rows, **shown})


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as strings: a day without liquidations still creates its table with VARCHAR, not NULL, columns."""
    return frame.astype({c: "string" for c in frame.columns if frame[c].dtype == object})


def stored(warehouse: Warehouse, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The stored liquidations with ts in [start, end); a clear failure before the table exists."""
    if not warehouse.has_table(LIQUIDATIONS_TABLE):
        raise dg.Failure(f"{HOURLY_TABLE}: no {LIQUIDATIONS_TABLE} table yet; materialise {LIQUIDATIONS_TABLE} first")
    return warehouse.read(LIQUIDATIONS_TABLE, {"ts": (start, end)})


def plots(warehouse: Warehouse, events: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, Any]:
    """The notebooks' three views of the base with the most USD liquidated in `events` (those of [start, end))."""
    if events.empty:
        return {"plots": "no liquidations in the range"}
    base = events.groupby("base")["notional_usd"].sum().idxmax()
    events = events[events["base"] == base]
    venue = events.groupby("venue")["notional_usd"].sum().idxmax()
    bars = bars_with_contract_size(warehouse, start, end)
    bars = bars[bars["base"] == base].assign(open_interest_usd=lambda b: open_interest_usd(b))
    price = bars[bars["venue"] == venue].groupby("ts")["close"].mean()
    oi_by_venue = bars.pivot_table(index="ts", columns="venue", values="open_interest_usd", aggfunc="sum")
    hourly = hourly_liquidations(events, start, end).groupby("ts")[["buy_usd", "sell_usd"]].sum()
    mine = events[events["venue"] == venue]
    return {
        "liquidations_against_price": dg.MetadataValue.md(
            markdown_image(liquidations_against_price(mine, price, f"{base} liquidations on {venue}"), "liquidations")
        ),
        "hourly_liquidations_and_open_interest": dg.MetadataValue.md(
            markdown_image(
                liquidation_bars_with_open_interest(hourly, oi_by_venue.sum(axis=1), f"{base}: hourly liquidations"),
                "hourly liquidations",
            )
        ),
        "open_interest_by_exchange": dg.MetadataValue.md(
            markdown_image(open_interest_stacked(oi_by_venue, f"{base} open interest by exchange"), "open interest")
        ),
        "plotted_base": base,
    }
