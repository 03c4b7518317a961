"""Engines and transactions for the SQL backend: URL handling, SQLite pragmas, Postgres schema
selection, connection health checks, the fast path for single statements, and translation of
driver errors into ``dq_stores.errors``.

Two ways to run SQL: ``SqlEngine.read()`` / ``write()`` hand out a SQLAlchemy ``Connection`` (in a
transaction) for multi-statement work; ``SqlEngine.fetch()`` / ``execute()`` run one
``PreparedQuery`` - a Core statement compiled once per dialect - on a DBAPI connection in
autocommit, which is one round trip on Postgres and skips SQLAlchemy's per-call connection,
transaction and result machinery. A single statement is atomic on its own, so the hot paths (get,
put of a job run, one page of a listing) lose nothing by it. Where that connection comes from: on
Postgres the fast lane (``dq_stores.sql.lane``: pool connections kept checked out between calls,
a pop and an append per call instead of a pool checkout, reset and checkin; given back before a
transaction takes one); on an embedded SQLite file, one connection per thread. Postgres statements are compiled with
positional ``%s`` parameters (psycopg reorders named ones on every call), and whether a
statement returns rows is known from the statement, not asked of the cursor.

Why the raw DBAPI path and not SQLAlchemy's own execution: measured on this machine (2 cores),
one primary-key SELECT through SQLAlchemy's compiled cache on an AUTOCOMMIT connection checked out
per call costs 2-3.5x the raw path (Postgres ~0.7 ms vs ~0.36 ms under load, SQLite ~160 us vs
~50 us), and even on a connection held open 1.2-1.5x; the per-call ``Connection``, transaction
and ``Result`` objects are the difference. The raw path keeps SQLAlchemy's compiler and type
processors (``PreparedQuery``), so nothing is hand-written but the execute call.

Scopes: every call says which tenant and environment it is for (``scope=``). Plain stores ignore
it; with a ``ScopeHook`` (row-level security, ``dq_stores.sql.rls``) the engine sets the scope at
the start of every transaction - in the fast path too, as the ``set_config(..., true)`` and the
statement before one Sync (``SqlDialect.scoped_execute``): one implicit transaction, one network
round trip, both statements prepared (measured with the policies on: 94 us, against 178 us as one
simple-query message and 236 us in three round trips). With the hook's ``session_scope`` (opt-in,
direct connections only) a fast-lane connection keeps its last scope as a session setting
instead, sent only when it changes, so a call in that scope is one prepared statement (30 us).

This module knows about connections and statements, not about artifacts.

Why one module of ~630 lines: the fast path, the transaction helpers and the error translation
share the disconnect and scope handling; the connection sources live apart (``lane``).
"""

from __future__ import annotations

import operator
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from dq_stores.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidArtifactError,
    ScopeViolationError,
    StoreError,
    StoreNotFoundError,
)
from dq_stores.secrets import redact
from dq_stores.sql.dialect import SqlDialect, dialect_named
from dq_stores.sql.lane import FastLane

__all__ = [
    "IDLE_PING_SECONDS",
    "PreparedQuery",
    "ScopeHook",
    "ScopeKey",
    "SqlEngine",
    "create_sql_engine",
    "normalise_url",
]

_INSUFFICIENT_PRIVILEGE = "42501"

_SCHEMA_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

IDLE_PING_SECONDS = 1.0
"""A pooled Postgres connection idle for longer than this is pinged before it is handed out."""

