"""Fault cases of the live path and the REST sources (issue #14 points 2, 3, 4, 6), on 127.0.0.1 only.

The collector runs against the test suite's loopback tick stream (`TickStream`, each tick numbered,
so landed prints say which ticks arrived) or the exchange emulator; REST calls go to the emulator
with its faults; the sensor is evaluated with explicit cursors on a temporary landing.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd

from bench.fault_records import FaultCase, Outcome, names_all, timed, unreadable_segments
from fund_pipeline.emulator.server import Faults, start_emulator
from fund_pipeline.live.collector import Collector, CollectorConfig
from fund_pipeline.live.landing import SegmentWriter, list_segments, read_landed
from fund_pipeline.resources import LandingZone
from fund_pipeline.sources.ccxt import CcxtSource, VenueUnavailableError
from fund_pipeline.sources.simulated import SimulatedMarket
from fund_pipeline.venues.registry import SIM_VENUES
from fund_pipeline_tests.emulator_thread import emulator_in_thread
from fund_pipeline_tests.landing_snapshots import evaluate, land_snapshots, land_times
from fund_pipeline_tests.tick_streams import TickStream, landed_ticks, run_against_ticks

BTC = "BTC/USDT:USDT"
REST_NOW = pd.Timestamp("2025-01-20", tz="UTC")


# --- point 2 and 6: a venue that stays down fails its own calls only, with the cause kept --------------------------


def _venue_down_call() -> tuple[BaseException | None, pd.DataFrame, pd.DataFrame]:
    """binance kept down by the emulator: its call's error, and hyperliquid's prints beside the simulated ones."""
    start = REST_NOW - pd.Timedelta(hours=8)
    with emulator_in_thread(bases=("BTC",), start=REST_NOW) as emulator:
        emulator.state.faults = Faults(venue_down=frozenset({"binance"}))
        source = CcxtSource(
            venues=SIM_VENUES, api_base_url=emulator.base_url, max_retries=2, backoff_base_s=0.01, throttle=False
        )
        failed = timed(lambda: source.funding_prints("binance", REST_NOW - pd.Timedelta(days=1), REST_NOW))
        served = source.funding_prints("hyperliquid", start, REST_NOW)
    expected = SimulatedMarket(bases=("BTC",)).funding_prints("hyperliquid", start, REST_NOW)
    return failed.error, served, expected[expected["kind"] == "settled"]


def _settled_lost(expected: pd.DataFrame, served: pd.DataFrame) -> int:
    key = ["symbol", "funding_time"]
    return len(
        set(map(tuple, expected[key].astype(str).to_numpy())) - set(map(tuple, served[key].astype(str).to_numpy()))
    )


def venue_down_fails_only_its_own(folder: Path, quick: bool) -> Outcome:
    error, served, expected = _venue_down_call()
    clear = isinstance(error, VenueUnavailableError) and names_all(error, "binance", "3 attempts")
    lost = _settled_lost(expected, served)
    observed = f"binance: {type(error).__name__}; hyperliquid served {len(served)} of {len(expected)} settled prints"
    return Outcome(clear and len(served) == len(expected) > 0, observed, clear, lost, None)


def failed_call_cause_kept(folder: Path, quick: bool) -> Outcome:
    error, _, _ = _venue_down_call()
    cause = error.__cause__ if error is not None else None
    named = cause is not None and names_all(error, str(cause), "attempts of", "503", "last response body")
    observed = f"{type(error).__name__} from {type(cause).__name__}: call, status, body and last error named"
    return Outcome(cause is not None and named, observed, named, None, None)


# --- point 3: a killed writer leaves whole segments and frees its lock ------------------------------------------------

KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from fund_pipeline.domain.records import FundingPrint
    from fund_pipeline.live.landing import SegmentWriter, prints_table
    rows = [FundingPrint("binance", "BTC/USDT:USDT", "BTC", "predicted", 0, i, i, 1e-4, 8.0, 1.0, 1.0, "ws")
            for i in range(20000)]
    writer = SegmentWriter(sys.argv[1])
    for n in range(10**9):
        writer.write({"prints": prints_table(rows)})
        if n == 4:
            print("ready", flush=True)
    """
)


