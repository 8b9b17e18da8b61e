"""The project's DAGSTER_HOME: its dagster.yaml, the kept-connection event log, and materialisation listeners."""

from __future__ import annotations

import dagster as dg
import psycopg2
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from fund_pipeline import instance as project_instance
from fund_pipeline.instance import (
    EARLIER_DAGSTER_YAML,
    MARKER,
    ListeningPostgresEventLogStorage,
    LocalSqliteEventLogStorage,
    prepare_home,
)
from fund_pipeline.warehouse import WAREHOUSE_POOL, warehouse_writers
from fund_pipeline_tests.postgres_server import running_postgres, server_binaries

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


@pytest.fixture(scope="module")
def postgres():
    if server_binaries() is None:
        pytest.skip("no PostgreSQL server installed here (.ci/run installs and starts one for CI)")
    with running_postgres() as server:
        conn = psycopg2.connect(server.url("postgres"))
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE dagster")
        conn.close()
        yield server


@pytest.mark.slow
def test_instance_on_postgres_when_configured_stores_runs_and_partitions_there(tmp_path, monkeypatch, postgres):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("DAGSTER_PG_HOST", postgres.host)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(postgres.port))
    monkeypatch.delenv("DAGSTER_PG_PASSWORD", raising=False)
    home = prepare_home(tmp_path / "home")
    text = (home / "dagster.yaml").read_text()
    assert "env: DAGSTER_PG_HOST" in text and postgres.host not in text, "the host is read at load, not written"
    with dg.DagsterInstance.from_config(str(home)) as made:
        # The pool's limit row exists before any run claims it (first claims at once would collide).
        assert made.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == warehouse_writers()
    assert prepare_home(home) == home, "made again (every command does): the row is not made twice"
    seen: list[str] = []
    project_instance.materialisation_listeners.append(lambda e: seen.append(e.get_dagster_event().partition))
    try:
        with dg.DagsterInstance.get() as instance:
            assert isinstance(instance.event_log_storage, ListeningPostgresEventLogStorage)
            result = dg.materialize(
                [days_asset],
                instance=instance,
                tags={ASSET_PARTITION_RANGE_START_TAG: "2023-02-01", ASSET_PARTITION_RANGE_END_TAG: "2023-02-05"},
            )
            assert result.success
    finally:
        project_instance.materialisation_listeners.clear()
    keys = [f"2023-02-{d:02d}" for d in range(1, 6)]
    assert sorted(seen) == keys
    with dg.DagsterInstance.get() as reloaded:
        assert sorted(reloaded.get_materialized_partitions(days_asset.key)) == keys
        assert reloaded.get_run_by_id(result.run_id).is_success
    with psycopg2.connect(postgres.url("dagster")) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (result.run_id,))
        (events,) = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM runs WHERE run_id = %s", (result.run_id,))
        (runs,) = cursor.fetchone()
    assert events > len(keys) and runs == 1, "runs and events are stored in PostgreSQL"
    assert not (home / "history").exists(), "nothing went to SQLite"
