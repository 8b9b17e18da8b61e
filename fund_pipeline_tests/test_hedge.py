"""Unit tests of the hedge-basket QP, its inputs, the out-of-sample evaluation and the bootstrap."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fund_pipeline.domain.basket_eval import BASKET_PERFORMANCE_COLUMNS, bootstrap_percentiles, evaluate_basket
from fund_pipeline.domain.baskets import (
    BASKET_SUMMARY_COLUMNS,
    BASKET_WEIGHT_COLUMNS,
    BasketConfig,
    build_weekly_baskets,
    candidate_window,
    hedge_inputs,
    in_sample_tracking,
    pca_clean,
    universe_day,
    volume_caps,
    window_tracking,
)
from fund_pipeline.domain.hedge_qp import (
    HedgeProblem,
    InfeasibleBasketError,
    active_set_qp,
    feasible_start,
    pad_candidates,
)

AS_OF = pd.Timestamp("2024-03-04 12:00", tz="UTC")
LOOKBACK = pd.Timedelta(days=3)
N_OBS = int(LOOKBACK / pd.Timedelta(hours=1))


def random_problem(rng, n_obs, n_candidates):
    factors = rng.normal(0, 0.01, (n_obs, 2))
    returns = factors @ rng.normal(1, 0.5, (2, n_candidates)) + rng.normal(0, 0.005, (n_obs, n_candidates))
    target = factors @ rng.normal(1, 0.5, 2) + rng.normal(0, 0.005, n_obs)
    return returns, target


MARKET_START = AS_OF - pd.Timedelta(days=5)
MARKET_END = AS_OF + pd.Timedelta(days=7)


def market(seed=0, start=MARKET_START, end=MARKET_END):
    """Hourly bars and 8h settled prints for 4 bases on 2 venues driven by one market factor."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range(start, end, freq="h", inclusive="left", unit="ns")
    market_factor = rng.normal(0, 0.005, len(hours))
    bars, prints = [], []
    for venue in ("binance", "okx"):
        for base, beta in (("BTC", 1.0), ("ETH", 1.2), ("SOL", 1.5), ("XRP", 0.8)):
            symbol = f"{base}/USDT:USDT"
            returns = beta * market_factor + rng.normal(0, 0.002, len(hours))
            bars.append(
                pd.DataFrame(
                    {
                        "venue": venue,
                        "symbol": symbol,
                        "base": base,
                        "ts": hours,
                        "close": 100 * np.cumprod(1 + returns),
                        "volume_usd": rng.uniform(1e6, 2e6, len(hours)),
                    }
                )
            )
            settlements = hours[hours.hour % 8 == 0]
            prints.append(
                pd.DataFrame(
                    {
                        "venue": venue,
                        "symbol": symbol,
                        "base": base,
                        "kind": "settled",
                        "funding_time": settlements,
                        "rate": rng.normal(1e-4 * beta, 5e-5, len(settlements)),
                        "interval_h": 8.0,
                    }
                )
            )
    return pd.concat(bars, ignore_index=True), pd.concat(prints, ignore_index=True)


@pytest.fixture(scope="module")
def small_problem():
    return HedgeProblem(n_obs=12, n_candidates=5, lam=0.0)


def test_problem_is_dpp(small_problem):
    assert small_problem.problem.is_dcp(dpp=True)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    cap_floor=st.floats(0.2, 1.0),
)
def test_weights_are_invested_and_within_caps(small_problem, seed, cap_floor):
    rng = np.random.default_rng(seed)
    returns, target = random_problem(rng, 12, 5)
    cap = rng.uniform(cap_floor * 0.5, cap_floor, 5)
    cap = cap / min(cap.sum(), 1.0) if cap.sum() < 1 else cap
    solution = small_problem.solve(returns, target, rng.normal(1e-4, 1e-4, 5), cap)
    assert abs(solution.weights.sum() - 1) < 1e-6
    assert np.all(solution.weights >= -1e-6)
    assert np.all(solution.weights <= cap + 1e-6)
    assert solution.status == "optimal"


