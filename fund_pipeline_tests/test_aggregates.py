import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fund_pipeline.domain.aggregates import (
    AFR_COLUMNS,
    ALL_VENUES,
    CUMULATIVE_COLUMNS,
    aggregate_funding_rate,
    cumulative_funding_rate,
)
from fund_pipeline.domain.contracts import ALL_MARGIN, COIN_MARGIN, USD_MARGIN, margin_type, open_interest_usd
from fund_pipeline.domain.prints import SchemaError

DAY = pd.Timestamp("2024-01-02", tz="UTC")
NEXT_DAY = DAY + pd.Timedelta(days=1)
BAR_COLUMNS = ["venue", "symbol", "base", "ts", "close", "volume_usd", "open_interest_usd"]


def prints_frame(rows) -> pd.DataFrame:
    """Settled prints from (venue, symbol, base, funding_time, rate, interval_h) tuples."""
    frame = pd.DataFrame(rows, columns=["venue", "symbol", "base", "funding_time", "rate", "interval_h"])
    frame["funding_time"] = pd.to_datetime(frame["funding_time"], utc=True)
    frame["kind"] = "settled"
    frame["ts"] = frame["funding_time"]
    return frame


def bars_frame(rows) -> pd.DataFrame:
    """Hourly bars from dicts (at least the BAR_COLUMNS)."""
    frame = pd.DataFrame(rows, columns=BAR_COLUMNS) if not rows else pd.DataFrame(rows)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def flat_market(venue, rate, interval_h, oi, base="BTC", symbol="BTC/USDT:USDT", volume=1e6, close=100.0, **extra):
    """A market printing `rate` every interval of the previous and current day, with constant bars on both days."""
    times = pd.date_range(DAY - pd.Timedelta(days=1), NEXT_DAY, freq=f"{interval_h}h", inclusive="left")
    hours = pd.date_range(DAY - pd.Timedelta(days=1), NEXT_DAY, freq="h", inclusive="left")
    bar = {"venue": venue, "symbol": symbol, "base": base, "close": close, "volume_usd": volume}
    return (
        [(venue, symbol, base, t, rate, float(interval_h)) for t in times],
        [{**bar, "ts": t, "open_interest_usd": oi, **extra} for t in hours],
    )


def frames(markets):
    prints, bars = [], []
    for p, b in markets:
        prints += p
        bars += b
    return prints_frame(prints), bars_frame(bars)


def afr_for(markets):
    return aggregate_funding_rate(*frames(markets), DAY, NEXT_DAY)


def pick(table, venue=ALL_VENUES, margin=ALL_MARGIN, weighting="oi", base="BTC"):
    """Rows of one group, by hour."""
    rows = table.loc[(table["venue"] == venue) & (table["margin"] == margin) & (table["base"] == base)]
    if "weighting" in table.columns:
        rows = rows.loc[rows["weighting"] == weighting]
    return rows.sort_values("ts").reset_index(drop=True)


def test_margin_type_follows_the_settlement_currency():
    assert margin_type("BTC/USD:BTC") == COIN_MARGIN
    assert margin_type("ETH/USD:ETH") == COIN_MARGIN
    assert margin_type("BTC/USDT:USDT") == USD_MARGIN
    assert margin_type("BTC/USDC:USDC") == USD_MARGIN
    with pytest.raises(SchemaError, match="BTCUSDT"):
        margin_type("BTCUSDT")


def test_open_interest_in_usd_from_each_unit_a_venue_states():
    bars = pd.DataFrame(
        {
            "symbol": ["BTC/USDT:USDT", "BTC/USD:BTC", "BTC/USDT:USDT", "BTC/USD:BTC", "ETH/USD:ETH"],
            "close": [50_000.0, 50_000.0, 50_000.0, 50_000.0, 2_000.0],
            "open_interest_usd": [7e8, np.nan, np.nan, np.nan, np.nan],
            "open_interest_contracts": [np.nan, 30_000.0, 2_000.0, np.nan, np.nan],
            "contract_size": [np.nan, 100.0, 0.01, np.nan, np.nan],
            "open_interest_base": [np.nan, np.nan, np.nan, 40.0, 500.0],
        }
    )
    # stated USD; 30,000 inverse contracts of 100 USD; 2,000 linear contracts of 0.01 BTC at 50,000;
    # 40 BTC at 50,000 (Binance COIN-M states coins); 500 ETH at 2,000
    assert open_interest_usd(bars).tolist() == [7e8, 3e6, 1e6, 2e6, 1e6]
    with pytest.raises(SchemaError, match="contract_size"):
        open_interest_usd(bars.assign(contract_size=0.0))
    with pytest.raises(SchemaError, match="negative open_interest_contracts"):
        open_interest_usd(bars.assign(open_interest_contracts=-1.0))


