"""The landing read path: a bad segment is listed with its reason and moved aside, the good ones still flow."""

from __future__ import annotations

import errno
import json
import os

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fund_pipeline.defs.live.assets import live_curve
from fund_pipeline.domain.curve import replay_curves
from fund_pipeline.domain.records import FundingPrint
from fund_pipeline.live.landing import (
    LandingSegmentError,
    SegmentProblem,
    SegmentWriter,
    frame_table,
    list_rejected,
    list_segments,
    prints_table,
    read_landed,
    read_landed_prints,
    reject_segment,
    reject_segments,
)
from fund_pipeline.resources import LandingZone, Warehouse

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


def bad_segment_problems(root) -> list[SegmentProblem]:
    problems: list[SegmentProblem] = []
    read_landed(root, "prints", problems=problems)
    return problems


def test_bad_segments_move_aside_whole_with_a_sidecar_and_the_landing_reads_clean(landing_with_bad_segments):
    root = landing_with_bad_segments
    before = {p.name: p.read_bytes() for p in (root / "prints").glob("00000000000[123].parquet")}
    moved = reject_segments(root, bad_segment_problems(root), "test")
    assert [r.original for r in moved] == [f"prints/00000000000{i}.parquet" for i in (1, 2, 3)]
    assert {name: (root / "rejected" / "prints" / name).read_bytes() for name in before} == before
    assert [s for s, _ in list_segments(root, "prints")] == [0, 4]
    sidecar = json.loads((root / "rejected" / "prints" / "000000000003.json").read_text())
    assert sidecar["segment"] == "prints/000000000003.parquet" and sidecar["rejected_by"] == "test"
    assert "column 'rate' is string, expected double" in sidecar["reason"]
    assert [r.original for r in list_rejected(root)] == [r.original for r in moved]
    problems: list[SegmentProblem] = []
    assert sorted(read_landed(root, "prints", problems=problems)["rate"]) == [0.0001, 0.0003, 0.0004]
    assert problems == [] and reject_segments(root, problems, "test") == []


def test_the_writer_never_reuses_the_number_of_a_rejected_segment(landing_with_bad_segments):
    root = landing_with_bad_segments
    (root / "prints" / "000000000005.parquet").write_bytes(b"")
    reject_segments(root, bad_segment_problems(root), "test")
    writer = SegmentWriter(root)
    assert writer.write({"prints": prints_table([a_print(0.0005, 2)])}) == 6
    writer.close()


def test_a_move_interrupted_after_the_link_is_finished_by_the_next_reader(landing_with_bad_segments):
    root = landing_with_bad_segments
    (root / "rejected" / "prints").mkdir(parents=True)
    os.link(root / "prints" / "000000000001.parquet", root / "rejected" / "prints" / "000000000001.parquet")
    moved = reject_segment(root, root / "prints" / "000000000001.parquet", "unreadable: empty", "test")
    assert moved is not None and moved.moved_to == "rejected/prints/000000000001.parquet"
    assert sorted(p.name for p in (root / "rejected" / "prints").iterdir()) == [
        "000000000001.json",
        "000000000001.parquet",
    ]
    assert reject_segment(root, root / "prints" / "000000000001.parquet", "again", "test") is None


def test_a_different_file_under_the_rejected_name_is_kept_beside_it(landing_with_bad_segments):
    root = landing_with_bad_segments
    (root / "rejected" / "prints").mkdir(parents=True)
    (root / "rejected" / "prints" / "000000000001.parquet").write_bytes(b"an earlier reject")
    moved = reject_segment(root, root / "prints" / "000000000001.parquet", "unreadable: empty", "test")
    assert moved is not None and moved.moved_to == "rejected/prints/000000000001-1.parquet"
    assert (root / "rejected" / "prints" / "000000000001.parquet").read_bytes() == b"an earlier reject"
    assert (root / "rejected" / "prints" / "000000000001-1.parquet").read_bytes() == b""


def test_without_hard_links_the_segment_is_renamed_aside(landing_with_bad_segments, monkeypatch):
    def no_links(src, dst):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    root = landing_with_bad_segments
    data = (root / "prints" / "000000000002.parquet").read_bytes()
    monkeypatch.setattr(os, "link", no_links)
    moved = reject_segment(root, root / "prints" / "000000000002.parquet", "unreadable: truncated", "test")
    assert moved is not None and not (root / "prints" / "000000000002.parquet").exists()
    assert (root / "rejected" / "prints" / "000000000002.parquet").read_bytes() == data
    assert [r.reason for r in list_rejected(root)] == ["unreadable: truncated"]


