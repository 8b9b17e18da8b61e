"""Funding curves: streaming builder (per print and batched) and vectorised replay agree exactly."""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fund_pipeline.domain.curve import (
    ANN_COLUMNS,
    CURVE_COLUMNS,
    N_BUCKETS,
    RATE_COLUMNS,
    SNAPSHOT_MODES,
    BuilderStats,
    FundingCurveBuilder,
    SnapshotPolicy,
    build_curves_streaming,
    missing_bucket_pct,
    replay_curves,
    snapshots_frame,
)
from fund_pipeline.domain.curve import replay as curve_replay

H = 3_600_000_000_000
S = 1_000_000_000
T0 = pd.Timestamp("2024-03-01", tz="UTC").value
STREAMS = [("binance", "BTC/USDT:USDT"), ("binance", "ETH/USDT:USDT"), ("okx", "BTC/USDT:USDT")]


def ann(rate: float, interval_h: float) -> float:
    return math.pow(1.0 + rate, 8760.0 / interval_h) - 1.0


def prints_frame(records) -> pd.DataFrame:
    """records: (stream index, funding_time ns, ts ns, rate, interval_h), in arrival order."""
    return pd.DataFrame(
        {
            "venue": [STREAMS[s][0] for s, *_ in records],
            "symbol": [STREAMS[s][1] for s, *_ in records],
            "funding_time": pd.to_datetime([r[1] for r in records], utc=True),
            "ts": pd.to_datetime([r[2] for r in records], utc=True),
            "rate": [r[3] for r in records],
            "interval_h": [r[4] for r in records],
        }
    )


def per_print(prints: pd.DataFrame, policy: SnapshotPolicy):
    builders: dict[tuple[str, str], FundingCurveBuilder] = {}
    rows: dict[tuple[str, str], list] = {}
    for r in prints.itertuples():
        key = (r.venue, r.symbol)
        if key not in builders:
            builders[key] = FundingCurveBuilder(r.venue, r.symbol, policy)
            rows[key] = []
        row = builders[key].update(r.funding_time.value, r.rate, r.interval_h, r.ts.value)
        if row is not None:
            rows[key].append(row)
    return snapshots_frame([row for key in sorted(rows) for row in rows[key]]), {
        k: b.stats for k, b in builders.items()
    }


def batched(prints: pd.DataFrame, policy: SnapshotPolicy, cuts: list[int]):
    """update_batch over each stream's prints split at `cuts`, so state must carry across batches."""
    rows, stats = [], {}
    for key, group in sorted(prints.groupby(["venue", "symbol"], sort=False), key=lambda kv: kv[0]):
        venue, symbol = key
        builder = FundingCurveBuilder(venue, symbol, policy)
        ft, ts = group["funding_time"].array.asi8, group["ts"].array.asi8
        rate, interval = group["rate"].to_numpy(), group["interval_h"].to_numpy()
        edges = [0, *sorted({c % (len(group) + 1) for c in cuts}), len(group)]
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            rows += builder.update_batch(ft[lo:hi], rate[lo:hi], interval[lo:hi], ts[lo:hi])
        stats[key] = builder.stats
    return snapshots_frame(rows), stats


# --- the law: every path gives the same snapshots and stats ------------------------------------------

print_records = st.lists(
    st.tuples(
        st.integers(0, len(STREAMS) - 1),
        st.sampled_from(
            [0, 0, 0, 0, 1, 1, 4, 8, 9, 25, -1, -8]
        ),  # funding-time step of the stream, hours: replace, roll, gap, late
        st.integers(-3, 20),  # ts step in seconds (negative: exchange clocks are not monotonic)
        st.one_of(st.floats(-0.01, 0.01), st.sampled_from([0.0, 0.0001, 0.03, -0.03, -0.5])),
        st.sampled_from([1.0, 4.0, 8.0]),
    ),
    min_size=1,
    max_size=60,
)


def to_records(draw_list):
    """Streams walk their own funding times; each print's rate is made unique so any mix-up shows."""
    ts, hour, out = T0, [0] * len(STREAMS), []
    for i, (stream, hour_step, step, rate, interval) in enumerate(draw_list):
        ts += step * S
        hour[stream] += hour_step
        out.append((stream, T0 + hour[stream] * H, ts, rate + i * 1e-6, interval))
    return out


