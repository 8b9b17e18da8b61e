"""Tests of the feature store: hand-checked values, no look-ahead, warm-up, targets, symbol clusters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fund_pipeline.domain.factors import ANN_BUCKETS, RATE_BUCKETS
from fund_pipeline.domain.features import (
    FEATURE_COLUMNS,
    FEATURE_WARMUP,
    FUNDING_FEATURES,
    INTRA_WINDOW_FEATURES,
    KEY_COLUMNS,
    MARKET_FEATURES,
    OUTPUT_COLUMNS,
    SYMBOL_FEATURES,
    TARGET_COLUMNS,
    build_feature_store,
    cluster_symbols,
    feature_warmup_report,
    symbol_features,
)
from fund_pipeline.domain.features.market import decayed_sum, rolling_sum_and_count
from fund_pipeline.domain.prints import BAR_COLUMNS, PRINT_COLUMNS, SchemaError
from fund_pipeline_tests.test_factors import curves_from_rates

T0 = pd.Timestamp("2024-03-01", tz="UTC")
DAY = pd.Timedelta("1D")
STREAMS = [
    ("a", "BTC/USDT:USDT", "BTC", 8),
    ("b", "BTC/USDT:USDT", "BTC", 1),
    ("a", "ETH/USDT:USDT", "ETH", 4),
]


def synthetic_market(streams=STREAMS, days: int = 10, seed: int = 0, bars_for=("a", "b")):
    """Small random-walk funding and hourly bars: curves, settled prints and bars from T0."""
    rng = np.random.default_rng(seed)
    curves, prints, bars = [], [], []
    for venue, symbol, base, interval_h in streams:
        n = int(days * 24 / interval_h)
        rates = 1e-4 * interval_h / 8 + np.cumsum(rng.normal(0, 2e-6, n)) + rng.normal(0, 1e-6, n)
        snapshots = curves_from_rates(venue, symbol, interval_h, rates, T0)
        curves.append(snapshots)
        prints.append(
            pd.DataFrame(
                {
                    "venue": venue,
                    "symbol": symbol,
                    "base": base,
                    "kind": "settled",
                    "funding_time": snapshots["funding_time"],
                    "ts": snapshots["funding_time"],
                    "received_at": pd.NaT,
                    "rate": rates,
                    "interval_h": float(interval_h),
                    "mark_price": 100.0,
                    "index_price": 100.0,
                    "source": "sim",
                }
            )
        )
        if venue in bars_for:
            hours = days * 24
            close = 100 * np.exp(np.cumsum(rng.normal(0, 0.005, hours)))
            spot = close * (1 - rng.normal(0, 1e-3, hours))
            bars.append(
                pd.DataFrame(
                    {
                        "venue": venue,
                        "symbol": symbol,
                        "base": base,
                        "ts": pd.date_range(T0, periods=hours, freq="h"),
                        "open": close,
                        "high": close * (1 + rng.uniform(0, 0.004, hours)),
                        "low": close * (1 - rng.uniform(0, 0.004, hours)),
                        "close": close,
                        "volume_usd": rng.uniform(1e6, 2e6, hours),
                        "spot_open": spot,
                        "spot_high": spot,
                        "spot_low": spot,
                        "spot_close": spot,
                        "spot_volume_usd": 1e6,
                        "mark_price": close,
                        "index_price": spot,
                        "open_interest_usd": 1e8 * np.exp(np.cumsum(rng.normal(0, 0.01, hours))),
                    }
                )
            )
    bar_frame = pd.concat(bars, ignore_index=True)[BAR_COLUMNS] if bars else pd.DataFrame(columns=BAR_COLUMNS)
    return pd.concat(curves, ignore_index=True), pd.concat(prints, ignore_index=True)[PRINT_COLUMNS], bar_frame


@pytest.fixture(scope="module")
def market():
    return synthetic_market()


def test_columns_and_one_row_per_window_in_range(market):
    curves, prints, bars = market
    start, end = T0 + 8 * DAY, T0 + 9 * DAY
    out = build_feature_store(curves, prints, bars, start, end)
    assert list(out.columns) == OUTPUT_COLUMNS
    assert OUTPUT_COLUMNS == KEY_COLUMNS + FEATURE_COLUMNS + INTRA_WINDOW_FEATURES + ["has_bars"] + TARGET_COLUMNS
    assert out[INTRA_WINDOW_FEATURES].isna().all().all(), "no predicted prints passed: no intra-window path"
    assert out["funding_time"].between(start, end, inclusive="left").all()
    assert out.groupby(["venue", "symbol"]).size().to_dict() == {
        ("a", "BTC/USDT:USDT"): 3,
        ("a", "ETH/USDT:USDT"): 6,
        ("b", "BTC/USDT:USDT"): 24,
    }
    assert str(out["funding_time"].dtype) == "datetime64[ns, UTC]"
    assert str(out["target_time"].dtype) == "datetime64[ns, UTC]"


def test_intra_window_features_by_hand_from_quotes_sent_by_the_settlement(market):
    """The settling window's quotes: first 1e-4 at T-8h, 2e-4 at T-4h, 3e-4 at T-1h, 4e-4 at T-30min;
    a quote stamped after T (5e-4) must not be seen, and other windows' quotes do not mix in."""
    curves, prints, bars = market
    start, end = T0 + 8 * DAY, T0 + 9 * DAY
    settle = T0 + 8 * DAY + pd.Timedelta(hours=16)  # a settlement of the 8h stream ("a", BTC)
    sent = [settle - pd.Timedelta(h) for h in ("8h", "4h", "1h", "30min")] + [settle + pd.Timedelta("1min")]
    quotes = pd.DataFrame(
        {
            "venue": "a", "symbol": "BTC/USDT:USDT", "kind": "predicted", "funding_time": settle,
            "ts": sent, "rate": [1e-4, 2e-4, 3e-4, 4e-4, 5e-4],
        }
    )  # fmt: skip
    next_window = quotes.iloc[:1].assign(
        funding_time=settle + pd.Timedelta("8h"), ts=settle - pd.Timedelta("1h"), rate=9e-4
    )
    out = build_feature_store(curves, prints, bars, start, end, pd.concat([quotes, next_window], ignore_index=True))
    row = out[(out["venue"] == "a") & (out["symbol"] == "BTC/USDT:USDT") & (out["funding_time"] == settle)].iloc[0]
    assert row["predicted_drift"] == pytest.approx(4e-4 - 1e-4)
    assert row["predicted_4h_before"] == pytest.approx(2e-4)
    assert row["predicted_1h_before"] == pytest.approx(3e-4)
    others = out[~((out["venue"] == "a") & (out["symbol"] == "BTC/USDT:USDT") & (out["funding_time"] == settle))]
    assert others[INTRA_WINDOW_FEATURES].isna().all().all()
    report = feature_warmup_report(out)
    assert report["complete"] and not report["columns"]["predicted_drift"]["required"]


