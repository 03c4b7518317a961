"""Where a dataset lives, and the engine that validates it there.

A source is a frame (polars / pandas: the in-memory polars engine), a ``FileSource`` (CSV or
Parquet: validated batch by batch, memory bounded whatever the file's size) or a
``TableSource`` (a table in a database: the SQL engine, rules pushed down, nothing copied out).
``validate_source`` / ``profile_source`` pick the engine; every report records which one ran in
``metadata["engine"]`` (``polars``, ``polars-streaming``, ``sql:<dialect>``).

``TableSource.from_config`` reads the YAML shape ``{table: schema.table, connection: ...}``:
``connection`` is a SQLAlchemy URL without a password, or ``{env: VAR}`` (also
``connection_env: VAR``) naming the environment variable that holds the URL, read when the run
starts, so no secret sits in configuration. No Dagster here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from sqlalchemy.engine import make_url

from dq_dagster.engine.frames import FrameLike
from dq_dagster.engine.profile import profile
from dq_dagster.engine.pushdown import split_table_name, validate_table
from dq_dagster.engine.rules import RulePlan
from dq_dagster.engine.sqlprofile import profile_table
from dq_dagster.engine.streaming import scan_file, validate_file
from dq_dagster.engine.validate import validate
from dq_stores.models import DataContract, DatasetContract, ProfilingSnapshot, ValidationReport

__all__ = [
    "FileSource",
    "Source",
    "SourceError",
    "TableSource",
    "engine_for",
    "profile_source",
    "validate_source",
]


class SourceError(ValueError):
    """A source is misconfigured (the message names the field or variable at fault)."""


@dataclass(frozen=True)
class TableSource:
    """A table validated in place: ``table`` is ``schema.table`` (or ``table``), the database is
    ``connection`` (a SQLAlchemy URL) or the URL in the environment variable ``connection_env``.
    """

    table: str
    connection: str | None = None
    connection_env: str | None = None

    def __post_init__(self) -> None:
        try:
            split_table_name(self.table)
        except ValueError as exc:
            raise SourceError(f"source.table: {exc}") from exc
        if (self.connection is None) == (self.connection_env is None):
            raise SourceError(
                "source: give exactly one of connection (a URL) or connection_env (a variable name)"
            )
        if self.connection is not None:
            try:
                url = make_url(self.connection)
            except Exception as exc:
                raise SourceError(f"source.connection: not a database URL ({type(exc).__name__})") from exc
            if url.password:
                raise SourceError(
                    "source.connection: the URL holds a password; put it in an environment variable "
                    "and name that in connection_env (or connection: {env: VAR})"
                )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> TableSource:
        """From ``{table, connection}`` / ``{table, connection: {env: VAR}}`` / ``{table, connection_env}``."""
        unknown = sorted(set(config) - {"table", "connection", "connection_env"})
        if unknown:
            raise SourceError(f"source: unknown field(s) {', '.join(unknown)}")
        if not isinstance(config.get("table"), str):
            raise SourceError("source.table: required, a string 'schema.table'")
        given = config.get("connection")
        env = config.get("connection_env")
        conn: str | None = None
        if isinstance(given, Mapping):
            if set(given) != {"env"} or not isinstance(given["env"], str):
                raise SourceError("source.connection: a URL string or {env: VARIABLE}")
            env = given["env"]
        elif isinstance(given, str):
            conn = given
        elif given is not None:
            raise SourceError("source.connection: a URL string or {env: VARIABLE}")
        if env is not None and not isinstance(env, str):
            raise SourceError("source.connection_env: the name of an environment variable")
        return cls(table=config["table"], connection=conn, connection_env=env)

    def url(self) -> str:
        """The database URL (read from the environment now, when it comes from there)."""
        if self.connection is not None:
            return self.connection
        assert self.connection_env is not None
        value = os.environ.get(self.connection_env)
        if not value:
            raise SourceError(f"source.connection_env: environment variable {self.connection_env} is not set")
        return value

    def __repr__(self) -> str:
        where = f"connection_env={self.connection_env!r}" if self.connection_env else "connection=<url>"
        return f"TableSource(table={self.table!r}, {where})"


@dataclass(frozen=True)
class FileSource:
    """A CSV or Parquet file validated batch by batch (``file_format`` defaults to the extension)."""

    path: str
    file_format: str | None = None


Source: TypeAlias = "TableSource | FileSource | str | Path | FrameLike"
"""A table, a file (``FileSource`` or a path), or a frame."""


def engine_for(source: Source) -> str:
    """The engine ``validate_source`` runs for ``source`` (``sql`` without the dialect)."""
    if isinstance(source, TableSource):
        return "sql"
    if isinstance(source, FileSource | str | Path):
        return "polars-streaming"
    return "polars"


def validate_source(
    source: Source,
    contract: DataContract | DatasetContract | RulePlan,
    *,
    dataset_type: str | None = None,
) -> ValidationReport:
    """Validate the data where it lives: a table in place, a file in batches, a frame in memory.

    A ``str`` / ``Path`` is a file path. The report's ``metadata["engine"]`` says which ran.
    """
    if isinstance(source, TableSource):
        return validate_table(source.url(), source.table, contract, dataset_type=dataset_type)
    if isinstance(source, FileSource):
        return validate_file(source.path, contract, dataset_type=dataset_type, file_format=source.file_format)
    if isinstance(source, str | Path):
        return validate_file(source, contract, dataset_type=dataset_type)
    return validate(source, contract, dataset_type=dataset_type)


def profile_source(
    source: Source,
    contract: DataContract | DatasetContract | RulePlan,
    *,
    dataset_type: str | None = None,
    top_k: int = 10,
    bins: int = 10,
) -> ProfilingSnapshot:
    """Profile the data where it lives (a table in place; a file or a frame with polars)."""
    if isinstance(source, TableSource):
        return profile_table(
            source.url(), source.table, contract, dataset_type=dataset_type, top_k=top_k, bins=bins
        )
    if isinstance(source, FileSource | str | Path):
        path = source.path if isinstance(source, FileSource) else source
        fmt = source.file_format if isinstance(source, FileSource) else None
        return profile(scan_file(path, fmt), contract, dataset_type=dataset_type, top_k=top_k, bins=bins)
    return profile(source, contract, dataset_type=dataset_type, top_k=top_k, bins=bins)
