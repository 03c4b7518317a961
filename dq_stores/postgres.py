"""Postgres-backed stores under the design note's names (``PostgresJobRunStore`` and friends).

They are the SQL stores of ``dq_stores.sql`` bound to Postgres. Each is constructible from a URL
string (``postgresql+psycopg://user@host/db``; ``postgresql://`` means psycopg 3 too) or from an
existing SQLAlchemy ``Engine``, so that the design note's snippet runs as written::

    job_store = PostgresJobRunStore("postgresql+psycopg://app@db/dq")
    for job in job_store.list_by_tenant(tenant="tenant-a", environment="dev"):
        print(job.job_id, job.status)

A store built from a URL owns its connection pool and releases it on ``close()``; a store built
from an ``Engine`` leaves the engine to its owner.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy.engine import Engine

from dq_stores.errors import InvalidArtifactError
from dq_stores.sql.engine import SqlEngine
from dq_stores.sql.runs import SqlJobRunStore
from dq_stores.sql.versioned import SqlActionProfileStore, SqlContractStore, SqlJobDefinitionStore

__all__ = [
    "PostgresActionProfileStore",
    "PostgresContractStore",
    "PostgresJobDefinitionStore",
    "PostgresJobRunStore",
]


def _postgres_only(url_or_engine: str | Engine | SqlEngine | None) -> str | Engine | SqlEngine:
    if url_or_engine is None:
        url_or_engine = os.environ.get("DQ_STORES_URL", "")
        if not url_or_engine:
            raise InvalidArtifactError("no Postgres URL given and DQ_STORES_URL is not set", field="url")
    dialect = (
        url_or_engine.dialect.name
        if isinstance(url_or_engine, SqlEngine | Engine)
        else url_or_engine.split(":", 1)[0].split("+", 1)[0]
    )
    if dialect not in ("postgresql", "postgres"):
        raise InvalidArtifactError(
            f"Postgres stores need a postgresql:// URL or engine, not {dialect!r}", field="url"
        )
    return url_or_engine


class PostgresContractStore(SqlContractStore):
    def __init__(self, url_or_engine: str | Engine | SqlEngine | None = None, **options: Any) -> None:
        super().__init__(_postgres_only(url_or_engine), **options)


class PostgresJobDefinitionStore(SqlJobDefinitionStore):
    def __init__(self, url_or_engine: str | Engine | SqlEngine | None = None, **options: Any) -> None:
        super().__init__(_postgres_only(url_or_engine), **options)


class PostgresActionProfileStore(SqlActionProfileStore):
    def __init__(self, url_or_engine: str | Engine | SqlEngine | None = None, **options: Any) -> None:
        super().__init__(_postgres_only(url_or_engine), **options)


class PostgresJobRunStore(SqlJobRunStore):
    def __init__(self, url_or_engine: str | Engine | SqlEngine | None = None, **options: Any) -> None:
        super().__init__(_postgres_only(url_or_engine), **options)
