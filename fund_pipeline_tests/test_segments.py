"""The landing read path: a bad segment is skipped and listed with its reason, the good ones still flow."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fund_pipeline.domain.records import FundingPrint
from fund_pipeline.live.landing import (
    LandingSegmentError,
    SegmentProblem,
    SegmentWriter,
    prints_table,
    read_landed,
    read_landed_prints,
)

H = 3_600_000_000_000
T0 = pd.Timestamp("2025-01-02", tz="UTC").value


def a_print(rate: float, hour: int) -> FundingPrint:
    ts = T0 + hour * H
    return FundingPrint(
        "binance", "BTC/USDT:USDT", "BTC", "predicted", T0 + 8 * H, ts, ts + 5, rate, 8.0, 100.0, 99.0, "ws"
    )


def land(root, *rates: float) -> None:
    writer = SegmentWriter(root)
    writer.write({"prints": prints_table([a_print(rate, i) for i, rate in enumerate(rates)])})
    writer.close()


@pytest.fixture
def landing_with_bad_segments(tmp_path):
    """Segments 0 and 4 good; 1 empty, 2 truncated, 3 with the rate written as text."""
    land(tmp_path, 0.0001)
    folder = tmp_path / "prints"
    (folder / "000000000001.parquet").write_bytes(b"")
    good = (folder / "000000000000.parquet").read_bytes()
    (folder / "000000000002.parquet").write_bytes(good[: len(good) // 2])
    table = prints_table([a_print(0.0002, 1)])
    text_rate = table.set_column(table.schema.get_field_index("rate"), "rate", pa.array(["0.0002"]))
    pq.write_table(text_rate, folder / "000000000003.parquet")
    land(tmp_path, 0.0003, 0.0004)
    return tmp_path


def test_bad_segments_are_listed_with_file_and_reason_and_good_rows_still_read(landing_with_bad_segments):
    problems: list[SegmentProblem] = []
    prints = read_landed(landing_with_bad_segments, "prints", problems=problems)
    assert sorted(prints["rate"]) == [0.0001, 0.0003, 0.0004]
    by_file = {p.path.rsplit("/", 1)[-1]: p.reason for p in problems}
    assert set(by_file) == {"000000000001.parquet", "000000000002.parquet", "000000000003.parquet"}
    assert by_file["000000000001.parquet"].startswith("unreadable")
    assert by_file["000000000002.parquet"].startswith("unreadable")
    assert "column 'rate' is string, expected double" in by_file["000000000003.parquet"]


def test_partition_reads_skip_the_same_segments(landing_with_bad_segments):
    problems: list[SegmentProblem] = []
    day = pd.Timestamp(T0, tz="UTC")
    prints = read_landed_prints(landing_with_bad_segments, "binance", day, day + pd.Timedelta(days=1), problems)
    assert len(prints) == 3 and len(problems) == 3


def test_without_a_problem_list_the_error_names_the_file(landing_with_bad_segments):
    with pytest.raises(LandingSegmentError, match="000000000001.parquet: unreadable"):
        read_landed(landing_with_bad_segments, "prints")
