"""The market group through dg.materialize on a temporary DuckDB, on a simulated market with coin-margined perps.

The upstream tables are written straight from the simulated source (as ingest and the reconstruction
would store them), so only the market assets run; their stored numbers are checked against
computations written here, independently of the domain code.
"""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from fund_pipeline.defs.ingest.reconstructed import RECONSTRUCTED_TABLE
from fund_pipeline.defs.market.arbitrage import DEFAULT_TAKER_FEES
from fund_pipeline.defs.market.assets import bars_with_contract_size
from fund_pipeline.demo import load_definitions
from fund_pipeline.domain.aggregates import aggregate_funding_rate
from fund_pipeline.domain.predicted import reconstruct_predicted
from fund_pipeline.domain.prints import MARKET_COLUMNS
from fund_pipeline.resources import LandingZone, MarketSourceResource, Warehouse
from fund_pipeline.sources.simulated import SimulatedMarket

BASES = ("BTC", "ETH", "SOL")
VENUES = ("binance", "bybit", "okx", "hyperliquid")
FIRST = pd.Timestamp("2025-02-08", tz="UTC")
DAY = pd.Timestamp("2025-02-10", tz="UTC")
NEXT = DAY + pd.Timedelta(days=1)
MARKET = ["aggregate_funding_rate", "cumulative_funding_rate", "funding_arbitrage"]
# Seeding the simulated market and three materialisations take ~15 s on a quiet 2-core machine.
slow = pytest.mark.slow


def seed_warehouse(warehouse: Warehouse) -> None:
    """Prints, bars, universe and reconstructed predicted prints of FIRST .. DAY, coin-margined perps included."""
    source = SimulatedMarket(bases=BASES, inverse=True)
    for venue in VENUES:
        days = pd.date_range(FIRST, DAY, freq="D")
        where = {"venue": [venue]}
        warehouse.replace(
            "raw_funding_prints", source.funding_prints(venue, FIRST - pd.Timedelta(days=30), NEXT), where
        )
        warehouse.replace("market_bars", source.bars(venue, FIRST, NEXT), where)
        markets = pd.concat([source.markets(venue, d) for d in days], ignore_index=True)
        warehouse.replace("market_universe", markets[MARKET_COLUMNS], where)
        samples = source.premium_samples(venue, DAY - pd.Timedelta(hours=8), NEXT)
        formulas = source.funding_formulas(venue, sorted(samples["symbol"].unique()))
        warehouse.replace(RECONSTRUCTED_TABLE, reconstruct_predicted(venue, samples, formulas), where)


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("market")
    warehouse = Warehouse(database=str(tmp / "warehouse.duckdb"))
    seed_warehouse(warehouse)
    resources = {
        "warehouse": warehouse,
        "market_source": MarketSourceResource(bases=list(BASES)),
        "landing": LandingZone(path=str(tmp / "landing")),
    }
    assets = list(load_definitions().assets)
    result = dg.materialize(
        assets,
        selection=MARKET,
        resources=resources,
        partition_key=f"{DAY:%Y-%m-%d}",
        instance=dg.DagsterInstance.ephemeral(),
    )
    return warehouse, result, assets, resources


def metadata(result, asset: str) -> dict:
    event = next(
        e
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION" and e.asset_key == dg.AssetKey(asset)
    )
    return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}


@slow
def test_market_assets_store_the_rows_they_report(market):
    warehouse, result, _, _ = market
    assert result.success
    for asset in MARKET:
        stored = warehouse.read(asset)
        assert len(stored) > 0 and metadata(result, asset)["dagster/row_count"] == len(stored), asset
    assert "data:image/png;base64," in metadata(result, "funding_arbitrage")["best_pairs_plot"]
    assert "| base |" in metadata(result, "funding_arbitrage")["best_pairs"]
    assert "coin_margin volume APR" in metadata(result, "aggregate_funding_rate")["latest_hour_by_base"]
    assert metadata(result, "funding_arbitrage")["weeks_without_forecast"]  # no model stored: said, not hidden


