"""SQL engines for the engine tests: DuckDB (a file in tmp_path) and Postgres (a uuid-named schema
of the test server; fails under CI=true when the server is missing)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from bench.sqldata import load_frame


@dataclass
class SqlDb:
    """One database to load frames into: ``load(df, name)`` returns the qualified table name."""

    engine: sa.Engine
    schema: str | None

    def load(self, df: pl.DataFrame, name: str = "t") -> str:
        load_frame(self.engine, name, df, schema=self.schema)
        return f"{self.schema}.{name}" if self.schema else name


@pytest.fixture(params=["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sql_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlDb]:
    if request.param == "duckdb":
        engine = sa.create_engine(f"duckdb:///{tmp_path / 'dq.duckdb'}")
        yield SqlDb(engine, None)
    else:
        make: Callable[[], str] = request.getfixturevalue("make_pg_schema")
        url: str = request.getfixturevalue("pg_url")
        engine = sa.create_engine(url)
        yield SqlDb(engine, make())
    engine.dispose()
