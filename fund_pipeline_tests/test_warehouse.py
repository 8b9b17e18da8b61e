import os
import subprocess
import sys
import time

import duckdb
import pandas as pd
import pytest

from fund_pipeline.domain.prints import SchemaError
from fund_pipeline.resources import Warehouse
from fund_pipeline.warehouse import LOCK_WAIT_S, WarehouseError
from fund_pipeline_tests.lock_scripts import HOLD_LOCK, OPEN_ONCE, frame


def test_replace_is_idempotent_and_scoped_to_the_partition(tmp_path):
    wh = Warehouse(database=str(tmp_path / "w.duckdb"))
    day = (pd.Timestamp("2025-03-01", tz="UTC"), pd.Timestamp("2025-03-02", tz="UTC"))
    wh.replace("t", frame("2025-03-01", "binance", [1.0, 2.0, 3.0]), {"venue": ["binance"], "funding_time": day})
    wh.replace("t", frame("2025-03-01", "bybit", [9.0, 9.0, 9.0]), {"venue": ["bybit"], "funding_time": day})
    wh.replace("t", frame("2025-03-01", "binance", [4.0, 5.0, 6.0]), {"venue": ["binance"], "funding_time": day})
    stored = wh.read("t")
    assert len(stored) == 6
    assert sorted(stored.loc[stored["venue"] == "binance", "rate"]) == [4.0, 5.0, 6.0]
    assert str(stored["funding_time"].dtype) == "datetime64[ns, UTC]"


def test_failed_write_keeps_previous_rows(tmp_path):
    wh = Warehouse(database=str(tmp_path / "w.duckdb"))
    day = (pd.Timestamp("2025-03-01", tz="UTC"), pd.Timestamp("2025-03-02", tz="UTC"))
    wh.replace("t", frame("2025-03-01", "binance", [1.0, 2.0, 3.0]), {"venue": ["binance"], "funding_time": day})
    bad = frame("2025-03-01", "binance", [1.0, 2.0, 3.0]).assign(rate=["x", "y", "z"])
    with pytest.raises(duckdb.Error):
        wh.replace("t", bad, {"venue": ["binance"], "funding_time": day})
    assert sorted(wh.read("t")["rate"]) == [1.0, 2.0, 3.0]


def test_changed_columns_are_refused_by_name(tmp_path):
    wh = Warehouse(database=str(tmp_path / "w.duckdb"))
    wh.replace("t", frame("2025-03-01", "binance", [1.0]), {})
    with pytest.raises(SchemaError, match="columns changed"):
        wh.replace("t", frame("2025-03-01", "binance", [1.0]).assign(extra=1), {})


def test_read_of_missing_table_is_empty(tmp_path):
    assert Warehouse(database=str(tmp_path / "w.duckdb")).read("nothing").empty


def test_identifiers_are_checked(tmp_path):
    with pytest.raises(ValueError, match="identifier"):
        Warehouse(database=str(tmp_path / "w.duckdb")).read("t; drop table x")


def test_a_failure_in_the_middle_of_a_multi_partition_write_leaves_every_partition_as_it_was(tmp_path):
    wh = Warehouse(database=str(tmp_path / "w.duckdb"))
    day = (pd.Timestamp("2025-03-01", tz="UTC"), pd.Timestamp("2025-03-02", tz="UTC"))
    wh.replace_partitions(
        "t",
        [
            (frame("2025-03-01", "binance", [1.0, 2.0]), {"venue": ["binance"], "funding_time": day}),
            (frame("2025-03-01", "bybit", [3.0, 4.0]), {"venue": ["bybit"], "funding_time": day}),
        ],
    )
    before = wh.read("t")
    with pytest.raises(duckdb.Error):
        wh.replace_partitions(
            "t",
            [
                (frame("2025-03-01", "binance", [9.0, 9.0]), {"venue": ["binance"], "funding_time": day}),
                (
                    frame("2025-03-01", "bybit", [9.0, 9.0]).assign(rate=["x", "y"]),
                    {"venue": ["bybit"], "funding_time": day},
                ),
            ],
        )
    pd.testing.assert_frame_equal(wh.read("t"), before)


