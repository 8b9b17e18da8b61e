"""One UI for every source: the workspace's code locations keep each source's assets and warehouse apart."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from fund_pipeline import locations
from fund_pipeline.definitions import build_definitions

WORKSPACE = Path(__file__).parents[1] / "workspace.yaml"
# Loading the definitions folder once per location takes seconds.
pytestmark = pytest.mark.slow


def test_workspace_lists_a_location_per_source_and_each_loads():
    entries = [e["python_module"] for e in yaml.safe_load(WORKSPACE.read_text())["load_from"]]
    assert [e["location_name"] for e in entries] == ["fund_pipeline", "real_sample", "imports", "backfill"]
    for entry in entries[1:]:
        defs = getattr(locations, entry["attribute"])
        assert isinstance(defs(), dg.Definitions)


def test_source_locations_prefix_every_asset_and_check_and_keep_lineage(tmp_path, monkeypatch):
    monkeypatch.setenv("FUND_PIPELINE_DATA_DIR", str(tmp_path))
    demo_keys = {k.to_user_string() for k in build_definitions().resolve_asset_graph().get_all_asset_keys()}
    for source in locations.SOURCES:
        graph = locations.source_definitions(source).resolve_asset_graph()
        keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
        assert keys == {f"{source}/{k}" for k in demo_keys}
        assert {c.asset_key.path[0] for c in graph.asset_check_keys} == {source}
        curve = graph.get(dg.AssetKey([source, "curve_history"]))
        assert dg.AssetKey([source, "raw_funding_prints"]) in curve.parent_keys
        resources = locations.resources_of(locations.source_definitions(source))
        assert resources["warehouse"].database == str(tmp_path / source / "warehouse.duckdb")
