"""live_snapshot_sensor with explicit cursors: refresh cadence, finalisation at the roll, restarts."""

import json

import pandas as pd

from fund_pipeline.resources import LandingZone
from fund_pipeline_tests.landing_snapshots import WINDOW_START, evaluate, land_snapshots, land_times


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


def test_a_print_stamped_far_in_the_future_never_moves_the_data_time(tmp_path):
    landing = LandingZone(path=str(tmp_path / "landing"))
    root = landing.root()
    land_snapshots(root, [1])
    _, cursor = evaluate(landing, None)
    now = WINDOW_START + pd.Timedelta(minutes=20)
    land_times(root, [now], [now, now, pd.Timestamp("2099-01-01", tz="UTC")])
    requests, cursor = evaluate(landing, cursor)
    assert requests == [("2025-03-03-08:00", "refresh")]
    assert json.loads(cursor)["data_time"] == now.value
    land_snapshots(root, [35])
    requests, cursor = evaluate(landing, cursor)
    assert requests == [("2025-03-03-08:00", "refresh")]  # still open: not finalised by the 2099 print


def test_a_snapshot_stamped_far_in_the_future_is_ignored_and_the_sensor_keeps_running(tmp_path):
    landing = LandingZone(path=str(tmp_path / "landing"))
    root = landing.root()
    far = pd.Timestamp("2099-01-01 01:00", tz="UTC")
    land_times(root, [far], [far])  # a batch of nothing but a wrong clock: the wall clock bounds it
    requests, cursor = evaluate(landing, None)
    assert requests == []
    assert json.loads(cursor)["pending"] == []
    land_snapshots(root, [1])
    requests, cursor = evaluate(landing, cursor)
    assert requests == [("2025-03-03-08:00", "refresh")]


def test_out_of_range_window_keys_are_dropped_not_raised():
    from fund_pipeline.defs.live.sensors import known_windows

    kept, dropped = known_windows([("2025-03-03-08:00", "refresh"), ("2019-01-01-00:00", "final")])
    assert kept == [("2025-03-03-08:00", "refresh")]
    assert dropped == ["2019-01-01-00:00"]


def test_an_unreadable_segment_is_skipped_and_the_good_ones_still_flow(tmp_path):
    landing = LandingZone(path=str(tmp_path / "landing"))
    root = landing.root()
    land_snapshots(root, [1])
    (root / "snapshots" / "000000000001.parquet").write_bytes(b"")  # 0 bytes: a crashed writer elsewhere
    (root / "prints" / "000000000001.parquet").write_bytes(b"PAR1 truncated")
    land_snapshots(root, [2])  # segment 2, after the bad ones
    requests, cursor = evaluate(landing, None)
    assert requests == [("2025-03-03-08:00", "refresh")]
    assert json.loads(cursor)["snapshots_seq"] == 2
