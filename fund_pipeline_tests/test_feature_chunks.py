"""The feature store built a chunk of days at a time gives the rows of one build over the whole span."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.features import (
    FEATURE_WARMUP,
    OUTPUT_COLUMNS,
    FeatureInputs,
    FeatureSummary,
    MissingCurves,
    build_feature_chunks,
    build_feature_store,
    feature_chunks,
    feature_warmup_report,
)
from fund_pipeline_tests.test_features import DAY, STREAMS, T0, synthetic_market

# EMAs have infinite memory: a chunk's warm-up leaves out a weight below 0.1 % of theirs.
EMA_BASED = ["rsi_14", "ema_ratio_12_48"]
LOOKAHEAD = DAY


def reader(curves: pd.DataFrame, prints: pd.DataFrame, bars: pd.DataFrame):
    """The warehouse's reads of a span (the feature_store asset's), from frames in memory."""

    def read(start: pd.Timestamp, end: pd.Timestamp) -> FeatureInputs:
        lo, hi = start - FEATURE_WARMUP, end + LOOKAHEAD
        return FeatureInputs(
            curves=curves[curves["funding_time"].between(lo, hi, inclusive="left")],
            prints=prints[prints["funding_time"].between(lo, hi, inclusive="left")],
            bars=bars[bars["ts"].between(lo, end, inclusive="left")],
            predicted=pd.DataFrame(),
        )

    return read


def build_once(read, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """One build over [start, end) from its reads: what a run without chunks writes."""
    inputs = read(start, end)
    return build_feature_store(inputs.curves, inputs.prints, inputs.bars, start, end)


@pytest.fixture(scope="module")
def month():
    """A 40-day market with a fourth stream listed on day 20, and its span after the warm-up."""
    curves, prints, bars = synthetic_market([*STREAMS, ("b", "SOL/USDT:USDT", "SOL", 8)], days=40, seed=5)
    late = (curves["symbol"] == "SOL/USDT:USDT") & (curves["funding_time"] < T0 + 20 * DAY)
    curves = curves[~late].reset_index(drop=True)
    prints = prints[~((prints["symbol"] == "SOL/USDT:USDT") & (prints["funding_time"] < T0 + 20 * DAY))]
    return (curves, prints.reset_index(drop=True), bars), T0 + 8 * DAY, T0 + 39 * DAY


def whole_and_chunked(month, days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    frames, start, end = month
    read = reader(*frames)
    whole = build_once(read, start, end)
    chunks = [features for _, features in build_feature_chunks(read, start, end, days)]
    # a build's rows are in (stream, funding_time) order; the chunks' in that order within each chunk
    return whole, pd.concat(chunks).sort_values(["venue", "symbol", "funding_time"], ignore_index=True)


@pytest.mark.parametrize("days", [2, 9])
def test_chunked_rows_are_the_whole_span_build(month, days):
    whole, chunked = whole_and_chunked(month, days)
    assert len(whole) > 1000 and len(chunked[["venue", "symbol"]].drop_duplicates()) == 4
    exact = [c for c in OUTPUT_COLUMNS if c not in EMA_BASED]
    pd.testing.assert_frame_equal(chunked[exact], whole[exact], check_exact=False, rtol=1e-12, atol=0.0)
    np.testing.assert_allclose(chunked[EMA_BASED], whole[EMA_BASED], rtol=1e-3)


def test_pca_signs_are_chained_across_chunks(month):
    """Without the chain, each chunk's first fit would take canonical signs: here some flip."""
    frames, start, end = month
    read = reader(*frames)
    whole = build_once(read, start, end)
    unchained = pd.concat([build_once(read, c.start, c.end) for c in feature_chunks(start, end, 4)]).sort_values(
        ["venue", "symbol", "funding_time"], ignore_index=True
    )
    flipped = ~np.isclose(unchained[["pc1", "pc2"]], whole[["pc1", "pc2"]], rtol=1e-9)
    assert flipped.any()
    _, chunked = whole_and_chunked(month, 4)
    np.testing.assert_allclose(chunked[["pc1", "pc2"]], whole[["pc1", "pc2"]], rtol=1e-12)


def test_the_summary_of_chunks_reports_as_the_whole(month):
    whole, chunked = whole_and_chunked(month, 4)
    summary = FeatureSummary()
    for _, rows in chunked.groupby(chunked["funding_time"].dt.floor("4D"), sort=True):
        summary.add(rows)
    assert summary.rows == len(whole)
    assert summary.rows_with_target == int(whole["target_rate"].notna().sum())
    assert summary.venues == set(whole["venue"]) and summary.symbols == set(whole["symbol"])
    assert summary.warmup_report() == feature_warmup_report(whole)


def test_chunks_cover_the_span_once():
    start, end = T0, T0 + 10 * DAY
    chunks = feature_chunks(start, end, 4)
    assert [(c.start, c.end) for c in chunks] == [
        (T0, T0 + 4 * DAY),
        (T0 + 4 * DAY, T0 + 8 * DAY),
        (T0 + 8 * DAY, T0 + 10 * DAY),
    ]
    assert feature_chunks(start, end, 31) == [(start, end)]
    with pytest.raises(ValueError, match="days must be >= 1"):
        feature_chunks(start, end, 0)
    with pytest.raises(ValueError, match="must be before end"):
        feature_chunks(end, start)


def test_a_chunk_without_curves_is_named(month):
    (curves, prints, bars), start, end = month
    gap = curves["funding_time"].between(T0 + 16 * DAY, T0 + 30 * DAY)
    read = reader(curves[~gap], prints, bars)
    with pytest.raises(MissingCurves, match=r"\[2024-03-25, 2024-03-29\)"):
        list(build_feature_chunks(read, start, end, 4))
