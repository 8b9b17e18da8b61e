"""Landing segments: atomic, ordered, one writer, readable by the lead's raw_funding_prints."""

import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from fund_pipeline.domain.prints import PRINT_COLUMNS
from fund_pipeline.live.landing import (
    LandingLockedError,
    SegmentWriter,
    list_segments,
    prints_table,
    quarantine_table,
    read_landed,
    read_landed_prints,
)

H = 3_600_000_000_000
T0 = pd.Timestamp("2025-01-02", tz="UTC").value


def _print(venue, symbol, kind, funding_ns, ts_ns, rate):
    return (venue, symbol, symbol.split("/")[0], kind, funding_ns, ts_ns, ts_ns + 5, rate, 8.0, 100.0, 99.0, "ws")


def test_missing_folder_gives_empty_prints_with_schema(tmp_path):
    frame = read_landed_prints(tmp_path / "nope", "binance", "2025-01-01", "2025-01-02")
    assert list(frame.columns) == PRINT_COLUMNS and frame.empty
    assert str(frame["funding_time"].dtype) == "datetime64[ns, UTC]"


def test_read_landed_prints_filters_venue_kind_and_half_open_range(tmp_path):
    writer = SegmentWriter(tmp_path)
    rows = [
        _print("binance", "BTC/USDT:USDT", "predicted", T0 + 8 * H, T0 + H, 0.0001),
        _print("binance", "BTC/USDT:USDT", "predicted", T0 + 24 * H, T0 + 17 * H, 0.0002),
        _print("binance", "BTC/USDT:USDT", "settled", T0 + 8 * H, T0 + 8 * H, 0.0003),
        _print("bybit", "BTC/USDT:USDT", "predicted", T0 + 8 * H, T0 + H, 0.0004),
    ]
    writer.write({"prints": prints_table(rows[:2])})
    writer.write({"prints": prints_table(rows[2:])})
    got = read_landed_prints(tmp_path, "binance", pd.Timestamp(T0, tz="UTC"), pd.Timestamp(T0 + 24 * H, tz="UTC"))
    assert got["rate"].tolist() == [0.0001]
    assert got["received_at"].iloc[0].value == T0 + H + 5
    assert str(got["ts"].dtype) == "datetime64[ns, UTC]"


def test_sequence_continues_across_writers_and_one_writer_at_a_time(tmp_path):
    first = SegmentWriter(tmp_path)
    with pytest.raises(LandingLockedError):
        SegmentWriter(tmp_path)
    assert first.write({"prints": prints_table([_print("okx", "BTC/USDT:USDT", "predicted", T0, T0, 0.1)])}) == 0
    assert first.write({"quarantine": quarantine_table([("okx", T0, "bad json", "{")])}) == 1
    assert first.write({"prints": prints_table([])}) is None
    first.close()
    (tmp_path / "prints" / ".tmp-000000000002.parquet").write_bytes(b"half a segm")
    second = SegmentWriter(tmp_path)
    assert not list((tmp_path / "prints").glob(".tmp-*"))
    assert second.write({"prints": prints_table([_print("okx", "BTC/USDT:USDT", "predicted", T0, T0, 0.2)])}) == 2
    assert [s for s, _ in list_segments(tmp_path, "prints")] == [0, 2]
    assert [s for s, _ in list_segments(tmp_path, "prints", after_seq=0)] == [2]
    assert read_landed(tmp_path, "quarantine")["raw"].tolist() == ["{"]


@pytest.mark.e2e  # a writer subprocess, killed
def test_kill_9_while_writing_leaves_only_whole_segments(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from fund_pipeline.domain.records import FundingPrint
        from fund_pipeline.live.landing import SegmentWriter, prints_table
        rows = [
            FundingPrint("binance", "BTC/USDT:USDT", "BTC", "predicted", {T0}, {T0} + i, {T0} + i, 1e-4, 8.0, 1.0, 1.0,
                         "ws")
            for i in range(20000)
        ]
        writer = SegmentWriter(sys.argv[1])
        n = 0
        while True:
            writer.write({{"prints": prints_table(rows)}})
            n += 1
            if n == 5:
                print("ready", flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, 9)
    proc.wait()
    segments = list_segments(tmp_path, "prints")
    assert len(segments) >= 5
    frame = read_landed(tmp_path, "prints")
    assert len(frame) == 20000 * len(segments)
    SegmentWriter(tmp_path).close()
    assert not list((tmp_path / "prints").glob(".tmp-*"))
