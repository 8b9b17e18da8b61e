"""The live collector's rules, against a loopback stream the test steers and against the in-process emulator."""

import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

from fund_pipeline.domain.curve import FundingCurveBuilder, SnapshotPolicy, snapshots_frame
from fund_pipeline.emulator.server import Faults, start_emulator
from fund_pipeline.live.collector import Collector, CollectorConfig, backoff_delay
from fund_pipeline.live.landing import list_segments, read_landed
from fund_pipeline.sources.ccxt import CcxtSource
from fund_pipeline_tests.emulator_thread import emulator_in_thread
from fund_pipeline_tests.tick_streams import NoSettledRest, TickStream, landed_ticks, run_against_ticks

pytestmark = pytest.mark.e2e  # loopback WebSocket servers, the emulator, a collector subprocess

BTC = "BTC/USDT:USDT"


# --- backoff, resubscribe ------------------------------------------------------------------------------


def test_backoff_delay_is_exponential_with_jitter_and_capped():
    rng = random.Random(1)
    for attempt in range(6):
        ceiling = min(3.0, 0.1 * 2**attempt)
        draws = [backoff_delay(attempt, 0.1, 3.0, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in draws)
        assert max(draws) - min(draws) > ceiling / 4, "jitter spreads the retries"


@pytest.fixture(scope="module")
def dropping_run(tmp_path_factory):
    """Every connection opens, subscribes, gets one data frame and is aborted."""
    tmp_path = tmp_path_factory.mktemp("dropping")
    stream = TickStream(period_s=0.01, drop_after=1)
    rest = NoSettledRest()
    config = CollectorConfig(backoff_base_s=0.1, backoff_max_s=5.0, stable_after_s=5.0)
    collector, stats = run_against_ticks(tmp_path, stream, config, seconds=1.9, rest=rest)
    return stream, rest, stats, tmp_path


def test_reconnect_backs_off_after_connections_that_opened_then_dropped(dropping_run):
    stream, _, stats, _ = dropping_run
    gaps = [b - a for a, b in zip(stream.attempts, stream.attempts[1:], strict=False)]
    assert len(gaps) >= 4, f"expected at least 5 attempts, got {stream.attempts}"
    for k, gap in enumerate(gaps[:4]):
        assert gap >= 0.1 * 2**k / 2, f"attempt {k + 1} came {gap:.3f}s after the previous one: no backoff"
    later_gaps = zip(gaps, gaps[1:4], strict=False)
    assert all(later >= earlier - 0.02 for earlier, later in later_gaps), f"delays must grow: {gaps}"
    assert gaps[3] > 3 * gaps[0]
    assert stats["connects:binance"] == len(stream.attempts)


def test_every_connection_resubscribes_and_gap_fills(dropping_run):
    stream, rest, stats, tmp_path = dropping_run
    assert len(stream.subscriptions) >= 4
    for requests in stream.subscriptions:
        assert requests[:1] == [{"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s"], "id": 1}]
    gap_fills = [c for c in rest.calls if c[0] == "settled_since"]
    assert len(gap_fills) >= len(stream.subscriptions) - 2, "a reconnect after data fetches the missed settlements"
    assert all(c[1:3] == ("binance", BTC) for c in gap_fills)
    assert len(landed_ticks(tmp_path)) >= len(stream.subscriptions) - 1


# --- rotation -------------------------------------------------------------------------------------------


def test_rotation_is_make_before_break_and_loses_no_print(tmp_path):
    stream = TickStream(period_s=0.01)
    config = CollectorConfig(max_age_s={"binance": 0.4}, silence_s=5.0)
    _, stats = run_against_ticks(tmp_path, stream, config, seconds=2.0)
    assert stats["rotations:binance"] >= 3
    assert stats["connects:binance"] == stats["rotations:binance"] + 1
    assert not [k for k in stats if k.startswith(("watchdog", "rotation_failed"))]
    ticks = landed_ticks(tmp_path)
    missing = sorted(set(range(ticks[0], ticks[-1] + 1)) - set(ticks))
    assert not missing, f"ticks lost across rotations: {missing}"
    assert len(ticks) > 100


# --- quarantine -----------------------------------------------------------------------------------------


