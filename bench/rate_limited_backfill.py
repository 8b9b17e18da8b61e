"""A 300-symbol funding backfill against the emulator with the venues' rate limits on: paced vs unpaced.

The emulator enforces each adapter's RateLimit data (429 with Retry-After over a limit, the ban
status for a client that asks again before Retry-After has passed); its windows, and the pacer's,
are compressed by SCALE so a backfill that takes minutes on the real venues takes seconds here.
The paced CcxtSource must finish with zero bans; the reference is the same backfill with pacing
off, which meets the limits (and retries its 429s). Both must return the same prints.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pandas as pd

from bench._common import BenchResult, quick_parser, report
from fund_pipeline.emulator.server import Faults, RunningEmulator, start_emulator
from fund_pipeline.sources.ccxt import CcxtSource

START = pd.Timestamp("2025-03-01", tz="UTC")
DAYS = 3
VENUES = ("binance", "okx")
# Venue windows × SCALE: OKX's 10 funding-history requests per 2 s become 10 per second.
SCALE = 0.5
TARGET_BANS = 0


@dataclass(frozen=True)
class Size:
    extra_bases: int  # the 25 named bases + these synthetic ones
    days: int


FULL = Size(275, DAYS)
QUICK = Size(5, 1)


@contextmanager
def emulator(size: Size) -> Iterator[RunningEmulator]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    faults = Faults(rate_limits=True, rate_limit_scale=SCALE)
    started = start_emulator(start=START, speed=1e-9, faults=faults, n_extra_bases=size.extra_bases)
    running = asyncio.run_coroutine_threadsafe(started, loop).result(120)
    try:
        yield running
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def backfill(running: RunningEmulator, paced: bool, size: Size) -> tuple[float, dict[str, pd.DataFrame], dict]:
    """Wall seconds, the prints per venue and the emulator's answer counts of one backfill."""
    running.state.counters.clear()
    running.state.limits = type(running.state.limits)(SCALE)
    source = CcxtSource(
        venues=VENUES, api_base_url=running.base_url, now=running.state.clock.now, throttle=paced,
        rate_limit_scale=SCALE, backoff_base_s=0.05, max_retries=8,
    )  # fmt: skip
    end = START - pd.Timedelta(hours=1)
    begin = end - pd.Timedelta(days=size.days)
    started = time.perf_counter()
    prints = {venue: source.funding_prints(venue, begin, end) for venue in VENUES}
    seconds = time.perf_counter() - started
    counters = dict(running.state.counters)
    counters["retried"] = source.rate_limited
    return seconds, prints, counters


def _count(counters: dict, status: int) -> int:
    return sum(n for key, n in counters.items() if key.startswith("rate_limited:") and key.endswith(f":{status}"))


def run(quick: bool = False) -> BenchResult:
    size = QUICK if quick else FULL
    logging.getLogger("fund_pipeline.sources.ccxt").setLevel(logging.ERROR)  # the unpaced run's retries
    with emulator(size) as running:
        paced_s, paced, paced_counts = backfill(running, paced=True, size=size)
        unpaced_s, unpaced, unpaced_counts = backfill(running, paced=False, size=size)
    agree = all(paced[v].equals(unpaced[v]) for v in VENUES)
    symbols = {v: int(paced[v]["symbol"].nunique()) for v in VENUES}
    requests = {v: paced_counts.get(f"rest:{v}", 0) for v in VENUES}
    bans = _count(paced_counts, 418)
    figures = {
        **{f"{v} symbols": n for v, n in symbols.items()},
        **{f"{v} requests": n for v, n in requests.items()},
        "paced: wall s": paced_s,
        "paced: 429 answers": _count(paced_counts, 429),
        "paced: 418 answers": bans,
        "unpaced: wall s": unpaced_s,
        "unpaced: 429 answers": _count(unpaced_counts, 429),
        "unpaced: 418 answers": _count(unpaced_counts, 418),
        "prints per venue": {v: len(paced[v]) for v in VENUES},
    }
    return BenchResult(
        name="rate-limited backfill",
        target=f"{sum(symbols.values())} symbol backfills under the venues' limits: {TARGET_BANS} bans (418)",
        met=bans == TARGET_BANS and _count(paced_counts, 429) == 0,
        agree=agree,
        figures=figures,
        notes=[
            f"limits and pacing windows × {SCALE} (OKX funding history: 10 per 2 s → 10 per {2 * SCALE:g} s)",
            "OKX's limit binds per IP here (its documented rule is per IP and instrument): pacing is conservative",
            "unpaced = the same CcxtSource with throttle off: it honours Retry-After, so its 429s are retried",
        ],
    )


def main() -> None:
    args = quick_parser((__doc__ or "").splitlines()[0]).parse_args()
    report(run(quick=args.quick))


if __name__ == "__main__":
    main()
