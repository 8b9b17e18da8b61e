"""Warehouse fixtures shared by the tests and the storage fault benchmark: a partition frame, and child-process
scripts that hold or open the DuckDB file."""

import pandas as pd


def frame(day: str, venue: str, values):
    times = pd.date_range(day, periods=len(values), freq="8h", tz="UTC")
    return pd.DataFrame({"venue": venue, "funding_time": times, "rate": values})


HOLD_LOCK = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


OPEN_ONCE = """
import sys, duckdb
duckdb.connect(sys.argv[1]).close()
print("opened")
"""
