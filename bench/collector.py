"""Live collector: the real Collector against a local emulator pushing `!markPrice@arr`-style batches
for 300 symbols at a rising rate, until saturation; receive → durable-on-disk latency at 1,000 prints/s.

Reference in the same run, on the same frames: `json.loads` and a plain dict loop, the parsing the
notebooks did, against the library's StreamParser (rates, times and symbols must agree).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from bench._common import BenchResult, best_of, quick_parser, report, resident_mib
from bench.live_emulator import LoadEmulator, batch_frame, symbol_names
from fund_pipeline.domain.records import PRINT_COLUMNS, FundingPrint
from fund_pipeline.live.collector import Collector, CollectorConfig
from fund_pipeline.venues.streams import StreamParser

TARGET_PRINTS_PER_S = 20_000
TARGET_P99_S = 1.2
LATENCY_RATE = 1_000
# A step is sustained when the collector ingests this share of what was offered.
SUSTAINED_SHARE = 0.97


@dataclass(frozen=True)
class Size:
    symbols: int
    latency_frames: int
    ladder: tuple[int, ...]
    ladder_seconds: int
    parse_frames: int


FULL = Size(300, 40, (5_000, 10_000, 20_000, 30_000, 45_000, 60_000, 90_000, 120_000), 5, 400)
QUICK = Size(30, 4, (3_000,), 1, 10)


class NoRestHistory:
    """REST stand-in for the warm start and gap-fill: the load emulator has no settled history."""

    def last_settled(self, venue: str, symbol: str, n: int) -> pd.DataFrame:
        return pd.DataFrame({c: [] for c in PRINT_COLUMNS})

    def settled_since(self, venue: str, symbol: str, since) -> pd.DataFrame:
        return pd.DataFrame({c: [] for c in PRINT_COLUMNS})

    def stream_intervals(self, venue: str, symbols: list[str]) -> dict[str, float]:
        """The load emulator lists no fundingInfo exceptions: every symbol settles on Binance's 8h default."""
        return dict.fromkeys(symbols, 8.0)


def parse_with_dict_loop(frames: list[str]) -> list[dict]:
    """The reference: json.loads and a dict per event."""
    out = []
    for frame in frames:
        for item in json.loads(frame):
            out.append(
                {
                    "symbol": item["s"],
                    "funding_time": int(item["T"]) * 1_000_000,
                    "ts": int(item["E"]) * 1_000_000,
                    "rate": float(item["r"]),
                }
            )
    return out


def parse_with_library(frames: list[str], symbols: list[str]) -> list[FundingPrint]:
    parser = StreamParser("binance", dict.fromkeys(symbols, 8.0))
    out = []
    for frame in frames:
        out += parser.parse(frame, 0)
    return out


async def collect_under_load(
    n_symbols: int, schedule: list[tuple[float, int]], landing: Path, seconds_per_frame: int = 1
) -> tuple[list, list, list, Collector]:
    """Run the Collector against a LoadEmulator until the schedule is pushed and flushed.

    Returns the emulator's steps, samples (monotonic time, prints ingested, lags recorded, RSS MiB)
    every 0.1 s, the durable lags and the collector.
    """
    emulator = LoadEmulator(n_symbols, schedule, seconds_per_frame)
    bases = [native[: -len("USDT")] for native in symbol_names(n_symbols)]
    collector = Collector(
        ["binance"], bases, landing, api_base_url=f"http://127.0.0.1:{emulator.port}",
        config=CollectorConfig(all_market=True), rest_source=NoRestHistory(),
    )  # fmt: skip
    samples = []

    async def sample() -> None:
        while True:
            samples.append((time.monotonic(), collector.stats["prints"], len(collector.durable_lag_s), resident_mib()))
            await asyncio.sleep(0.1)

    running = asyncio.create_task(collector.run())
    sampler = asyncio.create_task(sample())
    try:
        expected = sum(n for _, n in schedule) / 5 + 120
        steps = await asyncio.to_thread(emulator.steps, expected)
        await asyncio.sleep(collector.config.flush_seconds + 0.5)
    finally:
        collector.stop()
        await running
        sampler.cancel()
        emulator.stop()
    return steps, samples, list(collector.durable_lag_s), collector


