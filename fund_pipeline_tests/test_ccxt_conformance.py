"""An unmodified ccxt, default options, against the emulator: every (venue, method, symbol) ccxt implements.

Only `urls['api']` is pointed at the emulator (every URL of it, scheme and host replaced). Each venue is
asked for one linear and one coin-margined perp where it lists them; each answer is checked against the
simulated market the emulator serves (the independent computation), so a wrong field fails, not only an
error. Method params are ccxt's documented ones where its default targets something else: binance's
inverse `fetchFundingRates` needs `subType=inverse` (its default is USD-M), its inverse
`fetchOpenInterestHistory` `contractType=PERPETUAL` (its default is the current quarter).
"""

from __future__ import annotations

import math
import re
from typing import Any

import ccxt
import pandas as pd
import pytest

from fund_pipeline.sources.simulated import SIM_EPOCH, SimulatedMarket
from fund_pipeline.venues.registry import adapter
from fund_pipeline_tests.emulator_thread import emulator_in_thread

pytestmark = pytest.mark.e2e  # years of funding history paged over HTTP

# ccxt computes some windows from the machine's clock (deribit's fetchFundingRate, okx's candle border),
# so the emulator's clock starts at the wall time (held there: speed 1e-9).
NOW = pd.Timestamp.now(tz="UTC").floor("h") + pd.Timedelta(minutes=30)
BASES = ("BTC", "ETH", "WIF")
# One linear and one coin-margined perp per venue. Binance's linear one settles every 4h: its fundingInfo
# lists only symbols with non-default settings, so an 8h USD-M perp has no interval there to fetch.
SYMBOLS = {
    "binance": ("WIF/USDT:USDT", "BTC/USD:BTC"),
    "bybit": ("BTC/USDT:USDT", "BTC/USD:BTC"),
    "okx": ("BTC/USDT:USDT", "BTC/USD:BTC"),
    "hyperliquid": ("BTC/USDC:USDC",),
    "deribit": ("BTC/USDC:USDC", "BTC/USD:BTC"),
}
METHODS = (
    "fetchFundingRateHistory",
    "fetchFundingRate",
    "fetchFundingRates",
    "fetchFundingInterval",
    "fetchFundingIntervals",
    "fetchOHLCV",
    "fetchOpenInterestHistory",
    "fetchTicker",
)
HOUR_MS = 3_600_000


def _params(venue: str, method: str, symbol: str) -> dict[str, Any]:
    if venue == "binance" and adapter(venue).inverse_perp(symbol) is not None:
        return {
            "fetchFundingRates": {"subType": "inverse"},
            "fetchOpenInterestHistory": {"contractType": "PERPETUAL"},
        }.get(method, {})
    return {}


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for venue, symbols in SYMBOLS.items():
        has = getattr(ccxt, venue)().has
        cases += [(venue, m, s) for m in METHODS if has.get(m) for s in symbols]
    return cases


def _point_at(urls: Any, base: str) -> Any:
    if isinstance(urls, str):
        return re.sub(r"^(https?|wss?)://[^/]+", base, urls)
    return {key: _point_at(value, base) for key, value in urls.items()}


@pytest.fixture(scope="module")
def emulator():
    with emulator_in_thread(bases=BASES, start=NOW, speed=1e-9, inverse=True) as running:
        yield running


@pytest.fixture(scope="module")
def market() -> SimulatedMarket:
    return SimulatedMarket(bases=BASES, inverse=True)


@pytest.fixture(scope="module")
def exchanges(emulator):
    made: dict[str, ccxt.Exchange] = {}

    def exchange(venue: str) -> ccxt.Exchange:
        if venue not in made:
            ex = getattr(ccxt, venue)({"timeout": 30_000})
            ex.urls["api"] = _point_at(ex.urls["api"], f"{emulator.base_url}/{venue}")
            urls = ex.urls["api"].values() if isinstance(ex.urls["api"], dict) else [ex.urls["api"]]
            assert all(u.startswith(emulator.base_url) for u in urls), urls
            ex.load_markets()
            made[venue] = ex
        return made[venue]

    return exchange