@pytest.mark.parametrize("mode", SNAPSHOT_MODES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=print_records, cuts=st.lists(st.integers(0, 60), max_size=4), seconds=st.sampled_from([1.0, 7.0, 30.0]))
def test_streaming_batched_and_replay_are_identical(mode, records, cuts, seconds):
    policy = SnapshotPolicy(mode, seconds)
    prints = prints_frame(to_records(records))
    expected, expected_stats = per_print(prints, policy)
    for frame, stats in (
        batched(prints, policy, cuts),
        build_curves_streaming(prints, policy),
        replay_curves(prints, policy),
    ):
        pd.testing.assert_frame_equal(frame, expected, check_exact=True)
        assert stats == expected_stats
    assert sum(s.prints for s in expected_stats.values()) == len(prints)
    for s in expected_stats.values():
        assert s.prints == s.replaced + s.rolls + s.late


@settings(max_examples=60, deadline=None)
@given(records=print_records, block=st.sampled_from([1, 2, 3, 5, 16]))
def test_roll_replay_does_not_depend_on_its_blocking(records, block):
    """The "roll" replay drops unseen replaces block by block; the running maximum must carry across blocks."""
    prints = prints_frame(to_records(records))
    expected, expected_stats = per_print(prints, SnapshotPolicy())
    with mock.patch.object(curve_replay, "_REDUCTION_BLOCK_ROWS", block):
        replayed, stats = replay_curves(prints)
    pd.testing.assert_frame_equal(replayed, expected, check_exact=True)
    assert stats == expected_stats


@settings(max_examples=40, deadline=None)
@given(records=print_records)
def test_arbitrary_nanosecond_funding_times_agree(records):
    """Off-grid funding times (jitter that escaped flooring) still follow one rule everywhere."""
    jittered = [(s, ft + (ts - T0) % 7_919 * 1_000_003, ts, r, i) for s, ft, ts, r, i in to_records(records)]
    prints = prints_frame(jittered)
    expected, expected_stats = per_print(prints, SnapshotPolicy())
    replayed, replay_stats = replay_curves(prints)
    pd.testing.assert_frame_equal(replayed, expected, check_exact=True)
    assert replay_stats == expected_stats


