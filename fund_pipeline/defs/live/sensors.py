"""`live_snapshot_sensor`: new landing segments → runs of the `live_curve` windows they touch.

The cursor records the last prints and snapshot segment consumed (segment numbers sort in write
order), the newest exchange time seen ("data time") and when each open window was last
refreshed: a restarted sensor neither repeats nor skips a segment. Time is the data's own, so
the cadence holds for an emulator clock running fast. A window is refreshed at most every
`refresh` while open and finalised once the data time passes its end (the roll).

A clock gone wrong must not steer the runs: a time far beyond the rest of its batch, or beyond the
wall clock by more than `future_tolerance` (generous: the emulator's clock may run 60x fast), is
ignored with a warning, so it neither moves the data time nor opens a window; a window whose key
is outside the partitions is dropped with a warning instead of failing every evaluation. A
landing segment that cannot be read is skipped with a warning naming it; the sensor only reads,
the `live_curve` run it requests moves the segment aside and counts it in its check.
"""

import json

import dagster as dg
import numpy as np
import pandas as pd

from fund_pipeline.defs.live.assets import live_curve
from fund_pipeline.defs.live.features import live_features
from fund_pipeline.defs.live.forecasts import live_forecasts
from fund_pipeline.defs.partitions import FUNDING_WINDOW_PARTITIONS
from fund_pipeline.domain.time import NS_PER_HOUR
from fund_pipeline.live.landing import SegmentProblem, list_segments, read_segments
from fund_pipeline.resources import LandingZone

# The live_curve partitions: one per 00/08/16 UTC funding window.
WINDOW_NS = 8 * NS_PER_HOUR
DEFAULT_REFRESH = pd.Timedelta(minutes=10)
# A time more than this after the median of its batch of new segments is an outlier, not data: two
# windows, so a collector catching up after a restart still moves the data time.
MAX_AHEAD_OF_BATCH = pd.Timedelta(hours=16)
DEFAULT_FUTURE_TOLERANCE = pd.Timedelta(days=30)


def window_start_ns(ts_ns: int) -> int:
    """Start of the 00/08/16 UTC funding window containing ts."""
    return ts_ns - ts_ns % WINDOW_NS


def window_key(start_ns: int) -> str:
    return pd.Timestamp(start_ns, tz="UTC").strftime("%Y-%m-%d-%H:%M")


def plausible_times(times: list[int], now_ns: int, future_tolerance_ns: int) -> tuple[list[int], list[int]]:
    """(kept, ignored): times within MAX_AHEAD_OF_BATCH of their batch's median and the tolerance of now."""
    if not times:
        return [], []
    limit = min(int(np.median(times)) + MAX_AHEAD_OF_BATCH.value, now_ns + future_tolerance_ns)
    return [t for t in times if t <= limit], [t for t in times if t > limit]


def known_windows(requests: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[str]]:
    """(requests whose window is a live_curve partition, keys that are not)."""
    known = [(key, kind) for key, kind in requests if FUNDING_WINDOW_PARTITIONS.has_partition_key(key)]
    return known, [key for key, _ in requests if not FUNDING_WINDOW_PARTITIONS.has_partition_key(key)]


def plan_live_runs(
    cursor: dict, new_snapshot_times: list[int], newest_data_ns: int | None, refresh_ns: int
) -> tuple[list[tuple[str, str]], dict]:
    """(window key, "refresh" | "final") runs to request and the next cursor state.

    `pending`: windows with snapshots not yet in a run; `open`: windows run at least once and
    not finalised, with the data time of their last refresh.
    """
    data_time = max(cursor.get("data_time", 0), newest_data_ns or 0, max(new_snapshot_times, default=0))
    pending = set(cursor.get("pending", [])) | {window_start_ns(t) for t in new_snapshot_times}
    open_windows = {int(k): v for k, v in cursor.get("open", {}).items()}
    requests = []
    for start in sorted(pending | set(open_windows)):
        if start + WINDOW_NS <= data_time:
            requests.append((window_key(start), "final"))
            pending.discard(start)
            open_windows.pop(start, None)
        elif start in pending and (start not in open_windows or data_time - open_windows[start] >= refresh_ns):
            requests.append((window_key(start), "refresh"))
            pending.discard(start)
            open_windows[start] = data_time
    return requests, {
        "data_time": data_time,
        "pending": sorted(pending),
        "open": {str(k): v for k, v in open_windows.items()},
    }


def build_live_snapshot_sensor(
    refresh: pd.Timedelta = DEFAULT_REFRESH,
    minimum_interval_seconds: int = 30,
    future_tolerance: pd.Timedelta = DEFAULT_FUTURE_TOLERANCE,
) -> dg.SensorDefinition:
    @dg.sensor(
        name="live_snapshot_sensor",
        target=[live_curve, live_features, live_forecasts],
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            f"Materialise live_curve windows from new landing segments (refresh every {refresh}, final at the roll), "
            "with the open window's live_features and live_forecasts."
        ),
    )
    def live_snapshot_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
        cursor = json.loads(context.cursor) if context.cursor else {}
        root = landing.root()
        new_snapshots = list_segments(root, "snapshots", cursor.get("snapshots_seq", -1))
        new_prints = list_segments(root, "prints", cursor.get("prints_seq", -1))
        problems: list[SegmentProblem] = []
        snap_frame = read_segments([p for _, p in new_snapshots], columns=["ts_snap"], problems=problems)
        print_frame = read_segments([p for _, p in new_prints], columns=["ts"], problems=problems)
        for problem in problems:
            context.log.warning(f"landing segment skipped: {problem.path}: {problem.reason}")
        now_ns = pd.Timestamp.now(tz="UTC").value
        snap_times, late_snaps = plausible_times(
            snap_frame["ts_snap"].astype("int64").tolist() if len(snap_frame) else [], now_ns, future_tolerance.value
        )
        print_times, late_prints = plausible_times(
            print_frame["ts"].astype("int64").tolist() if len(print_frame) else [], now_ns, future_tolerance.value
        )
        if late_snaps or late_prints:
            context.log.warning(
                f"ignored {len(late_snaps)} snapshot and {len(late_prints)} print time(s) far ahead of the rest "
                f"(latest {pd.Timestamp(max(late_snaps + late_prints), tz='UTC')}): a venue or collector clock is off"
            )
        requests, state = plan_live_runs(cursor, snap_times, max(print_times, default=None), refresh.value)
        requests, unknown = known_windows(requests)
        if unknown:
            context.log.warning(f"dropped window(s) {unknown}: not live_curve partitions (outside its range)")
            known = FUNDING_WINDOW_PARTITIONS.has_partition_key
            state["pending"] = [start for start in state["pending"] if known(window_key(start))]
            state["open"] = {k: v for k, v in state["open"].items() if known(window_key(int(k)))}
        state["snapshots_seq"] = new_snapshots[-1][0] if new_snapshots else cursor.get("snapshots_seq", -1)
        state["prints_seq"] = new_prints[-1][0] if new_prints else cursor.get("prints_seq", -1)
        context.update_cursor(json.dumps(state))
        if not requests:
            return dg.SkipReason(f"no window to refresh or finalise ({len(new_snapshots)} new snapshot segment(s))")
        return [
            dg.RunRequest(
                run_key=f"live_curve:{key}:{kind}:{state['snapshots_seq']}:{state['data_time']}",
                partition_key=key,
                tags={"live_curve/run": kind},
            )
            for key, kind in requests
        ]

    return live_snapshot_sensor


live_snapshot_sensor = build_live_snapshot_sensor()
