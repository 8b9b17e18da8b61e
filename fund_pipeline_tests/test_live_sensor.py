"""live_snapshot_sensor with explicit cursors: refresh cadence, finalisation at the roll, restarts."""

import json

import dagster as dg
import pandas as pd

from fund_pipeline.defs.live.sensors import build_live_snapshot_sensor
from fund_pipeline.domain.curve import replay_curves
from fund_pipeline.live.landing import SegmentWriter, frame_table
from fund_pipeline.resources import LandingZone

WINDOW_START = pd.Timestamp("2025-03-03 08:00", tz="UTC")


def land_snapshots(root, minutes: list[int]) -> None:
    """One snapshot segment (and a prints segment carrying the data time) per call."""
    times = [WINDOW_START + pd.Timedelta(minutes=m) for m in minutes]
    prints = pd.DataFrame(
        {
            "venue": "binance",
            "symbol": "BTC/USDT:USDT",
            "funding_time": [t.floor("8h") + pd.Timedelta(hours=8) for t in times],
            "ts": times,
            "rate": 0.0001,
            "interval_h": 8.0,
        }
    )
    snapshots, _ = replay_curves(prints)
    writer = SegmentWriter(root)
    writer.write({"snapshots": frame_table(snapshots), "prints": frame_table(prints[["venue", "symbol", "ts"]])})
    writer.close()


def evaluate(landing: LandingZone, cursor: str | None):
    sensor = build_live_snapshot_sensor(refresh=pd.Timedelta(minutes=10))
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"landing": landing})
        result = sensor(context)
        requests = result if isinstance(result, list) else []
        return [(r.partition_key, r.tags["live_curve/run"]) for r in requests], context.cursor


def test_refresh_cadence_then_final_at_the_roll_and_nothing_twice(tmp_path):
    landing = LandingZone(path=str(tmp_path / "landing"))
    root = landing.root()
    land_snapshots(root, [1])
    requests, cursor = evaluate(landing, None)
    assert requests == [("2025-03-03-08:00", "refresh")]

    again, cursor_again = evaluate(landing, cursor)
    assert again == []
    assert json.loads(cursor_again)["snapshots_seq"] == json.loads(cursor)["snapshots_seq"]

    land_snapshots(root, [5])
    within_cadence, cursor = evaluate(landing, cursor_again)
    assert within_cadence == []

    land_snapshots(root, [13])
    after_cadence, cursor = evaluate(landing, cursor)
    assert after_cadence == [("2025-03-03-08:00", "refresh")]

    land_snapshots(root, [8 * 60 + 1])
    rolled, cursor = evaluate(landing, cursor)
    assert ("2025-03-03-08:00", "final") in rolled
    assert ("2025-03-03-16:00", "refresh") in rolled


def test_a_restarted_sensor_skips_no_segment_written_while_it_was_down(tmp_path):
    landing = LandingZone(path=str(tmp_path / "landing"))
    root = landing.root()
    land_snapshots(root, [1])
    _, cursor = evaluate(landing, None)
    for minutes in ([20], [8 * 60 + 2], [16 * 60 + 3]):
        land_snapshots(root, minutes)
    requests, cursor = evaluate(landing, cursor)
    assert ("2025-03-03-08:00", "final") in requests
    assert ("2025-03-03-16:00", "final") in requests
    assert ("2025-03-04-00:00", "refresh") in requests
    assert json.loads(cursor)["snapshots_seq"] == 3
