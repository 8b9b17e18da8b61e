"""reconstructed_prints on the simulated market: its premium history rebuilds the settled rates exactly,
and curve_history built from settled + reconstructed prints has the live curve's bucket 0."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from fund_pipeline.defs.ingest.reconstructed import RECONSTRUCTED_TABLE, ReconstructionRunConfig, reconstructed_prints
from fund_pipeline.domain.predicted import RECONSTRUCTED_SOURCE, reconstruct_predicted
from fund_pipeline.domain.records import PRINT_COLUMNS
from fund_pipeline.resources import MarketSourceResource
from fund_pipeline.sources.simulated import SimulatedMarket
from fund_pipeline.venues.registry import SIM_VENUES
from fund_pipeline.warehouse import Warehouse

pytestmark = pytest.mark.slow

DAYS = ["2025-03-10", "2025-03-11"]
BASES = ["BTC", "ETH", "SOL", "WIF"]


def partitions(venues) -> list[str]:
    return [f"{day}|{venue}" for day in DAYS for venue in venues]


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """Settled prints of the days in the warehouse, then reconstructed_prints over them."""
    warehouse = Warehouse(database=str(tmp_path_factory.mktemp("rec") / "w.duckdb"))
    market = SimulatedMarket(seed=7, bases=BASES)
    start, end = pd.Timestamp(DAYS[0], tz="UTC"), pd.Timestamp(DAYS[-1], tz="UTC") + pd.Timedelta(days=1)
    settled = pd.concat([market.funding_prints(v, start, end) for v in SIM_VENUES], ignore_index=True)
    warehouse.replace("raw_funding_prints", settled, {})
    resources = {"warehouse": warehouse, "market_source": MarketSourceResource(seed=7, bases=BASES)}
    results = [
        dg.materialize([reconstructed_prints], partition_key=key, resources=resources, raise_on_error=False)
        for key in partitions(SIM_VENUES)
    ]
    return warehouse, market, settled, results


def test_every_partition_materialises_and_its_check_passes(stored):
    _, _, _, results = stored
    for result in results:
        assert result.success
        (evaluation,) = result.get_asset_check_evaluations()
        by_venue = evaluation.metadata["by_venue"].value
        assert evaluation.passed, by_venue
        for figures in by_venue.values():
            assert figures["p95_abs_error"] < 1e-15 and figures["pinned_exact"]


def test_rows_are_predicted_prints_at_the_cadence_ending_on_the_settled_rate(stored):
    warehouse, _, settled, _ = stored
    rows = warehouse.read(RECONSTRUCTED_TABLE)
    assert sorted(rows.columns) == sorted(PRINT_COLUMNS)
    assert set(rows["kind"]) == {"predicted"} and set(rows["source"]) == {RECONSTRUCTED_SOURCE}
    assert set(rows["venue"]) == set(SIM_VENUES)
    assert (rows["ts"].astype("int64") % (300 * 10**9) == 0).all()
    last = rows[rows["ts"] == rows["funding_time"]].merge(settled, on=["venue", "symbol", "funding_time"])
    assert len(last) > 100
    np.testing.assert_allclose(last["rate_x"], last["rate_y"], rtol=0, atol=1e-15)
    # Windows of 8h, 4h and 1h all present: 96, 48 and 12 points each.
    counts = rows.groupby(["venue", "symbol", "funding_time"]).size()
    assert {96, 48, 12} <= set(counts.unique())


def test_reconstruction_tracks_the_live_quotes_the_emulator_serves(stored):
    """The simulated market's live quote at t is the same formula on the premium so far, plus noise."""
    _, market, _, _ = stored
    t = pd.date_range("2025-03-10 00:05", periods=95, freq="5min", tz="UTC")
    live = market.predicted_rates("binance", ["BTC/USDT:USDT"], t)
    samples = market.premium_samples("binance", pd.Timestamp("2025-03-10", tz="UTC"), t[-1])
    formulas = market.funding_formulas("binance", ["BTC/USDT:USDT"])
    rebuilt = reconstruct_predicted("binance", samples[samples["symbol"] == "BTC/USDT:USDT"], formulas)
    joined = live.merge(rebuilt, on=["symbol", "funding_time", "ts"])
    assert len(joined) == len(t)
    # The emulator adds per-second noise of 1e-5 per 8h (clipped at 3 sigma), shrinking to the window end.
    assert np.abs(joined["rate_x"] - joined["rate_y"]).max() <= 3e-5 + 1e-12


def test_cadence_is_configurable(tmp_path):
    warehouse = Warehouse(database=str(tmp_path / "w.duckdb"))
    resources = {"warehouse": warehouse, "market_source": MarketSourceResource(seed=7, bases=["BTC"])}
    result = dg.materialize(
        [reconstructed_prints],
        partition_key=f"{DAYS[0]}|binance",
        resources=resources,
        run_config=dg.RunConfig({"reconstructed_prints": ReconstructionRunConfig(cadence_s=1800)}),
    )
    assert result.success
    rows = warehouse.read(RECONSTRUCTED_TABLE)
    assert rows.groupby(["symbol", "funding_time"]).size().max() == 16
