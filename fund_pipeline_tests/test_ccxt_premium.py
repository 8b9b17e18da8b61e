"""Premium-index history through ccxt's implicit API: the venues' documented example responses parsed, the
requests as the installed ccxt sends them, the documented formulas, and the interval of each sample's window."""

from __future__ import annotations

import json
from pathlib import Path

import ccxt
import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.predicted import AveragingWindow, FormulaKind, Weighting
from fund_pipeline.sources.ccxt_premium import (
    NoPremiumHistoryError,
    premium_endpoint,
    window_intervals,
)
from fund_pipeline.venues.adapter import PremiumSample
from fund_pipeline.venues.registry import adapter
from fund_pipeline.venues.wire import MalformedMessage

DOCUMENTED = json.loads((Path(__file__).parent / "fixtures" / "venues" / "premium_history.json").read_text())
PREMIUM_VENUES = ("binance", "bybit", "okx", "hyperliquid")
# ccxt's implicit API table entry of each endpoint: (api section, HTTP verb, path).
CCXT_PATHS = {
    "binance": ("fapiPublic", "get", "premiumIndexKlines"),
    "bybit": ("public", "get", "v5/market/premium-index-price-kline"),
    "okx": ("public", "get", "public/premium-history"),
    "hyperliquid": ("public", "post", "info"),
}


@pytest.mark.parametrize("venue", PREMIUM_VENUES)
def test_the_implicit_method_is_the_installed_ccxts_call_of_the_documented_endpoint(venue):
    spec = premium_endpoint(venue)
    exchange = getattr(ccxt, adapter(venue).rest.ccxt_id)()
    assert callable(getattr(exchange, spec.method))
    section, verb, path = CCXT_PATHS[venue]
    assert path in exchange.api[section][verb]
    # The method name is ccxt's camel-cased section + verb + path of that entry.
    words = [section, verb, *path.replace("-", "/").split("/")]
    assert spec.method == words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def test_binance_kline_example_is_its_close_known_at_close_time():
    (sample,) = adapter("binance").premium_rows(DOCUMENTED["binance"])
    assert sample == PremiumSample(1691603879999, -0.00043659)


def test_bybit_example_rows_are_closes_known_at_the_minutes_end_newest_first():
    samples = adapter("bybit").premium_rows(DOCUMENTED["bybit"])
    assert samples == [
        PremiumSample(1672026540000 + 59_999, -0.000262),
        PremiumSample(1672026480000 + 59_999, -0.000224),
    ]


def test_okx_example_is_known_at_its_data_generation_time():
    (sample,) = adapter("okx").premium_rows(DOCUMENTED["okx"])
    assert sample == PremiumSample(1713925924000, 0.0000578896878167)


def test_hyperliquid_record_is_the_hours_average_known_at_its_last_millisecond():
    (sample,) = adapter("hyperliquid").premium_rows(DOCUMENTED["hyperliquid"])
    # time 1683849600076 is the settlement at 2023-05-12 00:00:00.076 UTC: the hour 23:00-24:00's premium.
    assert sample == PremiumSample(1683849600000 - 1, -0.00052196)


@pytest.mark.parametrize(
    ("venue", "response", "names"),
    [
        ("binance", [[1691603820000, "-0.0004"]], "not a kline array"),
        ("binance", [[1691603820000, "x", "x", "x", "nan", "0", 1691603879999]], "not a finite number"),
        ("bybit", {"retCode": 0, "result": {"list": "none"}}, "not a list"),
        ("okx", {"code": "0", "data": [{"instId": "BTC-USDT-SWAP", "premium": "0.1"}]}, "unusable row"),
        ("hyperliquid", [{"coin": "ETH", "premium": True, "time": 1683849600076}], "unusable row"),
    ],
)
def test_a_malformed_row_names_the_endpoint_and_what_is_wrong(venue, response, names):
    with pytest.raises(MalformedMessage, match=names) as raised:
        adapter(venue).premium_rows(response)
    assert venue in str(raised.value)


