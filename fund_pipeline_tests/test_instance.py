"""The project's DAGSTER_HOME: its dagster.yaml, the kept-connection event log, and materialisation listeners."""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from fund_pipeline import instance as project_instance
from fund_pipeline.instance import EARLIER_DAGSTER_YAML, MARKER, LocalSqliteEventLogStorage, prepare_home

DAYS = dg.DailyPartitionsDefinition(start_date="2023-01-01")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def days_asset(context) -> dg.MaterializeResult:
    return dg.MaterializeResult()


def test_home_written_refreshed_and_a_users_own_left_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = prepare_home(tmp_path / "home")
    text = (home / "dagster.yaml").read_text()
    assert text.startswith(MARKER) and "LocalSqliteEventLogStorage" in text
    (home / "dagster.yaml").write_text(EARLIER_DAGSTER_YAML)
    prepare_home(home)
    assert (home / "dagster.yaml").read_text() == text
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")
    prepare_home(home)
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: true\n"


def test_range_run_stores_every_partition_and_calls_listeners(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    prepare_home(tmp_path / "home")
    seen: list[str] = []
    project_instance.materialisation_listeners.append(lambda e: seen.append(e.get_dagster_event().partition))
    try:
        with dg.DagsterInstance.get() as instance:
            assert isinstance(instance.event_log_storage, LocalSqliteEventLogStorage)
            result = dg.materialize(
                [days_asset],
                instance=instance,
                tags={ASSET_PARTITION_RANGE_START_TAG: "2023-01-01", ASSET_PARTITION_RANGE_END_TAG: "2023-01-10"},
            )
            assert result.success
            stored = instance.get_materialized_partitions(days_asset.key)
            planned = instance.get_records_for_run(
                result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
            ).records
    finally:
        project_instance.materialisation_listeners.clear()
    keys = [f"2023-01-{d:02d}" for d in range(1, 11)]
    assert sorted(stored) == keys
    assert sorted(seen) == keys
    assert len(planned) == 1
