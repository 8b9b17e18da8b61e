"""Universe scale through Dagster: 25, 100 and 300 bases × 5 venues × 1 year of the simulated market.

Each size runs in its own process (so its peak resident memory is its own) on a fresh warehouse
and the project's instance settings (`instance.prepare_home` in a temporary DAGSTER_HOME), stage
by stage as `make demo` runs them: ingest (market_universe, raw_funding_prints, market_bars) and
curves (curve_history) as one single-run backfill per venue over the year, the feature store over
the year's days, then one weekly partition (clusters, the walk-forward model, its forecasts and the
hedge baskets). Per stage: wall and CPU seconds, the peak RSS of the process doing the work
(sampled every 50 ms from /proc, and getrusage's lifetime maximum), and the machine's load average
(on a shared machine the wall time is mostly the wait for a core; the CPU time is the work); the weekly
stage's wall time is also split by asset (Dagster's step stats). The 25-base run is the
reference the others are compared with: each stage's growth is reported as the exponent k of
time ∝ bases^k. The fixed cost per partition: one curve_history partition run alone, profiled,
its time split by the package it was spent in, against the per-partition cost inside the year run.
The stored prints of one venue must match the simulated market's, counted without Dagster.

Target (issue 11): the 300-base size ≤ 3 min on 2 cores with peak RSS ≤ 4 GiB; reported, never
asserted. A size that overruns the budget is stopped and reported with the stages it finished.

    .venv/bin/python -m bench.universe [--quick] [--budget-s 1400] [--bases 25,100,300]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench._common import BenchResult, report, resident_mib

TARGET_S = 180.0
TARGET_RSS_MIB = 4096.0
VENUES = ("binance", "bybit", "okx", "hyperliquid", "deribit")
FIRST_DAY = pd.Timestamp("2025-01-01", tz="UTC")  # the simulated market's epoch
FEATURE_WARMUP_DAYS = 8
CHECK_VENUE = "binance"
INGEST = ["market_universe", "raw_funding_prints", "market_bars"]
CURVES = ["curve_history"]
FEATURES = ["feature_store"]
WEEKLY = ["symbol_clusters", "funding_forecast_model", "funding_forecasts", "weekly_hedge_baskets"]
STAGES = ("ingest", "curves", "features", "weekly model + basket")


@dataclass(frozen=True)
class Size:
    bases: tuple[int, ...]
    days: int


FULL = Size((25, 100, 300), 365)
QUICK = Size((3,), 50)  # a basket needs 30 days of bars before its week
DEFAULT_BUDGET_S = 1400.0
# The budget's split between the sizes, smallest first: a larger one costs more.
BUDGET_SHARES = (2.0, 3.0, 5.0)


class RssSampler:
    """Peak resident memory of this process between `start()` and `stop()`, sampled every `EVERY_S`."""

    EVERY_S = 0.05

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.peak = resident_mib()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.EVERY_S):
            self.peak = max(self.peak, resident_mib())

    def stop(self) -> float:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return max(self.peak, resident_mib())


def market_for(bases: int):
    """The simulated market's resource at `bases` bases: the first named ones, then synthetic listings."""
    from fund_pipeline.resources import MarketSourceResource
    from fund_pipeline.sources.sim_paths import NAMED_BASES
    from fund_pipeline.sources.simulated import SimulatedMarket

    class UniverseMarket(MarketSourceResource):
        """The simulated market with `extra_bases` synthetic listings (X001 ..) beside the named ones."""

        extra_bases: int = 0

        def _build(self) -> SimulatedMarket:
            named = tuple(self.bases) if self.bases else None
            return SimulatedMarket(seed=self.seed, bases=named, n_extra_bases=self.extra_bases)

    if bases <= len(NAMED_BASES):
        return UniverseMarket(bases=[b.name for b in NAMED_BASES[:bases]])
    # a base list would leave the synthetic listings out: every named base, then the extras
    return UniverseMarket(extra_bases=bases - len(NAMED_BASES))