def test_malformed_and_unknown_frames_are_quarantined_never_fatal(tmp_path):
    junk = (
        '{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","r":"0.0001","T":17',
        '{"e":"aggTrade","E":1,"s":"BTCUSDT"}',
        '{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","r":"NaN","T":1714550400000}',
        b"\x00\xff binary",
    )
    stream = TickStream(period_s=0.05, junk=junk)
    _, stats = run_against_ticks(tmp_path, stream, CollectorConfig(), seconds=1.0)
    assert stats["connects:binance"] == 1, "garbage must not cost the connection"
    quarantine = read_landed(tmp_path / "landing", "quarantine")
    in_flight = 2 * len(junk)  # the junk after the last ticks may still be on the wire at stop
    assert stats["quarantined:binance"] == len(quarantine) > stream.junk_sent - in_flight > 0
    assert set(quarantine["raw"]) == {j if isinstance(j, str) else j.decode("utf-8", "replace") for j in junk}
    assert (
        quarantine["reason"].str.contains("not JSON").any()
        and quarantine["reason"].str.contains("unknown message").any()
    )
    ticks = landed_ticks(tmp_path)
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), "no data frame lost between the junk"
    assert len(ticks) >= stream.tick // 2, f"{len(ticks)} of {stream.tick} ticks (the last ones in flight at stop)"


# --- watchdog (emulator) --------------------------------------------------------------------------------


def run_against_emulator(tmp_path, venues, config, seconds, faults=None, speed=1.0, rest=None, start=None):
    async def go():
        emulator = await start_emulator(bases=("BTC",), speed=speed, start=start, faults=faults)
        try:
            collector = Collector(
                venues, ["BTC"], tmp_path / "landing", api_base_url=emulator.base_url,
                policy=SnapshotPolicy("every_update"), clock=emulator.state.clock.now, config=config,
                rest_source=rest(emulator) if rest else NoSettledRest(), seed=5,
            )  # fmt: skip
            return await collector.run(seconds)
        finally:
            await emulator.stop()

    return asyncio.run(go())


def test_watchdog_reconnects_a_silent_stream_despite_pongs(tmp_path):
    """bybit pushes every 0.5 s; each connection stops data after 0.7 s but keeps answering app pings."""
    config = CollectorConfig(silence_s=0.6, backoff_base_s=0.05, app_pings={"bybit": ('{"op":"ping"}', 0.2)})
    stats = run_against_emulator(tmp_path, ["bybit"], config, seconds=3.6, faults=Faults(silent_after_s=0.7))
    assert stats["watchdog:bybit"] >= 2 and stats["connects:bybit"] >= 3
    assert stats["disconnects:bybit:silent"] == stats["watchdog:bybit"]
    prints = read_landed(tmp_path / "landing", "prints")
    assert prints["received_at"].max() - prints["received_at"].min() > pd.Timedelta(seconds=1.5), (
        "data resumes after each reconnect"
    )
    assert not any(k.startswith("quarantined") for k in stats)


# --- warm start and the interpolated first buckets ------------------------------------------------------


class LateSeedRest:
    """The emulator's REST, but the warm start answers as if fetched `late` windows before the stream starts.

    That is what a slow warm start (or a settlement right after it) does: the first live print is
    then several windows past the seeded ring.
    """

    def __init__(self, inner: CcxtSource, late: dict[str, int]) -> None:
        self.inner = inner
        self.late = late

    def last_settled(self, venue, symbol, n):
        late = self.late.get(venue, 0)
        frame = self.inner.last_settled(venue, symbol, n + late)
        return frame.iloc[: len(frame) - late].reset_index(drop=True)

    def settled_since(self, venue, symbol, since):
        return self.inner.settled_since(venue, symbol, since)

    def stream_intervals(self, venue, symbols):
        return self.inner.stream_intervals(venue, symbols)