def hand_market():
    """Four BTC markets, two USD- and two coin-margined, OI stated in three units (worked below)."""
    return [
        flat_market("binance", 1e-4, 8, 3e9, volume=1e8),
        flat_market("hyperliquid", 2.5e-5, 1, 1e9, symbol="BTC/USDC:USDC", volume=5e7),
        flat_market(
            "binance",
            -1e-4,
            8,
            np.nan,
            symbol="BTC/USD:BTC",
            volume=2e7,
            open_interest_contracts=5e6,
            contract_size=100.0,
        ),
        flat_market("okx", 3e-4, 8, np.nan, symbol="BTC/USD:BTC", volume=3e7, close=5e4, open_interest_base=1e4),
    ]


def test_afr_by_margin_type_and_venue_against_hand_computation():
    afr = afr_for(hand_market())
    assert list(afr.columns) == AFR_COLUMNS
    # OI in USD: 3e9, 1e9, 5e6 contracts × 100 = 5e8, 1e4 BTC × 5e4 = 5e8; hyperliquid's 2.5e-5 per hour = 2e-4 per 8h
    expected = {
        (ALL_VENUES, USD_MARGIN): (3e9 * 1e-4 + 1e9 * 2e-4) / 4e9,  # 1.25e-4
        (ALL_VENUES, COIN_MARGIN): (5e8 * -1e-4 + 5e8 * 3e-4) / 1e9,  # 1e-4
        (ALL_VENUES, ALL_MARGIN): (3e5 + 2e5 - 5e4 + 1.5e5) / 5e9,  # 1.2e-4
        ("binance", ALL_MARGIN): (3e9 * 1e-4 - 5e8 * 1e-4) / 3.5e9,  # 7.142857e-5
        ("binance", COIN_MARGIN): -1e-4,
        ("binance", USD_MARGIN): 1e-4,
        ("okx", ALL_MARGIN): 3e-4,
        ("hyperliquid", USD_MARGIN): 2e-4,
    }
    for (venue, margin), rate_8h in expected.items():
        rows = pick(afr, venue, margin)
        assert len(rows) == 24, (venue, margin)
        np.testing.assert_allclose(rows["afr_8h"], rate_8h, rtol=1e-12)
        np.testing.assert_allclose(rows["afr_1d"], 3 * rate_8h, rtol=1e-12)
        np.testing.assert_allclose(rows["afr_30d"], 90 * rate_8h, rtol=1e-12)
        np.testing.assert_allclose(rows["afr_1y"], 1095 * rate_8h, rtol=1e-12)
    everything = pick(afr)
    assert (everything["total_weight_usd"] == 5e9).all()
    assert (everything["n_venues"] == 3).all() and (everything["n_markets"] == 4).all()
    assert pick(afr, "okx", USD_MARGIN).empty  # okx lists no USD-margined BTC here


def test_volume_weighted_afr_uses_the_24_bars_before_the_hour():
    afr = afr_for(hand_market())
    # 24h volumes: 24 × 1e8, 24 × 5e7, 24 × 2e7, 24 × 3e7
    usd = (2.4e9 * 1e-4 + 1.2e9 * 2e-4) / 3.6e9  # 1.3333e-4
    coin = (4.8e8 * -1e-4 + 7.2e8 * 3e-4) / 1.2e9  # 1.4e-4
    both = (2.4e5 + 2.4e5 - 4.8e4 + 2.16e5) / 4.8e9  # 1.35e-4
    np.testing.assert_allclose(pick(afr, margin=USD_MARGIN, weighting="volume")["afr_8h"], usd, rtol=1e-12)
    np.testing.assert_allclose(pick(afr, margin=COIN_MARGIN, weighting="volume")["afr_8h"], coin, rtol=1e-12)
    np.testing.assert_allclose(pick(afr, weighting="volume")["afr_8h"], both, rtol=1e-12)
    assert (pick(afr, weighting="volume")["total_weight_usd"] == 4.8e9).all()


