"""The ccxt source's premium-index history against the emulator: ccxt's implicit calls page through the
venues' endpoints, the samples rebuild the settled rates the emulator serves, and `reconstructed_prints`
runs on the ccxt source."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from fund_pipeline.defs.ingest.reconstructed import RECONSTRUCTED_TABLE, reconstructed_prints
from fund_pipeline.domain.predicted import SAMPLE_COLUMNS, reconstruct_predicted, settlement_errors
from fund_pipeline.resources import MarketSourceResource
from fund_pipeline.sources.ccxt import CcxtSource
from fund_pipeline.sources.ccxt_premium import NoPremiumHistoryError
from fund_pipeline.venues.registry import facts
from fund_pipeline.warehouse import Warehouse
from fund_pipeline_tests.emulator_thread import emulator_in_thread

pytestmark = pytest.mark.e2e  # ccxt against the emulator on loopback

NOW = pd.Timestamp("2025-03-10 12:30", tz="UTC")
BASES = ("BTC", "WIF")  # WIF settles every 4h on binance and bybit
PREMIUM_VENUES = ("binance", "bybit", "okx", "hyperliquid")
DAY = pd.Timestamp("2025-03-09", tz="UTC")


@pytest.fixture(scope="module")
def emulator():
    with emulator_in_thread(bases=BASES, start=NOW, speed=1e-9) as running:
        yield running


@pytest.fixture(scope="module")
def source(emulator):
    return CcxtSource(
        venues=(*PREMIUM_VENUES, "deribit"),
        api_base_url=emulator.base_url,
        now=emulator.state.clock.now,
        throttle=False,
    )


@pytest.mark.parametrize("venue", PREMIUM_VENUES)
def test_premium_history_rebuilds_every_settled_rate(source, venue):
    start, end = DAY - pd.Timedelta(hours=8), NOW
    samples = source.premium_samples(venue, start, end)
    assert list(samples.columns) == SAMPLE_COLUMNS
    assert set(samples["symbol"]) == set(source.perp_symbols(venue))  # okx lists WIF from 2025-03-15
    for _, one in samples.groupby("symbol"):
        assert one["ts"].is_monotonic_increasing and not one["ts"].duplicated().any()
        assert one["ts"].min() >= start and one["ts"].max() < end
    step = pd.Timedelta(hours=1) if venue == "hyperliquid" else pd.Timedelta(minutes=1)
    # Every sample of the range, paged: one per minute (hyperliquid: per hour) and symbol.
    assert len(samples) == samples["symbol"].nunique() * ((NOW.floor(step) - start) // step)
    formulas = source.funding_formulas(venue, sorted(samples["symbol"].unique()))
    rebuilt = reconstruct_predicted(venue, samples, formulas, None, facts(venue).settlement_phase_h)
    settled = source.funding_prints(venue, DAY, NOW)
    errors = settlement_errors(rebuilt, settled, formulas)
    assert len(errors) == len(settled) > 0
    # The emulator serves rates with full float precision (repr): the rebuilt rates equal them.
    assert errors["abs_error"].max() <= 1e-15
    if venue in ("binance", "bybit"):
        wif = samples[samples["symbol"] == "WIF/USDT:USDT"]
        assert set(wif["interval_h"]) == {4.0}


def test_deribit_premium_history_is_refused_naming_the_venue(source):
    with pytest.raises(NoPremiumHistoryError, match="deribit"):
        source.premium_samples("deribit", DAY, NOW)


def test_reconstruction_job_asset_runs_on_the_ccxt_source(tmp_path, emulator, source):
    warehouse = Warehouse(database=str(tmp_path / "w.duckdb"))
    warehouse.replace("raw_funding_prints", source.funding_prints("okx", DAY, DAY + pd.Timedelta(days=1)), {})
    resources = {
        "warehouse": warehouse,
        "market_source": MarketSourceResource(kind="ccxt", api_base_url=emulator.base_url, bases=["BTC"]),
    }
    result = dg.materialize([reconstructed_prints], partition_key=f"{DAY:%Y-%m-%d}|okx", resources=resources)
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed, evaluation.metadata["by_venue"].value
    assert evaluation.metadata["by_venue"].value["okx"]["n"] == 3  # BTC's three windows of the day
    rows = warehouse.read(RECONSTRUCTED_TABLE)
    assert set(rows["venue"]) == {"okx"} and set(rows["source"]) == {"reconstructed"}
    assert len(rows) == 3 * 96  # every 5 minutes of each 8h window
    assert np.all(rows["ts"].astype("int64") % (300 * 10**9) == 0)
