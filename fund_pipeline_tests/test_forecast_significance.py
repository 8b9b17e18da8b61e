"""Bootstrap intervals of the verdicts: checked against `verdicts` itself on the drawn weeks, one draw at a time."""

import io

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fund_pipeline.defs.models.verdict_plot import verdict_intervals_png
from fund_pipeline.domain.forecast import FORECAST_COLUMNS, PREDICTORS
from fund_pipeline.domain.forecast_metrics import ALL_VENUES, mae, scorecard, smape, verdicts
from fund_pipeline.domain.forecast_significance import (
    COMPARISON_COLUMNS,
    INTERVAL_COLUMNS,
    compare_models,
    pooled_verdict,
    verdict_intervals,
    week_draws,
)
from fund_pipeline.domain.prints import SchemaError

WEEK0 = pd.Timestamp("2024-01-01 12:00", tz="UTC")


def weekly_forecasts(n_weeks: int = 6, rows_per_week: int = 5, seed: int = 3, model_noise: float = 0.5) -> pd.DataFrame:
    """Two venues, two horizons; the baselines are the actual plus noise, the model plus `model_noise` times as much."""
    rng = np.random.default_rng(seed)
    blocks = []
    for week in range(n_weeks):
        for venue in ("a", "b"):
            for horizon in ("next", "1d"):
                actual = rng.normal(1e-4, 5e-5, rows_per_week)
                frame = pd.DataFrame(
                    {
                        "week_start": WEEK0 + pd.Timedelta(weeks=week),
                        "venue": venue,
                        "symbol": "BTC/USDT:USDT",
                        "funding_time": WEEK0
                        + pd.Timedelta(weeks=week)
                        + pd.to_timedelta(8 * np.arange(rows_per_week), unit="h"),
                        "horizon": horizon,
                        "interval_h": 8.0,
                        "target_interval_h": 8.0,
                        "y_scale": 1.0,
                        "mass_8h": np.nan,
                        "actual": actual,
                    }
                )
                frame["target_time"] = frame["funding_time"] + pd.Timedelta(hours=8)
                for predictor in PREDICTORS:
                    spread = 3e-5 * (model_noise if predictor == "model" else rng.uniform(0.8, 1.5))
                    frame[f"pred_{predictor}"] = actual + rng.normal(0.0, spread, rows_per_week)
                blocks.append(frame)
    return pd.concat(blocks, ignore_index=True)[["week_start", *FORECAST_COLUMNS]]


def test_point_value_is_the_verdict_on_all_weeks():
    forecasts = weekly_forecasts()
    intervals = verdict_intervals(forecasts, n_resamples=50)
    table = verdicts(scorecard(forecasts))
    merged = intervals.merge(table, on=["venue", "horizon", "metric"], suffixes=("", "_verdict"))
    assert len(merged) == len(intervals) == 3 * 2 * 2
    np.testing.assert_allclose(merged["model_vs_best_pct"], merged["model_vs_best_pct_verdict"], rtol=1e-12)
    assert list(intervals.columns) == INTERVAL_COLUMNS


def test_each_draw_is_the_verdict_on_the_drawn_weeks():
    """An independent computation: concatenate each draw's weeks and let `verdicts` choose the best baseline."""
    forecasts = weekly_forecasts(n_weeks=5)
    n_resamples, seed = 40, 11
    weeks = np.unique(forecasts["week_start"].to_numpy())
    by_week = {week: frame for week, frame in forecasts.groupby("week_start")}
    drawn = []
    for draw in week_draws(len(weeks), n_resamples, seed):
        resampled = pd.concat([by_week[weeks[i]] for i in draw], ignore_index=True)
        table = verdicts(scorecard(resampled))
        drawn.append(table.set_index(["venue", "horizon", "metric"])["model_vs_best_pct"])
    drawn = pd.concat(drawn, axis=1)
    intervals = verdict_intervals(forecasts, n_resamples=n_resamples, seed=seed).set_index(
        ["venue", "horizon", "metric"]
    )
    for key, row in intervals.iterrows():
        values = drawn.loc[key].to_numpy()
        assert row["p5_pct"] == pytest.approx(np.percentile(values, 5), rel=1e-9)
        assert row["p95_pct"] == pytest.approx(np.percentile(values, 95), rel=1e-9)
        assert row["model_better_share"] == pytest.approx((values < 0).mean())


def test_a_model_better_in_every_week_is_better_in_every_draw():
    intervals = verdict_intervals(weekly_forecasts(model_noise=0.01), n_resamples=200)
    assert (intervals["model_better_share"] == 1.0).all()
    assert (intervals["p95_pct"] < -50).all()


