"""Partition definitions shared by the asset groups, and the look-back mappings between them.

A look-back is declared once as a whole number of days; the asset reads that window and declares the
same window to Dagster through the mapping helpers below, so the UI's upstream partitions,
staleness and "materialise missing upstream" show what the asset reads.

Dagster 1.13's built-in mappings shift a time dimension only between two time-window definitions
(`TimeWindowPartitionMapping`) or between two multi-partition definitions (`MultiPartitionMapping`).
Between a single-dimension asset and a day × venue upstream they only match the same day
(`MultiToSingleDimensionPartitionMapping`), and custom mappings are dropped from the UI's snapshot,
so a daily or weekly asset cannot declare a look-back onto a day × venue upstream.
"""

import math
from datetime import timedelta

import dagster as dg

from fund_pipeline.domain.baskets import BASKET_LOOKBACK as BASKET_LOOKBACK  # one definition, the domain rule
from fund_pipeline.venues.registry import ALL_VENUES

# The real public sample starts in 2020; the simulated market at its own epoch (2025-01-01).
HISTORY_START = "2020-01-01"

# end_offset=1: today's partition exists, so the after-settlement schedules refresh it in place.
DAILY_PARTITIONS = dg.DailyPartitionsDefinition(start_date=HISTORY_START, end_offset=1)
VENUE_PARTITIONS = dg.StaticPartitionsDefinition(list(ALL_VENUES))
DAILY_VENUE_PARTITIONS = dg.MultiPartitionsDefinition({"date": DAILY_PARTITIONS, "venue": VENUE_PARTITIONS})

# A week runs Monday 12:00 UTC to the next Monday 12:00: the basket formed at its start is held
# through it. end_offset=1 lets the Monday run build the week that is starting.
WEEKLY_PARTITIONS = dg.WeeklyPartitionsDefinition(start_date="2020-01-06", day_offset=1, hour_offset=12, end_offset=1)
WEEK = timedelta(days=7)

# Funding windows 00/08/16 UTC; the key is the window start, the window settles at its end.
FUNDING_WINDOW_PARTITIONS = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 0,8,16 * * *",
    start="2025-01-01-00:00",
    fmt="%Y-%m-%d-%H:%M",
    timezone="UTC",
    end_offset=1,
)

# The look-backs (one constant each): what the assets read and what they declare.
# Eight windows of the longest interval (8h) are 64h: three days of prints fill every ring.
CURVE_LOOKBACK = timedelta(days=3)
# Targets of the last windows of a day are the first settlements of the next one.
TARGET_LOOKAHEAD = timedelta(days=1)
CLUSTER_LOOKBACK = timedelta(days=30)
MODEL_LOOKBACK = timedelta(days=120)


def whole_days(span: timedelta) -> int:
    """A look-back as a number of daily partitions; a fraction of a day has no partition to map to."""
    if span < timedelta(0) or span % timedelta(days=1):
        raise ValueError(f"a partition look-back must be a non-negative whole number of days, got {span}")
    return span // timedelta(days=1)


def lookback_days(lookback: timedelta, ahead: timedelta = timedelta(0)) -> dg.TimeWindowPartitionMapping:
    """Daily → daily: the day itself, the `lookback` days before it and the `ahead` days after it."""
    return dg.TimeWindowPartitionMapping(start_offset=-whole_days(lookback), end_offset=whole_days(ahead))


def venue_lookback_days(lookback: timedelta, ahead: timedelta = timedelta(0)) -> dg.MultiPartitionMapping:
    """Day × venue → day × venue: the same venue's day, the `lookback` days before it and `ahead` after."""
    return dg.MultiPartitionMapping(
        {
            "date": dg.DimensionPartitionMapping("date", lookback_days(lookback, ahead)),
            "venue": dg.DimensionPartitionMapping("venue", dg.IdentityPartitionMapping()),
        }
    )


def weeks_before(lookback: timedelta) -> dg.TimeWindowPartitionMapping:
    """Weekly → daily: the days of the whole weeks covering `lookback` before the week starts, none after.

    Offsets of a weekly asset count weeks, so 30 days are declared as the 5 weeks (35 days) that
    contain them. The Monday the week starts on is included: its hours before 12:00 are read.
    """
    weeks = math.ceil(whole_days(lookback) / 7)
    return dg.TimeWindowPartitionMapping(start_offset=-weeks, end_offset=-1)
