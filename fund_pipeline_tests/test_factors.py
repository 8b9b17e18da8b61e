"""Unit and property tests of the curve factors (decay, shock timer, PCA sign alignment, dispersion)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fund_pipeline.domain.factors import (
    ANN_BUCKETS,
    DECAY_COLUMNS,
    RATE_BUCKETS,
    align_signs,
    canonical_signs,
    cross_venue_dispersion,
    decay_ratios,
    fit_curve_pca,
    rolling_curve_pcs,
    time_since_shock,
)
from fund_pipeline.domain.prints import annualise

T0 = pd.Timestamp("2024-03-01", tz="UTC")


def curves_from_rates(venue: str, symbol: str, interval_h: float, rates, start: pd.Timestamp = T0) -> pd.DataFrame:
    """Hand-made history snapshots: one per settled window, bucket k = the rate k windows earlier."""
    rates = np.asarray(rates, dtype="float64")
    times = pd.date_range(start, periods=len(rates), freq=pd.Timedelta(hours=interval_h))
    frame = pd.DataFrame({"venue": venue, "symbol": symbol, "ts_snap": times, "funding_time": times})
    frame["interval_h"] = float(interval_h)
    series = pd.Series(rates)
    for k, name in enumerate(RATE_BUCKETS):
        frame[name] = series.shift(k).to_numpy()
        frame[f"{name}_ann"] = annualise(frame[name], interval_h)
    frame["level"] = frame["b0_ann"]
    frame["slope"] = frame["b7_ann"] - frame["b0_ann"]
    frame["curvature"] = frame["b2_ann"] + frame["b5_ann"] - 2 * frame["b3_ann"]
    frame["n_filled"] = frame[RATE_BUCKETS].notna().sum(axis=1)
    frame["interpolated_mask"] = 0
    return frame


def test_decay_ratios_divide_neighbouring_buckets_and_guard_zero():
    curves = curves_from_rates("v", "X/USDT:USDT", 8, [1e-4, 2e-4, 0.0, 4e-4, 8e-4, 1e-4, 3e-4, 6e-4, 3e-4])
    ratios = decay_ratios(curves)
    assert list(ratios.columns) == DECAY_COLUMNS
    last = ratios.iloc[-1]
    # Last row: b0..b7 = 3e-4, 6e-4, 3e-4, 1e-4, 8e-4, 4e-4, 0, 2e-4
    assert last["decay_1_0"] == pytest.approx(2.0)
    assert last["decay_2_1"] == pytest.approx(0.5)
    assert last["decay_6_5"] == pytest.approx(0.0)
    assert np.isnan(last["decay_7_6"])
    assert np.isfinite(ratios.to_numpy()[~np.isnan(ratios.to_numpy())]).all()


def test_time_since_shock_counts_hours_from_the_last_jump_and_is_censored():
    rates = np.full(40, 1e-4)
    rates[25] = 5e-4
    curves = curves_from_rates("v", "X/USDT:USDT", 8, rates)
    hours = time_since_shock(curves, k=3.0)
    covered_from = 18  # 144h of history at 8h
    assert hours.iloc[:covered_from].isna().all()
    assert (hours.iloc[covered_from:25] == 72.0).all()
    assert hours.iloc[25] == 0.0
    assert list(hours.iloc[26:35]) == [8.0 * i for i in range(1, 10)]
    assert (hours.iloc[35:] == 72.0).all()


def test_time_since_shock_uses_only_the_past():
    rng = np.random.default_rng(3)
    curves = curves_from_rates("v", "X/USDT:USDT", 1, 1e-5 + rng.normal(0, 1e-6, 300))
    before = time_since_shock(curves)
    perturbed = curves.copy()
    perturbed.loc[200:, "b0"] = 1e-3
    after = time_since_shock(perturbed)
    pd.testing.assert_series_equal(before.iloc[:200], after.iloc[:200])


def test_time_since_shock_is_per_stream_and_keeps_the_input_order():
    a = curves_from_rates("a", "X/USDT:USDT", 8, np.r_[np.full(30, 1e-4), 9e-4, np.full(5, 1e-4)])
    b = curves_from_rates("b", "X/USDT:USDT", 8, np.full(36, 1e-4))
    both = pd.concat([b, a], ignore_index=True).sample(frac=1.0, random_state=1)
    hours = time_since_shock(both)
    assert hours[both["venue"] == "b"].dropna().eq(72.0).all()
    jump = both.index[(both["venue"] == "a") & (both["b0"] == 9e-4)][0]
    assert hours[jump] == 0.0


def test_time_since_shock_rejects_duplicate_windows():
    curves = curves_from_rates("v", "X/USDT:USDT", 8, np.full(5, 1e-4))
    with pytest.raises(ValueError, match="more than one row"):
        time_since_shock(pd.concat([curves, curves.tail(1)]))


def random_curve_matrix(seed: int, n_rows: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n_rows, 3)) * [3.0, 1.0, 0.3]
    shapes = rng.normal(size=(3, 8))
    return factors @ shapes + rng.normal(0, 0.05, size=(n_rows, 8))


def test_fit_curve_pca_matches_the_covariance_eigenvectors():
    matrix = random_curve_matrix(0)
    fit = fit_curve_pca(matrix, n_components=2)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(matrix, rowvar=False))
    top = eigenvectors[:, ::-1][:, :2].T
    assert np.allclose(np.abs(np.einsum("ij,ij->i", fit.loadings, top)), 1.0)
    assert np.allclose(fit.explained_variance, eigenvalues[::-1][:2])
    assert fit.explained_variance_ratio.sum() <= 1.0
    assert np.allclose(fit.mean, matrix.mean(axis=0))
    largest = np.abs(fit.loadings).argmax(axis=1)
    assert (fit.loadings[[0, 1], largest] > 0).all()


@pytest.mark.parametrize(
    ("matrix", "kwargs", "message"),
    [
        (np.ones(8), {}, "2-D"),
        (np.ones((10, 8)), {"n_components": 9}, "n_components"),
        (np.ones((2, 8)), {}, "more than 2 rows"),
        (np.r_[np.ones((5, 8)), np.full((1, 8), np.nan)], {}, "NaN"),
    ],
)
def test_fit_curve_pca_rejects_bad_input(matrix, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_curve_pca(matrix, **kwargs)


sign_vectors = arrays(np.float64, 2, elements=st.sampled_from([-1.0, 1.0]))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), flips=sign_vectors, previous_flips=sign_vectors)
def test_aligned_loadings_never_point_against_the_previous_fit(seed, flips, previous_flips):
    previous = fit_curve_pca(random_curve_matrix(seed)).loadings * previous_flips[:, None]
    current = fit_curve_pca(random_curve_matrix(seed + 1)).loadings * flips[:, None]
    aligned = align_signs(current, previous)
    assert (np.einsum("ij,ij->i", aligned, previous) >= 0).all()
    assert np.allclose(np.abs(aligned), np.abs(current))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), flips=sign_vectors, with_previous=st.booleans())
def test_alignment_is_invariant_to_the_sign_the_svd_returns(seed, flips, with_previous):
    loadings = fit_curve_pca(random_curve_matrix(seed)).loadings
    previous = fit_curve_pca(random_curve_matrix(seed + 7)).loadings if with_previous else None
    assert np.array_equal(align_signs(loadings * flips[:, None], previous), align_signs(loadings, previous))


def test_canonical_sign_makes_the_largest_loading_positive():
    assert np.array_equal(canonical_signs(np.array([[0.1, -0.9, 0.3]])), np.array([[-0.1, 0.9, -0.3]]))


def test_rolling_pcs_use_past_rows_only_and_keep_signs_across_refits():
    rng = np.random.default_rng(5)
    level = 1e-4 + np.cumsum(rng.normal(0, 2e-6, 24 * 12))
    curves = curves_from_rates("v", "X/USDT:USDT", 1, level + rng.normal(0, 3e-6, level.size))
    scores = rolling_curve_pcs(curves, pd.Timedelta("2D"), pd.Timedelta("1D"), min_rows=24)
    first_fit_day = T0 + pd.Timedelta("2D")
    assert scores[curves["funding_time"] < first_fit_day].isna().all().all()
    assert scores[curves["funding_time"] >= first_fit_day].notna().all().all()
    perturbed = curves.copy()
    later = perturbed["funding_time"] > T0 + pd.Timedelta("6D")
    perturbed.loc[later, ANN_BUCKETS] = perturbed.loc[later, ANN_BUCKETS] * -5.0
    rescored = rolling_curve_pcs(perturbed, pd.Timedelta("2D"), pd.Timedelta("1D"), min_rows=24)
    pd.testing.assert_frame_equal(scores[~later], rescored[~later])


def test_rolling_pcs_rejects_a_non_positive_window():
    curves = curves_from_rates("v", "X/USDT:USDT", 8, np.full(10, 1e-4))
    with pytest.raises(ValueError, match="window"):
        rolling_curve_pcs(curves, pd.Timedelta(0), pd.Timedelta("1D"))


def with_base(curves: pd.DataFrame, base: str) -> pd.DataFrame:
    return curves.assign(base=base, rate=curves["b0"])


def test_dispersion_joins_mixed_intervals_on_the_latest_known_rate():
    eight = with_base(curves_from_rates("a", "BTC/USDT:USDT", 8, [8e-4, 16e-4]), "BTC")
    one = with_base(curves_from_rates("b", "BTC/USDT:USDT", 1, np.full(16, 2e-4)), "BTC")
    other = with_base(curves_from_rates("c", "ETH/USDT:USDT", 8, [1e-4, 1e-4]), "ETH")
    out = cross_venue_dispersion(pd.concat([eight, one, other], ignore_index=True))
    btc = out[out["base"] == "BTC"].set_index("ts")
    # 8h-equivalents: venue a 8e-4 then 16e-4, venue b 16e-4 every hour.
    assert btc.loc[T0 + pd.Timedelta("3h"), "dispersion_8h"] == pytest.approx(np.std([8e-4, 16e-4], ddof=1))
    assert btc.loc[T0 + pd.Timedelta("9h"), "dispersion_8h"] == pytest.approx(0.0)
    assert (btc["n_venues"] == 2).all()
    eth = out[out["base"] == "ETH"]
    assert eth["dispersion_8h"].isna().all() and (eth["n_venues"] == 1).all()
    assert str(out["ts"].dtype) == "datetime64[ns, UTC]"


def test_dispersion_drops_a_venue_that_stopped_printing():
    eight = with_base(curves_from_rates("a", "BTC/USDT:USDT", 8, [8e-4]), "BTC")
    one = with_base(curves_from_rates("b", "BTC/USDT:USDT", 1, np.full(12, 2e-4)), "BTC")
    out = cross_venue_dispersion(pd.concat([eight, one], ignore_index=True)).set_index("ts")
    assert out.loc[T0 + pd.Timedelta("7h"), "n_venues"] == 2
    assert out.loc[T0 + pd.Timedelta("8h"), "n_venues"] == 1


def test_dispersion_never_uses_a_rate_before_it_is_known():
    late = with_base(curves_from_rates("a", "BTC/USDT:USDT", 8, [8e-4], start=T0 + pd.Timedelta("30min")), "BTC")
    one = with_base(curves_from_rates("b", "BTC/USDT:USDT", 1, np.full(4, 2e-4)), "BTC")
    out = cross_venue_dispersion(pd.concat([late, one], ignore_index=True)).set_index("ts")
    assert out.loc[T0, "n_venues"] == 1
    assert out.loc[T0 + pd.Timedelta("1h"), "n_venues"] == 2


def test_dispersion_averages_a_venues_symbols_before_the_std_across_venues():
    usdt = with_base(curves_from_rates("a", "BTC/USDT:USDT", 8, [8e-4]), "BTC")
    usd = with_base(curves_from_rates("a", "BTC/USD:BTC", 8, [4e-4]), "BTC")
    other = with_base(curves_from_rates("b", "BTC/USDT:USDT", 8, [2e-4]), "BTC")
    out = cross_venue_dispersion(pd.concat([usdt, other, usd], ignore_index=True)).set_index("ts")
    assert out.loc[T0, "n_venues"] == 2
    assert out.loc[T0, "dispersion_8h"] == pytest.approx(np.std([6e-4, 2e-4], ddof=1))
    assert list(out.columns) == ["base", "dispersion_8h", "n_venues"] and len(out) == 8


def test_dispersion_of_no_usable_rate_is_an_empty_typed_frame():
    rows = with_base(curves_from_rates("a", "BTC/USDT:USDT", 8, [np.nan]), "BTC")
    out = cross_venue_dispersion(rows)
    assert out.empty and list(out.columns) == ["base", "ts", "dispersion_8h", "n_venues"]
    assert str(out["ts"].dtype) == "datetime64[ns, UTC]" and str(out["n_venues"].dtype) == "int64"
