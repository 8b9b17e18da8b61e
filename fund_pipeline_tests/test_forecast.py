import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fund_pipeline.domain.forecast import (
    FORECAST_COLUMNS,
    SCORECARD_COLUMNS,
    InsufficientHistoryError,
    TrainedModel,
    baseline_predictions,
    build_forecasts,
    direction_hit_rate,
    forecast_rows,
    mae,
    predict,
    scorecard,
    scorecard_summary,
    smape,
    train_forecast_model,
    walk_forward_split,
)
from fund_pipeline.domain.prints import SchemaError

FEATURES = ["rate_8h", "rate_mean_21", "momentum"]
WEEK_START = pd.Timestamp("2024-01-08", tz="UTC")
WEEK_END = pd.Timestamp("2024-01-15", tz="UTC")
FAST = {"iterations": 30, "depth": 4}


def synthetic_features(days: int = 14, seed: int = 0) -> pd.DataFrame:
    """Two venues, an 8h one and a 4h one, with an AR(1) funding rate and a NaN-bearing feature."""
    rng = np.random.default_rng(seed)
    frames = []
    for venue, interval_h in (("binance", 8), ("hyperliquid", 4)):
        times = pd.date_range("2024-01-01", periods=days * 24 // interval_h, freq=f"{interval_h}h", tz="UTC")
        rate_8h = np.empty(len(times))
        rate_8h[0] = 1e-4
        for i in range(1, len(times)):
            rate_8h[i] = 1e-4 + 0.8 * (rate_8h[i - 1] - 1e-4) + rng.normal(0, 5e-5)
        rate = rate_8h * interval_h / 8
        frame = pd.DataFrame(
            {
                "venue": venue,
                "symbol": "BTC/USDT:USDT",
                "base": "BTC",
                "funding_time": times,
                "interval_h": float(interval_h),
                "rate": rate,
                "rate_8h": rate_8h,
                "rate_mean_21": pd.Series(rate).rolling(21, min_periods=1).mean().to_numpy(),
                "momentum": np.where(rng.random(len(times)) < 0.1, np.nan, rng.normal(size=len(times))),
            }
        )
        frame["target_time"] = frame["funding_time"].shift(-1)
        frame["target_rate"] = frame["rate"].shift(-1)
        frame["target_interval_h"] = float(interval_h)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_split_trains_only_on_targets_settled_before_the_week():
    features = synthetic_features()
    train, test = walk_forward_split(features, WEEK_START, WEEK_END, min_train_rows=10)
    assert (train["target_time"] < WEEK_START).all()
    # the last window before the week has its target inside the week: it is neither train nor test
    last_before = features["funding_time"] < WEEK_START
    assert len(train) == int((last_before & (features["target_time"] < WEEK_START)).sum())
    assert test["funding_time"].between(WEEK_START, WEEK_END, inclusive="left").all()
    assert test["target_rate"].notna().all()
    assert len(test) == int(features["funding_time"].between(WEEK_START, WEEK_END, inclusive="left").sum()) - 2


def test_test_rows_need_the_whole_target_and_a_funding_time_in_the_week():
    features = synthetic_features()
    in_week = features["funding_time"].between(WEEK_START, WEEK_END, inclusive="left")
    first, second = features.index[in_week][:2]
    features.loc[first, "target_interval_h"] = np.nan
    features.loc[second, "target_rate"] = np.nan
    rows = forecast_rows(features, WEEK_START, WEEK_END)
    assert len(rows) == int(in_week.sum()) - 2 - 2  # the two broken targets and each venue's last row
    assert rows[["target_time", "target_rate", "target_interval_h"]].notna().all().all()
    _, test = walk_forward_split(features, WEEK_START, WEEK_END, min_train_rows=10)
    pd.testing.assert_frame_equal(test, rows)


def test_split_raises_when_history_is_too_short():
    with pytest.raises(InsufficientHistoryError, match="need at least 10000"):
        walk_forward_split(synthetic_features(), WEEK_START, WEEK_END, min_train_rows=10_000)


def test_split_rejects_naive_or_inverted_weeks():
    features = synthetic_features()
    with pytest.raises(ValueError, match="tz-aware"):
        walk_forward_split(features, pd.Timestamp("2024-01-08"), WEEK_END, 1)
    with pytest.raises(ValueError, match="before week_end"):
        walk_forward_split(features, WEEK_END, WEEK_START, 1)
    naive = features.assign(target_time=features["target_time"].dt.tz_localize(None))
    with pytest.raises(SchemaError, match="target_time must be tz-aware"):
        walk_forward_split(naive, WEEK_START, WEEK_END, 1)


def test_model_for_a_week_cannot_see_rows_whose_target_is_in_or_after_the_week():
    features = synthetic_features()
    train, _ = walk_forward_split(features, WEEK_START, WEEK_END, min_train_rows=10)
    clean = train_forecast_model(train, FEATURES, seed=7, **FAST).to_bytes()

    poisoned = features.copy()
    future = poisoned["target_time"] >= WEEK_START
    assert future.any()
    poisoned.loc[future, FEATURES] = 1e6
    poisoned.loc[future, "target_rate"] = -1.0
    poisoned_train, _ = walk_forward_split(poisoned, WEEK_START, WEEK_END, min_train_rows=10)
    assert train_forecast_model(poisoned_train, FEATURES, seed=7, **FAST).to_bytes() == clean

    # the poison is strong enough to change a model that does see it
    leaky = poisoned.loc[poisoned["target_time"].notna()]
    assert train_forecast_model(leaky, FEATURES, seed=7, **FAST).to_bytes() != clean


def test_model_round_trips_through_bytes_with_metadata():
    features = synthetic_features()
    train, test = walk_forward_split(features, WEEK_START, WEEK_END, min_train_rows=10)
    model = train_forecast_model(train, FEATURES, seed=1, **FAST)
    restored = TrainedModel.from_bytes(model.to_bytes())
    np.testing.assert_array_equal(predict(restored, test), predict(model, test))
    assert restored.n_train == len(train)
    assert restored.train_end == train["target_time"].max()
    assert restored.feature_columns == tuple(FEATURES)
    assert {name for name, _ in restored.top_features} <= {"venue", *FEATURES}
    importances = [value for _, value in restored.top_features]
    assert importances == sorted(importances, reverse=True)


def test_from_bytes_rejects_foreign_blobs():
    with pytest.raises(ValueError, match="unknown format"):
        TrainedModel.from_bytes(b"not a model")


def test_predictions_are_in_the_target_interval_units():
    features = synthetic_features()
    train, test = walk_forward_split(features, WEEK_START, WEEK_END, min_train_rows=10)
    model = train_forecast_model(train, FEATURES, seed=1, **FAST)
    as_4h = test.assign(target_interval_h=4.0)
    as_1h = test.assign(target_interval_h=1.0)
    np.testing.assert_allclose(predict(model, as_4h), 4 * predict(model, as_1h))


def test_model_learns_the_persistence_of_funding():
    features = synthetic_features(days=28)
    week_start = pd.Timestamp("2024-01-22", tz="UTC")
    train, test = walk_forward_split(features, week_start, week_start + pd.Timedelta(days=7), min_train_rows=10)
    model = train_forecast_model(train, FEATURES, seed=3, iterations=80, depth=4)
    forecasts = build_forecasts(model, test)
    assert mae(forecasts["actual"], forecasts["pred_model"]) < mae(forecasts["actual"], forecasts["pred_interest"])


def test_training_rejects_bad_input_by_name():
    train, _ = walk_forward_split(synthetic_features(), WEEK_START, WEEK_END, min_train_rows=10)
    with pytest.raises(SchemaError, match="missing column"):
        train_forecast_model(train, ["no_such_feature"], seed=0, **FAST)
    with pytest.raises(SchemaError, match=r"infinite values in column\(s\) \['momentum'\]"):
        train_forecast_model(train.assign(momentum=np.inf), FEATURES, seed=0, **FAST)
    with pytest.raises(ValueError, match="venue"):
        train_forecast_model(train, ["venue", *FEATURES], seed=0, **FAST)


def test_baselines_scale_to_the_target_interval():
    rows = pd.DataFrame(
        {
            "rate": [2e-4, 1e-4],
            "interval_h": [8.0, 4.0],
            "rate_mean_21": [1e-4, 5e-5],
            "target_interval_h": [4.0, 4.0],
        }
    )
    baselines = baseline_predictions(rows)
    np.testing.assert_allclose(baselines["pred_interest"], [5e-5, 5e-5])
    np.testing.assert_allclose(baselines["pred_last"], [1e-4, 1e-4])
    np.testing.assert_allclose(baselines["pred_rolling_mean"], [5e-5, 5e-5])


def test_build_forecasts_has_the_documented_columns():
    train, test = walk_forward_split(synthetic_features(), WEEK_START, WEEK_END, min_train_rows=10)
    forecasts = build_forecasts(train_forecast_model(train, FEATURES, seed=0, **FAST), test)
    assert list(forecasts.columns) == FORECAST_COLUMNS
    assert len(forecasts) == len(test)
    np.testing.assert_array_equal(forecasts["actual"], test["target_rate"])


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


def forecasts_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "venue": ["a", "a", "b", "b"],
            "symbol": "BTC/USDT:USDT",
            "funding_time": pd.date_range("2024-01-08", periods=4, freq="8h", tz="UTC"),
            "target_time": pd.date_range("2024-01-08 08:00", periods=4, freq="8h", tz="UTC"),
            "interval_h": [8.0, 8.0, 4.0, 4.0],
            "target_interval_h": [8.0, 8.0, 4.0, 4.0],
            "rate": [1e-4, 2e-4, 1e-4, 1e-4],
            "actual": [2e-4, 1e-4, 1e-4, 3e-4],
            "pred_model": [2e-4, 1e-4, 1e-4, 2e-4],
            "pred_interest": [1e-4, 1e-4, 5e-5, 5e-5],
            "pred_last": [1e-4, 2e-4, 1e-4, 1e-4],
            "pred_rolling_mean": [1e-4, 1.5e-4, 1e-4, 1e-4],
        }
    )


def test_scorecard_rows_per_venue_and_overall():
    card = scorecard(forecasts_frame())
    assert list(card.columns) == SCORECARD_COLUMNS
    assert len(card) == 3 * 4
    assert set(card["venue"]) == {"a", "b", "all"}
    model_all = card.query("venue == 'all' and predictor == 'model'").iloc[0]
    assert model_all["n"] == 4
    assert model_all["mae"] == pytest.approx(0.25e-4)
    assert model_all["hit_rate"] == 1.0
    model_a = card.query("venue == 'a' and predictor == 'model'").iloc[0]
    assert model_a["smape"] == 0.0


def test_summary_reports_model_against_its_best_baseline_honestly():
    forecasts = forecasts_frame()
    summary = scorecard_summary(scorecard(forecasts))
    assert summary["model_beats_best_baseline"] is True
    assert summary["best_baseline"] in {"interest", "last", "rolling_mean"}

    losing = forecasts.assign(pred_model=forecasts["actual"] * -1)
    summary = scorecard_summary(scorecard(losing), metric="mae")
    assert summary["model_beats_best_baseline"] is False
    assert summary["model_mae"] > summary["best_baseline_mae"]


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