# Engines built by ``create_sql_engine``: their connections are configured the way the fast path
# expects (SQLite in driver autocommit; Postgres connections toggled per statement). An engine a
# caller passes in may be configured otherwise, so it always takes the SQLAlchemy path.
_CONFIGURED: weakref.WeakSet[Engine] = weakref.WeakSet()


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 here; ``memory://`` is SQLite memory."""
    if url.startswith("memory://"):
        return "sqlite://"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_sql_engine(
    url: str, *, schema: str | None = None, echo: bool = False, create: bool = True, **engine_kwargs: Any
) -> Engine:
    """An engine with pooling, health checks of idle connections and the pragmas/options the
    stores rely on. ``create=False``: a SQLite file that does not exist is ``StoreNotFoundError``
    (neither it nor its folder is created).
    """
    sa_url = make_url(normalise_url(url))
    backend = sa_url.get_backend_name()
    if backend == "sqlite":
        if not create and sa_url.database not in (None, "", ":memory:"):
            path = Path(str(sa_url.database)).expanduser()
            if not path.is_file():
                raise StoreNotFoundError(f"no store at {redact(url)}: {path} does not exist")
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
        # Positional ``%s`` parameters: psycopg then takes the fast path's tuple as it is, where
        # named ones are parsed and reordered into a sequence on every call.
        engine_kwargs.setdefault("paramstyle", "format")
        engine = sa.create_engine(sa_url, echo=echo, connect_args=connect_args, **engine_kwargs)
        _ping_idle_connections(engine)
        _CONFIGURED.add(engine)
        return engine
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
        # No liveness ping: a SQLite connection is a file handle, it does not drop like a socket.
        engine = sa.create_engine(
            sa_url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            **engine_kwargs,
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below) so that writes take the lock up front.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # busy_timeout first: switching a fresh file to WAL needs the write lock, and another
        # process may be holding it right now.
        cur.execute("PRAGMA busy_timeout=30000")
        if not memory:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # BEGIN IMMEDIATE for writes: a read-then-write transaction never fails half-way with
        # SQLITE_BUSY when another process writes; it waits (busy_timeout) for the lock instead.
        immediate = conn.get_execution_options().get("dq_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    _CONFIGURED.add(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Pessimistic disconnect handling that costs nothing on a busy pool.

    ``pool_pre_ping`` pings on every checkout: one extra round trip per call. Instead (SQLAlchemy's
    documented checkout-event recipe) only a connection idle for more than ``IDLE_PING_SECONDS`` -
    the ones a server restart, failover or idle timeout may have killed - is pinged; a failed ping
    raises ``InvalidatePoolError``, so the pool drops it (and every connection older than it) and
    hands out a fresh one. A connection that dies while in use fails that statement; reads on the
    fast path then retry once on a fresh connection (``SqlEngine.fetch``).
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["dq_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("dq_idle_since")
        if idle_since is None or time.monotonic() - idle_since <= IDLE_PING_SECONDS:
            return
        try:
            # Autocommit for the ping: a bare SELECT would otherwise open a transaction.
            autocommit = dbapi_conn.autocommit
            dbapi_conn.autocommit = True
            try:
                cursor = dbapi_conn.cursor()
                try:
                    cursor.execute("SELECT 1")
                finally:
                    cursor.close()
            finally:
                dbapi_conn.autocommit = autocommit
        except Exception as exc:
            raise sa_exc.InvalidatePoolError(
                f"idle connection failed its ping: {type(exc).__name__}"
            ) from exc


class PreparedQuery:
    """A Core statement compiled once per dialect, with its parameter order and type processing.

    Parameters the statement leaves open are ``sa.bindparam(name)`` placeholders (give
    ``type_=`` where the column type needs processing, e.g. timestamps); values bound at build
    time (literals) are kept as defaults. ``compile`` goes through SQLAlchemy's public API only:
    ``Compiled.string`` / ``positiontup`` / ``params`` and each type's bind and result processors.
    """

    __slots__ = ("_compiled", "statement")

    def __init__(self, statement: sa.Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: sa.Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = _Compiled(self.statement, dialect)
        return found


class _Compiled:
    __slots__ = (
        "_pick",
        "defaults",
        "names",
        "positional",
        "processors",
        "result_processors",
        "returns_rows",
        "sql",
    )

    def __init__(self, statement: sa.Executable, dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.sql: str = compiled.string
        self.positional: bool = bool(compiled.positional)
        params: dict[str, Any] = compiled.params
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ()) if self.positional else tuple(params)
        self.defaults = {k: v for k, v in params.items() if v is not None}
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for name in self.names:
            bind = compiled.binds.get(name)
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect) if bind is not None else None
            if processor is not None:
                self.processors[name] = processor
        # Positional parameters without processing: one C-level itemgetter picks them.
        self._pick: Callable[[Mapping[str, Any]], tuple[Any, ...]] | None = None
        if self.positional and not self.processors and self.names:
            getter = operator.itemgetter(*self.names)
            self._pick = (lambda p: (getter(p),)) if len(self.names) == 1 else getter
        # What the statement returns: a SELECT's columns, an INSERT/UPDATE's RETURNING columns.
        columns: Sequence[Any] = list(getattr(statement, "exported_columns", ()))
        # Known here, so the fast path never asks the cursor (psycopg builds a Column object per
        # result column for ``cursor.description``: several microseconds of a ~30 us read).
        self.returns_rows = bool(columns)
        self.result_processors: list[tuple[int, Callable[[Any], Any]]] = []
        for i, column in enumerate(columns):
            processor = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if processor is not None:
                self.result_processors.append((i, processor))

    def bind(self, params: Mapping[str, Any]) -> Any:
        merged = {**self.defaults, **params} if self.defaults else params
        if self._pick is not None:
            return self._pick(merged)
        processors = self.processors
        if self.positional:
            return tuple(processors[n](merged[n]) if n in processors else merged[n] for n in self.names)
        if not processors:
            return merged
        return {n: processors[n](v) if n in processors else v for n, v in merged.items()}

    def rows(self, raw: list[Any]) -> list[tuple[Any, ...]]:
        if not self.result_processors:
            return raw
        out = []
        for row in raw:
            values = list(row)
            for i, processor in self.result_processors:
                values[i] = processor(values[i])
            out.append(tuple(values))
        return out


class _Disconnected(Exception):
    """A fast-path statement lost its connection (the pool has already dropped it)."""

    def __init__(self, error: sa_exc.DBAPIError) -> None:
        super().__init__(str(error))
        self.error = error


ScopeKey = tuple[str, str | None]
"""(tenant, environment) a call is for; environment ``None``: every environment of the tenant."""


class ScopeHook(Protocol):
    """Restricts each transaction to the scope of the call it serves (row-level security)."""

    session_scope: bool
    """Fast-lane connections may keep the scope as a session setting (direct connections only)."""

    def enter(self, tenant: str, environment: str | None) -> AbstractContextManager[None]:
        """Around a SQLAlchemy transaction: the scope its ``begin`` sets (and refusals translated)."""

    def setting(
        self, tenant: str, environment: str | None, *, session: bool = False
    ) -> tuple[str, tuple[Any, ...]]:
        """The statement (and its parameters) that sets the scope first in a fast-path transaction
        (``session=True``: for the rest of the session, while only the fast lane uses it).
        Refuses a scope the caller may not address, like ``enter``.
        """

    def session_reset(self) -> str:
        """The statement that clears a session-level scope (before the connection leaves the lane)."""


class SqlEngine:
    """An engine plus the transaction helpers and the single-statement fast path the stores use."""

    def __init__(self, engine: Engine, *, owned: bool = True, scope_hook: ScopeHook | None = None) -> None:
        self.engine = engine
        self.dialect: SqlDialect = dialect_named(engine.dialect.name)
        self.owned = owned
        memory = self.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
        self.memory = memory
        # One shared connection (StaticPool) must not be used by two threads at once.
        self._lock: threading.RLock | None = threading.RLock() if memory else None
        self.url_for_messages = redact(engine.url.render_as_string(hide_password=True))
        self.fast = engine in _CONFIGURED
        # An embedded SQLite file: each thread keeps one driver connection of its own for the fast
        # path (detached from the pool at first use), so a single statement costs no pool checkout
        # and return (a third of a primary-key read). A file connection never drops like a socket.
        self._thread_local = self.fast and self.dialect.name == "sqlite" and not memory
        self._local = threading.local()
        # Postgres: single statements run on the fast lane's connections (dq_stores.sql.lane).
        self._lane: FastLane | None = None
        if self.fast and self.dialect.name == "postgresql":
            self._lane = FastLane(
                self._checkout,
                limit=_lane_limit(engine),
                idle_ping_seconds=IDLE_PING_SECONDS,
                on_give_back=self._reset_session_scope,
            )
        self._own_conns: list[Any] = []
        self._own_lock = threading.Lock()
        ref = weakref.ref(self)

        def forget_in_child() -> None:
            # SQLAlchemy's recipe for a forked child: new connections of its own, the parent's
            # left alone (closing them from here would end the parent's sessions).
            db = ref()
            if db is not None:
                db._local = threading.local()
                db._own_conns = []
                if db._lane is not None:
                    db._lane.forget()
                db.engine.dispose(close=False)

        os.register_at_fork(after_in_child=forget_in_child)
        if scope_hook is not None and not self.dialect.supports_scope_hook:
            raise InvalidArtifactError(
                f"row-level security needs PostgreSQL, not {self.dialect.name}", field="row_level_security"
            )
        self.scope_hook = scope_hook

    def _reset_session_scope(self, dbapi_conn: Any) -> None:
        if self.scope_hook is not None:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute(self.scope_hook.session_reset())
            finally:
                cursor.close()

    def _connect(self) -> Connection:
        if self._lane is not None:
            # The lane's idle connections go back first: a transaction then reuses one of them
            # instead of opening another (one connection per process working sequentially).
            self._lane.give_back()
        return self.engine.connect()

    @contextmanager
    def read(self, scope: ScopeKey | None = None) -> Iterator[Connection]:
        with self._guard(), self._scoped(scope), self._translate(), self._connect() as conn:
            yield conn

    @contextmanager
    def write(self, scope: ScopeKey | None = None) -> Iterator[Connection]:
        """One transaction; committed when the block exits normally, rolled back otherwise."""
        with self._guard(), self._scoped(scope), self._translate(), self._connect() as conn:
            conn.execution_options(dq_write=True)
            with conn.begin():
                yield conn

    def fetch(
        self, query: PreparedQuery, params: Mapping[str, Any], scope: ScopeKey | None = None
    ) -> list[tuple[Any, ...]]:
        """The rows of one read-only statement; a connection found dropped is retried once."""
        return self._run(query, params, scope, read_only=True)

    def execute(
        self, query: PreparedQuery, params: Mapping[str, Any], scope: ScopeKey | None = None
    ) -> list[tuple[Any, ...]]:
        """One data-changing statement as its own transaction; returns its ``RETURNING`` rows.

        Never retried: after a dropped connection nobody knows whether the statement committed.
        """
        return self._run(query, params, scope, read_only=False)

    def _scoped(self, scope: ScopeKey | None) -> AbstractContextManager[None]:
        if self.scope_hook is None or scope is None:
            return nullcontext()
        return self.scope_hook.enter(*scope)

    def _run(
        self, query: PreparedQuery, params: Mapping[str, Any], scope: ScopeKey | None, *, read_only: bool
    ) -> list[tuple[Any, ...]]:
        if not self.fast:
            with self.read(scope) if read_only else self.write(scope) as conn:
                result = conn.execute(query.statement, dict(params))
                return [tuple(row) for row in result.all()] if result.returns_rows else []
        compiled = query.compiled(self.engine.dialect)
        bound = compiled.bind(params)
        if self._thread_local:  # the embedded file: no pool, no disconnects, no scope hook
            return compiled.rows(self._on_thread_connection(compiled, bound))
        if self.scope_hook is None:
            scope = None
        elif scope is not None:
            self.scope_hook.setting(*scope)  # refuses a scope outside the caller's rls_scope
        with self._guard():
            try:
                return compiled.rows(self._on_dbapi(compiled, bound, scope))
            except _Disconnected as lost:
                if not read_only:
                    raise self._translate_error(lost.error) from lost.error
            # A read on a connection that died while pooled: once more, on a fresh connection.
            try:
                return compiled.rows(self._on_dbapi(compiled, bound, scope))
            except _Disconnected as lost:
                raise self._translate_error(lost.error) from lost.error

    def _thread_connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            with self._translate():
                fairy = self.engine.raw_connection()  # the connect event configures it as usual
            fairy.detach()  # ours now: never returned to (nor reset by) the pool
            conn = self._local.conn = fairy.dbapi_connection
            with self._own_lock:
                self._own_conns.append(conn)
        return conn

    def _on_thread_connection(self, compiled: _Compiled, params: Any) -> list[Any]:
        dialect = self.engine.dialect
        sql = compiled.sql
        cursor = self._thread_connection().cursor()
        try:
            cursor.execute(sql, params)
            return cursor.fetchall() if compiled.returns_rows else []
        except dialect.loaded_dbapi.Error as exc:
            error = sa_exc.DBAPIError.instance(
                sql, params, exc, dialect.loaded_dbapi.Error, hide_parameters=True, dialect=dialect
            )
            assert isinstance(error, sa_exc.DBAPIError)
            raise self._translate_error(error) from exc
        finally:
            cursor.close()

    def _on_dbapi(self, compiled: _Compiled, params: Any, scope: ScopeKey | None = None) -> list[Any]:
        if self._thread_local:
            return self._on_thread_connection(compiled, params)
        hook = self.scope_hook
        lane = self._lane
        if lane is not None:
            fairy = lane.acquire()
            broken = False
            setting = None
            if hook is not None and scope is not None:
                if not hook.session_scope:
                    # The scope for this one implicit transaction (SET LOCAL): safe anywhere.
                    setting = hook.setting(*scope)
                elif lane.scope_of(fairy) != scope:
                    # Opt-in (direct connections only): a lane connection keeps its scope as a
                    # session setting (reset before it goes back to the pool), set in the same
                    # message as the statement when it changes, so a call in the connection's
                    # last scope is a plain prepared statement.
                    setting = hook.setting(*scope, session=True)
            try:
                rows = self._statement(fairy.dbapi_connection, compiled, params, setting)
            except _Disconnected as lost:
                broken = True
                self.engine.pool._invalidate(fairy, lost.error.orig)
                raise
            except BaseException:
                # A failed message rolled its setting back with it: the scope is unknown now.
                lane.set_scope(fairy, None)
                raise
            else:
                if setting is not None and hook is not None and hook.session_scope:
                    lane.set_scope(fairy, scope)
                return rows
            finally:
                lane.release(fairy, broken=broken)
        setting = hook.setting(*scope) if hook is not None and scope is not None else None
        fairy = self._checkout()
        dbapi_conn: Any = fairy.dbapi_connection
        try:
            self.dialect.fast_begin(dbapi_conn)
            return self._statement(dbapi_conn, compiled, params, setting)
        except _Disconnected as lost:
            # What a SQLAlchemy Connection does on a disconnect: drop this connection and mark
            # every pooled one as old as it for reconnection (a server restart or network cut
            # killed them all), so the retry and later calls meet none of them.
            self.engine.pool._invalidate(fairy, lost.error.orig)
            raise
        finally:
            if fairy.is_valid:
                try:
                    self.dialect.fast_end(dbapi_conn)
                except Exception:  # a broken connection: keep it out of the pool
                    fairy.invalidate()
            fairy.close()

    def _checkout(self) -> Any:
        dialect = self.engine.dialect
        try:
            return self.engine.raw_connection()
        except dialect.loaded_dbapi.Error as exc:
            # The pool hands out the driver's own error (a Connection would wrap it): wrap it
            # the same way, so the caller sees BackendUnavailableError like everywhere else.
            wrapped = sa_exc.DBAPIError.instance(
                None,
                None,
                exc,
                dialect.loaded_dbapi.Error,
                connection_invalidated=dialect.is_disconnect(exc, None, None),
                dialect=dialect,
            )
            assert isinstance(wrapped, sa_exc.DBAPIError)
            raise self._translate_error(wrapped) from exc
        except sa_exc.DBAPIError as exc:
            raise self._translate_error(exc) from exc
        except sa_exc.DisconnectionError as exc:  # every checkout attempt found a dead connection
            raise BackendUnavailableError(f"database {self.url_for_messages} is unavailable: {exc}") from exc

    def _statement(
        self,
        dbapi_conn: Any,
        compiled: _Compiled,
        params: Any,
        setting: tuple[str, tuple[Any, ...]] | None,
    ) -> list[Any]:
        """One statement on a connection in autocommit; ``_Disconnected`` when the connection died."""
        dialect = self.engine.dialect
        sql = compiled.sql
        cursor = None
        try:
            if setting is not None:
                cursor = self.dialect.scoped_execute(dbapi_conn, setting, sql, params)
            else:
                cursor = dbapi_conn.cursor()
                cursor.execute(sql, params)
            rows: list[Any] = cursor.fetchall() if compiled.returns_rows else []
            return rows
        except dialect.loaded_dbapi.Error as exc:
            disconnected = dialect.is_disconnect(exc, dbapi_conn, cursor)
            error = sa_exc.DBAPIError.instance(
                sql,
                params,
                exc,
                dialect.loaded_dbapi.Error,
                # Parameters are documents and ids (possibly personal data): never in a message.
                hide_parameters=True,
                connection_invalidated=disconnected,
                dialect=dialect,
            )
            assert isinstance(error, sa_exc.DBAPIError)  # a driver error always wraps as one
            if disconnected:
                raise _Disconnected(error) from exc
            raise self._translate_error(error) from exc
        finally:
            if cursor is not None:
                with suppress(Exception):  # the connection may be gone already
                    cursor.close()

    def _guard(self) -> Any:
        return self._lock if self._lock is not None else nullcontext()

    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except sa_exc.DBAPIError as exc:
            raise self._translate_error(exc) from exc

    def _translate_error(self, exc: sa_exc.DBAPIError) -> StoreError:
        orig = exc.orig
        if getattr(orig, "sqlstate", None) == _INSUFFICIENT_PRIVILEGE and "row-level security" in str(orig):
            return ScopeViolationError(
                "the database's row-level security refused a write outside the call's scope"
            )
        if isinstance(exc, sa_exc.IntegrityError):
            return ConflictError(
                "a concurrent writer created or changed the same key first; read it again and retry"
            )
        if isinstance(exc, sa_exc.DataError):
            return InvalidArtifactError(f"the database refused a value: {_first_line(exc)}", field="<value>")
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            return BackendUnavailableError(
                f"database {self.url_for_messages} is unavailable: {_first_line(exc)}"
            )
        if exc.connection_invalidated:
            return BackendUnavailableError(
                f"database {self.url_for_messages} connection lost: {_first_line(exc)}"
            )
        return StoreError(f"database error: {_first_line(exc)}")

    def dispose(self) -> None:
        with self._own_lock:
            conns, self._own_conns = self._own_conns, []
        for conn in conns:
            with suppress(Exception):  # closing what another thread may still hold: best effort
                conn.close()
        self._local = threading.local()
        if self._lane is not None:
            self._lane.close()
        if self.owned:
            self.engine.dispose()


def _lane_limit(engine: Engine) -> int:
    # As many lane connections as the pool keeps idle: a process never holds more than twice
    # its pool's steady-state size.
    size = getattr(engine.pool, "size", None)
    return max(1, int(size())) if callable(size) else 5


def _first_line(exc: sa_exc.DBAPIError) -> str:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return redact(text.strip().splitlines()[0] if text.strip() else type(exc).__name__)
