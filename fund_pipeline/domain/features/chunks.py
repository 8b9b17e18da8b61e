"""The feature store built in chunks of days, so that a year's build holds one chunk's inputs at a time.

Each chunk reads its own inputs (the warm-up before it, the target look-ahead after it) through
the caller's reader and is handed back before the next is read. Its rows are the rows of one build
over the whole span: every feature looks back at most FEATURE_WARMUP, the PCA signs are chained
across chunks (`PcaSignChain`), and only the EMAs, whose memory is infinite, differ, by less than
their weight beyond the warm-up (0.1 %).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import pandas as pd

from fund_pipeline.domain.factors import PcaSignChain
from fund_pipeline.domain.features.store import (
    INTRA_WINDOW_FEATURES,
    WarmupCount,
    build_feature_store,
    warmup_counts,
    warmup_report_of,
)
from fund_pipeline.domain.time import aware_utc

# A month of days: at 300 bases × 5 venues a chunk's inputs and rows take well under 1 GiB.
FEATURE_CHUNK_DAYS = 31


class MissingCurves(ValueError):
    """A chunk has no curve snapshots to build features from."""


class FeatureInputs(NamedTuple):
    """What one chunk's build reads: curves, settled prints and bars with their warm-up, predicted prints."""

    curves: pd.DataFrame
    prints: pd.DataFrame
    bars: pd.DataFrame
    predicted: pd.DataFrame


class FeatureChunk(NamedTuple):
    start: pd.Timestamp
    end: pd.Timestamp


def feature_chunks(start, end, days: int = FEATURE_CHUNK_DAYS) -> list[FeatureChunk]:
    """[start, end) cut into consecutive spans of `days` days, the last one shorter if need be."""
    start, end = aware_utc(start, "start"), aware_utc(end, "end")
    if days < 1:
        raise ValueError(f"feature_chunks: days must be >= 1, got {days}")
    if start >= end:
        raise ValueError(f"feature_chunks: start {start} must be before end {end}")
    edges = [*pd.date_range(start, end, freq=pd.Timedelta(days=days), inclusive="left"), end]
    return [FeatureChunk(lo, hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


@dataclass
class FeatureSummary:
    """What a run reports of the rows of all its chunks, without keeping them."""

    rows: int = 0
    rows_with_target: int = 0
    rows_with_intra_window_path: int = 0
    venues: set[str] = field(default_factory=set)
    symbols: set[str] = field(default_factory=set)
    counts: dict[str, WarmupCount] = field(default_factory=dict)

    def add(self, features: pd.DataFrame) -> None:
        self.rows += len(features)
        self.rows_with_target += int(features["target_rate"].notna().sum())
        self.rows_with_intra_window_path += int(features[INTRA_WINDOW_FEATURES[0]].notna().sum())
        self.venues.update(features["venue"].unique())
        self.symbols.update(features["symbol"].unique())
        for name, count in warmup_counts(features).items():
            before = self.counts.get(name, WarmupCount(0, 0))
            self.counts[name] = WarmupCount(before.nan_rows + count.nan_rows, before.rows_checked + count.rows_checked)

    def warmup_report(self) -> dict:
        """`feature_warmup_report` of all the rows added."""
        return warmup_report_of(self.counts)


def build_feature_chunks(
    read: Callable[[pd.Timestamp, pd.Timestamp], FeatureInputs],
    start,
    end,
    days: int = FEATURE_CHUNK_DAYS,
) -> Iterator[tuple[FeatureChunk, pd.DataFrame]]:
    """Each chunk of [start, end) with its feature rows, oldest first; `read(lo, hi)` gives a chunk's inputs.

    A chunk whose reader gives no curves raises MissingCurves naming its days.
    """
    chain = PcaSignChain()
    for chunk in feature_chunks(start, end, days):
        inputs = read(chunk.start, chunk.end)
        if inputs.curves.empty:
            raise MissingCurves(
                f"feature_store: no curve_history in [{chunk.start:%Y-%m-%d}, {chunk.end:%Y-%m-%d}); "
                "materialise curves first"
            )
        features = build_feature_store(
            inputs.curves, inputs.prints, inputs.bars, chunk.start, chunk.end, inputs.predicted, pca_chain=chain
        )
        del inputs
        yield chunk, features
