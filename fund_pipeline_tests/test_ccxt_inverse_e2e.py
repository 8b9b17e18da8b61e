"""The ccxt source with `inverse`: the venues' coin-margined perps through an emulator serving them (binance
COIN-M on dapi, bybit category=inverse, okx -USD-SWAP, deribit BTC-PERPETUAL): their terms, settled prints
and open interest in USD equal the simulated market's; premium history where the venue publishes one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fund_pipeline.domain.contracts import INVERSE
from fund_pipeline.domain.predicted import reconstruct_predicted, settlement_errors
from fund_pipeline.sources.ccxt import CcxtSource
from fund_pipeline.sources.simulated import SimulatedMarket
from fund_pipeline.venues.registry import UnknownVenueError, adapter
from fund_pipeline_tests.emulator_thread import emulator_in_thread

pytestmark = pytest.mark.e2e  # ccxt against the emulator on loopback

NOW = pd.Timestamp("2025-03-10 12:30", tz="UTC")
DAY = pd.Timestamp("2025-03-09", tz="UTC")
INVERSE_VENUES = ("binance", "bybit", "okx", "deribit")
COIN_PERP = "BTC/USD:BTC"


@pytest.fixture(scope="module")
def emulator():
    with emulator_in_thread(bases=("BTC",), start=NOW, speed=1e-9, inverse=True) as running:
        yield running


@pytest.fixture(scope="module")
def source(emulator):
    return CcxtSource(
        venues=INVERSE_VENUES,
        api_base_url=emulator.base_url,
        now=emulator.state.clock.now,
        throttle=False,
        inverse=True,
    )


@pytest.fixture(scope="module")
def market():
    return SimulatedMarket(bases=("BTC",), inverse=True)


def test_without_inverse_the_coin_margined_perps_are_not_listed(emulator):
    linear = CcxtSource(venues=("binance",), api_base_url=emulator.base_url, now=emulator.state.clock.now)
    assert COIN_PERP not in linear.perp_symbols("binance")
    with pytest.raises(UnknownVenueError, match="not a listed linear perp"):
        linear.last_settled("binance", COIN_PERP)


@pytest.mark.parametrize("venue", INVERSE_VENUES)
def test_coin_margined_terms_prints_and_open_interest_equal_the_market(source, market, venue):
    assert COIN_PERP in source.perp_symbols(venue)
    listed = source.markets(venue, DAY).set_index("symbol")
    terms = adapter(venue).terms(COIN_PERP)
    assert listed.loc[COIN_PERP, ["margin", "settle"]].tolist() == [INVERSE, "BTC"]
    assert listed.loc[COIN_PERP, "contract_size"] == terms.contract_size
    got = source.funding_prints(venue, DAY, DAY + pd.Timedelta(days=1))
    want = market.funding_prints(venue, DAY, DAY + pd.Timedelta(days=1))
    got, want = (p[p["symbol"] == COIN_PERP].set_index("funding_time") for p in (got, want))
    assert len(got) == len(want) > 0
    np.testing.assert_allclose(got["rate"], want.loc[got.index, "rate"], rtol=0, atol=1e-12)
    if adapter(venue).rest.oi_page:
        bars = source.bars(venue, DAY, DAY + pd.Timedelta(hours=6))
        sim = market.bars(venue, DAY, DAY + pd.Timedelta(hours=6))
        got_oi = bars[bars["symbol"] == COIN_PERP].set_index("ts")["open_interest_usd"]
        want_oi = sim[sim["symbol"] == COIN_PERP].set_index("ts")["open_interest_usd"]
        assert got_oi.notna().all()
        # Venues count contracts of a whole number of USD: the USD figure is exact to one contract.
        np.testing.assert_allclose(got_oi, want_oi.loc[got_oi.index], rtol=0, atol=terms.contract_size)


@pytest.mark.parametrize("venue", ["binance", "okx"])
def test_coin_margined_premium_history_rebuilds_the_settled_rate(source, venue):
    samples = source.premium_samples(venue, DAY - pd.Timedelta(hours=8), DAY + pd.Timedelta(days=1))
    coin = samples[samples["symbol"] == COIN_PERP]
    assert len(coin) == 32 * 60
    formulas = source.funding_formulas(venue, [COIN_PERP])
    rebuilt = reconstruct_predicted(venue, coin, formulas)
    errors = settlement_errors(rebuilt, source.funding_prints(venue, DAY, DAY + pd.Timedelta(days=1)), formulas)
    assert len(errors) == 3 and errors["abs_error"].max() <= 1e-15


def test_bybit_serves_no_premium_history_of_its_inverse_perps(source):
    samples = source.premium_samples("bybit", DAY, DAY + pd.Timedelta(hours=1))
    assert COIN_PERP not in set(samples["symbol"]) and len(samples) > 0


def test_okx_liquidation_history_has_the_coin_margined_swaps_too(source, market):
    """With `inverse`, OKX's REST liquidation history is read for BTC-USD-SWAP as well as BTC-USDT-SWAP."""
    from fund_pipeline.sources.liquidation_history import source_liquidations
    from fund_pipeline.sources.sim_liquidations import simulated_liquidations

    start = NOW - pd.Timedelta(hours=12)
    got = source_liquidations(source, "okx", start, NOW, ["BTC"])
    assert set(got["symbol"]) == {"BTC/USDT:USDT", COIN_PERP}
    expected = simulated_liquidations(market, "okx", start, NOW)
    for symbol in (COIN_PERP, "BTC/USDT:USDT"):
        mine, theirs = got[got["symbol"] == symbol], expected[expected["symbol"] == symbol]
        assert mine["ts"].tolist() == theirs["ts"].tolist(), symbol
        np.testing.assert_allclose(mine["notional_usd"], theirs["notional_usd"], rtol=1e-6)
        assert mine["side"].tolist() == theirs["side"].tolist()