@slow
def test_stored_aggregate_matches_a_hand_computation_with_coin_margined_markets(market):
    warehouse, _, _, _ = market
    afr = warehouse.read("aggregate_funding_rate")
    assert {"usd_margin", "coin_margin", "all_margin"} <= set(afr["margin"])
    ts = DAY + pd.Timedelta(hours=13)
    prints = warehouse.settled_prints(FIRST, NEXT)
    bars = warehouse.read("market_bars", {"ts": ts})
    for margin, settles_in_base in (("coin_margin", True), ("all_margin", None)):
        weighted = total = 0.0
        for bar in bars.loc[bars["base"] == "BTC"].itertuples():
            base, settle = bar.symbol.split("/")[0], bar.symbol.split(":")[1]
            if settles_in_base is not None and (settle == base) != settles_in_base:
                continue
            own = prints.loc[(prints["venue"] == bar.venue) & (prints["symbol"] == bar.symbol)]
            last = own.loc[own["funding_time"] <= ts].sort_values("funding_time").iloc[-1]
            weighted += bar.open_interest_usd * last["rate"] * 8 / last["interval_h"]
            total += bar.open_interest_usd
        row = afr.loc[
            (afr["ts"] == ts) & (afr["venue"] == "all") & (afr["base"] == "BTC") & (afr["margin"] == margin)
            & (afr["weighting"] == "oi")
        ]  # fmt: skip
        assert row["afr_8h"].item() == pytest.approx(weighted / total, rel=1e-9)
        assert row["total_weight_usd"].item() == pytest.approx(total, rel=1e-12)


@slow
def test_stored_arbitrage_matches_a_brute_force_over_the_quotes(market):
    warehouse, _, _, _ = market
    pairs = warehouse.read("funding_arbitrage")
    assert set(pairs["as_of"].dt.strftime("%H:%M")) == {"07:50", "15:50", "23:50"}
    as_of = DAY + pd.Timedelta(hours=15, minutes=50)
    quotes = warehouse.read(RECONSTRUCTED_TABLE)
    known = quotes.loc[(quotes["ts"] <= as_of) & (quotes["ts"] >= as_of - pd.Timedelta(minutes=30))]
    known = known.loc[known["funding_time"] > as_of].sort_values("ts").groupby(["venue", "symbol"]).tail(1)
    eth = known.loc[known["base"] == "ETH"]
    best = -np.inf
    for long in eth.itertuples():
        for short in eth.itertuples():
            if long.venue == short.venue:
                continue
            spread = short.rate * 8 / short.interval_h - long.rate * 8 / long.interval_h
            fees = 2 * (DEFAULT_TAKER_FEES[long.venue] + DEFAULT_TAKER_FEES[short.venue]) * 365 / 7
            best = max(best, spread * 1095 - fees)
    row = pairs.loc[(pairs["as_of"] == as_of) & (pairs["base"] == "ETH") & (pairs["ranking"] == "predicted")]
    assert row["net_apr"].item() == pytest.approx(best, rel=1e-9)
    assert row["n_markets"].item() == len(eth)


@slow
def test_a_quoted_venue_without_a_taker_fee_fails_naming_it(market):
    _, _, assets, resources = market
    config = {"ops": {"funding_arbitrage": {"config": {"taker_fees": {"binance": 0.0005}}}}}
    result = dg.materialize(
        assets,
        selection=["funding_arbitrage"],
        resources=resources,
        partition_key=f"{DAY:%Y-%m-%d}",
        run_config=config,
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    errors = str([e.event_specific_data.error for e in result.all_events if e.event_type_value == "STEP_FAILURE"])
    assert "no taker fee configured" in errors and "bybit" in errors


def test_open_interest_stated_in_contracts_takes_the_contract_size_the_universe_states(tmp_path):
    warehouse = Warehouse(database=str(tmp_path / "w.duckdb"))
    hours = pd.date_range(DAY - pd.Timedelta(hours=24), NEXT, freq="h", inclusive="left")
    bars = pd.DataFrame(
        {
            "venue": "binance",
            "symbol": "BTC/USD:BTC",
            "base": "BTC",
            "ts": hours,
            "close": 1e5,
            "volume_usd": 1e6,
            "open_interest_usd": float("nan"),
            "open_interest_contracts": 20_000.0,
        }
    )
    universe = pd.DataFrame(
        {
            "date": [DAY - pd.Timedelta(days=1)],
            "venue": ["binance"],
            "symbol": ["BTC/USD:BTC"],
            "contract_size": [100.0],
        }
    )
    warehouse.replace("market_bars", bars, {"venue": ["binance"]})
    warehouse.replace("market_universe", universe, {"venue": ["binance"]})
    merged = bars_with_contract_size(warehouse, DAY - pd.Timedelta(hours=24), NEXT)
    assert (merged["contract_size"] == 100.0).all()
    prints = pd.DataFrame(
        {
            "venue": "binance",
            "symbol": "BTC/USD:BTC",
            "base": "BTC",
            "kind": "settled",
            "funding_time": [DAY - pd.Timedelta(hours=8)],
            "ts": [DAY - pd.Timedelta(hours=8)],
            "rate": [1e-4],
            "interval_h": [8.0],
        }
    )
    afr = aggregate_funding_rate(prints, merged, DAY, DAY + pd.Timedelta(hours=1))
    # 20,000 contracts of 100 USD each
    assert afr.loc[(afr["venue"] == "all") & (afr["weighting"] == "oi"), "total_weight_usd"].tolist() == [2e6, 2e6]
