"""Live curve snapshots landed on disk and the sensor evaluated on them, for the sensor tests and the live
fault benchmark."""

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
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), cursor=cursor, resources={"landing": landing}
    )
    result = sensor(context)
    requests = result if isinstance(result, list) else []
    return [(r.partition_key, r.tags["live_curve/run"]) for r in requests], context.cursor


def land_times(root, snapshot_times: list[pd.Timestamp], print_times: list[pd.Timestamp]) -> None:
    """One segment of snapshots and prints at arbitrary times (a clock gone wrong)."""
    prints = pd.DataFrame(
        {
            "venue": "binance",
            "symbol": "BTC/USDT:USDT",
            "funding_time": [t.ceil("8h") for t in snapshot_times],
            "ts": snapshot_times,
            "rate": 0.0001,
            "interval_h": 8.0,
        }
    )
    snapshots, _ = replay_curves(prints)
    stamped = pd.DataFrame({"venue": "binance", "symbol": "BTC/USDT:USDT", "ts": print_times})
    writer = SegmentWriter(root)
    writer.write({"snapshots": frame_table(snapshots), "prints": frame_table(stamped)})
    writer.close()