def test_a_missing_bar_removes_the_volume_weight_of_the_next_24_hours_only():
    prints, bars = flat_market("binance", 1e-4, 8, 1e9)
    gap = DAY - pd.Timedelta(hours=3)
    afr = (
        aggregate_funding_rate(prints_frame(prints), bars_frame([b for b in bars if b["ts"] != gap]), DAY, NEXT_DAY)
        .set_index(["weighting", "venue", "margin", "ts"])
        .sort_index()
    )
    volume = afr.loc[("volume", ALL_VENUES, ALL_MARGIN)]
    without = volume.index < gap + pd.Timedelta(hours=25)
    assert volume.loc[without, "afr_8h"].isna().all() and (volume.loc[without, "n_missing_weight"] == 1).all()
    np.testing.assert_allclose(volume.loc[~without, "afr_8h"], 1e-4)
    np.testing.assert_allclose(afr.loc[("oi", ALL_VENUES, ALL_MARGIN), "afr_8h"], 1e-4)


def test_afr_uses_the_latest_settled_rate_as_of_the_hour():
    prints = prints_frame(
        [
            ("okx", "ETH/USDT:USDT", "ETH", DAY, 1e-4, 8.0),
            ("okx", "ETH/USDT:USDT", "ETH", DAY + pd.Timedelta(hours=8), 3e-4, 8.0),
        ]
    )
    bar = {"venue": "okx", "symbol": "ETH/USDT:USDT", "base": "ETH", "close": 1.0, "volume_usd": 1.0}
    bars = bars_frame([{**bar, "ts": DAY + pd.Timedelta(hours=h), "open_interest_usd": 1e8} for h in range(10)])
    afr = pick(aggregate_funding_rate(prints, bars, DAY, DAY + pd.Timedelta(hours=10)), base="ETH").set_index("ts")
    assert afr.loc[DAY + pd.Timedelta(hours=7), "afr_8h"] == pytest.approx(1e-4)
    assert afr.loc[DAY + pd.Timedelta(hours=8), "afr_8h"] == pytest.approx(3e-4)


def test_markets_without_open_interest_are_counted_not_weighted():
    with_oi = flat_market("binance", 1e-4, 8, 1e9)
    no_oi_prints, _ = flat_market("bybit", 5e-4, 8, 0.0)
    afr = pick(afr_for([with_oi, (no_oi_prints, [])]))
    np.testing.assert_allclose(afr["afr_8h"], 1e-4)
    assert (afr["n_missing_weight"] == 1).all()
    assert (afr["n_venues"] == 1).all()
    assert (afr["total_weight_usd"] == 1e9).all()


def test_an_hour_with_no_open_interest_anywhere_is_nan_not_an_unweighted_mean():
    prints, _ = flat_market("bybit", 5e-4, 8, 0.0)
    afr = pick(afr_for([(prints, [])]))
    assert len(afr) == 24 and afr["afr_8h"].isna().all()
    assert (afr["n_venues"] == 0).all()
    assert (afr["n_missing_weight"] == 1).all()


def test_stale_rates_stop_counting_and_are_reported():
    prints = prints_frame([("okx", "ETH/USDT:USDT", "ETH", DAY - pd.Timedelta(days=2), 1e-4, 8.0)])
    bar = {"venue": "okx", "symbol": "ETH/USDT:USDT", "base": "ETH", "close": 1.0, "volume_usd": 1.0}
    bars = bars_frame([{**bar, "ts": DAY, "open_interest_usd": 1e8}])
    afr = pick(aggregate_funding_rate(prints, bars, DAY, DAY + pd.Timedelta(hours=1)), base="ETH")
    assert afr["afr_8h"].isna().all()
    assert afr["n_missing_rate"].tolist() == [1]