def _window(samples: list, start: float, end: float) -> tuple[float, int, int]:
    times = np.array([s[0] for s in samples])
    i0, i1 = int(np.searchsorted(times, start)), int(np.searchsorted(times, end))
    i1 = min(i1, len(samples) - 1)
    ingested = samples[i1][1] - samples[i0][1]
    return ingested / max(samples[i1][0] - samples[i0][0], 1e-9), samples[i0][2], samples[i1][2]


def run(quick: bool = False) -> BenchResult:
    size = QUICK if quick else FULL
    n_symbols = size.symbols
    frames = [batch_frame(symbol_names(n_symbols), second) for second in range(size.parse_frames)]
    reference_seconds, reference_out = best_of(lambda: parse_with_dict_loop(frames), 3)
    unified = [native.replace("USDT", "/USDT:USDT") for native in symbol_names(n_symbols)]
    library_seconds, parsed_out = best_of(lambda: parse_with_library(frames, unified), 3)
    reference = cast(list[dict], reference_out)
    parsed = cast(list[FundingPrint], parsed_out)
    agree = len(reference) == len(parsed) and all(
        (p.funding_time, p.ts, p.rate) == (d["funding_time"], d["ts"], d["rate"])
        and p.symbol.replace("/USDT:USDT", "USDT") == d["symbol"]
        for p, d in zip(parsed, reference, strict=True)
    )

    schedule: list[tuple[float, int]] = [(float(LATENCY_RATE), size.latency_frames)] + [
        (float(rate), max(1, int(rate * size.ladder_seconds / n_symbols))) for rate in size.ladder
    ]
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as folder:
        steps, samples, lags, collector = asyncio.run(collect_under_load(n_symbols, schedule, Path(folder)))
        segments = len(list(Path(folder).rglob("*.parquet")))

    figures = {
        "symbols": n_symbols,
        "reference json + dict loop prints/s": len(reference) / reference_seconds,
        "StreamParser.parse prints/s": len(parsed) / library_seconds,
        "parser speed vs reference": reference_seconds / library_seconds,
    }
    sustained, p99_at_latency_rate = 0.0, float("nan")
    for offered, _frames, start, end in steps:
        rate, lag_lo, lag_hi = _window(samples, start, end)
        step_lags = lags[lag_lo:lag_hi]
        p99 = float(np.percentile(step_lags, 99)) if step_lags else float("nan")
        ok = rate >= SUSTAINED_SHARE * offered
        figures[f"offered {offered:,.0f}/s: ingested prints/s"] = rate
        figures[f"offered {offered:,.0f}/s: p99 receive→durable s"] = p99
        if ok:
            sustained = max(sustained, offered)
        if offered == LATENCY_RATE:
            p99_at_latency_rate = p99
    figures |= {
        "highest offered rate sustained prints/s": sustained,
        "p99 receive→durable at 1,000 prints/s s": p99_at_latency_rate,
        "prints ingested": collector.stats["prints"],
        "landing segment files": segments,
    }
    return BenchResult(
        name="live collector",
        target=(
            f"sustained ≥ {TARGET_PRINTS_PER_S:,} prints/s into landing; "
            f"p99 receive→durable ≤ {TARGET_P99_S} s at {LATENCY_RATE:,} prints/s"
        ),
        met=sustained >= TARGET_PRINTS_PER_S and p99_at_latency_rate <= TARGET_P99_S,
        agree=agree,
        figures=figures,
        notes=[
            f"a step is sustained when the collector ingests ≥ {SUSTAINED_SHARE:.0%} of the offered rate over the step",
            "receive→durable is the collector's own durable_lag_s: "
            "first print of a batch received → its segment renamed into place",
        ],
    )


def main() -> None:
    args = quick_parser(__doc__.splitlines()[0]).parse_args()
    report(run(quick=args.quick))


if __name__ == "__main__":
    main()
