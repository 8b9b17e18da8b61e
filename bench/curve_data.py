"""Predicted prints for the curve benchmarks: 1 Hz, 20 venue × symbol streams of the simulated market."""

from __future__ import annotations

import functools

import pandas as pd

from fund_pipeline.sources.simulated import SIM_EPOCH, SimulatedMarket

# 5 venues × 4 bases: 8h (binance, bybit, okx, deribit) and 1h (hyperliquid) funding in one frame.
CURVE_BASES = ("BTC", "ETH", "SOL", "DOGE")
N_STREAMS = 20
CURVE_PRINT_COLUMNS = ["venue", "symbol", "funding_time", "ts", "rate", "interval_h"]
SECONDS_PER_CHUNK = 86_400


@functools.lru_cache(maxsize=2)
def predicted_prints(n_prints: int) -> pd.DataFrame:
    """`n_prints` predicted prints, one per stream per second from the simulation epoch, in arrival order.

    `venue` and `symbol` are categoricals, as a frame of millions of prints is held in practice (DuckDB
    ENUM columns and Parquet columns read with `read_dictionary` come back so): a few distinct strings
    repeated millions of times. Generated a day at a time so the simulator's intermediates stay small; cached because
    both curve benchmarks time the same frame.
    """
    market = SimulatedMarket(bases=CURVE_BASES)
    n_seconds = -(-n_prints // N_STREAMS)
    chunks = []
    for first in range(0, n_seconds, SECONDS_PER_CHUNK):
        times = pd.date_range(
            SIM_EPOCH + pd.Timedelta(seconds=first), periods=min(SECONDS_PER_CHUNK, n_seconds - first), freq="s"
        )
        per_venue = [market.predicted_rates(venue, None, times)[CURVE_PRINT_COLUMNS] for venue in market.venues()]
        chunks.append(pd.concat(per_venue, ignore_index=True).sort_values("ts", kind="stable"))
    prints = pd.concat(chunks, ignore_index=True).iloc[:n_prints].reset_index(drop=True)
    prints = prints.astype({"venue": "category", "symbol": "category"})
    streams = prints[["venue", "symbol"]].drop_duplicates()
    if len(streams) != N_STREAMS:
        raise RuntimeError(f"expected {N_STREAMS} venue × symbol streams, the simulator gave {len(streams)}")
    return prints