def test_exact_mix_of_two_candidates_is_recovered_without_carry():
    rng = np.random.default_rng(1)
    returns = rng.normal(0, 0.01, (200, 6))
    target = 0.3 * returns[:, 1] + 0.7 * returns[:, 4]
    solution = HedgeProblem(200, 6, lam=0.0).solve(returns, target, rng.normal(1e-4, 1e-4, 6), np.ones(6))
    np.testing.assert_allclose(solution.weights, [0, 0.3, 0, 0, 0.7, 0], atol=1e-5)
    assert solution.tracking_rmse < 1e-6


def test_larger_lambda_raises_basket_carry():
    rng = np.random.default_rng(2)
    returns, target = random_problem(rng, 100, 8)
    carry = rng.normal(1e-4, 2e-4, 8)
    cap = np.full(8, 0.5)
    carries = [
        carry @ HedgeProblem(100, 8, lam).solve(returns, target, carry, cap).weights for lam in (0, 10, 100, 1e4)
    ]
    assert np.all(np.diff(carries) >= -1e-9)
    assert carries[-1] > carries[0] + 1e-5
    assert carries[-1] == pytest.approx(np.sort(carry)[-2:].sum() * 0.5, rel=1e-4)


def test_absent_and_padded_names_get_zero_weight():
    rng = np.random.default_rng(3)
    returns, target = random_problem(rng, 50, 4)
    carry = np.array([1e-4, 5e-2, 1e-4, 1e-4])
    cap = np.array([1.0, 0.0, 1.0, 1.0])
    padded = pad_candidates(returns, carry, cap, 7)
    assert padded[0].shape == (50, 7)
    solution = HedgeProblem(50, 7, lam=1e3).solve(padded[0], target, padded[1], padded[2])
    assert np.all(solution.weights[[1, 4, 5, 6]] == 0)
    assert solution.weights.sum() == pytest.approx(1, abs=1e-6)


def test_resolving_matches_a_fresh_problem():
    rng = np.random.default_rng(4)
    problem = HedgeProblem(60, 10, lam=50.0)
    for _ in range(3):
        returns, target = random_problem(rng, 60, 10)
        carry, cap = rng.normal(1e-4, 1e-4, 10), rng.uniform(0.1, 0.5, 10)
        reused = problem.solve(returns, target, carry, cap)
        fresh = HedgeProblem(60, 10, lam=50.0).solve(returns, target, carry, cap)
        np.testing.assert_allclose(reused.weights, fresh.weights, atol=1e-6)
        assert reused.objective == pytest.approx(fresh.objective, rel=1e-6, abs=1e-12)


def drifting_weeks(rng, n_weeks, n_obs, n_candidates):
    """Rolling windows over one return history, so consecutive weeks share most of their data."""
    returns, target = random_problem(rng, n_obs + 24 * n_weeks, n_candidates)
    carry = rng.normal(1e-4, 1e-4, n_candidates)
    cap = rng.uniform(0.05, 0.4, n_candidates)
    for week in range(n_weeks):
        rows = slice(24 * week, 24 * week + n_obs)
        yield returns[rows], target[rows], carry + rng.normal(0, 2e-5, n_candidates), cap


