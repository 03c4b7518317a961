"""Rows 1-5: the SQL stores against the same SQL through the raw driver (psycopg / sqlite3).

Every baseline is the irreducible work of the operation: the same statement through a plain
driver connection in autocommit plus ``model_validate_json`` of the document (reads), or the
canonical encoding plus the same upsert / ``COPY`` / ``executemany`` (writes).
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import data
from bench.harness import Config, Result, check, compare, latency, skipped, throughput
from bench.services import Services, pg_schema, raw_pg
from dq_stores.canonical import canonical_json
from dq_stores.models import DataContract, JobRun
from dq_stores.registry import Stores, open_stores

TENANT = "acme"


@dataclass
class Target:
    """One database: how to open our stores on it and a raw driver connection to it."""

    label: str
    url: str
    options: dict[str, Any]
    connect_raw: Callable[[], Any]
    postgres: bool
    _raw: Any = field(default=None, repr=False)

    def stores(self) -> Stores:
        return open_stores(self.url, **self.options)

    @property
    def raw(self) -> Any:
        if self._raw is None:
            self._raw = self.connect_raw()
        return self._raw

    def sql(self, text: str) -> str:
        return text if self.postgres else text.replace("%s", "?")

    def time(self, value: datetime) -> Any:
        # SQLite stores what SQLAlchemy's DateTime writes: naive UTC text with microseconds.
        return value if self.postgres else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None


@contextmanager
def postgres(services: Services, label: str) -> Iterator[Target]:
    with pg_schema(services, label) as schema:
        assert services.pg_url is not None
        target = Target(
            "Postgres", services.pg_url, {"schema": schema}, lambda: raw_pg(services, schema), True
        )
        try:
            yield target
        finally:
            target.close()


@contextmanager
def sqlite_file() -> Iterator[Target]:
    with tempfile.TemporaryDirectory(prefix="dqbench-sqlite-") as folder:
        path = Path(folder) / "bench.db"

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # The durability our engine runs with (WAL is a property of the file already).
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            return conn

        target = Target("SQLite", f"sqlite:///{path}", {}, connect, False)
        try:
            yield target
        finally:
            target.close()


# -- 1: get ---------------------------------------------------------------------------------------

GET_RUN = "SELECT document, etag, content_hash FROM dq_job_runs WHERE tenant = %s AND environment = %s AND job_id = %s"
GET_ARTIFACT = (
    "SELECT document, etag, content_hash FROM dq_artifacts WHERE tenant = %s AND environment = %s "
    "AND kind = %s AND artifact_id = %s AND version = %s"
)


def bench_get(config: Config, target: Target) -> list[Result]:
    results = []
    with target.stores() as stores:
        run = data.job_run(TENANT, "run-get")
        stores.job_runs.put(run)
        contract = data.contract(TENANT)
        stores.contracts.put(contract)
        raw = target.raw
        q_run, q_contract = target.sql(GET_RUN), target.sql(GET_ARTIFACT)
        run_key = (TENANT, data.ENV, run.job_id)
        contract_key = (TENANT, data.ENV, "contracts", contract.contract_id, contract.version)

        def ours_run() -> Any:
            return stores.job_runs.get(TENANT, data.ENV, run.job_id)

        def raw_run() -> Any:
            return JobRun.model_validate_json(raw.execute(q_run, run_key).fetchone()[0])

        def ours_contract() -> Any:
            return stores.contracts.get(TENANT, data.ENV, contract.contract_id, contract.version)

        def raw_contract() -> Any:
            return DataContract.model_validate_json(raw.execute(q_contract, contract_key).fetchone()[0])

        check(ours_run() == raw_run(), "ours and raw read different job runs")
        check(ours_contract() == raw_contract(), "ours and raw read different contracts")
        for what, ours, base in (("job run", ours_run, raw_run), ("contract", ours_contract, raw_contract)):
            result = Result(
                "",
                f"get one {what}, {target.label}",
                "latency",
                "<= 1.3",
                1.3,
                baseline_name=f"raw {target.label} SELECT by primary key + model_validate_json",
            )
            results.append(latency(result, *compare(ours, base, config)))
    return results


# -- 2: put ---------------------------------------------------------------------------------------

UPSERT_RUN = (
    "INSERT INTO dq_job_runs ("
    + ", ".join(data.RUN_COLUMNS)
    + ") VALUES ("
    + ", ".join(["%s"] * len(data.RUN_COLUMNS))
    + ") ON CONFLICT (tenant, environment, job_id) DO UPDATE SET "
    + ", ".join(
        f"{c} = excluded.{c}"
        for c in data.RUN_COLUMNS
        if c not in {"tenant", "environment", "job_id", "recorded_at", "revision"}
    )
    + ", revision = dq_job_runs.revision + 1 RETURNING etag"
)


def run_row(target: Target, run: JobRun, document: bytes, now: datetime) -> tuple[Any, ...]:
    """The ``dq_job_runs`` row of ``run`` (what a hand-written writer would bind)."""
    orch = run.orchestrator
    return (
        run.tenant_id,
        run.environment,
        run.job_id,
        str(run.job_type),
        str(run.status),
        run.job_definition_id,
        run.dataset_type.lower() if run.dataset_type else None,
        run.contract.contract_id if run.contract else None,
        run.contract.version if run.contract else None,
        orch.run_id if orch else None,
        orch.asset_key if orch else None,
        orch.partition_key if orch else None,
        target.time(run.sort_time or now),
        target.time(now),
        target.time(now),
        1,
        uuid.uuid4().hex,
        hashlib.sha256(document).hexdigest(),
        document.decode(),
    )


def bench_put(config: Config, target: Target) -> list[Result]:
    with target.stores() as stores:
        ours_runs = itertools.cycle(
            [data.job_run(TENANT, "run-put", message=f"attempt {i}") for i in range(2)]
        )
        raw_runs = itertools.cycle(
            [data.job_run(TENANT, "run-put-raw", message=f"attempt {i}") for i in range(2)]
        )
        raw = target.raw
        upsert = target.sql(UPSERT_RUN)

        def ours() -> Any:
            return stores.job_runs.put(next(ours_runs))

        def base() -> Any:
            run = next(raw_runs)
            document = canonical_json(run)
            return raw.execute(upsert, run_row(target, run, document, datetime.now(UTC))).fetchone()

        result = Result(
            "",
            f"put one job run (upsert, new revision), {target.label}",
            "latency",
            "<= 1.3",
            1.3,
            baseline_name=f"canonical encode + raw {target.label} INSERT ... ON CONFLICT DO UPDATE",
        )
        return [latency(result, *compare(ours, base, config))]


# -- 3: bulk write --------------------------------------------------------------------------------


def bench_bulk(config: Config, target: Target) -> list[Result]:
    runs = data.job_runs(config.bulk_runs, TENANT)
    with target.stores() as stores:
        raw = target.raw

        def empty() -> None:
            raw.execute("TRUNCATE dq_job_runs" if target.postgres else "DELETE FROM dq_job_runs")

        def ours() -> Any:
            return stores.job_runs.put_many(runs)

        def base() -> None:
            now = datetime.now(UTC)
            rows = [run_row(target, run, canonical_json(run), now) for run in runs]
            if target.postgres:
                with (
                    raw.cursor() as cur,
                    cur.copy(f"COPY dq_job_runs ({', '.join(data.RUN_COLUMNS)}) FROM STDIN") as copy,
                ):
                    for row in rows:
                        copy.write_row(row)
            else:
                raw.execute("BEGIN")
                raw.executemany(
                    f"INSERT INTO dq_job_runs ({', '.join(data.RUN_COLUMNS)}) VALUES "
                    f"({', '.join(['?'] * len(data.RUN_COLUMNS))})",
                    rows,
                )
                raw.execute("COMMIT")

        empty()
        ours()
        check(stores.job_runs.get(TENANT, data.ENV, runs[-1].job_id) == runs[-1], "put_many lost a run")
        how = "COPY" if target.postgres else "executemany in one transaction"
        result = Result(
            "",
            f"put_many of {config.bulk_runs:,} job runs, {target.label}",
            "throughput",
            ">= 0.6",
            0.6,
            baseline_name=f"canonical encode + raw {target.label} {how}",
        )
        ours_t, base_t = compare(ours, base, config, setup=empty)
        return [throughput(result, ours_t, base_t, config.bulk_runs, "rows/s")]


# -- 4: one page of runs, 10k and 1M rows --------------------------------------------------------

PAGE = (
    "SELECT document FROM dq_job_runs WHERE tenant = %s AND environment = %s "
    "ORDER BY run_time DESC, job_id DESC LIMIT 100"
)


def _load_runs(target: Target, count: int, tenants: int, start: int, *, bulk: bool) -> None:
    """Add ``count`` runs with raw COPY / executemany (setup, not measured). ``bulk`` drops the
    secondary indexes first and builds them afterwards, as a bulk load is done."""
    import sqlalchemy as sa

    from dq_stores.sql.schema import job_runs

    engine = sa.create_engine(target.url, connect_args=_search_path(target))
    try:
        if bulk:
            with engine.begin() as conn:
                for index in job_runs.indexes:
                    index.drop(conn)
        raw = target.raw
        rows = data.run_rows(count, tenants, start=start)
        columns = ", ".join(data.RUN_COLUMNS)
        if target.postgres:
            with raw.cursor() as cur, cur.copy(f"COPY dq_job_runs ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            converted = (row[:12] + tuple(target.time(t) for t in row[12:15]) + row[15:] for row in rows)
            raw.execute("BEGIN")
            raw.executemany(
                f"INSERT INTO dq_job_runs ({columns}) VALUES ({', '.join(['?'] * len(data.RUN_COLUMNS))})",
                converted,
            )
            raw.execute("COMMIT")
        with engine.begin() as conn:
            if bulk:
                for index in job_runs.indexes:
                    index.create(conn)
            conn.exec_driver_sql("ANALYZE dq_job_runs" if target.postgres else "ANALYZE")
    finally:
        engine.dispose()


def _explain(target: Target, stores: Stores, tenant: str) -> dict[str, str]:
    """The plan of the exact statement our first page and a keyset (second) page run."""
    # Internals on purpose: the plan must be of our statement, as compiled for this engine.
    from dq_stores.base import decode_run_cursor
    from dq_stores.sql.queries import list_runs_query

    dialect = stores.job_runs._db.engine.dialect  # type: ignore[attr-defined]
    # A cursor from a half page, so that a tenant with a single page of 100 has one too.
    after = decode_run_cursor(stores.job_runs.list(tenant, data.ENV, limit=50).next_cursor)
    check(after is not None, f"tenant {tenant} has fewer than 51 runs")
    assert after is not None
    plans = {}
    for name, keyset, params in (
        ("first page", False, {"tenant": tenant, "environment": data.ENV}),
        (
            "second page (keyset cursor)",
            True,
            {
                "tenant": tenant,
                "environment": data.ENV,
                "after_time": datetime.strptime(after[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
                "after_job_id": after[1],
                "after_environment": after[2],
            },
        ),
    ):
        compiled = list_runs_query(True, keyset, (), False, False, 101).compiled(dialect)
        prefix = "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " if target.postgres else "EXPLAIN QUERY PLAN "
        rows = target.raw.execute(prefix + compiled.sql, compiled.bind(params)).fetchall()
        text = "\n".join(str(r[0]) if target.postgres else str(r[-1]) for r in rows)
        plans[name] = compiled.sql.strip() + "\n--\n" + text
    return plans


def bench_page(config: Config, target: Target) -> list[Result]:
    small, large = config.page_sizes
    tenant = f"t{(config.page_tenants // 2):03d}"
    raw_sql = target.sql(PAGE)
    figures: dict[int, tuple[list[float], list[float]]] = {}
    plans: dict[int, dict[str, str]] = {}
    with target.stores() as stores:
        loaded = 0
        for size in (small, large):
            _load_runs(target, size - loaded, config.page_tenants, loaded, bulk=loaded > 0)
            loaded = size

            def ours() -> Any:
                return stores.job_runs.list(tenant, data.ENV, limit=100)

            def base() -> Any:
                docs = target.raw.execute(raw_sql, (tenant, data.ENV)).fetchall()
                return [JobRun.model_validate_json(d[0]) for d in docs]

            check([r.job_id for r in ours()] == [r.job_id for r in base()], "pages differ")
            figures[size] = compare(ours, base, config)
            plans[size] = _explain(target, stores, tenant)
    results = []
    for size in (small, large):
        result = Result(
            "",
            f"page of 100 runs newest first, {size:,} rows / {config.page_tenants} tenants, {target.label}",
            "latency",
            "<= 1.3",
            1.3,
            baseline_name=f"the same page by raw {target.label} SQL + model_validate_json of 100 documents",
            details={"explain": plans[size]},
        )
        results.append(latency(result, *figures[size]))
    ours_small, ours_large = figures[small][0], figures[large][0]
    growth = Result(
        "",
        f"page at {large:,} rows vs at {small:,} rows, {target.label} (index-served)",
        "latency",
        "<= 1.5",
        1.5,
        baseline_name=f"our own page at {small:,} rows",
        note="EXPLAIN in latest.json",
    )
    results.append(latency(growth, ours_large, ours_small))
    return results


# -- 5: latest contract for a dataset -------------------------------------------------------------


def bench_latest(config: Config, target: Target) -> list[Result]:
    import sqlalchemy as sa

    from dq_stores.sql.schema import artifacts, contract_datasets

    with target.stores() as stores:
        rows, links = data.contract_rows(TENANT, config.datasets, config.versions)
        engine = sa.create_engine(target.url, connect_args=_search_path(target))
        try:
            with engine.begin() as conn:
                conn.execute(artifacts.insert(), rows)
                conn.execute(contract_datasets.insert(), links)
                conn.exec_driver_sql("ANALYZE")
        finally:
            engine.dispose()
        pick = config.datasets // 2
        dataset_type, contract_id = f"dataset-{pick:03d}", f"contract-{pick:03d}"
        latest = f"1.{config.versions - 1}.0"
        raw = target.raw
        q = target.sql(GET_ARTIFACT)
        key = (TENANT, data.ENV, "contracts", contract_id, latest)

        def ours() -> Any:
            return stores.contracts.get_latest_for_dataset(TENANT, data.ENV, dataset_type)

        def base() -> Any:
            return DataContract.model_validate_json(raw.execute(q, key).fetchone()[0])

        found = ours()
        check(found is not None and found.version == latest, f"latest is not {latest}")
        check(found == base(), "ours and raw read different contracts")
        result = Result(
            "",
            f"get_latest_for_dataset, {config.datasets} datasets x {config.versions} versions, {target.label}",
            "latency",
            "<= 2",
            2.0,
            baseline_name=f"raw {target.label} SELECT of that contract by primary key + model_validate_json",
        )
        return [latency(result, *compare(ours, base, config))]


def _search_path(target: Target) -> dict[str, Any]:
    schema = target.options.get("schema")
    return {"options": f"-csearch_path={schema}"} if schema else {}


# -- 1e: get under row-level security -------------------------------------------------------------


def bench_rls_get(config: Config, services: Services) -> list[Result]:
    """One job-run get through stores in row-level-security mode (application role, every call
    scoped by the database) against the same get through plain stores on the same schema."""
    import psycopg

    from dq_stores.sql.engine import create_sql_engine
    from dq_stores.sql.rls import create_app_role, enable_row_level_security

    assert services.pg_dsn is not None
    assert services.pg_url is not None
    role = f"dqbench_app_{uuid.uuid4().hex[:8]}"
    with pg_schema(services, "rls") as schema:
        owner = create_sql_engine(services.pg_url, schema=schema)
        try:
            create_app_role(owner, role, password="bench-only")
            enable_row_level_security(owner, app_role=role)
        finally:
            owner.dispose()
        from sqlalchemy.engine import make_url

        app_url = (
            make_url(services.pg_url)
            .set(username=role, password="bench-only")
            .render_as_string(hide_password=False)
        )
        try:
            with (
                open_stores(services.pg_url, schema=schema, use_env=False) as plain,
                open_stores(app_url, schema=schema, row_level_security=True, use_env=False) as rls,
                open_stores(
                    app_url, schema=schema, row_level_security=True, rls_session_scope=True, use_env=False
                ) as rls_session,
            ):
                run = data.job_run(TENANT, "run-get")
                plain.job_runs.put(run)

                def base() -> Any:
                    return plain.job_runs.get(TENANT, data.ENV, run.job_id)

                results = []
                for row, what, stores in (
                    ("1e", "row-level security (scope sent with each call)", rls),
                    ("1f", "row-level security, rls_session_scope (direct connections)", rls_session),
                ):

                    def ours(stores: Any = stores) -> Any:
                        return stores.job_runs.get(TENANT, data.ENV, run.job_id)

                    check(ours() == base(), "RLS and plain stores read different runs")
                    result = Result(
                        row,
                        f"get one job run, Postgres, {what}",
                        "latency",
                        "<= 2",
                        2.0,
                        baseline_name="the same get through plain stores (row 1a's path)",
                    )
                    results.append(latency(result, *compare(ours, base, config)))
                return results
        finally:
            with psycopg.connect(services.pg_dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')


# -- all of them ----------------------------------------------------------------------------------


def run_all(config: Config, services: Services, only: set[str] | None = None) -> Iterator[Result]:
    """Rows 1-5, Postgres first then SQLite; ids are the row number plus a letter."""
    benches: list[tuple[str, str, Callable[[Config, Target], list[Result]]]] = [
        ("1", "get", bench_get),
        ("2", "put", bench_put),
        ("3", "bulk", bench_bulk),
        ("4", "page", bench_page),
        ("5", "latest", bench_latest),
    ]
    for row, label, bench in benches:
        if only is not None and row not in only:
            continue
        letters = iter("abcdefgh")
        for db in ("Postgres", "SQLite"):
            if db == "Postgres" and not services.pg_dsn:
                yield skipped(
                    f"{row}{next(letters)}", f"{label}, Postgres", "latency", "", services.pg_reason
                )
                continue
            context = postgres(services, label) if db == "Postgres" else sqlite_file()
            with context as target:
                results = bench(config, target)
            for result in results:
                result.id = f"{row}{next(letters)}"
                yield result
        if row == "1":
            if services.pg_dsn:
                yield from bench_rls_get(config, services)
            else:
                yield skipped(
                    "1e", "get one job run, Postgres, row-level security", "latency", "", services.pg_reason
                )