def test_warm_start_gives_full_first_curve_and_missed_windows_come_from_rest(tmp_path):
    venues = ["binance", "hyperliquid"]

    def rest(emulator):
        source = CcxtSource(
            venues=venues, symbols={"binance": [BTC], "hyperliquid": ["BTC/USDC:USDC"]},
            api_base_url=emulator.base_url, now=emulator.state.clock.now,
        )  # fmt: skip
        return LateSeedRest(source, {"hyperliquid": 2})

    start = pd.Timestamp("2025-03-01 05:40", tz="UTC")
    stats = run_against_emulator(tmp_path, venues, CollectorConfig(), seconds=5.0, speed=60, rest=rest, start=start)
    prints = read_landed(tmp_path / "landing", "prints")
    snaps = read_landed(tmp_path / "landing", "snapshots")
    assert stats["gap_fill_prints:hyperliquid"] == 2, "the two windows settled after the seed are fetched, not guessed"
    assert stats["builder:interpolated"] == 0 and (snaps["interpolated_mask"] == 0).all()
    for venue in venues:
        first_live = prints.loc[(prints["venue"] == venue) & (prints["source"] == "ws"), "ts"].min()
        first = snaps.loc[(snaps["venue"] == venue) & (snaps["ts_snap"] >= first_live)].sort_values("ts_snap").iloc[0]
        assert first["n_filled"] == 8, f"{venue}: first live curve has {first['n_filled']} buckets"
    replayed = []
    for (venue, symbol), group in prints.groupby(["venue", "symbol"], sort=False):
        builder = FundingCurveBuilder(venue, symbol, SnapshotPolicy("every_update"))
        first_ws = int((group["source"] == "ws").to_numpy().argmax())
        builder.seed(group.iloc[:first_ws])
        for rec in group.iloc[first_ws:].itertuples(index=False):
            replayed.append(builder.update(rec.funding_time.value, rec.rate, rec.interval_h, rec.ts.value))
    pd.testing.assert_frame_equal(
        snaps.sort_values(["venue", "ts_snap"], kind="stable").reset_index(drop=True),
        snapshots_frame(replayed).sort_values(["venue", "ts_snap"], kind="stable").reset_index(drop=True),
        check_dtype=False,
    )


# --- kill -9 --------------------------------------------------------------------------------------------


def test_kill_9_of_collect_leaves_readable_segments_and_loses_at_most_a_second(tmp_path):
    landing = tmp_path / "landing"
    with emulator_in_thread(bases=("BTC", "ETH")) as emulator:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fund_pipeline.cli", "collect", "--venues", "binance", "--bases", "BTC,ETH",
             "--landing", str(landing), "--api-base-url", emulator.base_url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60  # imports alone take seconds on a loaded machine
            while time.monotonic() < deadline and proc.poll() is None:
                if list_segments(landing, "prints") and (read_landed(landing, "prints")["source"] == "ws").any():
                    break
                time.sleep(0.2)
            else:
                why = proc.stderr.read().decode() if proc.poll() is not None else "timeout"
                pytest.fail(f"collector landed no live print: {why}")
            time.sleep(2.3)
            sent = emulator.state.counters["ws_frame:binance"]
            killed_at = emulator.state.clock.now()
            os.kill(proc.pid, 9)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    segments = list_segments(landing, "prints")
    assert all(pq.read_table(path).num_rows > 0 for _, path in segments)
    live = read_landed(landing, "prints").query("source == 'ws'")
    lost = sent - len(live)
    assert 0 <= lost <= 4, f"{lost} of {sent} frames lost (2 symbols, 1 frame/s each, 1 s flush)"
    assert killed_at - live["ts"].max() <= pd.Timedelta(seconds=2.5)


# --- reliability: backoff reset, clocks, restarts ----------------------------------------------------------


def test_backoff_resets_after_connections_that_lived_and_delivered_before_dropping(tmp_path):
    """Dropped after 200 ticks (2 s) of data, past the 1.4 s the rule asks after a delay of at most 0.2 s:
    each reconnect comes at once, not after a growing delay."""
    stream = TickStream(period_s=0.01, drop_after=200)
    config = CollectorConfig(backoff_base_s=0.2, backoff_max_s=5.0)
    with_delays = []

    class Recording(logging.Handler):
        def emit(self, record):
            if "reconnecting in" in record.getMessage():
                with_delays.append(record.getMessage())

    handler = Recording()
    logging.getLogger("fund_pipeline.live.collector").addHandler(handler)
    try:
        _, stats = run_against_ticks(tmp_path, stream, config, seconds=8.0)
    finally:
        logging.getLogger("fund_pipeline.live.collector").removeHandler(handler)
    assert len(stream.attempts) >= 3, f"attempts at {stream.attempts}"
    assert with_delays and all(m.endswith("(attempt 1)") for m in with_delays), with_delays
    assert stats["reconnects:binance"] == len(stream.attempts) - 1


