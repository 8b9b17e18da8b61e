"""The SQL both warehouse backends speak: partition filters (`Where`), identifiers, and the errors they share."""

from __future__ import annotations

from typing import Any

import pandas as pd

from fund_pipeline.domain.prints import SchemaError

Where = dict[str, Any]


class WarehouseError(RuntimeError):
    """The warehouse cannot be opened or written; the message says why and what to do."""


def quote_identifier(identifier: str) -> str:
    if not identifier.replace("_", "").isalnum():
        raise ValueError(f"not a plain SQL identifier: {identifier!r}")
    return f'"{identifier}"'


def changed_columns_error(table: str, stored: list[str], new: list[str]) -> SchemaError:
    """A table's columns differ from the frame's: the one refusal both backends give."""
    return SchemaError(
        f"table {table}: columns changed; stored {stored}, new {new}. "
        f"Drop the table (or the warehouse file) to rebuild it."
    )


def _sql_value(value: Any) -> Any:
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value


def where_sql(where: Where) -> tuple[str, list]:
    """`{col: [values]}` → IN, `{col: (start, end)}` → half-open range, `{col: instant}` → equality."""
    clauses, params = [], []
    for col, cond in where.items():
        if isinstance(cond, tuple):
            start, end = cond
            clauses.append(f"{quote_identifier(col)} >= ? AND {quote_identifier(col)} < ?")
            params += [pd.Timestamp(start).to_pydatetime(), pd.Timestamp(end).to_pydatetime()]
        elif isinstance(cond, (list, set, frozenset)):
            values = list(cond)
            if not values:
                raise ValueError(f"empty value list for partition column {col!r}")
            clauses.append(f"{quote_identifier(col)} IN ({', '.join('?' * len(values))})")
            params += [_sql_value(v) for v in values]
        else:
            clauses.append(f"{quote_identifier(col)} = ?")
            params.append(_sql_value(cond))
    return (" AND ".join(clauses) or "TRUE"), params