def child(bases: int, days: int, out: Path) -> None:
    """One size, stage by stage; each finished stage is appended to `out` as a JSON line at once."""
    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from fund_pipeline.definitions import build_definitions
    from fund_pipeline.demo import weekly_keys
    from fund_pipeline.instance import prepare_home
    from fund_pipeline.locations import asset_definitions, resources_of
    from fund_pipeline.partition_runs import QUIET
    from fund_pipeline.resources import LandingZone, Warehouse

    def emit(record: dict) -> None:
        with out.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    last_day = FIRST_DAY + pd.Timedelta(days=days - 1)
    with tempfile.TemporaryDirectory(prefix="bench-universe-") as folder:
        prepare_home(Path(folder) / "dagster_home")
        warehouse = Warehouse(database=str(Path(folder) / "warehouse.duckdb"))
        market = market_for(bases)
        defs = build_definitions(
            {"warehouse": warehouse, "market_source": market, "landing": LandingZone(path=str(Path(folder) / "l"))}
        )
        assets, resources = asset_definitions(defs), resources_of(defs)
        listed = {v: len(market.get().instruments(v, last_day)) for v in VENUES}
        emit({"stage": "universe", "symbols_per_venue": listed})
        with dg.DagsterInstance.get() as instance:

            def materialise(selection: list[str], first: str | None, last: str | None) -> str:
                """The run's id."""
                tags = (
                    {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}
                    if first and last
                    else {}
                )
                return dg.materialize(
                    assets, selection=selection, instance=instance, tags=tags, resources=resources, run_config=QUIET
                ).run_id

            def timed(stage: str, selection: list[str], first: str, last: str, partitions: int) -> None:
                """One run, appended to `out` as soon as it has finished: wall, CPU and peak memory."""
                sampler = RssSampler()
                sampler.start()
                load_before = os.getloadavg()[0]
                wall, cpu = time.perf_counter(), time.process_time()
                run_id = materialise(selection, first, last)
                emit(
                    {
                        "stage": stage,
                        "run": f"{first} .. {last}",
                        "partitions": partitions,
                        "wall_s": time.perf_counter() - wall,
                        "cpu_s": time.process_time() - cpu,
                        "peak_rss_mib": sampler.stop(),
                        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                        "load": [load_before, os.getloadavg()[0]],
                        "step_wall_s": step_seconds(instance, run_id),
                    }
                )

            for stage, selection in (("ingest", INGEST), ("curves", CURVES)):
                for v in VENUES:
                    timed(stage, selection, f"{FIRST_DAY:%Y-%m-%d}|{v}", f"{last_day:%Y-%m-%d}|{v}", days)
            first_feature = FIRST_DAY + pd.Timedelta(days=FEATURE_WARMUP_DAYS)
            feature_days = (last_day - first_feature).days + 1
            timed("features", FEATURES, f"{first_feature:%Y-%m-%d}", f"{last_day:%Y-%m-%d}", feature_days)
            # the last week whose days all have features
            week = weekly_keys(FIRST_DAY, last_day - pd.Timedelta(days=7))[-1]
            timed("weekly model + basket", WEEKLY, week, week, 1)

            emit({"stage": "fixed cost", **profile_one_partition(materialise, last_day)})
            stored = warehouse.query(
                f"SELECT count(*) AS n FROM raw_funding_prints WHERE venue = '{CHECK_VENUE}' AND kind = 'settled'"
            )["n"].iloc[0]
            prints = market.get().funding_prints(CHECK_VENUE, FIRST_DAY, last_day + pd.Timedelta(days=1))
            emit(
                {
                    "stage": "check",
                    "stored_settled": int(stored),
                    "simulated_settled": int((prints["kind"] == "settled").sum()),
                    "symbols": int(prints["symbol"].nunique()),
                }
            )


def step_seconds(instance, run_id: str) -> dict[str, float]:
    """Wall seconds of each step (asset) of a run, from Dagster's step stats: where a stage's time went."""
    return {
        stat.step_key: stat.end_time - stat.start_time
        for stat in instance.get_run_step_stats(run_id)
        if stat.start_time is not None and stat.end_time is not None
    }


def profile_one_partition(materialise: Callable[[list[str], str, str], str], day: pd.Timestamp) -> dict:
    """One curve_history partition run alone under cProfile: its wall time and where it went, by package."""
    key = f"{day:%Y-%m-%d}|{VENUES[0]}"
    profiler = cProfile.Profile()
    wall = time.perf_counter()
    profiler.enable()
    materialise(CURVES, key, key)
    profiler.disable()
    seconds = time.perf_counter() - wall
    by_package: dict[str, float] = {}
    for (path, _, function), (_, _, own, _, _) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        package = package_of(path, function)
        by_package[package] = by_package.get(package, 0.0) + own
    top = dict(sorted(by_package.items(), key=lambda kv: -kv[1])[:6])
    return {"one_partition_wall_s": seconds, "own_s_by_package": top}


