"""Import files through Dagster: ingest and curve partitions in chunked runs, with progress, resumable.

The files are read once (`FileSource`), every day × venue partition gets a checksum of the
prints the source holds for it, and a ledger beside the source's warehouse records the checksum
of each partition a run has materialised. A partition is done when the ledger has its current
checksum and Dagster has it materialised: kill an import and run it again and only the rest is
run; import the same files again and nothing is. Runs are single-run backfills over contiguous
days of one venue (at most `CHUNK_DAYS`); the bar moves with each materialisation the project's
instance stores (`instance.materialisation_listeners`). Days the source has no prints for are
not partitions of the import, and the days a bad file covers run on their own so that they fail
alone, with the file's error, leaving every stored row as it was.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from fund_pipeline.domain.time import NS_PER_DAY
from fund_pipeline.locations import asset_definitions, resources_of
from fund_pipeline.sources.files import FileSource

INGEST_ASSETS = ("market_universe", "raw_funding_prints", "curve_history")
# Days of one venue per run: Dagster's fixed cost per run (seconds) stays small beside the
# partitions', and a kill loses at most the partitions of the run not yet materialised.
CHUNK_DAYS = 366
# Runs an import starts carry its process id, so the next import can tell a run whose process was killed.
PID_TAG = "fund_pipeline/import_pid"
# The terminal gets the bar; every event is still in the run's log in the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def partition_key(day: pd.Timestamp, venue: str) -> str:
    return f"{day:%Y-%m-%d}|{venue}"


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


class Ledger:
    """Partition key → checksum of what was materialised, kept beside the warehouse (atomic rewrites)."""

    def __init__(self, path: Path, warehouse: Path):
        self.path = path
        self.done: dict[str, str] = {}
        # A ledger without its warehouse describes rows that are gone: start again.
        if path.exists() and warehouse.exists():
            self.done = json.loads(path.read_text())["partitions"]

    def record(self, checksums: dict[str, str]) -> None:
        self.done.update(checksums)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"partitions": self.done}, indent=0, sort_keys=True))
        os.replace(tmp, self.path)


@dataclass
class Chunk:
    venue: str
    days: list[pd.Timestamp]
    checksums: dict[str, str]
    expected_error: str | None = None

    @property
    def keys(self) -> tuple[str, str]:
        return partition_key(self.days[0], self.venue), partition_key(self.days[-1], self.venue)


@dataclass
class Plan:
    """What an import will run, and what it will not (already done, or no prints that day)."""

    todo: dict[str, list[pd.Timestamp]] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    failing: dict[str, dict[pd.Timestamp, str]] = field(default_factory=dict)
    # failed files no partition can be given to (their venue has no other prints)
    unplaced: list[str] = field(default_factory=list)
    done: int = 0
    total: int = 0


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
        days = day_checksums(source.prints_of(venue))
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
            out.checksums[key] = checksum
        out.todo[venue] = todo
        out.failing[venue] = {d: m for d, m in failing.items() if d in set(todo)}
    return out


def chunks(venue: str, days: list[pd.Timestamp], failing: dict[pd.Timestamp, str], size: int) -> Iterable[list]:
    """Runs of consecutive days (at most `size`), the days of a bad file apart from the rest."""
    run: list[pd.Timestamp] = []
    for day in days:
        if run and (day - run[-1] != pd.Timedelta(days=1) or (day in failing) != (run[-1] in failing)):
            yield run
            run = []
        run.append(day)
        if len(run) >= size:
            yield run
            run = []
    if run:
        yield run


class Progress:
    """`[####....] done/total partitions  rate/s  ETA` on stderr, redrawn in place on a terminal.

    Redrawn at most every `EVERY_S` (a line every `LINE_EVERY_S` when not a terminal) and at the
    end of each run.
    """

    EVERY_S = 0.2
    LINE_EVERY_S = 5.0

    def __init__(self, total: int, done: int, label: str, stream=None):
        self.total, self.done, self.label = total, float(done), label
        self.started = time.perf_counter()
        self.ran = 0.0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.drawn = -float("inf")

    def update(self, n: float, note: str = "", force: bool = True) -> None:
        self.done += n
        self.ran += n
        now = time.perf_counter()
        if not force and now - self.drawn < (self.EVERY_S if self.tty else self.LINE_EVERY_S):
            return
        self.drawn = now
        elapsed = now - self.started
        rate = self.ran / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = f"{left / rate:4.0f}s" if rate > 0 else "   ?"
        width = 30
        filled = int(width * self.done / self.total) if self.total else width
        line = (
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {int(round(self.done))}/{self.total} partitions "
            f"{rate:6.1f}/s  ETA {eta}  {note}"
        )
        self.stream.write(("\r" + line.ljust(110)) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


@dataclass
class Outcome:
    ran: int = 0
    skipped: int = 0
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # first key, last key, error
    seconds: float = 0.0
    runs: list[dg.ExecuteInProcessResult] = field(default_factory=list)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the import runs whose process is gone (killed) and free the pool slots they held.

    Without this, a killed run keeps the warehouse pool's one slot and the next import waits forever.
    """
    reaped = []
    unfinished = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED]
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=unfinished)):
        pid = run.tags.get(PID_TAG)
        if pid is None or alive(int(pid)):
            continue
        instance.report_run_failed(run, message=f"the import process (pid {pid}) is gone: killed or crashed")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
    return reaped