def killed_writer_leaves_whole_segments(folder: Path, quick: bool) -> Outcome:
    landing = folder / "landing"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(landing)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, 9)
    proc.wait()
    segments = list_segments(landing, "prints")
    reopened = timed(lambda: SegmentWriter(landing).close())
    lost = 20000 * len(segments) - len(read_landed(landing, "prints"))
    held = len(segments) >= 5 and reopened.error is None
    observed = (
        f"kill -9 mid-write: {len(segments)} whole segments, lock free for the next writer: {reopened.error is None}"
    )
    return Outcome(held, observed, None, lost, unreadable_segments(landing))


# --- point 4: one clock per venue, far-future prints quarantined, the sensor steered by nothing absurd ---------------

FUTURE_FRAME = json.dumps({
    "e": "markPriceUpdate", "E": 4_070_908_800_000, "s": "BTCUSDT", "p": "1", "i": "1", "P": "1",
    "r": "0.0001", "T": 4_070_937_600_000,
})  # fmt: skip


def future_print_quarantined(folder: Path, quick: bool) -> Outcome:
    stream = TickStream(period_s=0.05, junk=(FUTURE_FRAME,))
    stream.tick = int(time.time() * 1000)  # E = wall-clock ms: the venue keeps real time
    collector, stats = run_against_ticks(folder, stream, CollectorConfig(), seconds=1.5)
    quarantine = read_landed(folder / "landing", "quarantine")
    offset_s = collector.clocks["binance"].offset_ns / 1e9
    clear = len(quarantine) > 0 and bool(quarantine["reason"].str.contains("ahead of the venue's clock").all())
    held = clear and stats["future:binance"] == len(quarantine) and abs(offset_s) < 60
    observed = f"{len(quarantine)} 2099 prints quarantined naming the clock; binance clock offset {offset_s:.2f} s"
    return Outcome(held, observed, clear, _ticks_lost(folder), unreadable_segments(folder / "landing"))


def _ticks_lost(folder: Path) -> int:
    """Ticks missing between the first and the last landed: numbered frames sent but not landed."""
    ticks = landed_ticks(folder)
    return len(set(range(ticks[0], ticks[-1] + 1)) - set(ticks)) if ticks else 1


def malformed_frames_quarantined(folder: Path, quick: bool) -> Outcome:
    junk = (
        '{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","r":"0.0001","T":17',
        '{"e":"aggTrade","E":1,"s":"BTCUSDT"}',
        '{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","r":"NaN","T":1714550400000}',
        b"\x00\xff binary",
    )
    stream = TickStream(period_s=0.05, junk=junk)
    _, stats = run_against_ticks(folder, stream, CollectorConfig(), seconds=1.0)
    quarantine = read_landed(folder / "landing", "quarantine")
    reasons = quarantine["reason"] if len(quarantine) else pd.Series(dtype=str)
    clear = bool(reasons.str.contains("not JSON").any() and reasons.str.contains("unknown message").any())
    held = stats["connects:binance"] == 1 and stats["quarantined:binance"] == len(quarantine) > 0 and clear
    observed = f"{len(quarantine)} junk frames quarantined with reasons on 1 connection; ticks between them kept"
    return Outcome(held, observed, clear, _ticks_lost(folder), unreadable_segments(folder / "landing"))


def rotation_loses_no_print(folder: Path, quick: bool) -> Outcome:
    """Connections rotated every 0.4 s (a venue's age limit, shrunk): the next opens before the old one closes."""
    stream = TickStream(period_s=0.01)
    _, stats = run_against_ticks(folder, stream, CollectorConfig(max_age_s={"binance": 0.4}, silence_s=5.0), 2.0)
    rotations = stats["rotations:binance"]
    held = rotations >= 3 and stats["connects:binance"] == rotations + 1 and _ticks_lost(folder) == 0
    observed = f"{rotations} rotations, {len(landed_ticks(folder))} ticks landed"
    return Outcome(held, observed, None, _ticks_lost(folder), unreadable_segments(folder / "landing"))


