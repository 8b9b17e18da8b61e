"""Coin-margined (inverse) perps through the graph: market terms in the universe, prints, curves and features.

The asset tests run `dg.materialize` on temporary DuckDB warehouses, once with the simulated market's inverse
perps listed and once without, so the linear rows can be compared between the two.
"""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from fund_pipeline.defs.ingest.assets import market_universe
from fund_pipeline.domain.contracts import INVERSE, LINEAR, contract_margin, margin_type, market_terms
from fund_pipeline.domain.prints import MARKET_COLUMNS, MARKET_TERMS_COLUMNS, SchemaError
from fund_pipeline.domain.records import PRINT_KEY
from fund_pipeline.emulator.rest_okx import LINEAR_CONTRACT as OKX_LINEAR_CONTRACT
from fund_pipeline.resources import LandingZone, MarketSourceResource, Warehouse
from fund_pipeline.sources.ccxt import CcxtSource
from fund_pipeline.sources.files import daily_listing
from fund_pipeline.sources.simulated import SimulatedMarket
from fund_pipeline.venues.registry import adapter
from fund_pipeline_tests.asset_runs import all_assets, materialisation_metadata, run
from fund_pipeline_tests.emulator_thread import emulator_in_thread

BASES = ["BTC", "ETH"]
INVERSE_VENUES = ["binance", "bybit", "okx", "deribit"]
INVERSE_SYMBOLS = ["BTC/USD:BTC", "ETH/USD:ETH"]
INGEST = ["market_universe", "raw_funding_prints", "market_bars", "curve_history"]
FIRST, LAST = "2025-01-01", "2025-01-10"
FEATURE_DAYS = ("2025-01-09", "2025-01-10")
# The documented USD size of one contract (Binance COIN-M, Bybit inverse, OKX ctVal, Deribit contract_size).
CONTRACT_USD = {
    ("binance", "BTC/USD:BTC"): 100.0,
    ("binance", "ETH/USD:ETH"): 10.0,
    ("bybit", "BTC/USD:BTC"): 1.0,
    ("bybit", "ETH/USD:ETH"): 1.0,
    ("okx", "BTC/USD:BTC"): 100.0,
    ("okx", "ETH/USD:ETH"): 10.0,
    ("deribit", "BTC/USD:BTC"): 10.0,
    ("deribit", "ETH/USD:ETH"): 1.0,
}
TABLE_KEYS = {
    "market_universe": ["date", "venue", "symbol"],
    "raw_funding_prints": PRINT_KEY,
    "curve_history": ["venue", "symbol", "ts_snap"],
    "feature_store": ["venue", "symbol", "funding_time"],
}
# Features fitted across every symbol's curves, inverse ones included once listed: the curve PCA scores; and the
# base's rate spread across venues, which takes each venue's coin-margined perp too (on okx, which settles its
# documented premium-only formula, the coin-margined rate differs from the linear one).
POOLED_FEATURES = {"feature_store": ["pc1", "pc2", "dispersion_8h"]}


# ------------------------------------------------------------------ the domain rule


def test_a_contract_settled_in_its_base_coin_is_inverse():
    assert contract_margin("BTC/USD:BTC") == INVERSE
    assert contract_margin("ETH/USD:ETH") == INVERSE
    assert contract_margin("BTC/USDT:USDT") == LINEAR
    assert contract_margin("BTC/USDC:USDC") == LINEAR
    assert contract_margin("BTC/USD:USDC") == LINEAR
    assert margin_type("BTC/USD:BTC") == "coin_margin" and margin_type("BTC/USDT:USDT") == "usd_margin"
    with pytest.raises(SchemaError, match="BTCUSD_PERP"):
        contract_margin("BTCUSD_PERP")


def test_market_terms_take_a_stated_size_else_one_base_unit_for_linear_and_unknown_for_inverse():
    symbols = pd.Series(["BTC/USDT:USDT", "BTC/USD:BTC", "ETH/USDT:USDT", "ETH/USD:ETH"], index=[7, 3, 5, 1])
    terms = market_terms(symbols, [None, 100, 0.01, None])
    assert list(terms.columns) == MARKET_TERMS_COLUMNS
    assert list(terms.index) == [7, 3, 5, 1]
    assert terms["margin"].tolist() == [LINEAR, INVERSE, LINEAR, INVERSE]
    assert terms["settle"].tolist() == ["USDT", "BTC", "USDT", "ETH"]
    np.testing.assert_array_equal(terms["contract_size"], [1.0, 100.0, 0.01, np.nan])
    with pytest.raises(SchemaError, match="ETH/USD:ETH"):
        market_terms(symbols, [1, 1, 1, 0])


