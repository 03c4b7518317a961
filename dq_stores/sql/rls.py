"""Opt-in PostgreSQL row-level security (RLS) for the SQL stores: the database itself keeps each
transaction inside one tenant and environment.

What lives here:

* the SQL an operator runs once as the schema owner (``enable_row_level_security``): every store
  table gets ``ENABLE`` + ``FORCE ROW LEVEL SECURITY`` and one policy, ``dq_scope``, that lets a
  row be seen, changed or written only when its ``tenant`` and ``environment`` equal the
  transaction's settings ``dq.tenant`` and ``dq.environment``; plus grants for an application
  role (``create_app_role`` makes one: ``LOGIN``, not an owner, no ``SUPERUSER``/``BYPASSRLS``);
* how the scope reaches each transaction: a context variable (``rls_scope(tenant, env)``) read by a
  SQLAlchemy ``begin`` event (``install_scope_hook``) that runs
  ``SELECT set_config('dq.tenant', :t, true), set_config('dq.environment', :e, true)`` -- the
  bind-parameter form of ``SET LOCAL``, so the setting ends with the transaction and never leaks
  to the next user of a pooled connection. No scope set means empty settings: the transaction sees
  no row and may write none (fail closed);
* the scope hook (``RowLevelSecurity``): the SQL engine (``dq_stores.sql.engine``) asks it, for
  every call, to scope the call's transaction - through the ``begin`` event above for multi-statement
  transactions, and on the single-statement fast path as ``set_config`` and the statement before
  one Sync (one implicit transaction, one network round trip: RLS mode keeps the fast path). A call
  inside an application's ``rls_scope(...)`` block may only address that scope
  (``ScopeViolationError`` otherwise); a refusal by a policy is reported as
  ``ScopeViolationError``. ``open_stores(url, row_level_security=True)`` opens stores with it.

Why per transaction (``SET LOCAL``) and not once per pooled connection (a session setting): a
transaction-pooling proxy such as PgBouncer hands the server connection to another client between
transactions, which would then inherit this client's scope.

The environment ``*`` (never a valid environment id) in a read means "every environment of the
tenant" (``JobRunStore.list_by_tenant(tenant)``); writes always need one concrete environment.

What it protects against: a query that forgets its tenant filter, a bug that writes a row into the
wrong scope, a reporting tool or ad-hoc SQL run through the application's connection. What it does
not: anyone who can run arbitrary SQL as the application role can call ``set_config`` themselves;
keep the role's credentials as secret as the data. Superusers and roles with ``BYPASSRLS`` are
never subject to RLS, which is why RLS mode refuses to open as one.

What must not live here: the stores or their queries (``dq_stores.sql.versioned`` / ``.runs``),
engine creation (``dq_stores.sql.engine``), opening (``dq_stores.sql.backend``).
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from dq_stores.errors import InvalidArtifactError, ScopeViolationError, StoreError
from dq_stores.scope import validate_id
from dq_stores.sql.schema import metadata, store_info
from dq_stores.stores import Stores

__all__ = [
    "ALL_ENVIRONMENTS",
    "ENVIRONMENT_SETTING",
    "POLICY_NAME",
    "TENANT_SETTING",
    "RlsScope",
    "RowLevelSecurity",
    "check_row_level_security",
    "create_app_role",
    "current_rls_scope",
    "disable_row_level_security",
    "enable_row_level_security",
    "install_scope_hook",
    "open_rls_stores",
    "rls_scope",
]

TENANT_SETTING = "dq.tenant"
ENVIRONMENT_SETTING = "dq.environment"
ALL_ENVIRONMENTS = "*"
"""``dq.environment`` value that lets a read see every environment of the tenant (no write)."""
POLICY_NAME = "dq_scope"

_ROLE_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_HOOKED = "_dq_rls_scope_hook"
_INSUFFICIENT_PRIVILEGE = "42501"

# current_setting(..., true) is NULL when the setting was never set in the session and '' after a
# transaction that set it ended: neither equals a valid id, so an unscoped transaction sees nothing.
_TENANT = f"current_setting('{TENANT_SETTING}', true)"
_ENVIRONMENT = f"current_setting('{ENVIRONMENT_SETTING}', true)"
_USING = f"(tenant = {_TENANT} AND (environment = {_ENVIRONMENT} OR {_ENVIRONMENT} = '{ALL_ENVIRONMENTS}'))"
_WITH_CHECK = f"(tenant = {_TENANT} AND environment = {_ENVIRONMENT} AND environment <> '{ALL_ENVIRONMENTS}')"


# -- the scope of the current transaction --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RlsScope:
    """A tenant and an environment (``None``: every environment of the tenant, reads only)."""

    tenant: str
    environment: str | None = None

    def __post_init__(self) -> None:
        validate_id(self.tenant, "tenant")
        if self.environment is not None:
            validate_id(self.environment, "environment")

    def allows(self, tenant: str, environment: str | None) -> bool:
        """Whether a call for ``tenant``/``environment`` stays inside this scope."""
        return tenant == self.tenant and (self.environment is None or environment == self.environment)

    def __str__(self) -> str:
        return f"{self.tenant}/{self.environment or ALL_ENVIRONMENTS}"


_CURRENT: contextvars.ContextVar[RlsScope | None] = contextvars.ContextVar("dq_rls_scope", default=None)


def current_rls_scope() -> RlsScope | None:
    """The scope transactions begun now in this thread / task are restricted to, if any."""
    return _CURRENT.get()


@contextmanager
def rls_scope(tenant: str, environment: str | None) -> Iterator[RlsScope]:
    """Restrict every transaction begun inside the block (on an engine with the scope hook) to
    ``tenant`` and ``environment`` (``None``: read every environment of the tenant).

    Blocks nest only inward: an inner block must stay inside the outer scope, else
    ``ScopeViolationError``. Context-local (``contextvars``): other threads and tasks are not
    affected.
    """
    scope = RlsScope(tenant, environment)
    outer = _CURRENT.get()
    if outer is not None and not outer.allows(scope.tenant, scope.environment):
        raise ScopeViolationError(f"scope {scope} is outside the row-level security scope {outer} in force")
    token = _CURRENT.set(scope)
    try:
        yield scope
    finally:
        _CURRENT.reset(token)


def _on_begin(conn: Connection) -> None:
    scope = _CURRENT.get()
    if scope is None:
        tenant, environment = "", ""
    else:
        tenant, environment = scope.tenant, scope.environment or ALL_ENVIRONMENTS
    # set_config(..., true) is SET LOCAL with bind parameters: it ends with this transaction.
    conn.exec_driver_sql(
        "SELECT set_config(%(tk)s, %(t)s, true), set_config(%(ek)s, %(e)s, true)",
        {"tk": TENANT_SETTING, "t": tenant, "ek": ENVIRONMENT_SETTING, "e": environment},
    )


def install_scope_hook(engine: Engine) -> Engine:
    """Make every transaction on ``engine`` (a Postgres engine) set the current ``rls_scope``;
    idempotent. Returns the engine.
    """
    if engine.dialect.name != "postgresql":
        raise InvalidArtifactError(
            f"row-level security needs PostgreSQL, not {engine.dialect.name}", field="url"
        )
    if not getattr(engine, _HOOKED, False):
        event.listen(engine, "begin", _on_begin)
        setattr(engine, _HOOKED, True)
    return engine


# -- setting RLS up (run as the schema owner) ----------------------------------------------------


def _role(name: str) -> str:
    if not isinstance(name, str) or _ROLE_RE.fullmatch(name) is None:
        raise InvalidArtifactError(
            f"role name {str(name)[:70]!r} must be 1-63 lowercase letters, digits or '_'", field="app_role"
        )
    return name


def _quote(conn: Connection, identifier: str) -> str:
    return conn.dialect.identifier_preparer.quote(identifier)


_UNSCOPED = frozenset({store_info.name})
"""Tables about the store itself, not any scope: readable (only) by the application role."""


def _scoped_tables() -> list[sa.Table]:
    tables = [t for t in metadata.sorted_tables if t.name not in _UNSCOPED]
    for table in tables:
        # A future table without scope columns must be looked at, not silently left unprotected.
        if "tenant" not in table.c or "environment" not in table.c:
            raise StoreError(f"table {table.name} has no tenant/environment columns; RLS cannot scope it")
    return tables


def create_app_role(engine: Engine, role: str, *, password: str | None = None) -> None:
    r"""Create the application's login role: not a superuser, no ``BYPASSRLS``, owns nothing.

    ``password`` never leaves this process: libpq turns it into a SCRAM-SHA-256 verifier here (as
    ``psql``'s ``\\password`` does), and only the verifier is sent, so no server log, statement
    log or error message can hold the password. Needs a role that may ``CREATE ROLE``.
    """
    name = _role(role)
    failure: str | None = None
    with engine.begin() as conn:
        verifier = _scram_verifier(conn, name, password) if password is not None else None
        statement = conn.execute(
            sa.text(
                "SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS "
                "NOINHERIT', CAST(:role AS text)) || CASE WHEN CAST(:verifier AS text) IS NULL THEN '' "
                "ELSE format(' PASSWORD %L', CAST(:verifier AS text)) END"
            ),
            {"role": name, "verifier": verifier},
        ).scalar_one()
        try:
            conn.exec_driver_sql(statement.replace("%", "%%"))  # the driver reads '%' as a placeholder
        except sa_exc.DBAPIError as exc:
            # The driver error quotes the statement (with the verifier): keep only the reason, and
            # raise outside this block so that no __context__ carries the statement either.
            failure = _reason(exc)
    if failure is not None:
        raise StoreError(f"could not create role {name}: {failure}")


def _scram_verifier(conn: Connection, role: str, password: str) -> str:
    driver = conn.connection.driver_connection
    pgconn = getattr(driver, "pgconn", None)
    if pgconn is None:
        raise InvalidArtifactError("a role password needs the psycopg 3 driver", field="password")
    verifier: bytes = pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
    return verifier.decode("ascii")


def _reason(exc: sa_exc.DBAPIError) -> str:
    text = str(exc.orig).strip() if exc.orig is not None else ""
    return text.splitlines()[0] if text else type(exc).__name__


def enable_row_level_security(engine: Engine, *, app_role: str | None = None) -> None:
    """Turn RLS on for every store table in the engine's schema (its ``search_path``), as the
    schema owner; grant ``app_role`` (if given) what the stores need and nothing more.

    Idempotent: run it again after ``dq-stores db upgrade`` so new tables are covered too.
    """
    role = _role(app_role) if app_role is not None else None
    with engine.begin() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        if schema is None:
            raise StoreError("no current schema: the search_path names no existing schema")
        for table in _scoped_tables():
            name = _quote(conn, table.name)
            conn.exec_driver_sql(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY")
            # FORCE: the policy binds the table owner too (superusers still bypass it).
            conn.exec_driver_sql(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY")
            conn.exec_driver_sql(f"DROP POLICY IF EXISTS {POLICY_NAME} ON {name}")
            conn.exec_driver_sql(
                f"CREATE POLICY {POLICY_NAME} ON {name} AS PERMISSIVE FOR ALL TO PUBLIC "
                f"USING {_USING} WITH CHECK {_WITH_CHECK}".replace("%", "%%")
            )
            if role is not None:
                conn.exec_driver_sql(
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON {name} TO {_quote(conn, role)}"
                )
        if role is not None:
            quoted = _quote(conn, role)
            conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {_quote(conn, schema)} TO {quoted}")
            # The stores read the schema revision when they open, and the store's identity; they
            # never change either.
            conn.exec_driver_sql(f"GRANT SELECT ON alembic_version TO {quoted}")
            for name in sorted(_UNSCOPED):
                conn.exec_driver_sql(f"GRANT SELECT ON {_quote(conn, name)} TO {quoted}")


def disable_row_level_security(engine: Engine) -> None:
    """Drop the policies and turn RLS off again (as the schema owner)."""
    with engine.begin() as conn:
        for table in _scoped_tables():
            name = _quote(conn, table.name)
            conn.exec_driver_sql(f"DROP POLICY IF EXISTS {POLICY_NAME} ON {name}")
            conn.exec_driver_sql(f"ALTER TABLE {name} NO FORCE ROW LEVEL SECURITY")
            conn.exec_driver_sql(f"ALTER TABLE {name} DISABLE ROW LEVEL SECURITY")


def check_row_level_security(engine: Engine) -> list[str]:
    """Why RLS would not hold for this engine's role and schema; empty when it holds.

    It holds when the connected role is not a superuser, has no ``BYPASSRLS``, owns none of the
    store tables, and every table has RLS enabled and forced with the ``dq_scope`` policy.
    """
    problems: list[str] = []
    with engine.connect() as conn:
        role = conn.execute(
            sa.text("SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).one()
        if role.rolsuper:
            problems.append(f"role {role.rolname} is a superuser (superusers bypass row-level security)")
        if role.rolbypassrls:
            problems.append(f"role {role.rolname} has BYPASSRLS")
        for table in _scoped_tables():
            row = conn.execute(
                sa.text(
                    "SELECT c.relrowsecurity, c.relforcerowsecurity, "
                    "pg_has_role(current_user, c.relowner, 'USAGE') AS owns, "
                    "EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = :policy) "
                    "AS has_policy "
                    "FROM pg_class c WHERE c.oid = to_regclass(:table)"
                ),
                {"table": table.name, "policy": POLICY_NAME},
            ).first()
            if row is None:
                problems.append(f"table {table.name} is missing (or not visible to role {role.rolname})")
                continue
            if not (row.relrowsecurity and row.relforcerowsecurity):
                problems.append(f"table {table.name} does not have row-level security enabled and forced")
            if not row.has_policy:
                problems.append(f"table {table.name} has no {POLICY_NAME} policy")
            if row.owns:
                problems.append(f"role {role.rolname} owns (or is a member of the owner of) {table.name}")
    return problems


# -- the stores ------------------------------------------------------------------------------------


# -- the scope hook ----------------------------------------------------------------------------------


class RowLevelSecurity:
    """The ``ScopeHook`` of ``dq_stores.sql.engine`` for RLS mode: each call's transaction is
    scoped to the call's tenant and environment (environment ``None``: a read of every
    environment of the tenant), inside the application's own ``rls_scope`` if one is in force.
    """

    def __init__(self, *, session_scope: bool = False) -> None:
        # Off by default: behind a transaction-pooling proxy (PgBouncer's pool_mode=transaction)
        # consecutive transactions of one client connection run on different server connections,
        # so a scope kept in the session could serve another client's call, or this one in
        # another client's scope. Only for direct connections to Postgres.
        self.session_scope = session_scope

    def __repr__(self) -> str:
        return f"RowLevelSecurity(session_scope={self.session_scope})"

    def check(self, tenant: str, environment: str | None) -> None:
        outer = _CURRENT.get()
        if outer is not None and not outer.allows(tenant, environment):
            where = f"{tenant}/{environment or ALL_ENVIRONMENTS}"
            raise ScopeViolationError(
                f"scope {where} is outside the row-level security scope {outer} in force"
            )

    def enter(self, tenant: str, environment: str | None) -> AbstractContextManager[None]:
        self.check(tenant, environment)
        return _entered(tenant, environment)

    def setting(
        self, tenant: str, environment: str | None, *, session: bool = False
    ) -> tuple[str, tuple[Any, ...]]:
        self.check(tenant, environment)
        # is_local true: SET LOCAL, ends with the transaction; false: the session keeps it (only
        # on fast-lane connections, which no other code path ever uses).
        local = "false" if session else "true"
        return (
            f"SELECT set_config(%s, %s, {local}), set_config(%s, %s, {local})",
            (TENANT_SETTING, tenant, ENVIRONMENT_SETTING, environment or ALL_ENVIRONMENTS),
        )

    def session_reset(self) -> str:
        # Empty settings: a connection back in the pool fails closed, as a fresh one does.
        return (
            f"SELECT set_config('{TENANT_SETTING}', '', false), "
            f"set_config('{ENVIRONMENT_SETTING}', '', false)"
        )


@contextmanager
def _entered(tenant: str, environment: str | None) -> Iterator[None]:
    with rls_scope(tenant, environment):
        yield


def open_rls_stores(url: str, **options: Any) -> Stores:
    """``open_stores(url, row_level_security=True, ...)`` (kept for existing callers)."""
    from dq_stores.stores import open_stores

    return open_stores(url, use_env=False, row_level_security=True, **options)