def test_a_model_equal_to_a_baseline_never_beats_the_best():
    forecasts = weekly_forecasts()
    forecasts["pred_model"] = forecasts["pred_ewma"]
    intervals = verdict_intervals(forecasts, n_resamples=100)
    assert (intervals["p5_pct"] >= -1e-9).all()
    assert (intervals["model_better_share"] == 0.0).all()


def test_deterministic_for_a_seed():
    forecasts = weekly_forecasts()
    pd.testing.assert_frame_equal(verdict_intervals(forecasts, 100, seed=5), verdict_intervals(forecasts, 100, seed=5))


def test_a_group_absent_from_some_weeks_counts_its_own_weeks():
    forecasts = weekly_forecasts(n_weeks=6)
    forecasts = forecasts.loc[
        ~((forecasts["venue"] == "b") & (forecasts["week_start"] > WEEK0 + pd.Timedelta(weeks=2)))
    ]
    intervals = verdict_intervals(forecasts, n_resamples=50).set_index(["venue", "horizon", "metric"])
    assert intervals.loc[("b", "next", "mae"), "weeks"] == 3
    assert intervals.loc[(ALL_VENUES, "next", "mae"), "weeks"] == 6


def test_bad_input_is_refused_by_name():
    forecasts = weekly_forecasts()
    with pytest.raises(SchemaError, match="week_start"):
        verdict_intervals(forecasts.drop(columns=["week_start"]))
    one_week = forecasts.loc[forecasts["week_start"] == WEEK0]
    with pytest.raises(ValueError, match="at least 2 weeks"):
        verdict_intervals(one_week)
    broken = forecasts.copy()
    broken.loc[3, "pred_ar1"] = np.nan
    with pytest.raises(SchemaError, match="pred_ar1"):
        verdict_intervals(broken)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_weeks=st.integers(2, 8))
def test_the_interval_is_ordered_and_the_share_a_probability(seed, n_weeks):
    intervals = verdict_intervals(weekly_forecasts(n_weeks=n_weeks, rows_per_week=3, seed=seed), 60, seed=seed)
    assert (intervals["p5_pct"] <= intervals["p95_pct"]).all()
    assert intervals["model_better_share"].between(0.0, 1.0).all()


def test_the_verdict_plot_has_a_row_per_venue_and_horizon():
    intervals = verdict_intervals(weekly_forecasts(), n_resamples=50)
    one_venue = intervals.loc[intervals["venue"] == ALL_VENUES]
    tall = matplotlib.image.imread(io.BytesIO(verdict_intervals_png(intervals, -10.0)))
    short = matplotlib.image.imread(io.BytesIO(verdict_intervals_png(one_venue)))
    assert tall.shape[0] > short.shape[0] > 0
    with pytest.raises(SchemaError, match="p95_pct"):
        verdict_intervals_png(intervals.drop(columns=["p95_pct"]))
    with pytest.raises(ValueError, match="no intervals"):
        verdict_intervals_png(intervals.iloc[0:0])


def test_a_run_compared_with_itself_differs_by_nothing_and_an_exact_one_by_everything():
    forecasts = weekly_forecasts()
    same = compare_models(forecasts, forecasts, n_resamples=50)
    assert list(same.columns) == COMPARISON_COLUMNS
    assert (same[["difference_pct", "p5_pct", "p95_pct", "second_better_share"]] == 0).all().all()
    exact = forecasts.assign(pred_model=forecasts["actual"])
    table = compare_models(forecasts, exact, n_resamples=50)
    np.testing.assert_allclose(table["difference_pct"], -100.0)
    assert (table["second_better_share"] == 1.0).all()


def test_each_draw_of_a_comparison_is_the_two_models_errors_on_the_drawn_weeks():
    first = weekly_forecasts(n_weeks=5, seed=1)
    second = first.assign(pred_model=first["pred_model"] + np.random.default_rng(2).normal(0, 2e-5, len(first)))
    n_resamples, seed = 30, 4
    weeks = np.unique(first["week_start"].to_numpy())
    table = compare_models(first, second, n_resamples, seed).set_index(["venue", "horizon", "metric"])
    score = {"mae": mae, "smape": smape}
    for (venue, horizon, metric), row in table.iterrows():

        def cell(frame, venue=venue, horizon=horizon):
            return frame.loc[(frame["horizon"] == horizon) & ((frame["venue"] == venue) | (venue == ALL_VENUES))]

        a, b = cell(first), cell(second)
        drawn = []
        for draw in week_draws(len(weeks), n_resamples, seed):
            picked_a = pd.concat([a.loc[a["week_start"] == weeks[i]] for i in draw])
            picked_b = pd.concat([b.loc[b["week_start"] == weeks[i]] for i in draw])
            e_a = score[metric](picked_a["actual"], picked_a["pred_model"])
            e_b = score[metric](picked_b["actual"], picked_b["pred_model"])
            drawn.append(100.0 * (e_b - e_a) / e_a)
        assert row["p5_pct"] == pytest.approx(np.percentile(drawn, 5), rel=1e-9)
        assert row["p95_pct"] == pytest.approx(np.percentile(drawn, 95), rel=1e-9)
        assert row["second_better_share"] == pytest.approx(np.mean(np.array(drawn) < 0))
        whole = 100.0 * (score[metric](b["actual"], b["pred_model"]) / score[metric](a["actual"], a["pred_model"]) - 1)
        assert row["difference_pct"] == pytest.approx(whole, rel=1e-9)