def test_the_adapters_terms_agree_with_the_rule_on_every_simulated_perp():
    market = SimulatedMarket(inverse=True)
    at = pd.Timestamp(FIRST, tz="UTC")
    for venue in market.venues():
        listed = market.instruments(venue, at)
        rule = market_terms(listed["symbol"])
        assert listed["margin"].tolist() == rule["margin"].tolist(), venue
        assert listed["settle"].tolist() == rule["settle"].tolist(), venue
        for symbol in listed["symbol"]:
            assert adapter(venue).terms(symbol).margin == contract_margin(symbol)


def test_files_listing_states_an_inverse_contract_with_an_unknown_size():
    times = pd.to_datetime(["2025-01-01 08:00", "2025-01-01 16:00", "2025-01-02 00:00"], utc=True)
    prints = pd.DataFrame(
        {
            "venue": "deribit",
            "symbol": ["BTC/USD:BTC", "BTC/USDC:USDC", "BTC/USD:BTC"],
            "funding_time": times,
            "interval_h": 8.0,
        }
    )
    listing = daily_listing(prints)
    assert list(listing.columns) == MARKET_COLUMNS
    assert listing[["symbol", "margin", "settle"]].values.tolist() == [
        ["BTC/USD:BTC", INVERSE, "BTC"],
        ["BTC/USDC:USDC", LINEAR, "USDC"],
        ["BTC/USD:BTC", INVERSE, "BTC"],
    ]
    np.testing.assert_array_equal(listing["contract_size"], [np.nan, 1.0, np.nan])


def test_inverse_is_refused_for_the_files_source_that_cannot_list_them():
    with pytest.raises(ValueError, match="inverse is for the simulated and ccxt sources; the 'files' source lists"):
        MarketSourceResource(kind="files", inverse=True, files_root="sample")
    simulated = MarketSourceResource(inverse=True).get()
    assert isinstance(simulated, SimulatedMarket) and simulated.inverse
    # Built only (no request): the ccxt source lists the coin-margined perps too (test_ccxt_inverse_e2e).
    assert MarketSourceResource(kind="ccxt", inverse=True, api_base_url="http://127.0.0.1:9").get()._inverse


# ------------------------------------------------------------------ through Dagster


def materialise_graph(tmp, inverse: bool) -> Warehouse:
    warehouse = Warehouse(database=str(tmp / "warehouse.duckdb"))
    resources = {
        "warehouse": warehouse,
        "market_source": MarketSourceResource(bases=BASES, inverse=inverse),
        "landing": LandingZone(path=str(tmp / "landing")),
    }
    instance = dg.DagsterInstance.ephemeral()
    assets = all_assets()
    for venue in INVERSE_VENUES:
        assert run(assets, INGEST, resources, instance, f"{FIRST}|{venue}", f"{LAST}|{venue}").success
    assert run(assets, ["feature_store"], resources, instance, *FEATURE_DAYS).success
    return warehouse


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory) -> dict[bool, Warehouse]:
    return {
        inverse: materialise_graph(tmp_path_factory.mktemp(f"inverse_{inverse}"), inverse) for inverse in (True, False)
    }


