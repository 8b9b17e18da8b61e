"""Shared benchmark helpers: timing, the machine description and a uniform result record.

Every benchmark returns a `BenchResult` whose figures are printed by `report` and collected by
`python -m bench` into bench/RESULTS.md. Timings use `time.perf_counter`; the machine is shared, so
each benchmark times its reference in the same run on the same data and reports the ratio.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


@dataclass
class BenchResult:
    """What one benchmark measured: named figures, the target verdict and whether both paths agree."""

    name: str
    target: str
    met: bool
    agree: bool
    figures: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def best_of(func: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Smallest wall time of `repeats` calls (the least disturbed by other load) and the last result."""
    wall, _, result = best_wall_and_cpu(func, repeats)
    return wall, result


def best_wall_and_cpu(func: Callable[[], T], repeats: int) -> tuple[float, float, T]:
    """Smallest wall and smallest CPU seconds of `repeats` (>= 1) calls, and the last result.

    On the shared machine CPU time is the less disturbed measure of single-threaded code: it leaves
    out the time this process waits for a core, not the memory-bandwidth contention.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        gc.collect()
        wall, cpu = time.perf_counter(), time.process_time()
        result = func()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return best_wall, best_cpu, result


def report(result: BenchResult) -> None:
    """Print a result as aligned name: value lines."""
    print(f"== {result.name} ==")
    width = max((len(k) for k in result.figures), default=0)
    for key, value in result.figures.items():
        print(f"  {key:<{width}} : {format_value(value)}")
    print(f"  target: {result.target} -> {'MET' if result.met else 'MISSED'}")
    print(f"  optimised and reference agree: {result.agree}")
    for note in result.notes:
        print(f"  note: {note}")


def format_value(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e12:
            return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
        return f"{value:.3e}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def quick_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (seconds), figures not meaningful")
    return parser


def machine() -> dict:
    """nproc, CPU model, RAM, Python and the date: what RESULTS.md must state next to the figures."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gib = float("nan")
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = int(line.split()[1]) / 2**20
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(ram_gib, 1),
        "python": platform.python_version(),
        "load average (1 min) at start": round(os.getloadavg()[0], 2),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def resident_mib() -> float:
    """Current resident set size of this process in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")
