"""One materialisation in a process of its own, started together with others: the concurrent-writer test and
benchmark launch several and compare what they stored.

`python -m fund_pipeline_tests.writer_runs BARRIER_DIR WRITERS SPEC_JSON` loads the definitions, waits until
WRITERS processes are ready (files in BARRIER_DIR, so the runs start together rather than one per import
time), materialises the spec (or a JSON list of specs, one run after the other) on the instance of
DAGSTER_HOME with the warehouse `Warehouse.from_env()` chooses, and prints one JSON line per run: success,
wall-clock start and end, the failure if any.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import NotRequired, TypedDict

BARRIER_TIMEOUT_S = 300.0


class RunSpec(TypedDict):
    """What one writer materialises: assets over a partition range (first == last for one partition)."""

    assets: list[str]
    first: str
    last: str
    bases: list[str]
    landing: str
    database: NotRequired[str]


class RunOutcome(TypedDict):
    success: bool
    started: float
    finished: float
    failure: str | None


def wait_for_writers(folder: Path, writers: int) -> None:
    """Mark this process ready and wait until `writers` are (a file barrier across processes)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{os.getpid()}.ready").touch()
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while len(list(folder.glob("*.ready"))) < writers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(list(folder.glob('*.ready')))} of {writers} writers became ready")
        time.sleep(0.02)


def materialise(spec: RunSpec, barrier: Path | None = None, writers: int = 1) -> RunOutcome:
    import dagster as dg
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from fund_pipeline.demo import load_definitions
    from fund_pipeline.resources import LandingZone, MarketSourceResource, Warehouse

    warehouse = Warehouse(database=spec["database"]) if "database" in spec else Warehouse.from_env()
    resources = {
        "warehouse": warehouse,
        "market_source": MarketSourceResource(bases=spec["bases"]),
        "landing": LandingZone(path=spec["landing"]),
    }
    assets = [a for a in load_definitions().assets or [] if isinstance(a, dg.AssetsDefinition)]
    if spec["first"] == spec["last"]:
        where: dict = {"partition_key": spec["first"]}
    else:
        where = {"tags": {ASSET_PARTITION_RANGE_START_TAG: spec["first"], ASSET_PARTITION_RANGE_END_TAG: spec["last"]}}
    with dg.DagsterInstance.get() as instance:
        if barrier is not None:
            wait_for_writers(barrier, writers)
        started = time.time()
        result = dg.materialize(
            assets, selection=spec["assets"], resources=resources, instance=instance, raise_on_error=False, **where
        )
        finished = time.time()
    failures = [event.message or event.event_type_value for event in result.get_step_failure_events()]
    return {
        "success": result.success,
        "started": started,
        "finished": finished,
        "failure": "\n".join(failures) or None,
    }


def main(argv: list[str]) -> int:
    barrier, writers, given = Path(argv[0]), int(argv[1]), json.loads(argv[2])
    specs = given if isinstance(given, list) else [given]
    outcomes = [materialise(spec, barrier if n == 0 else None, writers) for n, spec in enumerate(specs)]
    for outcome in outcomes:
        print(json.dumps(outcome), flush=True)
    return 0 if all(outcome["success"] for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
