"""One UI for every source: a code location per source, all recording into the project's DAGSTER_HOME.

`fund_pipeline` (definitions.py) is the simulated demo with its schedules and live sensor;
`real_sample` is the real public sample shipped with the package; `imports` is whatever
`fund-pipeline import` brought in (its manifest); `backfill` is what `fund-pipeline backfill`
read from the venues' REST APIs through ccxt (its manifest: the bases and the API's address).
Each source has its own warehouse under the data folder, and the assets of these three carry the
source as a key prefix (`real_sample/raw_funding_prints`), so their runs, materialisations,
checks and plots sit beside the demo's in `make ui` and never mix with them. Those locations hold
the asset graph only: the schedules and the live sensor are the demo's.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from fund_pipeline.resources import LandingZone, MarketSourceResource, Warehouse, data_dir

# Source name → what its market_source reads; the name is also the asset key prefix and data folder.
REAL_SAMPLE = "real_sample"
IMPORTS = "imports"
BACKFILL = "backfill"
SOURCES = (REAL_SAMPLE, IMPORTS, BACKFILL)


def source_dir(source: str) -> Path:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; sources are {list(SOURCES)}")
    return data_dir() / source


def manifest_path() -> Path:
    """Where `fund-pipeline import` records what it imported (read by the imports location)."""
    return source_dir(IMPORTS) / "manifest.json"


def backfill_manifest_path() -> Path:
    """Where `fund-pipeline backfill` records the bases and API address the backfill location reads."""
    return source_dir(BACKFILL) / "manifest.json"


def backfill_market() -> MarketSourceResource:
    """The ccxt source as the last backfill configured it; before any, every listed base of the real venues."""
    path = backfill_manifest_path()
    recorded = json.loads(path.read_text()) if path.exists() else {}
    return MarketSourceResource(kind="ccxt", bases=recorded.get("bases"), api_base_url=recorded.get("api_base_url"))


def source_resources(source: str) -> dict:
    """The warehouse, market source and (unused) landing zone of one source, all under its data folder."""
    from fund_pipeline.sources.files import SAMPLE_ROOT

    root = source_dir(source)
    if source == REAL_SAMPLE:
        market = MarketSourceResource(kind="files", files_root=str(SAMPLE_ROOT), files_clock="infer")
    elif source == BACKFILL:
        market = backfill_market()
    else:
        market = MarketSourceResource(kind="files", files_manifest=str(manifest_path()))
    return {
        "warehouse": Warehouse(database=str(root / "warehouse.duckdb")),
        "market_source": market,
        "landing": LandingZone(path=str(root / "landing")),
    }


def asset_definitions(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    """The asset definitions of `defs`, each once (a definitions folder can list one twice)."""
    unique = {id(a): a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)}
    return list(unique.values())


def prefixed(defs: dg.Definitions, prefix: str) -> dg.Definitions:
    """The assets and checks of `defs` with every key under `prefix`, deps and check targets included."""
    assets = asset_definitions(defs)
    checks = list({id(c): c for c in defs.asset_checks or []}.values())
    keys = {key for a in assets for key in a.keys}
    mapping = {key: dg.AssetKey([prefix, *key.path]) for key in keys}
    return dg.Definitions(
        assets=[a.with_attributes(asset_key_replacements=mapping) for a in assets],
        asset_checks=[c.with_attributes(asset_key_replacements=mapping) for c in checks],
        resources=defs.resources,
        executor=defs.executor,
    )


def resources_of(defs: dg.Definitions) -> dict:
    return dict(defs.resources or {})


def asset_key(source: str, name: str) -> str:
    """The user string of an asset's key in a source's location (`real_sample/raw_funding_prints`)."""
    return f"{source}/{name}"


def source_definitions(source: str) -> dg.Definitions:
    from fund_pipeline.definitions import build_definitions

    source_dir(source)
    return prefixed(build_definitions(source_resources(source)), source)


@dg.definitions
def real_sample() -> dg.Definitions:
    return source_definitions(REAL_SAMPLE)


@dg.definitions
def imports() -> dg.Definitions:
    return source_definitions(IMPORTS)


@dg.definitions
def backfill() -> dg.Definitions:
    return source_definitions(BACKFILL)