def one_clock_per_venue(folder: Path, quick: bool) -> Outcome:
    """An emulator a day ahead of the local clock: its venues' prints carry its time, received-at stays local."""
    ahead = pd.Timestamp.now(tz="UTC").floor("s") + pd.Timedelta(days=1)
    landing = folder / "landing"

    async def go():
        emulator = await start_emulator(bases=("BTC",), start=ahead, speed=1.0)
        try:
            collector = Collector(
                ["binance", "hyperliquid"], ["BTC"], landing, api_base_url=emulator.base_url,
                config=CollectorConfig(), seed=5,
            )  # fmt: skip
            await collector.run(4.0 if quick else 6.0)
            return collector
        finally:
            await emulator.stop()

    collector = asyncio.run(go())
    offset_s = collector.clocks["binance"].offset_ns / 1e9
    live = read_landed(landing, "prints").query("source == 'ws'")
    on_venue_time = bool(len(live)) and bool((live["ts"] > ahead - pd.Timedelta(minutes=1)).all())
    received_local = bool(len(live)) and bool((live["received_at"] < ahead - pd.Timedelta(hours=23)).all())
    held = abs(offset_s - 86_400) < 60 and on_venue_time and received_local
    observed = f"clock offset {offset_s:,.0f} s (day ahead); {len(live)} prints on venue time, received-at local"
    return Outcome(held, observed, None, None, unreadable_segments(landing))


def sensor_ignores_absurd_times_and_keys(folder: Path, quick: bool) -> Outcome:
    """Evaluations in turn: a print stamped 2099, then a snapshot of a 2024 window and an unreadable segment."""
    landing = LandingZone(path=str(folder / "landing"))
    root = landing.root()
    land_snapshots(root, [1])
    first, cursor = evaluate(landing, None)
    now = pd.Timestamp("2025-03-03 08:20", tz="UTC")
    land_times(root, [now], [now, pd.Timestamp("2099-01-01", tz="UTC")])
    after_2099, cursor = evaluate(landing, cursor)
    data_time = json.loads(cursor)["data_time"]
    land_times(root, [pd.Timestamp("2024-06-01 03:00", tz="UTC")], [now])
    (root / "snapshots" / "000000000003.parquet").write_bytes(b"")
    after_2024, cursor = evaluate(landing, cursor)  # raising here is the failure: the runner reports it
    land_snapshots(root, [35])
    later, cursor = evaluate(landing, cursor)
    refresh = [("2025-03-03-08:00", "refresh")]
    held = first == after_2099 == later == refresh and data_time == now.value and after_2024 == []
    observed = (
        f"2099 print: data time {pd.Timestamp(data_time, tz='UTC'):%H:%M}; 2024 window dropped, "
        f"requests {after_2024}; next window still refreshed, not finalised: {later == refresh}"
    )
    return Outcome(held, observed, None, None, None)


# --- point 6: backoff, silence limits, idempotent warm start ------------------------------------------------------


def reconnect_backs_off(folder: Path, quick: bool) -> Outcome:
    """Every connection opens, gets one frame and is aborted: the delays between attempts must grow."""
    stream = TickStream(period_s=0.01, drop_after=1)
    config = CollectorConfig(backoff_base_s=0.1, backoff_max_s=5.0, stable_after_s=5.0)
    _, stats = run_against_ticks(folder, stream, config, seconds=1.9)
    gaps = [b - a for a, b in zip(stream.attempts, stream.attempts[1:], strict=False)]
    grows = len(gaps) >= 4 and all(gap >= 0.1 * 2**k / 2 for k, gap in enumerate(gaps[:4])) and gaps[3] > 3 * gaps[0]
    observed = "gaps " + ", ".join(f"{g:.2f}" for g in gaps[:5]) + f" s over {stats['connects:binance']} connects"
    return Outcome(grows, observed, None, None, unreadable_segments(folder / "landing"))


