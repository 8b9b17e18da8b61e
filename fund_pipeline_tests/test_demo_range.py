"""The demo's weeks: each one's history lies inside the days the demo ingests, on every weekday it may run."""

import pandas as pd
import pytest

from fund_pipeline.defs.partitions import WEEKLY_PARTITIONS
from fund_pipeline.demo import WEEKLY_MIN_HISTORY, ingest_start, weekly_keys
from fund_pipeline.domain.baskets import BASKET_LOOKBACK, HOUR


def week_start(key: str) -> pd.Timestamp:
    return pd.Timestamp(WEEKLY_PARTITIONS.time_window_for_partition_key(key).start)


@pytest.mark.parametrize("days", [45, 60, 90])
@pytest.mark.parametrize("end", pd.date_range("2026-11-23", "2026-12-06", freq="D", tz="UTC"))
def test_every_demo_week_has_its_basket_bars_and_features_stored(end, days):
    """The basket of a week reads BASKET_LOOKBACK of hourly returns (and the bar before them); a week whose window
    reaches before the first ingested day fails hedge_inputs (on 2026-12-04 the first week did, by 12 hours)."""
    first = end - pd.Timedelta(days=days)
    starts = [week_start(k) for k in weekly_keys(first, end)]
    assert starts, (end, days)
    for start in starts:
        assert start - BASKET_LOOKBACK - HOUR >= ingest_start(first)
        assert start - WEEKLY_MIN_HISTORY >= first
        assert start < end
    # no week with its history stored is left out: the week before the first would miss some of it
    before = starts[0] - pd.Timedelta(days=7)
    assert before - BASKET_LOOKBACK - HOUR < ingest_start(first) or before - WEEKLY_MIN_HISTORY < first
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [pd.Timedelta(days=7)] * (len(starts) - 1)
