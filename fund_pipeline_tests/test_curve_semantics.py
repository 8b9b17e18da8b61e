"""History and live are one curve: settled + reconstructed predicted prints through the historical
replay and through the live builder give identical snapshots, with bucket 0 the open window's quote."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fund_pipeline.domain.curve import FundingCurveBuilder, SnapshotPolicy, replay_curves, snapshots_frame
from fund_pipeline.domain.predicted import (
    FundingFormula,
    ReconstructionConfig,
    Weighting,
    curve_input,
    reconstruct_predicted,
    window_rate,
)
from fund_pipeline.domain.records import PRINT_COLUMNS

T0 = pd.Timestamp("2026-03-02", tz="UTC")
FORMULA = FundingFormula(0.0001, 0.0005, cap=0.0075, weighting=Weighting.LINEAR)
SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")


def market(premiums: list[list[float]], interval_h: float, jitter_ms: list[int], missing: set[int]):
    """Minute premium samples over consecutive windows of each symbol, and the settled prints."""
    samples, settled = [], []
    per_window = int(interval_h * 60)
    for s, symbol in enumerate(SYMBOLS):
        for w, values in enumerate(premiums):
            start = T0 + pd.Timedelta(hours=interval_h * w)
            premium = np.resize(np.asarray(values) * (1 + s), per_window)
            ts = start + pd.to_timedelta(np.arange(per_window) * 60 + 59.999, unit="s")
            samples.append(
                pd.DataFrame(
                    {"symbol": symbol, "base": symbol[:3], "ts": ts, "premium": premium, "interval_h": interval_h}
                )
            )
            if w in missing:
                continue
            end = start + pd.Timedelta(hours=interval_h)
            rate = window_rate(premium, np.arange(1, per_window + 1), interval_h, FORMULA)
            settled.append(
                {"venue": "binance", "symbol": symbol, "base": symbol[:3], "kind": "settled", "funding_time": end,
                 "ts": end + pd.Timedelta(milliseconds=jitter_ms[w % len(jitter_ms)]), "received_at": pd.NaT,
                 "rate": rate, "interval_h": interval_h, "mark_price": np.nan, "index_price": np.nan, "source": "rest"}
            )  # fmt: skip
    settled_frame = pd.DataFrame(settled, columns=PRINT_COLUMNS)
    settled_frame["received_at"] = pd.to_datetime(settled_frame["received_at"], utc=True)
    return pd.concat(samples, ignore_index=True), settled_frame


def live_path(prints: pd.DataFrame, policy: SnapshotPolicy) -> pd.DataFrame:
    """The collector's path: one builder per venue × symbol, fed print by print as they arrive."""
    builders: dict[tuple[str, str], FundingCurveBuilder] = {}
    rows = []
    for p in prints.sort_values("ts", kind="stable").itertuples():
        key = (p.venue, p.symbol)
        builder = builders.setdefault(key, FundingCurveBuilder(p.venue, p.symbol, policy))
        snap = builder.update(p.funding_time.value, p.rate, p.interval_h, p.ts.value)
        if snap is not None:
            rows.append(snap)
    return snapshots_frame(rows)


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["venue", "symbol", "ts_snap"], kind="stable").reset_index(drop=True)


@settings(max_examples=25, deadline=None)
@given(
    premiums=st.lists(st.lists(st.floats(-0.004, 0.004), min_size=1, max_size=6), min_size=2, max_size=5),
    interval_h=st.sampled_from([8.0, 4.0]),
    cadence_s=st.sampled_from([300, 1800, 3600]),
    jitter_ms=st.lists(st.integers(1, 250), min_size=1, max_size=3),
    missing=st.sets(st.integers(0, 4), max_size=2),
    every=st.booleans(),
)
# Every window's settlement missing: only reconstructed quotes reach the builders.
@example(premiums=[[0.0], [0.0]], interval_h=8.0, cadence_s=300, jitter_ms=[1], missing={0, 1}, every=False)
def test_history_and_live_give_identical_snapshots(premiums, interval_h, cadence_s, jitter_ms, missing, every):
    samples, settled = market(premiums, interval_h, jitter_ms, missing)
    predicted = reconstruct_predicted(
        "binance", samples, dict.fromkeys(SYMBOLS, FORMULA), ReconstructionConfig(cadence_s)
    )
    prints = curve_input(settled, predicted)
    policy = SnapshotPolicy("every_n_seconds", float(cadence_s)) if every else SnapshotPolicy()
    history, _ = replay_curves(prints, policy)
    live = live_path(prints.sample(frac=1.0, random_state=1), policy)  # arrival order is ts order
    pd.testing.assert_frame_equal(ordered(history), ordered(live))

    # On roll, bucket 0 is the open window's first quote and bucket 1 the window just settled.
    if not every:
        first_quote = predicted.sort_values("ts").groupby(["symbol", "funding_time"]).head(1)
        rolls = ordered(history).merge(
            first_quote[["symbol", "funding_time", "ts", "rate"]],
            left_on=["symbol", "funding_time", "ts_snap"],
            right_on=["symbol", "funding_time", "ts"],
        )
        assert len(rolls) == len(history)
        assert (rolls["b0"] == rolls["rate"]).all()
        previous = settled.assign(funding_time=settled["funding_time"] + pd.Timedelta(hours=interval_h))
        with_settled = rolls.merge(previous[["symbol", "funding_time", "rate"]], on=["symbol", "funding_time"])
        assert (with_settled["b1"] == with_settled["rate_y"]).all()
