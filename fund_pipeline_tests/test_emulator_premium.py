"""The emulator's premium-index history in the venues' formats rebuilds the settled rates it serves."""

import json
import urllib.request

import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.predicted import ReconstructionConfig, funding_rate, reconstruct_predicted
from fund_pipeline_tests.emulator_thread import emulator_in_thread

pytestmark = pytest.mark.e2e  # HTTP against the emulator on loopback

NOW = pd.Timestamp("2025-03-10 12:30", tz="UTC")
MS = 1_000_000


@pytest.fixture(scope="module")
def emulator():
    with emulator_in_thread(bases=("BTC",), start=NOW, speed=1e-9) as running:
        yield running


def get(emulator, path: str, **params):
    with urllib.request.urlopen(f"{emulator.base_url}{path}?{urllib.parse.urlencode(params)}", timeout=10) as r:
        return json.loads(r.read())


def post(emulator, path: str, body: dict):
    request = urllib.request.Request(
        f"{emulator.base_url}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read())


def test_binance_premium_index_klines_rebuild_the_settled_rates(emulator):
    start = pd.Timestamp("2025-03-10 00:00", tz="UTC")
    # The first window (00:00-08:00) and 20 minutes of the next: data past its settlement.
    klines = get(
        emulator, "/binance/fapi/v1/premiumIndexKlines", symbol="BTCUSDT", interval="1m",
        startTime=start.value // MS, limit=500,
    )  # fmt: skip
    assert len(klines) == 500 and len(klines[0]) == 12
    assert klines[0][0] == start.value // MS and klines[0][6] == klines[0][0] + 59_999
    samples = pd.DataFrame(
        {
            "symbol": "BTC/USDT:USDT",
            "base": "BTC",
            "ts": pd.to_datetime([k[6] for k in klines], unit="ms", utc=True),  # known at the close
            "premium": [float(k[4]) for k in klines],
            "interval_h": 8.0,
        }
    )
    formulas = emulator.state.market.funding_formulas("binance", ["BTC/USDT:USDT"])
    rebuilt = reconstruct_predicted("binance", samples, formulas, ReconstructionConfig(300))
    settled = get(emulator, "/binance/fapi/v1/fundingRate", symbol="BTCUSDT", startTime=start.value // MS, limit=5)
    at_8 = [s for s in settled if s["fundingTime"] == (start + pd.Timedelta("8h")).value // MS]
    last = rebuilt[rebuilt["ts"] == start + pd.Timedelta("8h")]
    # The served rate is rounded to the venue's decimals: equal to them.
    assert float(at_8[0]["fundingRate"]) == pytest.approx(last["rate"].item(), abs=1e-8)
    # Nothing after now: the minute that has not closed is not served.
    late = get(emulator, "/binance/fapi/v1/premiumIndexKlines", symbol="BTCUSDT", interval="1m",
               startTime=(NOW - pd.Timedelta(minutes=3)).value // MS)  # fmt: skip
    assert max(k[0] for k in late) <= (NOW - pd.Timedelta(minutes=1)).value // MS


def test_hyperliquid_funding_history_premium_gives_its_funding_rate(emulator):
    start = pd.Timestamp("2025-03-10 00:00", tz="UTC")
    rows = post(
        emulator, "/hyperliquid/info", {"type": "fundingHistory", "coin": "BTC", "startTime": start.value // MS}
    )
    assert len(rows) >= 12
    formula = emulator.state.market.funding_formulas("hyperliquid", ["BTC/USDC:USDC"])["BTC/USDC:USDC"]
    premium = np.array([float(r["premium"]) for r in rows])
    assert np.abs(premium).max() > 0
    expected = funding_rate(premium, 1.0, formula)
    np.testing.assert_allclose([float(r["fundingRate"]) for r in rows], expected, rtol=0, atol=1e-8)


def minute_rows(rows: list, time_of, premium_of, interval_h: float, symbol: str) -> pd.DataFrame:
    """Venue rows (newest first, `time_of` the minute's open) as samples known at the minute's close."""
    opened = pd.to_datetime([int(time_of(r)) for r in rows], unit="ms", utc=True)
    return pd.DataFrame(
        {
            "symbol": symbol,
            "base": "BTC",
            "ts": opened + pd.Timedelta(minutes=1) - pd.Timedelta(milliseconds=1),
            "premium": [float(premium_of(r)) for r in rows],
            "interval_h": interval_h,
        }
    ).iloc[::-1]


@pytest.mark.parametrize("venue", ["bybit", "okx"])
def test_bybit_and_okx_premium_history_rebuild_the_settled_rate(emulator, venue):
    start = pd.Timestamp("2025-03-10 00:00", tz="UTC")
    end = start + pd.Timedelta("8h")
    symbol = "BTC/USDT:USDT"
    if venue == "bybit":
        rows = []
        for lo in pd.date_range(start, end, freq="200min"):
            page = get(
                emulator,
                "/bybit/v5/market/premium-index-price-kline",
                category="linear",
                symbol="BTCUSDT",
                interval="1",
                start=lo.value // MS,
                end=(lo + pd.Timedelta("199min")).value // MS,
                limit=200,
            )
            assert page["retCode"] == 0
            rows += page["result"]["list"][::-1]
        samples = minute_rows(rows[::-1], lambda r: r[0], lambda r: r[4], 8.0, symbol)
        settled = get(emulator, "/bybit/v5/market/funding/history", category="linear", symbol="BTCUSDT",
                      startTime=end.value // MS, endTime=end.value // MS)["result"]["list"]  # fmt: skip
        rate = float(settled[0]["fundingRate"])
    else:
        rows, after = [], (end + pd.Timedelta("20min")).value // MS
        while True:  # OKX pages backwards with `after` (older than), 100 rows a page
            page = get(emulator, "/okx/api/v5/public/premium-history", instId="BTC-USDT-SWAP", after=after)["data"]
            if not page or int(page[-1]["ts"]) < start.value // MS:
                rows += page
                break
            rows += page
            after = int(page[-1]["ts"])
        # `ts` is each sample's generation time (OKX's docs): the time it is known, taken as it is.
        assert all(int(r["ts"]) % 60_000 == 59_999 for r in rows)
        samples = minute_rows(rows, lambda r: int(r["ts"]) - 59_999, lambda r: r["premium"], 8.0, symbol)
        samples = samples[samples["ts"] >= start]
        settled = get(
            emulator,
            "/okx/api/v5/public/funding-rate-history",
            instId="BTC-USDT-SWAP",
            before=(end - pd.Timedelta("1ms")).value // MS,
            after=(end + pd.Timedelta("1ms")).value // MS,
        )
        rate = float(settled["data"][0]["fundingRate"])
    assert samples["ts"].is_monotonic_increasing and samples["ts"].duplicated().sum() == 0
    formulas = emulator.state.market.funding_formulas(venue, [symbol])
    rebuilt = reconstruct_predicted(venue, samples, formulas, ReconstructionConfig(300))
    assert rebuilt.loc[rebuilt["ts"] == end, "rate"].item() == pytest.approx(rate, abs=1e-8)


def test_okx_funding_rate_serves_the_formulas_interest_and_bounds(emulator):
    """public/funding-rate's interestRate (0.01 % per 8 h), minFundingRate and maxFundingRate (BTC's ±0.375 %) are
    the formula the simulated swap settles by, as OKX serves them since its 2025-04 formula."""
    (row,) = get(emulator, "/okx/api/v5/public/funding-rate", instId="BTC-USDT-SWAP")["data"]
    formula = emulator.state.market.funding_formulas("okx", ["BTC/USDT:USDT"])["BTC/USDT:USDT"]
    assert (row["formulaType"], row["interestRate"]) == ("withRate", "0.0001")
    assert (
        (float(row["minFundingRate"]), float(row["maxFundingRate"]))
        == (formula.lower, formula.cap)
        == (
            -0.00375,
            0.00375,
        )
    )
    # Inside the ±0.05 % band the rate settles at the interest itself: its mass point (the premium-only formula
    # before 2025-04 has none).
    settled = get(emulator, "/okx/api/v5/public/funding-rate-history", instId="BTC-USDT-SWAP", limit=50)["data"]
    assert any(r["fundingRate"] == "0.0001" for r in settled)
