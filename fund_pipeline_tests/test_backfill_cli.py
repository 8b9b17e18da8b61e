"""`fund-pipeline backfill`: options, plan and resume rules, venue spans against the emulator, kill -9 and resume."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from fund_pipeline.backfill import (
    BackfillConfigError,
    VenueSpan,
    parse_request,
    plan,
    record_backfill,
    run_backfill,
    venue_span,
)
from fund_pipeline.emulator.server import Faults
from fund_pipeline.partition_runs import Ledger
from fund_pipeline.sources.ccxt import CcxtSource
from fund_pipeline.sources.simulated import SimulatedMarket
from fund_pipeline.venues.registry import UnknownVenueError
from fund_pipeline_tests.emulator_thread import emulator_in_thread

# The emulator's clock: OKX keeps 92 days of funding history, so from here it serves 2025-01-03 00:00 on.
NOW = pd.Timestamp("2025-04-05", tz="UTC")
BASES = ("BTC", "ETH")
DAY = pd.Timedelta(days=1)


def utc(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def serve(faults: Faults):
    with emulator_in_thread(bases=BASES, start=NOW, speed=1.0, faults=faults) as running:
        yield running


def test_options_are_checked_before_anything_runs():
    request = parse_request("binance, OKX", "btc,eth,BTC", "2020-01-01", "2021-01-01", "http://127.0.0.1:1/")
    assert request.venues == ("binance", "okx") and request.bases == ("BTC", "ETH")
    assert request.since == utc("2020-01-01") and request.until == utc("2021-01-01")
    assert request.api_base_url == "http://127.0.0.1:1"
    with pytest.raises(BackfillConfigError, match=r"unknown venue\(s\) \['kraken'\]"):
        parse_request("binance,kraken", "BTC", "2020-01-01")
    with pytest.raises(BackfillConfigError, match="--bases"):
        parse_request("binance", " , ", "2020-01-01")
    with pytest.raises(BackfillConfigError, match="--since 'last year' is not a date"):
        parse_request("binance", "BTC", "last year")
    with pytest.raises(BackfillConfigError, match="not a whole UTC day"):
        parse_request("binance", "BTC", "2020-01-01 12:00")
    with pytest.raises(BackfillConfigError, match="--until 2019-12-31 must be after --since 2020-01-01"):
        parse_request("binance", "BTC", "2020-01-01", "2019-12-31")


def test_the_manifest_adds_bases_and_refuses_another_api(tmp_path):
    manifest = tmp_path / "backfill" / "manifest.json"
    assert record_backfill(manifest, parse_request("okx", "ETH,BTC", "2024-01-01")) == ["BTC", "ETH"]
    assert record_backfill(manifest, parse_request("binance", "SOL", "2024-01-01")) == ["BTC", "ETH", "SOL"]
    assert json.loads(manifest.read_text()) == {"api_base_url": None, "bases": ["BTC", "ETH", "SOL"]}
    with pytest.raises(BackfillConfigError, match="holds data from the venues"):
        record_backfill(manifest, parse_request("okx", "BTC", "2024-01-01", api_base_url="http://127.0.0.1:9"))


def test_plan_skips_only_partitions_done_with_the_same_fingerprint(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.touch()
    ledger = Ledger(tmp_path / "ledger.json", warehouse)
    ledger.record({"2025-01-01|okx": "venues|BTC", "2025-01-02|okx": "venues|BTC", "2025-01-03|okx": "venues|BTC,ETH"})
    stored = {"2025-01-01|okx", "2025-01-03|okx"}  # 01-02 is in the ledger but not in Dagster: redo it
    spans = [VenueSpan("okx", utc("2025-01-01"), utc("2025-01-05")), VenueSpan("binance", None, utc("2025-01-05"))]
    work = plan(spans, "venues|BTC", ledger, stored)
    assert (work.total, work.done) == (4, 1)
    assert work.todo == {"okx": [utc("2025-01-02"), utc("2025-01-03"), utc("2025-01-04")]}
    assert set(work.fingerprints.values()) == {"venues|BTC"}


@pytest.fixture(scope="module")
def emulator():
    yield from serve(Faults())


@pytest.mark.e2e
def test_venue_spans_follow_depth_listing_and_the_venues_clock(emulator):
    # no `now`: the source reads each venue's clock from its REST API (the emulator's, months behind the wall's)
    source = CcxtSource(venues=("binance", "okx"), api_base_url=emulator.base_url, bases=BASES, throttle=False)
    request = parse_request("binance,okx", "BTC,ETH", "2024-06-01", "2025-06-01", emulator.base_url)
    binance, okx = (venue_span(source, venue, request) for venue in request.venues)
    # the simulated market (and so the emulator) starts settling on 2025-01-01
    assert (binance.first, binance.end) == (utc("2025-01-01"), NOW)
    assert any("first settled print" in note for note in binance.notes)
    assert any("past the venue's today" in note for note in binance.notes)
    # 92 days before the emulator's now is 2025-01-03 00:00; the first whole day after it (and the margin) is 01-04
    assert (okx.first, okx.end) == (utc("2025-01-04"), NOW)
    assert any("keeps only 92 days" in note and "clamped to 2025-01-04" in note for note in okx.notes)
    assert source.earliest_settled("okx", utc("2025-01-10 00:00:01"), NOW) == utc("2025-01-10 08:00")
    with pytest.raises(UnknownVenueError, match=r"base\(s\) \['DOGE'\]"):
        CcxtSource(venues=("okx",), api_base_url=emulator.base_url, bases=("DOGE",)).funding_prints("okx", NOW, NOW)


# ---------------------------------------------------------------- kill -9 and resume, faults on

FAULTS = dict(rate_limits=True, http_429_first_n=2, http_5xx_every_n=9, http_drop_every_n=13, retry_after_s=0)
SINCE, UNTIL = "2024-12-01", "2025-01-09"
# binance from its first settlement (2025-01-01), okx from the first day it still keeps (2025-01-04)
EXPECTED = {"binance": (utc("2025-01-01"), utc(UNTIL)), "okx": (utc("2025-01-04"), utc(UNTIL))}
TOTAL = sum((end - first).days for first, end in EXPECTED.values())
DAYS_PER_RUN = 3


@pytest.fixture(scope="module")
def faulty_emulator():
    yield from serve(Faults(**FAULTS))


def command(base_url: str) -> list[str]:
    return [
        sys.executable, "-m", "fund_pipeline.cli", "backfill", "--venues", "binance,okx", "--bases", "BTC,ETH",
        "--since", SINCE, "--until", UNTIL, "--api-base-url", base_url, "--days-per-run", str(DAYS_PER_RUN),
    ]  # fmt: skip


def environment(data: Path) -> dict[str, str]:
    return dict(os.environ, FUND_PIPELINE_DATA_DIR=str(data), DAGSTER_HOME=str(data / "dagster_home"))


def stored(data: Path, table: str, key: list[str]) -> pd.DataFrame:
    with duckdb.connect(str(data / "backfill" / "warehouse.duckdb"), read_only=True) as conn:
        frame = conn.execute(f"SELECT * FROM {table}").df()
    return frame.sort_values(key).reset_index(drop=True)


PRINT_KEY = ["venue", "symbol", "kind", "funding_time", "ts"]
CURVE_KEY = ["venue", "symbol", "ts_snap"]


@pytest.mark.e2e
@pytest.mark.slow
def test_kill_9_mid_backfill_then_resume_stores_what_a_clean_run_stores(
    faulty_emulator, tmp_path, monkeypatch, capsys, caplog
):
    counters = faulty_emulator.state.counters
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    counters.clear()
    # the clean run in this process (the same command, without a process start's imports), the other two as commands
    for name, value in environment(clean).items():
        monkeypatch.setenv(name, value)
    with caplog.at_level(logging.WARNING, logger="fund_pipeline.sources.ccxt"):
        assert run_backfill("binance,okx", "BTC,ETH", SINCE, UNTIL, faulty_emulator.base_url, DAYS_PER_RUN) == 0
    out, err = capsys.readouterr()
    assert f"backfilled {TOTAL} partition(s)" in out
    assert "--since clamped to 2025-01-04 for okx" in err
    retried = caplog.text
    assert "RateLimitExceeded" in retried or "DDoSProtection" in retried  # the injected 429s, retried
    assert "NetworkError" in retried and "502" in retried  # the dropped connections and the gateway errors

    counters.clear()  # the injected 429s again, for the killed run
    ledger = resumed / "backfill" / "backfill_ledger.json"
    proc = subprocess.Popen(command(faulty_emulator.base_url), env=environment(resumed), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not ledger.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(json.loads(ledger.read_text())["partitions"])
    assert 0 < done_before < TOTAL, "the kill must land mid-way"
    again = subprocess.run(
        command(faulty_emulator.base_url), env=environment(resumed), capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"backfilled {TOTAL - done_before} partition(s)" in again.stdout
    assert f"{done_before} already done" in again.stdout

    # the venues' limits were kept by every process: no 429 or ban from the emulator's limiter
    assert not {k: n for k, n in counters.items() if k.startswith("rate_limited:")}
    for table, key in (("raw_funding_prints", PRINT_KEY), ("curve_history", CURVE_KEY)):
        want, got = stored(clean, table, key), stored(resumed, table, key)
        assert not got.duplicated(key).any(), f"{table}: duplicate keys after the resume"
        pd.testing.assert_frame_equal(got, want)
    prints = stored(resumed, "raw_funding_prints", PRINT_KEY)
    market = SimulatedMarket(bases=BASES)  # what the emulator serves, computed without it
    for venue, (first, end) in EXPECTED.items():
        want = market.funding_prints(venue, first, end)
        want = want[want["kind"] == "settled"].sort_values(["symbol", "funding_time"]).reset_index(drop=True)
        have = prints[prints["venue"] == venue].reset_index(drop=True)
        assert have["funding_time"].tolist() == want["funding_time"].tolist(), f"{venue}: gaps or extra prints"
        np.testing.assert_allclose(have["rate"], want["rate"], rtol=1e-12)
