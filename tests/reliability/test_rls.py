"""Postgres row-level security (``dq_stores.sql.rls``): the database itself keeps every
transaction of the application role inside one tenant and environment.

Each test gets a uuid-named schema (migrated and put under RLS by the superuser, which owns the
tables) and a uuid-named application role (login, not an owner, no BYPASSRLS), both dropped
afterwards. Shown here: raw SQL through the application's connection in tenant A's scope sees
none of tenant B's rows in any table, and nothing at all without a scope; writes into another
scope are refused by the database (not by our Python code); the role cannot switch RLS off; the
stores refuse to open in RLS mode as a role RLS does not bind; and the whole conformance suite
passes through the RLS stores (so the mode is a drop-in, not a demo).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from psycopg import errors as pg_errors
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url

from dq_stores.canonical import canonical_json, sha256_hex
from dq_stores.errors import InvalidArtifactError, ScopeViolationError, StoreError
from dq_stores.kinds import RunIndex
from dq_stores.registry import Stores, open_stores
from dq_stores.scope import Scope
from dq_stores.sql import queries as q
from dq_stores.sql.engine import create_sql_engine
from dq_stores.sql.migrate import upgrade
from dq_stores.sql.rls import (
    RowLevelSecurity,
    check_row_level_security,
    create_app_role,
    disable_row_level_security,
    enable_row_level_security,
    install_scope_hook,
    open_rls_stores,
    rls_scope,
)
from dq_stores.sql.runs import SqlJobRunStore
from dq_stores.sql.schema import metadata
from dq_stores.testing import StoreConformance
from dq_stores.testing.builders import (
    make_action_profile,
    make_contract,
    make_job_definition,
    make_run,
    unique_id,
)
from tests.plugins.postgres import PG_DSN

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

TABLES = [t.name for t in metadata.sorted_tables if t.name != "dq_store_info"]
"""The tables holding tenant data (``dq_store_info`` describes the store itself: no scope)."""
ENVS = ("prod", "dev")


@dataclass
class RlsDatabase:
    schema: str
    role: str
    owner: Engine
    """The superuser's engine on the schema (bypasses RLS: used to seed and to check)."""
    pg_url: str
    app_url: str
    """The same database as the application role (no password: the test server trusts local)."""

    def app_engine(self, **kwargs: Any) -> Engine:
        """A fresh engine as the application role, with the scope hook installed."""
        return install_scope_hook(create_sql_engine(self.app_url, schema=self.schema, **kwargs))

    def owner_stores(self) -> Stores:
        return open_stores(self.pg_url, schema=self.schema)

    def owner_rows(self, table: str) -> list[tuple[Any, ...]]:
        with self.owner.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT * FROM {table}")).all()
        return sorted((tuple(r) for r in rows), key=repr)


def _drop_role(role: str) -> None:
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(f'DROP OWNED BY "{role}"')  # its grants
            conn.execute(f'DROP ROLE "{role}"')


def rls_database(pg_url: str, make_pg_schema: Callable[[], str]) -> Iterator[RlsDatabase]:
    schema = make_pg_schema()
    role = f"dqapp_{uuid.uuid4().hex[:12]}"
    owner = create_sql_engine(pg_url, schema=schema)
    try:
        upgrade(owner)
        create_app_role(owner, role)
        enable_row_level_security(owner, app_role=role)
        app_url = make_url(pg_url).set(username=role).render_as_string(hide_password=False)
        yield RlsDatabase(schema, role, owner, pg_url, app_url)
    finally:
        owner.dispose()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        _drop_role(role)


@pytest.fixture
def db(pg_url: str, make_pg_schema: Callable[[], str]) -> Iterator[RlsDatabase]:
    yield from rls_database(pg_url, make_pg_schema)


