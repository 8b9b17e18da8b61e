"""The warehouse: atomic partition writes, named reads, and connections that never linger.

A run's partition writes go in one transaction (delete each partition's rows, insert the new ones):
re-materialising never duplicates, a failed run leaves every stored row as it was, and what is
stored always matches what Dagster recorded. Assets read through named methods (settled prints in
a window, the newest time of a table), so no query is written twice. DuckDB allows one writer process:
connections are held only while reading or writing, closed on every path, and a lock held by
another process is reported within seconds, naming the holder.

With `url` set (`FUND_PIPELINE_WAREHOUSE_URL`, the password apart in `FUND_PIPELINE_WAREHOUSE_PASSWORD`)
the same interface stores into PostgreSQL (`warehouse_postgres`), which takes many writers at once:
the `warehouse` pool then admits `FUND_PIPELINE_WAREHOUSE_WRITERS` steps (default 4) instead of one.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field, PrivateAttr, field_validator

from fund_pipeline.domain.prints import SchemaError
from fund_pipeline.warehouse_sql import WarehouseError, Where, changed_columns_error, quote_identifier, where_sql

if TYPE_CHECKING:
    from fund_pipeline.warehouse_postgres import PostgresWarehouse

WAREHOUSE_POOL = "warehouse"
PRINTS_TABLE = "raw_funding_prints"
# Views over the prints table: readers of one kind never filter by hand.
PRINT_VIEWS = {"settled_prints": "settled", "predicted_prints": "predicted"}
# Prints in arrival order per stream: what the curve replay needs, and deterministic for the rest.
PRINT_ORDER = "venue, symbol, ts, funding_time"
# How long a conflicting lock is waited for before the error: a writer's transaction is seconds.
LOCK_WAIT_S = 5.0
WAREHOUSE_URL_ENV = "FUND_PIPELINE_WAREHOUSE_URL"
WAREHOUSE_PASSWORD_ENV = "FUND_PIPELINE_WAREHOUSE_PASSWORD"
WAREHOUSE_WRITERS_ENV = "FUND_PIPELINE_WAREHOUSE_WRITERS"
DEFAULT_POSTGRES_WRITERS = 4
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


def data_dir() -> Path:
    """Runtime data folder: `FUND_PIPELINE_DATA_DIR`, else `data/` under the working directory."""
    return Path(os.environ.get("FUND_PIPELINE_DATA_DIR", Path.cwd() / "data"))


def warehouse_writers() -> int:
    """Slots of the `warehouse` pool: one for the DuckDB file, `FUND_PIPELINE_WAREHOUSE_WRITERS` for PostgreSQL."""
    if not os.environ.get(WAREHOUSE_URL_ENV):
        return 1
    raw = os.environ.get(WAREHOUSE_WRITERS_ENV, str(DEFAULT_POSTGRES_WRITERS))
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{WAREHOUSE_WRITERS_ENV} must be a whole number >= 1, got {raw!r}")
    return int(raw)


def _resolved(value: Any) -> Any:
    """A `dg.EnvVar` field read outside a run (a run gets the value itself): the variable's value."""
    return value.get_value() if isinstance(value, dg.EnvVar) else value


def utc_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Give every timestamp column the project's convention: tz-aware UTC, nanoseconds."""
    for col in frame.columns:
        dtype = frame[col].dtype
        if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
            frame[col] = pd.to_datetime(frame[col], utc=True).astype("datetime64[ns, UTC]")
    return frame


def _open_error(database: str, error: duckdb.Error) -> WarehouseError:
    """What went wrong opening the file, in words a user can act on."""
    text = str(error)
    holder = _LOCK_HOLDER.search(text)
    if holder:
        return WarehouseError(
            f"warehouse {database} is in use by another process: {holder['program']} (PID {holder['pid']}). "
            f"DuckDB allows one writer process. Wait for that run to finish, or stop the process "
            f"(for a stale one: kill {holder['pid']}), then run again; waited {LOCK_WAIT_S:.0f} s. "
            f"To run writers at once, store the warehouse in PostgreSQL ({WAREHOUSE_URL_ENV})."
        )
    if "not a valid DuckDB database" in text or "Unable to open database" in text:
        return WarehouseError(
            f"warehouse {database} is not a DuckDB database file ({text}); point `database` elsewhere"
        )
    return WarehouseError(f"warehouse {database} cannot be opened: {text}")