def test_warm_resolves_take_the_active_set_path_and_match_fresh_problems():
    rng = np.random.default_rng(12)
    problem = HedgeProblem(200, 30, lam=50.0)
    methods = []
    for week in drifting_weeks(rng, 8, 200, 30):
        reused = problem.solve(*week)
        fresh = HedgeProblem(200, 30, lam=50.0, active_set_warm_start=False).solve(*week)
        methods.append(reused.method)
        assert fresh.method == "CLARABEL+active-set"
        np.testing.assert_allclose(reused.weights, fresh.weights, atol=1e-9)
        assert reused.objective == pytest.approx(fresh.objective, rel=1e-9, abs=1e-14)
    assert set(methods) == {"active-set"}
    # no solve fell back, so the cvxpy problem was never built
    assert "conic" not in vars(problem)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    lam=st.sampled_from([0.0, 10.0, 1e3]),
    n_obs=st.sampled_from([15, 40]),
    loose_caps=st.booleans(),
)
def test_active_set_from_the_cold_vertex_finds_the_interior_point_optimum(seed, lam, n_obs, loose_caps):
    """More candidates than hours (a singular Hessian, as at 300 bases), caps of 1 (a vertex w = e_j
    whose lone free name sits on its cap) and padded names included."""
    rng = np.random.default_rng(seed)
    n = 24
    returns, target = random_problem(rng, n_obs, n)
    carry = rng.normal(1e-4, 1e-4, n)
    cap = np.where(rng.random(n) < 0.5, 1.0, rng.uniform(0.05, 0.3, n)) if loose_caps else rng.uniform(0.05, 0.3, n)
    cap[:2] = 0.0
    reference = HedgeProblem(n_obs, n, lam, active_set_warm_start=False).solve(returns, target, carry, cap)
    cold = HedgeProblem(n_obs, n, lam).solve(returns, target, carry, cap)
    assert cold.method == "active-set"
    np.testing.assert_allclose(cold.weights, reference.weights, atol=1e-6)
    assert cold.objective == pytest.approx(reference.objective, rel=1e-9, abs=1e-14)
    assert cold.weights.sum() == pytest.approx(1, abs=1e-12)
    assert np.all((cold.weights >= 0) & (cold.weights <= cap)) and np.all(cold.weights[:2] == 0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), lam=st.sampled_from([0.0, 10.0, 1e3]))
def test_active_set_from_any_feasible_start_finds_the_interior_point_optimum(seed, lam):
    rng = np.random.default_rng(seed)
    returns, target = random_problem(rng, 40, 8)
    carry, cap = rng.normal(1e-4, 1e-4, 8), rng.uniform(0.15, 0.6, 8)
    reference = HedgeProblem(40, 8, lam, active_set_warm_start=False).solve(returns, target, carry, cap)
    scale_squared = np.sum(returns**2) / 8
    hessian = 2 * returns.T @ returns / scale_squared
    gradient_at_zero = (-2 * returns.T @ target - lam * carry) / scale_squared
    weights = active_set_qp(hessian, gradient_at_zero, cap, rng.dirichlet(np.ones(8)))
    assert weights is not None
    np.testing.assert_allclose(weights, reference.weights, atol=1e-6)
    assert weights.sum() == pytest.approx(1, abs=1e-12)
    assert np.all((weights >= 0) & (weights <= cap))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), spread=st.floats(0.0, 3.0))
def test_feasible_start_is_invested_within_caps_and_keeps_names_on_their_bounds(seed, spread):
    rng = np.random.default_rng(seed)
    cap = rng.uniform(0.0, 0.5, 10)
    cap[0] = 0.0
    cap *= max(1.0, 1.2 / cap.sum())
    weights = np.where(rng.random(10) < 0.4, 0.0, rng.uniform(-0.1, spread, 10))
    start = feasible_start(weights, cap)
    assert start.sum() == pytest.approx(1, abs=1e-12)
    assert np.all((start >= 0) & (start <= cap))
    assert start[0] == 0


def test_caps_summing_to_one_give_the_basket_at_its_caps():
    """The cold vertex is that basket (certified); warm from it no name is free, so the interior-point solver runs."""
    rng = np.random.default_rng(13)
    returns, target = random_problem(rng, 30, 4)
    cap = np.array([0.1, 0.2, 0.3, 0.4])
    problem = HedgeProblem(30, 4, lam=0.0)
    methods = []
    for _ in range(2):
        solution = problem.solve(returns, target, np.zeros(4), cap)
        methods.append(solution.method)
        np.testing.assert_allclose(solution.weights, cap, atol=1e-6)
    assert methods == ["active-set", "CLARABEL"]


def test_fewer_observations_than_candidates_still_give_a_valid_basket():
    rng = np.random.default_rng(10)
    returns, target = random_problem(rng, 3, 6)
    cap = np.full(6, 0.3)
    solution = HedgeProblem(3, 6, lam=1.0).solve(returns, target, np.zeros(6), cap)
    assert solution.weights.sum() == pytest.approx(1, abs=1e-6)
    assert np.all((solution.weights >= 0) & (solution.weights <= cap + 1e-9))


