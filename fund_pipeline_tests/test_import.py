"""`fund-pipeline import`: into the imports warehouse through Dagster; a no-op when repeated, resumable."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fund_pipeline.importer import PRINTS_PER_RUN, day_checksums, days_per_run, run_import
from fund_pipeline.partition_runs import day_runs

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
DAY = pd.Timedelta(days=1)


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("FUND_PIPELINE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "data" / "dagster_home"))
    return tmp_path / "data"


def stored(data: Path) -> pd.DataFrame:
    with duckdb.connect(str(data / "imports" / "warehouse.duckdb"), read_only=True) as conn:
        return conn.execute(
            "SELECT venue, symbol, funding_time, rate FROM raw_funding_prints ORDER BY venue, symbol, funding_time"
        ).df()


def write_plain(path: Path, venue: str, symbol: str, start: str, days: int, interval_h: int = 8) -> None:
    times = pd.date_range(start, periods=days * 24 // interval_h, freq=f"{interval_h}h", tz="UTC")
    frame = pd.DataFrame(
        {"venue": venue, "symbol": symbol, "funding_time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "rate": 1e-4}
    )
    frame["rate"] = [1e-4 + 1e-6 * (k % 7) for k in range(len(frame))]
    frame.to_csv(path, index=False)


@pytest.mark.slow
def test_import_twice_is_a_no_op_and_a_bad_file_fails_only_its_partitions(data, tmp_path, capsys):
    exports = tmp_path / "exports"
    exports.mkdir()
    shutil.copy(FIXTURES / "bybit_rest.jsonl", exports)
    shutil.copy(FIXTURES / "binance_rest.csv", exports)
    assert run_import([str(exports)]) == 0
    first = stored(data)
    assert set(first["venue"]) == {"binance", "bybit"} and len(first) == 12
    ledger = json.loads((data / "imports" / "import_ledger.json").read_text())["partitions"]
    assert set(ledger) == {"2023-01-01|binance", "2023-01-02|binance", "2023-01-01|bybit", "2023-01-02|bybit"}

    assert run_import([str(exports)]) == 0
    assert "nothing to do: every partition is done" in capsys.readouterr().err
    pd.testing.assert_frame_equal(stored(data), first)

    bad = (FIXTURES / "binance_rest.csv").read_text().replace("0.00012000", "n/a")
    (exports / "binance_rest.csv").write_text(bad)
    assert run_import([str(exports)]) == 1
    out = capsys.readouterr().out
    assert "binance_rest.csv: NaN, infinite or non-numeric fundingRate at line(s) [3]" in out
    pd.testing.assert_frame_equal(stored(data), first)


def test_day_runs_split_at_gaps_size_and_bad_days():
    days = [pd.Timestamp("2023-01-01", tz="UTC") + k * DAY for k in [0, 1, 2, 3, 5, 6, 7, 8, 9]]
    bad = {days[2]: "broken"}
    runs = list(day_runs(days, bad, size=3))
    assert [[d.day for d in r] for r in runs] == [[1, 2], [3], [4], [6, 7, 8], [9, 10]]
    with pytest.raises(ValueError, match="at least 1"):
        list(day_runs(days, bad, size=0))


@given(st.floats(min_value=0.0, max_value=1e8, allow_nan=False))
@example(1.6)  # 3M / 1.6 in floats floors one short: the division is in whole prints
def test_a_run_covers_as_many_days_as_hold_its_prints_budget(prints_per_day):
    days = days_per_run(prints_per_day)
    per_day = max(math.ceil(prints_per_day), 1)
    assert days >= 1
    assert days * per_day <= PRINTS_PER_RUN or days == 1
    assert (days + 1) * per_day > PRINTS_PER_RUN


def test_the_shipped_sample_imports_in_one_run_per_venue_and_an_hourly_universe_in_runs_of_over_a_year():
    assert days_per_run(2 * 3) >= 731  # BTC and ETH, every 8h: the sample's two years at once
    assert days_per_run(296 * 24) >= 366  # hyperliquid's 296 hourly perps: a year at once, as before


def test_day_checksums_ignore_order_and_see_changes():
    times = pd.date_range("2023-01-01", periods=6, freq="8h", tz="UTC")
    prints = pd.DataFrame(
        {
            "symbol": "BTC/USDT:USDT",
            "funding_time": times,
            "rate": [1e-4] * 6,
            "interval_h": 8.0,
            "mark_price": float("nan"),
            "index_price": float("nan"),
        }
    )
    sums = day_checksums(prints)
    assert day_checksums(prints.iloc[::-1]) == sums
    changed = day_checksums(prints.assign(rate=[1e-4] * 5 + [2e-4]))
    assert changed[times[0].normalize()] == sums[times[0].normalize()]
    assert changed[times[5].normalize()] != sums[times[5].normalize()]


@pytest.mark.slow
@pytest.mark.e2e
def test_kill_9_mid_import_then_resume_does_only_the_rest(data, tmp_path):
    exports = tmp_path / "exports"
    exports.mkdir()
    write_plain(exports / "plain.csv", "gate", "BTC/USDT:USDT", "2023-01-01", days=150)
    env = dict(os.environ)
    command = [sys.executable, "-m", "fund_pipeline.cli", "import", str(exports)]
    ledger = data / "imports" / "import_ledger.json"
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while not ledger.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(json.loads(ledger.read_text())["partitions"])
    assert 0 < done_before < 150
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"imported {150 - done_before} partition(s)" in again.stdout
    rows = stored(data)
    assert len(rows) == 150 * 3
    assert not rows.duplicated(["venue", "symbol", "funding_time"]).any()
    expected = pd.date_range("2023-01-01", periods=450, freq="8h", tz="UTC")
    assert (pd.DatetimeIndex(rows["funding_time"]).tz_convert("UTC") == expected).all()