def connect(database: str, read_only: bool = False, config: dict | None = None) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting up to LOCK_WAIT_S for another process's lock; any other failure is immediate."""
    deadline = time.monotonic() + LOCK_WAIT_S
    delay = 0.05
    while True:
        try:
            conn = duckdb.connect(database, read_only=read_only, config=config or {})
            conn.execute("SET TimeZone='UTC'")
            return conn
        except duckdb.Error as error:
            if "Could not set lock" not in str(error) or time.monotonic() + delay > deadline:
                raise _open_error(database, error) from error
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


class Warehouse(DuckDBResource):
    """The warehouse (a DuckDB file, or PostgreSQL when `url` is set), with atomic partition writes and named reads."""

    database: str = str(data_dir() / "warehouse.duckdb")
    url: str | None = Field(
        default=None,
        description=(
            "PostgreSQL instead of the DuckDB file: postgresql://user@host:port/database, without the password "
            f"(that goes in `password`, from {WAREHOUSE_PASSWORD_ENV})"
        ),
    )
    password: str | None = Field(default=None, description=f"the PostgreSQL password, from {WAREHOUSE_PASSWORD_ENV}")

    _postgres_backend: PostgresWarehouse | None = PrivateAttr(default=None)

    @classmethod
    def from_env(cls) -> Warehouse:
        """The DuckDB file by default; PostgreSQL when `FUND_PIPELINE_WAREHOUSE_URL` is set, read as a
        `dg.EnvVar` (with the password) so neither is written into Dagster's storage."""
        if not os.environ.get(WAREHOUSE_URL_ENV):
            return cls()
        password = dg.EnvVar(WAREHOUSE_PASSWORD_ENV) if os.environ.get(WAREHOUSE_PASSWORD_ENV) else None
        return cls(url=dg.EnvVar(WAREHOUSE_URL_ENV), password=password)

    def _postgres(self) -> PostgresWarehouse | None:
        """The PostgreSQL backend when `url` is set (built once; the URL checked then), else None."""
        if not self.url:
            return None
        if self._postgres_backend is None:
            from fund_pipeline.warehouse_postgres import PostgresWarehouse

            self._postgres_backend = PostgresWarehouse(_resolved(self.url), _resolved(self.password))
        return self._postgres_backend

    @field_validator("database")
    @classmethod
    def _a_file(cls, value: str) -> str:
        if not value or value.strip() == ":memory:" or value.startswith(":memory:"):
            raise ValueError(
                f"warehouse database must be a file path, got {value!r}: an in-memory database "
                f"forgets every partition when the step's connection closes"
            )
        return value

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection to the DuckDB file for one read or write, closed on every path (a failed step keeps no lock)."""
        if self.url:
            raise WarehouseError("warehouse.connection() opens the DuckDB file; on PostgreSQL use query() or read()")
        path = Path(self.database)
        if path.is_dir():
            raise WarehouseError(f"warehouse {self.database} is a directory; `database` must name a file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise WarehouseError(f"warehouse folder {path.parent} cannot be created: {error}") from error
        if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise WarehouseError(f"warehouse {self.database} is not writable by this user; fix its permissions")
        conn = connect(self.database, config=self.connection_config)
        try:
            yield conn
        finally:
            conn.close()

    # --- writes -------------------------------------------------------------------------------

    def replace(self, table: str, frame: pd.DataFrame, where: Where) -> int:
        """Replace the rows of `table` matching `where` with `frame`; returns rows written."""
        return self.replace_partitions(table, [(frame, where)])

    def replace_partitions(self, table: str, parts: Sequence[tuple[pd.DataFrame, Where]]) -> int:
        """Replace several partitions of `table` in one transaction: all are written, or none.

        A run over several venues or spans writes through here, so a failure in the middle leaves
        the table as it was and Dagster (which then records no materialisation) agrees with it.
        """
        if not parts:
            return 0
        name = quote_identifier(table)
        columns = sorted(parts[0][0].columns)
        for frame, _ in parts[1:]:
            if sorted(frame.columns) != columns:
                raise SchemaError(f"table {table}: the partitions of one write have different columns")
        statements = [where_sql(where) for _, where in parts]
        views = {view: f"kind = '{kind}'" for view, kind in PRINT_VIEWS.items()} if table == PRINTS_TABLE else {}
        postgres = self._postgres()
        if postgres is not None:
            postgres.replace_partitions(table, parts, views)
            return sum(len(frame) for frame, _ in parts)
        with self.connection() as conn:
            exists = self._has_table(conn, table)
            if exists:
                stored = [r[0] for r in conn.execute(f"DESCRIBE {name}").fetchall()]
                if sorted(stored) != columns:
                    raise changed_columns_error(table, stored, list(parts[0][0].columns))
            conn.execute("BEGIN TRANSACTION")
            try:
                for (frame, _), (clause, params) in zip(parts, statements, strict=True):
                    conn.register("partition_rows", frame)
                    if not exists:
                        conn.execute(f"CREATE TABLE {name} AS SELECT * FROM partition_rows LIMIT 0")
                        exists = True
                    conn.execute(f"DELETE FROM {name} WHERE {clause}", params)
                    conn.execute(f"INSERT INTO {name} BY NAME SELECT * FROM partition_rows")
                    conn.unregister("partition_rows")
                for view, condition in views.items():
                    conn.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {name} WHERE {condition}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return sum(len(frame) for frame, _ in parts)

    # --- reads --------------------------------------------------------------------------------

    @staticmethod
    def _has_table(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
        found = conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchone()
        return bool(found and found[0])

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """Any SQL both backends understand (`?` placeholders), as a frame."""
        postgres = self._postgres()
        if postgres is not None:
            return postgres.query(sql, params or [])
        with self.connection() as conn:
            return utc_frame(conn.execute(sql, params or []).df())

    def has_table(self, table: str) -> bool:
        postgres = self._postgres()
        if postgres is not None:
            return postgres.has_table(table)
        with self.connection() as conn:
            return self._has_table(conn, table)

    def read(
        self, table: str, where: Where | None = None, columns: list[str] | None = None, order_by: str | None = None
    ) -> pd.DataFrame:
        """Rows of `table` matching `where` (same form as `replace`); empty frame if no table."""
        name = quote_identifier(table)
        clause, params = where_sql(where or {})
        cols = ", ".join(quote_identifier(c) for c in columns) if columns else "*"
        order = f" ORDER BY {order_by}" if order_by else ""
        postgres = self._postgres()
        if postgres is not None:
            rows = postgres.read(table, clause, params, cols, order)
            return pd.DataFrame(columns=columns or []) if rows is None else rows
        with self.connection() as conn:
            if not self._has_table(conn, table):
                return pd.DataFrame(columns=columns or [])
            return utc_frame(conn.execute(f"SELECT {cols} FROM {name} WHERE {clause}{order}", params).df())

    def prints(
        self, kind: str, start, end, venues: Sequence[str] | None = None, columns: list[str] | None = None
    ) -> pd.DataFrame:
        """Prints of one kind with funding_time in [start, end) of some venues (None: all), in arrival order;
        `columns` (None: all) keeps a reader of a year of hourly prints from converting columns it never uses."""
        where: Where = {"kind": [kind], "funding_time": (start, end)}
        if venues is not None:
            where["venue"] = list(venues)
        return self.read(PRINTS_TABLE, where, columns, order_by=PRINT_ORDER)

    def settled_prints(
        self, start, end, venues: Sequence[str] | None = None, columns: list[str] | None = None
    ) -> pd.DataFrame:
        """Settled prints with funding_time in [start, end): what curves, features and baskets read."""
        return self.prints("settled", start, end, venues, columns)

    def predicted_prints(self, start, end, venues: Sequence[str] | None = None) -> pd.DataFrame:
        """Predicted (live or reconstructed) prints with funding_time in [start, end)."""
        return self.prints("predicted", start, end, venues)

    def latest(self, table: str, column: str) -> pd.Timestamp | None:
        """The newest value of a time column, None when the table is missing or empty."""
        postgres = self._postgres()
        if postgres is not None:
            newest = postgres.latest(table, column)
        else:
            with self.connection() as conn:
                if not self._has_table(conn, table):
                    return None
                found = conn.execute(
                    f"SELECT max({quote_identifier(column)}) FROM {quote_identifier(table)}"
                ).fetchone()
            newest = found[0] if found else None
        if newest is None:
            return None
        stamp = pd.Timestamp(newest)
        return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def open_readonly(database: str) -> duckdb.DuckDBPyConnection:
    """Read-only connection for reporting outside runs (demo summary)."""
    return connect(database, read_only=True)
