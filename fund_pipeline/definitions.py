"""The code location: every Dagster object under defs/, plus resources and the executor."""

import os
from pathlib import Path

import dagster as dg

from fund_pipeline.resources import LandingZone, MarketSourceResource, Warehouse

EXECUTORS = ("in_process", "multiprocess")


def project_executor() -> dg.ExecutorDefinition:
    """In-process unless `FUND_PIPELINE_EXECUTOR=multiprocess`.

    In-process by default: a step is milliseconds of DuckDB work, a subprocess per step costs seconds
    of imports, and the warehouse takes one writer at a time anyway. The multiprocess executor runs up
    to `FUND_PIPELINE_MAX_CONCURRENT` (default 2) steps at once in subprocesses: worth it when steps
    are long (many symbols, model fits) or read-only; the `warehouse` pool admits one writer to the
    DuckDB file, several to the PostgreSQL warehouse (`FUND_PIPELINE_WAREHOUSE_WRITERS`).
    """
    kind = os.environ.get("FUND_PIPELINE_EXECUTOR", "in_process")
    if kind not in EXECUTORS:
        raise ValueError(f"FUND_PIPELINE_EXECUTOR must be one of {list(EXECUTORS)}, got {kind!r}")
    if kind == "in_process":
        return dg.in_process_executor
    raw = os.environ.get("FUND_PIPELINE_MAX_CONCURRENT", "2")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"FUND_PIPELINE_MAX_CONCURRENT must be a whole number >= 1, got {raw!r}")
    return dg.multiprocess_executor.configured({"max_concurrent": int(raw)})


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    """Defs folder + resources; `resources` replaces the defaults (the real-sample run uses files)."""
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(
            resources=resources
            or {"warehouse": Warehouse.from_env(), "market_source": MarketSourceResource(), "landing": LandingZone()},
            executor=project_executor(),
        ),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
