"""Alembic integration: upgrade, current revision, and the schema check made when a store opens.

* A database with none of our tables gets the current schema (``create_all``) and is stamped at
  head, under a Postgres advisory lock so that two processes opening it at once do not race.
* An embedded SQLite store at an older revision is upgraded automatically.
* A Postgres store at an older revision refuses to run and says to run ``dq-stores db upgrade``.
* Any store at a revision this version does not know (newer code wrote it) refuses to run.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from dq_stores.errors import SchemaVersionError, StoreNotFoundError
from dq_stores.sql.schema import STORE_ID, metadata, store_info

__all__ = [
    "MIGRATIONS_DIR",
    "current_revision",
    "ensure_schema",
    "head_revision",
    "new_store_id",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x64715F73746F7265  # "dq_store": advisory lock id for schema creation


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _script().get_current_head()
    assert head is not None
    return head


def _known_revisions() -> set[str]:
    return {rev.revision for rev in _script().walk_revisions()}


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Bring the schema to ``revision`` (creating it on an empty database); return the result."""
    with engine.begin() as conn:
        _lock(conn)
        if _is_empty(conn):
            _create_current(conn)
        else:
            _refuse_unknown(conn)
            command.upgrade(_config(conn), revision)
        return current_revision(conn)


def ensure_schema(engine: Engine, *, auto_upgrade: bool, create: bool = True) -> None:
    """Make the database usable by this version, or raise ``SchemaVersionError`` saying why not.

    ``create=False`` (read-only commands) changes nothing: an empty database raises
    ``StoreNotFoundError``; an embedded store at an older revision is read as it is (every older
    revision holds the tables reads need; what is missing reads as absent).
    """
    head = head_revision()
    with engine.connect() as conn:
        current = current_revision(conn)
        if current == head:
            return
        if not create:
            if _is_empty(conn):
                raise StoreNotFoundError(
                    "no dq-stores tables here (empty database or schema); nothing is created by a "
                    "read-only command: create them with `dq-stores db upgrade`"
                )
            _refuse_unknown(conn)
            if not auto_upgrade:
                raise SchemaVersionError(
                    f"database schema is at revision {current or '<none>'}, this dq-stores needs {head}; "
                    "run `dq-stores db upgrade --url URL` first"
                )
            return
    with engine.connect() as conn:
        # On SQLite this makes the transaction BEGIN IMMEDIATE (see sql.engine): processes opening
        # the same fresh file at once queue for the write lock instead of failing with "database
        # is locked" when a read transaction tries to upgrade. Postgres uses the advisory lock.
        conn.execution_options(dq_write=True)
        with conn.begin():
            _ensure_in_transaction(conn, head, auto_upgrade=auto_upgrade)


def _ensure_in_transaction(conn: Connection, head: str, *, auto_upgrade: bool) -> None:
    _lock(conn)
    if current_revision(conn) == head:
        return  # another process created or upgraded it while we waited for the lock
    if _is_empty(conn):
        _create_current(conn)
        return
    current = _refuse_unknown(conn)
    if current == head:
        return
    if not auto_upgrade:
        raise SchemaVersionError(
            f"database schema is at revision {current or '<none>'}, this dq-stores needs {head}; "
            "run `dq-stores db upgrade --url URL` first"
        )
    command.upgrade(_config(conn), "head")


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))


def _is_empty(conn: Connection) -> bool:
    inspector = sa.inspect(conn)
    return not any(inspector.has_table(t.name) for t in metadata.sorted_tables) and (
        current_revision(conn) is None
    )


def _create_current(conn: Connection) -> None:
    # The documented alembic recipe for new databases: create the current schema, stamp head.
    metadata.create_all(conn)
    conn.execute(store_info.insert().values(name=STORE_ID, value=new_store_id()))
    command.stamp(_config(conn), "head")


def new_store_id() -> str:
    """A fresh store identity: 16 hex digits (64 random bits), a valid id and path segment."""
    return uuid.uuid4().hex[:16]


def _refuse_unknown(conn: Connection) -> str | None:
    current = current_revision(conn)
    if current is not None and current not in _known_revisions():
        raise SchemaVersionError(
            f"database schema is at revision {current}, which is newer than this dq-stores knows "
            f"(its newest is {head_revision()}); upgrade the dq-stores package"
        )
    return current
