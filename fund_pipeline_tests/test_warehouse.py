import duckdb
import pandas as pd
import pytest

from fund_pipeline.domain.prints import SchemaError
from fund_pipeline.resources import Warehouse


def frame(day: str, venue: str, values):
    times = pd.date_range(day, periods=len(values), freq="8h", tz="UTC")
    return pd.DataFrame({"venue": venue, "funding_time": times, "rate": values})


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
