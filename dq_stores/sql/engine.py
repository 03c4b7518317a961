"""Engines and transactions for the SQL backend: URL handling, SQLite pragmas, Postgres schema
selection, and translation of driver errors into ``dq_stores.errors``.

This module knows about connections, not about artifacts.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from dq_stores.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidArtifactError,
    StoreError,
)
from dq_stores.secrets import redact

__all__ = ["SqlEngine", "create_sql_engine", "normalise_url"]

_SCHEMA_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 here; ``memory://`` is SQLite memory."""
    if url.startswith("memory://"):
        return "sqlite://"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_sql_engine(
    url: str, *, schema: str | None = None, echo: bool = False, **engine_kwargs: Any
) -> Engine:
    """An engine with pooling (``pool_pre_ping``) and the pragmas/options the stores rely on."""
    sa_url = make_url(normalise_url(url))
    backend = sa_url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(sa_url, echo=echo, **engine_kwargs)
    if backend == "postgresql":
        if schema is None:
            schema = sa_url.query.get("schema")  # type: ignore[assignment]
        sa_url = sa_url.difference_update_query(["schema"])
        connect_args: dict[str, Any] = dict(engine_kwargs.pop("connect_args", {}))
        connect_args.setdefault("connect_timeout", 10)
        if schema is not None:
            if not isinstance(schema, str) or _SCHEMA_RE.fullmatch(schema) is None:
                raise InvalidArtifactError(f"invalid Postgres schema name {schema!r}", field="schema")
            # Server-side at connection start: every statement, alembic included, sees the schema.
            connect_args["options"] = f"-csearch_path={schema}"
        engine_kwargs.setdefault("pool_size", 5)
        engine_kwargs.setdefault("max_overflow", 10)
        return sa.create_engine(
            sa_url, echo=echo, pool_pre_ping=True, connect_args=connect_args, **engine_kwargs
        )
    raise InvalidArtifactError(f"unsupported SQL backend {backend!r} in {redact(url)}", field="url")


def _sqlite_engine(sa_url: sa.URL, *, echo: bool, **engine_kwargs: Any) -> Engine:
    memory = sa_url.database in (None, "", ":memory:")
    if memory:
        engine = sa.create_engine(
            "sqlite://",
            echo=echo,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
            **engine_kwargs,
        )
    else:
        assert sa_url.database is not None
        Path(sa_url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            sa_url,
            echo=echo,
            pool_pre_ping=True,
            connect_args={"check_same_thread": False, "timeout": 30},
            **engine_kwargs,
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below) so that writes take the lock up front.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # BEGIN IMMEDIATE for writes: a read-then-write transaction never fails half-way with
        # SQLITE_BUSY when another process writes; it waits (busy_timeout) for the lock instead.
        immediate = conn.get_execution_options().get("dq_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class SqlEngine:
    """An engine plus the transaction helpers the stores use."""

    def __init__(self, engine: Engine, *, owned: bool = True) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.is_postgres = self.dialect == "postgresql"
        self.owned = owned
        memory = self.dialect == "sqlite" and engine.url.database in (None, "", ":memory:")
        # One shared connection (StaticPool) must not be used by two threads at once.
        self._lock: threading.RLock | None = threading.RLock() if memory else None
        self.url_for_messages = redact(engine.url.render_as_string(hide_password=True))

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._guard(), self._translate(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction; committed when the block exits normally, rolled back otherwise."""
        with self._guard(), self._translate(), self.engine.connect() as conn:
            conn.execution_options(dq_write=True)
            with conn.begin():
                yield conn

    def _guard(self) -> Any:
        return self._lock if self._lock is not None else nullcontext()

    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except sa_exc.IntegrityError as exc:
            raise ConflictError(
                "a concurrent writer created or changed the same key first; read it again and retry"
            ) from exc
        except sa_exc.DataError as exc:
            raise InvalidArtifactError(
                f"the database refused a value: {_first_line(exc)}", field="<value>"
            ) from exc
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            raise BackendUnavailableError(
                f"database {self.url_for_messages} is unavailable: {_first_line(exc)}"
            ) from exc
        except sa_exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise BackendUnavailableError(
                    f"database {self.url_for_messages} connection lost: {_first_line(exc)}"
                ) from exc
            raise StoreError(f"database error: {_first_line(exc)}") from exc

    def dispose(self) -> None:
        if self.owned:
            self.engine.dispose()


def _first_line(exc: sa_exc.DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return redact(text.strip().splitlines()[0] if text.strip() else type(exc).__name__)