def test_infeasible_caps_raise(small_problem):
    returns, target = random_problem(np.random.default_rng(5), 12, 5)
    with pytest.raises(InfeasibleBasketError, match="sum to 0.5"):
        small_problem.solve(returns, target, np.zeros(5), np.full(5, 0.1))


def test_bad_shapes_and_values_raise(small_problem):
    returns, target = random_problem(np.random.default_rng(6), 12, 5)
    with pytest.raises(ValueError, match="shape"):
        small_problem.solve(returns[:, :4], target, np.zeros(5), np.ones(5))
    returns[0, 0] = np.nan
    with pytest.raises(ValueError, match="returns contain NaN"):
        small_problem.solve(returns, target, np.zeros(5), np.ones(5))


def test_volume_caps_take_a_share_of_adv_capped_at_one():
    caps = volume_caps([0.0, 1e6, 1e9], basket_notional_usd=1e6, max_volume_share=0.1)
    np.testing.assert_allclose(caps, [0.0, 0.1, 1.0])
    with pytest.raises(ValueError, match="max_volume_share"):
        volume_caps([1e6], 1e6, 1.5)


def test_pca_clean_keeps_rank_and_is_identity_at_full_rank():
    returns, _ = random_problem(np.random.default_rng(7), 40, 6)
    cleaned = pca_clean(returns, 2)
    assert np.linalg.matrix_rank(cleaned - cleaned.mean(axis=0), tol=1e-10) == 2
    np.testing.assert_allclose(pca_clean(returns, 6), returns, atol=1e-12)
    with pytest.raises(ValueError, match="n_components"):
        pca_clean(returns, 7)


def test_bootstrap_percentiles_are_ordered_and_deterministic():
    values = np.random.default_rng(8).normal(0, 1, 300)
    first = bootstrap_percentiles(values, np.mean, 500, (5, 50, 95), seed=11, block=24)
    again = bootstrap_percentiles(values, np.mean, 500, (5, 50, 95), seed=11, block=24)
    other = bootstrap_percentiles(values, np.mean, 500, (5, 50, 95), seed=12, block=24)
    pd.testing.assert_series_equal(first, again)
    assert not first.equals(other)
    assert first.is_monotonic_increasing
    assert first.iloc[0] < values.mean() < first.iloc[-1]
    with pytest.raises(ValueError, match="block"):
        bootstrap_percentiles(values, np.mean, 10, (50,), seed=0, block=301)


def test_bootstrap_of_a_constant_sample_is_that_constant():
    result = bootstrap_percentiles(np.full(50, 2.5), np.median, 100, (1, 99), seed=0, block=5)
    np.testing.assert_allclose(result.to_numpy(), 2.5)


def test_hedge_inputs_ignore_data_at_and_after_as_of():
    bars, prints = market()
    before = hedge_inputs(bars, prints, "binance", "BTC/USDT:USDT", AS_OF, LOOKBACK)
    future_bars = bars["ts"] >= AS_OF
    bars.loc[future_bars, ["close", "volume_usd"]] *= 3.0
    prints.loc[prints["funding_time"] >= AS_OF, "rate"] = 1.0
    after = hedge_inputs(bars, prints, "binance", "BTC/USDT:USDT", AS_OF, LOOKBACK)
    pd.testing.assert_frame_equal(before.candidates, after.candidates)
    np.testing.assert_array_equal(before.returns, after.returns)
    assert before.hours[-1] == AS_OF - pd.Timedelta(hours=1)
    assert len(before.hours) == N_OBS


