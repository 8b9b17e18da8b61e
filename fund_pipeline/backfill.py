"""`fund-pipeline backfill`: settled prints and curves from the venues' REST APIs (ccxt) through Dagster.

Into the `backfill` code location: its own warehouse under `data/backfill/` and asset keys under
`backfill/`, recorded in the project's DAGSTER_HOME. The day × venue partitions run as single-run
backfills of at most `DAYS_PER_RUN` days of one venue, paced by each venue's rate limits (the ccxt
source's pacer); the machinery shared with `fund-pipeline import` (ledger, progress, dead-run
reaping, run loop) is `partition_runs`. A partition is done when the ledger holds its fingerprint
(the API's address and the bases the location serves) and Dagster has it materialised: kill a
backfill at any point and run it again and only the rest runs, nothing is stored twice (a run
replaces its partitions' rows in one transaction).

Where a venue's history begins is asked, not assumed: a `--since` older than the venue keeps
(its adapter's history depth, counted on the venue's own clock) is clamped to the first whole day
it still serves, with a warning naming venue, endpoint and depth; days before the first settled
print of the requested bases (not yet listed) are left out, also said. Each venue stops before
its own current day, whose settlements are not all in yet.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pandas as pd

from fund_pipeline.partition_runs import (
    Ledger,
    Outcome,
    Work,
    materialised_partitions,
    partition_key,
    reap_dead_runs,
    run_partitions,
)
from fund_pipeline.sources.ccxt import CcxtSource
from fund_pipeline.venues.registry import SIM_VENUES

BACKFILL_ASSETS = ("raw_funding_prints", "curve_history")
# Days of one venue per Dagster run: a run's fixed cost (about a second) stays small beside its
# partitions', and a kill loses at most one run's partitions.
DAYS_PER_RUN = 30
# A clamped start sits this far inside a venue's depth, so that the depth, which moves with the
# venue's clock, still covers it when its run comes.
DEPTH_MARGIN = pd.Timedelta(hours=1)
FUNDING_HISTORY = "fetch_funding_rate_history"
ONE_DAY = pd.Timedelta(days=1)


class BackfillConfigError(ValueError):
    """A backfill request that cannot be run as asked; names the option and what was wrong."""


@dataclass(frozen=True)
class BackfillRequest:
    venues: tuple[str, ...]
    bases: tuple[str, ...]
    since: pd.Timestamp
    until: pd.Timestamp | None
    api_base_url: str | None


def _day(text: str, option: str) -> pd.Timestamp:
    try:
        day = pd.Timestamp(text)
    except ValueError as bad:
        raise BackfillConfigError(f"{option} {text!r} is not a date (YYYY-MM-DD, UTC)") from bad
    day = day.tz_localize("UTC") if day.tzinfo is None else day.tz_convert("UTC")
    if day != day.normalize():
        raise BackfillConfigError(f"{option} {text!r} is not a whole UTC day")
    return day


def parse_request(
    venues: str, bases: str, since: str, until: str | None = None, api_base_url: str | None = None
) -> BackfillRequest:
    """The command's options, checked: venues the ccxt source serves, some bases, since before until."""
    names = tuple(dict.fromkeys(v.strip().lower() for v in venues.split(",") if v.strip()))
    unknown = [v for v in names if v not in SIM_VENUES]
    if not names or unknown:
        raise BackfillConfigError(
            f"--venues {venues!r}: {'unknown venue(s) ' + str(unknown) if unknown else 'no venue named'}; "
            f"the ccxt source serves {list(SIM_VENUES)}"
        )
    wanted = tuple(dict.fromkeys(b.strip().upper() for b in bases.split(",") if b.strip()))
    if not wanted:
        raise BackfillConfigError(f"--bases {bases!r}: name at least one base asset, e.g. BTC,ETH")
    first = _day(since, "--since")
    last = _day(until, "--until") if until else None
    if last is not None and last <= first:
        raise BackfillConfigError(f"--until {until} must be after --since {since}")
    url = api_base_url.rstrip("/") if api_base_url else None
    return BackfillRequest(names, wanted, first, last, url)


def record_backfill(manifest: Path, request: BackfillRequest) -> list[str]:
    """Record the request's bases (added to those backfilled before) for the backfill location; their list.

    The location's warehouse holds one API's data: a request to another address is refused.
    """
    recorded = json.loads(manifest.read_text()) if manifest.exists() else {}
    if recorded and recorded.get("api_base_url") != request.api_base_url:
        raise BackfillConfigError(
            f"--api-base-url {request.api_base_url or '(the venues)'}: the backfill warehouse holds data from "
            f"{recorded.get('api_base_url') or 'the venues'}; use another FUND_PIPELINE_DATA_DIR or remove "
            f"{manifest.parent}"
        )
    bases = sorted(set(recorded.get("bases", [])) | set(request.bases))
    manifest.parent.mkdir(parents=True, exist_ok=True)
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps({"api_base_url": request.api_base_url, "bases": bases}, indent=2))
    os.replace(tmp, manifest)
    return bases


@dataclass
class VenueSpan:
    """The days [first, end) a venue will be backfilled over, and why they differ from the request."""

    venue: str
    first: pd.Timestamp | None
    end: pd.Timestamp
    notes: list[str] = field(default_factory=list)