def test_a_landing_this_reader_cannot_change_lists_the_segment_and_keeps_it(landing_with_bad_segments, monkeypatch):
    def read_only(src, dst):
        raise OSError(errno.EROFS, "Read-only file system")

    root = landing_with_bad_segments
    monkeypatch.setattr(os, "link", read_only)
    listed = reject_segments(root, bad_segment_problems(root), "test")
    assert [(r.original, r.moved_to) for r in listed] == [(f"prints/00000000000{i}.parquet", None) for i in (1, 2, 3)]
    assert all("not moved aside: [Errno 30] Read-only file system" in r.reason for r in listed)
    assert [s for s, _ in list_segments(root, "prints")] == [0, 1, 2, 3, 4] and list_rejected(root) == []


def test_only_segments_of_the_landing_can_be_rejected(tmp_path, landing_with_bad_segments):
    stray = tmp_path / "elsewhere.parquet"
    stray.write_bytes(b"")
    with pytest.raises(ValueError, match="is not a segment of the landing folder"):
        reject_segment(landing_with_bad_segments, stray, "unreadable", "test")


WINDOW = "2025-01-02-00:00"


def land_window_snapshots(root, hours: list[int]) -> int:
    """One snapshot segment of the 2025-01-02 00:00 window per call; the number of snapshot rows."""
    times = [pd.Timestamp(T0 + h * H, tz="UTC") for h in hours]
    prints = pd.DataFrame(
        {"venue": "binance", "symbol": "BTC/USDT:USDT", "funding_time": pd.Timestamp(T0 + 8 * H, tz="UTC"),
         "ts": times, "rate": 0.0001, "interval_h": 8.0}
    )  # fmt: skip
    snapshots, _ = replay_curves(prints)
    writer = SegmentWriter(root)
    writer.write({"snapshots": frame_table(snapshots)})
    writer.close()
    return len(snapshots)


def materialise_live_curve(tmp_path):
    resources = {
        "landing": LandingZone(path=str(tmp_path / "landing")),
        "warehouse": Warehouse(database=str(tmp_path / "w.duckdb")),
    }
    result = dg.materialize([live_curve], partition_key=WINDOW, resources=resources)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    stored = resources["warehouse"].read("live_curve")
    return result, checks["live_segments_readable"], stored


@pytest.mark.slow  # two dg.materialize runs
def test_live_curve_moves_bad_segments_aside_counts_them_once_and_stores_every_good_row(tmp_path):
    root = tmp_path / "landing"
    good_rows = land_window_snapshots(root, [1])
    (root / "snapshots" / "000000000001.parquet").write_bytes(b"")
    (root / "snapshots" / "000000000002.parquet").write_bytes(b"PAR1 truncated")
    table = prints_table([a_print(0.0002, 1)])  # live_curve reads 3 of its columns: the rate is judged too
    pq.write_table(
        table.set_column(table.schema.get_field_index("rate"), "rate", pa.array(["0.0002"])),
        root / "prints" / "000000000003.parquet",
    )
    good_rows += land_window_snapshots(root, [2, 3])
    result, check, stored = materialise_live_curve(tmp_path)
    assert result.success and len(stored) == good_rows
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["segments_rejected"].value == 3
    assert check.metadata["rejected"].data == {
        "snapshots/000000000001.parquet": "unreadable: Parquet file size is 0 bytes",
        "snapshots/000000000002.parquet": check.metadata["rejected"].data["snapshots/000000000002.parquet"],
        "prints/000000000003.parquet": "column 'rate' is string, expected double",
    }
    assert check.metadata["rejected"].data["snapshots/000000000002.parquet"].startswith("unreadable")
    assert (root / "rejected" / "snapshots" / "000000000002.parquet").read_bytes() == b"PAR1 truncated"
    result, check, stored = materialise_live_curve(tmp_path)
    assert result.success and len(stored) == good_rows
    assert check.passed and check.metadata["segments_rejected"].value == 0
    assert check.metadata["rejected_in_landing"].value == 3