def test_afr_keeps_base_assets_apart():
    afr = afr_for([flat_market("binance", 1e-4, 8, 1e9), flat_market("binance", 3e-4, 8, 1e9, "ETH", "ETH/USDT:USDT")])
    assert pick(afr, base="BTC")["afr_8h"].mean() == pytest.approx(1e-4)
    assert pick(afr, base="ETH")["afr_8h"].mean() == pytest.approx(3e-4)


def test_afr_rejects_bad_input_by_name():
    prints, bars = flat_market("binance", 1e-4, 8, 1e9)
    p, b = prints_frame(prints), bars_frame(bars)
    with pytest.raises(SchemaError, match="negative open_interest_usd"):
        aggregate_funding_rate(p, b.assign(open_interest_usd=-1.0), DAY, NEXT_DAY)
    with pytest.raises(SchemaError, match="negative volume_usd"):
        aggregate_funding_rate(p, b.assign(volume_usd=-1.0), DAY, NEXT_DAY)
    with pytest.raises(SchemaError, match="share a"):
        aggregate_funding_rate(p, bars_frame(bars + bars[:1]), DAY, NEXT_DAY)
    with pytest.raises(SchemaError, match="missing column"):
        aggregate_funding_rate(p.drop(columns="interval_h"), b, DAY, NEXT_DAY)
    with pytest.raises(SchemaError, match="missing column"):
        aggregate_funding_rate(p, b.drop(columns="volume_usd"), DAY, NEXT_DAY)
    with pytest.raises(SchemaError, match="unified perp symbol"):
        aggregate_funding_rate(p, b.assign(symbol="BTCUSDT"), DAY, NEXT_DAY)
    with pytest.raises(ValueError, match="on the hour"):
        aggregate_funding_rate(p, b, DAY + pd.Timedelta(minutes=5), NEXT_DAY)
    with pytest.raises(ValueError, match="tz-aware"):
        aggregate_funding_rate(p, b, "2024-01-02", NEXT_DAY)


def test_afr_of_nothing_is_an_empty_frame_with_the_schema():
    afr = aggregate_funding_rate(prints_frame([]), bars_frame([]), DAY, NEXT_DAY)
    assert afr.empty and list(afr.columns) == AFR_COLUMNS
    assert str(afr["ts"].dtype) == "datetime64[ns, UTC]"


venue_quotes = st.lists(
    st.tuples(
        st.floats(-0.003, 0.003, allow_nan=False),
        st.sampled_from([1, 4, 8]),
        st.floats(1e3, 1e10, allow_nan=False),
        st.sampled_from(["BTC/USDT:USDT", "BTC/USD:BTC"]),
    ),
    min_size=1,
    max_size=6,
)


def quoted_markets(quotes):
    return [
        flat_market(f"v{i}", rate, interval, oi, symbol=symbol, volume=oi / 10)
        for i, (rate, interval, oi, symbol) in enumerate(quotes)
    ]


@settings(max_examples=25, deadline=None)
@given(venue_quotes)
def test_afr_lies_between_the_venue_rates(quotes):
    afr = afr_for(quoted_markets(quotes))
    rates_8h = [rate * 8 / interval for rate, interval, _, _ in quotes]
    slack = 1e-12 * max(abs(r) for r in rates_8h) + 1e-18
    for weighting in ("oi", "volume"):
        everything = pick(afr, weighting=weighting)
        assert (everything["afr_8h"] >= min(rates_8h) - slack).all()
        assert (everything["afr_8h"] <= max(rates_8h) + slack).all()
        assert (everything["n_venues"] == len(quotes)).all()