def test_instants_match_by_equality(tmp_path):
    wh = Warehouse(database=str(tmp_path / "w.duckdb"))
    t = pd.Timestamp("2025-03-03 12:00", tz="UTC")
    rows = pd.DataFrame({"as_of": [t, t + pd.Timedelta(microseconds=1)], "w": [1.0, 2.0]})
    wh.replace("b", rows, {})
    assert wh.read("b", {"as_of": t})["w"].tolist() == [1.0]
    assert wh.read("b", {"as_of": [t]})["w"].tolist() == [1.0]
    wh.replace("b", rows.iloc[[0]].assign(w=5.0), {"as_of": t})
    assert sorted(wh.read("b")["w"]) == [2.0, 5.0]
    assert wh.latest("b", "as_of") == t + pd.Timedelta(microseconds=1)
    assert wh.latest("missing", "as_of") is None


def test_in_memory_databases_are_refused_at_load():
    with pytest.raises(ValueError, match="in-memory"):
        Warehouse(database=":memory:")


def test_a_directory_or_a_non_duckdb_file_fails_at_once_with_a_clear_message(tmp_path):
    with pytest.raises(WarehouseError, match="is a directory"):
        Warehouse(database=str(tmp_path)).read("t")
    junk = tmp_path / "notes.duckdb"
    junk.write_text("not a database\n" * 100)
    started = time.monotonic()
    with pytest.raises(WarehouseError, match="not a DuckDB database"):
        Warehouse(database=str(junk)).read("t")
    assert time.monotonic() - started < 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any folder: the check cannot be provoked")
def test_a_read_only_folder_fails_at_once(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    with pytest.raises(WarehouseError, match="not writable"):
        Warehouse(database=str(folder / "w.duckdb")).read("t")


@pytest.mark.slow
def test_a_conflicting_writer_gets_a_clear_error_within_seconds_naming_the_holder(tmp_path):
    database = str(tmp_path / "w.duckdb")
    Warehouse(database=database).replace("t", frame("2025-03-01", "binance", [1.0]), {})
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, database], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(WarehouseError) as error:
            Warehouse(database=database).read("t")
        waited = time.monotonic() - started
        assert waited < LOCK_WAIT_S + 3
        message = str(error.value)
        assert f"PID {holder.pid}" in message and "in use by another process" in message and "kill" in message
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_a_failed_write_releases_the_lock_for_other_processes(tmp_path):
    wh = Warehouse(database=str(tmp_path / "w.duckdb"))
    wh.replace("t", frame("2025-03-01", "binance", [1.0]), {})
    with pytest.raises(duckdb.Error):
        wh.replace("t", frame("2025-03-01", "binance", [1.0]).assign(rate=["x"]), {})
    with pytest.raises(RuntimeError, match="inside"):
        with wh.connection():
            raise RuntimeError("inside a step")
    other = subprocess.run(
        [sys.executable, "-c", OPEN_ONCE, wh.database], capture_output=True, text=True, timeout=30, check=False
    )
    assert other.stdout.strip() == "opened", other.stderr


def test_config_errors_are_refused_at_load_naming_the_field(tmp_path):
    from fund_pipeline.resources import LandingZone, MarketSourceResource

    with pytest.raises(ValueError, match="bases is empty"):
        MarketSourceResource(bases=[])
    not_a_folder = tmp_path / "landing"
    not_a_folder.write_text("")
    with pytest.raises(ValueError, match="is a file"):
        LandingZone(path=str(not_a_folder))
    assert LandingZone(path=str(tmp_path / "new")).root() == tmp_path / "new"


def test_settled_prints_in_some_columns_are_the_same_rows_in_arrival_order(tmp_path):
    from fund_pipeline.domain.curve import PRINT_INPUT_COLUMNS
    from fund_pipeline.sources.simulated import SimulatedMarket

    wh = Warehouse(database=str(tmp_path / "w.duckdb"))
    market = SimulatedMarket(bases=("BTC", "ETH", "SOL"))
    start, end = pd.Timestamp("2025-02-01", tz="UTC"), pd.Timestamp("2025-02-04", tz="UTC")
    stored = market.funding_prints("hyperliquid", start, end).sample(frac=1.0, random_state=3)
    wh.replace("raw_funding_prints", stored, {})
    whole = wh.settled_prints(start, end, ["hyperliquid"])
    some = wh.settled_prints(start, end, ["hyperliquid"], PRINT_INPUT_COLUMNS)
    assert list(some.columns) == PRINT_INPUT_COLUMNS and len(some) == (stored["kind"] == "settled").sum() > 0
    pd.testing.assert_frame_equal(some, whole[PRINT_INPUT_COLUMNS], check_exact=True)