@pytest.fixture
def seeded(db: RlsDatabase) -> tuple[RlsDatabase, str, str]:
    """Tenants A and B, each with every kind of row in both environments (seeded as the owner)."""
    a, b = unique_id("a"), unique_id("b")
    with db.owner_stores() as stores:
        for tenant in (a, b):
            for env in ENVS:
                stores.contracts.put(make_contract(tenant, env, dataset_types=["billing", "orders"]))
                stores.contracts.put(make_contract(tenant, env, name="second revision"))
                stores.job_definitions.put(make_job_definition(tenant, env, tags=["daily"]))
                stores.action_profiles.put(make_action_profile(tenant, env))
                stores.job_runs.put(make_run(tenant, env, "run-1"))
                stores.job_runs.put_result(tenant, env, "run-1", {"passed": True})
    for table in TABLES:
        scopes = {(r[0], r[1]) for r in db.owner_rows(table)}
        assert scopes == {(t, e) for t in (a, b) for e in ENVS}, f"{table} was not seeded in every scope"
    return db, a, b


def _scopes_seen(engine: Engine, table: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [(r[0], r[1]) for r in conn.execute(sa.text(f"SELECT tenant, environment FROM {table}"))]


# -- reads ---------------------------------------------------------------------------------------


def test_raw_sql_in_one_scope_sees_none_of_another_tenants_rows(seeded: tuple[RlsDatabase, str, str]) -> None:
    db, a, b = seeded
    # One pooled connection: every transaction below reuses it, so a scope that outlived its
    # transaction (SET instead of SET LOCAL) would show up as rows in the unscoped checks.
    engine = db.app_engine(pool_size=1, max_overflow=0)
    try:
        for table in TABLES:
            owner_count = {(t, e): 0 for t in (a, b) for e in ENVS}
            for row in db.owner_rows(table):
                owner_count[(row[0], row[1])] += 1
            with rls_scope(a, "prod"):
                seen = _scopes_seen(engine, table)
                with engine.connect() as conn:
                    # Asking for B explicitly, or for everything, changes nothing.
                    for_b = conn.execute(
                        sa.text(f"SELECT count(*) FROM {table} WHERE tenant = :b"), {"b": b}
                    ).scalar_one()
                    everything = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            assert seen and set(seen) == {(a, "prod")}, table
            assert len(seen) == owner_count[(a, "prod")], table
            assert for_b == 0 and everything == owner_count[(a, "prod")], table

            with rls_scope(a, None):  # every environment of A: reads only
                seen_all_envs = _scopes_seen(engine, table)
            assert set(seen_all_envs) == {(a, "prod"), (a, "dev")}, table
            assert len(seen_all_envs) == owner_count[(a, "prod")] + owner_count[(a, "dev")], table

            with rls_scope(b, "dev"):
                assert set(_scopes_seen(engine, table)) == {(b, "dev")}, table

            # No scope (or the scope of a finished transaction): nothing at all.
            assert _scopes_seen(engine, table) == [], table
        # A hand-made tenant-less setting does not widen anything either.
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT set_config('dq.environment', '*', true)"))
            assert conn.execute(sa.text("SELECT count(*) FROM dq_job_runs")).scalar_one() == 0
    finally:
        engine.dispose()


def test_rls_stores_serve_each_call_in_its_scope_and_a_pinned_scope_holds(
    seeded: tuple[RlsDatabase, str, str],
) -> None:
    db, a, b = seeded
    with open_rls_stores(db.app_url, schema=db.schema) as stores:
        # The Store API works as usual, each call in the scope it names...
        assert stores.contracts.get(a, "prod", "contract-1") is not None
        assert stores.contracts.get_latest_for_dataset(b, "dev", "orders") is not None
        assert {r.environment for r in stores.job_runs.list_by_tenant(a)} == set(ENVS)
        assert stores.job_runs.get_result_model(b, "prod", "run-1") == {"passed": True}
        # ...and an application that pins its scope cannot leave it, not even by a store call.
        with rls_scope(a, "prod"):
            assert stores.job_runs.get(a, "prod", "run-1") is not None
            with pytest.raises(ScopeViolationError):
                stores.job_runs.get(b, "prod", "run-1")
            with pytest.raises(ScopeViolationError):
                list(stores.job_runs.list_by_tenant(a))  # all environments: wider than the pin
            with pytest.raises(ScopeViolationError), rls_scope(b, "prod"):
                pass


def test_a_fast_lane_connection_switches_scope_on_every_change_and_forgets_it_on_failure(
    seeded: tuple[RlsDatabase, str, str],
) -> None:
    """With ``rls_session_scope`` (direct connections only), one lane connection (pool size 1)
    serves calls of alternating scopes: it keeps the last scope as a session setting and must set
    the new one with every change, and after a failed statement (whose message rolled the setting
    back) set it again."""
    db, a, b = seeded
    with open_rls_stores(db.app_url, schema=db.schema, pool_size=1, rls_session_scope=True) as stores:
        for tenant, env in [(a, "prod"), (b, "prod"), (b, "dev"), (a, "prod"), (a, "prod"), (b, "dev")] * 3:
            run = stores.job_runs.get(tenant, env, "run-1")
            assert run is not None and (run.tenant_id, run.environment) == (tenant, env)
            assert stores.contracts.get(tenant, env, "contract-1") is not None
        assert stores.job_runs.get(a, "prod", "run-1") is not None  # the lane is now in scope a/prod
        # A run put for b/dev that the database refuses (a forbidden status transition is refused
        # by the statement, which then changes nothing), then reads in b/dev and a/prod again.
        finished = make_run(b, "dev", "run-done", status="succeeded")
        stores.job_runs.put(finished)
        with pytest.raises(Exception):  # noqa: B017 - any refusal; what matters is what follows
            stores.job_runs.put(make_run(b, "dev", "run-done", status="running"), if_match="stale")
        assert stores.job_runs.get(b, "dev", "run-1") is not None
        assert stores.job_runs.get(a, "prod", "run-done") is None  # b's run, not visible as a
        assert stores.job_runs.get(a, "prod", "run-1") is not None


def test_by_default_no_scope_outlives_its_call_on_the_server(seeded: tuple[RlsDatabase, str, str]) -> None:
    """The default fast path sends each call's scope with its statement as ``SET LOCAL``: after a
    call, the server session holds no scope (what a transaction-pooling proxy such as PgBouncer
    needs, since the next transaction on that server connection may be another client's)."""
    db, a, _ = seeded
    with open_rls_stores(db.app_url, schema=db.schema, pool_size=1) as stores:
        assert stores.job_runs.get(a, "prod", "run-1") is not None
        backend = stores.job_runs._db  # type: ignore[attr-defined]
        lane = backend._lane
        fairy = lane.acquire()
        try:
            cursor = fairy.dbapi_connection.cursor()
            cursor.execute(
                "SELECT current_setting('dq.tenant', true), current_setting('dq.environment', true)"
            )
            assert cursor.fetchone() in ((None, None), ("", ""))
        finally:
            lane.release(fairy)
        with pytest.raises(InvalidArtifactError):
            open_stores(db.pg_url, schema=db.schema, rls_session_scope=True)


# -- writes --------------------------------------------------------------------------------------


def _run_row(tenant: str, environment: str, job_id: str) -> dict[str, Any]:
    document = canonical_json(make_run(tenant, environment, job_id)).decode()
    return {
        "tenant": tenant,
        "environment": environment,
        "job_id": job_id,
        "doc": document,
        "hash": sha256_hex(document.encode()),
    }


INSERT_RUN = sa.text(
    "INSERT INTO dq_job_runs (tenant, environment, job_id, job_type, status, run_time, recorded_at, "
    "updated_at, revision, etag, content_hash, document) VALUES (:tenant, :environment, :job_id, "
    "'validation', 'succeeded', now(), now(), now(), 1, 'e', :hash, :doc)"
)


def _refused_by_policy(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, pg_errors.InsufficientPrivilege) and "row-level security" in str(exc):
            return True
        exc = exc.__cause__ or getattr(exc, "orig", None)  # type: ignore[assignment]
    return False


def test_writes_into_another_scope_are_refused_by_the_database(seeded: tuple[RlsDatabase, str, str]) -> None:
    db, a, b = seeded
    before = {table: db.owner_rows(table) for table in TABLES}
    engine = db.app_engine()
    try:
        with rls_scope(a, "prod"):
            # Inserting B's row, or A's row in another environment: the policy's WITH CHECK.
            for tenant, env in ((b, "prod"), (a, "dev")):
                with pytest.raises(sa_exc.ProgrammingError) as refused, engine.begin() as conn:
                    conn.execute(INSERT_RUN, _run_row(tenant, env, "smuggled"))
                assert _refused_by_policy(refused.value), refused.value
            # Moving one of A's own rows into B.
            with pytest.raises(sa_exc.ProgrammingError) as moved, engine.begin() as conn:
                conn.execute(sa.text("UPDATE dq_job_runs SET tenant = :b"), {"b": b})
            assert _refused_by_policy(moved.value), moved.value
            # Changing or deleting B's rows: they are not there to change (0 rows, no error).
            with engine.begin() as conn:
                for table in TABLES:
                    assert (
                        conn.execute(
                            sa.text(f"UPDATE {table} SET environment = 'hacked' WHERE tenant = :b"), {"b": b}
                        ).rowcount
                        == 0
                    ), table
                    assert (
                        conn.execute(sa.text(f"DELETE FROM {table} WHERE tenant = :b"), {"b": b}).rowcount
                        == 0
                    ), table
        with rls_scope(a, None), pytest.raises(sa_exc.ProgrammingError) as wide, engine.begin() as conn:
            conn.execute(INSERT_RUN, _run_row(a, "prod", "wide"))  # all-environment scopes only read
        assert _refused_by_policy(wide.value)
        with pytest.raises(sa_exc.ProgrammingError) as unscoped, engine.begin() as conn:
            conn.execute(INSERT_RUN, _run_row(a, "prod", "unscoped"))
        assert _refused_by_policy(unscoped.value)
    finally:
        engine.dispose()
    assert {table: db.owner_rows(table) for table in TABLES} == before, "a refused write left rows behind"


def test_a_store_writing_into_the_wrong_scope_is_stopped_by_the_database(
    seeded: tuple[RlsDatabase, str, str],
) -> None:
    """A store bug (the transaction is A's, the row is B's) meets the policy, not our checks: the
    run upsert of B's row is sent through the engine's fast path scoped to A, bypassing every
    check in Python, and the database refuses the row."""
    db, a, b = seeded
    run = make_run(b, "prod", "bug")
    document = canonical_json(run)
    with open_rls_stores(db.app_url, schema=db.schema) as stores:
        runs = stores.job_runs
        assert isinstance(runs, SqlJobRunStore)
        assert isinstance(runs._db.scope_hook, RowLevelSecurity)
        assert runs._db.fast  # RLS mode keeps the single-statement fast path
        values = runs._run_values(
            Scope(b, "prod"), RunIndex.of(run), document, sha256_hex(document), "e1", q.now()
        )
        query = q.upsert_run_query(runs._db.dialect.name, "succeeded", False, False)
        with pytest.raises(StoreError) as refused:
            runs._db.execute(query, {f"new_{k}": v for k, v in values.items()}, (a, "prod"))
        assert isinstance(refused.value, ScopeViolationError)
        assert _refused_by_policy(refused.value), refused.value
        assert runs.get(b, "prod", "bug") is None
    assert not [r for r in db.owner_rows("dq_job_runs") if r[2] == "bug"]


# -- the role and the mode -----------------------------------------------------------------------


def test_the_application_role_cannot_switch_rls_off_or_become_the_owner(db: RlsDatabase) -> None:
    engine = db.app_engine()
    try:
        for statement in (
            "ALTER TABLE dq_job_runs DISABLE ROW LEVEL SECURITY",
            "ALTER TABLE dq_job_runs NO FORCE ROW LEVEL SECURITY",
            "DROP POLICY dq_scope ON dq_job_runs",
            "SET ROLE postgres",
            "ALTER ROLE CURRENT_USER BYPASSRLS",
        ):
            with pytest.raises(sa_exc.ProgrammingError), engine.begin() as conn:
                conn.execute(sa.text(statement))
        assert check_row_level_security(engine) == []
    finally:
        engine.dispose()


def test_rls_mode_refuses_to_open_where_rls_would_not_hold(db: RlsDatabase) -> None:
    # The superuser owns the tables and bypasses every policy.
    with pytest.raises(StoreError, match="superuser") as superuser:
        open_rls_stores(db.pg_url, schema=db.schema)
    assert "row-level security does not hold" in str(superuser.value)
    # Policies dropped by the owner: the application role is refused until they are back.
    disable_row_level_security(db.owner)
    with pytest.raises(StoreError, match="not have row-level security enabled"):
        open_rls_stores(db.app_url, schema=db.schema)
    enable_row_level_security(db.owner, app_role=db.role)
    with open_rls_stores(db.app_url, schema=db.schema) as stores:
        assert stores.job_runs.get("nobody", "prod", "x") is None


# -- the whole Store API through RLS ---------------------------------------------------------------


class TestRlsStoresConformance(StoreConformance):
    """Every conformance test, with every store call restricted by the database to its scope."""

    @pytest.fixture(scope="class")
    def class_db(self, pg_url: str, make_pg_schema: Callable[[], str]) -> Iterator[RlsDatabase]:
        yield from rls_database(pg_url, make_pg_schema)

    @pytest.fixture(scope="class")
    def results_url(self, tmp_path_factory: pytest.TempPathFactory) -> str:
        return tmp_path_factory.mktemp("rls-results").as_uri()

    @pytest.fixture(scope="class")
    def class_stores(self, class_db: RlsDatabase, results_url: str) -> Iterator[Stores]:
        # Through the public entry point: open_stores(..., row_level_security=True).
        with open_stores(
            class_db.app_url, schema=class_db.schema, row_level_security=True, results_url=results_url
        ) as stores:
            assert isinstance(stores.job_runs._db.scope_hook, RowLevelSecurity)
            yield stores

    @pytest.fixture
    def stores_location(self, class_db: RlsDatabase, results_url: str) -> tuple[str, dict[str, Any]]:
        return class_db.app_url, {
            "schema": class_db.schema,
            "row_level_security": True,
            "results_url": results_url,
        }

    @pytest.fixture
    def stores(self, class_stores: Stores) -> Stores:
        return class_stores


def test_cli_enable_rls_creates_the_role_and_the_policies(
    pg_url: str, make_pg_schema: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from dq_stores.cli import cli

    schema = make_pg_schema()
    role = f"dqapp_{uuid.uuid4().hex[:12]}"
    owner = create_sql_engine(pg_url, schema=schema)
    try:
        upgrade(owner)
        monkeypatch.setenv("DQ_APP_ROLE_PASSWORD", "app-Pa55-word")
        result = CliRunner().invoke(
            cli,
            ["db", "enable-rls", "--url", pg_url, "--schema", schema, "--app-role", role, "--create-role"],
        )
        assert result.exit_code == 0, result.output
        assert "row-level security on" in result.output
        assert "app-Pa55-word" not in result.output
        app_url = make_url(pg_url).set(username=role).render_as_string(hide_password=False)
        assert check_row_level_security(create_sql_engine(app_url, schema=schema)) == []
    finally:
        owner.dispose()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        _drop_role(role)
