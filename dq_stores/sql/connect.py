"""Connecting the SQL stores to a database: an engine whose schema this version can use.

``connect_sql`` creates (or wraps) an engine, makes sure the schema is at the revision this
version knows (``dq_stores.sql.migrate``: created when empty, SQLite upgraded automatically,
Postgres refused until ``dq-stores db upgrade``) and returns the ``SqlEngine`` the stores share.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.engine import Engine

from dq_stores.errors import BackendUnavailableError, StoreNotFoundError
from dq_stores.sql.engine import ScopeHook, SqlEngine, create_sql_engine
from dq_stores.sql.migrate import ensure_schema

__all__ = ["connect_sql"]


def connect_sql(
    url_or_engine: str | Engine,
    *,
    schema: str | None = None,
    auto_upgrade: bool | None = None,
    create: bool = True,
    scope_hook: ScopeHook | None = None,
    **engine_kwargs: Any,
) -> SqlEngine:
    """Open (or wrap) an engine and make sure its schema is usable (see ``sql.migrate``).

    ``create=False`` creates nothing (no SQLite file, no tables, no upgrade): a missing store is
    ``StoreNotFoundError``.
    """
    if isinstance(url_or_engine, Engine):
        engine, owned = url_or_engine, False
    else:
        engine, owned = create_sql_engine(url_or_engine, schema=schema, create=create, **engine_kwargs), True
    db = SqlEngine(engine, owned=owned, scope_hook=scope_hook)
    if auto_upgrade is None:
        auto_upgrade = db.dialect.auto_upgrade  # embedded SQLite upgrades itself; Postgres is explicit
    for attempt in range(6):
        try:
            with db._guard(), db._translate():
                ensure_schema(engine, auto_upgrade=auto_upgrade, create=create)
            return db
        except StoreNotFoundError as exc:
            if owned:
                engine.dispose()
            where = db.url_for_messages + (f" (schema {schema})" if schema else "")
            raise StoreNotFoundError(f"no store at {where}: {exc}") from None
        except BackendUnavailableError as exc:
            # Several processes opening one fresh SQLite file at once: switching it to WAL can
            # report "locked" without waiting on the busy handler. Back off and check again.
            if not db.dialect.lock_retry_on_open or "locked" not in str(exc) or attempt == 5:
                raise
            time.sleep(0.05 * 2**attempt)
    return db