def package_of(path: str, function: str) -> str:
    """The top-level package a profiled function belongs to: its file's, or for a C function the module
    named in its description (`<method 'execute' of 'sqlite3.Cursor' objects>` is sqlite3)."""
    parts = Path(path).parts
    if "fund_pipeline" in parts:
        return "fund_pipeline"
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    named = re.search(r"(?:of '|built-in method )_?([A-Za-z]\w*)", function)
    if path == "~" and named:
        return f"{named.group(1)} (C)"
    return "python stdlib"


def run_size(bases: int, days: int, budget_s: float) -> tuple[list[dict], str]:
    """The runs one size finished (in its own process) and how it ended: finished, failed or stopped."""
    with tempfile.TemporaryDirectory(prefix="bench-universe-out-") as folder:
        out = Path(folder) / "stages.jsonl"
        command = [sys.executable, "-m", "bench.universe", "--child", str(bases), "--days", str(days)]
        command += ["--out", str(out)]
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        proc = subprocess.Popen(command, env=env)
        try:
            ended = "finished" if proc.wait(timeout=max(budget_s, 1.0)) == 0 else "failed (see its output)"
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            ended = f"stopped at its budget ({budget_s:.0f} s)"
        records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return records, ended


def stage_totals(records: list[dict]) -> dict[str, dict]:
    """Per stage: the sums of its finished runs' times and partitions, the peak memory, the runs done."""
    totals: dict[str, dict] = {}
    for r in records:
        if "wall_s" not in r:
            continue
        t = totals.setdefault(r["stage"], {"wall_s": 0.0, "cpu_s": 0.0, "partitions": 0, "runs": 0, "peak": 0.0})
        t["wall_s"] += r["wall_s"]
        t["cpu_s"] += r["cpu_s"]
        t["partitions"] += r["partitions"]
        t["runs"] += 1
        # the sampled peak while the stage ran: getrusage's maximum is the process's lifetime one
        t["peak"] = max(t["peak"], r["peak_rss_mib"])
        t["lifetime_peak"] = max(t.get("lifetime_peak", 0.0), r["maxrss_mib"])
        t.setdefault("load", []).extend(r.get("load", []))
    return totals


def growth_exponent(small: float, large: float, bases_small: int, bases_large: int) -> float:
    if small <= 0 or large <= 0:
        return float("nan")
    return math.log(large / small) / math.log(bases_large / bases_small)


RUNS_PER_STAGE = {"ingest": len(VENUES), "curves": len(VENUES), "features": 1, "weekly model + basket": 1}


