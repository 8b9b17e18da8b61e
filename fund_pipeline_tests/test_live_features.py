"""live_features: the open window's intra-window features from landed quotes, at the newest snapshot."""

import dagster as dg
import pandas as pd
import pytest

from fund_pipeline.defs.live.features import LIVE_FEATURES_TABLE, live_features
from fund_pipeline.domain.records import FundingPrint
from fund_pipeline.live.landing import SegmentWriter, prints_table
from fund_pipeline.resources import LandingZone
from fund_pipeline.warehouse import Warehouse

pytestmark = pytest.mark.slow

START = pd.Timestamp("2026-03-09 08:00", tz="UTC")
SETTLE = START + pd.Timedelta(hours=8)
SYMBOL = "BTC/USDT:USDT"


def quote(seconds: int, rate: float) -> FundingPrint:
    t = (START + pd.Timedelta(seconds=seconds)).value
    return FundingPrint("binance", SYMBOL, "BTC", "predicted", SETTLE.value, t, t, rate, 8.0, 1.0, 1.0, "ws")


def features_at(tmp_path, snaps: dict) -> dict:
    """Store live_curve snapshots (binance BTC, window settling at SETTLE), materialise the
    partition's live_features from the landing in tmp_path, and return its one row."""
    warehouse = Warehouse(database=str(tmp_path / "w.duckdb"))
    warehouse.replace(
        "live_curve", pd.DataFrame({"venue": "binance", "symbol": SYMBOL, "funding_time": SETTLE, **snaps}), {}
    )
    result = dg.materialize(
        [live_features],
        partition_key=START.strftime("%Y-%m-%d-%H:%M"),
        resources={"landing": LandingZone(path=str(tmp_path / "landing")), "warehouse": warehouse},
    )
    assert result.success
    (row,) = warehouse.read(LIVE_FEATURES_TABLE).to_dict("records")
    return row


def test_features_at_the_newest_snapshot_from_the_landed_quotes(tmp_path):
    writer = SegmentWriter(tmp_path / "landing")
    # 1 Hz quotes for five hours, the rate rising one step a minute, in 60-second segments.
    for minute in range(5 * 60):
        writer.write({"prints": prints_table([quote(minute * 60 + s, 1e-4 + minute * 1e-7) for s in range(0, 60, 5)])})
    writer.close()
    at = START + pd.Timedelta(hours=5)
    row = features_at(
        tmp_path,
        {
            "ts_snap": [START + pd.Timedelta(hours=1), at],
            "level": [0.11, 0.12],
            "slope": [0.0, -0.01],
            "b0": [1e-4, 1.3e-4],
        },
    )
    assert row["at"] == at and row["hours_to_settlement"] == 3.0
    # The quote in force at 13:00 is the last one before it (minute 299); quotes are thinned to the
    # 5-minute grid, so the window's first is the one in force at 08:05 (minute 4).
    assert row["predicted_now"] == pytest.approx(1e-4 + 299 * 1e-7)
    assert row["predicted_drift"] == pytest.approx((299 - 4) * 1e-7)
    # 4 h before settlement is 12:00 (known), 1 h before is 15:00 (not yet).
    assert row["predicted_4h_before"] == pytest.approx(1e-4 + 239 * 1e-7)
    assert pd.isna(row["predicted_1h_before"])
    assert (row["level"], row["slope"]) == (0.12, -0.01)


def test_the_quote_in_force_may_have_been_sent_before_the_partition_started(tmp_path):
    """A window's quote sent just before the partition's first instant (the venue rolled its clock a
    moment early, then the stream stalled) is still the quote in force: the snapshot shows it, so
    must the features."""
    writer = SegmentWriter(tmp_path / "landing")
    writer.write({"prints": prints_table([quote(-1, 1.7e-4)])})
    writer.close()
    at = START + pd.Timedelta(seconds=30)
    row = features_at(tmp_path, {"ts_snap": [at], "level": [0.15], "slope": [0.0], "b0": [1.7e-4]})
    assert row["predicted_now"] == pytest.approx(1.7e-4)
    assert row["predicted_drift"] == 0.0


def test_the_snapshots_own_quote_is_seen_though_the_warehouse_keeps_microseconds(tmp_path):
    """A snapshot is stamped with its quote's nanosecond time, stored to the microsecond: the
    quote is still at or before the snapshot, not 597 ns after it."""
    stamped = START + pd.Timedelta(seconds=30, nanoseconds=597)
    writer = SegmentWriter(tmp_path / "landing")
    quote_row = quote(0, 1.2e-4)._replace(ts=stamped.value, received_at=stamped.value)
    writer.write({"prints": prints_table([quote(0, 1.1e-4), quote_row])})
    writer.close()
    row = features_at(tmp_path, {"ts_snap": [stamped], "level": [0.13], "slope": [0.0], "b0": [1.2e-4]})
    assert row["predicted_now"] == pytest.approx(1.2e-4)
