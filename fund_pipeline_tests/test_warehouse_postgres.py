"""The PostgreSQL warehouse against the DuckDB file: the same rows and dtypes back, the same refusals, and
writers of different partitions that do not wait for each other while writers of one partition take turns."""

from __future__ import annotations

import re
import threading
import time

import dagster as dg
import numpy as np
import pandas as pd
import psycopg2
import pytest

from fund_pipeline.domain.prints import SchemaError
from fund_pipeline.resources import Warehouse
from fund_pipeline.warehouse import WAREHOUSE_PASSWORD_ENV, WAREHOUSE_URL_ENV, WarehouseError
from fund_pipeline.warehouse_postgres import MAX_PARTITION_LOCKS, partition_locks
from fund_pipeline_tests.postgres_server import create_database

DAY = (pd.Timestamp("2025-03-01", tz="UTC"), pd.Timestamp("2025-03-02", tz="UTC"))


@pytest.fixture
def pg(postgres_server, request) -> Warehouse:
    name = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:60]
    return Warehouse(url=create_database(postgres_server, name))


def prints(venue: str, values, day: str = "2025-03-01", freq: str = "8h") -> pd.DataFrame:
    times = pd.date_range(day, periods=len(values), freq=freq, tz="UTC")
    return pd.DataFrame({"venue": venue, "funding_time": times, "rate": values})


def every_kind(rows: int = 50) -> pd.DataFrame:
    """One column of each kind the assets write, with the missing values each can hold."""
    rng = np.random.default_rng(3)
    stamps = pd.Series(pd.date_range("2025-03-01", periods=rows, freq="37min", tz="UTC"))
    stamps += pd.to_timedelta(rng.integers(0, 10**9, rows), unit="ns")  # below a microsecond: both truncate
    stamps.iloc[3] = pd.NaT
    return pd.DataFrame(
        {
            "venue": ["binance"] * rows,
            "symbol": [f"S{i % 7}/USDT:USDT" if i % 9 else None for i in range(rows)],
            "note": ["" if i % 5 == 0 else 'x,"quoted"\nline' for i in range(rows)],
            "ts": stamps,
            "naive": pd.date_range("2025-03-01", periods=rows, freq="h"),
            "rate": np.where(np.arange(rows) % 4 == 0, np.nan, rng.normal(0, 1e-4, rows)),
            "big": rng.normal(0, 1e12, rows),
            "ratio32": rng.normal(0, 1, rows).astype("float32"),
            "count": np.arange(rows, dtype="int64") * 10**12,
            "small": np.arange(rows, dtype="int32"),
            "maybe_count": pd.array([None if i % 6 == 0 else i for i in range(rows)], dtype="Int64"),
            "settled": np.arange(rows) % 2 == 0,
            "maybe": pd.array([None if i % 8 == 0 else i % 3 == 0 for i in range(rows)], dtype="boolean"),
            "wait": pd.to_timedelta(np.arange(rows), unit="s"),
        }
    )


def test_every_kind_of_column_reads_back_as_from_the_duckdb_file(tmp_path, pg):
    duck = Warehouse(database=str(tmp_path / "w.duckdb"))
    frame = every_kind()
    for warehouse in (duck, pg):
        warehouse.replace("t", frame, {})
    from_duck, from_pg = duck.read("t"), pg.read("t")
    pd.testing.assert_frame_equal(from_pg, from_duck, check_exact=True)
    assert from_pg["rate"].isna().sum() == frame["rate"].isna().sum() and from_pg["symbol"].iloc[0] is None
    assert (from_pg["big"].to_numpy() == frame["big"].to_numpy()).all(), "floats round-trip exactly"
    assert str(from_pg["ts"].dtype) == "datetime64[ns, UTC]"
    # Without a missing value, integers and booleans read back as numpy dtypes, as from DuckDB.
    where, columns = {"venue": ["binance"], "small": [1, 2, 3, 4, 5]}, ["ts", "maybe_count", "maybe"]
    subset = pg.read("t", where, columns)
    pd.testing.assert_frame_equal(subset, duck.read("t", where, columns), check_exact=True)
    assert str(subset["maybe_count"].dtype) == "int64" and str(subset["maybe"].dtype) == "bool"
    query = "SELECT venue, count(*) AS n, max(ts) AS newest FROM t WHERE rate > ? GROUP BY venue"
    pd.testing.assert_frame_equal(pg.query(query, [0.0]), duck.query(query, [0.0]), check_exact=True)


