"""Emulator → collector → landing → sensor → live_curve, offline, across two funding rolls."""

import asyncio
import json

import dagster as dg
import pandas as pd
import pytest

from fund_pipeline.defs.live.assets import live_curve
from fund_pipeline.defs.live.sensors import build_live_snapshot_sensor
from fund_pipeline.domain.curve import FundingCurveBuilder, SnapshotPolicy, snapshots_frame
from fund_pipeline.emulator.server import Faults, start_emulator
from fund_pipeline.live.collector import Collector, CollectorConfig
from fund_pipeline.live.landing import read_landed
from fund_pipeline.resources import LandingZone, Warehouse

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VENUES = ["binance", "bybit", "okx", "hyperliquid"]
START = pd.Timestamp("2025-03-01 05:00", tz="UTC")
POLICY = SnapshotPolicy("every_n_seconds", 600)


def _collect(tmp_path, faults=None, run_seconds=20.0, config=None):
    async def go():
        emulator = await start_emulator(bases=("BTC",), speed=3600, start=START, faults=faults)
        try:
            collector = Collector(
                VENUES, ["BTC"], tmp_path / "landing", api_base_url=emulator.base_url, policy=POLICY,
                clock=emulator.state.clock.now, config=config or CollectorConfig(), seed=3,
            )  # fmt: skip
            return await collector.run(run_seconds)
        finally:
            await emulator.stop()

    return asyncio.run(go())


def _replayed_snapshots(prints: pd.DataFrame) -> pd.DataFrame:
    """The curve builder on the landed prints: seeds (REST rows before the first live one), then updates."""
    rows = []
    for (venue, symbol), group in prints.groupby(["venue", "symbol"], sort=False):
        builder = FundingCurveBuilder(venue, symbol, POLICY)
        first_ws = (group["source"] == "ws").to_numpy().argmax()
        if first_ws:
            builder.seed(group.iloc[:first_ws])
        for rec in group.iloc[first_ws:].itertuples(index=False):
            snap = builder.update(rec.funding_time.value, rec.rate, rec.interval_h, rec.ts.value)
            if snap is not None:
                rows.append(snap)
    return snapshots_frame(rows)


def _run_sensor_and_materialise(tmp_path):
    landing = LandingZone(path=str(tmp_path / "landing"))
    warehouse = Warehouse(database=str(tmp_path / "w.duckdb"))
    sensor = build_live_snapshot_sensor()
    requests, cursor = [], None
    with dg.instance_for_test() as instance:
        for _ in range(2):  # the second evaluation, from the saved cursor, must request nothing new
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"landing": landing})
            result = sensor(context)
            cursor = context.cursor
            if isinstance(result, list):
                requests += result
        keys = sorted({r.partition_key for r in requests})
        for key in keys:
            outcome = dg.materialize(
                [live_curve],
                partition_key=key,
                instance=instance,
                resources={"landing": landing, "warehouse": warehouse},
            )
            assert outcome.success
    return requests, keys, json.loads(cursor), warehouse


def _check_end_to_end(tmp_path, stats):
    prints = read_landed(tmp_path / "landing", "prints")
    landed_snaps = read_landed(tmp_path / "landing", "snapshots")
    assert set(prints["venue"]) == set(VENUES)
    replayed = _replayed_snapshots(prints)
    pd.testing.assert_frame_equal(
        landed_snaps.sort_values(["venue", "symbol", "ts_snap"], kind="stable").reset_index(drop=True),
        replayed.sort_values(["venue", "symbol", "ts_snap"], kind="stable").reset_index(drop=True),
        check_dtype=False,
    )
    live = prints.loc[prints["source"] == "ws"]
    windows = (live["funding_time"] - pd.Timedelta(hours=8)).dt.floor("8h").loc[live["venue"] == "binance"].nunique()
    assert windows >= 3, "the run must cross at least two funding rolls"
    requests, keys, cursor, warehouse = _run_sensor_and_materialise(tmp_path)
    assert len(requests) == len({r.run_key for r in requests})
    assert any(r.tags["live_curve/run"] == "final" for r in requests)
    stored = warehouse.query("SELECT * FROM live_curve")
    assert len(stored) == len(
        landed_snaps.loc[
            landed_snaps["ts_snap"]
            >= pd.Timestamp(min(keys).replace("-", " ", 2)[:10] + " " + min(keys)[-5:], tz="UTC")
        ]
    )
    return prints, stored


def test_collector_to_live_curve_across_two_rolls(tmp_path):
    stats = _collect(tmp_path)
    prints, stored = _check_end_to_end(tmp_path, stats)
    assert stats["seed_prints:binance"] if "seed_prints:binance" in stats else stats["seed_prints"] > 0
    assert not any(k.startswith("quarantined") for k in stats)
    first = prints.loc[(prints["venue"] == "binance") & (prints["source"] == "ws")].iloc[0]
    snap = stored.loc[stored["venue"] == "binance"].sort_values("ts_snap").iloc[0]
    assert snap["n_filled"] == 8, f"warm start must give a full first curve, got {snap['n_filled']} at {first['ts']}"


def test_collector_survives_faults(tmp_path):
    faults = Faults(
        drop_after_s=3.0, silent_after_s=1.5, ws_429_first_n=1, malformed_every_n=7, duplicate_every_n=5,
        late_every_n=6, jump_windows_at=START + pd.Timedelta(hours=9),
    )  # fmt: skip
    config = CollectorConfig(backoff_base_s=0.2, backoff_max_s=1.0, silence_s=1.0)
    stats = _collect(tmp_path, faults=faults, config=config)
    _check_end_to_end(tmp_path, stats)
    assert sum(v for k, v in stats.items() if k.startswith("quarantined")) > 0
    assert len(read_landed(tmp_path / "landing", "quarantine")) == sum(
        v for k, v in stats.items() if k.startswith("quarantined")
    )
    assert sum(v for k, v in stats.items() if k.startswith("connects:binance")) >= 3
    assert any(k.startswith("disconnects:binance:http_429") for k in stats)
    assert stats["builder:late"] > 0 and stats["builder:interpolated"] > 0
    assert sum(v for k, v in stats.items() if k.startswith("watchdog:")) > 0