def test_hedge_inputs_exclude_the_target_base_and_incomplete_names():
    bars, prints = market()
    gap = (bars["symbol"] == "SOL/USDT:USDT") & (bars["venue"] == "okx") & (bars["ts"] == AS_OF - pd.Timedelta(hours=5))
    inputs = hedge_inputs(bars.loc[~gap], prints, "binance", "BTC/USDT:USDT", AS_OF, LOOKBACK)
    names = set(zip(inputs.candidates["venue"], inputs.candidates["symbol"], strict=True))
    assert ("okx", "BTC/USDT:USDT") not in names and ("binance", "BTC/USDT:USDT") not in names
    assert ("okx", "SOL/USDT:USDT") not in names
    assert len(names) == 5
    window = bars.loc[(bars["ts"] >= AS_OF - LOOKBACK) & (bars["ts"] < AS_OF)]
    eth = window.loc[(window["venue"] == "binance") & (window["symbol"] == "ETH/USDT:USDT"), "volume_usd"].sum() / 3
    row = inputs.candidates.set_index(["venue", "symbol"]).loc[("binance", "ETH/USDT:USDT")]
    assert row["adv_usd"] == pytest.approx(eth)


def test_hedge_inputs_carry_is_the_8h_normalised_mean_before_as_of():
    bars, prints = market()
    hourly = prints["symbol"] == "XRP/USDT:USDT"
    prints.loc[hourly, "interval_h"] = 4.0
    prints.loc[hourly, "rate"] = 2e-4
    prints.loc[hourly & (prints["funding_time"] == AS_OF), "rate"] = 5.0
    inputs = hedge_inputs(bars, prints, "binance", "BTC/USDT:USDT", AS_OF, LOOKBACK)
    xrp = inputs.candidates.loc[inputs.candidates["symbol"] == "XRP/USDT:USDT", "carry_8h"]
    np.testing.assert_allclose(xrp, 4e-4)


def test_hedge_inputs_reject_an_unknown_target():
    bars, prints = market()
    with pytest.raises(ValueError, match="DOGE"):
        hedge_inputs(bars, prints, "binance", "DOGE/USDT:USDT", AS_OF, LOOKBACK)


def test_build_weekly_baskets_returns_valid_baskets():
    bars, prints = market()
    config = BasketConfig(
        lam=10.0, basket_notional_usd=2e6, max_volume_share=0.5, lookback=LOOKBACK, min_weight_to_report=0.0
    )
    targets = [("binance", "BTC/USDT:USDT"), ("okx", "ETH/USDT:USDT")]
    weights, summary = build_weekly_baskets(bars, prints, AS_OF, targets, config)
    assert list(weights.columns) == BASKET_WEIGHT_COLUMNS
    assert list(summary.columns) == BASKET_SUMMARY_COLUMNS
    assert str(weights["as_of"].dtype) == "datetime64[ns, UTC]"
    sums = weights.groupby(["target_venue", "target_symbol"])["weight"].sum()
    np.testing.assert_allclose(sums, 1.0, atol=1e-6)
    assert np.all(weights["weight"] <= weights["cap"] + 1e-6)
    np.testing.assert_allclose(weights["volume_usage"], weights["weight"] * 2e6 / weights["adv_usd"])
    assert not weights.loc[weights["target_symbol"] == "ETH/USDT:USDT", "symbol"].eq("ETH/USDT:USDT").any()
    assert set(summary["status"]) == {"optimal"}
    assert (summary["correlation"] > 0.9).all()
    assert (summary["n_candidates"] == 6).all()


def test_build_weekly_baskets_with_pca_and_too_small_caps():
    bars, prints = market()
    config = BasketConfig(lam=0.0, basket_notional_usd=2e6, max_volume_share=0.5, lookback=LOOKBACK, pca_components=2)
    weights, summary = build_weekly_baskets(bars, prints, AS_OF, [("binance", "SOL/USDT:USDT")], config)
    assert summary.loc[0, "reported_weight"] == pytest.approx(1.0, abs=1e-3)
    tight = BasketConfig(basket_notional_usd=1e9, max_volume_share=0.01, lookback=LOOKBACK)
    with pytest.raises(InfeasibleBasketError, match="SOL"):
        build_weekly_baskets(bars, prints, AS_OF, [("binance", "SOL/USDT:USDT")], tight)