def test_partition_writes_reads_and_refusals_match_the_duckdb_file(tmp_path, pg):
    duck = Warehouse(database=str(tmp_path / "w.duckdb"))
    symbols = ["btc/usdt", "BTC-USD", "BTC/USDT:USDT", "_x", "Zeta", "éth"]
    for warehouse in (duck, pg):
        warehouse.replace("t", prints("binance", [1.0, 2.0, 3.0]), {"venue": ["binance"], "funding_time": DAY})
        warehouse.replace("t", prints("bybit", [9.0, 9.0]), {"venue": ["bybit"], "funding_time": DAY})
        warehouse.replace("t", prints("binance", [4.0, 5.0]), {"venue": ["binance"], "funding_time": DAY})
        stamp = pd.Timestamp("2025-03-03 12:00", tz="UTC")
        weekly = pd.DataFrame({"as_of": [stamp, stamp + pd.Timedelta(microseconds=1)], "w": [1.0, 2.0]})
        warehouse.replace("b", weekly, {})
        warehouse.replace("b", weekly.iloc[[0]].assign(w=5.0), {"as_of": stamp})
        by_symbol = pd.DataFrame({"symbol": symbols, "n": range(len(symbols))})
        warehouse.replace("s", by_symbol, {})
    for how in (
        lambda w: w.read("t").sort_values(["venue", "funding_time"], ignore_index=True),
        lambda w: w.read("b", {"as_of": pd.Timestamp("2025-03-03 12:00", tz="UTC")}),
        lambda w: w.read("b", {"as_of": [pd.Timestamp("2025-03-03 12:00", tz="UTC")]}),
        lambda w: w.read("s", order_by="symbol"),
        lambda w: w.read("nothing"),
        lambda w: w.read("t", {"venue": ["okx"]}),
    ):
        pd.testing.assert_frame_equal(how(pg), how(duck), check_exact=True)
    assert pg.latest("b", "as_of") == duck.latest("b", "as_of") == stamp + pd.Timedelta(microseconds=1)
    assert pg.latest("missing", "as_of") is None and not pg.has_table("missing") and pg.has_table("t")
    with pytest.raises(SchemaError) as from_duck:
        duck.replace("t", prints("binance", [1.0]).assign(extra=1), {})
    with pytest.raises(SchemaError) as from_pg:
        pg.replace("t", prints("binance", [1.0]).assign(extra=1), {})
    assert str(from_pg.value) == str(from_duck.value) and "columns changed" in str(from_pg.value)


def test_print_views_and_a_failed_write_that_keeps_every_partition(pg):
    settled = prints("binance", [1.0, 2.0]).assign(symbol="BTC/USDT:USDT", ts=lambda f: f["funding_time"])
    rows = pd.concat([settled.assign(kind="settled"), settled.assign(kind="predicted", rate=[7.0, 8.0])])
    pg.replace("raw_funding_prints", rows, {"venue": ["binance"], "funding_time": DAY})
    assert pg.settled_prints(*DAY)["rate"].tolist() == [1.0, 2.0]
    assert pg.query("SELECT rate FROM predicted_prints ORDER BY rate")["rate"].tolist() == [7.0, 8.0]
    before = pg.read("raw_funding_prints")
    bad = rows.assign(rate=["x"] * len(rows))
    with pytest.raises(psycopg2.Error):
        pg.replace_partitions(
            "raw_funding_prints",
            [(rows, {"venue": ["binance"], "funding_time": DAY}), (bad, {"venue": ["okx"], "funding_time": DAY})],
        )
    pd.testing.assert_frame_equal(pg.read("raw_funding_prints"), before, check_exact=True)


def exclusive_keys(where: dict) -> set[int]:
    return {key for _, key in partition_locks("t", [where]).exclusive}


def conflict(first: dict, second: dict) -> bool:
    """Two writes wait for each other: one holds exclusively a key the other holds at all."""
    a, b = partition_locks("t", [first]), partition_locks("t", [second])
    every = lambda locks: {key for _, key in locks.shared + locks.exclusive}  # noqa: E731
    return bool({k for _, k in a.exclusive} & every(b) or {k for _, k in b.exclusive} & every(a))