def test_a_print_stamped_far_ahead_is_quarantined_and_moves_no_clock(tmp_path):
    future = json.dumps({
        "e": "markPriceUpdate", "E": 4_070_908_800_000, "s": "BTCUSDT", "p": "1", "i": "1", "P": "1",
        "r": "0.0001", "T": 4_070_937_600_000,
    })  # fmt: skip
    stream = TickStream(period_s=0.05, junk=(future,))
    stream.tick = int(time.time() * 1000)  # E = wall-clock ms: the venue keeps real time

    collector, stats = run_against_ticks(tmp_path, stream, CollectorConfig(), seconds=1.5)
    quarantine = read_landed(tmp_path / "landing", "quarantine")
    assert 0 < stats["future:binance"] == len(quarantine) <= stream.junk_sent
    assert quarantine["reason"].str.contains("ahead of the venue's clock").all()
    assert abs(collector.clocks["binance"].offset_ns) < 60 * 1_000_000_000, "the 2099 stamp did not move the clock"
    live = read_landed(tmp_path / "landing", "prints").query("source == 'ws'")
    assert (live["ts"] < pd.Timestamp("2030-01-01", tz="UTC")).all()


def test_rest_now_follows_the_venues_clock_not_the_local_one(tmp_path):
    """An emulator a day ahead of the local clock: warm start and gap-fill ask for its recent windows."""
    ahead = pd.Timestamp.now(tz="UTC").floor("s") + pd.Timedelta(days=1)

    async def go():
        emulator = await start_emulator(bases=("BTC",), start=ahead, speed=1.0)
        try:
            collector = Collector(
                ["binance", "hyperliquid"], ["BTC"], tmp_path / "landing", api_base_url=emulator.base_url,
                config=CollectorConfig(), seed=5,
            )  # fmt: skip
            return collector, await collector.run(10.0)
        finally:
            await emulator.stop()

    collector, stats = asyncio.run(go())
    assert stats["seed_prints"] >= 14, "the warm start found the last settlements at the venue's time"
    offset = collector.clocks["binance"].offset_ns / 1e9
    assert abs(offset - 86_400) < 60, f"clock offset {offset:.0f} s"
    assert collector.clocks["hyperliquid"] is collector.clocks["binance"], "one emulator, one clock"
    live = read_landed(tmp_path / "landing", "prints").query("source == 'ws'")
    hyperliquid = live[live["venue"] == "hyperliquid"]
    assert len(hyperliquid) and (hyperliquid["ts"] > ahead - pd.Timedelta(minutes=1)).all(), "its prints on that clock"
    assert (hyperliquid["received_at"] < ahead - pd.Timedelta(hours=23)).all(), "received-at stays local"


def test_warm_start_lands_nothing_twice_across_restarts(tmp_path):
    start = pd.Timestamp("2025-03-01 05:40", tz="UTC")

    def run_once():
        async def go():
            emulator = await start_emulator(bases=("BTC",), start=start, speed=1.0)
            try:
                rest = CcxtSource(
                    venues=["binance"], symbols={"binance": [BTC]}, api_base_url=emulator.base_url,
                    now=emulator.state.clock.now, throttle=False,
                )  # fmt: skip
                collector = Collector(
                    ["binance"], ["BTC"], tmp_path / "landing", api_base_url=emulator.base_url,
                    clock=emulator.state.clock.now, rest_source=rest, seed=5,
                )  # fmt: skip
                return await collector.run(2.0)
            finally:
                await emulator.stop()

        return asyncio.run(go())

    first, second = run_once(), run_once()
    settled = read_landed(tmp_path / "landing", "prints").query("kind == 'settled'")
    assert first["seed_prints"] == second["seed_prints"] == 7
    assert len(settled) == 7 and not settled.duplicated(["symbol", "funding_time"]).any()


def test_status_line_says_when_a_venue_has_sent_nothing_yet(tmp_path):
    collector = Collector(["binance", "okx"], ["BTC"], tmp_path)
    collector._last_message["binance"] = time.monotonic() - 2.0
    line = collector.status_line(12.0)
    assert line.startswith("12 prints/s; ")
    assert "binance 0/1 connected, last message 2." in line
    assert "okx 0/1 connected, no message yet" in line
    assert "nans ago" not in line
