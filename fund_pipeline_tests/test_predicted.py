"""Predicted-rate reconstruction: the venues' worked examples, hand computations and properties."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fund_pipeline.domain.predicted import (
    AveragingWindow,
    FormulaKind,
    FundingFormula,
    ReconstructionConfig,
    Weighting,
    error_summary,
    funding_rate,
    intra_window_features,
    reconstruct_predicted,
    settlement_errors,
    thin_to_cadence,
    window_rate,
)
from fund_pipeline.domain.records import PRINT_COLUMNS

T0 = pd.Timestamp("2026-03-02 00:00", tz="UTC")
I8, C8 = 0.0001, 0.0005
LINEAR = FundingFormula(I8, C8, cap=0.0075, weighting=Weighting.LINEAR)
UNIFORM = FundingFormula(I8, C8, cap=0.015)
HOURLY = FundingFormula(I8, C8, cap=0.04, premium_scaled=True, clamp_scaled=True)
OKX_DOCUMENTED = FundingFormula(0.0, C8, cap=0.00375, kind=FormulaKind.PREMIUM_ONLY)
OKX_MOVING = FundingFormula(0.0, C8, cap=0.00375, kind=FormulaKind.PREMIUM_ONLY, window=AveragingWindow.MOVING)
DERIBIT = FundingFormula(0.0, 0.00025, cap=0.005, kind=FormulaKind.DEAD_BAND, clamp_scaled=True, band_per_sample=True)


def minute_samples(premium, start=T0, interval_h=8.0, symbol="BTC/USDT:USDT", offset_s=59.999) -> pd.DataFrame:
    """One sample per minute, stamped when known (a one-minute kline's close time)."""
    premium = np.asarray(premium, dtype=float)
    ts = start + pd.to_timedelta(np.arange(len(premium)) * 60 + offset_s, unit="s")
    return pd.DataFrame(
        {"symbol": symbol, "base": symbol.split("/")[0], "ts": ts, "premium": premium, "interval_h": interval_h}
    )


def settlement_rows(out: pd.DataFrame) -> pd.DataFrame:
    return out[out["ts"] == out["funding_time"]]


# --- the venues' documented examples ---------------------------------------------------------


def test_inside_the_dampener_the_rate_is_the_interest_rate():
    # binance/bybit: if (I - P) is within ±0.05 %, F = P + (I - P) = I.
    assert funding_rate(0.0003, 8.0, LINEAR) == I8
    assert funding_rate(-0.0004, 8.0, LINEAR) == I8


def test_outside_the_dampener_the_premium_is_moved_by_the_clamp():
    # P = 0.1 %: I - P = -0.09 % is clamped to -0.05 %, F = 0.05 %.
    assert funding_rate(0.001, 8.0, LINEAR) == pytest.approx(0.0005, abs=1e-15)
    assert funding_rate(-0.001, 8.0, LINEAR) == pytest.approx(-0.001 + 0.0005, abs=1e-15)


def test_interest_and_premium_are_scaled_to_a_four_hour_interval():
    # N-hour interest and premium components, the ±0.05 % dampener as it is.
    assert funding_rate(0.0003, 4.0, LINEAR) == I8 / 2
    # P = 0.4 % per 8 h is 0.2 % per 4 h; I - P = 0.005 % - 0.2 % is clamped to -0.05 %: F = 0.15 %.
    assert funding_rate(0.004, 4.0, LINEAR) == pytest.approx(0.0015, abs=1e-15)


def test_hyperliquid_worked_example_paid_hourly_at_one_eighth():
    # Docs: premium 1 %, interest 0.01 %: 8 h rate 1 % - 0.05 % = 0.95 %, paid 1/8 each hour.
    assert funding_rate(0.01, 1.0, HOURLY) == pytest.approx(0.0095 / 8, abs=1e-15)
    assert funding_rate(0.0003, 1.0, HOURLY) == pytest.approx(I8 / 8, abs=0)
    # The 4 % per hour cap: a premium of 400 % per 8 h would pay 50 % an hour.
    assert funding_rate(4.0, 1.0, HOURLY) == 0.04


def test_okx_documented_formula_is_the_premium_average_within_floor_and_cap():
    # Funding rate = Clamp[MA(Premium index - Interest), a, b], interest 0, BTC a/b = ∓0.375 %.
    assert funding_rate(0.0002, 8.0, OKX_DOCUMENTED) == pytest.approx(0.0002)
    assert funding_rate(0.005, 8.0, OKX_DOCUMENTED) == 0.00375
    assert funding_rate(-0.005, 8.0, OKX_DOCUMENTED) == -0.00375


def test_asymmetric_floor_and_cap():
    formula = FundingFormula(I8, C8, cap=0.003, floor=-0.001)
    assert funding_rate(0.02, 8.0, formula) == 0.003
    assert funding_rate(-0.02, 8.0, formula) == -0.001


def test_deribit_dead_band_applies_to_each_sample_then_the_time_fraction():
    # Premium rate 0.1 % -> 0.075 % per 8 h; -0.01 % -> 0; an 8 h window of both, half each.
    premium = np.r_[np.full(240, 0.001), np.full(240, -0.0001)]
    assert window_rate(premium, np.arange(1, 481), 8.0, DERIBIT) == pytest.approx(0.00075 / 2)
    # Band applied to the average instead: (0.001 - 0.0001) / 2 = 0.045 % -> 0.02 %.
    averaged = FundingFormula(0.0, 0.00025, cap=0.005, kind=FormulaKind.DEAD_BAND, clamp_scaled=True)
    assert window_rate(premium, np.arange(1, 481), 8.0, averaged) == pytest.approx(0.0002)


def test_bybit_linear_weights_one_to_n():
    # (P1*1 + P2*2 + ... + P480*480) / (1 + ... + 480)
    premium = np.linspace(0.0, 0.0048, 480)
    slots = np.arange(1, 481)
    p = float((premium * slots).sum() / slots.sum())
    assert window_rate(premium, slots, 8.0, LINEAR) == pytest.approx(p + max(-C8, min(C8, I8 - p)))


def test_okx_moving_window_at_16_10_uses_08_11_to_16_10():
    # OKX's table: last settlement 16:00, now 16:10 -> minutes 08:11 .. 16:10 (stamped at the minute).
    premium = np.arange(24 * 60) * 1e-7
    samples = minute_samples(premium, interval_h=8.0, offset_s=0.0)
    out = reconstruct_predicted("okx", samples, {"BTC/USDT:USDT": OKX_MOVING}, ReconstructionConfig(cadence_s=60))
    # The rate "at 16:10" is the one that has seen the 16:10 sample: our point 16:11.
    row = out[out["ts"] == T0 + pd.Timedelta("16h11min")].iloc[0]
    minutes = np.arange(8 * 60 + 11, 16 * 60 + 11)
    assert row["rate"] == pytest.approx(premium[minutes].mean(), rel=1e-12)
    # At the window's last minute the moving and the current average agree.
    current = reconstruct_predicted("okx", samples, {"BTC/USDT:USDT": OKX_DOCUMENTED}, ReconstructionConfig(60))
    end = T0 + pd.Timedelta("24h")
    assert out.loc[out["ts"] == end, "rate"].item() == pytest.approx(current.loc[current["ts"] == end, "rate"].item())


# --- against an independent hand computation -------------------------------------------------


def hand_path(samples: pd.DataFrame, formula: FundingFormula, cadence_s: int) -> list[tuple]:
    """A plain loop: every cadence point of every window, the formula on the samples before it."""
    out = []
    ts = [t.value for t in samples["ts"]]
    step = int(samples["interval_h"].iloc[0] * 3600e9)
    first, last = ts[0] // step * step, ts[-1] // step * step
    for start in range(first, last + step, step):
        for k in range(1, step // (cadence_s * 10**9) + 1):
            t = start + k * cadence_s * 10**9
            if t - cadence_s * 10**9 > ts[-1]:  # past the first point that has seen the last sample
                break
            used = [i for i, x in enumerate(ts) if start <= x < t]
            if not used:
                continue
            num = den = 0.0
            for i in used:
                w = (ts[i] - start) // int(formula.sample_step_s * 1e9) + 1 if formula.weighting == "linear" else 1
                num += w * samples["premium"].iloc[i]
                den += w
            interval = samples["interval_h"].iloc[0]
            s = interval / 8
            p = num / den * s
            i8, c = formula.interest_rate_8h * s, formula.clamp_8h
            rate = i8 if abs(i8 - p) <= c else p + max(-c, min(c, i8 - p))
            out.append((start + step, t, max(-formula.cap, min(formula.cap, rate))))
    return out


@pytest.mark.parametrize("formula", [LINEAR, UNIFORM], ids=["linear", "uniform"])
@pytest.mark.parametrize("interval_h", [8.0, 4.0])
def test_path_equals_hand_computation(formula, interval_h):
    rng = np.random.default_rng(7)
    samples = minute_samples(rng.normal(0.0004, 0.0012, 11 * 60), interval_h=interval_h)
    samples = samples.drop(index=[3, 4, 200, 201, 202]).reset_index(drop=True)  # gaps in the klines
    out = reconstruct_predicted("binance", samples, {"BTC/USDT:USDT": formula}, ReconstructionConfig(900))
    expected = hand_path(samples, formula, 900)
    assert len(out) == len(expected)
    got = list(
        zip(out["funding_time"].map(lambda t: t.value), out["ts"].map(lambda t: t.value), out["rate"], strict=True)
    )
    for (ft, t, r), (eft, et, er) in zip(got, expected, strict=True):
        assert (ft, t) == (eft, et)
        assert r == pytest.approx(er, rel=1e-12, abs=1e-18)


def test_output_is_in_the_print_schema_and_carries_last_mark_and_index():
    samples = minute_samples(np.full(30, 0.0002))
    samples["mark_price"] = 100.0 + np.arange(30)
    samples["index_price"] = 99.0 + np.arange(30)
    out = reconstruct_predicted("binance", samples, {"BTC/USDT:USDT": LINEAR}, ReconstructionConfig(600))
    assert list(out.columns) == PRINT_COLUMNS
    assert set(out["kind"]) == {"predicted"} and set(out["source"]) == {"reconstructed"}
    assert out["received_at"].isna().all()
    # The point at 00:10 has used the samples stamped 00:00:59.999 .. 00:09:59.999: the tenth.
    first = out.iloc[0]
    assert first["ts"] == T0 + pd.Timedelta("10min")
    assert (first["mark_price"], first["index_price"]) == (109.0, 108.0)
    assert out["ts"].tolist() == [T0 + pd.Timedelta(minutes=m) for m in (10, 20, 30)]


def test_symbols_with_their_own_formulas_and_an_interval_change():
    rng = np.random.default_rng(3)
    a = minute_samples(rng.normal(0.002, 0.002, 16 * 60), symbol="BTC/USDT:USDT")
    b_8h = minute_samples(rng.normal(-0.001, 0.002, 8 * 60), symbol="SUI/USDT:USDT")
    b_4h = minute_samples(rng.normal(-0.001, 0.002, 8 * 60), start=T0 + pd.Timedelta("8h"), interval_h=4.0)
    b_4h["symbol"], b_4h["base"] = "SUI/USDT:USDT", "SUI"
    capped = FundingFormula(I8, C8, cap=0.0004)
    formulas = {"BTC/USDT:USDT": LINEAR, "SUI/USDT:USDT": capped}
    both = pd.concat([b_4h, a, b_8h], ignore_index=True)  # order of input rows does not matter
    out = reconstruct_predicted("okx", both, formulas, ReconstructionConfig(300))
    for symbol, part in (("BTC/USDT:USDT", a), ("SUI/USDT:USDT", pd.concat([b_8h, b_4h]))):
        alone = reconstruct_predicted("okx", part, formulas, ReconstructionConfig(300))
        got = out[out["symbol"] == symbol].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, alone)
    sui = out[out["symbol"] == "SUI/USDT:USDT"]
    assert sorted(settlement_rows(sui)["interval_h"].tolist()) == [4.0, 4.0, 8.0]
    assert sui["rate"].abs().max() <= 0.0004


def test_hyperliquid_hourly_history_gives_the_settled_rate_at_the_settlement():
    # fundingHistory has one premium per hour: the hour's average, known at its end.
    premium = [0.0003, 0.01, -0.002]
    ts = [T0 + pd.Timedelta(hours=h + 1) - pd.Timedelta("1ms") for h in range(3)]
    samples = pd.DataFrame({"symbol": "BTC/USDC:USDC", "base": "BTC", "ts": ts, "premium": premium, "interval_h": 1.0})
    out = reconstruct_predicted("hyperliquid", samples, {"BTC/USDC:USDC": HOURLY}, ReconstructionConfig(300))
    assert len(out) == 3 and (out["ts"] == out["funding_time"]).all()
    assert out["rate"].tolist() == pytest.approx([I8 / 8, 0.0095 / 8, funding_rate(-0.002, 1.0, HOURLY)])


# --- properties --------------------------------------------------------------------------------

premiums = st.lists(st.floats(-0.01, 0.01, allow_nan=False), min_size=1, max_size=240)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(I8 - C8, I8 + C8), min_size=1, max_size=240), st.sampled_from([8.0, 4.0, 1.0]))
def test_clamp_region_gives_exactly_the_interest_rate(premium, interval_h):
    samples = minute_samples(premium, interval_h=interval_h)
    for formula in (LINEAR, UNIFORM, HOURLY):
        out = reconstruct_predicted("x", samples, {"BTC/USDT:USDT": formula}, ReconstructionConfig(300))
        assert (out["rate"] == I8 * interval_h / 8).all()


