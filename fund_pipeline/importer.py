"""Import files through Dagster: ingest and curve partitions in chunked runs, with progress, resumable.

The files are read once (`FileSource`) and every day × venue partition gets a checksum of the
prints the source holds for it: the fingerprint `partition_runs` records in the ledger once the
partition is materialised. Kill an import and run it again and only the rest is run; import the
same files again and nothing is. Runs cover contiguous days of one venue, as many as hold about
`PRINTS_PER_RUN` of its prints (Dagster's fixed cost per run, about half a second, stays small beside
the partitions', a run's frames stay within memory, and a kill loses at most the partitions of the run
not yet materialised). Days the source has no prints for are not partitions of the import, and the
days a bad file covers run on their own so that they fail alone, with the file's error, leaving every
stored row as it was.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from fund_pipeline.domain.time import NS_PER_DAY
from fund_pipeline.locations import resources_of
from fund_pipeline.partition_runs import (
    FailedRun,
    Ledger,
    Outcome,
    Work,
    materialised_partitions,
    partition_key,
    reap_dead_runs,
    run_partitions,
)
from fund_pipeline.sources.files import FileSource

INGEST_ASSETS = ("market_universe", "raw_funding_prints", "curve_history")
# Prints one run may hold: a year of an hourly venue with ~300 perps (2.6M) fits, a small export's whole span too.
PRINTS_PER_RUN = 3_000_000


def day_checksums(prints: pd.DataFrame) -> dict[pd.Timestamp, str]:
    """Per UTC day: a checksum of the day's prints (symbol, time, rate, interval, prices), order-free."""
    if prints.empty:
        return {}
    cols = ["symbol", "funding_time", "rate", "interval_h", "mark_price", "index_price"]
    hashes = pd.util.hash_pandas_object(prints[cols], index=False).to_numpy(dtype="uint64")
    days = prints["funding_time"].astype("int64").to_numpy() // NS_PER_DAY
    order = np.argsort(days, kind="stable")
    days, hashes = days[order], hashes[order]
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
    sums = np.add.reduceat(hashes, starts)
    counts = np.diff(np.r_[starts, len(days)])
    return {
        pd.Timestamp(int(d) * NS_PER_DAY, tz="UTC"): f"{int(n)}:{int(s):016x}"
        for d, s, n in zip(days[starts], sums, counts, strict=True)
    }


@dataclass
class Plan(Work):
    """An import's work, the days each venue's runs cover, and the failed files no partition can be given to
    (their venue has no other prints)."""

    unplaced: list[str] = field(default_factory=list)
    days_per_run: dict[str, int] = field(default_factory=dict)


