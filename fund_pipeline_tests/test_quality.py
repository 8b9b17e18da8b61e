import pandas as pd
import pytest

from fund_pipeline.domain.quality import basket_violations, off_grid_prints, snapshot_lag, stale_streams
from fund_pipeline.venues.registry import settlement_phase_h


def test_off_grid_prints_follow_each_interval():
    prints = pd.DataFrame(
        {
            "venue": "binance",
            "funding_time": pd.to_datetime(
                [
                    "2025-01-01 08:00",
                    "2025-01-01 04:00",
                    "2025-01-01 04:00",
                    "2025-01-01 03:00",
                    "2025-01-01 08:00:00.005",
                ],
                utc=True,
                format="ISO8601",
            ),
            "interval_h": [8.0, 4.0, 8.0, 1.0, 8.0],
        }
    )
    off = off_grid_prints(prints, {})
    assert list(off.index) == [2, 4]


def test_kucoin_grid_starts_at_four():
    prints = pd.DataFrame(
        {
            "venue": ["kucoin", "kucoin", "binance"],
            "funding_time": pd.to_datetime(["2025-01-01 04:00", "2025-01-01 08:00", "2025-01-01 04:00"], utc=True),
            "interval_h": [8.0, 8.0, 8.0],
        }
    )
    assert list(off_grid_prints(prints, settlement_phase_h()).index) == [1, 2]


def baskets(weights, caps, status="optimal"):
    w = pd.DataFrame(
        {
            "as_of": pd.Timestamp("2025-03-03 12:00", tz="UTC"),
            "target_venue": "binance",
            "target_symbol": "BTC/USDT:USDT",
            "weight": weights,
            "cap": caps,
        }
    )
    s = pd.DataFrame({"target_venue": ["binance"], "target_symbol": ["BTC/USDT:USDT"], "status": [status]})
    return w, s


def test_valid_basket_has_no_violations():
    assert basket_violations(*baskets([0.5, 0.5], [1.0, 0.6])) == {}


def test_each_basket_violation_is_named():
    assert set(basket_violations(*baskets([0.5, 0.4], [1.0, 1.0]))) == {"sum_not_one"}
    assert set(basket_violations(*baskets([1.2, -0.2], [1.0, 1.0]))) == {"negative_weights", "weights_over_cap"}
    assert set(basket_violations(*baskets([0.5, 0.5], [1.0, 1.0], status="infeasible"))) == {"not_optimal"}


def test_a_stream_without_a_recent_snapshot_is_stale():
    t = pd.Timestamp("2025-01-01 08:00", tz="UTC")
    prints = pd.DataFrame({"venue": "okx", "symbol": ["A", "B", "C"], "ts": [t, t, t + pd.Timedelta(hours=1)]})
    snapshots = pd.DataFrame(
        {"venue": "okx", "symbol": ["A", "C"], "ts_snap": [t - pd.Timedelta(minutes=5), t - pd.Timedelta(minutes=5)]}
    )
    stale = stale_streams(snapshot_lag(snapshots, prints))
    assert sorted(stale["symbol"]) == ["B", "C"]  # B never snapshotted, C 65 minutes behind


@pytest.mark.slow
def test_the_expectation_suite_is_built_once_per_process_and_validates_a_run_in_one_pass():
    from fund_pipeline.defs.ingest import expectations
    from fund_pipeline.domain.prints import storable_prints
    from fund_pipeline.sources.simulated import SimulatedMarket

    market = SimulatedMarket(bases=("BTC", "ETH"))
    day = pd.Timestamp("2025-01-05", tz="UTC")
    run = pd.concat(
        [storable_prints(market.funding_prints(v, day, day + pd.Timedelta(days=3)))[0] for v in ("binance", "okx")],
        ignore_index=True,
    )
    expectations._batch_definition_and_suite.cache_clear()
    ok, summaries = expectations.validate_raw_prints(run)
    ok_again, _ = expectations.validate_raw_prints(run.iloc[::-1].reset_index(drop=True))
    assert ok and ok_again
    assert expectations._batch_definition_and_suite.cache_info().misses == 1
    assert {s["expectation"] for s in summaries} >= {"expect_compound_columns_to_be_unique"}
    bad = run.assign(interval_h=run["interval_h"].where(run.index != 3, 3.0))
    ok_bad, summaries = expectations.validate_raw_prints(bad)
    assert not ok_bad
    assert [s["column"] for s in summaries if not s["success"]] == ["interval_h"]


@pytest.mark.slow
def test_the_suite_on_category_codes_counts_what_it_counts_on_text():
    """validate_raw_prints checks text columns as categories: the same verdicts and counts as GX on the
    frame as stored (a null symbol, an unknown kind, a repeated key)."""
    from fund_pipeline.defs.ingest import expectations
    from fund_pipeline.domain.prints import storable_prints
    from fund_pipeline.sources.simulated import SimulatedMarket

    market = SimulatedMarket(bases=("BTC", "ETH"))
    day = pd.Timestamp("2025-01-05", tz="UTC")
    run = storable_prints(market.funding_prints("binance", day, day + pd.Timedelta(days=2)))[0]
    bad = pd.concat([run, run.iloc[[7, 8]]], ignore_index=True)
    bad.loc[3, "symbol"] = None
    bad.loc[5, "kind"] = "rumoured"
    batch_definition, suite = expectations._batch_definition_and_suite()
    as_text = batch_definition.get_batch(batch_parameters={"dataframe": bad}).validate(suite)
    ok, summaries = expectations.validate_raw_prints(bad)
    counts = {(s["expectation"], str(s["column"])): s["unexpected_count"] for s in summaries}
    assert not ok and not as_text.success
    assert counts == {
        (
            r.expectation_config.type,
            str(r.expectation_config.kwargs.get("column") or r.expectation_config.kwargs.get("column_list")),
        ): int(r.result.get("unexpected_count") or 0)
        for r in as_text.results
    }
    assert counts[("expect_column_values_to_not_be_null", "symbol")] == 1
    assert counts[("expect_column_values_to_be_in_set", "kind")] == 1
    assert counts[("expect_compound_columns_to_be_unique", str(expectations.PRINT_KEY))] == 4