def test_runs_that_do_not_score_the_same_forecasts_are_refused():
    forecasts = weekly_forecasts()
    other = forecasts.assign(actual=forecasts["actual"] * 1.01)
    with pytest.raises(SchemaError, match="different actual"):
        compare_models(forecasts, other)
    moved = forecasts.assign(funding_time=forecasts["funding_time"] + pd.Timedelta(minutes=1))
    with pytest.raises(ValueError, match="share no forecast"):
        compare_models(forecasts, moved)
    with pytest.raises(SchemaError, match="second forecasts repeat"):
        compare_models(forecasts, pd.concat([forecasts, forecasts.head(1)]))


def test_the_comparison_tool_reads_two_runs_and_prints_the_all_venue_cells(tmp_path):
    from bench.forecast_compare import comparison_table

    first = weekly_forecasts()
    second = first.assign(pred_model=first["actual"])
    first.to_parquet(tmp_path / "first.parquet")
    second.to_parquet(tmp_path / "second.parquet")
    lines = comparison_table(tmp_path / "first.parquet", tmp_path / "second.parquet", n_resamples=20).splitlines()
    assert len(lines) == 1 + 2 * 2  # a header, then two horizons × two metrics
    assert all(line.split()[0] == ALL_VENUES and "-100.00 %" in line for line in lines[1:])


def test_the_pooled_verdict_weighs_each_cell_against_its_own_best_baseline():
    forecasts = weekly_forecasts()
    pooled = pooled_verdict(forecasts, "smape", n_resamples=50)
    # independently: per (venue, horizon) the baseline with the lowest SMAPE, its terms pooled with the others'
    table = scorecard(forecasts)
    cells = table.loc[table["venue"] != ALL_VENUES]
    best = cells.loc[cells["predictor"] != "model"].groupby(["venue", "horizon"])["smape"].min()
    n = cells.loc[cells["predictor"] == "model"].set_index(["venue", "horizon"])["n"]
    model = cells.loc[cells["predictor"] == "model"].set_index(["venue", "horizon"])["smape"]
    want_best = float((best * n).sum() / n.sum())
    assert pooled["best_baselines"] == pytest.approx(want_best, rel=1e-12)
    assert pooled["model"] == pytest.approx(float((model * n).sum() / n.sum()), rel=1e-12)
    assert pooled["model_vs_best_pct"] == pytest.approx(100 * (pooled["model"] / want_best - 1), rel=1e-12)
    assert pooled["p5_pct"] <= pooled["p95_pct"]
    exact = pooled_verdict(forecasts.assign(pred_model=forecasts["actual"]), "mae", n_resamples=20)
    assert exact["model_vs_best_pct"] == pytest.approx(-100.0)
    with pytest.raises(ValueError, match="metric"):
        pooled_verdict(forecasts, "rmse")


def test_the_scorecard_clears_its_intervals_when_one_week_of_forecasts_is_left(tmp_path):
    import dagster as dg

    from fund_pipeline.defs.models.assets import forecast_scorecard
    from fund_pipeline.resources import Warehouse

    warehouse = Warehouse(database=str(tmp_path / "w.duckdb"))
    forecasts = weekly_forecasts(n_weeks=3)
    instance = dg.DagsterInstance.ephemeral()
    for weeks, stored in ((3, 3 * 2 * 2), (1, 0)):  # (two venues and all) × two horizons × two metrics
        kept = forecasts.loc[forecasts["week_start"] < WEEK0 + pd.Timedelta(weeks=weeks)]
        warehouse.replace("funding_forecasts", kept, {})
        result = dg.materialize([forecast_scorecard], resources={"warehouse": warehouse}, instance=instance)
        assert result.success
        assert len(warehouse.read("forecast_verdict_intervals")) == stored
        assert len(warehouse.read("forecast_scorecard")) > 0