def perfect_hedge_market():
    """Target closes built so its hourly returns are exactly 0.4·a + 0.6·b."""
    bars, prints = market(seed=9)
    keyed = bars.set_index(["venue", "symbol", "ts"]).sort_index()
    a = keyed.loc[("binance", "ETH/USDT:USDT"), "close"]
    b = keyed.loc[("okx", "SOL/USDT:USDT"), "close"]
    mix = 0.4 * a.pct_change().fillna(0) + 0.6 * b.pct_change().fillna(0)
    target = bars["venue"].eq("binance") & bars["symbol"].eq("BTC/USDT:USDT")
    bars.loc[target, "close"] = (100 * np.cumprod(1 + mix)).to_numpy()
    weights = pd.DataFrame(
        {
            "as_of": AS_OF,
            "target_venue": "binance",
            "target_symbol": "BTC/USDT:USDT",
            "venue": ["binance", "okx"],
            "symbol": ["ETH/USDT:USDT", "SOL/USDT:USDT"],
            "weight": [0.4, 0.6],
        }
    )
    return bars, prints, weights


def test_evaluate_basket_on_a_perfect_hedge_has_no_tracking_error():
    bars, prints, weights = perfect_hedge_market()
    end = AS_OF + pd.Timedelta(days=7)
    result = evaluate_basket(weights, bars, prints, AS_OF, end)
    assert list(result.columns) == BASKET_PERFORMANCE_COLUMNS
    row = result.iloc[0]
    assert row["n_obs"] == 168 and row["n_missing_hours"] == 0
    assert row["tracking_rmse"] < 1e-12
    assert row["correlation"] == pytest.approx(1.0)
    assert row["basket_return"] == pytest.approx(row["target_return"], abs=1e-12)
    week = prints.loc[(prints["funding_time"] >= AS_OF) & (prints["funding_time"] < end)].set_index(["venue", "symbol"])
    expected_basket = (
        0.4 * week.loc[("binance", "ETH/USDT:USDT"), "rate"].sum()
        + 0.6 * week.loc[("okx", "SOL/USDT:USDT"), "rate"].sum()
    )
    assert row["basket_funding_pnl"] == pytest.approx(expected_basket)
    assert row["target_funding_pnl"] == pytest.approx(-week.loc[("binance", "BTC/USDT:USDT"), "rate"].sum())


def test_evaluate_basket_counts_missing_hours_and_finds_the_hedge_from_data():
    bars, prints, weights = perfect_hedge_market()
    config = BasketConfig(lam=0.0, basket_notional_usd=1e6, max_volume_share=1.0, lookback=LOOKBACK)
    fitted, summary = build_weekly_baskets(bars, prints, AS_OF, [("binance", "BTC/USDT:USDT")], config)
    assert summary.loc[0, "tracking_rmse"] < 1e-6
    held = fitted.set_index(["venue", "symbol"])["weight"]
    assert held[("binance", "ETH/USDT:USDT")] == pytest.approx(0.4, abs=1e-4)
    gap = bars["symbol"].eq("SOL/USDT:USDT") & bars["venue"].eq("okx") & bars["ts"].eq(AS_OF + pd.Timedelta(hours=3))
    result = evaluate_basket(fitted, bars.loc[~gap], prints, AS_OF, AS_OF + pd.Timedelta(days=1))
    assert result.loc[0, "n_missing_hours"] == 2
    assert result.loc[0, "tracking_rmse"] < 1e-6


def test_universe_day_is_the_last_full_day_before_the_basket_date():
    assert universe_day(AS_OF) == pd.Timestamp("2024-03-03", tz="UTC")
    assert universe_day(pd.Timestamp("2024-03-04 00:00", tz="UTC")) == pd.Timestamp("2024-03-03", tz="UTC")


def test_in_sample_tracking_of_a_perfect_hedge_follows_the_target():
    bars, _, weights = perfect_hedge_market()
    tracking = in_sample_tracking(weights, bars, AS_OF, LOOKBACK, ("binance", "BTC/USDT:USDT"))
    assert len(tracking) == N_OBS and tracking.index[-1] == AS_OF - pd.Timedelta(hours=1)
    np.testing.assert_allclose(tracking["basket"], tracking["target"], atol=1e-12)
    with pytest.raises(ValueError, match="DOGE"):
        in_sample_tracking(weights, bars, AS_OF, LOOKBACK, ("binance", "DOGE/USDT:USDT"))


