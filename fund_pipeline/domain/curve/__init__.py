"""Funding term-structure curves: a streaming builder and a vectorised replay with the same semantics.

Rooms: `rules` (policy, stats, shared numerics), `builder` (the streaming builder), `replay` (the
vectorised replay), `frames` (snapshot frames, missing-bucket share). This module names the API.

One builder per venue × symbol keeps a ring of the last `N_BUCKETS` funding windows. Bucket 0 is
the newest window (the predicted rate while live, the settled one in history); bucket k is the
window k rolls earlier. The earlier buckets are past prints ("fossil" quotes), not forward rates.

Rules, shared by every path (`FundingCurveBuilder.update`, `.update_batch`, `replay_curves`):

* same funding_time as bucket 0 → the print replaces bucket 0;
* later funding_time → roll: the ring shifts and the print opens bucket 0. The very first print of
  a stream opens the first window and counts as a roll;
* a jump of Δ skips max(0, round(Δ / interval_new) − 1) windows: they are interpolated linearly in
  annualised-yield space between the old bucket 0 and the new print, take the new interval, are
  flagged in `interpolated_mask` and counted in `BuilderStats.interpolated`;
* earlier funding_time → late print: counted, never applied, never emits a snapshot;
* snapshots: "roll" (after every roll), "every_n_seconds" (on roll, and on an applied print whose
  ts is ≥ N s after the stream's last snapshot), "every_update" (after every applied print).

Every bucket is annualised with its own interval. The paths are bit-identical because all
transcendental maths goes through the same numpy functions (`annualise`, `deannualise`).
"""

from fund_pipeline.domain.curve.builder import FundingCurveBuilder
from fund_pipeline.domain.curve.frames import MISSING_BUCKET_INPUTS, curve_frame, missing_bucket_pct, snapshots_frame
from fund_pipeline.domain.curve.replay import PRINT_INPUT_COLUMNS, build_curves_streaming, replay_curves
from fund_pipeline.domain.curve.rules import (
    SNAPSHOT_MODES,
    BuilderStats,
    SnapshotPolicy,
    interpolated_rates,
    skipped_windows,
)
from fund_pipeline.domain.records import ANN_COLUMNS, CURVE_COLUMNS, N_BUCKETS, RATE_COLUMNS, CurveSnapshot
from fund_pipeline.domain.time import NS_PER_HOUR

__all__ = [
    "ANN_COLUMNS",
    "CURVE_COLUMNS",
    "N_BUCKETS",
    "NS_PER_HOUR",
    "PRINT_INPUT_COLUMNS",
    "RATE_COLUMNS",
    "SNAPSHOT_MODES",
    "BuilderStats",
    "CurveSnapshot",
    "FundingCurveBuilder",
    "SnapshotPolicy",
    "build_curves_streaming",
    "curve_frame",
    "interpolated_rates",
    "MISSING_BUCKET_INPUTS",
    "missing_bucket_pct",
    "replay_curves",
    "skipped_windows",
    "snapshots_frame",
]
