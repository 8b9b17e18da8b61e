"""The venue's own predicted rate as a baseline: the open window's quote at the row's time, never a later one."""

import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.forecast import FORECAST_COLUMNS
from fund_pipeline.domain.forecast_horizons import AR1, VENUE_QUOTE, baseline_y, forecast_frame, with_venue_quotes
from fund_pipeline.domain.forecast_metrics import scorecard, verdicts
from fund_pipeline.domain.prints import SchemaError

T0 = pd.Timestamp("2026-03-02 00:00", tz="UTC")


def feature_rows(venue: str, interval_h: float, n: int = 6) -> pd.DataFrame:
    times = T0 + pd.to_timedelta(np.arange(n) * interval_h, unit="h")
    rate = np.linspace(1e-5, 6e-5, n) * interval_h / 8
    frame = pd.DataFrame(
        {
            "venue": venue,
            "symbol": "BTC/USDT:USDT",
            "base": "BTC",
            "funding_time": times,
            "interval_h": interval_h,
            "rate": rate,
            "rate_mean_21": pd.Series(rate).expanding().mean().to_numpy(),
        }
    )
    frame["target_time"] = frame["funding_time"].shift(-1)
    frame["target_rate"] = frame["rate"].shift(-1)
    frame["target_interval_h"] = frame["interval_h"].shift(-1)
    return frame


def quote(venue: str, window_end, ts, rate: float, interval_h: float = 8.0, kind: str = "predicted") -> dict:
    return {
        "venue": venue,
        "symbol": "BTC/USDT:USDT",
        "kind": kind,
        "funding_time": pd.Timestamp(window_end),
        "ts": pd.Timestamp(ts),
        "rate": rate,
        "interval_h": interval_h,
    }


def test_the_open_windows_quote_at_the_rows_time_is_taken_and_nothing_sent_later():
    frame = forecast_frame(feature_rows("binance", 8.0))
    t1, t2, t3 = (T0 + pd.Timedelta(hours=8 * k) for k in (1, 2, 3))
    predicted = pd.DataFrame(
        [
            quote("binance", t1 + pd.Timedelta(hours=8), t1 - pd.Timedelta(minutes=5), 2.0e-4),  # older quote
            quote("binance", t1 + pd.Timedelta(hours=8), t1, 3.0e-4),  # in force at t1: the one
            quote("binance", t1 + pd.Timedelta(hours=8), t1 + pd.Timedelta(minutes=5), 9.0e-4),  # after t1
            quote("binance", t2, t2 - pd.Timedelta(hours=1), 7.0e-4),  # t2's own (settling) window at t2
            quote("binance", t3 + pd.Timedelta(hours=8), t3 + pd.Timedelta(seconds=1), 5.0e-4),  # only after t3
            quote("binance", t2 + pd.Timedelta(hours=8), t2, 4.0e-4, kind="settled"),  # not a quote
        ]
    )
    quoted = with_venue_quotes(frame, predicted).set_index("funding_time")[VENUE_QUOTE]
    assert quoted[t1] == pytest.approx(3.0e-4)
    assert np.isnan(quoted[t2]) and np.isnan(quoted[t3]) and np.isnan(quoted[T0])


def test_an_hourly_quote_is_an_8h_equivalent_and_the_baseline_falls_back_to_the_last_value():
    frame = forecast_frame(feature_rows("hyperliquid", 1.0))
    t1 = T0 + pd.Timedelta(hours=1)
    predicted = pd.DataFrame([quote("hyperliquid", t1 + pd.Timedelta(hours=1), t1, 1.25e-5, interval_h=1.0)])
    rows = with_venue_quotes(frame, predicted)
    assert rows.loc[rows["funding_time"] == t1, VENUE_QUOTE].item() == pytest.approx(1.0e-4)
    venue = baseline_y(rows, "next", AR1.fit(rows))["venue"].to_numpy()
    assert venue[1] == pytest.approx(1.0e-4)
    others = np.arange(len(rows)) != 1
    np.testing.assert_allclose(venue[others], rows["rate_8h"].to_numpy()[others])
    # Without the column at all (no predicted prints anywhere): the last value everywhere.
    np.testing.assert_allclose(baseline_y(frame, "3d", AR1.fit(frame))["venue"], frame["rate_8h"])


def test_quotes_stored_in_another_time_unit_still_join():
    frame = forecast_frame(feature_rows("binance", 8.0))
    t1 = T0 + pd.Timedelta(hours=8)
    predicted = pd.DataFrame([quote("binance", t1 + pd.Timedelta(hours=8), t1, 3.0e-4)])
    predicted[["funding_time", "ts"]] = predicted[["funding_time", "ts"]].astype("datetime64[us, UTC]")
    quoted = with_venue_quotes(frame, predicted)
    assert quoted.loc[quoted["funding_time"] == t1, VENUE_QUOTE].item() == pytest.approx(3.0e-4)


def test_predicted_prints_without_a_column_are_refused_by_name():
    frame = forecast_frame(feature_rows("binance", 8.0))
    bad = pd.DataFrame([quote("binance", T0, T0, 1e-4)]).drop(columns=["ts"])
    with pytest.raises(SchemaError, match="ts"):
        with_venue_quotes(frame, bad)


def test_the_scorecard_names_the_venue_quote_best_where_it_is():
    rng = np.random.default_rng(3)
    n = 200
    actual = rng.normal(1e-4, 5e-5, n)
    block = pd.DataFrame({c: np.nan for c in FORECAST_COLUMNS}, index=range(n))
    block["venue"], block["symbol"], block["horizon"] = "binance", "BTC/USDT:USDT", "next"
    block["y_scale"], block["actual"] = 1.0, actual
    block["pred_model"] = actual + rng.normal(0, 2e-5, n)
    for name in ("last", "rolling_mean", "ewma", "interest", "ar1"):
        block[f"pred_{name}"] = actual + rng.normal(0, 4e-5, n)
    block["pred_venue"] = actual + rng.normal(0, 1e-5, n)
    table = verdicts(scorecard(block)).set_index(["venue", "metric"])
    assert table.loc[("binance", "mae"), "best_baseline"] == "venue"
    assert table.loc[("binance", "mae"), "best_baseline_value"] == pytest.approx(
        np.abs(block["pred_venue"] - actual).mean()
    )
    assert table.loc[("binance", "mae"), "model_vs_best_pct"] > 0  # the model is the worse here, and says so
