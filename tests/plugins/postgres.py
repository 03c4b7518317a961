"""PostgreSQL for the tests: the server at 127.0.0.1:5432 (trust auth), one uuid-named schema per
use, dropped afterwards, so runs never see each other's rows.

Under ``CI=true`` an unreachable server fails the test; locally it skips with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

PG_DSN = os.environ.get("DQ_TEST_PG_DSN", "host=127.0.0.1 port=5432 dbname=test user=postgres")
PG_URL = os.environ.get("DQ_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_service(name: str, reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    message = f"{name} is not available: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: services are required, not optional)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """SQLAlchemy URL of the test database (no schema chosen)."""
    try:
        with psycopg.connect(PG_DSN, connect_timeout=5) as conn:
            conn.execute("select 1")
    except psycopg.OperationalError as exc:
        require_service("PostgreSQL at 127.0.0.1:5432", str(exc).strip())
    _public_schema_at_head()
    return PG_URL


def _public_schema_at_head() -> None:
    """The few tests that use the database's default schema (the README's design-note snippet,
    the check that a CLI import into a named schema left ``public`` alone) find it at this
    version's schema revision. Unlike the per-test schemas it outlives the session, so a run of
    an older version may have left it at an older revision; a deployment upgrading the package
    runs ``dq-stores db upgrade`` the same way.
    """
    from dq_stores.sql.engine import create_sql_engine
    from dq_stores.sql.migrate import upgrade

    engine = create_sql_engine(PG_URL)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def make_pg_schema(pg_url: str) -> Iterator[Callable[[], str]]:
    """Factory of fresh uuid-named schemas; all of them are dropped at the end of the session."""
    created: list[str] = []

    def make() -> str:
        name = f"dqtest_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        created.append(name)
        return name

    yield make
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def pg_schema(make_pg_schema: Callable[[], str]) -> str:
    """A fresh schema for one test."""
    return make_pg_schema()
