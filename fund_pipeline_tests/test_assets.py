"""The asset graph through dg.materialize on a temporary DuckDB and instance."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from fund_pipeline.resources import LandingZone, MarketSourceResource, Warehouse
from fund_pipeline.sources.simulated import SimulatedMarket
from fund_pipeline_tests.asset_runs import MutatedSource, all_assets, check_results, materialisation_metadata, run

BASES = ["BTC", "ETH", "SOL", "XRP", "DOGE", "LINK"]
VENUES = ["binance", "hyperliquid", "deribit"]
FIRST, LAST = "2025-01-01", "2025-02-12"
INGEST = ["market_universe", "raw_funding_prints", "market_bars", "curve_history"]
DAILY = ["feature_store", "aggregate_funding_rate", "cumulative_funding_rate"]
WEEKLY = ["symbol_clusters", "funding_forecast_model", "funding_forecasts", "weekly_hedge_baskets"]
REPORTS = ["forecast_scorecard", "basket_performance"]
WEEKLY_RUN_CONFIG = {
    "ops": {
        "funding_forecast_model": {"config": {"min_train_rows": 100}},
        "weekly_hedge_baskets": {"config": {"lookback_days": 14, "targets": [["binance", "BTC/USDT:USDT"]]}},
        "symbol_clusters": {"config": {"n_clusters": 3}},
    }
}


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("graph")
    resources = {
        "warehouse": Warehouse(database=str(tmp / "warehouse.duckdb")),
        "market_source": MarketSourceResource(bases=BASES),
        "landing": LandingZone(path=str(tmp / "landing")),
    }
    instance = dg.DagsterInstance.ephemeral()
    assets = all_assets()
    results = {}
    for venue in VENUES:
        results[f"ingest_{venue}"] = run(assets, INGEST, resources, instance, f"{FIRST}|{venue}", f"{LAST}|{venue}")
    results["daily"] = run(assets, DAILY, resources, instance, "2025-01-09", LAST)
    results["weekly"] = run(assets, WEEKLY, resources, instance, "2025-01-27", "2025-02-03", WEEKLY_RUN_CONFIG)
    results["reports"] = run(assets, REPORTS, resources, instance)
    return resources, instance, assets, results


@pytest.mark.slow
def test_whole_graph_materialises_with_rows_in_every_table(graph):
    resources, _, _, results = graph
    assert all(r.success for r in results.values())
    wh = resources["warehouse"]
    for table in INGEST + DAILY + WEEKLY + REPORTS:
        assert len(wh.read(table)) > 0, table


@pytest.mark.slow
def test_checks_pass_on_the_simulated_market(graph):
    _, _, _, results = graph
    outcomes = {}
    for r in results.values():
        outcomes.update(check_results(r))
    expected = {
        "prints_pass_expectations",
        "funding_times_on_venue_grid",
        "missing_buckets_below_2pct_30d",
        "feature_warmup_complete",
        "basket_weights_valid_and_optimal",
        "model_beats_best_baseline",
    }
    assert expected <= set(outcomes)
    failing = {k for k, ok in outcomes.items() if not ok} - {"model_beats_best_baseline"}
    assert not failing


@pytest.mark.slow
def test_raw_prints_match_the_source_and_rematerialising_does_not_duplicate(graph):
    resources, instance, assets, _ = graph
    wh = resources["warehouse"]
    day = (pd.Timestamp("2025-01-20", tz="UTC"), pd.Timestamp("2025-01-21", tz="UTC"))
    before = wh.read("raw_funding_prints", {"venue": ["binance"], "funding_time": day})
    source = SimulatedMarket(bases=tuple(BASES)).funding_prints("binance", *day)
    assert len(before) == len(source)
    run(assets, ["raw_funding_prints"], resources, instance, "2025-01-20|binance", "2025-01-20|binance")
    after = wh.read("raw_funding_prints", {"venue": ["binance"], "funding_time": day})
    assert len(after) == len(before)
    assert len(wh.read("raw_funding_prints")) == sum(
        len(
            SimulatedMarket(bases=tuple(BASES)).funding_prints(
                v, pd.Timestamp(FIRST, tz="UTC"), pd.Timestamp(LAST, tz="UTC") + pd.Timedelta(days=1)
            )
        )
        for v in VENUES
    )


@pytest.mark.slow
def test_forecasts_never_train_on_their_own_week(graph):
    resources, _, _, _ = graph
    wh = resources["warehouse"]
    models = wh.read("funding_forecast_model")
    assert (models["train_end"] < models["week_start"]).all()


@pytest.mark.slow
def test_unknown_venue_fails_clearly_and_keeps_stored_rows(graph):
    resources, instance, assets, _ = graph
    wh = resources["warehouse"]
    before = len(wh.read("raw_funding_prints"))
    result = run(
        assets, ["raw_funding_prints"], resources, instance, "2025-01-20|gate", "2025-01-20|gate", raise_on_error=False
    )
    assert not result.success
    message = str([e.event_specific_data.error for e in result.all_events if e.event_type_value == "STEP_FAILURE"])
    assert "gate" in message and "simulated" in message
    assert len(wh.read("raw_funding_prints")) == before


@pytest.fixture
def bad_input(tmp_path):
    def materialise(
        defect: str, selection=("raw_funding_prints",), first="2025-01-05|binance", last="2025-01-05|binance"
    ):
        resources = {
            "warehouse": Warehouse(database=str(tmp_path / "w.duckdb")),
            "market_source": MutatedSource(defect=defect),
            "landing": LandingZone(path=str(tmp_path / "landing")),
        }
        return resources, run(
            all_assets(), list(selection), resources, dg.DagsterInstance.ephemeral(), first, last, raise_on_error=False
        )

    return materialise


@pytest.mark.slow
def test_good_rows_then_bad_input_leaves_them_in_place(bad_input):
    resources, first = bad_input("none")
    assert first.success
    stored = resources["warehouse"].read("raw_funding_prints")
    for defect, words in [
        ("nan", "NaN"),
        ("inf", "infinite"),
        ("empty", "no settled prints"),
        ("wrong_column", "rate"),
        ("huge", "implausible rate"),
    ]:
        _, result = bad_input(defect)
        assert not result.success, defect
        message = str([e.event_specific_data.error for e in result.all_events if e.event_type_value == "STEP_FAILURE"])
        assert words in message, (defect, message)
        pd.testing.assert_frame_equal(resources["warehouse"].read("raw_funding_prints"), stored)


@pytest.mark.slow
def test_a_failed_blocking_check_is_recorded_and_nothing_is_written(bad_input):
    resources, good = bad_input("none", ("raw_funding_prints", "curve_history"))
    assert good.success
    stored = resources["warehouse"].read("raw_funding_prints")
    _, result = bad_input("off_grid", ("raw_funding_prints", "curve_history"))
    assert not result.success
    assert check_results(result)["funding_times_on_venue_grid"] is False
    assert not [e for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    assert "curve_history" not in {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    pd.testing.assert_frame_equal(resources["warehouse"].read("raw_funding_prints"), stored)


def test_the_print_checks_are_blocking_and_the_landing_check_warns():
    from fund_pipeline.defs.ingest.assets import raw_funding_prints

    blocking = {spec.name: spec.blocking for spec in raw_funding_prints.check_specs}
    assert blocking == {
        "prints_pass_expectations": True,
        "funding_times_on_venue_grid": True,
        "landed_segments_readable": False,
    }


@pytest.mark.slow
def test_duplicate_and_conflicting_rows_collapse_to_one_per_key(bad_input):
    resources, result = bad_input("duplicates")
    assert result.success
    stored = resources["warehouse"].read("raw_funding_prints")
    source = SimulatedMarket(bases=("BTC", "ETH")).funding_prints(
        "binance", pd.Timestamp("2025-01-05", tz="UTC"), pd.Timestamp("2025-01-06", tz="UTC")
    )
    assert len(stored) == len(source)
    assert not stored.duplicated(["venue", "symbol", "kind", "funding_time", "ts"]).any()
    conflicted = source.iloc[4]
    row = stored.loc[
        (stored["symbol"] == conflicted["symbol"]) & (stored["funding_time"] == conflicted["funding_time"])
    ]
    assert row["rate"].tolist() == [conflicted["rate"] + 1e-5]  # the later row of the key wins
    meta = materialisation_metadata(result, "raw_funding_prints")
    assert meta["duplicate_rows_collapsed"] == 1 and meta["key_conflicts_resolved"] == 1


@pytest.mark.slow
def test_a_run_over_two_venues_that_fails_on_the_second_changes_nothing(bad_input):
    """Partition-level truth: the first venue's rows are not replaced when the second fails, and Dagster
    records no materialisation: stored rows and lineage agree."""
    resources, good = bad_input("none", first="2025-01-05|binance", last="2025-01-05|bybit")
    assert good.success
    stored = resources["warehouse"].read("raw_funding_prints")
    _, failed = bad_input("shifted_then_bybit_fails", first="2025-01-05|binance", last="2025-01-05|bybit")
    assert not failed.success
    assert "bybit is down" in str(
        [e.event_specific_data.error for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    )
    assert not [e for e in failed.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    pd.testing.assert_frame_equal(resources["warehouse"].read("raw_funding_prints"), stored)


@pytest.mark.slow
def test_a_bad_landing_segment_is_skipped_counted_and_warned(tmp_path):
    from fund_pipeline.live.landing import SegmentWriter, prints_table

    landing = tmp_path / "landing"
    writer = SegmentWriter(landing)
    writer.write({"prints": prints_table([])})
    writer.close()
    (landing / "prints" / "000000000001.parquet").write_bytes(b"")
    resources = {
        "warehouse": Warehouse(database=str(tmp_path / "w.duckdb")),
        "market_source": MarketSourceResource(bases=["BTC", "ETH"]),
        "landing": LandingZone(path=str(landing)),
    }
    result = run(
        all_assets(), ["raw_funding_prints"], resources, dg.DagsterInstance.ephemeral(),
        "2025-01-05|binance", "2025-01-05|binance",
    )  # fmt: skip
    assert result.success
    assert check_results(result)["landed_segments_readable"] is False
    assert materialisation_metadata(result, "raw_funding_prints")["landing_segments_skipped"] == 1
    assert len(resources["warehouse"].settled_prints("2025-01-05", "2025-01-06")) > 0


@pytest.mark.slow
def test_plots_are_rendered_into_materialisation_metadata(graph):
    _, instance, _, _ = graph
    for key in [
        "symbol_clusters",
        "weekly_hedge_baskets",
        "forecast_scorecard",
        "aggregate_funding_rate",
    ]:
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        images = [
            v.value
            for v in event.asset_materialization.metadata.values()
            if isinstance(v, dg.MarkdownMetadataValue) and "data:image/png;base64," in v.value
        ]
        assert images, key


def png_images(metadata) -> list[str]:
    return [
        v.value
        for v in metadata.values()
        if isinstance(v, dg.MarkdownMetadataValue) and "data:image/png;base64," in v.value
    ]


@pytest.mark.slow
def test_a_range_runs_curve_heatmap_is_one_observation_and_a_days_run_has_it_in_its_materialisation(graph):
    resources, instance, assets, _ = graph
    key = dg.AssetKey("curve_history")
    for venue in VENUES:
        last_day = dg.MultiPartitionKey({"date": LAST, "venue": venue})
        observed = instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[last_day]), limit=5
        ).records
        assert [len(png_images(r.asset_observation.metadata)) for r in observed] == [1], venue
        materialised = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1000).records
        assert materialised and not any(png_images(r.asset_materialization.metadata) for r in materialised)
    day = run(assets, ["curve_history"], resources, instance, f"{LAST}|{VENUES[0]}", f"{LAST}|{VENUES[0]}")
    assert png_images(day.asset_materializations_for_node("curve_history")[0].metadata)


def test_unknown_base_in_config_is_named(tmp_path):
    resources = {
        "warehouse": Warehouse(database=str(tmp_path / "w.duckdb")),
        "market_source": MarketSourceResource(bases=["BTC", "NOTACOIN"]),
        "landing": LandingZone(path=str(tmp_path / "landing")),
    }
    result = run(
        all_assets(),
        ["raw_funding_prints"],
        resources,
        dg.DagsterInstance.ephemeral(),
        "2025-01-05|binance",
        "2025-01-05|binance",
        raise_on_error=False,
    )
    assert not result.success
    assert "NOTACOIN" in str(
        [e.event_specific_data.error for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    )


@pytest.mark.slow
def test_missing_settlements_fail_the_missing_bucket_check(bad_input):
    _, result = bad_input("gaps", ("raw_funding_prints", "curve_history"), "2025-01-03|binance", "2025-01-06|binance")
    assert result.success
    assert check_results(result)["missing_buckets_below_2pct_30d"] is False


@pytest.mark.slow
def test_features_without_warmup_fail_the_warmup_check(bad_input):
    resources, ingest = bad_input(
        "none", ("raw_funding_prints", "market_bars", "curve_history"), "2025-01-01|binance", "2025-01-02|binance"
    )
    assert ingest.success
    result = run(
        all_assets(),
        ["feature_store"],
        resources,
        dg.DagsterInstance.ephemeral(),
        "2025-01-02",
        "2025-01-02",
        raise_on_error=False,
    )
    assert result.success
    assert check_results(result)["feature_warmup_complete"] is False


@pytest.mark.slow
def test_landed_predicted_prints_join_the_history(tmp_path):
    """Predicted prints landed by the live collector reach raw_funding_prints beside the settled ones."""
    from fund_pipeline.domain.predicted import thin_to_cadence
    from fund_pipeline.live.landing import SegmentWriter, prints_table

    market = SimulatedMarket(bases=("BTC", "ETH"))
    times = pd.date_range("2025-01-05 09:00", periods=30, freq="min", tz="UTC")
    predicted = market.predicted_rates("binance", None, times).assign(
        source="ws", received_at=lambda f: f["ts"] + pd.Timedelta(milliseconds=40)
    )
    rows = [
        tuple(v.value if isinstance(v, pd.Timestamp) else v for v in row)
        for row in predicted[list(predicted.columns)].itertuples(index=False)
    ]
    writer = SegmentWriter(tmp_path / "landing")
    writer.write({"prints": prints_table(rows)})
    writer.close()
    resources = {
        "warehouse": Warehouse(database=str(tmp_path / "w.duckdb")),
        "market_source": MarketSourceResource(bases=["BTC", "ETH"]),
        "landing": LandingZone(path=str(tmp_path / "landing")),
    }
    result = run(
        all_assets(),
        ["raw_funding_prints"],
        resources,
        dg.DagsterInstance.ephemeral(),
        "2025-01-05|binance",
        "2025-01-05|binance",
    )
    stored = resources["warehouse"].read("raw_funding_prints")
    assert result.success
    # Landed once a minute, stored on the 5-minute grid (the quote in force at each point).
    assert (stored["kind"] == "predicted").sum() == len(thin_to_cadence(predicted, 300)) < len(predicted)
    assert set(stored.loc[stored["kind"] == "predicted", "source"]) == {"ws"}
    assert (stored["kind"] == "settled").sum() == len(
        market.funding_prints("binance", pd.Timestamp("2025-01-05", tz="UTC"), pd.Timestamp("2025-01-06", tz="UTC"))
    )