def days_per_run(prints_per_day: float) -> int:
    """The days one run covers: as many as hold PRINTS_PER_RUN prints at the venue's mean count a day (rounded
    up to a whole print, so the division is exact)."""
    return max(1, PRINTS_PER_RUN // max(math.ceil(prints_per_day), 1))


def plan(
    source: FileSource,
    ledger: Ledger,
    materialised: Callable[[], set[str]],
    since: pd.Timestamp | None = None,
    until: pd.Timestamp | None = None,
) -> Plan:
    """Every day × venue the files have prints for (within [since, until)), minus the partitions already done."""
    out = Plan()
    stored = materialised()
    for venue in source.venues():
        prints = source.prints_of(venue)
        days = day_checksums(prints)
        out.days_per_run[venue] = days_per_run(len(prints) / max(len(days), 1))
        failing: dict[pd.Timestamp, str] = {}
        for f in source.failures(venue):
            lo = pd.Timestamp(f.lo_ns, tz="UTC").normalize() if f.lo_ns is not None else min(days, default=None)
            hi = pd.Timestamp(f.hi_ns, tz="UTC").normalize() if f.hi_ns is not None else max(days, default=None)
            if lo is None or hi is None:
                out.unplaced.append(f"{venue}: {f.message}")
                continue
            for day in pd.date_range(lo, hi, freq="D"):
                failing[day] = f.message
        wanted = sorted(set(days) | set(failing))
        wanted = [d for d in wanted if (since is None or d >= since) and (until is None or d < until)]
        out.total += len(wanted)
        todo = []
        for day in wanted:
            key = partition_key(day, venue)
            checksum = days.get(day, "failing")
            if day not in failing and ledger.done.get(key) == checksum and key in stored:
                out.done += 1
                continue
            todo.append(day)
            out.fingerprints[key] = checksum
        out.todo[venue] = todo
        out.apart[venue] = {d: m for d, m in failing.items() if d in set(todo)}
    return out


def import_partitions(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    source_name: str,
    source: FileSource,
    ledger: Ledger,
    since: pd.Timestamp | None = None,
    until: pd.Timestamp | None = None,
    stream=None,
) -> Outcome:
    """Materialise the ingest and curve assets of `source_name` for every partition not yet done."""
    reap_dead_runs(instance)
    work = plan(source, ledger, lambda: materialised_partitions(instance, source_name, INGEST_ASSETS[-1]), since, until)
    outcome = run_partitions(defs, instance, source_name, INGEST_ASSETS, work, ledger, work.days_per_run, stream)
    outcome.failed[:0] = [FailedRun("-", "-", message) for message in work.unplaced]
    return outcome


def record_import(manifest: Path, entry: dict) -> None:
    """Add one import's paths and options to the manifest the imports code location reads (once)."""
    entries = json.loads(manifest.read_text())["imports"] if manifest.exists() else []
    if entry not in entries:
        entries.append(entry)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps({"imports": entries}, indent=2))
    os.replace(tmp, manifest)


def describe_files(source: FileSource, out=None) -> None:
    out = out or sys.stdout
    read = [f for f in source.file_report() if f["status"] == "read"]
    print(f"{len(read)} file(s) read, {len(source.skipped)} skipped, {len(source.failures())} failed", file=out)
    for name, reason in source.skipped:
        print(f"  skipped {name}: {reason}", file=out)
    for failure in source.failures():
        print(f"  FAILED  {failure.file} ({failure.venue}): {failure.message}", file=out)


def run_import(
    paths: list[str],
    venue: str | None = None,
    symbol: str | None = None,
    fmt: str | None = None,
    clock: str = "utc",
    since: str | None = None,
    until: str | None = None,
) -> int:
    """`fund-pipeline import PATH...`: into the imports warehouse and the project's DAGSTER_HOME."""
    from fund_pipeline.instance import prepare_home
    from fund_pipeline.locations import IMPORTS, manifest_path, source_definitions, source_dir
    from fund_pipeline.sources.files import specs_for

    specs_for(paths, venue=venue, symbol=symbol, fmt=fmt, clock=clock)  # refuse bad options before recording them
    entry = {
        "paths": [str(Path(p).resolve()) for p in paths],
        "venue": venue,
        "symbol": symbol,
        "format": fmt,
        "clock": clock,
    }
    record_import(manifest_path(), entry)
    home = prepare_home()
    defs = source_definitions(IMPORTS)
    resources = resources_of(defs)
    source = resources["market_source"].get()
    describe_files(source)
    warehouse = Path(resources["warehouse"].database)
    ledger = Ledger(source_dir(IMPORTS) / "import_ledger.json", warehouse)
    lo = pd.Timestamp(since, tz="UTC") if since else None
    hi = pd.Timestamp(until, tz="UTC") if until else None
    with dg.DagsterInstance.get() as instance:
        outcome = import_partitions(defs, instance, IMPORTS, source, ledger, lo, hi)
    print(
        f"imported {outcome.ran} partition(s) in {outcome.seconds:.1f}s, {outcome.skipped} already done, "
        f"{len(outcome.failed)} run(s) failed; warehouse {warehouse}, DAGSTER_HOME {home}"
    )
    for first, last, error in outcome.failed:
        print(f"  FAILED {first} .. {last}: {error}")
    print("browse it: make ui  (code location 'imports', assets under imports/)")
    return 1 if outcome.failed else 0