@settings(max_examples=25, deadline=None)
@given(venue_quotes)
def test_each_venue_alone_is_its_own_rate_and_the_weights_add_up(quotes):
    afr = afr_for(quoted_markets(quotes))
    for i, (rate, interval, oi, symbol) in enumerate(quotes):
        own = pick(afr, f"v{i}", margin_type(symbol))
        np.testing.assert_allclose(own["afr_8h"], rate * 8 / interval, rtol=1e-12, atol=1e-18)
        assert (own["total_weight_usd"] == oi).all()
    per_venue = afr.loc[(afr["venue"] != ALL_VENUES) & (afr["margin"] == ALL_MARGIN) & (afr["weighting"] == "oi")]
    summed = per_venue.groupby("ts")["total_weight_usd"].sum()
    np.testing.assert_allclose(summed.to_numpy(), pick(afr)["total_weight_usd"].to_numpy(), rtol=1e-12)
    # all_margin is the weight-blend of the two margin types
    split = afr.loc[(afr["venue"] == ALL_VENUES) & (afr["margin"] != ALL_MARGIN) & (afr["weighting"] == "oi")]
    blended = (split["afr_8h"] * split["total_weight_usd"]).groupby(split["ts"]).sum() / split.groupby("ts")[
        "total_weight_usd"
    ].sum()
    np.testing.assert_allclose(blended.to_numpy(), pick(afr)["afr_8h"].to_numpy(), rtol=1e-9, atol=1e-18)


@settings(max_examples=25, deadline=None)
@given(venue_quotes, st.floats(1e3, 1e10, allow_nan=False))
def test_equal_open_interest_gives_the_plain_mean(quotes, oi):
    markets = [flat_market(f"v{i}", rate, interval, oi) for i, (rate, interval, _, _) in enumerate(quotes)]
    expected = np.mean([rate * 8 / interval for rate, interval, _, _ in quotes])
    np.testing.assert_allclose(pick(afr_for(markets))["afr_8h"], expected, rtol=1e-9, atol=1e-15)


def constant_prints(rate, interval_h, n, venue="binance", end=NEXT_DAY, symbol="BTC/USDT:USDT"):
    times = pd.date_range(end=end - pd.Timedelta(hours=interval_h), periods=n, freq=f"{interval_h}h")
    return prints_frame([(venue, symbol, "BTC", t, rate, float(interval_h)) for t in times])


def constant_bars(venue, oi, start=DAY, end=NEXT_DAY, symbol="BTC/USDT:USDT"):
    hours = pd.date_range(start, end, freq="h", inclusive="left")
    bar = {"venue": venue, "symbol": symbol, "base": "BTC", "close": 1.0, "volume_usd": 1.0, "open_interest_usd": oi}
    return bars_frame([{**bar, "ts": t} for t in hours])


def cumulative_for(prints, bars, start=DAY, end=NEXT_DAY):
    return cumulative_funding_rate(prints, bars, start, end)


def test_cumulative_windows_are_calendar_spans_not_counts():
    hourly = constant_prints(1e-5, 1, 24 * 8, venue="hyperliquid")
    eight_hourly = constant_prints(8e-5, 8, 3 * 8, venue="binance")
    prints = pd.concat([hourly, eight_hourly], ignore_index=True).sample(frac=1.0, random_state=0)
    bars = pd.concat([constant_bars("hyperliquid", 1e9), constant_bars("binance", 3e9)], ignore_index=True)
    cum = cumulative_for(prints, bars)
    assert list(cum.columns) == CUMULATIVE_COLUMNS
    hl, bn = pick(cum, "hyperliquid").iloc[-1], pick(cum, "binance").iloc[-1]
    assert hl["cum_1d"] == pytest.approx(1.00001**24 - 1)
    assert bn["cum_1d"] == pytest.approx(1.00008**3 - 1)
    assert hl["cum_7d"] == pytest.approx(1.00001 ** (24 * 7) - 1)
    assert bn["cum_7d"] == pytest.approx(1.00008**21 - 1)
    # only 8 days of history: the 30d window holds all of it
    assert bn["cum_30d"] == pytest.approx(1.00008**24 - 1)
    # across venues: the OI-weighted mean of the two markets' compounded funding
    both = pick(cum).iloc[-1]
    assert both["cum_1d"] == pytest.approx((1e9 * (1.00001**24 - 1) + 3e9 * (1.00008**3 - 1)) / 4e9)
    assert both["total_weight_usd"] == 4e9 and both["n_venues"] == 2


