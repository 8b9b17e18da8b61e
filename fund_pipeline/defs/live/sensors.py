"""`live_snapshot_sensor`: new landing segments → runs of the `live_curve` windows they touch.

The cursor records the last prints and snapshot segment consumed (segment numbers sort in write
order), the newest exchange time seen ("data time") and when each open window was last
refreshed: a restarted sensor neither repeats nor skips a segment. Time is the data's own, so
the cadence holds for an emulator clock running fast. A window is refreshed at most every
`refresh` while open and finalised once the data time passes its end (the roll).
"""

import json

import dagster as dg
import pandas as pd

from fund_pipeline.defs.live.assets import live_curve
from fund_pipeline.live.landing import list_segments, read_segments
from fund_pipeline.resources import LandingZone

WINDOW_NS = 8 * 3_600_000_000_000
DEFAULT_REFRESH = pd.Timedelta(minutes=10)


def window_start_ns(ts_ns: int) -> int:
    """Start of the 00/08/16 UTC funding window containing ts."""
    return ts_ns - ts_ns % WINDOW_NS


def window_key(start_ns: int) -> str:
    return pd.Timestamp(start_ns, tz="UTC").strftime("%Y-%m-%d-%H:%M")


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
    refresh: pd.Timedelta = DEFAULT_REFRESH, minimum_interval_seconds: int = 30
) -> dg.SensorDefinition:
    @dg.sensor(
        name="live_snapshot_sensor",
        target=[live_curve],
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"Materialise live_curve windows from new landing segments (refresh every {refresh}, final at the roll).",
    )
    def live_snapshot_sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
        cursor = json.loads(context.cursor) if context.cursor else {}
        root = landing.root()
        new_snapshots = list_segments(root, "snapshots", cursor.get("snapshots_seq", -1))
        new_prints = list_segments(root, "prints", cursor.get("prints_seq", -1))
        snap_times = read_segments([p for _, p in new_snapshots], columns=["ts_snap"])
        print_times = read_segments([p for _, p in new_prints], columns=["ts"])
        newest = int(print_times["ts"].max().value) if len(print_times) else None
        requests, state = plan_live_runs(
            cursor, snap_times["ts_snap"].astype("int64").tolist() if len(snap_times) else [], newest, refresh.value
        )
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