def run(quick: bool = False, budget_s: float = DEFAULT_BUDGET_S, sizes: tuple[int, ...] | None = None) -> BenchResult:
    size = QUICK if quick else FULL
    if sizes:
        size = Size(tuple(sorted(sizes)), size.days)
    started = time.perf_counter()
    totals: dict[int, dict[str, dict]] = {}
    runs: dict[int, dict[tuple[str, str], float]] = {}
    extras: dict[int, dict[str, dict]] = {}
    figures: dict = {}
    for i, bases in enumerate(size.bases):
        # each size gets its share (BUDGET_SHARES) of what is left; what a smaller one does not use passes on
        shares = BUDGET_SHARES[-len(size.bases) :]
        left = (budget_s - (time.perf_counter() - started)) * shares[i] / sum(shares[i:])
        records, ended = run_size(bases, size.days, left)
        totals[bases] = stage_totals(records)
        runs[bases] = {(r["stage"], r["run"]): r["wall_s"] for r in records if "wall_s" in r}
        extras[bases] = {r["stage"]: r for r in records if "wall_s" not in r}
        for name in STAGES:
            t = totals[bases].get(name)
            if t is None:
                continue
            share = "" if t["runs"] == RUNS_PER_STAGE[name] else f" ({t['runs']} of {RUNS_PER_STAGE[name]} runs)"
            figures[f"{bases} bases: {name} wall s / cpu s{share}"] = f"{t['wall_s']:.1f} / {t['cpu_s']:.1f}"
            figures[f"{bases} bases: {name} ms per partition"] = 1e3 * t["wall_s"] / t["partitions"]
            figures[f"{bases} bases: {name} peak RSS MiB"] = round(t["peak"])
            if name == "weekly model + basket":
                steps = next((r.get("step_wall_s") for r in records if r.get("stage") == name), None) or {}
                figures[f"{bases} bases: {name} wall s by asset"] = ", ".join(f"{k} {v:.1f}" for k, v in steps.items())
            if t.get("load"):
                figures[f"{bases} bases: {name} load average (1 min) at its runs' ends"] = (
                    f"{min(t['load']):.1f} .. {max(t['load']):.1f}"
                )
        if "universe" in extras[bases]:
            figures[f"{bases} bases: symbols per venue"] = extras[bases]["universe"]["symbols_per_venue"]
        figures[f"{bases} bases: ended"] = ended
        if "check" in extras[bases]:
            figures[f"{bases} bases: {CHECK_VENUE} symbols, settled prints (stored / simulated)"] = (
                f"{extras[bases]['check']['symbols']}, "
                f"{extras[bases]['check']['stored_settled']:,} / {extras[bases]['check']['simulated_settled']:,}"
            )
        figures[f"{bases} bases: total wall s (finished runs)"] = sum(t["wall_s"] for t in totals[bases].values())
        figures[f"{bases} bases: total CPU s (finished runs)"] = sum(t["cpu_s"] for t in totals[bases].values())
        figures[f"{bases} bases: process peak RSS MiB (getrusage)"] = round(
            max((t["lifetime_peak"] for t in totals[bases].values()), default=0.0)
        )
        if "fixed cost" in extras[bases]:
            fixed = extras[bases]["fixed cost"]
            figures[f"{bases} bases: one curve_history partition alone s"] = fixed["one_partition_wall_s"]
            figures[f"{bases} bases: ... its own time by package s"] = ", ".join(
                f"{k} {v:.2f}" for k, v in fixed["own_s_by_package"].items()
            )
    reference = size.bases[0]
    for bases in size.bases[1:]:
        for name in STAGES:
            # over the runs both sizes finished (the same venues and days)
            both = [key for key in runs[bases] if key[0] == name and key in runs[reference]]
            if both:
                small, large = sum(runs[reference][k] for k in both), sum(runs[bases][k] for k in both)
                figures[f"growth {reference} → {bases} bases: {name} (time ∝ bases^k), k"] = growth_exponent(
                    small, large, reference, bases
                )
    checks = [e["check"] for e in extras.values() if "check" in e]
    agree = bool(checks) and all(c["stored_settled"] == c["simulated_settled"] > 0 for c in checks)
    largest = totals[size.bases[-1]]
    complete = all(largest.get(n, {}).get("runs") == RUNS_PER_STAGE[n] for n in STAGES)
    largest_total = sum(t["wall_s"] for t in largest.values())
    largest_rss = max((t["lifetime_peak"] for t in largest.values()), default=float("inf"))
    return BenchResult(
        name="universe",
        target=f"{size.bases[-1]} bases × {len(VENUES)} venues × {size.days} days ≤ {TARGET_S:.0f} s, "
        f"peak RSS ≤ {TARGET_RSS_MIB / 1024:.0f} GiB",
        met=complete and largest_total <= TARGET_S and largest_rss <= TARGET_RSS_MIB,
        agree=agree,
        figures=figures,
        notes=[
            "each size in its own process, with its share of the budget left (2:3:5); stages as make demo runs them "
            "(one single-run backfill per venue); a stopped size reports the runs it finished",
            f"the {reference}-base run is the reference of the growth exponents (runs both finished; k = 1: linear)",
            f"outputs agree: {CHECK_VENUE}'s stored settled prints equal the simulated market's count for the range",
            "one curve_history partition alone: Dagster's fixed cost per run, profiled (own time by package)",
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run, figures not meaningful")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="wall seconds for all sizes")
    parser.add_argument(
        "--bases", type=lambda text: tuple(int(b) for b in text.split(",")), help="sizes to run, e.g. 100,300"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.days, args.out)
        return
    report(run(quick=args.quick, budget_s=args.budget_s, sizes=args.bases))


if __name__ == "__main__":
    main()