def linear_rows(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    linear = frame.loc[~frame["symbol"].isin(INVERSE_SYMBOLS)]
    return linear.sort_values(keys).reset_index(drop=True)


@pytest.mark.slow
def test_the_universe_states_the_terms_of_every_market(warehouses):
    universe = warehouses[True].read("market_universe")
    assert list(universe.columns) == MARKET_COLUMNS
    assert universe[MARKET_TERMS_COLUMNS].notna().all().all()
    inverse = universe.loc[universe["margin"] == INVERSE]
    assert sorted(inverse[["venue", "symbol"]].drop_duplicates().itertuples(index=False)) == sorted(CONTRACT_USD)
    assert (inverse["settle"] == inverse["base"]).all() and (inverse["quote"] == "USD").all()
    sizes = inverse.set_index(["venue", "symbol"])["contract_size"]
    assert all(sizes[key].eq(size).all() for key, size in CONTRACT_USD.items())
    linear = universe.loc[universe["margin"] == LINEAR]
    assert (linear["contract_size"] == 1.0).all() and (linear["settle"] == linear["quote"]).all()
    days = pd.date_range(FIRST, LAST, freq="D", tz="UTC")
    assert set(universe["date"]) == set(days)


@pytest.mark.slow
def test_inverse_perps_have_prints_curves_and_features_on_every_venue(warehouses):
    wh = warehouses[True]
    for table in ("raw_funding_prints", "curve_history", "feature_store"):
        rows = wh.read(table)
        for venue in INVERSE_VENUES:
            for symbol in INVERSE_SYMBOLS:
                assert ((rows["venue"] == venue) & (rows["symbol"] == symbol)).any(), (table, venue, symbol)
    prints = wh.read("raw_funding_prints", {"symbol": ["BTC/USD:BTC"], "venue": ["okx"]})
    want = SimulatedMarket(bases=tuple(BASES), inverse=True).funding_prints(
        "okx", pd.Timestamp(FIRST, tz="UTC"), pd.Timestamp(LAST, tz="UTC") + pd.Timedelta(days=1)
    )
    want = want.loc[want["symbol"] == "BTC/USD:BTC"]
    settled = prints.loc[prints["kind"] == "settled"].sort_values("funding_time")
    np.testing.assert_allclose(settled["rate"].to_numpy(), want.sort_values("funding_time")["rate"].to_numpy())


@pytest.mark.slow
@pytest.mark.parametrize("table", sorted(TABLE_KEYS))
def test_turning_inverse_on_leaves_the_linear_rows_as_they_were(warehouses, table):
    keys, pooled = TABLE_KEYS[table], POOLED_FEATURES.get(table, [])
    with_inverse = linear_rows(warehouses[True].read(table), keys).drop(columns=pooled)
    without = linear_rows(warehouses[False].read(table), keys).drop(columns=pooled)
    assert len(without) > 0
    pd.testing.assert_frame_equal(with_inverse, without)


@pytest.mark.slow
def test_existing_warehouse_with_the_old_universe_columns_is_refused_clearly(tmp_path):
    warehouse = Warehouse(database=str(tmp_path / "old.duckdb"))
    old = SimulatedMarket(bases=("BTC",)).markets("binance", pd.Timestamp(FIRST, tz="UTC"))
    warehouse.replace("market_universe", old.drop(columns=MARKET_TERMS_COLUMNS), {"venue": ["binance"]})
    result = dg.materialize(
        [market_universe],
        resources={"warehouse": warehouse, "market_source": MarketSourceResource(bases=["BTC"])},
        instance=dg.DagsterInstance.ephemeral(),
        partition_key=f"{FIRST}|binance",
        raise_on_error=False,
    )
    assert not result.success
    errors = str([e.event_specific_data.error for e in result.all_events if e.event_type_value == "STEP_FAILURE"])
    assert "market_universe: columns changed" in errors and "Drop the table" in errors
    assert len(warehouse.read("market_universe")) == len(old)


@pytest.mark.slow
def test_universe_metadata_counts_markets_by_margin(tmp_path):
    resources = {
        "warehouse": Warehouse(database=str(tmp_path / "w.duckdb")),
        "market_source": MarketSourceResource(bases=BASES, inverse=True),
    }
    result = dg.materialize(
        [market_universe], resources=resources, instance=dg.DagsterInstance.ephemeral(), partition_key=f"{FIRST}|okx"
    )
    assert materialisation_metadata(result, "market_universe")["markets_by_margin"] == {LINEAR: 2, INVERSE: 2}


class MarketsWithoutTerms(MarketSourceResource):
    """The simulated market as a source written before the market terms: its markets lack them."""

    def _build(self):
        market = SimulatedMarket(bases=("BTC",))

        class Source:
            name = "old"

            def venues(self):
                return market.venues()

            def markets(self, venue, day):
                return market.markets(venue, day).drop(columns=MARKET_TERMS_COLUMNS)

        return Source()


@pytest.mark.slow
def test_a_source_without_market_terms_fails_naming_them(tmp_path):
    result = dg.materialize(
        [market_universe],
        resources={"warehouse": Warehouse(database=str(tmp_path / "w.duckdb")), "market_source": MarketsWithoutTerms()},
        instance=dg.DagsterInstance.ephemeral(),
        partition_key=f"{FIRST}|binance",
        raise_on_error=False,
    )
    assert not result.success
    errors = str([e.event_specific_data.error for e in result.all_events if e.event_type_value == "STEP_FAILURE"])
    assert "source's markets on binance: missing column(s) ['margin', 'settle', 'contract_size']" in errors


# ------------------------------------------------------------------ the ccxt source against the emulator


@pytest.fixture(scope="module")
def emulator():
    start = pd.Timestamp("2025-01-20", tz="UTC")
    with emulator_in_thread(bases=("BTC",), start=start, speed=1.0) as running:
        yield running


@pytest.mark.e2e
def test_ccxt_markets_state_the_terms_the_venues_serve(emulator):
    source = CcxtSource(api_base_url=emulator.base_url, now=emulator.state.clock.now, throttle=False)
    day = pd.Timestamp("2025-01-18", tz="UTC")
    # the venues' own contract sizes as the emulator serves them: okx ctVal, deribit contract_size; one base unit
    # where the venue states none or 1
    sizes = {"okx": OKX_LINEAR_CONTRACT, "deribit": 0.0001}
    for venue in source.venues():
        markets = source.markets(venue, day)
        assert list(markets.columns) == MARKET_COLUMNS
        assert (markets["margin"] == LINEAR).all(), venue
        assert (markets["settle"] == markets["quote"]).all(), venue
        np.testing.assert_array_equal(markets["contract_size"], sizes.get(venue, 1.0), err_msg=venue)