def test_funding_features_by_hand(market):
    curves, prints, bars = market
    out = build_feature_store(curves, prints, bars, T0 + 8 * DAY, T0 + 9 * DAY)
    row = out[(out["venue"] == "a") & (out["symbol"] == "ETH/USDT:USDT")].iloc[2]
    stream = prints[(prints["venue"] == "a") & (prints["symbol"] == "ETH/USDT:USDT")].reset_index(drop=True)
    i = stream.index[stream["funding_time"] == row["funding_time"]][0]
    assert row["rate"] == stream["rate"][i]
    assert row["rate_8h"] == pytest.approx(stream["rate"][i] * 2)
    assert row["rate_mean_21"] == pytest.approx(stream["rate"][i - 20 : i + 1].mean())
    assert row["target_time"] == stream["funding_time"][i + 1]
    assert row["target_rate"] == stream["rate"][i + 1]
    assert row["target_interval_h"] == 4.0
    assert row["hour_of_day"] == row["funding_time"].hour
    btc_a = prints[(prints["symbol"] == "BTC/USDT:USDT") & (prints["venue"] == "a")]
    btc_b = prints[(prints["symbol"] == "BTC/USDT:USDT") & (prints["venue"] == "b")]
    at = row["funding_time"]
    latest_a = btc_a[btc_a["funding_time"] <= at]["rate"].iloc[-1]
    latest_b = btc_b[btc_b["funding_time"] <= at]["rate"].iloc[-1] * 8
    btc_row = out[(out["venue"] == "b") & (out["funding_time"] == at)].iloc[0]
    assert btc_row["dispersion_8h"] == pytest.approx(np.std([latest_a, latest_b], ddof=1))
    assert btc_row["dispersion_n_venues"] == 2
    assert np.isnan(row["dispersion_8h"]) and row["dispersion_n_venues"] == 1


