"""OKX's per-instrument open interest (`/api/v5/rubik/stat/contracts/open-interest-history`) and its premium
history's `ts`: the documented example responses parsed, the requests as the installed ccxt sends them, the
emulator's rows in OKX's format, and with `inverse` on the ccxt source's linear and coin-margined BTC swaps
each carrying their own open interest, which sum to the per-currency total ccxt's unified method reads."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path

import ccxt
import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.predicted import SAMPLE_COLUMNS, reconstruct_predicted
from fund_pipeline.sources.ccxt import CcxtSource
from fund_pipeline.sources.simulated import SimulatedMarket
from fund_pipeline.venues.adapter import OpenInterestSample
from fund_pipeline.venues.okx import (
    ADAPTER,
    CURRENCY_OI_PATH,
    OPEN_INTEREST_METHOD,
    OPEN_INTEREST_PAGE,
    OPEN_INTEREST_PATH,
    OPEN_INTEREST_ROWS_KEPT,
)
from fund_pipeline.venues.wire import MalformedMessage
from fund_pipeline_tests.emulator_thread import emulator_in_thread

FIXTURES = Path(__file__).parent / "fixtures" / "venues"
NOW = pd.Timestamp("2025-03-10 12:30", tz="UTC")
LINEAR, INVERSE = "BTC/USDT:USDT", "BTC/USD:BTC"
MS = 1_000_000


# ---------------------------------------------------------------- the adapter, from OKX's documentation


def test_documented_example_response_parses_to_its_rows_newest_first():
    documented = json.loads((FIXTURES / "open_interest_history.json").read_text())["okx"]["response"]
    rows = ADAPTER.open_interest_rows(documented)
    assert rows == [
        OpenInterestSample(1701417600000, 731377.57500501, 111.0, 8888888.0),
        OpenInterestSample(1701417500000, 731377.57500501, 111.0, 8888888.0),
    ]


@pytest.mark.parametrize(
    ("response", "names"),
    [
        ({"code": "50011", "msg": "Too Many Requests", "data": []}, "unexpected answer"),
        ({"code": "0", "data": {"ts": "1"}}, "not a list"),
        ({"code": "0", "data": [["1701417600000", "1", "2"]]}, r"is not \[ts, oi, oiCcy, oiUsd\]"),
        ({"code": "0", "data": [["1701417600000", "1", "x", "3"]]}, "unusable row"),
        ({"code": "0", "data": [["1701417600000", "1", "2", "-3"]]}, "negative or non-finite"),
        ({"code": "0", "data": [["1701417600000", "1", "2", "nan"]]}, "negative or non-finite"),
    ],
)
def test_unusable_answers_are_refused_naming_what_is_wrong(response, names):
    with pytest.raises(MalformedMessage, match=names):
        ADAPTER.open_interest_rows(response)


def test_the_request_names_the_instrument_and_hourly_rows_of_the_window():
    params = ADAPTER.open_interest_params(INVERSE, 1_000_000_000_000, 1_000_360_000_000, OPEN_INTEREST_PAGE)
    assert params == {
        "instId": "BTC-USD-SWAP",
        "period": "1H",
        "begin": "999999999999",
        "end": "1000360000000",
        "limit": "100",
    }
    assert ADAPTER.open_interest_params(LINEAR, 0, 1, 100)["instId"] == "BTC-USDT-SWAP"


def test_the_implicit_method_is_the_installed_ccxts_call_of_the_documented_endpoint():
    exchange = ccxt.okx()
    assert OPEN_INTEREST_PATH.removeprefix("/api/v5/") in exchange.api["public"]["get"]
    assert callable(getattr(exchange, OPEN_INTEREST_METHOD))
    rest = ADAPTER.rest
    assert rest is not None and rest.instrument_oi is not None
    assert rest.instrument_oi.method == OPEN_INTEREST_METHOD and rest.instrument_oi.page == 100
    depth = rest.depth(OPEN_INTEREST_METHOD)
    assert depth is not None and depth.rows == OPEN_INTEREST_ROWS_KEPT == 1440
    # "10 requests per 2 seconds" (IP + instrument), apart from open-interest-volume's 5 per 2 s.
    limits = {r.name: r for r in rest.rate_limits}
    assert (limits["open-interest-history"].limit, limits["open-interest-history"].window_s) == (10, 2.0)
    assert limits["open-interest-history"].binds(OPEN_INTEREST_PATH)
    assert not limits["open-interest-volume"].binds(OPEN_INTEREST_PATH)


# ---------------------------------------------------------------- against the emulator


@pytest.fixture(scope="module")
def emulator():
    with emulator_in_thread(bases=("BTC",), start=NOW, speed=1e-9, inverse=True) as running:
        yield running


@pytest.fixture(scope="module")
def market():
    return SimulatedMarket(bases=("BTC",), inverse=True)


def get(emulator, path: str, **params) -> dict:
    with urllib.request.urlopen(f"{emulator.base_url}/okx{path}?{urllib.parse.urlencode(params)}", timeout=10) as r:
        return json.loads(r.read())


def sim_oi(market: SimulatedMarket, symbol: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.Series:
    bars = market.bars("okx", start, end)
    return bars[bars["symbol"] == symbol].set_index("ts")["open_interest_usd"]


@pytest.mark.e2e
def test_emulator_serves_each_instruments_rows_in_okxs_format_and_limits(emulator, market):
    linear = get(emulator, OPEN_INTEREST_PATH, instId="BTC-USDT-SWAP", period="1H", limit="500")
    inverse = get(emulator, OPEN_INTEREST_PATH, instId="BTC-USD-SWAP", period="1H")
    assert linear["code"] == inverse["code"] == "0"
    assert len(linear["data"]) == len(inverse["data"]) == 100  # at most 100 rows a request
    newest = pd.Timestamp(int(linear["data"][0][0]), unit="ms", tz="UTC")
    assert newest == NOW.floor("h") - pd.Timedelta(hours=1)  # the last closed hour, newest first
    assert [int(r[0]) for r in linear["data"]] == sorted((int(r[0]) for r in linear["data"]), reverse=True)
    want_linear = sim_oi(market, LINEAR, newest - pd.Timedelta(hours=99), NOW)
    want_inverse = sim_oi(market, INVERSE, newest - pd.Timedelta(hours=99), NOW)
    for rows, want in ((linear["data"], want_linear), (inverse["data"], want_inverse)):
        assert all(len(r) == 4 and all(isinstance(v, str) for v in r) for r in rows)
        times = pd.to_datetime([int(r[0]) for r in rows], unit="ms", utc=True)
        usd = pd.Series([float(r[3]) for r in rows], index=times)
        np.testing.assert_allclose(usd, want.loc[usd.index], rtol=1e-12)
    # Contracts: 0.01 BTC each on the linear swap (oiCcy = oi x 0.01), 100 USD each on the coin-margined one.
    np.testing.assert_allclose([float(r[1]) * 0.01 for r in linear["data"]], [float(r[2]) for r in linear["data"]])
    np.testing.assert_allclose([float(r[1]) * 100 for r in inverse["data"]], [float(r[3]) for r in inverse["data"]])
    # `begin`/`end` are exclusive; only the latest 1,440 hourly rows are kept.
    at = newest - pd.Timedelta(hours=10)
    one = get(emulator, OPEN_INTEREST_PATH, instId="BTC-USD-SWAP", period="1H",
              begin=str(at.value // MS - 1), end=str(at.value // MS + 1))["data"]  # fmt: skip
    assert [int(r[0]) for r in one] == [at.value // MS]
    assert get(emulator, OPEN_INTEREST_PATH, instId="BTC-USD-SWAP", period="1H",
               begin=str(at.value // MS), end=str(at.value // MS + 1))["data"] == []  # fmt: skip
    kept = newest - pd.Timedelta(hours=OPEN_INTEREST_ROWS_KEPT - 1)
    oldest = get(emulator, OPEN_INTEREST_PATH, instId="BTC-USD-SWAP", period="1H",
                 end=str((kept + pd.Timedelta(hours=1)).value // MS))["data"]  # fmt: skip
    assert [int(r[0]) for r in oldest] == [kept.value // MS]
    with pytest.raises(urllib.error.HTTPError):
        get(emulator, OPEN_INTEREST_PATH, instId="BTC-USD-SWAP", period="1Dutc")


@pytest.mark.e2e
def test_with_inverse_each_swap_carries_its_own_open_interest_summing_to_the_currencys(emulator, market):
    source = CcxtSource(venues=("okx",), api_base_url=emulator.base_url, now=emulator.state.clock.now,
                        throttle=False, inverse=True)  # fmt: skip
    start = pd.Timestamp("2025-03-04", tz="UTC")
    end = start + pd.Timedelta(days=5)  # 120 hourly rows a swap: two requests of at most 100
    bars = source.bars("okx", start, end)
    got = {s: bars[bars["symbol"] == s].set_index("ts")["open_interest_usd"] for s in (LINEAR, INVERSE)}
    for symbol, oi in got.items():
        assert len(oi) == 120 and oi.notna().all()
        # The simulated market's own figures for that instrument, not the currency's.
        np.testing.assert_allclose(oi, sim_oi(market, symbol, start, end).loc[oi.index], rtol=1e-12)
    assert (got[LINEAR] - got[INVERSE]).abs().min() > 0
    # Their sum is what ccxt's unified fetchOpenInterestHistory (rubik open-interest-volume, per currency) reads.
    currency = source._call("okx", "fetch_open_interest_history", INVERSE, "1h", start.value // MS, 100,
                            params={"until": (start + pd.Timedelta(hours=99)).value // MS})  # fmt: skip
    total = pd.Series([r["openInterestValue"] for r in currency],
                      index=pd.to_datetime([r["timestamp"] for r in currency], unit="ms", utc=True))  # fmt: skip
    assert len(total) == 100
    np.testing.assert_allclose(total, (got[LINEAR] + got[INVERSE]).loc[total.index], rtol=1e-12)
    assert CURRENCY_OI_PATH != OPEN_INTEREST_PATH


# ---------------------------------------------------------------- premium history: `ts` is the sample's time


@pytest.mark.e2e
def test_premium_history_ts_is_the_samples_generation_time_so_the_rebuilt_path_is_the_markets(emulator, market):
    """OKX documents `ts` as the data generation time (its example, 1713925924000, is 04 s into a minute, so not
    a minute's open): the emulator stamps each simulated sample's own time (its minute's last millisecond, as the
    simulated market generates it; it stamped the minute's open before), so the ccxt source's samples are the
    market's, instant for instant, and the path rebuilt from them is the market's."""
    source = CcxtSource(venues=("okx",), symbols={"okx": [LINEAR]}, api_base_url=emulator.base_url,
                        now=emulator.state.clock.now, throttle=False)  # fmt: skip
    start, end = pd.Timestamp("2025-03-09 00:00", tz="UTC"), pd.Timestamp("2025-03-09 08:00", tz="UTC")
    served = source.premium_samples("okx", start, end)
    own = market.premium_samples("okx", start, end)
    own = own[own["symbol"] == LINEAR].reset_index(drop=True)
    assert len(served) == len(own) == 480
    pd.testing.assert_series_equal(served["ts"], own["ts"], check_names=False)
    np.testing.assert_array_equal(served["premium"], own["premium"])
    formulas = source.funding_formulas("okx", [LINEAR])
    rebuilt = reconstruct_predicted("okx", served, formulas)
    expected = reconstruct_predicted("okx", own[SAMPLE_COLUMNS].assign(interval_h=served["interval_h"]), formulas)
    assert len(rebuilt) > 90
    pd.testing.assert_frame_equal(rebuilt.reset_index(drop=True), expected.reset_index(drop=True))
