"""Partition definitions shared by the asset groups."""

import dagster as dg

from fund_pipeline.venues.base import ALL_VENUES

# The real public sample starts in 2020; the simulated market at its own epoch (2025-01-01).
HISTORY_START = "2020-01-01"

# end_offset=1: today's partition exists, so the after-settlement schedules refresh it in place.
DAILY_PARTITIONS = dg.DailyPartitionsDefinition(start_date=HISTORY_START, end_offset=1)
VENUE_PARTITIONS = dg.StaticPartitionsDefinition(list(ALL_VENUES))
DAILY_VENUE_PARTITIONS = dg.MultiPartitionsDefinition({"date": DAILY_PARTITIONS, "venue": VENUE_PARTITIONS})

# A week runs Monday 12:00 UTC to the next Monday 12:00: the basket formed at its start is held
# through it. end_offset=1 lets the Monday run build the week that is starting.
WEEKLY_PARTITIONS = dg.WeeklyPartitionsDefinition(start_date="2020-01-06", day_offset=1, hour_offset=12, end_offset=1)

# Funding windows 00/08/16 UTC; the key is the window start, the window settles at its end.
FUNDING_WINDOW_PARTITIONS = dg.TimeWindowPartitionsDefinition(
    cron_schedule="0 0,8,16 * * *",
    start="2025-01-01-00:00",
    fmt="%Y-%m-%d-%H:%M",
    timezone="UTC",
    end_offset=1,
)