def test_market_features_by_hand_use_bars_closed_by_funding_time(market):
    curves, prints, bars = market
    out = build_feature_store(curves, prints, bars, T0 + 8 * DAY, T0 + 9 * DAY)
    row = out[(out["venue"] == "a") & (out["symbol"] == "BTC/USDT:USDT")].iloc[1]
    stream = bars[(bars["venue"] == "a") & (bars["symbol"] == "BTC/USDT:USDT")].set_index("ts")
    last_open = row["funding_time"] - pd.Timedelta("1h")
    close = stream["close"]
    assert row["ret_1h"] == pytest.approx(close[last_open] / close[last_open - pd.Timedelta("1h")] - 1)
    assert row["ret_24h"] == pytest.approx(close[last_open] / close[last_open - pd.Timedelta("24h")] - 1)
    assert row["basis"] == pytest.approx(close[last_open] / stream["spot_close"][last_open] - 1)
    oi = stream["open_interest_usd"]
    assert row["oi_change_24h"] == pytest.approx(oi[last_open] / oi[last_open - pd.Timedelta("24h")] - 1)
    log_returns = np.log(close / close.shift(1))[last_open - pd.Timedelta("23h") : last_open]
    assert row["realised_vol_24h"] == pytest.approx(np.sqrt((log_returns**2).sum()))
    assert 0 <= row["rsi_14"] <= 100 and 0 <= row["mfi_14"] <= 100
    assert row["ema_ratio_12_48"] == pytest.approx(1.0, abs=0.1)
    assert row["has_bars"]


def test_mfi_is_100_when_typical_price_only_rises():
    curves, prints, bars = synthetic_market(streams=[STREAMS[0]], days=3, bars_for=("a",))
    rising = np.linspace(100, 110, len(bars))
    bars = bars.assign(high=rising, low=rising, close=rising)
    out = build_feature_store(curves, prints, bars, T0 + 2 * DAY, T0 + 3 * DAY)
    assert (out["mfi_14"] == 100.0).all()
    assert (out["rsi_14"] == 100.0).all()
    assert (out["ret_1h"] > 0).all()


def test_targets_come_only_from_prints_the_caller_passed(market):
    curves, prints, bars = market
    start, end = T0 + 8 * DAY, T0 + 9 * DAY
    with_future = build_feature_store(curves, prints, bars, start, end)
    last = with_future.groupby(["venue", "symbol"]).tail(1)
    assert (last["target_time"] >= end).all() and last["target_rate"].notna().all()
    without_future = build_feature_store(curves, prints[prints["funding_time"] < end], bars, start, end)
    last = without_future.groupby(["venue", "symbol"]).tail(1)
    assert last["target_time"].isna().all() and last["target_rate"].isna().all()
    earlier = without_future.drop(last.index)
    assert (earlier["target_time"] > earlier["funding_time"]).all()


@settings(max_examples=15, deadline=None)
@given(cut_hours=st.integers(0, 5 * 24 - 1), seed=st.integers(0, 2**16), drop=st.booleans())
def test_no_feature_changes_when_inputs_after_its_funding_time_change(cut_hours, seed, drop):
    """Perturb (or drop) every input row with time > T: no row at or before T may change."""
    curves, prints, bars = synthetic_market(days=5, seed=1)
    cut = T0 + pd.Timedelta(hours=cut_hours)
    start, end = T0, T0 + 5 * DAY
    rng = np.random.default_rng(seed)
    later_curves = curves["funding_time"] > cut
    later_prints = prints["funding_time"] > cut
    later_bars = bars["ts"] + pd.Timedelta("1h") > cut
    if drop:
        changed = curves[~later_curves], prints[~later_prints], bars[~later_bars]
    else:
        curve_values = [*RATE_BUCKETS, *ANN_BUCKETS, "level", "slope", "curvature"]
        bar_values = ["high", "low", "close", "volume_usd", "spot_close", "open_interest_usd"]
        changed_curves, changed_prints, changed_bars = curves.copy(), prints.copy(), bars.copy()
        changed_curves.loc[later_curves, curve_values] *= rng.uniform(-3, 3, (later_curves.sum(), len(curve_values)))
        changed_curves.loc[later_curves, "interpolated_mask"] = rng.integers(0, 256, later_curves.sum())
        changed_prints.loc[later_prints, "rate"] *= rng.uniform(-3, 3, later_prints.sum())
        changed_bars.loc[later_bars, bar_values] *= rng.uniform(0.5, 2, (later_bars.sum(), len(bar_values)))
        changed = changed_curves, changed_prints, changed_bars
    before = build_feature_store(curves, prints, bars, start, end)
    after = build_feature_store(*changed, start, end)
    columns = KEY_COLUMNS + FEATURE_COLUMNS
    known = before["funding_time"] <= cut
    pd.testing.assert_frame_equal(
        before.loc[known, columns].reset_index(drop=True),
        after.loc[after["funding_time"] <= cut, columns].reset_index(drop=True),
    )