@settings(max_examples=60, deadline=None)
@given(premiums, st.sampled_from([LINEAR, UNIFORM, HOURLY, OKX_DOCUMENTED, DERIBIT]), st.sampled_from([8.0, 4.0]))
def test_last_rate_of_a_window_is_the_formula_on_the_whole_window(premium, formula, interval_h):
    end = T0 + pd.Timedelta(hours=interval_h)
    # The window's samples, then one of the next window: the data reach past the settlement.
    samples = pd.concat([minute_samples(premium, interval_h=interval_h), minute_samples([0.0], start=end)])
    out = reconstruct_predicted("x", samples, {"BTC/USDT:USDT": formula}, ReconstructionConfig(300))
    last = out[(out["funding_time"] == end)].iloc[-1]
    assert last["ts"] == end
    in_window = samples[samples["ts"] < end]
    slot = np.arange(1, len(in_window) + 1)
    assert last["rate"] == pytest.approx(window_rate(in_window["premium"], slot, interval_h, formula), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(premiums, st.integers(0, 600), st.floats(-0.05, 0.05), st.sampled_from([LINEAR, OKX_MOVING]))
def test_no_sample_after_t_is_used_at_t(premium, cut_minute, poison, formula):
    samples = minute_samples(premium + [0.0] * 300)
    out = reconstruct_predicted("x", samples, {"BTC/USDT:USDT": formula}, ReconstructionConfig(300))
    cut = T0 + pd.Timedelta(minutes=cut_minute)
    changed = samples.copy()
    changed.loc[changed["ts"] >= cut, "premium"] = poison
    out2 = reconstruct_predicted("x", changed, {"BTC/USDT:USDT": formula}, ReconstructionConfig(300))
    before = out["ts"] <= cut
    assert before.sum() == (out2["ts"] <= cut).sum()
    pd.testing.assert_frame_equal(out[before], out2[out2["ts"] <= cut])


# --- bad input -----------------------------------------------------------------------------------


def test_bad_input_fails_naming_the_problem():
    samples = minute_samples([0.001, 0.002])
    with pytest.raises(ValueError, match="does not divide"):
        reconstruct_predicted("x", samples, {"BTC/USDT:USDT": LINEAR}, ReconstructionConfig(7 * 60))
    with pytest.raises(ValueError, match="no funding formula"):
        reconstruct_predicted("x", samples, {}, ReconstructionConfig())
    nan = samples.assign(premium=[0.001, math.nan])
    with pytest.raises(ValueError, match="NaN"):
        reconstruct_predicted("x", nan, {"BTC/USDT:USDT": LINEAR})
    with pytest.raises(ValueError, match="missing sample column"):
        reconstruct_predicted("x", samples.drop(columns="interval_h"), {"BTC/USDT:USDT": LINEAR})
    with pytest.raises(ValueError, match="cap"):
        FundingFormula(I8, C8, cap=0.0)
    with pytest.raises(ValueError, match="moving"):
        FundingFormula(I8, C8, cap=0.01, weighting=Weighting.LINEAR, window=AveragingWindow.MOVING)


def test_no_samples_no_prints():
    empty = minute_samples([]).astype({"premium": float})
    out = reconstruct_predicted("x", empty, {})
    assert list(out.columns) == PRINT_COLUMNS and out.empty


# --- the settlement check ------------------------------------------------------------------------


def test_settlement_errors_compare_the_last_point_and_flag_pinned_windows():
    pinned = minute_samples(np.full(480, 0.0002))  # inside the clamp: exactly the interest
    moved = minute_samples(np.full(480, 0.003), start=T0 + pd.Timedelta("8h"))
    tail = minute_samples([0.0], start=T0 + pd.Timedelta("16h"))
    samples = pd.concat([pinned, moved, tail], ignore_index=True)
    out = reconstruct_predicted("binance", samples, {"BTC/USDT:USDT": LINEAR}, ReconstructionConfig(300))
    settled = pd.DataFrame(
        {
            "venue": "binance",
            "symbol": "BTC/USDT:USDT",
            "funding_time": [T0 + pd.Timedelta("8h"), T0 + pd.Timedelta("16h"), T0 + pd.Timedelta("24h")],
            "rate": [I8, 0.0025 + 1e-6, 0.0001],
        }
    )
    errors = settlement_errors(out, settled, {"BTC/USDT:USDT": LINEAR})
    assert len(errors) == 2  # the third window has no reconstruction at its settlement
    assert errors["pinned"].tolist() == [True, False]
    assert errors["abs_error"].tolist() == pytest.approx([0.0, 1e-6], abs=1e-15)
    summary = error_summary(errors, tolerance=2e-6).iloc[0]
    assert summary["n"] == 2 and summary["pinned"] == 1 and summary["pinned_exact"] and summary["passed"]
    assert summary["median_abs_error"] == pytest.approx(5e-7)
    assert not error_summary(errors, tolerance=1e-7).iloc[0]["passed"]
    off = settled.assign(rate=[I8 + 1e-9, 0.0025, 0.0001])
    assert not error_summary(settlement_errors(out, off, {"BTC/USDT:USDT": LINEAR})).iloc[0]["pinned_exact"]


def test_live_quotes_are_thinned_to_the_cadence_grid():
    ts = T0 + pd.to_timedelta(np.arange(0, 1200), unit="s")  # 20 minutes of 1 Hz quotes
    live = pd.DataFrame(
        {"venue": "binance", "symbol": "BTC/USDT:USDT", "kind": "predicted",
         "funding_time": T0 + pd.Timedelta("8h"), "ts": ts, "rate": np.arange(1200) * 1e-8}
    )  # fmt: skip
    settled = live.iloc[:1].assign(kind="settled", ts=T0 + pd.Timedelta("1ms"), funding_time=T0)
    out = thin_to_cadence(pd.concat([live, settled]), 300)
    quotes = out[out["kind"] == "predicted"]
    # The last quote before 00:05, 00:10, 00:15, 00:20: at 04:59, 09:59, 14:59, 19:59.
    assert quotes["ts"].tolist() == [T0 + pd.Timedelta(seconds=s) for s in (299, 599, 899, 1199)]
    assert (out["kind"] == "settled").sum() == 1
    with pytest.raises(ValueError, match="cadence"):
        thin_to_cadence(live, 0)


def test_intra_window_features_use_only_quotes_up_to_the_instant():
    samples = minute_samples(np.linspace(0.0, 0.008, 480))  # a premium rising through the window
    out = reconstruct_predicted("binance", samples, {"BTC/USDT:USDT": UNIFORM}, ReconstructionConfig(300))
    settle = T0 + pd.Timedelta("8h")
    at = pd.DataFrame(
        {"venue": "binance", "symbol": "BTC/USDT:USDT", "at": [T0 + pd.Timedelta("5h"), settle], "funding_time": settle}
    )
    f = intra_window_features(out, at)
    quote = out.set_index("ts")["rate"]
    first = quote.iloc[0]
    assert f["hours_to_settlement"].tolist() == [3.0, 0.0]
    assert f["predicted_now"].tolist() == [quote[T0 + pd.Timedelta("5h")], quote[settle]]
    assert f["predicted_drift"].tolist() == pytest.approx(
        [quote[T0 + pd.Timedelta("5h")] - first, quote[settle] - first]
    )
    # 4 h before settlement (04:00) is known at 05:00; 1 h before (07:00) is not yet.
    assert f["predicted_4h_before"].tolist() == [quote[T0 + pd.Timedelta("4h")]] * 2
    assert (
        np.isnan(f["predicted_1h_before"].iloc[0])
        and f["predicted_1h_before"].iloc[1] == quote[T0 + pd.Timedelta("7h")]
    )
    # Quotes after the instant change nothing.
    later = out.assign(rate=np.where(out["ts"] > T0 + pd.Timedelta("5h"), 1.0, out["rate"]))
    pd.testing.assert_frame_equal(intra_window_features(later, at.iloc[:1]), f.iloc[:1])
