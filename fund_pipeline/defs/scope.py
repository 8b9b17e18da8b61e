"""What a run was asked for, as venue × time spans: one run may carry many partitions."""

from collections import defaultdict
from typing import NamedTuple

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


class Week(NamedTuple):
    """One weekly partition of a run: its key and its [start, end)."""

    key: str
    start: pd.Timestamp
    end: pd.Timestamp


def weekly_windows(context: dg.AssetExecutionContext) -> list[Week]:
    """Each weekly partition of the run: weeks are handled one by one."""
    out = []
    for key in context.partition_keys:
        window = WEEKLY_PARTITIONS.time_window_for_partition_key(key)
        out.append(Week(key, pd.Timestamp(window.start), pd.Timestamp(window.end)))
    return out


def weekly_blocks(context: dg.AssetExecutionContext, weeks_per_block: int) -> list[list[Week]]:
    """`weekly_windows` in consecutive blocks of at most `weeks_per_block` weeks: a block's inputs are
    read, and its rows written, at once (each open of the DuckDB file costs tens of ms), while memory
    stays bounded however long the run."""
    if weeks_per_block < 1:
        raise ValueError(f"weeks_per_block must be at least 1, got {weeks_per_block}")
    windows = weekly_windows(context)
    return [windows[at : at + weeks_per_block] for at in range(0, len(windows), weeks_per_block)]