def test_lock_units_make_overlapping_writes_wait_and_no_others():
    binance_day = {"venue": ["binance"], "funding_time": DAY}
    three_days = {
        "venue": ["binance", "okx"],
        "funding_time": (DAY[0] - pd.Timedelta(days=1), DAY[1] + pd.Timedelta(days=1)),
    }
    bybit_day = {"venue": ["bybit"], "funding_time": DAY}
    year = (pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2026-01-01", tz="UTC"))
    binance_year, okx_year = ({"venue": [venue], "funding_time": year} for venue in ("binance", "okx"))
    assert exclusive_keys(binance_day) < exclusive_keys(three_days)
    assert conflict(binance_day, three_days) and not conflict(bybit_day, three_days)
    assert len(partition_locks("t", [binance_year]).exclusive) == 12, "a year's backfill locks its months"
    assert conflict(binance_year, binance_day) and not conflict(binance_year, okx_year)
    assert not conflict(okx_year, binance_day)
    eight_hours = {"ts_snap": (DAY[0] + pd.Timedelta(hours=8), DAY[0] + pd.Timedelta(hours=16))}
    assert exclusive_keys(eight_hours) == exclusive_keys({"ts_snap": DAY[0]})
    whole = partition_locks("t", [{}])
    assert whole.shared == [] and len(whole.exclusive) == 1 and conflict({}, binance_day)
    many = {"venue": [f"v{i}" for i in range(MAX_PARTITION_LOCKS + 1)]}
    assert partition_locks("t", [many]) == whole


def _write_in_thread(warehouse: Warehouse, frame: pd.DataFrame, where: dict) -> threading.Thread:
    thread = threading.Thread(target=warehouse.replace, args=("t", frame, where), daemon=True)
    thread.start()
    return thread


def test_a_held_partition_blocks_its_writer_only_and_then_it_replaces_the_partition_whole(pg):
    binance = {"venue": ["binance"], "funding_time": DAY}
    pg.replace("t", prints("binance", [1.0, 2.0, 3.0]), binance)
    holder = psycopg2.connect(pg.url)
    try:
        with holder.cursor() as cursor:  # what a writer of binance's day holds while it writes
            for exclusive, key in partition_locks("t", [binance]).in_order():
                cursor.execute(f"SELECT pg_advisory_xact_lock{'' if exclusive else '_shared'}(%s)", [key])
        same = _write_in_thread(pg, prints("binance", [4.0]), binance)
        other = _write_in_thread(pg, prints("okx", [5.0, 6.0]), {"venue": ["okx"], "funding_time": DAY})
        other.join(timeout=5)
        assert not other.is_alive(), "a writer of another partition went ahead"
        time.sleep(0.3)
        assert same.is_alive(), "the writer of the held partition waits"
        assert sorted(pg.read("t", {"venue": ["binance"]})["rate"]) == [1.0, 2.0, 3.0]
    finally:
        holder.rollback()
        holder.close()
    same.join(timeout=5)
    assert not same.is_alive()
    assert sorted(pg.read("t")["rate"]) == [4.0, 5.0, 6.0]


def test_concurrent_writers_of_one_partition_leave_one_writers_rows_whole(pg):
    binance = {"venue": ["binance"], "funding_time": DAY}
    frames = [prints("binance", [float(writer)] * (writer + 1), freq="1h") for writer in range(6)]
    threads = [_write_in_thread(pg, frame, binance) for frame in frames]
    for thread in threads:
        thread.join(timeout=20)
    stored = sorted(pg.read("t")["rate"])
    assert len(set(stored)) == 1 and len(stored) == int(stored[0]) + 1, stored


def test_first_writers_racing_to_create_a_table_all_land(pg):
    venues = [f"venue{i}" for i in range(8)]
    errors: list[BaseException] = []

    def write(venue: str) -> None:
        try:
            pg.replace("raw_funding_prints", prints(venue, [1.0, 2.0, 3.0]).assign(kind="settled"), {"venue": [venue]})
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(venue,)) for venue in venues]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not errors, errors
    assert sorted(pg.read("raw_funding_prints")["venue"].unique()) == venues
    assert len(pg.query("SELECT * FROM settled_prints")) == 3 * len(venues)


def test_configured_from_the_environment_without_writing_the_password(monkeypatch, postgres_server):
    monkeypatch.delenv(WAREHOUSE_URL_ENV, raising=False)
    assert Warehouse.from_env().url is None, "the DuckDB file stays the default"
    monkeypatch.setenv(WAREHOUSE_URL_ENV, postgres_server.url("postgres"))
    monkeypatch.setenv(WAREHOUSE_PASSWORD_ENV, "s3cret")
    warehouse = Warehouse.from_env()
    assert isinstance(warehouse.url, dg.EnvVar) and isinstance(warehouse.password, dg.EnvVar)
    assert "s3cret" not in repr(warehouse)
    with pytest.raises(ValueError, match=WAREHOUSE_PASSWORD_ENV):
        Warehouse(url="postgresql://me:s3cret@127.0.0.1:1/w").read("t")
    unreachable = Warehouse(url="postgresql://me@127.0.0.1:1/w", password="s3cret")
    with pytest.raises(WarehouseError, match=WAREHOUSE_URL_ENV) as error:
        unreachable.read("t")
    assert "s3cret" not in str(error.value)
