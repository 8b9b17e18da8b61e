"""Resumable day × venue runs through Dagster, shared by `fund-pipeline import` and `fund-pipeline backfill`.

A command plans the partitions it wants (`Work`: per venue the days still to do, and for each
partition the fingerprint of what it will hold), then `run_partitions` materialises them as
single-run backfills over runs of consecutive days of one venue. A ledger beside the source's
warehouse records each partition's fingerprint once its last asset is materialised: a partition
is done when the ledger has its current fingerprint and Dagster has it materialised, so a
command killed at any point and run again does only the rest. The bar moves with each
materialisation the project's instance stores (`instance.materialisation_listeners`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import pandas as pd
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from fund_pipeline.locations import asset_definitions, resources_of

# Runs a command starts carry its process id, so the next command can tell a run whose process was killed.
PID_TAG = "fund_pipeline/command_pid"
# The terminal gets the bar; every event is still in the run's log in the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
ONE_DAY = pd.Timedelta(days=1)


def partition_key(day: pd.Timestamp, venue: str) -> str:
    return f"{day:%Y-%m-%d}|{venue}"


class Ledger:
    """Partition key → fingerprint of what was materialised, kept beside the warehouse (atomic rewrites)."""

    def __init__(self, path: Path, warehouse: Path):
        self.path = path
        self.done: dict[str, str] = {}
        # A ledger without its warehouse describes rows that are gone: start again.
        if path.exists() and warehouse.exists():
            self.done = json.loads(path.read_text())["partitions"]

    def record(self, fingerprints: dict[str, str]) -> None:
        self.done.update(fingerprints)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"partitions": self.done}, indent=0, sort_keys=True))
        os.replace(tmp, self.path)


@dataclass
class Work:
    """What a command will run, and how much of what it wants is already done."""

    # venue → days to run, in order
    todo: dict[str, list[pd.Timestamp]] = field(default_factory=dict)
    # partition key → the fingerprint the ledger records once it is materialised
    fingerprints: dict[str, str] = field(default_factory=dict)
    # venue → days that must run apart from the others (a bad file's days fail alone), with the reason
    apart: dict[str, dict[pd.Timestamp, str]] = field(default_factory=dict)
    done: int = 0
    total: int = 0


def day_runs(days: list[pd.Timestamp], apart: dict[pd.Timestamp, str] | set, size: int) -> Iterable[list]:
    """Runs of consecutive days (at most `size`), the days in `apart` apart from the rest."""
    if size < 1:
        raise ValueError(f"days per run must be at least 1, got {size}")
    run: list[pd.Timestamp] = []
    for day in days:
        if run and (day - run[-1] != ONE_DAY or (day in apart) != (run[-1] in apart)):
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
        # Before a whole partition has run, the rate is mostly the first run's start-up: not shown.
        rate = self.ran / elapsed if elapsed > 0 and self.ran >= 1 else 0.0
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


class FailedRun(NamedTuple):
    first: str  # first partition key of the run ("-" when no partition could be given)
    last: str
    error: str


@dataclass
class Outcome:
    ran: int = 0
    skipped: int = 0
    failed: list[FailedRun] = field(default_factory=list)
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
    """Mark failed the command runs whose process is gone (killed) and free the pool slots they held.

    Without this, a killed run keeps the warehouse pool's one slot and the next command waits forever.
    """
    reaped = []
    unfinished = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.NOT_STARTED]
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=unfinished)):
        pid = run.tags.get(PID_TAG)
        if pid is None or alive(int(pid)):
            continue
        instance.report_run_failed(run, message=f"the command's process (pid {pid}) is gone: killed or crashed")
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

    A partition is done when its last asset is materialised; its rows were committed before that
    event, so a kill after it loses nothing the ledger claims.
    """

    FLUSH_S = 1.0

    def __init__(
        self, source_name: str, assets: tuple[str, ...], progress: Progress, ledger: Ledger, fingerprints: dict
    ):
        self.source_name, self.assets, self.progress = source_name, assets, progress
        self.ledger, self.fingerprints = ledger, fingerprints
        self.pending: dict[str, str] = {}
        self.flushed = time.perf_counter()
        self.seen = 0.0

    def __call__(self, entry) -> None:
        event = entry.get_dagster_event()
        key = event.asset_key
        if key is None or len(key.path) != 2 or key.path[0] != self.source_name or event.partition is None:
            return
        if key.path[1] not in self.assets:
            return
        self.seen += 1 / len(self.assets)
        self.progress.update(1 / len(self.assets), str(event.partition), force=False)
        if key.path[1] == self.assets[-1] and event.partition in self.fingerprints:
            self.pending[event.partition] = self.fingerprints[event.partition]
            if time.perf_counter() - self.flushed > self.FLUSH_S:
                self.flush()

    def flush(self) -> None:
        if self.pending:
            self.ledger.record(self.pending)
            self.pending = {}
        self.flushed = time.perf_counter()


def materialised_partitions(instance: dg.DagsterInstance, source_name: str, asset: str) -> set[str]:
    """Partition keys Dagster has a materialisation of `source_name/asset` for."""
    return {str(k) for k in instance.get_materialized_partitions(dg.AssetKey([source_name, asset]))}


def run_partitions(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    source_name: str,
    assets: tuple[str, ...],
    work: Work,
    ledger: Ledger,
    days_per_run: int | Mapping[str, int],
    stream=None,
) -> Outcome:
    """Materialise `assets` (in order; the last one marks a partition done) for every partition of `work`, in runs
    of at most `days_per_run` days (one size for every venue, or one per venue)."""
    outcome = Outcome(skipped=work.done)
    progress = Progress(work.total, work.done, source_name, stream)
    if work.done == work.total:
        progress.update(0, "nothing to do: every partition is done")
        progress.close()
        return outcome
    definitions = asset_definitions(defs)
    resources = resources_of(defs)
    selection = [f"{source_name}/{a}" for a in assets]
    watcher = Watcher(source_name, assets, progress, ledger, work.fingerprints)
    from fund_pipeline.instance import materialisation_listeners

    materialisation_listeners.append(watcher)
    started = time.perf_counter()
    try:
        for venue, days in work.todo.items():
            size = days_per_run if isinstance(days_per_run, int) else days_per_run[venue]
            for run_days in day_runs(days, work.apart.get(venue, {}), size):
                first, last = partition_key(run_days[0], venue), partition_key(run_days[-1], venue)
                seen = watcher.seen
                result = dg.materialize(
                    definitions,
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
                    watcher.pending.update({k: work.fingerprints[k] for k in keys})
                    watcher.flush()
                    outcome.ran += len(run_days)
                else:
                    outcome.failed.append(FailedRun(first, last, run_error(result)))
                # the bar counts a run once, whether or not the storage reported its events
                progress.update(len(run_days) - (watcher.seen - seen), f"{venue} {run_days[-1]:%Y-%m-%d}")
                watcher.seen = seen + len(run_days)
    finally:
        materialisation_listeners.remove(watcher)
        watcher.flush()
        progress.close()
    outcome.seconds = time.perf_counter() - started
    return outcome