def test_request_windows_cover_exactly_the_rows_known_in_the_range():
    lo, hi = 1_700_000_000_000 - 1, 1_700_000_000_000 - 1 + 10 * 60_000  # known at 10 minute closes
    binance = adapter("binance").premium_params("BTC/USDT:USDT", lo, hi, 1000)
    # Open times of the 10 minutes whose closes fall in [lo, hi), both ends inclusive.
    assert (binance["startTime"], binance["endTime"]) == (lo - 59_999, hi - 60_000)
    assert (binance["endTime"] - binance["startTime"]) // 60_000 + 1 == 10
    assert binance["symbol"] == "BTCUSDT" and binance["interval"] == "1m"
    bybit = adapter("bybit").premium_params("BTC/USDT:USDT", lo, hi, 1000)
    assert (bybit["start"], bybit["end"], bybit["category"], bybit["interval"]) == (
        lo - 59_999,
        hi - 60_000,
        "linear",
        "1",
    )
    okx = adapter("okx").premium_params("BTC/USDT:USDT", lo, hi, 100)
    assert okx == {"instId": "BTC-USDT-SWAP", "before": str(lo - 1), "after": str(hi), "limit": "100"}
    hyperliquid = adapter("hyperliquid").premium_params("BTC/USDC:USDC", lo, hi, 500)
    assert hyperliquid["type"] == "fundingHistory" and hyperliquid["coin"] == "BTC"


def test_deribit_has_no_premium_history_and_says_so():
    with pytest.raises(NoPremiumHistoryError, match="deribit publishes no premium-index history"):
        premium_endpoint("deribit")


def test_documented_formulas_per_venue():
    binance, bybit, okx_btc, okx_wif, hyperliquid = (
        adapter(v).funding_formula(s)
        for v, s in (
            ("binance", "BTC/USDT:USDT"),
            ("bybit", "BTC/USDT:USDT"),
            ("okx", "BTC/USDT:USDT"),
            ("okx", "WIF/USDT:USDT"),
            ("hyperliquid", "BTC/USDC:USDC"),
        )
    )
    assert binance.weighting is bybit.weighting is Weighting.LINEAR
    assert (binance.sample_step_s, bybit.sample_step_s) == (5.0, 60.0)
    # Since 2025-04-10 okx adds the interest and the ±0.05 % clamp, over the moving N-hour window.
    assert okx_btc.kind is FormulaKind.CLAMPED and okx_btc.window is AveragingWindow.MOVING
    assert (okx_btc.cap, okx_wif.cap, okx_btc.interest_rate_8h, okx_btc.clamp_8h) == (0.00375, 0.015, 1e-4, 5e-4)
    assert hyperliquid.cap == 0.04 and hyperliquid.clamp_scaled
    # Before 2024-03-05 08:00 UTC okx averaged over the window so far.
    before = adapter("okx").funding_formula("BTC/USDT:USDT", pd.Timestamp("2024-03-05 07:59", tz="UTC").value // 10**6)
    assert before.window is AveragingWindow.CURRENT


def test_a_samples_interval_is_its_windows():
    settled = pd.DataFrame(
        {
            "funding_time": pd.to_datetime(["2025-03-10 08:00", "2025-03-10 12:00"], utc=True),
            "interval_h": [8.0, 4.0],
        }
    )
    at = pd.to_datetime(
        ["2025-03-10 07:59:59.999", "2025-03-10 08:00:00.000", "2025-03-10 11:59:00.000", "2025-03-10 12:00:00.000"],
        utc=True,
    )
    known_ms = at.asi8 // 1_000_000
    np.testing.assert_array_equal(window_intervals(known_ms, settled, 1.0), [8.0, 4.0, 4.0, 1.0])
    # No settled print known (history shallower than the range, a new listing): the current interval.
    np.testing.assert_array_equal(window_intervals(known_ms, settled.iloc[:0], 8.0), [8.0] * 4)