def test_one_candidate_window_shared_by_targets_and_carry_sources_gives_the_same_baskets():
    """The weekly asset builds a date's window once for both carry sources and every target."""
    bars, prints = market()
    config = BasketConfig(lam=1e4, basket_notional_usd=2e6, max_volume_share=0.5, lookback=LOOKBACK)
    targets = [("binance", "BTC/USDT:USDT"), ("okx", "ETH/USDT:USDT")]
    forecast = pd.Series([5e-3], index=pd.MultiIndex.from_tuples([("okx", "XRP/USDT:USDT")]))
    window = candidate_window(bars, prints, AS_OF, LOOKBACK)
    for source in ("trailing", "forecast_7d"):
        source_config = replace(config, carry_source=source)
        alone = build_weekly_baskets(bars, prints, AS_OF, targets, source_config, forecast_carry=forecast)
        shared = build_weekly_baskets(
            bars, prints, AS_OF, targets, source_config, forecast_carry=forecast, window=window
        )
        for a, b in zip(alone, shared, strict=True):
            pd.testing.assert_frame_equal(
                a.drop(columns="solve_time_s", errors="ignore"),
                b.drop(columns="solve_time_s", errors="ignore"),
                check_exact=True,
            )
    legs = alone[0].loc[alone[0]["target_symbol"] == "BTC/USDT:USDT"]
    pd.testing.assert_frame_equal(
        window_tracking(legs, window.returns, targets[0]),
        in_sample_tracking(legs, bars, AS_OF, LOOKBACK, targets[0]),
        check_exact=True,
    )
    with pytest.raises(ValueError, match="window is of"):
        build_weekly_baskets(bars, prints, AS_OF + pd.Timedelta(days=7), targets, config, window=window)


def test_dagster_basket_config_has_the_domain_fields_and_defaults():
    from dataclasses import fields

    from fund_pipeline.defs.hedging.assets import HedgeBasketConfig

    domain, glue = BasketConfig(), HedgeBasketConfig().basket_config()
    assert glue == domain
    glue_fields = set(HedgeBasketConfig.model_fields) - {"targets", "lookback_days", "compare_carry_sources"}
    assert glue_fields | {"lookback"} == {f.name for f in fields(BasketConfig)}
    assert HedgeBasketConfig(lam=3.0, lookback_days=14).basket_config().lookback == pd.Timedelta(days=14)
    with pytest.raises(ValueError, match="venue, symbol"):
        HedgeBasketConfig(targets=[["binance"]]).target_pairs()


def test_forecast_carry_replaces_the_trailing_carry_where_it_is_known():
    bars, prints = market()
    config = BasketConfig(lam=1e4, basket_notional_usd=2e6, max_volume_share=0.5, lookback=LOOKBACK)
    targets = [("binance", "BTC/USDT:USDT")]
    trailing, trailing_summary = build_weekly_baskets(bars, prints, AS_OF, targets, config)
    forecast = pd.Series(
        [5e-3, -5e-3], index=pd.MultiIndex.from_tuples([("okx", "XRP/USDT:USDT"), ("okx", "SOL/USDT:USDT")])
    )
    by_forecast = replace(config, carry_source="forecast_7d")
    weights, summary = build_weekly_baskets(bars, prints, AS_OF, targets, by_forecast, forecast_carry=forecast)
    legs = weights.set_index(["venue", "symbol"])
    assert legs.loc[("okx", "XRP/USDT:USDT"), "carry_8h"] == 5e-3
    assert (
        legs.loc[("okx", "XRP/USDT:USDT"), "weight"]
        > trailing.set_index(["venue", "symbol"]).loc[("okx", "XRP/USDT:USDT"), "weight"]
    )
    assert summary.loc[0, "n_forecast_carry"] == 2 and summary.loc[0, "carry_source"] == "forecast_7d"
    assert trailing_summary.loc[0, "n_forecast_carry"] == 0
    with pytest.raises(ValueError, match="needs forecast_carry"):
        build_weekly_baskets(bars, prints, AS_OF, targets, by_forecast)
    with pytest.raises(ValueError, match="carry_source"):
        BasketConfig(carry_source="tomorrow")