def _ms(t: pd.Timestamp) -> int:
    return int(t.value // 1_000_000)


@pytest.mark.parametrize("venue", list(SYMBOLS))
def test_load_markets_states_each_perps_terms(exchanges, venue):
    ex = exchanges(venue)
    for symbol in SYMBOLS[venue]:
        found, terms = ex.markets[symbol], adapter(venue).terms(symbol)
        # hyperliquid's market id is the asset's index; its name is the venue's coin
        assert found["swap"] and adapter(venue).native_symbol(symbol) in (found["id"], found["info"].get("name"))
        assert found["inverse"] == (terms.margin == "inverse") and found["linear"] == (terms.margin == "linear")
        assert found["settle"] == terms.settle
        if terms.margin == "inverse":
            assert found["contractSize"] == terms.contract_size


def _funding_history(ex: ccxt.Exchange, venue: str, symbol: str, since: int) -> list[dict]:
    """Every record from `since`, paged the way each venue's history pages.

    bybit: ccxt's own pagination. okx: backwards by the venue's `after` cursor (ccxt sends only `before`, with
    which okx answers its latest page). The others forward by `since`: ccxt's deterministic pagination
    assumes one record per 8h (binance, so a 4h symbol's pages leave gaps) or asks deribit for 30 days per
    744-hour step, and hyperliquid's has none.
    """
    if venue == "bybit":
        return ex.fetch_funding_rate_history(symbol, since, None, {"paginate": True, "paginationCalls": 1000})
    out: list[dict] = []
    if venue == "okx":
        params: dict[str, Any] = {}
        while page := ex.fetch_funding_rate_history(symbol, None, None, params):
            out += page
            params = {"after": min(r["timestamp"] for r in page)}
        return out
    while page := ex.fetch_funding_rate_history(symbol, since):
        out += page
        since = max(r["timestamp"] for r in page) + 1
    return out


def _check_history(ex, market, venue: str, symbol: str) -> None:
    spec = adapter(venue).rest
    assert spec is not None
    rows = _funding_history(ex, venue, symbol, _ms(SIM_EPOCH))
    got = {r["timestamp"]: r["fundingRate"] for r in rows}
    assert len(got) == len(rows)  # no page repeated a record
    assert rows and all(r["symbol"] == symbol for r in rows)
    settled = market.funding_prints(venue, SIM_EPOCH, NOW)
    settled = settled[settled["symbol"] == symbol]
    depth = spec.depth("fetch_funding_rate_history")
    if depth is not None:  # okx: only the last 3 months are served, however far back ccxt pages
        settled = settled[settled["funding_time"] >= pd.Timestamp(depth.oldest_ms(_ms(NOW)), unit="ms", tz="UTC")]
    expected = {_ms(t): r for t, r in zip(settled["funding_time"], settled["rate"], strict=True)}
    if spec.funding_record_h:  # deribit: an hourly record; those on the 8h grid are the settlements
        got = {t: r for t, r in got.items() if t in expected}
    else:
        assert min(got) >= _ms(SIM_EPOCH) and max(got) <= _ms(NOW)
    assert got.keys() == expected.keys()
    assert all(math.isclose(got[t], expected[t], rel_tol=1e-12, abs_tol=1e-15) for t in expected)
    if depth is None:
        assert (max(got) - min(got)) / (365 * 24 * HOUR_MS) > 1.8  # paged through most of two years


def _predicted(market, venue: str, symbol: str) -> float:
    rates = market.predicted_rates(venue, [symbol], pd.DatetimeIndex([NOW]))
    return float(rates["rate"].iloc[0])


def _last_bar(market, venue: str, symbol: str) -> pd.Series:
    bars = market.bars(venue, NOW.floor("h") - pd.Timedelta(hours=1), NOW.floor("h"))
    return bars[bars["symbol"] == symbol].iloc[-1]


def _interval(market, venue: str, symbol: str) -> str:
    inst = market.instruments(venue, NOW)
    return f"{int(inst.loc[inst['symbol'] == symbol, 'interval_h'].iloc[0])}h"


@pytest.mark.parametrize(("venue", "method", "symbol"), _cases())
def test_ccxt_method_against_the_emulator(exchanges, market, venue, method, symbol):
    ex = exchanges(venue)
    params = _params(venue, method, symbol)
    if method == "fetchFundingRateHistory":
        _check_history(ex, market, venue, symbol)
    elif method in ("fetchFundingRate", "fetchFundingRates"):
        rate = (
            ex.fetch_funding_rate(symbol, params)
            if method == "fetchFundingRate"
            else (ex.fetch_funding_rates([symbol], params)[symbol])
        )
        assert rate["symbol"] == symbol and math.isfinite(rate["fundingRate"])
        if venue != "deribit":  # deribit's is the funding accrued over ccxt's last 8 wall-clock hours
            assert math.isclose(rate["fundingRate"], _predicted(market, venue, symbol), rel_tol=1e-6, abs_tol=1e-12)
    elif method in ("fetchFundingInterval", "fetchFundingIntervals"):
        found = (
            ex.fetch_funding_interval(symbol)
            if method == "fetchFundingInterval"
            else (ex.fetch_funding_intervals([symbol])[symbol])
        )
        assert found["symbol"] == symbol and found["interval"] == _interval(market, venue, symbol)
    elif method == "fetchOHLCV":
        since = NOW.floor("h") - pd.Timedelta(hours=48)
        until = since + pd.Timedelta(hours=24)  # inclusive on some venues, exclusive on okx
        candles = ex.fetch_ohlcv(symbol, "1h", _ms(since), 24, {"until": _ms(until)} | params)
        bars = market.bars(venue, since, until + pd.Timedelta(hours=1))
        closes = dict(
            zip(
                (_ms(t) for t in bars.loc[bars["symbol"] == symbol, "ts"]),
                bars.loc[bars["symbol"] == symbol, "close"],
                strict=True,
            )
        )
        stamps = [c[0] for c in candles]
        assert len(candles) >= 23 and stamps == list(range(stamps[0], stamps[-1] + 1, HOUR_MS))
        assert _ms(since) <= stamps[0] and stamps[-1] <= _ms(until)
        assert all(math.isclose(c[4], closes[c[0]], rel_tol=1e-12) for c in candles)
    elif method == "fetchOpenInterestHistory":
        history = ex.fetch_open_interest_history(symbol, "1h", None, 24, params)
        # okx's history is its currency's (rubik open-interest-volume), which ccxt leaves without a symbol
        assert history and all(h["symbol"] == (None if venue == "okx" else symbol) for h in history)
        assert all((h["openInterestAmount"] or h["openInterestValue"] or 0) > 0 for h in history)
    elif method == "fetchTicker":
        ticker = ex.fetch_ticker(symbol, params)
        assert ticker["symbol"] == symbol
        assert math.isclose(ticker["last"], float(_last_bar(market, venue, symbol)["close"]), rel_tol=1e-12)
    else:
        raise AssertionError(f"no check for {method}")