def test_features_do_not_depend_on_history_beyond_the_warmup():
    curves, prints, bars = synthetic_market(days=12, seed=2)
    start, end = T0 + 10 * DAY, T0 + 12 * DAY
    full = build_feature_store(curves, prints, bars, start, end)
    since = start - FEATURE_WARMUP
    trimmed = build_feature_store(
        curves[curves["funding_time"] >= since],
        prints[prints["funding_time"] >= since],
        bars[bars["ts"] >= since],
        start,
        end,
    )
    exact = [c for c in FUNDING_FEATURES if c not in ("pc1", "pc2")]
    pd.testing.assert_frame_equal(full[KEY_COLUMNS + exact], trimmed[KEY_COLUMNS + exact])
    # PCA refits chain their signs and EMAs have infinite memory: equal up to that residue.
    ema_based = ["rsi_14", "ema_ratio_12_48"]
    np.testing.assert_allclose(full[ema_based], trimmed[ema_based], rtol=1e-3)
    others = [c for c in MARKET_FEATURES if c not in ema_based]
    pd.testing.assert_frame_equal(full[others], trimmed[others])
    np.testing.assert_allclose(np.abs(full[["pc1", "pc2"]]), np.abs(trimmed[["pc1", "pc2"]]), rtol=1e-9)
    report = feature_warmup_report(trimmed)
    assert report["complete"], report["failed"]


def test_warmup_report_names_the_incomplete_columns():
    curves, prints, bars = synthetic_market(days=4, seed=3)
    out = build_feature_store(curves, prints, bars, T0 + DAY, T0 + 4 * DAY)
    report = feature_warmup_report(out)
    assert not report["complete"]
    assert {"rate_mean_21", "time_since_shock_h", "pc1", "ret_24h"} <= set(report["failed"])
    assert "rate" not in report["failed"] and "decay_7_6" not in report["failed"]
    assert report["columns"]["rate_mean_21"]["nan_share"] > 0
    assert report["columns"]["decay_7_6"]["required"] is False


def test_streams_without_bars_get_nan_market_features_and_pass_the_report():
    curves, prints, bars = synthetic_market(days=10, seed=4, bars_for=("a",))
    out = build_feature_store(curves, prints, bars, T0 + 8 * DAY, T0 + 10 * DAY)
    no_bars = out["venue"] == "b"
    assert out.loc[no_bars, MARKET_FEATURES].isna().all().all() and not out.loc[no_bars, "has_bars"].any()
    assert out.loc[~no_bars, MARKET_FEATURES].notna().all().all()
    assert feature_warmup_report(out)["complete"]
    nothing = build_feature_store(curves, prints, None, T0 + 8 * DAY, T0 + 10 * DAY)
    assert nothing[MARKET_FEATURES].isna().all().all()
    assert feature_warmup_report(nothing)["complete"]


def test_bad_input_raises_clear_errors(market):
    curves, prints, bars = market
    start, end = T0 + 8 * DAY, T0 + 9 * DAY
    with pytest.raises(SchemaError, match="slope"):
        build_feature_store(curves.drop(columns="slope"), prints, bars, start, end)
    with pytest.raises(ValueError, match="tz-aware"):
        build_feature_store(curves, prints, bars, "2024-03-09", end)
    with pytest.raises(ValueError, match="before end"):
        build_feature_store(curves, prints, bars, end, start)
    with pytest.raises(SchemaError, match="on the hour"):
        build_feature_store(curves, prints, bars.assign(ts=bars["ts"] + pd.Timedelta("30min")), start, end)
    with pytest.raises(SchemaError, match="no base asset"):
        build_feature_store(curves, prints[prints["venue"] != "b"], bars[bars["venue"] != "b"], start, end)


