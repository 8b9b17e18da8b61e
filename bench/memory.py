"""Memory: resident memory of the live collector at 1,500 streams (300 symbols × 5 venues' worth)
for 1 hour of emulator time, sampled as it runs; it must stay flat after warm-up.

The load emulator pushes Binance-style all-market batches of 1,500 symbols every 3 emulator seconds
(Binance's default `!markPrice@arr` cadence), 1,200 frames for the hour, faster than real time.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import numpy as np

from bench._common import BenchResult, quick_parser, report
from bench.collector import collect_under_load

SECONDS_PER_FRAME = 3
# Flat: the resident set after warm-up grows by less than this over the run.
MAX_GROWTH_MIB = 10.0
WARMUP_SHARE = 0.2
FULL = {"symbols": 1_500, "emulator_seconds": 3_600, "prints_per_s": 30_000}
QUICK = {"symbols": 60, "emulator_seconds": 60, "prints_per_s": 3_000}


def run(quick: bool = False) -> BenchResult:
    size = QUICK if quick else FULL
    n_frames = size["emulator_seconds"] // SECONDS_PER_FRAME
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        steps, samples, _, collector = asyncio.run(
            collect_under_load(size["symbols"], [(size["prints_per_s"], n_frames)], Path(folder), SECONDS_PER_FRAME)
        )
    _, _, start, end = steps[0]
    during = [s for s in samples if start <= s[0] <= end]
    rss = np.array([s[3] for s in during])
    warm = int(len(rss) * WARMUP_SHARE)
    tail = max(1, len(rss) // 10)
    after_warmup = float(np.median(rss[warm : warm + tail]))
    at_end = float(np.median(rss[-tail:]))
    hours = np.array([s[1] / size["symbols"] * SECONDS_PER_FRAME / 3600 for s in during])
    slope = float(np.polyfit(hours[warm:], rss[warm:], 1)[0]) if len(rss) - warm >= 2 else float("nan")
    growth = at_end - after_warmup
    figures = {
        "streams": size["symbols"],
        "emulator seconds pushed": n_frames * SECONDS_PER_FRAME,
        "prints ingested": collector.stats["prints"],
        "wall s": end - start,
        "RSS at start of load MiB": float(rss[0]),
        "RSS after warm-up MiB (median)": after_warmup,
        "RSS at end MiB (median of last 10 %)": at_end,
        "RSS max MiB": float(rss.max()),
        "growth after warm-up MiB": growth,
        "fitted slope after warm-up MiB per emulator hour": slope,
    }
    return BenchResult(
        name="memory (collector)",
        target=f"flat resident memory after warm-up (growth < {MAX_GROWTH_MIB:.0f} MiB over the run)",
        met=growth < MAX_GROWTH_MIB,
        agree=collector.stats["prints"] == size["symbols"] * n_frames,
        figures=figures,
        notes=[
            f"warm-up = the first {WARMUP_SHARE:.0%} of the samples; "
            "RSS of the collector's process (the emulator runs in its own)",
            "one Binance-format whole-market connection carries all 1,500 symbols: the collector keys streams "
            "by (venue, symbol), so the load per builder is the same",
            "'outputs agree' here means every pushed print was ingested",
        ],
    )


def main() -> None:
    args = quick_parser(__doc__.splitlines()[0]).parse_args()
    report(run(quick=args.quick))


if __name__ == "__main__":
    main()
