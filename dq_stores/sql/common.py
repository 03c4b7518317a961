"""What the four SQL stores share: the engine they run on and how a document is bound.

The stores themselves are ``dq_stores.sql.versioned`` (contracts, job definitions, action
profiles) and ``dq_stores.sql.runs`` (job runs); statements are in ``dq_stores.sql.queries``,
dialect differences in ``dq_stores.sql.dialect``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dq_stores.scope import Scope
from dq_stores.sql.engine import ScopeKey, SqlEngine

__all__ = ["SqlStoreBase", "scope_key"]


def scope_key(scope: Scope) -> ScopeKey:
    """The (tenant, environment) a call on ``scope`` is for (``SqlEngine``'s ``scope=``)."""
    return (scope.tenant, scope.environment)


class SqlStoreBase:
    """Holds the engine; stores opened together share one."""

    def __init__(
        self,
        url_or_engine: str | Engine | SqlEngine,
        *,
        schema: str | None = None,
        **options: Any,
    ) -> None:
        if isinstance(url_or_engine, SqlEngine):
            self._db, self._owns_db = url_or_engine, False
        else:
            from dq_stores.sql.connect import connect_sql

            self._db, self._owns_db = connect_sql(url_or_engine, schema=schema, **options), True

    def close(self) -> None:
        if self._owns_db:
            self._db.dispose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._db.url_for_messages!r})"

    # dialect helpers --------------------------------------------------------------------------
    @staticmethod
    def _doc_param(document: bytes | str) -> str:
        return document.decode("utf-8") if isinstance(document, bytes) else document

    @staticmethod
    def _doc_column(column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        # Stored as canonical JSON text; pydantic's Rust parser decodes it once.
        return column
