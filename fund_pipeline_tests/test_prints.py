"""Prints fit to store: implausible rates refused by name, one row per key with a stated conflict rule."""

from __future__ import annotations

import pandas as pd
import pytest

from fund_pipeline.domain.prints import MAX_PLAUSIBLE_RATE, SchemaError, implausible_rows, storable_prints
from fund_pipeline.domain.records import PRINT_COLUMNS

T = pd.Timestamp("2025-01-01 08:00", tz="UTC")


def prints(rates, interval_h=8.0, received=None, symbols=None) -> pd.DataFrame:
    n = len(rates)
    return pd.DataFrame(
        {
            "venue": "okx",
            "symbol": symbols or ["BTC/USDT:USDT"] * n,
            "base": "BTC",
            "kind": "predicted",
            "funding_time": T,
            "ts": T - pd.Timedelta(minutes=5),
            "received_at": received if received is not None else [pd.NaT] * n,
            "rate": rates,
            "interval_h": interval_h,
            "mark_price": 100.0,
            "index_price": 99.0,
            "source": "ws",
        }
    )[PRINT_COLUMNS]


def test_a_rate_beyond_the_plausible_maximum_is_refused_naming_it():
    with pytest.raises(SchemaError, match="implausible rate") as error:
        storable_prints(prints([0.0001, 5.0], symbols=["BTC/USDT:USDT", "ETH/USDT:USDT"]))
    assert "ETH/USDT:USDT" in str(error.value) and "5.0" in str(error.value)


def test_a_rate_whose_yield_annualises_to_infinity_is_implausible():
    # 9 % per minute is under the per-interval cap but compounds past the largest float in a year.
    frame = prints([0.09], interval_h=1 / 60)
    assert abs(0.09) <= MAX_PLAUSIBLE_RATE
    assert len(implausible_rows(frame)) == 1


def test_exact_copies_collapse_and_conflicts_keep_the_row_received_last():
    received = [T - pd.Timedelta(seconds=s) for s in (10, 10, 1, 30)]
    frame = prints([0.0001, 0.0001, 0.0003, 0.0002], received=received)
    kept, report = storable_prints(frame)
    assert len(kept) == 1
    assert kept["rate"].tolist() == [0.0003]  # received 1 s before T: the latest
    assert (report.rows_in, report.rows_kept, report.duplicates, report.conflicts) == (4, 1, 1, 2)


def test_without_receive_times_the_later_row_of_the_input_wins():
    kept, report = storable_prints(prints([0.0001, 0.0002]))
    assert kept["rate"].tolist() == [0.0002]
    assert report.conflicts == 1 and report.duplicates == 0


def test_distinct_keys_are_kept_in_input_order():
    frame = prints([0.0002, 0.0001], symbols=["ETH/USDT:USDT", "BTC/USDT:USDT"])
    kept, report = storable_prints(frame)
    assert kept["symbol"].tolist() == ["ETH/USDT:USDT", "BTC/USDT:USDT"]
    assert report.duplicates == report.conflicts == 0


def test_an_exact_copy_changes_nothing_but_the_report():
    """Distinct keys take the no-collapse path, the same rows plus a copy of the last one the sort-and-collapse
    one (the later copy wins, in its place): the same rows in the same order."""
    symbols = [f"X{i:03d}/USDT:USDT" for i in range(50)]
    frame = prints([1e-4 * (i % 7) for i in range(50)], symbols=symbols[::-1])
    alone, alone_report = storable_prints(frame)
    copied, copied_report = storable_prints(pd.concat([frame, frame.iloc[[-1]]], ignore_index=True))
    pd.testing.assert_frame_equal(alone, copied, check_exact=True)
    assert alone["symbol"].tolist() == symbols[::-1]
    assert (alone_report.rows_kept, alone_report.duplicates, copied_report.duplicates) == (50, 0, 1)


def test_normalised_prints_have_the_schema_whatever_the_input_index_and_types():
    from fund_pipeline.domain.prints import normalise_prints

    frame = prints([1e-4, 2e-4], symbols=["BTC/USDT:USDT", "ETH/USDT:USDT"]).drop(columns="received_at")
    frame.index = [7, 3]
    frame["rate"] = ["0.0001", "oops"]
    frame["funding_time"] = frame["funding_time"].dt.tz_localize(None)
    out = normalise_prints(frame)
    assert list(out.columns) == PRINT_COLUMNS and out.index.equals(pd.RangeIndex(2))
    assert str(out["funding_time"].dtype) == str(out["received_at"].dtype) == "datetime64[ns, UTC]"
    assert out["received_at"].isna().all() and out["funding_time"].iloc[0] == T
    assert out["rate"].iloc[0] == 1e-4 and pd.isna(out["rate"].iloc[1])
    assert out["symbol"].tolist() == ["BTC/USDT:USDT", "ETH/USDT:USDT"] and out["venue"].dtype == object
