"""The project-local Dagster instance: DAGSTER_HOME, its dagster.yaml, and an event log fit for day partitions.

Dagster's SQLite event log opens, commits (an fsync) and closes a connection for every event;
a day × venue backfill writes two events per partition and asset, so on a slow disk most of an
import's time went there (profiled: 43 ms an event). `LocalSqliteEventLogStorage` is the same
storage and schema with one kept connection per database and `synchronous=NORMAL` in WAL mode:
a commit is durable against a crash of the process, not of the machine's power, which is the
right trade for a local instance; a shared deployment uses dagster-postgres instead. A run over a
partition range records one "planned" event per asset with the range instead of one per
partition (Dagster's own option): a failed run's partitions then show as missing, not failed,
in the UI; the run and its error are there, and `fund-pipeline import` names them. The same run's
materialisations, one per partition, are stored as one batch (Dagster's `DAGSTER_EVENT_BATCH_SIZE`,
turned on by these storages when it is unset): one insert into the run's database and one into the
index, as dagster-postgres does, instead of two transactions per partition.

`materialisation_listeners` lets a command in the same process watch materialisations as they
are stored (the import's progress bar and ledger).

PostgreSQL, when configured: with `DAGSTER_PG_HOST` set when the home is prepared, dagster.yaml
puts runs, the event log and schedules in PostgreSQL (dagster-postgres). The host and password
are read from the environment whenever the instance loads, so no secret is written to the file;
`DAGSTER_PG_PORT`, `_DB` and `_USERNAME` (defaults 5432, dagster, postgres) are written when the
home is made. SQLite stays the default.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.utils import pg_url_from_config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from fund_pipeline.resources import data_dir
from fund_pipeline.warehouse import WAREHOUSE_POOL, warehouse_writers

# Databases kept open at once: the cross-run index plus the few runs being written.
OPEN_SHARDS = 4
SQLITE_BUSY_TIMEOUT_S = 30
# Materialisations of one range run stored per batch; SQLite binds ~10 values a row, under its 32,766 limit.
EVENT_BATCH_SIZE = 1000
MARKER = "# written by fund-pipeline init-home; delete this line to keep your own edits\n"

# What earlier versions wrote, without the marker: refreshed as if it had it.
EARLIER_DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
"""

DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
event_log_storage:
  module: fund_pipeline.instance
  class: LocalSqliteEventLogStorage
  config:
    base_dir: {base_dir}
"""

# PostgreSQL settings: the host and the password are read from the environment when the instance
# loads (never written into the file); port, database and user are written when the home is made.
POSTGRES_DEFAULTS = {"DAGSTER_PG_PORT": "5432", "DAGSTER_PG_DB": "dagster", "DAGSTER_PG_USERNAME": "postgres"}


def postgres_dagster_yaml(env: dict[str, str]) -> str:
    """dagster.yaml for runs, event log and schedules in PostgreSQL, from `env` (DAGSTER_PG_*)."""
    port = int(env.get("DAGSTER_PG_PORT") or POSTGRES_DEFAULTS["DAGSTER_PG_PORT"])
    db_name = env.get("DAGSTER_PG_DB") or POSTGRES_DEFAULTS["DAGSTER_PG_DB"]
    username = env.get("DAGSTER_PG_USERNAME") or POSTGRES_DEFAULTS["DAGSTER_PG_USERNAME"]
    lines = [
        "      hostname:\n        env: DAGSTER_PG_HOST\n",
        f"      port: {port}\n      db_name: {db_name!r}\n      username: {username!r}\n",
        # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3, whose server-side parameters break
        # dagster-postgres's `NOTIFY run_events, %s`; its own driver is psycopg2.
        "      scheme: postgresql+psycopg2\n",
    ]
    if env.get("DAGSTER_PG_PASSWORD"):
        lines.append("      password:\n        env: DAGSTER_PG_PASSWORD\n")
    db = "".join(lines)
    blocks = [
        ("run_storage", "dagster_postgres.run_storage", "PostgresRunStorage"),
        ("event_log_storage", "fund_pipeline.instance", "ListeningPostgresEventLogStorage"),
        ("schedule_storage", "dagster_postgres.schedule_storage", "PostgresScheduleStorage"),
    ]
    return EARLIER_DAGSTER_YAML + "".join(
        f"{kind}:\n  module: {module}\n  class: {cls}\n  config:\n    postgres_db:\n{db}"
        for kind, module, cls in blocks
    )


# Called with every stored asset materialisation, in the process that stores it.
materialisation_listeners: list[Callable[[EventLogEntry], None]] = []


def _notify(event: EventLogEntry) -> None:
    if event.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION:
        for listener in list(materialisation_listeners):
            listener(event)


def _batch_range_runs() -> None:
    """Turn on Dagster's event batching for range runs unless the environment already sets it."""
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(EVENT_BATCH_SIZE))


