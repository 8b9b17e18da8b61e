"""The code location: every Dagster object under defs/, plus resources and the executor."""

from pathlib import Path

import dagster as dg

from fund_pipeline.resources import LandingZone, MarketSourceResource, Warehouse


def build_definitions(resources: dict | None = None) -> dg.Definitions:
    """Defs folder + resources; `resources` replaces the defaults (the real-sample run uses files)."""
    # In-process: a step is milliseconds of DuckDB work, a subprocess per step costs seconds
    # of imports, and the warehouse takes one writer at a time anyway.
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(
            resources=resources
            or {"warehouse": Warehouse(), "market_source": MarketSourceResource(), "landing": LandingZone()},
            executor=dg.in_process_executor,
        ),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