def test_cumulative_at_an_hour_between_settlements_holds_the_prints_of_the_last_day():
    prints = constant_prints(1e-4, 8, 9)  # settlements at 00/08/16 of the three days before NEXT_DAY
    prints.loc[prints["funding_time"] == DAY + pd.Timedelta(hours=8), "rate"] = 3e-4
    cum = pick(cumulative_for(prints, constant_bars("binance", 1e9)), "binance").set_index("ts")
    assert cum.index.min() == DAY and cum.index.max() == NEXT_DAY - pd.Timedelta(hours=1)
    # at 07:00 the last day holds 08:00 and 16:00 of the day before and 00:00: all 1e-4
    assert cum.loc[DAY + pd.Timedelta(hours=7), "cum_1d"] == pytest.approx(1.0001**3 - 1)
    # from 08:00 the day holds the 3e-4 print and has dropped the previous day's 08:00
    assert cum.loc[DAY + pd.Timedelta(hours=8), "cum_1d"] == pytest.approx(1.0001**2 * 1.0003 - 1)
    assert cum.loc[DAY + pd.Timedelta(hours=8), "cum_7d"] == pytest.approx(1.0001**7 * 1.0003 - 1)


def test_cumulative_uses_the_latest_revision_of_a_window():
    prints = constant_prints(1e-4, 8, 1)
    revised = prints.assign(rate=2e-4, ts=prints["ts"] + pd.Timedelta(seconds=5))
    cum = cumulative_for(pd.concat([revised, prints], ignore_index=True), constant_bars("binance", 1e9))
    last = pick(cum, "binance").iloc[-1]
    assert last["cum_1d"] == pytest.approx(2e-4)


def test_cumulative_splits_by_margin_type():
    usd = constant_prints(1e-4, 8, 3)
    coin = constant_prints(-2e-4, 8, 3, symbol="BTC/USD:BTC")
    bars = pd.concat([constant_bars("binance", 1e9), constant_bars("binance", 1e9, symbol="BTC/USD:BTC")])
    cum = cumulative_for(pd.concat([usd, coin], ignore_index=True), bars.reset_index(drop=True))
    assert pick(cum, margin=USD_MARGIN).iloc[-1]["cum_1d"] == pytest.approx(1.0001**3 - 1)
    assert pick(cum, margin=COIN_MARGIN).iloc[-1]["cum_1d"] == pytest.approx(0.9998**3 - 1)
    assert pick(cum).iloc[-1]["cum_1d"] == pytest.approx((1.0001**3 + 0.9998**3) / 2 - 1)


def test_cumulative_rejects_impossible_rates():
    with pytest.raises(SchemaError, match="-100%"):
        cumulative_for(constant_prints(-1.0, 8, 1), bars_frame([]))


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([1, 4, 8]), st.integers(1, 60))
def test_cumulative_of_zeros_is_zero(interval_h, n):
    cum = cumulative_for(constant_prints(0.0, interval_h, n), constant_bars("binance", 1e9))
    assert (pick(cum)[["cum_1d", "cum_7d", "cum_30d"]].dropna() == 0.0).all().all()


@settings(max_examples=40, deadline=None)
@given(st.floats(-0.01, 0.01, allow_nan=False), st.sampled_from([1, 4, 8]), st.integers(1, 60))
def test_cumulative_of_a_constant_compounds(rate, interval_h, n):
    start = NEXT_DAY - pd.Timedelta(hours=1)
    cum = cumulative_for(constant_prints(rate, interval_h, n), constant_bars("binance", 1e9, start), start)
    last = pick(cum).iloc[-1]
    per_day = 24 // interval_h

    def compounded(windows):
        """(1 + rate)^windows − 1, evaluated without cancellation for tiny rates."""
        return np.expm1(windows * np.log1p(rate))

    assert last["cum_30d"] == pytest.approx(compounded(min(n, 30 * per_day)), rel=1e-9, abs=1e-15)
    assert last["cum_1d"] == pytest.approx(compounded(min(n, per_day)), rel=1e-9, abs=1e-15)
    assert last["cum_7d"] == pytest.approx(compounded(min(n, 7 * per_day)), rel=1e-9, abs=1e-15)
