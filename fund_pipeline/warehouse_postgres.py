"""The PostgreSQL warehouse: the `Warehouse` interface for many writers at once.

Same tables, columns, types and partition semantics as the DuckDB file, so asset code does not
change: a table is created from the first frame written, with the types DuckDB would give it
(mapped to PostgreSQL's); rows go in by COPY; a run's partition writes are one transaction. Reads
come back with the dtypes the DuckDB backend returns (tz-aware UTC timestamps, nullable integers
and booleans only when a NULL is present, NaN for a missing float, None for a missing string).

Concurrency: a writer takes a transaction-scoped advisory lock per unit of what it replaces (each
listed value × each UTC day of a time range, per table; by month or year for a long range, with
the coarser levels held shared, as intention locks), in one global order, so writers of different
partitions never wait for each other and two writers of the same partition run one after the
other, the last one's rows replacing the first's whole. A write of the whole table takes the
table's lock exclusively; partition writers hold it shared. Writers of one table must partition it
by the same columns (every asset does). Creating a table is serialised by a lock of its own, so
two first writers do not race.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import duckdb
import numpy as np
import pandas as pd
import psycopg2
import psycopg2.extensions

from fund_pipeline.domain.prints import SchemaError
from fund_pipeline.warehouse_sql import WarehouseError, Where, changed_columns_error, quote_identifier, where_sql

# A where clause listing more partition units than this locks the whole table instead: the
# server's lock table is shared by every session (64 locks per connection by default).
MAX_PARTITION_LOCKS = 48
CONNECT_TIMEOUT_S = 10
NULL_TEXT = r"\N"
COPY_IN_OPTIONS = "(FORMAT csv, NULL '\\N')"
COPY_OUT_OPTIONS = "(FORMAT csv, HEADER, NULL '\\N')"
# Text sorts byte-wise, as in DuckDB, whatever the database's collation.
TEXT_TYPE = 'text COLLATE "C"'

# DuckDB's type for a frame's column → the PostgreSQL column type that reads back the same dtype.
PG_TYPE_OF_DUCKDB = {
    "BOOLEAN": "boolean",
    "TINYINT": "smallint",
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "UTINYINT": "smallint",
    "USMALLINT": "integer",
    "UINTEGER": "bigint",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "VARCHAR": TEXT_TYPE,
    '"NULL"': TEXT_TYPE,
    "DATE": "date",
    "INTERVAL": "interval",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "TIMESTAMP": "timestamptz",
    "TIMESTAMP_NS": "timestamptz",
    "TIMESTAMP_MS": "timestamptz",
    "TIMESTAMP_S": "timestamptz",
}

# PostgreSQL type OIDs → how a column is read back.
BOOL_OID = 16
INT_DTYPE_OF_OID = {21: "int16", 23: "int32", 20: "int64"}
FLOAT_DTYPE_OF_OID = {700: "float32", 701: "float64", 1700: "float64"}
TIME_OIDS = {1184, 1114, 1082}  # timestamptz, timestamp, date
INTERVAL_OID = 1186
TEXT_OIDS = {25, 1043, 1042, 19}


class PostgresTarget(NamedTuple):
    """Where the warehouse lives, without the password (safe to print)."""

    host: str
    port: int
    database: str
    user: str

    def __str__(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


def parse_url(url: str) -> PostgresTarget:
    """The URL's parts; a password in it is refused (it would be shown in the UI and in logs)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"warehouse url must start with postgresql://, got scheme {parts.scheme!r}")
    if parts.password is not None:
        raise ValueError(
            "warehouse url carries a password: remove it from the URL and set FUND_PIPELINE_WAREHOUSE_PASSWORD"
        )
    if not parts.hostname or not parts.path.strip("/"):
        raise ValueError("warehouse url must name a host and a database: postgresql://user@host:port/database")
    return PostgresTarget(parts.hostname, parts.port or 5432, parts.path.strip("/"), parts.username or "postgres")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lock_key(*parts: str) -> int:
    """A signed 64-bit advisory lock key for a table, or a table and one partition unit."""
    digest = hashlib.blake2b("\x1f".join(("fund_pipeline", *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# Lock levels from the finest: a time range is locked by day, or by month or year when it spans more
# days than are worth locking one by one, or else the whole table is.
TIME_LEVELS = {"day": "D", "month": "M", "year": "Y"}
TABLE_LEVEL = "table"
LEVEL_ORDER = [TABLE_LEVEL, *reversed(TIME_LEVELS)]  # coarse to fine: the order locks are taken in


class PartitionLocks(NamedTuple):
    """The advisory locks of one write: (level, key) pairs, taken coarse to fine, keys sorted within a level."""

    shared: list[tuple[str, int]]
    exclusive: list[tuple[str, int]]

    def in_order(self) -> list[tuple[bool, int]]:
        """(exclusive?, key) in the one global order every writer uses, so two writers never deadlock."""
        marked = [(level, key, False) for level, key in self.shared] + [
            (level, key, True) for level, key in self.exclusive
        ]
        marked.sort(key=lambda lock: (LEVEL_ORDER.index(lock[0]), lock[1]))
        return [(exclusive, key) for _, key, exclusive in marked]


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _is_time(value: Any) -> bool:
    return isinstance(value, (pd.Timestamp, np.datetime64)) or hasattr(value, "tzinfo")


def _unit_values(cond: Any, level: str) -> list[str]:
    """What one where-condition covers at a lock level, in units two overlapping conditions always share."""
    freq = TIME_LEVELS[level]
    if isinstance(cond, tuple):
        start, end = (_utc(t).tz_localize(None) for t in cond)
        if end <= start:
            return []
        return [str(period) for period in pd.period_range(start, end - pd.Timedelta(1, "ns"), freq=freq)]
    values = list(cond) if isinstance(cond, (list, set, frozenset)) else [cond]
    units = (str(_utc(v).tz_localize(None).to_period(freq)) if _is_time(v) else str(v) for v in values)
    return sorted(set(units))


def _units(where: Where, level: str) -> list[tuple[str, ...]]:
    axes = [[f"{col}={value}" for value in _unit_values(where[col], level)] for col in sorted(where)]
    return list(itertools.product(*axes))


def partition_locks(table: str, wheres: Sequence[Where]) -> PartitionLocks:
    """The locks of a write: its units exclusively at the finest level with few enough of them, the coarser
    levels' units shared (so a writer locking a month waits for, and holds off, the writers of its days)."""
    exclusive: set[tuple[str, int]] = set()
    shared: set[tuple[str, int]] = set()
    table_key = (TABLE_LEVEL, lock_key(table))
    for where in wheres:
        if not where:
            return PartitionLocks([], [table_key])
        levels = list(TIME_LEVELS)
        finest = next((lv for lv in levels if len(_units(where, lv)) <= MAX_PARTITION_LOCKS), None)
        if finest is None:
            return PartitionLocks([], [table_key])
        exclusive.update((finest, lock_key(table, finest, *unit)) for unit in _units(where, finest))
        for coarser in levels[levels.index(finest) + 1 :]:
            shared.update((coarser, lock_key(table, coarser, *unit)) for unit in _units(where, coarser))
        shared.add(table_key)
    if len(exclusive) + len(shared) > 2 * MAX_PARTITION_LOCKS:
        return PartitionLocks([], [table_key])
    return PartitionLocks(sorted(shared - exclusive), sorted(exclusive))


def column_types(frame: pd.DataFrame) -> dict[str, str]:
    """PostgreSQL column types for a frame: DuckDB's inference (what the file backend stores), mapped."""
    with duckdb.connect() as conn:
        conn.register("frame_rows", frame)
        described = conn.execute("DESCRIBE SELECT * FROM frame_rows").fetchall()
    types = {}
    for name, duck_type, *_ in described:
        key = "VARCHAR" if duck_type.startswith("ENUM(") else duck_type
        pg_type = PG_TYPE_OF_DUCKDB.get(key)
        if pg_type is None and key.startswith("DECIMAL"):
            pg_type = "numeric" + key[len("DECIMAL") :]
        if pg_type is None:
            raise SchemaError(
                f"column {name!r} holds DuckDB type {duck_type}, which the PostgreSQL warehouse does not store; "
                f"give it a scalar type (number, string, bool, timestamp)"
            )
        types[name] = pg_type
    return types


def copy_text(frame: pd.DataFrame, columns: Sequence[str], stored: dict[str, str]) -> io.StringIO:
    """The frame as COPY's CSV in the table's column order (timestamps in UTC to the microsecond, as DuckDB keeps)."""
    out = {}
    for col in columns:
        values = frame[col]
        if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype):
            utc = pd.to_datetime(values, utc=True).dt.tz_convert(None)
            text = np.datetime_as_string(utc.to_numpy().astype("datetime64[us]"), unit="us")
            out[col] = pd.Series(text, index=values.index).where(values.notna())
        elif pd.api.types.is_timedelta64_dtype(values.dtype):
            micros = values.to_numpy().astype("timedelta64[us]").astype("int64")
            out[col] = pd.Series([f"{m} microseconds" for m in micros], index=values.index).where(values.notna())
        elif stored[col] in ("smallint", "integer", "bigint") and pd.api.types.is_float_dtype(values.dtype):
            try:
                out[col] = values.astype("Int64")
            except (TypeError, ValueError) as error:
                raise SchemaError(f"column {col!r} is stored as {stored[col]} but the frame has fractions") from error
        else:
            out[col] = values
    buffer = io.StringIO()
    pd.DataFrame(out).to_csv(buffer, index=False, header=False, na_rep=NULL_TEXT, float_format="%.17g")
    buffer.seek(0)
    return buffer


def _select_list(description) -> str:
    """Each result column as COPY writes it so that pandas parses it fast and exactly."""
    items = []
    for column in description:
        name, oid = _ident(column.name), column.type_code
        if oid in TIME_OIDS or oid == INTERVAL_OID:
            items.append(f"(extract(epoch from q.{name}) * 1000000)::bigint AS {name}")
        elif oid == BOOL_OID:
            items.append(f"q.{name}::int AS {name}")
        elif oid in INT_DTYPE_OF_OID or oid in FLOAT_DTYPE_OF_OID or oid in TEXT_OIDS:
            items.append(f"q.{name}")
        else:
            items.append(f"q.{name}::text AS {name}")
    return ", ".join(items)


def _typed(raw: pd.DataFrame, description) -> pd.DataFrame:
    """The parsed columns with the dtypes DuckDB's `df()` gives the same stored values."""
    columns = {}
    for position, column in enumerate(description):
        values, oid = raw.iloc[:, position], column.type_code
        if oid in TIME_OIDS:
            stamps = pd.to_datetime(values, unit="us", utc=True)
            columns[column.name] = stamps.astype("datetime64[ns, UTC]")
        elif oid == INTERVAL_OID:
            columns[column.name] = pd.to_timedelta(values, unit="us").astype("timedelta64[us]")
        elif oid == BOOL_OID:
            columns[column.name] = values.astype("boolean") if values.isna().any() else values.astype(bool)
        elif oid in INT_DTYPE_OF_OID:
            dtype = INT_DTYPE_OF_OID[oid]
            columns[column.name] = values.astype(dtype.capitalize()) if values.isna().any() else values.astype(dtype)
        elif oid in FLOAT_DTYPE_OF_OID:
            columns[column.name] = values.astype(FLOAT_DTYPE_OF_OID[oid])
        else:
            columns[column.name] = values.astype(object).where(values.notna(), None)
    return pd.DataFrame(columns, index=raw.index)


def read_frame(cursor, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
    """The result of `sql` as a frame, through COPY (one round trip of text, parsed in C)."""
    query = cursor.mogrify(sql, list(params) or None).decode()
    cursor.execute(f"SELECT * FROM ({query}) AS q LIMIT 0")
    description = cursor.description
    names = [column.name for column in description]
    if len(set(names)) != len(names):
        raise ValueError(f"query result has repeated column names {names}: alias them")
    buffer = io.StringIO()
    cursor.copy_expert(
        f"COPY (SELECT {_select_list(description)} FROM ({query}) AS q) TO STDOUT WITH {COPY_OUT_OPTIONS}",
        buffer,
    )
    buffer.seek(0)
    parse_as: dict[str, Any] = {
        column.name: "Int64"
        if column.type_code in TIME_OIDS or column.type_code in INT_DTYPE_OF_OID or column.type_code == INTERVAL_OID
        else "float64"
        if column.type_code in FLOAT_DTYPE_OF_OID or column.type_code == BOOL_OID
        else object
        for column in description
    }
    missing = {
        column.name: [NULL_TEXT, "NaN"] if column.type_code in FLOAT_DTYPE_OF_OID else [NULL_TEXT]
        for column in description
    }
    raw = pd.read_csv(buffer, dtype=parse_as, keep_default_na=False, na_values=missing, float_precision="round_trip")
    return _typed(raw, description)


def _params(params: Sequence[Any]) -> list[Any]:
    """Query parameters psycopg2 can adapt (numpy scalars and pandas timestamps become Python values)."""
    out = []
    for value in params:
        if isinstance(value, pd.Timestamp):
            value = value.to_pydatetime()
        elif isinstance(value, np.generic):
            value = value.item()
        out.append(value)
    return out


class PostgresWarehouse:
    """The warehouse's operations on one PostgreSQL database (a connection per operation)."""

    def __init__(self, url: str, password: str | None):
        self.target = parse_url(url)
        self._url = url
        self._password = password or None

    @contextmanager
    def connection(self) -> Iterator[psycopg2.extensions.connection]:
        """A connection for one read or write, closed on every path."""
        extra = {"password": self._password} if self._password else {}
        try:
            conn = psycopg2.connect(
                self._url,
                connect_timeout=CONNECT_TIMEOUT_S,
                options="-c TimeZone=UTC",
                application_name="fund_pipeline",
                **extra,
            )
        except psycopg2.OperationalError as error:
            raise WarehouseError(
                f"PostgreSQL warehouse {self.target} cannot be reached: {str(error).strip()}. Check "
                f"FUND_PIPELINE_WAREHOUSE_URL (and FUND_PIPELINE_WAREHOUSE_PASSWORD), or unset the URL "
                f"to use the DuckDB file"
            ) from error
        try:
            yield conn
        finally:
            conn.close()

    # --- schema -------------------------------------------------------------------------------

    @staticmethod
    def _stored_columns(cursor, table: str) -> dict[str, str]:
        cursor.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
            [table],
        )
        return {name: kind for name, kind in cursor.fetchall()}

    def _create(self, conn, table: str, frame: pd.DataFrame, views: dict[str, str]) -> None:
        """Create `table` from the frame's types (and its views), once: a second creator waits, then finds it."""
        types = column_types(frame)
        definition = ", ".join(f"{quote_identifier(col)} {types[col]}" for col in frame.columns)
        with conn, conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key("create", table)])
            if self._stored_columns(cursor, table):
                return
            cursor.execute(f"CREATE TABLE {quote_identifier(table)} ({definition})")
            source = quote_identifier(table)
            for view, condition in views.items():
                view_name = quote_identifier(view)
                cursor.execute(f"CREATE OR REPLACE VIEW {view_name} AS SELECT * FROM {source} WHERE {condition}")

    # --- writes -------------------------------------------------------------------------------

    def replace_partitions(
        self, table: str, parts: Sequence[tuple[pd.DataFrame, Where]], views: dict[str, str]
    ) -> None:
        """Delete each partition's rows and COPY the new ones, all in one transaction, under the partitions' locks."""
        name = quote_identifier(table)
        with self.connection() as conn:
            with conn.cursor() as cursor:
                stored = self._stored_columns(cursor, table)
            conn.rollback()
            if not stored:
                self._create(conn, table, parts[0][0], views)
                with conn.cursor() as cursor:
                    stored = self._stored_columns(cursor, table)
                conn.rollback()
            if sorted(stored) != sorted(parts[0][0].columns):
                raise changed_columns_error(table, list(stored), list(parts[0][0].columns))
            locks = partition_locks(table, [where for _, where in parts])
            column_list = ", ".join(quote_identifier(col) for col in stored)
            with conn, conn.cursor() as cursor:
                for exclusive, key in locks.in_order():
                    how = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
                    cursor.execute(f"SELECT {how}(%s)", [key])
                for frame, where in parts:
                    clause, params = where_sql(where)
                    cursor.execute(f"DELETE FROM {name} WHERE {clause.replace('?', '%s')}", _params(params))
                    if len(frame):
                        cursor.copy_expert(
                            f"COPY {name} ({column_list}) FROM STDIN WITH {COPY_IN_OPTIONS}",
                            copy_text(frame, list(stored), stored),
                        )

    # --- reads --------------------------------------------------------------------------------

    def has_table(self, table: str) -> bool:
        with self.connection() as conn, conn.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND table_name = %s",
                [table],
            )
            found = cursor.fetchone()
            return bool(found and found[0])

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """`sql` with DuckDB-style `?` placeholders (translated to psycopg2's), as a frame."""
        text = sql.replace("%", "%%").replace("?", "%s") if params else sql
        with self.connection() as conn, conn.cursor() as cursor:
            return read_frame(cursor, text, _params(params))

    def read(self, table: str, clause: str, params: Sequence[Any], columns: str, order: str) -> pd.DataFrame | None:
        """Rows of `table` where `clause` (DuckDB placeholders); None when there is no table."""
        with self.connection() as conn, conn.cursor() as cursor:
            if not self._stored_columns(cursor, table):
                return None
            sql = f"SELECT {columns} FROM {quote_identifier(table)} WHERE {clause.replace('?', '%s')}{order}"
            return read_frame(cursor, sql, _params(params))

    def latest(self, table: str, column: str) -> Any:
        with self.connection() as conn, conn.cursor() as cursor:
            if not self._stored_columns(cursor, table):
                return None
            cursor.execute(f"SELECT max({quote_identifier(column)}) FROM {quote_identifier(table)}")
            found = cursor.fetchone()
            return found[0] if found else None
