"""Curves: 8-bucket funding snapshots replayed from settled prints, per day × venue."""

import dagster as dg
import pandas as pd

from fund_pipeline.defs.ingest.reconstructed import RECONSTRUCTED_TABLE
from fund_pipeline.defs.partitions import CURVE_LOOKBACK, DAILY_VENUE_PARTITIONS, venue_lookback_days
from fund_pipeline.defs.scope import daily_venue_spans
from fund_pipeline.domain.curve import (
    MISSING_BUCKET_INPUTS,
    N_BUCKETS,
    PRINT_INPUT_COLUMNS,
    SnapshotPolicy,
    missing_bucket_pct,
    replay_curves,
)
from fund_pipeline.domain.predicted import curve_input
from fund_pipeline.domain.quality import MAX_MISSING_BUCKET_PCT, MISSING_BUCKET_WINDOW
from fund_pipeline.plots import heatmap, markdown_image
from fund_pipeline.resources import WAREHOUSE_POOL, Warehouse

_POLICY = SnapshotPolicy()


class CurveHistoryConfig(dg.Config):
    """Snapshot cadence (`snapshot_mode` "roll", the default for storage, or "every_n_seconds" every
    `snapshot_seconds`) and whether the reconstructed predicted prints join the settled ones. With
    them, bucket 0 is the open window's quote as in the live curve (same snapshots as the live
    builder on the same prints); without, it is the settled rate (the store's features read that)."""

    snapshot_mode: str = _POLICY.mode
    snapshot_seconds: float = _POLICY.seconds
    with_reconstructed: bool = False


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
    deps=[
        dg.AssetDep("raw_funding_prints", partition_mapping=venue_lookback_days(CURVE_LOOKBACK)),
        dg.AssetDep(RECONSTRUCTED_TABLE, partition_mapping=venue_lookback_days(CURVE_LOOKBACK)),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "missing_buckets_below_2pct_30d",
            asset="curve_history",
            description="Interpolated (missing) bucket-0 windows below 2 % over the trailing 30 days, per venue.",
        )
    ],
)
def curve_history(context: dg.AssetExecutionContext, config: CurveHistoryConfig, warehouse: Warehouse):
    """One snapshot per settled print; the 7 earlier buckets come from the lookback days before it.

    Every span of the run is replayed first and written in one transaction: all or nothing. The
    heatmap goes into a one-partition run's materialisation; a range run copies its metadata into
    every partition's event, so there each venue's heatmap of the whole span is one observation of
    the span's last day instead.
    """
    late, reconstructed, parts = 0, 0, []
    plots: dict[tuple[str, pd.Timestamp], dg.MetadataValue] = {}
    missing: dict[str, float] = {}
    spans = daily_venue_spans(context)
    # The replay's columns only (a year of hourly prints is millions of rows); the reconstructed join needs all.
    columns = None if config.with_reconstructed else PRINT_INPUT_COLUMNS
    for venue, start, end in spans:
        prints = warehouse.settled_prints(start - CURVE_LOOKBACK, end, venues=[venue], columns=columns)
        if prints.empty:
            raise dg.Failure(
                f"curve_history: no settled prints stored for {venue} in [{start:%Y-%m-%d}, {end:%Y-%m-%d}); "
                "materialise raw_funding_prints first"
            )
        if config.with_reconstructed:
            where = {"venue": [venue], "funding_time": (start - CURVE_LOOKBACK, end)}
            rebuilt = warehouse.read(RECONSTRUCTED_TABLE, where)
            reconstructed += len(rebuilt)
            prints = curve_input(prints, rebuilt) if len(rebuilt) else prints
        curves, stats = replay_curves(prints, SnapshotPolicy(config.snapshot_mode, config.snapshot_seconds))
        in_range = curves.loc[(curves["funding_time"] >= start) & (curves["funding_time"] < end)].reset_index(drop=True)
        parts.append((in_range, {"venue": [venue], "funding_time": (start, end)}))
        late += sum(s.late for s in stats.values())
        plots[(venue, end)] = dg.MetadataValue.md(curve_heatmap(in_range, venue))
    written = warehouse.replace_partitions("curve_history", parts)
    for venue, _, end in spans:
        trailing = warehouse.read(
            "curve_history",
            {"venue": [venue], "funding_time": (end - MISSING_BUCKET_WINDOW, end)},
            MISSING_BUCKET_INPUTS,
        )
        missing[venue] = max(missing.get(venue, 0.0), missing_bucket_pct(trailing))
    named = {f"curve_heatmap_{venue}": plot for (venue, _), plot in plots.items()}
    if len(context.partition_keys) > 1:
        for (venue, end), plot in plots.items():
            last_day = dg.MultiPartitionKey({"date": f"{end - pd.Timedelta(days=1):%Y-%m-%d}", "venue": venue})
            yield dg.AssetObservation("curve_history", partition=last_day, metadata={f"curve_heatmap_{venue}": plot})
        named = {}
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": written,
            "late_prints_ignored": late,
            "reconstructed_prints_replayed": reconstructed,
            "snapshot_mode": config.snapshot_mode,
            **{f"missing_bucket_pct_30d_{v}": round(p, 3) for v, p in missing.items()},
            **named,
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
