import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fund_pipeline.domain.aggregates import (
    AFR_COLUMNS,
    CUMULATIVE_COLUMNS,
    aggregate_funding_rate,
    cumulative_funding_rate,
)
from fund_pipeline.domain.prints import SchemaError

DAY = pd.Timestamp("2024-01-02", tz="UTC")
NEXT_DAY = DAY + pd.Timedelta(days=1)


def prints_frame(rows) -> pd.DataFrame:
    """Settled prints from (venue, symbol, base, funding_time, rate, interval_h) tuples."""
    frame = pd.DataFrame(rows, columns=["venue", "symbol", "base", "funding_time", "rate", "interval_h"])
    frame["funding_time"] = pd.to_datetime(frame["funding_time"], utc=True)
    frame["kind"] = "settled"
    frame["ts"] = frame["funding_time"]
    return frame


def bars_frame(rows) -> pd.DataFrame:
    """Hourly bars from (venue, symbol, base, ts, open_interest_usd) tuples."""
    frame = pd.DataFrame(rows, columns=["venue", "symbol", "base", "ts", "open_interest_usd"])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def flat_market(venue, rate, interval_h, oi, base="BTC", symbol="BTC/USDT:USDT"):
    """A market printing `rate` every interval of the previous and current day, with constant OI bars."""
    times = pd.date_range(DAY - pd.Timedelta(days=1), NEXT_DAY, freq=f"{interval_h}h", inclusive="left")
    hours = pd.date_range(DAY, NEXT_DAY, freq="h", inclusive="left")
    return (
        [(venue, symbol, base, t, rate, float(interval_h)) for t in times],
        [(venue, symbol, base, t, oi) for t in hours],
    )


def afr_for(markets):
    prints, bars = [], []
    for p, b in markets:
        prints += p
        bars += b
    return aggregate_funding_rate(prints_frame(prints), bars_frame(bars), DAY, NEXT_DAY)


def test_afr_weights_8h_normalised_rates_by_open_interest():
    afr = afr_for([flat_market("binance", 1e-4, 8, 3e9), flat_market("hyperliquid", 2.5e-5, 1, 1e9)])
    assert list(afr.columns) == AFR_COLUMNS
    assert len(afr) == 24
    expected = (3e9 * 1e-4 + 1e9 * 2e-4) / 4e9
    np.testing.assert_allclose(afr["afr_8h"], expected)
    np.testing.assert_allclose(afr["afr_1d"], 3 * expected)
    np.testing.assert_allclose(afr["afr_30d"], 90 * expected)
    np.testing.assert_allclose(afr["afr_1y"], 1095 * expected)
    assert (afr["n_venues"] == 2).all()
    assert (afr["total_oi_usd"] == 4e9).all()
    assert (afr["n_missing_oi"] == 0).all()


def test_afr_uses_the_latest_settled_rate_as_of_the_hour():
    prints = prints_frame(
        [
            ("okx", "ETH/USDT:USDT", "ETH", DAY, 1e-4, 8.0),
            ("okx", "ETH/USDT:USDT", "ETH", DAY + pd.Timedelta(hours=8), 3e-4, 8.0),
        ]
    )
    bars = bars_frame([("okx", "ETH/USDT:USDT", "ETH", DAY + pd.Timedelta(hours=h), 1e8) for h in range(10)])
    afr = aggregate_funding_rate(prints, bars, DAY, DAY + pd.Timedelta(hours=10)).set_index("ts")
    assert afr.loc[DAY + pd.Timedelta(hours=7), "afr_8h"] == pytest.approx(1e-4)
    assert afr.loc[DAY + pd.Timedelta(hours=8), "afr_8h"] == pytest.approx(3e-4)


def test_markets_without_open_interest_are_counted_not_weighted():
    with_oi = flat_market("binance", 1e-4, 8, 1e9)
    no_oi_prints, _ = flat_market("bybit", 5e-4, 8, 0.0)
    missing_bar = (no_oi_prints, [])
    afr = afr_for([with_oi, missing_bar])
    np.testing.assert_allclose(afr["afr_8h"], 1e-4)
    assert (afr["n_missing_oi"] == 1).all()
    assert (afr["n_venues"] == 1).all()
    assert (afr["total_oi_usd"] == 1e9).all()


