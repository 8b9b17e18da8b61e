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


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def counted_days(context) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"dagster/row_count": len(context.partition_keys), "first": context.partition_keys[0]}
    )


def stored_range_run(home, monkeypatch, batch_size: str) -> dict:
    """A 12-day range run of `counted_days` on a fresh home; what a reader of the instance sees."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch_size)
    prepare_home(home)
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(
            [counted_days],
            instance=instance,
            tags={ASSET_PARTITION_RANGE_START_TAG: "2023-01-01", ASSET_PARTITION_RANGE_END_TAG: "2023-01-12"},
        )
        assert result.success
        per_partition = {}
        for key in instance.get_materialized_partitions(counted_days.key):
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=counted_days.key, asset_partitions=[key]), limit=10
            ).records
            per_partition[key] = [(r.partition_key, dict(r.asset_materialization.metadata)) for r in records]
        latest = instance.get_latest_materialization_event(counted_days.key)
        run_events = [r.event_log_entry.dagster_event_type for r in instance.get_records_for_run(result.run_id).records]
    return {
        "partitions": per_partition,
        "latest": latest.dagster_event.partition,
        "run_events": sorted(map(str, run_events)),
    }


def test_a_range_runs_materialisations_are_stored_as_one_batch_and_read_back_as_one_by_one(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    batches: list[int] = []
    original = LocalSqliteEventLogStorage.store_event_batch

    def counting(self, events):
        batches.append(len(events))
        original(self, events)

    index_writes: list[int] = []
    original_index = LocalSqliteEventLogStorage.index_transaction

    def counting_index(self):
        index_writes.append(1)
        return original_index(self)

    monkeypatch.setattr(LocalSqliteEventLogStorage, "store_event_batch", counting)
    monkeypatch.setattr(LocalSqliteEventLogStorage, "index_transaction", counting_index)
    one_by_one = stored_range_run(tmp_path / "single", monkeypatch, "0")
    single_index_writes, index_writes[:] = len(index_writes), []
    assert batches == []
    batched = stored_range_run(tmp_path / "batched", monkeypatch, "1000")
    assert batches == [12], "the twelve materialisations went to storage together"
    assert len(index_writes) == single_index_writes - 11, "one index transaction for the batch instead of twelve"
    assert batched == one_by_one
    assert len(batched["partitions"]) == 12 and batched["latest"] == "2023-01-12"


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
