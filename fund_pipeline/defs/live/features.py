"""`live_features`: the open window's intra-window features at the window's newest live snapshot.

Run with `live_curve` (same funding-window partition): from the collector's landed predicted
prints, thinned to the reconstruction's cadence so live and history share one grid, it computes
per live symbol the hours to settlement, the quote in force, its drift since the window opened
and the quote h hours before settlement (`domain/predicted.intra_window_features`), beside the
newest snapshot's level and slope. `live_forecasts` reads after it, so the UI's lineage shows
live_curve → live_features → live_forecasts.
"""

import dagster as dg
import pandas as pd

from fund_pipeline.defs.partitions import FUNDING_WINDOW_PARTITIONS
from fund_pipeline.domain.predicted import ReconstructionConfig, intra_window_features, thin_to_cadence
from fund_pipeline.domain.time import MAX_INTERVAL_H, STORED_TIME_RESOLUTION
from fund_pipeline.live.landing import SegmentProblem, read_landed
from fund_pipeline.plots import markdown_table
from fund_pipeline.resources import LandingZone
from fund_pipeline.warehouse import WAREHOUSE_POOL, Warehouse

LIVE_FEATURES_TABLE = "live_features"
# A window's quotes start when the previous one settles, which may be before the partition starts
# (a window longer than 8 h, a quote sent just before the roll): read that far back.
QUOTES_LEAD = pd.Timedelta(hours=MAX_INTERVAL_H)
SNAPSHOT_FIELDS = ["level", "slope", "b0"]


def open_window_rows(snapshots: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    """Each symbol's newest snapshot at or before t whose window is still open at t, as `at` rows."""
    seen = snapshots[(snapshots["ts_snap"] <= t) & (snapshots["funding_time"] >= t)]
    newest = seen.sort_values("ts_snap", kind="stable").groupby(["venue", "symbol"], sort=True).tail(1)
    return newest[["venue", "symbol", "funding_time", *SNAPSHOT_FIELDS]].assign(at=t).reset_index(drop=True)


@dg.asset(
    partitions_def=FUNDING_WINDOW_PARTITIONS,
    group_name="features",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=["live_curve"],
)
def live_features(
    context: dg.AssetExecutionContext, landing: LandingZone, warehouse: Warehouse
) -> dg.MaterializeResult:
    """Intra-window features at the window's newest snapshot, stored under that instant."""
    start, end = context.partition_time_window
    start, end = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    snapshots = warehouse.read("live_curve", {"ts_snap": (start, end)})
    if snapshots.empty:
        raise dg.Failure(f"live_features: no live_curve snapshots in [{start}, {end}); materialise live_curve first")
    t = pd.Timestamp(snapshots["ts_snap"].max())
    problems: list[SegmentProblem] = []
    # t was stored to the microsecond: a quote stamped in t's microsecond is at or before t.
    window_quotes = [
        ("kind", "=", "predicted"),
        ("ts", ">=", start - QUOTES_LEAD),
        ("ts", "<", t + STORED_TIME_RESOLUTION),
    ]
    prints = read_landed(landing.root(), "prints", filters=window_quotes, problems=problems)
    prints["ts"] = prints["ts"].dt.floor(STORED_TIME_RESOLUTION)
    for problem in problems:  # moved aside by the next live_curve run, which counts it
        context.log.warning(f"landing segment skipped: {problem.path}: {problem.reason}")
    rows = open_window_rows(snapshots, t)
    quotes = thin_to_cadence(prints, ReconstructionConfig().cadence_s) if len(prints) else prints
    features = intra_window_features(quotes, rows) if len(quotes) else intra_window_features(_no_quotes(), rows)
    features = features.merge(rows[["venue", "symbol", *SNAPSHOT_FIELDS]], on=["venue", "symbol"], how="left")
    written = warehouse.replace(LIVE_FEATURES_TABLE, features, {"at": (t, t + STORED_TIME_RESOLUTION)})
    shown = features.set_index(["venue", "symbol"]).head(20)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": written,
            "at": str(t),
            "symbols": len(features),
            "quotes_used": len(quotes),
            "features": dg.MetadataValue.md(markdown_table(shown)),
        }
    )


def _no_quotes() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "venue": pd.Series(dtype=object),
            "symbol": pd.Series(dtype=object),
            "kind": pd.Series(dtype=object),
            "funding_time": pd.Series(dtype="datetime64[ns, UTC]"),
            "ts": pd.Series(dtype="datetime64[ns, UTC]"),
            "rate": pd.Series(dtype=float),
        }
    )