def run_error(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE") and event.event_specific_data is not None:
            error = getattr(event.event_specific_data, "error", None)
            if error is not None:
                cause = error.cause or error
                return cause.message.strip().splitlines()[-1] if cause.message else str(error)
    return "run failed"


class Watcher:
    """Moves the bar and fills the ledger as the run stores each partition's materialisations.

    A partition is done when its last asset (curve_history) is materialised; its rows were
    committed before that event, so a kill after it loses nothing the ledger claims.
    """

    FLUSH_S = 1.0

    def __init__(self, source_name: str, progress: Progress, ledger: Ledger, checksums: dict[str, str]):
        self.source_name, self.progress, self.ledger, self.checksums = source_name, progress, ledger, checksums
        self.pending: dict[str, str] = {}
        self.flushed = time.perf_counter()
        self.seen = 0.0

    def __call__(self, entry) -> None:
        event = entry.get_dagster_event()
        key = event.asset_key
        if key is None or len(key.path) != 2 or key.path[0] != self.source_name or event.partition is None:
            return
        self.seen += 1 / len(INGEST_ASSETS)
        self.progress.update(1 / len(INGEST_ASSETS), str(event.partition), force=False)
        if key.path[1] == INGEST_ASSETS[-1] and event.partition in self.checksums:
            self.pending[event.partition] = self.checksums[event.partition]
            if time.perf_counter() - self.flushed > self.FLUSH_S:
                self.flush()

    def flush(self) -> None:
        if self.pending:
            self.ledger.record(self.pending)
            self.pending = {}
        self.flushed = time.perf_counter()


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
    from fund_pipeline.instance import materialisation_listeners

    selection = [f"{source_name}/{a}" for a in INGEST_ASSETS]
    curve_key = dg.AssetKey([source_name, INGEST_ASSETS[-1]])

    def materialised() -> set[str]:
        return {str(k) for k in instance.get_materialized_partitions(curve_key)}

    reap_dead_runs(instance)
    work = plan(source, ledger, materialised, since, until)
    outcome = Outcome(skipped=work.done, failed=[("-", "-", message) for message in work.unplaced])
    progress = Progress(work.total, work.done, source_name, stream)
    if work.done == work.total:
        progress.update(0, "nothing to do: every partition is done")
        progress.close()
        return outcome
    assets = asset_definitions(defs)
    resources = resources_of(defs)
    watcher = Watcher(source_name, progress, ledger, work.checksums)
    materialisation_listeners.append(watcher)
    started = time.perf_counter()
    try:
        for venue, days in work.todo.items():
            for run_days in chunks(venue, days, work.failing[venue], CHUNK_DAYS):
                first, last = partition_key(run_days[0], venue), partition_key(run_days[-1], venue)
                seen = watcher.seen
                result = dg.materialize(
                    assets,
                    selection=selection,
                    instance=instance,
                    tags={
                        ASSET_PARTITION_RANGE_START_TAG: first,
                        ASSET_PARTITION_RANGE_END_TAG: last,
                        PID_TAG: str(os.getpid()),
                    },
                    resources=resources,
                    run_config=QUIET,
                    raise_on_error=False,
                )
                outcome.runs.append(result)
                if result.success:
                    keys = [partition_key(d, venue) for d in run_days]
                    watcher.pending.update({k: work.checksums[k] for k in keys})
                    watcher.flush()
                    outcome.ran += len(run_days)
                else:
                    outcome.failed.append((first, last, run_error(result)))
                # the bar counts a chunk once, whether or not the storage reported its events
                progress.update(len(run_days) - (watcher.seen - seen), f"{venue} {run_days[-1]:%Y-%m-%d}")
                watcher.seen = seen + len(run_days)
    finally:
        materialisation_listeners.remove(watcher)
        watcher.flush()
        progress.close()
    outcome.seconds = time.perf_counter() - started
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