def test_an_hour_with_no_open_interest_anywhere_is_nan_not_an_unweighted_mean():
    prints, _ = flat_market("bybit", 5e-4, 8, 0.0)
    afr = afr_for([(prints, [])])
    assert afr["afr_8h"].isna().all()
    assert (afr["n_venues"] == 0).all()
    assert (afr["n_missing_oi"] == 1).all()


def test_stale_rates_stop_counting_and_are_reported():
    prints = prints_frame([("okx", "ETH/USDT:USDT", "ETH", DAY - pd.Timedelta(days=2), 1e-4, 8.0)])
    bars = bars_frame([("okx", "ETH/USDT:USDT", "ETH", DAY, 1e8)])
    afr = aggregate_funding_rate(prints, bars, DAY, DAY + pd.Timedelta(hours=1))
    assert afr["afr_8h"].isna().all()
    assert afr["n_missing_rate"].tolist() == [1]


def test_afr_keeps_base_assets_apart():
    afr = afr_for([flat_market("binance", 1e-4, 8, 1e9), flat_market("binance", 3e-4, 8, 1e9, "ETH", "ETH/USDT:USDT")])
    by_base = afr.groupby("base")["afr_8h"].mean()
    assert by_base["BTC"] == pytest.approx(1e-4)
    assert by_base["ETH"] == pytest.approx(3e-4)


def test_afr_rejects_bad_input_by_name():
    prints, bars = flat_market("binance", 1e-4, 8, 1e9)
    bad_bars = bars_frame(bars).assign(open_interest_usd=-1.0)
    with pytest.raises(SchemaError, match="negative open_interest_usd"):
        aggregate_funding_rate(prints_frame(prints), bad_bars, DAY, NEXT_DAY)
    with pytest.raises(SchemaError, match="share a"):
        aggregate_funding_rate(prints_frame(prints), bars_frame(bars + bars[:1]), DAY, NEXT_DAY)
    with pytest.raises(SchemaError, match="missing column"):
        aggregate_funding_rate(prints_frame(prints).drop(columns="interval_h"), bars_frame(bars), DAY, NEXT_DAY)
    with pytest.raises(ValueError, match="on the hour"):
        aggregate_funding_rate(prints_frame(prints), bars_frame(bars), DAY + pd.Timedelta(minutes=5), NEXT_DAY)
    with pytest.raises(ValueError, match="tz-aware"):
        aggregate_funding_rate(prints_frame(prints), bars_frame(bars), "2024-01-02", NEXT_DAY)


def test_afr_of_nothing_is_an_empty_frame_with_the_schema():
    afr = aggregate_funding_rate(prints_frame([]), bars_frame([]), DAY, NEXT_DAY)
    assert afr.empty and list(afr.columns) == AFR_COLUMNS
    assert str(afr["ts"].dtype) == "datetime64[ns, UTC]"


