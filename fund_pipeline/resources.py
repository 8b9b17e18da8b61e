"""Resources: where data comes from (MarketSource) and where it is kept (warehouse, landing).

Storage is a resource so that the embedded DuckDB can be swapped for a store that accepts
concurrent writers without touching an asset.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import dagster as dg
import duckdb
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from fund_pipeline.domain.prints import SchemaError
from fund_pipeline.sources.base import MarketSource, UnknownVenueError

WAREHOUSE_POOL = "warehouse"


def data_dir() -> Path:
    """Runtime data folder: `FUND_PIPELINE_DATA_DIR`, else `data/` under the working directory."""
    return Path(os.environ.get("FUND_PIPELINE_DATA_DIR", Path.cwd() / "data"))


def _quote(identifier: str) -> str:
    if not identifier.replace("_", "").isalnum():
        raise ValueError(f"not a plain SQL identifier: {identifier!r}")
    return f'"{identifier}"'


def _where_sql(where: dict) -> tuple[str, list]:
    """`{col: [values]}` → IN, `{col: (start, end)}` → half-open range."""
    clauses, params = [], []
    for col, cond in where.items():
        if isinstance(cond, tuple):
            start, end = cond
            clauses.append(f"{_quote(col)} >= ? AND {_quote(col)} < ?")
            params += [pd.Timestamp(start).to_pydatetime(), pd.Timestamp(end).to_pydatetime()]
        else:
            values = list(cond)
            if not values:
                raise ValueError(f"empty value list for partition column {col!r}")
            clauses.append(f"{_quote(col)} IN ({', '.join('?' * len(values))})")
            params += values
    return (" AND ".join(clauses) or "TRUE"), params


def utc_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Give every timestamp column the project's convention: tz-aware UTC, nanoseconds."""
    for col in frame.columns:
        dtype = frame[col].dtype
        if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
            frame[col] = pd.to_datetime(frame[col], utc=True).astype("datetime64[ns, UTC]")
    return frame


class Warehouse(DuckDBResource):
    """The DuckDB warehouse, with idempotent partition writes.

    A partition write deletes the partition's rows and inserts the new ones in one transaction:
    re-materialising never duplicates, and a failed write leaves the old rows in place.
    Connections are held only while reading or writing (DuckDB allows one writer process).
    """

    database: str = str(data_dir() / "warehouse.duckdb")

    @contextmanager
    def connection(self):
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with self.get_connection() as conn:
            conn.execute("SET TimeZone='UTC'")
            yield conn

    def replace(self, table: str, frame: pd.DataFrame, where: dict) -> int:
        """Replace the rows of `table` matching `where` with `frame`; returns rows written."""
        clause, params = _where_sql(where)
        name = _quote(table)
        with self.connection() as conn:
            exists = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
            ).fetchone()[0]
            if exists:
                stored = [r[0] for r in conn.execute(f"DESCRIBE {name}").fetchall()]
                if sorted(stored) != sorted(frame.columns):
                    raise SchemaError(
                        f"table {table}: columns changed; stored {stored}, new {list(frame.columns)}. "
                        f"Drop the table (or the warehouse file) to rebuild it."
                    )
            conn.execute("BEGIN TRANSACTION")
            try:
                if not exists:
                    conn.execute(f"CREATE TABLE {name} AS SELECT * FROM frame LIMIT 0")
                conn.execute(f"DELETE FROM {name} WHERE {clause}", params)
                conn.execute(f"INSERT INTO {name} BY NAME SELECT * FROM frame")
                conn.execute("COMMIT")
            except Exception:
                conn.execute("ROLLBACK")
                raise
        return len(frame)

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with self.connection() as conn:
            return utc_frame(conn.execute(sql, params or []).df())

    def has_table(self, table: str) -> bool:
        with self.connection() as conn:
            return bool(
                conn.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchone()[
                    0
                ]
            )

    def read(self, table: str, where: dict | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """Rows of `table` matching `where` (same form as `replace`); empty frame if no table."""
        name = _quote(table)
        if not self.has_table(table):
            return pd.DataFrame(columns=columns or [])
        clause, params = _where_sql(where or {})
        cols = ", ".join(_quote(c) for c in columns) if columns else "*"
        return self.query(f"SELECT {cols} FROM {name} WHERE {clause}", params)


class MarketSourceResource(dg.ConfigurableResource):
    """Chooses the market data source by config: simulated (default), files, or ccxt."""

    kind: Literal["simulated", "files", "ccxt"] = "simulated"
    seed: int = 7
    bases: list[str] | None = None
    files_root: str | None = None
    # files only: what a format lacks (venue, ccxt symbol), the format by name, the files' clock
    # ("utc", "+3" for local = UTC+3, "infer" for the shipped sample), or an import manifest.
    files_venue: str | None = None
    files_symbol: str | None = None
    files_format: str | None = None
    files_clock: str = "utc"
    files_manifest: str | None = None
    api_base_url: str | None = None

    _source: MarketSource | None = PrivateAttr(default=None)

    def get(self) -> MarketSource:
        if self._source is None:
            self._source = self._build()
        return self._source

    def _build(self) -> MarketSource:
        if self.kind == "simulated":
            from fund_pipeline.sources.simulated import SimulatedMarket

            return SimulatedMarket(seed=self.seed, bases=tuple(self.bases) if self.bases else None)
        if self.kind == "files":
            from fund_pipeline.sources.files import FileSource, SourceConfigError

            if self.files_manifest:
                return FileSource.from_manifest(self.files_manifest)
            if not self.files_root:
                raise SourceConfigError(
                    "market_source: kind='files' needs files_root (a folder or files, os.pathsep-separated) "
                    "or files_manifest; it no longer falls back to the shipped sample"
                )
            return FileSource.from_paths(
                self.files_root,
                venue=self.files_venue,
                symbol=self.files_symbol,
                fmt=self.files_format,
                clock=self.files_clock,
            )
        from fund_pipeline.sources.ccxt import CcxtSource

        return CcxtSource(api_base_url=self.api_base_url)

    def venue_source(self, venue: str) -> MarketSource:
        """The source, after checking it serves `venue` (clear error otherwise)."""
        source = self.get()
        if venue not in source.venues():
            raise UnknownVenueError(
                f"venue {venue!r} is not served by the {self.kind!r} source; it serves {list(source.venues())}"
            )
        return source


class LandingZone(dg.ConfigurableResource):
    """Folder where the live collector lands immutable segments for the sensor to pick up."""

    path: str = str(data_dir() / "landing")

    def root(self) -> Path:
        return Path(self.path)


def open_readonly(database: str) -> duckdb.DuckDBPyConnection:
    """Read-only connection for reporting outside runs (demo summary)."""
    conn = duckdb.connect(database, read_only=True)
    conn.execute("SET TimeZone='UTC'")
    return conn
