"""Scoring rules: SMAPE (0/0 safe), MAE, hit rate with "unchanged", scorecard, best baseline, calibration."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fund_pipeline.domain.forecast import FORECAST_COLUMNS, PREDICTORS
from fund_pipeline.domain.forecast_metrics import (
    SCORECARD_COLUMNS,
    calibration_deciles,
    direction_hit_rate,
    labelled_scores,
    mae,
    scorecard,
    scorecard_summary,
    smape,
    verdicts,
)


def test_smape_counts_a_pair_of_zeros_as_exact():
    assert smape([0.0, 0.0], [0.0, 0.0]) == 0.0
    assert smape([0.0, 1e-4], [0.0, -1e-4]) == pytest.approx(1.0)
    assert smape([1e-4], [0.0]) == pytest.approx(2.0)


def test_metrics_reject_mismatched_or_missing_values():
    with pytest.raises(ValueError, match="1 actual value"):
        mae([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        smape([np.nan], [1.0])
    with pytest.raises(ValueError, match="no values"):
        smape([], [])


def test_direction_hit_rate_treats_flat_as_its_own_direction():
    current = np.array([1.0, 1.0, 1.0, 1.0])
    actual = np.array([2.0, 0.0, 1.0, 1.0])
    forecast = np.array([1.5, 1.5, 1.0, 3.0])
    # up/up hit, up/down miss, flat/flat hit, up/flat miss
    assert direction_hit_rate(current, actual, forecast) == 0.5


def forecasts_frame(horizons=("next", "7d")) -> pd.DataFrame:
    """Two venues, two rows each per horizon; the model is exact on venue a, the EWMA is best on venue b."""
    blocks = []
    for horizon in horizons:
        scale = 1.0 if horizon == "next" else 21.0
        actual = np.array([2e-4, 1e-4, 1e-4, 3e-4]) * scale
        blocks.append(
            pd.DataFrame(
                {
                    "venue": ["a", "a", "b", "b"],
                    "symbol": "BTC/USDT:USDT",
                    "funding_time": pd.date_range("2024-01-08", periods=4, freq="8h", tz="UTC"),
                    "horizon": horizon,
                    "target_time": pd.date_range("2024-01-08 08:00", periods=4, freq="8h", tz="UTC"),
                    "interval_h": 8.0,
                    "target_interval_h": 8.0,
                    "y_scale": scale,
                    "mass_8h": 1e-4,
                    "actual": actual,
                    "pred_model": np.array([2e-4, 1e-4, 1e-4, 2e-4]) * scale,
                    "pred_last": np.array([1e-4, 2e-4, 1e-4, 1e-4]) * scale,
                    "pred_rolling_mean": np.array([1e-4, 1.5e-4, 1e-4, 1e-4]) * scale,
                    "pred_ewma": np.array([1.5e-4, 1.5e-4, 1e-4, 2.5e-4]) * scale,
                    "pred_interest": 1e-4 * scale,
                    "pred_ar1": np.array([1.2e-4, 1.8e-4, 1e-4, 1.1e-4]) * scale,
                    # No venue quote in these rows: the baseline is the last value (and loses the tie to it).
                    "pred_venue": np.array([1e-4, 2e-4, 1e-4, 1e-4]) * scale,
                }
            )
        )
    return pd.concat(blocks, ignore_index=True)[FORECAST_COLUMNS]


def test_scorecard_rows_per_venue_horizon_and_predictor():
    card = scorecard(forecasts_frame())
    assert list(card.columns) == SCORECARD_COLUMNS
    assert len(card) == 3 * 2 * len(PREDICTORS)
    assert set(card["venue"]) == {"a", "b", "all"}
    model_all = card.query("venue == 'all' and horizon == 'next' and predictor == 'model'").iloc[0]
    assert model_all["n"] == 4
    assert model_all["mae"] == pytest.approx(0.25e-4)
    assert model_all["hit_rate"] == 1.0
    assert card.query("venue == 'a' and predictor == 'model'")["smape"].eq(0.0).all()


def test_verdicts_name_the_best_baseline_per_venue_and_horizon():
    table = verdicts(scorecard(forecasts_frame())).set_index(["venue", "horizon", "metric"])
    assert table.loc[("b", "next", "mae"), "best_baseline"] == "ewma"
    assert table.loc[("b", "next", "mae"), "model_vs_best_pct"] == pytest.approx(100.0)  # the model loses on b
    assert table.loc[("a", "7d", "mae"), "model_vs_best_pct"] == pytest.approx(-100.0)


def test_summary_reports_model_against_its_best_baseline_honestly():
    forecasts = forecasts_frame()
    summary = scorecard_summary(scorecard(forecasts), metric="mae", horizon="7d")
    assert summary["best_baseline"] == "ewma"
    losing = forecasts.assign(pred_model=forecasts["actual"] * -1)
    summary = scorecard_summary(scorecard(losing), metric="smape")
    assert summary["model_beats_best_baseline"] is False
    assert summary["model_smape"] > summary["best_baseline_smape"]
    with pytest.raises(ValueError, match="metric"):
        scorecard_summary(scorecard(forecasts), metric="rmse")


def test_calibration_deciles_pair_mean_predicted_and_realised():
    rng = np.random.default_rng(0)
    n = 1000
    predicted = rng.normal(1e-4, 5e-5, n)
    frame = forecasts_frame(("next",)).iloc[[0]].loc[[0] * n].reset_index(drop=True)
    frame["pred_model"], frame["actual"] = predicted, predicted + rng.normal(0, 1e-6, n)
    deciles = calibration_deciles(frame)
    assert list(deciles["decile"]) == list(range(1, 11))
    assert deciles["n"].sum() == n
    np.testing.assert_allclose(deciles["mean_realised"], deciles["mean_predicted"], atol=2e-7)
    assert deciles["mean_predicted"].is_monotonic_increasing


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
pairs = st.integers(1, 30).flatmap(
    lambda n: st.tuples(arrays("float64", n, elements=finite), arrays("float64", n, elements=finite))
)


@given(pairs)
def test_smape_is_bounded_and_symmetric(pair):
    actual, forecast = pair
    value = smape(actual, forecast)
    assert 0.0 <= value <= 2.0
    assert value == smape(forecast, actual)


@given(pairs)
def test_smape_is_zero_iff_forecasts_are_exact(pair):
    actual, forecast = pair
    assert (smape(actual, forecast) == 0.0) == bool(np.array_equal(actual, forecast))
    assert smape(actual, actual) == 0.0


def test_live_forecasts_get_their_own_rows_never_pooled_with_the_weekly_ones():
    weekly = forecasts_frame()
    live = forecasts_frame(horizons=("next",))
    live["pred_model"] = live["actual"] * 2.0
    card, table = labelled_scores(weekly, live)
    assert set(card["forecasts"]) == {"weekly", "live"}
    pd.testing.assert_frame_equal(
        card.loc[card["forecasts"] == "weekly"].drop(columns=["forecasts"]).reset_index(drop=True), scorecard(weekly)
    )
    live_model = card.loc[(card["forecasts"] == "live") & (card["venue"] == "all") & (card["predictor"] == "model")]
    assert live_model["mae"].item() == pytest.approx(np.abs(live["actual"]).mean())
    assert set(table.loc[table["forecasts"] == "live", "horizon"]) == {"next"}
    only_weekly, _ = labelled_scores(weekly, None)
    assert set(only_weekly["forecasts"]) == {"weekly"}
