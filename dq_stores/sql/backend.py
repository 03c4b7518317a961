"""The SQL metadata backend: the four SQL stores on one shared engine, as ``open_stores`` opens
them for ``memory://``, ``sqlite:///`` and ``postgresql...`` URLs.

The package, by concern: ``schema`` (one ``MetaData``), ``migrate`` (alembic), ``engine``
(connections, the single-statement fast path, the scope hook), ``dialect`` (the only place SQLite
and Postgres differ), ``queries`` (statements built once), ``versioned`` and ``runs`` (the stores),
``scopes`` (which scopes a store holds), ``connect`` (an engine with a usable schema), ``rls``
(row-level security: the scope hook and its administration). This module only opens.
"""

from __future__ import annotations

import builtins
import functools
from pathlib import Path
from typing import Any

from dq_stores.errors import InvalidArtifactError
from dq_stores.results.files import FilePayloadStore
from dq_stores.results.payloads import PayloadStore
from dq_stores.secrets import redact
from dq_stores.sql.connect import connect_sql
from dq_stores.sql.engine import SqlEngine, create_sql_engine
from dq_stores.sql.rls import RowLevelSecurity, check_row_level_security, install_scope_hook
from dq_stores.sql.runs import SqlJobRunStore
from dq_stores.sql.scopes import list_sql_scopes
from dq_stores.sql.versioned import SqlActionProfileStore, SqlContractStore, SqlJobDefinitionStore
from dq_stores.stores import Backend, Stores

__all__ = [
    "SqlActionProfileStore",
    "SqlContractStore",
    "SqlJobDefinitionStore",
    "SqlJobRunStore",
    "connect_sql",
    "list_sql_scopes",
    "open_sql_backend",
    "open_sql_stores",
]


def open_sql_backend(
    url: str,
    *,
    schema: str | None = None,
    row_level_security: bool = False,
    verify_row_level_security: bool = True,
    rls_session_scope: bool = False,
    create: bool = True,
    **options: Any,
) -> Backend:
    """The four SQL stores on one shared engine: the metadata backend of ``open_stores``.

    The default results location of an embedded SQLite file is the folder named after the database
    beside it (``dq.db`` -> ``dq.results/``), so two stores in one folder never share one; a store
    created before that default keeps reading the payloads it wrote to the former shared
    ``results/`` folder (read-only). Postgres and ``memory://`` have none: results stay inline up
    to the offload threshold. ``create=False`` creates nothing (see ``connect_sql``).

    ``row_level_security=True`` (Postgres): every transaction, the fast path's included, is
    restricted to its call's scope by the database's own policies (``dq_stores.sql.rls``). The URL
    should name the application role; opening fails unless ``check_row_level_security`` finds
    nothing wrong (``verify_row_level_security=False`` skips that check, for tests of the check).
    Each single-statement call sends its scope with the statement (one implicit transaction);
    ``rls_session_scope=True`` lets a connection keep its last scope for the session instead (a
    call in the same scope is then a plain prepared statement) - only for direct connections,
    never behind a transaction-pooling proxy such as PgBouncer.
    """
    if rls_session_scope and not row_level_security:
        raise InvalidArtifactError(
            "rls_session_scope needs row_level_security=True", field="rls_session_scope"
        )
    if row_level_security:
        db = _connect_rls(
            url,
            schema=schema,
            create=create,
            verify=verify_row_level_security,
            session_scope=rls_session_scope,
            **options,
        )
    else:
        db = connect_sql(url, schema=schema, create=create, **options)
    default: FilePayloadStore | None = None
    legacy: builtins.list[PayloadStore] = []
    database = db.engine.url.database
    if db.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
        path = Path(str(database)).expanduser().resolve()
        default = FilePayloadStore(path.with_name(f"{path.stem}.results"))
        former = path.parent / "results"
        if former.is_dir():
            legacy.append(FilePayloadStore(former))
    stores = (SqlContractStore(db), SqlJobDefinitionStore(db), SqlActionProfileStore(db), SqlJobRunStore(db))
    if row_level_security:
        for store in stores:
            store.supports_listing_all_scopes = False
    return Backend(
        *stores,
        url=redact(url),
        close=db.dispose,
        list_scopes=functools.partial(list_sql_scopes, db),
        default_results=lambda: default,
        legacy_results=legacy,
    )


def _connect_rls(
    url: str, *, schema: str | None, create: bool, verify: bool, session_scope: bool, **options: Any
) -> SqlEngine:
    engine = install_scope_hook(create_sql_engine(url, schema=schema, **options))
    try:
        db = connect_sql(
            engine,
            auto_upgrade=False,
            create=create,
            scope_hook=RowLevelSecurity(session_scope=session_scope),
        )
        db.owned = True  # the engine was made here: dispose it with the stores
        if verify:
            with db._translate():
                problems = check_row_level_security(engine)
            if problems:
                from dq_stores.errors import StoreError

                raise StoreError(
                    f"row-level security does not hold for {db.url_for_messages}: " + "; ".join(problems)
                )
    except BaseException:
        engine.dispose()
        raise
    return db


def open_sql_stores(url: str, **options: Any) -> Stores:
    """``open_stores`` for a SQL URL, ignoring the environment (kept for existing callers)."""
    from dq_stores.stores import open_stores

    return open_stores(url, use_env=False, **options)
