import dataclasses

import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.forecast import (
    EXTRA_FEATURES,
    FORECAST_COLUMNS,
    InsufficientHistoryError,
    ModelParams,
    TrainedModel,
    _pool,
    build_forecasts,
    combined_forecast,
    forecast_as_of,
    forecast_rows,
    horizon_combination,
    predict_y,
    train_forecast_model,
    walk_forward_split,
    with_mass_features,
)
from fund_pipeline.domain.forecast_horizons import FORECAST_INPUT_WARMUP, baseline_y, forecast_frame
from fund_pipeline.domain.forecast_metrics import landing_rates, mae
from fund_pipeline.domain.prints import SchemaError

FEATURES = ["rate_8h", "rate_mean_21", "momentum"]
WEEK_START = pd.Timestamp("2024-01-08", tz="UTC")
WEEK_END = pd.Timestamp("2024-01-15", tz="UTC")
FAST = ModelParams(seed=7, iterations=30, depth=4, classifier_iterations=20)
# Long enough that every horizon (up to 7 days) has settled targets before the model week.
LONG_DAYS = 35
MODEL_WEEK = pd.Timestamp("2024-01-29", tz="UTC")
MODEL_WEEK_END = MODEL_WEEK + pd.Timedelta(days=7)


def synthetic_features(days: int = 14, seed: int = 0, sticky: bool = False) -> pd.DataFrame:
    """Two venues, an 8h one and a 4h one, with an AR(1) funding rate and a NaN-bearing feature.

    With `sticky`, a third 8h venue sits exactly on 0.01 %/8h for long spells (a mass point).
    """
    rng = np.random.default_rng(seed)
    frames = []
    venues = [("binance", 8), ("hyperliquid", 4)] + ([("kucoin", 8)] if sticky else [])
    for venue, interval_h in venues:
        times = pd.date_range("2024-01-01", periods=days * 24 // interval_h, freq=f"{interval_h}h", tz="UTC")
        rate_8h = np.empty(len(times))
        rate_8h[0] = 1e-4
        for i in range(1, len(times)):
            rate_8h[i] = 1e-4 + 0.8 * (rate_8h[i - 1] - 1e-4) + rng.normal(0, 5e-5)
            if venue == "kucoin" and (i // 12) % 3 != 2:
                rate_8h[i] = 1e-4
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


def model_and_frame(seed=7, sticky=False, days=LONG_DAYS, shuffle_targets=False):
    features = synthetic_features(days=days, seed=seed, sticky=sticky)
    frame = forecast_frame(features)
    train = frame.loc[frame["funding_time"] < MODEL_WEEK]
    if shuffle_targets:
        rng = np.random.default_rng(seed)
        train = train.copy()
        for column in [c for c in train.columns if c.startswith("y_")]:
            train[column] = rng.permutation(train[column].to_numpy())
    return train_forecast_model(train, FEATURES, MODEL_WEEK, FAST), frame


def test_model_for_a_week_cannot_see_rows_whose_target_is_in_or_after_the_week():
    features = synthetic_features(days=LONG_DAYS)
    clean = train_forecast_model(forecast_frame(features), FEATURES, MODEL_WEEK, FAST).to_bytes()

    poisoned = features.copy()
    future = poisoned["funding_time"] >= MODEL_WEEK
    poisoned.loc[future, FEATURES] = 1e6
    poisoned.loc[future, ["rate", "target_rate"]] = -1.0
    assert train_forecast_model(forecast_frame(poisoned), FEATURES, MODEL_WEEK, FAST).to_bytes() == clean

    # the poison is strong enough to change a model that does see it
    later = MODEL_WEEK + pd.Timedelta(days=5)
    assert train_forecast_model(forecast_frame(poisoned), FEATURES, later, FAST).to_bytes() != clean


def test_horizons_fitted_at_once_give_the_bytes_of_one_at_a_time():
    """fit_workers only spreads the horizons' CatBoost fits over threads: the models are the same bytes."""
    frame = forecast_frame(synthetic_features(days=LONG_DAYS))
    one = train_forecast_model(frame, FEATURES, MODEL_WEEK, dataclasses.replace(FAST, fit_workers=1)).to_bytes()
    for workers in (2, 4, 2):
        parallel = train_forecast_model(frame, FEATURES, MODEL_WEEK, dataclasses.replace(FAST, fit_workers=workers))
        assert parallel.to_bytes() == one
    other_seed = train_forecast_model(frame, FEATURES, MODEL_WEEK, dataclasses.replace(FAST, seed=8, fit_workers=2))
    assert other_seed.to_bytes() != one


def test_model_round_trips_through_bytes_with_metadata():
    model, frame = model_and_frame(sticky=True)
    restored = TrainedModel.from_bytes(model.to_bytes())
    rows = with_mass_features(model, frame)
    week = rows.loc[rows["funding_time"] >= MODEL_WEEK]
    for horizon in model.horizons:
        np.testing.assert_array_equal(predict_y(restored, week, horizon), predict_y(model, week, horizon))
        assert restored.horizons[horizon].anchor == model.horizons[horizon].anchor
    assert restored.n_train == model.n_train
    assert restored.train_end == model.train_end < MODEL_WEEK
    assert restored.feature_columns == tuple(FEATURES)
    pd.testing.assert_frame_equal(restored.mass_points, model.mass_points, check_dtype=False)
    importances = [value for _, value in restored.top_features]
    assert importances == sorted(importances, reverse=True)


def test_from_bytes_rejects_foreign_blobs():
    with pytest.raises(ValueError, match="unknown format"):
        TrainedModel.from_bytes(b"not a model")


def test_build_forecasts_has_every_horizon_in_accrued_units():
    model, frame = model_and_frame()
    forecasts = build_forecasts(model, frame, WEEK_START + pd.Timedelta(days=14), WEEK_END + pd.Timedelta(days=14))
    assert list(forecasts.columns) == FORECAST_COLUMNS
    assert set(forecasts["horizon"]) == {"next", "1d", "3d", "7d"}
    seven = forecasts.loc[(forecasts["horizon"] == "7d") & (forecasts["venue"] == "hyperliquid")]
    # 42 four-hour windows in 7 days: persistence accrues 42 times the current rate
    current = frame.set_index(["venue", "funding_time"]).loc["hyperliquid", "rate"]
    np.testing.assert_allclose(seven["pred_last"], 42 * current.reindex(seven["funding_time"]).to_numpy())
    assert (seven["target_time"] == seven["funding_time"] + pd.Timedelta(days=7)).all()


def test_a_week_without_settled_long_horizons_has_only_the_short_ones():
    model, frame = model_and_frame()
    last_week = frame["funding_time"].max().normalize() - pd.Timedelta(days=2)
    forecasts = build_forecasts(model, frame, last_week, last_week + pd.Timedelta(days=7))
    assert "7d" not in set(forecasts["horizon"]) and "next" in set(forecasts["horizon"])


def test_model_learns_the_persistence_of_funding():
    model, frame = model_and_frame()
    forecasts = build_forecasts(model, frame, MODEL_WEEK, MODEL_WEEK_END)
    for horizon, block in forecasts.groupby("horizon"):
        assert mae(block["actual"], block["pred_model"]) < mae(block["actual"], block["pred_interest"]), horizon


def test_leakage_probe_shuffled_targets_give_no_skill_over_the_constant():
    """With the targets shuffled in training the learned part cannot beat the best constant; unshuffled it can.

    The next-window forecast averages the regressor with the AR(1), which is fitted on past rates, not
    on the targets: with shuffled targets the whole forecast is no better than that average with the
    constant in the regressor's place.
    """
    shuffled, frame = model_and_frame(shuffle_targets=True)
    honest, _ = model_and_frame()
    history = with_mass_features(shuffled, frame)
    week = history.loc[(history["funding_time"] >= MODEL_WEEK) & history["y_next"].notna()].reset_index(drop=True)
    train_y = frame.loc[frame["target_time"] < MODEL_WEEK, "y_next"]
    constant = np.full(len(week), float(train_y.median()))
    baselines, learned_shuffled = regressed_and_baselines(shuffled, week, "next")
    _, learned_honest = regressed_and_baselines(honest, week, "next")
    assert mae(week["y_next"], learned_shuffled) > 0.95 * mae(week["y_next"], constant)
    assert mae(week["y_next"], learned_honest) < 0.8 * mae(week["y_next"], constant)
    with_constant = mae(week["y_next"], (constant + baselines["ar1"].to_numpy()) / 2)
    assert mae(week["y_next"], predict_y(shuffled, week, "next")) > 0.95 * with_constant
    assert mae(week["y_next"], predict_y(honest, week, "next")) < 0.9 * with_constant


def test_mass_points_are_found_and_forecast_exactly():
    model, frame = model_and_frame(sticky=True)
    assert model.mass_points["venue"].tolist() == ["kucoin"]
    assert model.metadata["classifiers"] == ["next", "1d"]  # a 3- or 7-day mean seldom sits on one point
    assert model.mass_points["mass_8h"].iloc[0] == pytest.approx(1e-4, abs=1e-12)
    forecasts = build_forecasts(model, frame, MODEL_WEEK, MODEL_WEEK_END)
    landing = landing_rates(forecasts).set_index(["venue", "horizon"])
    kucoin = landing.loc[("kucoin", "next")]
    assert kucoin["realised_on_mass"] > 0.5 and kucoin["model_on_mass"] > 0.5
    on_point = forecasts.loc[(forecasts["venue"] == "kucoin") & (forecasts["horizon"] == "next"), "pred_model"]
    assert (on_point == 1e-4).any()
    assert landing.loc[("binance", "next"), "model_on_mass"] == 0.0


def test_a_weeks_first_rows_carry_the_mass_run_from_before_the_week():
    """Mass features are read off the rows before the week, as in training, and need no more of them than
    the warm-up: cut there or not, the week's forecasts are the same."""
    model, frame = model_and_frame(sticky=True)
    whole = build_forecasts(model, frame, MODEL_WEEK, MODEL_WEEK_END)
    warm_up = frame.loc[frame["funding_time"] >= MODEL_WEEK - FORECAST_INPUT_WARMUP].reset_index(drop=True)
    pd.testing.assert_frame_equal(build_forecasts(model, warm_up, MODEL_WEEK, MODEL_WEEK_END), whole)
    rows = with_mass_features(model, frame)
    first = rows.loc[(rows["venue"] == "kucoin") & (rows["funding_time"] == MODEL_WEEK)].iloc[0]
    # Window 84 of the stream: windows 72 .. 95 sit on the point, so 13 in a row up to it.
    assert first["mass_run"] == 13.0
    alone = with_mass_features(model, frame.loc[frame["funding_time"] >= MODEL_WEEK])
    assert alone.loc[(alone["venue"] == "kucoin"), "mass_run"].iloc[0] == 1.0


def test_forecast_rows_without_mass_features_are_refused():
    model, frame = model_and_frame()
    with pytest.raises(SchemaError, match="with_mass_features"):
        predict_y(model, frame.loc[frame["funding_time"] >= MODEL_WEEK], "next")


def test_forecast_as_of_uses_each_streams_last_window_before():
    model, frame = model_and_frame()
    latest = forecast_as_of(model, frame, MODEL_WEEK, "7d")
    assert set(latest["venue"]) == {"binance", "hyperliquid"}
    assert (latest["funding_time"] < MODEL_WEEK).all()
    assert latest.set_index("venue").loc["binance", "funding_time"] == MODEL_WEEK - pd.Timedelta(hours=8)


def test_training_rejects_bad_input_by_name():
    frame = forecast_frame(synthetic_features(days=LONG_DAYS))
    with pytest.raises(SchemaError, match="missing column"):
        train_forecast_model(frame, ["no_such_feature"], MODEL_WEEK, FAST)
    with pytest.raises(SchemaError, match=r"infinite values in column\(s\) \['momentum'\]"):
        train_forecast_model(frame.assign(momentum=np.inf), FEATURES, MODEL_WEEK, FAST)
    words = frame.assign(momentum=frame["momentum"].astype(object))
    words.loc[5, "momentum"] = "n/a"
    with pytest.raises(SchemaError, match=r"non-numeric values in column\(s\) \['momentum'\]"):
        train_forecast_model(words, FEATURES, MODEL_WEEK, FAST)
    as_text = frame.assign(momentum=frame["momentum"].astype(object).astype(str).replace("nan", None))
    numbers_as_text = train_forecast_model(as_text, FEATURES, MODEL_WEEK, FAST)
    assert numbers_as_text.to_bytes() == train_forecast_model(frame, FEATURES, MODEL_WEEK, FAST).to_bytes()
    with pytest.raises(ValueError, match="venue"):
        train_forecast_model(frame, ["venue", *FEATURES], MODEL_WEEK, FAST)
    with pytest.raises(InsufficientHistoryError, match=r"horizon \w+: \d+ row\(s\) with the target settled"):
        train_forecast_model(
            forecast_frame(synthetic_features(days=9)), FEATURES, pd.Timestamp("2024-01-09", tz="UTC"), FAST
        )


def test_combined_forecast_is_the_equal_weight_mean_of_the_regressor_and_the_named_baselines():
    baselines = pd.DataFrame(
        {"last": [9.0, 9.0], "rolling_mean": [0.0, 4.0], "ewma": [4.0, 4.0], "interest": [9.0, 9.0], "ar1": [0.0, 0.0]}
    )
    # (4 + 0 + 4 + 0) / 4 and (0 + 4 + 4 + 0) / 4: "last" and "interest" take no part
    long = ("rolling_mean", "ewma", "ar1")
    np.testing.assert_array_equal(combined_forecast(np.array([4.0, 0.0]), baselines, long), [2.0, 2.0])
    np.testing.assert_array_equal(combined_forecast(np.array([4.0, 2.0]), baselines, ("ar1",)), [2.0, 1.0])
    np.testing.assert_array_equal(combined_forecast(np.array([4.0, 2.0]), baselines, ()), [4.0, 2.0])
    with pytest.raises(ValueError, match="1 regressed value"):
        combined_forecast(np.array([1.0]), baselines, long)


def test_an_hourly_streams_next_window_is_averaged_with_its_last_value_instead_of_the_ar1():
    baselines = pd.DataFrame(
        {"last": [8.0, 8.0], "rolling_mean": [0.0, 0.0], "ewma": [6.0, 6.0], "interest": [9.0, 9.0], "ar1": [2.0, 2.0]}
    )
    regressed, interval_h = np.array([4.0, 4.0]), np.array([1.0, 8.0])
    np.testing.assert_array_equal(horizon_combination(regressed, baselines, "next", interval_h), [6.0, 3.0])
    # longer horizons do not depend on the interval: (4 + 0 + 6 + 2) / 4
    np.testing.assert_array_equal(horizon_combination(regressed, baselines, "1d", interval_h), [3.0, 3.0])
    # at 3 and 7 days the interest constant joins them: (4 + 0 + 6 + 2 + 9) / 5
    for horizon in ("3d", "7d"):
        np.testing.assert_array_equal(horizon_combination(regressed, baselines, horizon, interval_h), [4.2, 4.2])


def regressed_and_baselines(model, week, horizon):
    """`baseline_y` of the rows and the regressor's forecast from its anchor, before any combination or snap."""
    inputs = [*model.feature_columns, *EXTRA_FEATURES]
    baselines = baseline_y(week, horizon, model.ar1)
    part = model.horizons[horizon]
    return baselines, baselines[part.anchor].to_numpy() + part.regressor.predict(_pool(week, inputs))


def test_the_next_window_averages_with_the_ar1_and_the_long_horizons_with_their_baselines():
    model, frame = model_and_frame()
    assert model.mass_points.empty  # no snap: the forecast is the combination
    rows = with_mass_features(model, frame)
    week = rows.loc[rows["funding_time"] >= MODEL_WEEK].reset_index(drop=True)
    for horizon in model.horizons:
        baselines, regressed = regressed_and_baselines(model, week, horizon)
        names = {
            "next": ["ar1"],
            "1d": ["rolling_mean", "ewma", "ar1"],
            "3d": ["rolling_mean", "ewma", "ar1", "interest"],
            "7d": ["rolling_mean", "ewma", "ar1", "interest"],
        }[horizon]
        want = (regressed + baselines[names].sum(axis=1).to_numpy()) / (1 + len(names))
        np.testing.assert_allclose(predict_y(model, week, horizon), want, rtol=1e-12, err_msg=horizon)


class FixedProbability:
    """A stand-in mass classifier: every row has the same probability of landing on its mass point."""

    def __init__(self, probability: float):
        self.probability = probability

    def predict_proba(self, pool):
        rows = pool.num_row()
        return np.column_stack([np.full(rows, 1 - self.probability), np.full(rows, self.probability)])


def test_the_next_window_snaps_to_its_mass_point_above_0_4_and_the_long_horizons_above_0_5():
    model, frame = model_and_frame(sticky=True)
    rows = with_mass_features(model, frame)
    week = rows.loc[rows["funding_time"] >= MODEL_WEEK].reset_index(drop=True)
    mass = week["mass_8h"].to_numpy()
    has_mass = np.isfinite(mass)
    assert has_mass.any() and not has_mass.all()
    for probability, snapping in ((0.35, set()), (0.45, {"next"}), (0.55, {"next", "1d"})):
        for horizon in ("next", "1d"):
            part = model.horizons[horizon]
            fixed = dataclasses.replace(part, classifier=FixedProbability(probability))
            none = dataclasses.replace(part, classifier=None)
            y = predict_y(dataclasses.replace(model, horizons={horizon: fixed}), week, horizon)
            unsnapped = predict_y(dataclasses.replace(model, horizons={horizon: none}), week, horizon)
            want = np.where(has_mass, mass, unsnapped) if horizon in snapping else unsnapped
            np.testing.assert_array_equal(y, want, err_msg=f"{horizon} at {probability}")