venue_quotes = st.lists(
    st.tuples(
        st.floats(-0.003, 0.003, allow_nan=False),
        st.sampled_from([1, 4, 8]),
        st.floats(1e3, 1e10, allow_nan=False),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=25, deadline=None)
@given(venue_quotes)
def test_afr_lies_between_the_venue_rates(quotes):
    markets = [flat_market(f"v{i}", rate, interval, oi) for i, (rate, interval, oi) in enumerate(quotes)]
    rates_8h = [rate * 8 / interval for rate, interval, _ in quotes]
    afr = afr_for(markets)
    slack = 1e-12 * max(abs(r) for r in rates_8h) + 1e-18
    assert (afr["afr_8h"] >= min(rates_8h) - slack).all()
    assert (afr["afr_8h"] <= max(rates_8h) + slack).all()
    assert (afr["n_venues"] == len(quotes)).all()


@settings(max_examples=25, deadline=None)
@given(venue_quotes, st.floats(1e3, 1e10, allow_nan=False))
def test_equal_open_interest_gives_the_plain_mean(quotes, oi):
    markets = [flat_market(f"v{i}", rate, interval, oi) for i, (rate, interval, _) in enumerate(quotes)]
    afr = afr_for(markets)
    expected = np.mean([rate * 8 / interval for rate, interval, _ in quotes])
    np.testing.assert_allclose(afr["afr_8h"], expected, rtol=1e-9, atol=1e-15)


def constant_prints(rate, interval_h, n, venue="binance", end=NEXT_DAY):
    times = pd.date_range(end=end - pd.Timedelta(hours=interval_h), periods=n, freq=f"{interval_h}h")
    return prints_frame([(venue, "BTC/USDT:USDT", "BTC", t, rate, float(interval_h)) for t in times])


def test_cumulative_windows_are_calendar_spans_not_counts():
    hourly = constant_prints(1e-5, 1, 24 * 8, venue="hyperliquid")
    eight_hourly = constant_prints(8e-5, 8, 3 * 8, venue="binance")
    prints = pd.concat([hourly, eight_hourly], ignore_index=True).sample(frac=1.0, random_state=0)
    cum = cumulative_funding_rate(prints, DAY, NEXT_DAY)
    assert list(cum.columns) == CUMULATIVE_COLUMNS
    last = cum.sort_values("funding_time").groupby("venue").last()
    assert last.loc["hyperliquid", "cum_1d"] == pytest.approx(1.00001**24 - 1)
    assert last.loc["binance", "cum_1d"] == pytest.approx(1.00008**3 - 1)
    assert last.loc["hyperliquid", "cum_7d"] == pytest.approx(1.00001 ** (24 * 7) - 1)
    assert last.loc["binance", "cum_7d"] == pytest.approx(1.00008**21 - 1)
    # only 8 days of history: the 30d window holds all of it
    assert last.loc["binance", "cum_30d"] == pytest.approx(1.00008**24 - 1)


def test_cumulative_reports_only_prints_in_range_but_uses_look_back():
    prints = constant_prints(1e-4, 8, 9)
    cum = cumulative_funding_rate(prints, DAY, NEXT_DAY)
    assert cum["funding_time"].between(DAY, NEXT_DAY, inclusive="left").all()
    assert len(cum) == 3
    np.testing.assert_allclose(cum["cum_1d"], 1.0001**3 - 1)


def test_cumulative_uses_the_latest_revision_of_a_window():
    prints = constant_prints(1e-4, 8, 1)
    revised = prints.assign(rate=2e-4, ts=prints["ts"] + pd.Timedelta(seconds=5))
    cum = cumulative_funding_rate(pd.concat([revised, prints], ignore_index=True), DAY, NEXT_DAY)
    assert cum["cum_1d"].tolist() == pytest.approx([2e-4])


def test_cumulative_rejects_impossible_rates():
    with pytest.raises(SchemaError, match="-100%"):
        cumulative_funding_rate(constant_prints(-1.0, 8, 1), DAY, NEXT_DAY)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([1, 4, 8]), st.integers(1, 60))
def test_cumulative_of_zeros_is_zero(interval_h, n):
    cum = cumulative_funding_rate(constant_prints(0.0, interval_h, n), DAY - pd.Timedelta(days=30), NEXT_DAY)
    assert (cum[["cum_1d", "cum_7d", "cum_30d"]] == 0.0).all().all()


@settings(max_examples=40, deadline=None)
@given(st.floats(-0.01, 0.01, allow_nan=False), st.sampled_from([1, 4, 8]), st.integers(1, 60))
def test_cumulative_of_a_constant_compounds(rate, interval_h, n):
    cum = cumulative_funding_rate(constant_prints(rate, interval_h, n), DAY - pd.Timedelta(days=30), NEXT_DAY)
    last = cum.iloc[-1]
    per_day = 24 // interval_h

    def compounded(windows):
        """(1 + rate)^windows − 1, evaluated without cancellation for tiny rates."""
        return np.expm1(windows * np.log1p(rate))

    assert last["cum_30d"] == pytest.approx(compounded(n), rel=1e-9, abs=1e-15)
    assert last["cum_1d"] == pytest.approx(compounded(min(n, per_day)), rel=1e-9, abs=1e-15)
    assert last["cum_7d"] == pytest.approx(compounded(min(n, 7 * per_day)), rel=1e-9, abs=1e-15)