def feature_rows(venue: str, rates_8h, slopes) -> pd.DataFrame:
    times = pd.date_range(T0, periods=len(rates_8h), freq="8h")
    return pd.DataFrame(
        {
            "venue": venue,
            "symbol": "X/USDT:USDT",
            "base": "X",
            "funding_time": times,
            "rate_8h": rates_8h,
            "slope": slopes,
        }
    )


def test_symbol_features_by_hand():
    rates = [1e-4, 2e-4, 1e-4, 3e-4, 1e-4, 5e-4]
    features = pd.concat([feature_rows("a", rates, np.arange(6.0)), feature_rows("b", [1e-4] * 6, [0.0] * 6)])
    out = symbol_features(features, T0 + 2 * DAY, lookback=2 * DAY).set_index("venue")
    assert list(out.reset_index().columns) == ["venue", "symbol", "base", *SYMBOL_FEATURES]
    assert out.loc["a", "rate_8h_mean"] == pytest.approx(np.mean(rates))
    assert out.loc["a", "rate_8h_std"] == pytest.approx(np.std(rates, ddof=1))
    assert out.loc["a", "rate_8h_autocorr_1"] == pytest.approx(np.corrcoef(rates[1:], rates[:-1])[0, 1])
    assert out.loc["a", "slope_mean"] == pytest.approx(2.5)
    assert out.loc["a", "interest_mass_share"] == pytest.approx(0.5)
    assert out.loc["b", "interest_mass_share"] == 1.0
    assert np.isnan(out.loc["b", "rate_8h_autocorr_1"])
    window = symbol_features(features, T0 + DAY, lookback=pd.Timedelta("16h")).set_index("venue")
    assert window.loc["a", "rate_8h_mean"] == pytest.approx(np.mean(rates[1:3]))


