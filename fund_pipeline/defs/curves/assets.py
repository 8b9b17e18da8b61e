"""Curves: 8-bucket funding snapshots replayed from settled prints, per day × venue."""

import dagster as dg
import pandas as pd

from fund_pipeline.defs.partitions import DAILY_VENUE_PARTITIONS
from fund_pipeline.defs.scope import daily_venue_spans
from fund_pipeline.domain.curve import N_BUCKETS, SnapshotPolicy, missing_bucket_pct, replay_curves
from fund_pipeline.plots import heatmap, markdown_image
from fund_pipeline.resources import WAREHOUSE_POOL, Warehouse

# Eight windows of the longest interval (8h) are 64h: three days of prints fill every ring.
CURVE_LOOKBACK = pd.Timedelta(days=3)
MISSING_BUCKET_WINDOW = pd.Timedelta(days=30)
MAX_MISSING_BUCKET_PCT = 2.0


def curve_heatmap(curves: pd.DataFrame, venue: str) -> str:
    """Venue-average annualised curve (bucket × settlement time) as a markdown image."""
    ann = [f"b{k}_ann" for k in range(N_BUCKETS)]
    matrix = curves.groupby("funding_time")[ann].mean().T
    matrix.index = [f"b{k} ({k} rolls back)" for k in range(N_BUCKETS)]
    matrix.columns = [t.strftime("%m-%d %H:%M") for t in matrix.columns]
    png = heatmap(matrix * 100, f"{venue}: mean annualised funding curve across symbols", "% per year")
    return markdown_image(png, f"{venue} curve heatmap")


@dg.asset(
    partitions_def=DAILY_VENUE_PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="curves",
    pool=WAREHOUSE_POOL,
    kinds={"duckdb"},
    deps=["raw_funding_prints"],
    check_specs=[
        dg.AssetCheckSpec(
            "missing_buckets_below_2pct_30d",
            asset="curve_history",
            description="Interpolated (missing) bucket-0 windows below 2 % over the trailing 30 days, per venue.",
        )
    ],
)
def curve_history(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """One snapshot per settled print; the 7 earlier buckets come from the lookback days before it."""
    written, late, plots, missing = 0, 0, {}, {}
    for venue, start, end in daily_venue_spans(context):
        prints = warehouse.query(
            "SELECT * FROM raw_funding_prints WHERE venue = ? AND kind = 'settled' AND funding_time >= ? AND funding_time < ? ORDER BY ts, funding_time",
            [venue, (start - CURVE_LOOKBACK).to_pydatetime(), end.to_pydatetime()],
        )
        if prints.empty:
            raise dg.Failure(
                f"curve_history: no settled prints stored for {venue} in [{start:%Y-%m-%d}, {end:%Y-%m-%d}); materialise raw_funding_prints first"
            )
        curves, stats = replay_curves(prints, SnapshotPolicy())
        in_range = curves.loc[(curves["funding_time"] >= start) & (curves["funding_time"] < end)].reset_index(drop=True)
        written += warehouse.replace("curve_history", in_range, {"venue": [venue], "funding_time": (start, end)})
        late += sum(s.late for s in stats.values())
        trailing = warehouse.read(
            "curve_history", {"venue": [venue], "funding_time": (end - MISSING_BUCKET_WINDOW, end)}
        )
        missing[venue] = missing_bucket_pct(trailing)
        plots[f"curve_heatmap_{venue}"] = dg.MetadataValue.md(curve_heatmap(in_range, venue))
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": written,
            "late_prints_ignored": late,
            **{f"missing_bucket_pct_30d_{v}": round(p, 3) for v, p in missing.items()},
            **plots,
        }
    )
    worst = max(missing.values())
    yield dg.AssetCheckResult(
        check_name="missing_buckets_below_2pct_30d",
        passed=worst < MAX_MISSING_BUCKET_PCT,
        metadata={
            "missing_bucket_pct_by_venue": {v: round(p, 3) for v, p in missing.items()},
            "limit_pct": MAX_MISSING_BUCKET_PCT,
        },
    )
