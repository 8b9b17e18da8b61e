"""What a run was asked for, as venue × time spans: one run may carry many partitions."""

from collections import defaultdict

import dagster as dg
import pandas as pd

from fund_pipeline.defs.partitions import WEEKLY_PARTITIONS

DAY = pd.Timedelta(days=1)


def _contiguous(days: list[pd.Timestamp]) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    spans: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    for day in sorted(set(days)):
        if spans and spans[-1][1] == day:
            spans[-1] = (spans[-1][0], day + DAY)
        else:
            spans.append((day, day + DAY))
    return spans


def daily_venue_spans(context: dg.AssetExecutionContext) -> list[tuple[str, pd.Timestamp, pd.Timestamp]]:
    """(venue, start, end) per venue and run of consecutive days among the run's partitions."""
    days_by_venue: dict[str, list[pd.Timestamp]] = defaultdict(list)
    for key in context.partition_keys:
        dims = (
            key.keys_by_dimension
            if isinstance(key, dg.MultiPartitionKey)
            else dict(zip(("date", "venue"), str(key).split("|"), strict=True))
        )
        days_by_venue[dims["venue"]].append(pd.Timestamp(dims["date"], tz="UTC"))
    return [(venue, s, e) for venue in sorted(days_by_venue) for s, e in _contiguous(days_by_venue[venue])]


def daily_spans(context: dg.AssetExecutionContext) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    return _contiguous([pd.Timestamp(k, tz="UTC") for k in context.partition_keys])


def weekly_windows(context: dg.AssetExecutionContext) -> list[tuple[str, pd.Timestamp, pd.Timestamp]]:
    """(key, start, end) of each weekly partition of the run: weeks are handled one by one."""
    out = []
    for key in context.partition_keys:
        window = WEEKLY_PARTITIONS.time_window_for_partition_key(key)
        out.append((key, pd.Timestamp(window.start), pd.Timestamp(window.end)))
    return out
