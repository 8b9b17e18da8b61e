"""Run every benchmark (`python -m bench`, `make bench`): figures, ratios and verdicts, then the machine.

`--quick` runs each benchmark's smoke size; `--only NAME ...` picks benchmarks; `--markdown PATH`
also writes the figures as a markdown table (the raw material of bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from bench._common import BenchResult, format_value, machine, report
from bench.curve_data import predicted_prints

# Live collector, memory and the fault suite last: they share the machine with the emulator they start.
BENCHMARKS = [
    "curve_streaming",
    "curve_replay",
    "feature_store",
    "hedge_baskets",
    "model_training",
    "forecast_skill",
    "backfill",
    "files_source",
    "real_sample",
    "rate_limited_backfill",
    "universe",
    "event_log",
    "warehouse_writers",
    "collector",
    "memory",
    "faults",
]


def markdown(results: list[BenchResult], host: dict) -> str:
    lines = ["| benchmark | figure | value |", "|---|---|---|"]
    for result in results:
        for key, value in result.figures.items():
            lines.append(f"| {result.name} | {key} | {format_value(value)} |")
        verdict = "met" if result.met else "missed"
        lines.append(f"| {result.name} | **target: {result.target}** | **{verdict}**, outputs agree: {result.agree} |")
    lines += ["", "Machine: " + ", ".join(f"{k} {v}" for k, v in host.items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes (seconds), figures not meaningful")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=BENCHMARKS)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the figures to this markdown file")
    args = parser.parse_args()
    host = machine()
    results = []
    for name in args.only:
        result = importlib.import_module(f"bench.{name}").run(quick=args.quick)
        report(result)
        results.append(result)
        if name == "curve_replay":
            predicted_prints.cache_clear()
    print("== machine ==")
    for key, value in host.items():
        print(f"  {key}: {value}")
    if args.markdown is not None:
        args.markdown.write_text(markdown(results, host))


if __name__ == "__main__":
    main()
