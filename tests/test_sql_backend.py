"""SQL-specific behaviour: migrations equal the schema, schema version checks, the seed snippet on
real Postgres, inline vs offloaded results, EXPLAIN shows index use."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from dq_stores.errors import PayloadIntegrityError, SchemaVersionError
from dq_stores.models import JobRun, ValidationReport
from dq_stores.postgres import PostgresJobRunStore
from dq_stores.registry import open_stores
from dq_stores.scope import Scope
from dq_stores.sql import migrate
from dq_stores.sql.engine import create_sql_engine
from dq_stores.sql.schema import metadata
from tests.plugins.postgres import PG_DSN


def _migrated_by_alembic(engine: sa.Engine) -> None:
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(migrate._config(conn), "head")


def _diff(engine: sa.Engine) -> list[object]:
    """Tables, columns and types must match exactly; indexes (some are DESC expressions, which
    alembic cannot compare) must exist under the same names."""
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
        inspector = sa.inspect(conn)
        for table in metadata.sorted_tables:
            have = {ix["name"] for ix in inspector.get_indexes(table.name)}
            want = {
                ix.name
                for ix in table.indexes
                if not ix._ddl_if or ix._ddl_if.dialect in (None, conn.dialect.name)  # type: ignore[attr-defined]
            }
            assert have == want, (table.name, have ^ want)
    return [d for d in diff if not (isinstance(d, tuple) and d[0] in {"add_index", "remove_index"})]


def test_sqlite_migrations_produce_the_schema(tmp_path: Path) -> None:
    engine = create_sql_engine(f"sqlite:///{tmp_path}/m.db")
    _migrated_by_alembic(engine)
    assert _diff(engine) == []


@pytest.mark.postgres
def test_postgres_migrations_produce_the_schema(pg_url: str, pg_schema: str) -> None:
    engine = create_sql_engine(pg_url, schema=pg_schema)
    _migrated_by_alembic(engine)
    assert _diff(engine) == []
    engine.dispose()


def test_sqlite_upgrades_itself_from_an_older_revision(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite:///{tmp_path}/old.db"
    engine = create_sql_engine(url)
    with engine.begin() as conn:
        command.upgrade(migrate._config(conn), "0001")
    with open_stores(url) as stores:
        stores.job_runs.put(JobRun(job_id="j", tenant_id="t", environment="e", job_type="validation"))
    with engine.connect() as conn:
        assert migrate.current_revision(conn) == migrate.head_revision()


@pytest.mark.postgres
def test_postgres_refuses_older_schema_until_upgraded(pg_url: str, pg_schema: str) -> None:
    from alembic import command

    engine = create_sql_engine(pg_url, schema=pg_schema)
    with engine.begin() as conn:
        command.upgrade(migrate._config(conn), "0001")
    with pytest.raises(SchemaVersionError, match="dq-stores db upgrade"):
        open_stores(pg_url, schema=pg_schema)
    assert migrate.upgrade(engine) == migrate.head_revision()
    open_stores(pg_url, schema=pg_schema).close()
    engine.dispose()


@pytest.mark.postgres
def test_postgres_refuses_a_newer_schema(pg_url: str, pg_schema: str) -> None:
    open_stores(pg_url, schema=pg_schema).close()
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'UPDATE "{pg_schema}".alembic_version SET version_num = %s', ("9999_future",))
    with pytest.raises(SchemaVersionError, match="newer than this dq-stores knows"):
        open_stores(pg_url, schema=pg_schema)


@pytest.mark.postgres
def test_design_note_snippet_runs_against_postgres(
    pg_url: str, pg_schema: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_stores(pg_url, schema=pg_schema) as stores:
        for i in range(3):
            stores.job_runs.put(
                JobRun(
                    job_id=f"run-{i}",
                    tenant_id="tenant-a",
                    environment="dev",
                    job_type="validation",
                    status="succeeded",
                    submitted_at=dt.datetime(2026, 1, 1 + i, tzinfo=dt.UTC),
                )
            )
        stores.job_runs.put(
            JobRun(job_id="other", tenant_id="tenant-b", environment="dev", job_type="profiling")
        )

    # The design note, as written (plus where the database is):
    job_store = PostgresJobRunStore(pg_url, schema=pg_schema)
    for job in job_store.list_by_tenant(tenant="tenant-a", environment="dev"):
        print(job.job_id, job.status)
    job_store.close()

    lines = capsys.readouterr().out.splitlines()
    assert lines == ["run-2 succeeded", "run-1 succeeded", "run-0 succeeded"]


def test_postgres_store_refuses_a_sqlite_url() -> None:
    from dq_stores.errors import InvalidArtifactError

    with pytest.raises(InvalidArtifactError, match="postgresql"):
        PostgresJobRunStore("sqlite:///x.db")


def test_small_results_inline_large_ones_offloaded_and_verified(tmp_path: Path) -> None:
    with open_stores(f"sqlite:///{tmp_path}/dq.db", offload_threshold=2048) as stores:
        runs = stores.job_runs
        runs.put(JobRun(job_id="j", tenant_id="t", environment="e", job_type="validation"))
        small = ValidationReport(status="passed", row_count=3, pass_rate=1.0)
        ref = small_ref = runs.put_result("t", "e", "j", small)
        assert ref.location == "inline"
        assert ref.result_type == "validation"
        assert runs.get_result_model("t", "e", "j") == small

        big = b"0123456789" * 1000
        ref = runs.put_result("t", "e", "j", big, content_type="text/csv")
        assert ref.location == "external"
        assert ref.uri is not None
        # Beside the database, named after it, in the store's own namespace.
        assert ref.uri.startswith((tmp_path / "dq.results" / str(runs.store_id())).as_uri() + "/")
        assert runs.get_result("t", "e", "j") == big
        # The inline row of the replaced result is gone, and nothing is orphaned.
        assert runs._get_inline(Scope("t", "e"), "j", small_ref.sha256) is None
        assert runs.gc_payloads(older_than=dt.timedelta(0)) == []

        Path(ref.uri.removeprefix("file://")).write_bytes(b"X" * len(big))
        with pytest.raises(PayloadIntegrityError, match="corrupt"):
            runs.get_result("t", "e", "j")


def test_gc_removes_orphan_payloads_only(tmp_path: Path) -> None:
    with open_stores(f"sqlite:///{tmp_path}/dq.db", offload_threshold=0) as stores:
        runs = stores.job_runs
        runs.put(JobRun(job_id="j", tenant_id="t", environment="e", job_type="validation"))
        kept = runs.put_result("t", "e", "j", b"kept")
        assert runs.payloads is not None
        orphan = runs.payloads.write(
            f"{runs.store_id()}/t/e/job_runs/j/result-deadbeefdeadbeef.bin", b"orphan", content_type="x"
        )
        # Another store's payload in the same location is never collected by this one.
        foreign = runs.payloads.write(
            "0123456789abcdef/t/e/job_runs/j/result-deadbeefdeadbeef.bin", b"theirs", content_type="x"
        )
        assert runs.gc_payloads(older_than=dt.timedelta(hours=1)) == []  # still in its grace period
        assert runs.gc_payloads(older_than=dt.timedelta(0)) == [orphan.uri]
        assert runs.get_result("t", "e", "j") == b"kept"
        assert Path(foreign.uri.removeprefix("file://")).read_bytes() == b"theirs"
        assert kept.uri is not None


@pytest.mark.postgres
def test_run_listing_is_served_by_an_index(pg_url: str, pg_schema: str) -> None:
    with open_stores(pg_url, schema=pg_schema) as stores:
        stores.job_runs.put_many(
            [
                JobRun(job_id=f"r{i}", tenant_id=f"t{i % 2}", environment="prod", job_type="validation")
                for i in range(10000)
            ]
        )
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg_schema}"')
        conn.execute("ANALYZE dq_job_runs")
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT document FROM dq_job_runs WHERE tenant = 't1' AND environment = 'prod' "
                "ORDER BY run_time DESC, job_id DESC, environment DESC LIMIT 101"
            )
        )
    assert "ix_dq_job_runs_scope_time" in plan, plan
    assert "Sort" not in plan.split("Index")[0], plan
