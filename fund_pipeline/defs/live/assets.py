"""`live_curve`: the collector's landed snapshots of one funding window, in the warehouse."""

import dagster as dg
import pandas as pd

from fund_pipeline.defs.partitions import FUNDING_WINDOW_PARTITIONS
from fund_pipeline.domain.curve import missing_bucket_pct, snapshots_frame
from fund_pipeline.domain.quality import MAX_MISSING_BUCKET_PCT, MAX_SNAPSHOT_LAG, snapshot_lag, stale_streams
from fund_pipeline.live.landing import SegmentProblem, landing_problems, list_rejected, read_landed, reject_segments
from fund_pipeline.resources import WAREHOUSE_POOL, LandingZone, Warehouse


def snapshots_in_window(
    landing, start: pd.Timestamp, end: pd.Timestamp, problems: list[SegmentProblem] | None = None
) -> pd.DataFrame:
    frame = read_landed(
        landing, "snapshots", filters=[("ts_snap", ">=", start), ("ts_snap", "<", end)], problems=problems
    )
    return frame if len(frame) else snapshots_frame([])


@dg.asset(
    partitions_def=FUNDING_WINDOW_PARTITIONS,
    group_name="curves",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            "live_curve_fresh",
            asset="live_curve",
            description=f"Every symbol's newest snapshot is within {MAX_SNAPSHOT_LAG} of its newest landed print.",
        ),
        dg.AssetCheckSpec(
            "live_curve_missing_buckets",
            asset="live_curve",
            description=f"Interpolated (missing) buckets < {MAX_MISSING_BUCKET_PCT} %.",
        ),
        dg.AssetCheckSpec(
            "live_segments_readable",
            asset="live_curve",
            description=(
                "Every landing segment is readable with its kind's schema; bad ones are moved aside into rejected/ "
                "with the reason, counted once by the run that moved them, and the good ones still flow (warns)."
            ),
        ),
    ],
)
def live_curve(context: dg.AssetExecutionContext, landing: LandingZone, warehouse: Warehouse):
    """Snapshots taken during the window (by ts_snap), replacing the partition: re-runs refresh it in place.

    Every landing segment that cannot be read or lacks its kind's full schema (not only the columns
    read here) is moved into the landing's `rejected/` folder with a sidecar naming it and the
    reason (`landing.reject_segment`), counted by the run that moved it, so a re-run neither fails
    on it nor counts it again.
    """
    start, end = context.partition_time_window
    start, end = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    root = landing.root()
    set_aside = reject_segments(root, landing_problems(root), "live_curve")
    read_problems: list[SegmentProblem] = []  # segments whose data, not their footer, is damaged
    snapshots = snapshots_in_window(root, start, end, read_problems)
    prints = read_landed(
        root, "prints", columns=["venue", "symbol", "ts"],
        filters=[("kind", "=", "predicted"), ("ts", ">=", start), ("ts", "<", end)], problems=read_problems,
    )  # fmt: skip
    set_aside += reject_segments(root, read_problems, "live_curve")
    for segment in set_aside:
        where = f"moved to {segment.moved_to}" if segment.moved_to else "skipped"
        context.log.warning(f"landing segment {segment.original} {where}: {segment.reason}")
    rejected = {segment.original: segment.reason for segment in set_aside}
    rejected_in_landing = len(list_rejected(root))
    warehouse.replace("live_curve", snapshots, {"ts_snap": (start, end)})
    missing_pct = missing_bucket_pct(snapshots)
    lag = snapshot_lag(snapshots, prints) if len(prints) else pd.DataFrame(columns=["venue", "symbol", "lag"])
    stale = stale_streams(lag)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(snapshots),
            "window": f"[{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}) UTC",
            "symbols": int(snapshots[["venue", "symbol"]].drop_duplicates().shape[0]),
            "newest_snapshot": str(snapshots["ts_snap"].max()) if len(snapshots) else "none",
            "missing_bucket_pct": float(missing_pct),
            "landing_segments_rejected": len(rejected),
            "rejected_in_landing": rejected_in_landing,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="live_curve_fresh",
                passed=bool(len(snapshots)) and stale.empty,
                metadata={
                    "stale_symbols": len(stale),
                    "max_lag_s": float(lag["lag"].max().total_seconds())
                    if len(lag) and lag["lag"].notna().any()
                    else 0.0,
                    "examples": stale.head(5).astype(str).to_dict("records"),
                },
            ),
            dg.AssetCheckResult(
                check_name="live_segments_readable",
                passed=not rejected,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "segments_rejected": len(rejected),
                    "rejected": rejected,
                    "rejected_in_landing": rejected_in_landing,
                },
            ),
            dg.AssetCheckResult(
                check_name="live_curve_missing_buckets",
                passed=bool(missing_pct < MAX_MISSING_BUCKET_PCT),
                metadata={"missing_bucket_pct": float(missing_pct)},
            ),
        ],
    )