def key_encodings(prints: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The same prints with venue/symbol held as a caller might hold them at scale, or laid out by stream."""
    dictionary = pd.ArrowDtype(pa.dictionary(pa.int32(), pa.string()))
    return {
        "categorical": prints.astype({"venue": "category", "symbol": "category"}),
        "categorical, unsorted and unused categories": prints.assign(
            venue=pd.Categorical(prints["venue"], categories=["zz", "okx", "binance"]),
            symbol=pd.Categorical(prints["symbol"], categories=["ETH/USDT:USDT", "unused", "BTC/USDT:USDT"]),
        ),
        "pyarrow dictionary, two chunks": prints.assign(
            **{
                column: pd.Series(
                    pd.array(
                        pa.chunked_array(
                            [
                                pa.array(part, type=pa.string()).dictionary_encode()
                                for part in np.array_split(prints[column].to_numpy(), 2)
                            ]
                        ),
                        dtype=dictionary,
                    )
                )
                for column in ("venue", "symbol")
            }
        ),
        "grouped by venue, symbol": prints.sort_values(["venue", "symbol"], kind="stable"),
        "grouped by symbol, venue": prints.sort_values(["symbol", "venue"], kind="stable"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("mode", SNAPSHOT_MODES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=print_records, block=st.sampled_from([1, 3, 16_384]))
def test_categorical_dictionary_and_grouped_inputs_match_object_strings(mode, records, block):
    """Categorical and dictionary codes, and frames already grouped by stream, take the fast paths.

    The output must not change."""
    policy = SnapshotPolicy(mode, 7.0)
    prints = prints_frame(to_records(records))
    expected, expected_stats = replay_curves(prints, policy)
    for name, variant in key_encodings(prints).items():
        with mock.patch.object(curve_replay, "_REDUCTION_BLOCK_ROWS", block):
            for run in (replay_curves, build_curves_streaming):
                frame, stats = run(variant, policy)
                pd.testing.assert_frame_equal(frame, expected, check_exact=True, obj=f"{run.__name__} on {name}")
                assert stats == expected_stats, name


# --- unit rules ------------------------------------------------------------------------------------------


def test_columns_and_dtypes():
    frame, _ = replay_curves(prints_frame([(0, T0, T0, 0.0001, 8.0)]))
    assert list(frame.columns) == CURVE_COLUMNS
    assert str(frame["ts_snap"].dtype) == "datetime64[ns, UTC]"
    assert str(frame["funding_time"].dtype) == "datetime64[ns, UTC]"
    assert frame["n_filled"].dtype == np.int64 and frame["interpolated_mask"].dtype == np.int64
    row = frame.iloc[0]
    assert row["n_filled"] == 1 and np.isnan(row[RATE_COLUMNS[1:]].astype(float)).all()


def test_each_bucket_annualised_with_its_own_interval():
    b = FundingCurveBuilder("binance", "BTC/USDT:USDT")
    b.update(T0, 0.0001, 8.0, T0)
    b.update(T0 + 4 * H, 0.0002, 4.0, T0 + 1)  # 8h → 4h: next settlement 4h later, nothing skipped
    row = b.update(T0 + 5 * H, -0.00001, 1.0, T0 + 2)._asdict()  # 4h → 1h
    assert row["interpolated_mask"] == 0 and b.stats.interpolated == 0
    assert row["interval_h"] == 1.0
    assert row["b0_ann"] == pytest.approx(ann(-0.00001, 1.0), rel=1e-12)
    assert row["b1_ann"] == pytest.approx(ann(0.0002, 4.0), rel=1e-12)
    assert row["b2_ann"] == pytest.approx(ann(0.0001, 8.0), rel=1e-12)
    assert row["level"] == row["b0_ann"]


def test_interval_lengthening_does_not_invent_missing_windows():
    b = FundingCurveBuilder("okx", "BTC/USDT:USDT")
    b.update(T0, 0.0001, 4.0, T0)
    b.update(T0 + 8 * H, 0.0001, 8.0, T0 + 1)
    assert b.stats == BuilderStats(prints=2, replaced=0, rolls=2, late=0, interpolated=0)


def test_gap_is_interpolated_linearly_in_annualised_yield_and_flagged():
    b = FundingCurveBuilder("binance", "BTC/USDT:USDT")
    b.update(T0, 0.0001, 8.0, T0)
    row = b.update(T0 + 32 * H, 0.0005, 8.0, T0 + 1)._asdict()  # 3 windows missing
    lo, hi = ann(0.0001, 8.0), ann(0.0005, 8.0)
    for bucket, step in ((1, 3), (2, 2), (3, 1)):
        assert row[f"b{bucket}_ann"] == pytest.approx(lo + (hi - lo) * step / 4, rel=1e-9)
    assert row["b4"] == 0.0001 and row["b0"] == 0.0005
    assert row["interpolated_mask"] == 0b1110
    assert row["n_filled"] == 5
    assert b.stats.interpolated == 3


def test_long_gap_counts_every_skipped_window_but_keeps_the_ring_size():
    b = FundingCurveBuilder("binance", "BTC/USDT:USDT")
    b.update(T0, 0.0001, 1.0, T0)
    row = b.update(T0 + 24 * H, 0.0001, 1.0, T0 + 1)._asdict()
    assert b.stats.interpolated == 23
    assert row["interpolated_mask"] == 0b11111110 and row["n_filled"] == N_BUCKETS


def test_late_print_is_counted_not_applied():
    b = FundingCurveBuilder("binance", "BTC/USDT:USDT", SnapshotPolicy("every_update"))
    b.update(T0 + 8 * H, 0.0003, 8.0, T0)
    before = b.snapshot(T0 + 5)
    assert b.update(T0, 0.009, 8.0, T0 + 5) is None
    pd.testing.assert_frame_equal(snapshots_frame([b.snapshot(T0 + 5)]), snapshots_frame([before]))
    assert b.stats.late == 1 and b.stats.prints == 2


def test_same_window_replaces_bucket_0_and_emits_only_on_roll():
    b = FundingCurveBuilder("binance", "BTC/USDT:USDT")
    assert b.update(T0, 0.0001, 8.0, T0) is not None
    assert b.update(T0, 0.0002, 8.0, T0 + S) is None
    row = b.update(T0 + 8 * H, 0.0003, 8.0, T0 + 2 * S)._asdict()
    assert (row["b0"], row["b1"]) == (0.0003, 0.0002)
    assert b.stats == BuilderStats(prints=3, replaced=1, rolls=2, late=0, interpolated=0)


@pytest.mark.parametrize("block", [1, 2, 16_384])
def test_replace_before_a_late_print_is_the_windows_settled_value(block):
    records = [
        (1, T0, T0, 0.0001, 8.0),
        (0, T0, T0 + 1, 0.0001, 8.0),
        (0, T0, T0 + 2, 0.0002, 8.0),  # the last applied print of window T0
        (1, T0, T0 + 3, 0.0003, 8.0),
        (0, T0 - 8 * H, T0 + 4, 0.0009, 8.0),  # late
        (0, T0 + 8 * H, T0 + 5, 0.0004, 8.0),
    ]
    with mock.patch.object(curve_replay, "_REDUCTION_BLOCK_ROWS", block):
        curves, stats = replay_curves(prints_frame(records))
    assert curves["b1"].iloc[1] == 0.0002
    assert stats[STREAMS[0]] == BuilderStats(prints=4, replaced=1, rolls=2, late=1)


def test_level_slope_curvature():
    rates = [0.0001 * (k + 1) for k in range(N_BUCKETS)]  # oldest first
    b = FundingCurveBuilder("binance", "BTC/USDT:USDT")
    for k, rate in enumerate(rates):
        row = b.update(T0 + 8 * k * H, rate, 8.0, T0 + k)._asdict()
    bucket_ann = [ann(rates[-1 - k], 8.0) for k in range(N_BUCKETS)]
    assert row["n_filled"] == N_BUCKETS
    assert row["level"] == pytest.approx(bucket_ann[0], rel=1e-12)
    assert row["slope"] == pytest.approx(bucket_ann[7] - bucket_ann[0], rel=1e-9)
    assert row["curvature"] == pytest.approx(bucket_ann[2] + bucket_ann[5] - 2 * bucket_ann[3], abs=1e-12)
    assert row["slope"] < 0  # older windows had lower rates


def test_every_n_seconds_emits_on_roll_and_when_due():
    b = FundingCurveBuilder("binance", "BTC/USDT:USDT", SnapshotPolicy("every_n_seconds", 3.0))
    emitted = [t for t in range(10) if b.update(T0, 0.0001, 8.0, T0 + t * S) is not None]
    assert emitted == [0, 3, 6, 9]
    assert b.update(T0 + 8 * H, 0.0001, 8.0, T0 + 10 * S) is not None  # roll resets the timer
    assert b.update(T0 + 8 * H, 0.0001, 8.0, T0 + 12 * S) is None


def test_missing_bucket_pct():
    windows = [0, 1, 2, 5, 6, 7, 8, 9]  # windows 3 and 4 have no print
    prints = prints_frame([(0, T0 + 8 * w * H, T0 + w, 0.0001, 8.0) for w in windows])
    curves, stats = replay_curves(prints)
    assert stats[STREAMS[0]].interpolated == 2
    assert missing_bucket_pct(curves) == pytest.approx(100 * 2 / 10)
    after_gap = curves.loc[curves["funding_time"] >= pd.Timestamp(T0 + 40 * H, tz="UTC")]
    assert missing_bucket_pct(after_gap) == pytest.approx(100 * 2 / 7)  # first row: gap read from its mask
    assert missing_bucket_pct(curves.iloc[:3]) == 0.0
    assert missing_bucket_pct(curves.iloc[:0]) == 0.0


def test_seed_warm_starts_the_ring_without_counting():
    settled = pd.DataFrame(
        {
            "venue": "binance",
            "symbol": "BTC/USDT:USDT",
            "funding_time": pd.to_datetime([T0 + 8 * k * H for k in range(10)], utc=True)[::-1],
            "ts": pd.to_datetime([T0 + 8 * k * H for k in range(10)], utc=True)[::-1],
            "rate": [0.0001 * k for k in range(10)][::-1],
            "interval_h": 8.0,
        }
    )
    b = FundingCurveBuilder("binance", "BTC/USDT:USDT")
    b.seed(settled)
    assert b.stats == BuilderStats()
    row = b.update(T0 + 80 * H, 0.0042, 8.0, T0 + 80 * H)._asdict()
    assert row["n_filled"] == N_BUCKETS and row["interpolated_mask"] == 0
    assert [row[f"b{k}"] for k in range(1, N_BUCKETS)] == [0.0001 * k for k in range(9, 2, -1)]
    assert b.stats == BuilderStats(prints=1, rolls=1)
    with pytest.raises(ValueError, match="other symbol"):
        FundingCurveBuilder("binance", "ETH/USDT:USDT").seed(settled)


@pytest.mark.parametrize(
    "rate, interval", [(math.nan, 8.0), (math.inf, 8.0), (-1.0, 8.0), (0.0001, 0.0), (0.0001, math.nan)]
)
def test_unusable_values_are_rejected_everywhere(rate, interval):
    b = FundingCurveBuilder("binance", "BTC/USDT:USDT")
    with pytest.raises(ValueError, match="unusable"):
        b.update(T0, rate, interval, T0)
    with pytest.raises(ValueError, match="unusable"):
        b.update_batch(np.array([T0]), np.array([rate]), np.array([interval]), np.array([T0]))
    assert b.stats == BuilderStats()
    prints = prints_frame([(0, T0, T0, 0.0001, 8.0), (0, T0, T0, rate, interval)])
    for run in (replay_curves, build_curves_streaming):
        with pytest.raises(ValueError, match="unusable"):
            run(prints)


def test_bad_policy_and_missing_inputs_are_rejected():
    with pytest.raises(ValueError, match="unknown mode"):
        SnapshotPolicy("hourly")
    with pytest.raises(ValueError, match="seconds"):
        SnapshotPolicy("every_n_seconds", 0.0)
    with pytest.raises(ValueError, match="missing column"):
        replay_curves(pd.DataFrame({"venue": ["x"]}))
    with pytest.raises(ValueError, match="no print yet"):
        FundingCurveBuilder("binance", "BTC/USDT:USDT").snapshot(T0)
    prints = prints_frame([(0, T0, T0, 0.0001, 8.0)])
    prints.loc[0, "funding_time"] = pd.NaT
    with pytest.raises(ValueError, match="NaT"):
        replay_curves(prints)
    with pytest.raises(ValueError, match="NaT"):
        FundingCurveBuilder("binance", "BTC/USDT:USDT").update(pd.NaT.value, 0.0001, 8.0, T0)


def test_history_replay_gives_one_snapshot_per_settled_print_in_stream_order():
    records = [(s, T0 + 8 * w * H, T0 + 8 * w * H + s, 0.0001 * s, 8.0) for w in range(12) for s in (2, 0, 1)]
    curves, stats = replay_curves(prints_frame(records))
    assert len(curves) == 36
    assert list(curves[["venue", "symbol"]].drop_duplicates().itertuples(index=False, name=None)) == sorted(STREAMS)
    assert curves.groupby(["venue", "symbol"])["funding_time"].apply(lambda t: t.is_monotonic_increasing).all()
    assert all(s == BuilderStats(prints=12, rolls=12) for s in stats.values())
    assert (curves["n_filled"].to_numpy() == np.tile(np.minimum(np.arange(1, 13), 8), 3)).all()
    assert not curves[ANN_COLUMNS].iloc[-1].isna().any()


def test_input_encodings_do_not_change_the_result():
    """Warehouse reads give µs timestamps; fast callers pass categoricals; an empty frame is no error."""
    records = [
        (s, T0 + 8 * w * H, T0 + 8 * w * H + s * 1000, 0.0001 * (s + w), 8.0) for w in range(4) for s in (2, 0, 1)
    ]
    prints = prints_frame(records)
    expected, expected_stats = replay_curves(prints)
    variants = [
        prints.assign(venue=prints["venue"].astype("category"), symbol=prints["symbol"].astype("category")),
        prints.assign(funding_time=prints["funding_time"].dt.as_unit("us"), ts=prints["ts"].dt.as_unit("us")),
        prints.assign(venue=pd.Categorical(prints["venue"], categories=["zz", "okx", "binance"])),
    ]
    for variant in variants:
        for run in (replay_curves, build_curves_streaming):
            frame, stats = run(variant)
            pd.testing.assert_frame_equal(frame, expected, check_exact=True)
            assert stats == expected_stats
    for run in (replay_curves, build_curves_streaming):
        frame, stats = run(prints.iloc[:0])
        assert list(frame.columns) == CURVE_COLUMNS and frame.empty and stats == {}
