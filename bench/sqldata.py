"""Polars frames loaded into SQL tables (Postgres by ``COPY``, DuckDB from Arrow), column types
mapped one to one, for the SQL-engine tests and benchmarks. Setup code: never timed.
"""

from __future__ import annotations

import io
from typing import Any

import polars as pl
import sqlalchemy as sa

_PG_TYPES = {
    pl.String: "text",
    pl.Float64: "double precision",
    pl.Float32: "real",
    pl.Int64: "bigint",
    pl.Int32: "integer",
    pl.Int16: "smallint",
    pl.Boolean: "boolean",
    pl.Date: "date",
}


def _pg_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "timestamp with time zone" if dtype.time_zone else "timestamp"
    if isinstance(dtype, pl.Decimal):
        return f"numeric({dtype.precision or 38},{dtype.scale or 0})"
    for base, name in _PG_TYPES.items():
        if isinstance(dtype, base):
            return name
    raise TypeError(f"no Postgres type for {dtype}")


def load_frame(engine: sa.Engine, table: str, df: pl.DataFrame, *, schema: str | None = None) -> None:
    """Create ``table`` (replacing it) holding ``df``; Postgres or DuckDB. Columns of nothing but
    nulls (polars ``Null``) become text."""
    df = df.with_columns([pl.col(c).cast(pl.String) for c, t in df.schema.items() if isinstance(t, pl.Null)])
    qualified = f'"{schema}"."{table}"' if schema else f'"{table}"'
    if engine.dialect.name == "duckdb":
        with engine.begin() as conn:
            raw: Any = conn.connection.driver_connection
            raw.register("__dq_frame", df.to_arrow())
            raw.execute(f"CREATE OR REPLACE TABLE {qualified} AS SELECT * FROM __dq_frame")
            raw.unregister("__dq_frame")
        return
    columns = ", ".join(f'"{name}" {_pg_type(dtype)}' for name, dtype in df.schema.items())
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {qualified}")
        conn.exec_driver_sql(f"CREATE TABLE {qualified} ({columns})")
        cursor: Any = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        names = ", ".join(f'"{c}"' for c in df.columns)
        step = 1_000_000
        with cursor.copy(f"COPY {qualified} ({names}) FROM STDIN (FORMAT csv, NULL '\\N')") as copy:
            for start in range(0, max(df.height, 1), step):
                buffer = io.BytesIO()
                df.slice(start, step).write_csv(
                    buffer,
                    include_header=False,
                    null_value="\\N",
                    date_format="%Y-%m-%d",
                    float_precision=None,
                )
                copy.write(buffer.getvalue())
        conn.exec_driver_sql(f"ANALYZE {qualified}")
