"""The executor switch: in-process by default, the multiprocess executor when configured, with the
warehouse pool admitting one writer at a time (a real multiprocess run against the same rows)."""

from __future__ import annotations

import dagster as dg
import pytest

from fund_pipeline.definitions import build_definitions, project_executor
from fund_pipeline.resources import LandingZone, MarketSourceResource, Warehouse, data_dir

PARTITION = dg.MultiPartitionKey({"date": "2025-03-10", "venue": "okx"})
# Two steps, both writers: each step process pays the definitions' imports (seconds), so two are enough.
STEPS = [dg.AssetKey("raw_funding_prints"), dg.AssetKey("curve_history")]


def ingest_job():
    """Module level, so the multiprocess executor's step processes can rebuild it (two bases: each
    step process builds its own simulated market)."""
    resources = {
        "warehouse": Warehouse(database=str(data_dir() / "warehouse.duckdb")),
        "market_source": MarketSourceResource(bases=["BTC", "ETH"]),
        "landing": LandingZone(path=str(data_dir() / "landing")),
    }
    return build_definitions(resources).resolve_job_def("ingest_job")


def test_in_process_by_default_and_bad_settings_refused_naming_the_variable(monkeypatch):
    monkeypatch.delenv("FUND_PIPELINE_EXECUTOR", raising=False)
    assert project_executor() is dg.in_process_executor
    monkeypatch.setenv("FUND_PIPELINE_EXECUTOR", "celery")
    with pytest.raises(ValueError, match="FUND_PIPELINE_EXECUTOR"):
        project_executor()
    monkeypatch.setenv("FUND_PIPELINE_EXECUTOR", "multiprocess")
    monkeypatch.setenv("FUND_PIPELINE_MAX_CONCURRENT", "0")
    with pytest.raises(ValueError, match="FUND_PIPELINE_MAX_CONCURRENT"):
        project_executor()


def stored_rows(folder) -> dict:
    warehouse = Warehouse(database=str(folder / "warehouse.duckdb"))
    return {
        table: warehouse.read(table).sort_values(["symbol", "funding_time"], kind="stable").reset_index(drop=True)
        for table in ("raw_funding_prints", "curve_history")
    }


@pytest.mark.slow
def test_multiprocess_run_writes_the_rows_of_an_in_process_run(tmp_path, monkeypatch):
    monkeypatch.setenv("FUND_PIPELINE_DATA_DIR", str(tmp_path / "serial"))
    monkeypatch.delenv("FUND_PIPELINE_EXECUTOR", raising=False)
    with dg.instance_for_test() as instance:
        serial = ingest_job().execute_in_process(instance=instance, partition_key=PARTITION, asset_selection=STEPS)
    assert serial.success
    monkeypatch.setenv("FUND_PIPELINE_DATA_DIR", str(tmp_path / "parallel"))
    monkeypatch.setenv("FUND_PIPELINE_EXECUTOR", "multiprocess")
    with dg.instance_for_test(overrides={"concurrency": {"pools": {"default_limit": 1}}}) as instance:
        result = dg.execute_job(
            dg.reconstructable(ingest_job),
            instance=instance,
            tags={"dagster/partition": PARTITION},
            asset_selection=STEPS,
        )
        assert result.success
        steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
        starts = [e for e in result.all_events if e.event_type_value == "STEP_WORKER_STARTED"]
    assert steps == {"raw_funding_prints", "curve_history"}
    assert len(starts) == len(steps), "every step ran in a subprocess of its own"
    parallel, reference = stored_rows(tmp_path / "parallel"), stored_rows(tmp_path / "serial")
    for table, frame in reference.items():
        assert len(frame) > 0
        assert parallel[table].equals(frame), table