def silent_stream_reconnected(folder: Path, quick: bool) -> Outcome:
    """bybit pushes every 0.5 s, each connection goes silent after 0.7 s but keeps answering pings."""
    config = CollectorConfig(silence_s=0.6, backoff_base_s=0.05, app_pings={"bybit": ('{"op":"ping"}', 0.2)})
    landing = folder / "landing"

    async def go():
        emulator = await start_emulator(bases=("BTC",), faults=Faults(silent_after_s=0.7))
        try:
            collector = Collector(
                ["bybit"], ["BTC"], landing, api_base_url=emulator.base_url, config=config,
                clock=emulator.state.clock.now, seed=5,
            )  # fmt: skip
            return await collector.run(3.6)
        finally:
            await emulator.stop()

    stats = asyncio.run(go())
    prints = read_landed(landing, "prints")
    resumed = len(prints) and prints["received_at"].max() - prints["received_at"].min() > pd.Timedelta(seconds=1.5)
    held = stats["watchdog:bybit"] >= 2 and stats["disconnects:bybit:silent"] == stats["watchdog:bybit"] and resumed
    observed = f"{stats['watchdog:bybit']} silent streams reconnected by the watchdog, data resumed: {bool(resumed)}"
    return Outcome(bool(held), observed, None, None, unreadable_segments(landing))


def warm_start_idempotent(folder: Path, quick: bool) -> Outcome:
    start = pd.Timestamp("2025-03-01 05:40", tz="UTC")
    landing = folder / "landing"

    async def go():
        emulator = await start_emulator(bases=("BTC",), start=start, speed=1.0)
        try:
            rest = CcxtSource(
                venues=["binance"], symbols={"binance": [BTC]}, api_base_url=emulator.base_url,
                now=emulator.state.clock.now, throttle=False,
            )  # fmt: skip
            collector = Collector(
                ["binance"], ["BTC"], landing, api_base_url=emulator.base_url,
                clock=emulator.state.clock.now, rest_source=rest, seed=5,
            )  # fmt: skip
            return await collector.run(2.0)
        finally:
            await emulator.stop()

    first, second = asyncio.run(go()), asyncio.run(go())
    settled = read_landed(landing, "prints").query("kind == 'settled'")
    copies = int(settled.duplicated(["symbol", "funding_time"]).sum())
    held = first["seed_prints"] == second["seed_prints"] > 0 and copies == 0
    lost = first["seed_prints"] - (len(settled) - copies)
    observed = (
        f"two starts seeded {first['seed_prints']} + {second['seed_prints']}; landed {len(settled)}, {copies} copies"
    )
    return Outcome(held, observed, None, lost, unreadable_segments(landing))


CASES = [
    FaultCase(2, "venue_down_fails_only_its_own", "binance down: VenueUnavailableError; hyperliquid served in full",
              venue_down_fails_only_its_own),
    FaultCase(3, "killed_writer_leaves_whole_segments", "kill -9 mid-write: whole segments, lock free",
              killed_writer_leaves_whole_segments),
    FaultCase(4, "future_print_quarantined", "2099 print quarantined naming the clock; clock unmoved",
              future_print_quarantined),
    FaultCase(4, "malformed_frames_quarantined", "junk frames quarantined with reasons; connection and ticks kept",
              malformed_frames_quarantined),
    FaultCase(4, "one_clock_per_venue", "emulator a day ahead: prints on its time, received-at local",
              one_clock_per_venue),
    FaultCase(4, "sensor_ignores_absurd_times_and_keys", "2099 time, 2024 window, bad segment: one valid run",
              sensor_ignores_absurd_times_and_keys),
    FaultCase(6, "reconnect_backs_off", "dropped after 1 frame: delays double (jittered)", reconnect_backs_off),
    FaultCase(6, "silent_stream_reconnected", "silent but pinging: watchdog reconnects, data resumes",
              silent_stream_reconnected),
    FaultCase(6, "rotation_loses_no_print", "rotation before the age limit, make-before-break: no tick lost",
              rotation_loses_no_print),
    FaultCase(6, "failed_call_cause_kept", "the error names method and last error; __cause__ kept",
              failed_call_cause_kept),
    FaultCase(6, "warm_start_idempotent", "two restarts land each settled print once", warm_start_idempotent),
]  # fmt: skip
