"""Bytes per venue × symbol × day: reconstructed predicted prints (warehouse) vs live landing.

Reconstructed history stores one predicted print per symbol every `cadence` (default 5 min: 288
a day for any interval); the live collector lands the venue's stream (binance markPrice@1s: one
print a second per symbol) as one zstd Parquet segment per flush second holding every symbol's
prints of that second. The landing figure is measured on `LANDING_SECONDS` segments written the
collector's way (`prints_table` + zstd) and scaled to a day; the reconstructed one on a full
day written as one zstd Parquet file (what the warehouse compresses to is reported beside it).

Run: .venv/bin/python -m bench.predicted_storage [n_symbols] [cadence_s]
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fund_pipeline.domain.predicted import FundingFormula, ReconstructionConfig, Weighting, reconstruct_predicted
from fund_pipeline.domain.records import FundingPrint
from fund_pipeline.domain.time import NS_PER_SECOND
from fund_pipeline.live.landing import prints_table

DAY = pd.Timestamp("2026-03-02", tz="UTC")
LANDING_SECONDS = 600


def minute_samples(n_symbols: int, rng: np.random.Generator) -> pd.DataFrame:
    minutes = 24 * 60
    ts = DAY + pd.to_timedelta(np.arange(minutes) * 60 + 59.999, unit="s")
    return pd.DataFrame(
        {
            "symbol": np.repeat([f"S{i:03d}/USDT:USDT" for i in range(n_symbols)], minutes),
            "base": np.repeat([f"S{i:03d}" for i in range(n_symbols)], minutes),
            "ts": np.tile(ts, n_symbols),
            "premium": rng.normal(3e-4, 8e-4, n_symbols * minutes),
            "interval_h": 8.0,
            "mark_price": np.tile(100 + np.cumsum(rng.normal(0, 0.01, minutes)), n_symbols),
            "index_price": np.tile(100 + np.cumsum(rng.normal(0, 0.01, minutes)), n_symbols),
        }
    )


def reconstructed_bytes(n_symbols: int, cadence_s: int, rng: np.random.Generator) -> tuple[int, int, int]:
    samples = minute_samples(n_symbols, rng)
    formulas = dict.fromkeys(samples["symbol"].unique(), FundingFormula(1e-4, 5e-4, 0.0075, weighting=Weighting.LINEAR))
    prints = reconstruct_predicted("binance", samples, formulas, ReconstructionConfig(cadence_s))
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(prints, preserve_index=False), buf, compression="zstd")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.duckdb"
        con = duckdb.connect(str(path))
        con.execute("CREATE TABLE p AS SELECT * FROM prints")
        con.execute("CHECKPOINT")
        used = con.execute("SELECT used_blocks * block_size FROM pragma_database_size()").fetchone()
        con.close()
    return len(prints), buf.getbuffer().nbytes, int(used[0]) if used else 0


def landing_bytes(n_symbols: int, rng: np.random.Generator) -> int:
    """Bytes of LANDING_SECONDS one-second segments of n_symbols 1 Hz predicted prints."""
    total = 0
    funding = (DAY + pd.Timedelta(hours=8)).value
    for second in range(LANDING_SECONDS):
        t = DAY.value + second * NS_PER_SECOND
        rows = [
            FundingPrint("binance", f"S{i:03d}/USDT:USDT", f"S{i:03d}", "predicted", funding, t + 7_000_000,
                         t + 9_000_000, float(rng.normal(1e-4, 1e-5)), 8.0, 100.0 + i, 99.9 + i, "ws")
            for i in range(n_symbols)
        ]  # fmt: skip
        buf = io.BytesIO()
        pq.write_table(prints_table(rows), buf, compression="zstd")
        total += buf.getbuffer().nbytes
    return total


def main(n_symbols: int = 25, cadence_s: int = 300) -> None:
    rng = np.random.default_rng(0)
    n, parquet, duck = reconstructed_bytes(n_symbols, cadence_s, rng)
    live = landing_bytes(n_symbols, rng) * (86_400 / LANDING_SECONDS)
    per = n_symbols
    print(f"{n_symbols} symbols, one day, 8h windows")
    print(
        f"reconstructed at {cadence_s}s: {n // per} prints/symbol/day, {parquet / per:,.0f} B/symbol/day "
        f"zstd Parquet ({duck / per:,.0f} B/symbol/day in DuckDB blocks of 256 KB: an upper bound at this size)"
    )
    print(
        f"live landing at 1 Hz: 86,400 prints/symbol/day, {live / per:,.0f} B/symbol/day "
        f"(one zstd segment per second, {LANDING_SECONDS} s measured)"
    )
    print(f"ratio live / reconstructed: {live / parquet:,.0f}x")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    main(*args)