def clustered_symbols(n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    centre = np.where(np.arange(n)[:, None] % 2 == 0, 1.0, -1.0)
    values = centre + rng.normal(0, 0.05, (n, len(SYMBOL_FEATURES)))
    frame = pd.DataFrame(values, columns=SYMBOL_FEATURES)
    frame.insert(0, "venue", [f"v{i:02d}" for i in range(n)])
    frame.insert(1, "symbol", "X/USDT:USDT")
    frame.insert(2, "base", "X")
    return frame


def test_cluster_symbols_separates_groups_deterministically_whatever_the_row_order():
    sym = clustered_symbols()
    out = cluster_symbols(sym, n_clusters=2, seed=7)
    assert list(out.columns) == ["venue", "symbol", "base", "cluster", "x", "y"]
    assert list(out["cluster"]) == [0, 1] * 6
    shuffled = cluster_symbols(sym.sample(frac=1.0, random_state=3), n_clusters=2, seed=7)
    pd.testing.assert_frame_equal(out, shuffled)
    assert np.isfinite(out[["x", "y"]].to_numpy()).all()


def test_cluster_symbols_tolerates_an_undefined_feature_and_rejects_too_few_symbols():
    sym = clustered_symbols(4)
    sym.loc[0, "rate_8h_autocorr_1"] = np.nan
    assert cluster_symbols(sym, n_clusters=2, seed=0)["cluster"].notna().all()
    with pytest.raises(ValueError, match="4 symbol"):
        cluster_symbols(sym, n_clusters=5, seed=0)


def test_a_bar_sent_twice_counts_its_last_row_and_a_resent_print_its_latest_event(market):
    curves, prints, bars = market
    start, end = T0 + 8 * DAY, T0 + 9 * DAY
    later_bars = bars.assign(close=bars["close"] * 1.01, high=bars["high"] * 1.01, low=bars["low"] * 1.01)
    twice = build_feature_store(curves, prints, pd.concat([bars, later_bars], ignore_index=True), start, end)
    pd.testing.assert_frame_equal(twice, build_feature_store(curves, prints, later_bars, start, end))
    resent = prints.assign(rate=prints["rate"] * 2, ts=prints["ts"] + pd.Timedelta("1s"))
    shuffled = pd.concat([resent, prints], ignore_index=True)
    out = build_feature_store(curves, shuffled, bars, start, end)
    pd.testing.assert_frame_equal(out, build_feature_store(curves, resent, bars, start, end))


def test_rows_and_inputs_in_any_order_give_the_same_store(market):
    curves, prints, bars = market
    start, end = T0 + 8 * DAY, T0 + 9 * DAY
    expected = build_feature_store(curves, prints, bars, start, end)
    shuffled = [frame.sample(frac=1.0, random_state=seed) for seed, frame in enumerate((curves, prints, bars))]
    pd.testing.assert_frame_equal(build_feature_store(*shuffled, start, end), expected)


def _as_keys(column: pd.Series, encoding: str, order_seed: int) -> pd.Series:
    """The same text keys as object strings, a categorical (shuffled categories, one unused) or a pyarrow dictionary."""
    if encoding == "text":
        return column.astype(object)
    labels = [*column.dropna().unique(), "unused-key"]
    labels = list(np.random.default_rng(order_seed).permutation(np.array(labels, dtype=object)))
    categorical = pd.Series(pd.Categorical(column, categories=labels), index=column.index)
    if encoding == "category":
        return categorical
    return categorical.astype(pd.ArrowDtype(pa.dictionary(pa.int32(), pa.string())))


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(
    encodings=st.lists(st.sampled_from(["text", "category", "dictionary"]), min_size=3, max_size=3),
    order_seed=st.integers(0, 2**16),
)
def test_categorical_and_dictionary_keys_give_the_same_store_as_text(encodings, order_seed):
    """Key columns held as categoricals (any category order, unused ones) or pyarrow dictionaries change nothing."""
    curves, prints, bars = synthetic_market(
        streams=[*STREAMS, ("c", "SOL/USDT:USDT", "SOL", 8)], days=9, seed=order_seed % 7, bars_for=("a", "c")
    )
    start, end = T0 + 7 * DAY, T0 + 8 * DAY
    expected = build_feature_store(curves, prints, bars, start, end)
    recoded = []
    for frame, encoding in zip((curves, prints, bars), encodings, strict=True):
        keys = [name for name in ("venue", "symbol", "base") if name in frame.columns]
        recoded.append(
            frame.assign(**{name: _as_keys(frame[name], encoding, order_seed + i) for i, name in enumerate(keys)})
        )
    pd.testing.assert_frame_equal(build_feature_store(*recoded, start, end), expected, check_exact=True)


@given(
    seed=st.integers(0, 2**16),
    gap_share=st.floats(0.0, 0.6),
    n_rows=st.one_of(st.integers(1, 30), st.integers(31, 200)),
)
@example(seed=0, gap_share=0.0, n_rows=3)
@settings(max_examples=25, deadline=None)
def test_grid_ewm_and_window_sums_match_pandas_with_gaps(seed, gap_share, n_rows):
    """The whole-grid EMA and rolling sums equal pandas' per-column ewm/rolling (NaN gaps, min_periods) to rounding."""
    rng = np.random.default_rng(seed)
    values = rng.lognormal(0, 1, (n_rows, 4))
    values[rng.random(values.shape) < gap_share] = np.nan
    observed = ~np.isnan(values)
    with np.errstate(invalid="ignore"):
        ewm = decayed_sum(np.where(observed, values, 0.0), 2 / 13) / decayed_sum(observed.astype("float64"), 2 / 13)
    ewm[np.cumsum(observed, axis=0) < 12] = np.nan
    np.testing.assert_allclose(ewm, pd.DataFrame(values).ewm(span=12, min_periods=12).mean().to_numpy(), rtol=1e-12)
    for window, min_periods in ((14, 14), (24, 20), (1, 1)):
        window_sum, window_count = rolling_sum_and_count(values, window, min_periods)
        expected = pd.DataFrame(values).rolling(window, min_periods=min_periods)
        np.testing.assert_allclose(window_sum, expected.sum().to_numpy(), rtol=1e-12)
        observed = pd.DataFrame(~np.isnan(values), dtype="float64").rolling(window, min_periods=1).sum()
        np.testing.assert_array_equal(window_count, observed.to_numpy())
