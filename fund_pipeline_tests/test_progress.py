"""The import and backfill progress line: partitions done of total, rate and ETA once they mean something."""

from __future__ import annotations

import io

from fund_pipeline.partition_runs import Progress


def test_rate_and_eta_appear_once_a_whole_partition_has_run():
    out = io.StringIO()
    progress = Progress(total=10, done=4, label="demo", stream=out)
    progress.update(1 / 3, "2023-01-05|gate")
    first = out.getvalue().splitlines()[-1]
    assert "4/10 partitions" in first and "0.0/s" in first and "ETA    ?" in first
    progress.update(2 - 1 / 3, "2023-01-06|gate")
    second = out.getvalue().splitlines()[-1]
    assert "6/10 partitions" in second and "ETA    ?" not in second
    rate = float(second.split("partitions")[1].split("/s")[0])
    assert rate > 0
    assert f"ETA {4 / rate:4.0f}s" in second