def _pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


class LocalSqliteEventLogStorage(SqliteEventLogStorage):
    """SQLite event log with kept connections and WAL `synchronous=NORMAL` (see the module docstring)."""

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> LocalSqliteEventLogStorage:
        _batch_range_runs()
        return cls(inst_data=inst_data, **config_value)

    @property
    def supports_partition_subset_in_asset_materialization_planned_events(self) -> bool:
        return True

    def store_event(self, event: EventLogEntry) -> None:
        super().store_event(event)
        _notify(event)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """One run's materialisations (or observations) in one insert per database; else one by one."""
        kinds = {e.dagster_event_type for e in events}
        single_kind = kinds in ({DagsterEventType.ASSET_MATERIALIZATION}, {DagsterEventType.ASSET_OBSERVATION})
        if len(events) < 2 or not single_kind or len({e.run_id for e in events}) != 1:
            super().store_event_batch(events)
            return
        insert = self.prepare_insert_event_batch(events)
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(insert)
        with self.index_transaction() as conn:
            event_ids = [row[0] for row in conn.execute(insert.returning(SqlEventLogStorageTable.c.id))]
            self._store_asset_event_tags(conn, list(events), event_ids)
            # The asset's row keeps its latest event, as one-by-one storing would leave it.
            self._store_asset_event(conn, events[-1], event_ids[-1])
        for each in events:
            _notify(each)

    def _engine(self, shard: str) -> Engine:
        engines: OrderedDict[str, Engine] = self.__dict__.setdefault("_kept_engines", OrderedDict())
        engine = engines.get(shard)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=StaticPool,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            )
            event.listen(engine, "connect", _pragmas)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            engines[shard] = engine
            while len(engines) > OPEN_SHARDS:
                engines.popitem(last=False)[1].dispose()
        engines.move_to_end(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            with self._engine(shard).connect() as conn:
                with conn.begin():
                    yield conn

    def dispose(self) -> None:
        for engine in self.__dict__.get("_kept_engines", {}).values():
            engine.dispose()
        super().dispose()


class ListeningPostgresEventLogStorage(PostgresEventLogStorage):
    """dagster-postgres's event log, telling `materialisation_listeners` of what it stores."""

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> ListeningPostgresEventLogStorage:
        _batch_range_runs()
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
        )

    def store_event(self, event: EventLogEntry) -> None:
        super().store_event(event)
        _notify(event)

    def store_event_batch(self, events) -> None:
        super().store_event_batch(events)
        for each in events:
            _notify(each)


def uses_postgres() -> bool:
    """PostgreSQL is configured: `DAGSTER_PG_HOST` is set (the other settings have defaults)."""
    return bool(os.environ.get("DAGSTER_PG_HOST"))


def prepare_home(home: Path | None = None) -> Path:
    """Make DAGSTER_HOME (default `data/dagster_home`) with the project's dagster.yaml, and point the env at it.

    One slot per pool for the DuckDB file (one writer), `warehouse_writers()` for the PostgreSQL
    warehouse (`FUND_PIPELINE_WAREHOUSE_WRITERS`, default 4). The storage is SQLite, or PostgreSQL when
    `DAGSTER_PG_HOST` is set (see the module docstring). A dagster.yaml this function wrote is
    refreshed; one without the marker line is the user's and left alone.
    """
    home = (home or Path(os.environ.get("DAGSTER_HOME") or data_dir() / "dagster_home")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text().startswith(MARKER) or config.read_text() == EARLIER_DAGSTER_YAML:
        if uses_postgres():
            text = postgres_dagster_yaml(dict(os.environ))
        else:
            text = DAGSTER_YAML.format(base_dir=home / "history" / "runs")
        config.write_text(MARKER + text.replace("default_limit: 1", f"default_limit: {warehouse_writers()}"))
    os.environ["DAGSTER_HOME"] = str(home)
    if uses_postgres():
        # Dagster creates a pool's limit row on its first claim; two first claims at once (runs started
        # together on a fresh PostgreSQL instance) collide on it. Made here, before any run, once (a
        # second initialisation fails on PostgreSQL: its insert aborts the transaction it then updates in).
        with DagsterInstance.from_config(str(home)) as instance:
            if WAREHOUSE_POOL not in instance.event_log_storage.get_concurrency_keys():
                instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
    return home