def venue_span(source: CcxtSource, venue: str, request: BackfillRequest) -> VenueSpan:
    """The request's days on `venue`, within the history it serves and the days its bases have prints."""
    today = source.venue_now(venue).floor("D")
    end = today if request.until is None else min(request.until, today)
    span = VenueSpan(venue, None, end)
    if request.until is not None and request.until > today:
        span.notes.append(f"{venue}: --until {request.until:%Y-%m-%d} is past the venue's today; stopping before it")
    start = request.since
    oldest = source.oldest_served(venue, FUNDING_HISTORY)
    if oldest is not None and start < oldest + DEPTH_MARGIN:
        clamped = (oldest + DEPTH_MARGIN).ceil("D")
        shortfall = source.depth_shortfall(venue, FUNDING_HISTORY, start) or f"{venue} history starts at {oldest}"
        span.notes.append(f"{shortfall}; --since clamped to {clamped:%Y-%m-%d} for {venue}")
        start = clamped
    if start >= end:
        span.notes.append(f"{venue}: nothing to backfill in [{start:%Y-%m-%d}, {end:%Y-%m-%d})")
        return span
    earliest = source.earliest_settled(venue, start, end)
    if earliest is None:
        span.notes.append(f"{venue}: no settled prints of {list(request.bases)} in [{start:%Y-%m-%d}, {end:%Y-%m-%d})")
        return span
    span.first = earliest.floor("D")
    if span.first > start:
        span.notes.append(
            f"{venue}: the first settled print of {list(request.bases)} is at {earliest:%Y-%m-%d %H:%M} UTC; "
            f"starting {span.first:%Y-%m-%d}"
        )
    return span


def plan(spans: list[VenueSpan], fingerprint: str, ledger: Ledger, stored: set[str]) -> Work:
    """Every day of every span, minus the partitions already materialised with this fingerprint."""
    work = Work()
    for span in spans:
        if span.first is None:
            continue
        days = list(pd.date_range(span.first, span.end - ONE_DAY, freq="D"))
        work.total += len(days)
        todo = []
        for day in days:
            key = partition_key(day, span.venue)
            if ledger.done.get(key) == fingerprint and key in stored:
                work.done += 1
                continue
            todo.append(day)
            work.fingerprints[key] = fingerprint
        work.todo[span.venue] = todo
    return work


def backfill_partitions(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    source_name: str,
    spans: list[VenueSpan],
    fingerprint: str,
    ledger: Ledger,
    days_per_run: int = DAYS_PER_RUN,
    stream=None,
) -> Outcome:
    """Materialise prints and curves of `source_name` for every day of `spans` not yet done."""
    reap_dead_runs(instance)
    stored = materialised_partitions(instance, source_name, BACKFILL_ASSETS[-1])
    work = plan(spans, fingerprint, ledger, stored)
    return run_partitions(defs, instance, source_name, BACKFILL_ASSETS, work, ledger, days_per_run, stream)


def run_backfill(
    venues: str,
    bases: str,
    since: str,
    until: str | None = None,
    api_base_url: str | None = None,
    days_per_run: int = DAYS_PER_RUN,
) -> int:
    """`fund-pipeline backfill`: into the backfill warehouse and the project's DAGSTER_HOME."""
    from fund_pipeline.instance import prepare_home
    from fund_pipeline.locations import BACKFILL, backfill_manifest_path, resources_of, source_definitions, source_dir

    if days_per_run < 1:
        raise BackfillConfigError(f"--days-per-run must be at least 1, got {days_per_run}")
    request = parse_request(venues, bases, since, until, api_base_url)
    served = record_backfill(backfill_manifest_path(), request)
    home = prepare_home()
    defs = source_definitions(BACKFILL)
    resources = resources_of(defs)
    source = resources["market_source"].get()
    spans = [venue_span(source, venue, request) for venue in request.venues]
    for span in spans:
        for note in span.notes:
            print(f"warning: {note}", file=sys.stderr)
        if span.first is not None:
            print(f"{span.venue}: {span.first:%Y-%m-%d} .. {span.end - ONE_DAY:%Y-%m-%d}", file=sys.stderr)
    warehouse = Path(resources["warehouse"].database)
    ledger = Ledger(source_dir(BACKFILL) / "backfill_ledger.json", warehouse)
    fingerprint = f"{request.api_base_url or 'venues'}|{','.join(served)}"
    with dg.DagsterInstance.get() as instance:
        outcome = backfill_partitions(defs, instance, BACKFILL, spans, fingerprint, ledger, days_per_run)
    print(
        f"backfilled {outcome.ran} partition(s) in {outcome.seconds:.1f}s, {outcome.skipped} already done, "
        f"{len(outcome.failed)} run(s) failed; bases {', '.join(served)}; warehouse {warehouse}, DAGSTER_HOME {home}"
    )
    for failed in outcome.failed:
        print(f"  FAILED {failed.first} .. {failed.last}: {failed.error}")
    print("browse it: make ui  (code location 'backfill', assets under backfill/)")
    return 1 if outcome.failed else 0
