"""The emulator's bybit, okx and deribit REST answers, raw: field names, string numbers, page limits,
error bodies, Retry-After and the clock cut-off."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest

from fund_pipeline.emulator.server import Faults
from fund_pipeline.sources.simulated import SimulatedMarket
from fund_pipeline_tests.emulator_thread import emulator_in_thread

pytestmark = pytest.mark.e2e  # HTTP against the emulator on loopback

BASES = ("BTC", "WIF")  # WIF settles every 4h on bybit
NOW = pd.Timestamp("2025-03-10 03:30", tz="UTC")
NOW_MS = int(NOW.value // 1_000_000)
FAR_FUTURE_MS = NOW_MS + 30 * 86_400_000
HOUR_MS = 3_600_000
CLOSED = NOW.floor("h")  # bars opening before this have closed by NOW


@pytest.fixture(scope="module")
def emulator():
    # speed 1e-9: the clock stays at NOW for the whole module.
    with emulator_in_thread(bases=BASES, start=NOW, speed=1e-9) as running:
        yield running


@pytest.fixture()
def get(emulator):
    """GET /{venue}{path} with query params: (status, headers, parsed JSON or text)."""
    emulator.state.faults = Faults(retry_after_s=0)
    emulator.state.counters.clear()

    def fetch(path: str, **params):
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{emulator.base_url}{path}?{query}", timeout=10) as response:
                status, headers, body = response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as error:
            status, headers, body = error.code, error.headers, error.read().decode()
        try:
            return status, headers, json.loads(body)
        except ValueError:
            return status, headers, body

    return fetch


def sim():
    return SimulatedMarket(bases=BASES)


def all_strings(values) -> bool:
    return all(isinstance(v, str) for v in values)


# ---------------------------------------------------------------- bybit


def test_bybit_instruments(get):
    status, _, body = get("/bybit/v5/market/instruments-info", category="linear", limit=1000)
    assert status == 200 and body["retCode"] == 0 and body["retMsg"] == "OK"
    rows = {r["symbol"]: r for r in body["result"]["list"]}
    assert set(rows) == {"BTCUSDT", "WIFUSDT"}
    assert rows["WIFUSDT"]["fundingInterval"] == 240 and rows["BTCUSDT"]["fundingInterval"] == 480
    assert rows["BTCUSDT"]["leverageFilter"]["maxLeverage"] == "100.00"
    assert rows["BTCUSDT"]["contractType"] == "LinearPerpetual" and rows["BTCUSDT"]["settleCoin"] == "USDT"
    _, _, first = get("/bybit/v5/market/instruments-info", category="linear", limit=1)
    _, _, second = get(
        "/bybit/v5/market/instruments-info", category="linear", limit=1, cursor=first["result"]["nextPageCursor"]
    )
    assert [r["symbol"] for r in first["result"]["list"] + second["result"]["list"]] == ["BTCUSDT", "WIFUSDT"]
    assert second["result"]["nextPageCursor"] == ""
    _, _, spot = get("/bybit/v5/market/instruments-info", category="spot")
    assert [r["symbol"] for r in spot["result"]["list"]] == ["BTCUSDT", "WIFUSDT"]
    assert spot["result"]["list"][0]["lotSizeFilter"]["basePrecision"] == "0.000001"
    _, _, prelaunch = get("/bybit/v5/market/instruments-info", category="linear", status="PreLaunch")
    assert prelaunch["result"]["list"] == []


def test_bybit_funding_history(get):
    status, _, body = get(
        "/bybit/v5/market/funding/history", category="linear", symbol="WIFUSDT", endTime=FAR_FUTURE_MS, limit=500
    )
    rows = body["result"]["list"]
    assert status == 200 and len(rows) == 200  # limit capped at 200
    assert all_strings(v for r in rows for v in r.values())
    times = [int(r["fundingRateTimestamp"]) for r in rows]
    assert times == sorted(times, reverse=True) and times[0] <= NOW_MS
    want = sim().funding_prints("bybit", NOW - pd.Timedelta(days=2), NOW)
    want = want[want["symbol"] == "WIF/USDT:USDT"].iloc[::-1]
    assert [float(r["fundingRate"]) for r in rows[: len(want)]] == want["rate"].tolist()
    status, _, body = get("/bybit/v5/market/funding/history", category="linear", symbol="WIFUSDT", startTime=NOW_MS)
    assert status == 400 and body["retCode"] == 10001 and "endTime" in body["retMsg"]


def test_bybit_klines_and_open_interest(get):
    start = NOW_MS - 6 * HOUR_MS
    _, _, perp = get(
        "/bybit/v5/market/kline", category="linear", symbol="BTCUSDT", interval="60", start=start, end=FAR_FUTURE_MS
    )
    rows = perp["result"]["list"]
    # From 21:30 to now (03:30): the bars opening 22:00 .. 02:00 have closed; 5 bars, newest first.
    assert [int(r[0]) for r in rows] == list(range(NOW_MS - 90 * 60_000, start, -HOUR_MS))
    assert all(len(r) == 7 and all_strings(r) for r in rows)
    bars = sim().bars("bybit", NOW - pd.Timedelta(hours=6), CLOSED)
    last = bars[bars["symbol"] == "BTC/USDT:USDT"].iloc[-1]
    assert float(rows[0][4]) == last["close"] and float(rows[0][6]) == last["volume_usd"]
    _, _, spot = get("/bybit/v5/market/kline", category="spot", symbol="BTCUSDT", interval="60", limit=1)
    assert float(spot["result"]["list"][0][4]) == last["spot_close"]
    _, _, mark = get("/bybit/v5/market/mark-price-kline", category="linear", symbol="BTCUSDT", interval="60", limit=1)
    assert len(mark["result"]["list"][0]) == 5 and float(mark["result"]["list"][0][4]) == last["mark_price"]
    _, _, kl = get("/bybit/v5/market/kline", category="linear", symbol="BTCUSDT", interval="60", limit=5000)
    assert len(kl["result"]["list"]) == 1000
    _, _, oi = get("/bybit/v5/market/open-interest", category="linear", symbol="BTCUSDT", intervalTime="1h", limit=500)
    assert len(oi["result"]["list"]) == 200 and oi["result"]["nextPageCursor"]
    assert float(oi["result"]["list"][0]["openInterest"]) == pytest.approx(last["open_interest_usd"] / last["close"])
    status, _, bad = get("/bybit/v5/market/kline", category="linear", symbol="BTCUSDT", interval="1")
    assert status == 400 and bad["retCode"] == 10001


def test_bybit_tickers(get):
    _, _, body = get("/bybit/v5/market/tickers", category="linear", symbol="WIFUSDT")
    (ticker,) = body["result"]["list"]
    day = sim().bars("bybit", NOW.floor("h") - pd.Timedelta(hours=24), NOW.floor("h"))
    day = day[day["symbol"] == "WIF/USDT:USDT"]
    assert all_strings(ticker.values())
    assert float(ticker["turnover24h"]) == pytest.approx(day["volume_usd"].sum(), rel=1e-12)
    assert float(ticker["openInterestValue"]) == day["open_interest_usd"].iloc[-1]
    assert ticker["fundingIntervalHour"] == "4" and int(ticker["nextFundingTime"]) == NOW_MS + 30 * 60_000


# ---------------------------------------------------------------- okx


def test_okx_instruments_and_current_funding(get):
    _, _, swaps = get("/okx/api/v5/public/instruments", instType="SWAP")
    assert swaps["code"] == "0"
    btc = next(r for r in swaps["data"] if r["instId"] == "BTC-USDT-SWAP")
    assert btc["instFamily"] == "BTC-USDT" and btc["settleCcy"] == "USDT" and btc["lever"] == "100"
    assert btc["ctType"] == "linear" and btc["state"] == "live"
    _, _, spot = get("/okx/api/v5/public/instruments", instType="SPOT")
    assert [r["instId"] for r in spot["data"]] == ["BTC-USDT"]  # WIF lists on okx only from 15 March
    _, _, futures = get("/okx/api/v5/public/instruments", instType="FUTURES")
    assert futures["data"] == []
    status, _, bad = get("/okx/api/v5/public/instruments", instType="BOND")
    assert status == 400 and bad["code"] == "51000" and bad["data"] == []
    _, _, rate = get("/okx/api/v5/public/funding-rate", instId="BTC-USDT-SWAP")
    (row,) = rate["data"]
    assert int(row["fundingTime"]) == int(pd.Timestamp("2025-03-10 08:00", tz="UTC").value // 1_000_000)
    assert int(row["nextFundingTime"]) - int(row["fundingTime"]) == 8 * HOUR_MS


def test_okx_funding_history_pages_by_cursors(get):
    _, _, everything = get("/okx/api/v5/public/funding-rate-history", instId="BTC-USDT-SWAP", limit=1000)
    assert 100 < len(everything["data"]) <= 400, "pages hold up to 400 rows (all 68 days here)"
    _, _, body = get("/okx/api/v5/public/funding-rate-history", instId="BTC-USDT-SWAP", limit=100)
    rows = body["data"]
    assert len(rows) == 100 and all_strings(v for r in rows for v in r.values())
    times = [int(r["fundingTime"]) for r in rows]
    assert times == sorted(times, reverse=True) and times[0] == NOW_MS - 210 * 60_000
    assert rows[0]["realizedRate"] == rows[0]["fundingRate"]
    _, _, older = get("/okx/api/v5/public/funding-rate-history", instId="BTC-USDT-SWAP", after=times[-1], limit=2)
    assert [int(r["fundingTime"]) for r in older["data"]] == [times[-1] - 8 * HOUR_MS, times[-1] - 16 * HOUR_MS]
    _, _, between = get(
        "/okx/api/v5/public/funding-rate-history", instId="BTC-USDT-SWAP", before=times[3], after=times[0]
    )
    assert [int(r["fundingTime"]) for r in between["data"]] == times[1:3]
    status, _, bad = get("/okx/api/v5/public/funding-rate-history", instId="DOGE-USDT-SWAP")
    assert status == 400 and bad["code"] == "51001"


def test_okx_candles_and_open_interest(get):
    bars = sim().bars("okx", NOW - pd.Timedelta(hours=3), CLOSED)
    last = bars[bars["symbol"] == "BTC/USDT:USDT"].iloc[-1]
    _, _, perp = get("/okx/api/v5/market/history-candles", instId="BTC-USDT-SWAP", bar="1H", limit=300)
    assert len(perp["data"]) == 100  # history candles: at most 100
    newest = perp["data"][0]
    assert len(newest) == 9 and all_strings(newest) and newest[-1] == "1"
    assert int(newest[0]) == int(last["ts"].value // 1_000_000) and float(newest[4]) == last["close"]
    assert float(newest[6]) * last["close"] == pytest.approx(last["volume_usd"], rel=1e-12)
    _, _, recent = get(
        "/okx/api/v5/market/candles", instId="BTC-USDT-SWAP", bar="1H", limit=300, after=int(newest[0]) - 1438 * HOUR_MS
    )
    assert len(recent["data"]) == 1  # /market/candles keeps only the latest 1440 bars
    _, _, spot = get("/okx/api/v5/market/history-candles", instId="BTC-USDT", bar="1H", limit=1)
    assert float(spot["data"][0][4]) == last["spot_close"]
    _, _, index = get("/okx/api/v5/market/history-index-candles", instId="BTC-USDT", bar="1H", limit=1)
    assert len(index["data"][0]) == 6 and float(index["data"][0][4]) == last["index_price"]
    _, _, mark = get("/okx/api/v5/market/history-mark-price-candles", instId="BTC-USDT-SWAP", bar="1H", limit=1)
    assert float(mark["data"][0][4]) == last["mark_price"]
    status, _, bad = get("/okx/api/v5/market/history-index-candles", instId="BTC-USDT-SWAP", bar="1H")
    assert status == 400 and bad["code"] == "51001"
    _, _, oi = get(
        "/okx/api/v5/rubik/stat/contracts/open-interest-volume",
        ccy="BTC",
        period="1H",
        begin=NOW_MS - 5 * HOUR_MS,
        end=FAR_FUTURE_MS,
    )
    assert len(oi["data"]) == 4 and all_strings(oi["data"][0])
    assert float(oi["data"][0][1]) == last["open_interest_usd"] and float(oi["data"][0][2]) == last["volume_usd"]
    _, _, live_oi = get("/okx/api/v5/public/open-interest", instType="SWAP")
    assert float(live_oi["data"][0]["oiUsd"]) == last["open_interest_usd"]
    _, _, tickers = get("/okx/api/v5/market/tickers", instType="SWAP")
    assert tickers["data"][0]["instId"] == "BTC-USDT-SWAP" and all_strings(tickers["data"][0].values())


# ---------------------------------------------------------------- deribit


def test_deribit_instruments(get):
    _, _, body = get("/deribit/api/v2/public/get_instruments", currency="any", kind="future")
    assert body["jsonrpc"] == "2.0" and body["testnet"] is False
    (btc,) = body["result"]  # deribit lists neither WIF nor anything but USDC linear perps here
    assert btc["instrument_name"] == "BTC_USDC-PERPETUAL" and btc["settlement_period"] == "perpetual"
    assert btc["max_leverage"] == 50 and isinstance(btc["tick_size"], float)
    _, _, options = get("/deribit/api/v2/public/get_instruments", currency="BTC", kind="option")
    assert options["result"] == []
    _, _, currencies = get("/deribit/api/v2/public/get_currencies")
    assert {c["currency"] for c in currencies["result"]} == {"BTC", "USDC"}


def test_deribit_funding_history_is_hourly_with_settlements_on_the_8h_grid(get):
    _, _, body = get(
        "/deribit/api/v2/public/get_funding_rate_history",
        instrument_name="BTC_USDC-PERPETUAL",
        start_timestamp=NOW_MS - 40 * 86_400_000,
        end_timestamp=FAR_FUTURE_MS,
    )
    rows = body["result"]
    assert all(isinstance(r["interest_8h"], float) and isinstance(r["interest_1h"], float) for r in rows)
    times = [r["timestamp"] for r in rows]
    first = NOW - pd.Timedelta(minutes=30) - pd.Timedelta(hours=743)  # at most 744 hourly records
    settled = sim().funding_prints("deribit", first, NOW)["funding_time"]
    missing = pd.date_range(first.ceil("8h"), NOW, freq="8h").difference(settled)  # no settlement, no record
    assert times == [int(t.value // 1_000_000) for t in pd.date_range(first, NOW, freq="h").difference(missing)]
    want = sim().funding_prints("deribit", NOW - pd.Timedelta(days=2), NOW)
    by_time = {r["timestamp"]: r["interest_8h"] for r in rows}
    assert [by_time[int(t.value // 1_000_000)] for t in want["funding_time"]] == want["rate"].tolist()
    # Off the grid: the trailing 8h mean of the documented ±0.025 % damper applied to each hour's premium
    # (not the damper of the mean premium: some of these hours differ between the two).
    bars = sim().bars("deribit", NOW - pd.Timedelta(days=30), NOW - pd.Timedelta(hours=1))
    btc = bars[bars["symbol"] == "BTC/USDC:USDC"].set_index("ts")
    premium = btc["mark_price"] / btc["index_price"] - 1

    def damper(p):
        return np.maximum(0.0, p - 0.00025) + np.minimum(0.0, p + 0.00025)

    per_hour = damper(premium).rolling(8).mean().shift(1)  # the 8 hours before each record
    of_mean = damper(premium.rolling(8).mean()).shift(1)
    hours = [t for t in per_hour.dropna().index if t.hour % 8 and int(t.value // 1_000_000) in by_time]
    assert len(hours) > 100 and any(per_hour[t] != of_mean[t] for t in hours)
    served = np.array([by_time[int(t.value // 1_000_000)] for t in hours])
    np.testing.assert_allclose(served, per_hour[hours].to_numpy(), rtol=1e-12, atol=1e-18)
    status, _, bad = get(
        "/deribit/api/v2/public/get_funding_rate_history",
        instrument_name="BTC-PERPETUAL",
        start_timestamp=0,
        end_timestamp=NOW_MS,
    )
    assert status == 400 and bad["error"]["code"] == -32602


def test_deribit_chart_data_and_book_summary(get):
    _, _, body = get(
        "/deribit/api/v2/public/get_tradingview_chart_data",
        instrument_name="BTC_USDC-PERPETUAL",
        resolution="60",
        start_timestamp=NOW_MS - 3 * HOUR_MS,
        end_timestamp=FAR_FUTURE_MS,
    )
    chart = body["result"]
    assert chart["status"] == "ok" and len(chart["ticks"]) == 2  # bars of 01:00 and 02:00 have closed
    bars = sim().bars("deribit", NOW - pd.Timedelta(hours=3), CLOSED)
    assert chart["close"] == bars["close"].tolist()[-2:]
    assert chart["cost"] == bars["volume_usd"].tolist()[-2:]
    _, _, empty = get(
        "/deribit/api/v2/public/get_tradingview_chart_data",
        instrument_name="BTC_USDC-PERPETUAL",
        resolution="60",
        start_timestamp=NOW_MS,
        end_timestamp=FAR_FUTURE_MS,
    )
    assert empty["result"]["status"] == "no_data"
    _, _, summary = get("/deribit/api/v2/public/get_book_summary_by_currency", currency="USDC", kind="future")
    (btc,) = summary["result"]
    assert btc["volume_usd"] == pytest.approx(
        sim().bars("deribit", NOW.floor("h") - pd.Timedelta(hours=24), NOW.floor("h"))["volume_usd"].sum(), rel=1e-12
    )


# ---------------------------------------------------------------- faults in each venue's style


@pytest.mark.parametrize(
    ("path", "params", "error_of"),
    [
        ("/bybit/v5/market/tickers", {"category": "linear"}, lambda b: b["retCode"] == 10006),
        ("/okx/api/v5/public/instruments", {"instType": "SWAP"}, lambda b: b["code"] == "50011"),
        ("/deribit/api/v2/public/get_currencies", {}, lambda b: b["error"]["code"] == 10028),
    ],
)
def test_rate_limit_answers_carry_retry_after(emulator, get, path, params, error_of):
    emulator.state.faults = Faults(http_429_first_n=1, retry_after_s=2)
    status, headers, body = get(path, **params)
    assert status == 429 and headers["Retry-After"] == "2" and error_of(body)
    status, _, _ = get(path, **params)
    assert status == 200


def test_bybit_ban_is_a_plain_text_403(emulator, get):
    emulator.state.faults = Faults(http_418_first_n=1, retry_after_s=0)
    status, headers, body = get("/bybit/v5/market/tickers", category="linear")
    assert status == 403 and isinstance(body, str) and headers["Retry-After"] == "0"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/bybit/v5/market/funding/history", {"category": "linear", "symbol": "BTCUSDT", "endTime": FAR_FUTURE_MS}),
        ("/okx/api/v5/public/funding-rate-history", {"instId": "BTC-USDT-SWAP", "after": FAR_FUTURE_MS}),
        ("/okx/api/v5/market/history-candles", {"instId": "BTC-USDT-SWAP", "bar": "1H", "after": FAR_FUTURE_MS}),
        ("/bybit/v5/market/kline", {"category": "linear", "symbol": "BTCUSDT", "interval": "60", "end": FAR_FUTURE_MS}),
    ],
)
def test_nothing_after_the_emulator_clock(get, path, params):
    _, _, body = get(path, **params)
    rows = body["result"]["list"] if "result" in body else body["data"]
    newest = rows[0]
    newest_ms = int(
        newest[0] if isinstance(newest, list) else newest.get("fundingRateTimestamp") or newest["fundingTime"]
    )
    assert newest_ms <= NOW_MS
    if isinstance(newest, list):  # a bar is served only once it has closed
        assert newest_ms + HOUR_MS <= NOW_MS


def test_venue_down_is_a_gateway_503(emulator, get):
    emulator.state.faults = Faults(venue_down=frozenset({"okx"}))
    status, _, body = get("/okx/api/v5/public/instruments", instType="SWAP")
    assert status == 503 and isinstance(body, str)
