"""Every statement of the SQL stores that is built once: the hot paths as ``PreparedQuery``
objects (compiled once per dialect, run on the fast path of ``dq_stores.sql.engine``) and the
builders of statements whose shape depends on the request (cached per shape).

Dialect-free: an upsert asks ``dq_stores.sql.dialect`` for its INSERT construct by dialect name.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from dq_stores.models import JobRunStatus
from dq_stores.models.job_runs import allowed_previous
from dq_stores.sql.dialect import dialect_named
from dq_stores.sql.engine import PreparedQuery
from dq_stores.sql.schema import artifacts, contract_datasets, job_run_results, job_runs

A = artifacts.c
R = job_runs.c
D = contract_datasets.c


def param(name: str, column: sa.ColumnElement[Any]) -> sa.BindParameter[Any]:
    """A named placeholder typed like ``column`` (so timestamps get the column's processing)."""
    return sa.bindparam(name, type_=column.type)


def one_of(column: sa.ColumnElement[Any], values: Sequence[str]) -> sa.ColumnElement[bool]:
    # Literal binds, one per value: an IN list of plain values would be an "expanding" parameter
    # that a statement compiled once cannot hold.
    return column.in_([sa.literal(v, column.type) for v in values]) if values else sa.false()


RUN_KEY = sa.and_(
    R.tenant == param("tenant", R.tenant),
    R.environment == param("environment", R.environment),
    R.job_id == param("job_id", R.job_id),
)
GET_RUN = PreparedQuery(sa.select(R.document, R.etag, R.content_hash).where(RUN_KEY))
RUN_STATE = PreparedQuery(sa.select(R.status, R.etag, R.content_hash).where(RUN_KEY))
RUN_COLUMNS = (
    "tenant",
    "environment",
    "job_id",
    "job_type",
    "status",
    "job_definition_id",
    "dataset_type",
    "contract_id",
    "contract_version",
    "dagster_run_id",
    "asset_key",
    "partition_key",
    "run_time",
    "recorded_at",
    "updated_at",
    "revision",
    "etag",
    "content_hash",
    "document",
)
RUN_FIXED = frozenset({"tenant", "environment", "job_id", "recorded_at", "revision", "run_time"})
"""Columns an update of a run does not copy from the new values (``run_time``: see below)."""


@functools.cache
def upsert_run_query(dialect: str, status: str, keep_run_time: bool, create_only: bool) -> PreparedQuery:
    """Insert a run, or update it if its status may move to ``status`` and its content changed;
    ``RETURNING etag`` is empty when nothing was written (the caller then finds out why).
    """
    insert = dialect_named(dialect).insert(job_runs)
    # Parameters are "new_<column>": a parameter named like a column of an INSERT / UPDATE is
    # reserved by SQLAlchemy (the non-fast path executes these statements through it too).
    stmt = insert.values({c: param(f"new_{c}", job_runs.c[c]) for c in RUN_COLUMNS})
    keys = ["tenant", "environment", "job_id"]
    if create_only:
        return PreparedQuery(stmt.on_conflict_do_nothing(index_elements=keys).returning(R.etag))
    excluded = stmt.excluded
    updates: dict[str, Any] = {c: excluded[c] for c in RUN_COLUMNS if c not in RUN_FIXED}
    updates["revision"] = R.revision + 1
    # A run without its own times keeps the time the store first recorded it.
    updates["run_time"] = R.run_time if keep_run_time else excluded.run_time
    upsert = stmt.on_conflict_do_update(
        index_elements=keys,
        set_=updates,
        where=sa.and_(
            one_of(R.status, [s.value for s in allowed_previous(JobRunStatus(status))]),
            R.content_hash != excluded.content_hash,
        ),
    )
    return PreparedQuery(upsert.returning(R.etag))


@functools.cache
def update_run_query(status: str, keep_run_time: bool) -> PreparedQuery:
    """Update a run whose etag is ``if_match`` (optimistic concurrency); ``RETURNING etag``."""
    values: dict[str, Any] = {c: param(f"new_{c}", job_runs.c[c]) for c in RUN_COLUMNS if c not in RUN_FIXED}
    values["revision"] = R.revision + 1
    if not keep_run_time:
        values["run_time"] = param("new_run_time", R.run_time)
    stmt = (
        job_runs.update()
        .where(
            R.tenant == param("key_tenant", R.tenant),
            R.environment == param("key_environment", R.environment),
            R.job_id == param("key_job_id", R.job_id),
            R.etag == param("if_match", R.etag),
            one_of(R.status, [s.value for s in allowed_previous(JobRunStatus(status))]),
            R.content_hash != param("new_content_hash", R.content_hash),
        )
        .values(values)
        .returning(R.etag)
    )
    return PreparedQuery(stmt)


RUN_FILTER_COLUMNS = (
    "job_type",
    "status",
    "job_definition_id",
    "dataset_type",
    "dagster_run_id",
    "asset_key",
    "partition_key",
)


@functools.lru_cache(maxsize=512)
def list_runs_query(
    scoped: bool, keyset: bool, filters: tuple[str, ...], since: bool, until: bool, limit: int
) -> PreparedQuery:
    """One page of runs newest first; one statement per shape of the request."""
    query = sa.select(R.document, R.run_time, R.job_id, R.environment).where(
        R.tenant == param("tenant", R.tenant)
    )
    if scoped:
        query = query.where(R.environment == param("environment", R.environment))
    if keyset:
        t = param("after_time", R.run_time)
        job_id = param("after_job_id", R.job_id)
        env = param("after_environment", R.environment)
        # A row-value comparison, not the equivalent OR of ANDs: Postgres and SQLite seek the index
        # to it, so a deep page costs what the first one does (the OR form is a filter that scans
        # every earlier row of the scope, OFFSET in disguise).
        query = query.where(sa.tuple_(R.run_time, R.job_id, R.environment) < sa.tuple_(t, job_id, env))
        if scoped:
            # Implied by the line above; its two columns follow (tenant, environment) in the scope
            # index, so the planner can seek that index to it.
            query = query.where(sa.tuple_(R.run_time, R.job_id) <= sa.tuple_(t, job_id))
    for name in filters:
        query = query.where(job_runs.c[name] == param(f"f_{name}", job_runs.c[name]))
    if since:
        query = query.where(R.run_time >= param("since", R.run_time))
    if until:
        query = query.where(R.run_time < param("until", R.run_time))
    # The limit is part of the SQL text, not a parameter: Postgres then plans a prepared page
    # query for the rows it really fetches.
    query = query.order_by(R.run_time.desc(), R.job_id.desc(), R.environment.desc()).limit(
        sa.literal_column(str(int(limit)), sa.Integer)
    )
    return PreparedQuery(query)


VERSIONED_KEY = sa.and_(
    A.tenant == param("tenant", A.tenant),
    A.environment == param("environment", A.environment),
    A.kind == param("kind", A.kind),
    A.artifact_id == param("artifact_id", A.artifact_id),
)
GET_VERSION = PreparedQuery(
    sa.select(A.document, A.etag, A.content_hash)
    .where(VERSIONED_KEY, A.version == param("version", A.version))
    .limit(sa.literal_column("1", sa.Integer))
)
GET_LATEST = PreparedQuery(
    sa.select(A.document, A.etag, A.content_hash)
    .where(VERSIONED_KEY, A.retired.is_(False))
    .order_by(A.version_key.desc(), A.updated_at.desc(), A.version.desc())
    .limit(sa.literal_column("1", sa.Integer))
)
LATEST_FOR_DATASET = PreparedQuery(
    sa.select(A.document, A.etag, A.content_hash)
    .select_from(
        contract_datasets.join(
            artifacts,
            sa.and_(
                A.tenant == D.tenant,
                A.environment == D.environment,
                A.kind == param("kind", A.kind),
                A.artifact_id == D.contract_id,
                A.version == D.version,
            ),
        )
    )
    .where(
        D.tenant == param("tenant", D.tenant),
        D.environment == param("environment", D.environment),
        D.dataset_type == param("dataset_type", D.dataset_type),
        D.retired.is_(False),
    )
    .order_by(D.version_key.desc(), D.updated_at.desc(), D.contract_id.asc())
    .limit(sa.literal_column("1", sa.Integer))
)
RESULT_COLUMNS = (
    "tenant",
    "environment",
    "job_id",
    "sha256",
    "size_bytes",
    "content_type",
    "body",
    "recorded_at",
)
GET_INLINE = PreparedQuery(
    sa.select(job_run_results.c.body).where(
        job_run_results.c.tenant == param("tenant", job_run_results.c.tenant),
        job_run_results.c.environment == param("environment", job_run_results.c.environment),
        job_run_results.c.job_id == param("job_id", job_run_results.c.job_id),
        job_run_results.c.sha256 == param("sha256", job_run_results.c.sha256),
    )
)
DELETE_INLINE = PreparedQuery(
    job_run_results.delete().where(
        job_run_results.c.tenant == param("key_tenant", job_run_results.c.tenant),
        job_run_results.c.environment == param("key_environment", job_run_results.c.environment),
        job_run_results.c.job_id == param("key_job_id", job_run_results.c.job_id),
        job_run_results.c.sha256 != param("key_keep", job_run_results.c.sha256),
    )
)


@functools.cache
def put_inline_query(dialect: str) -> PreparedQuery:
    """Insert a run's inline result body (keyed by its sha256: the same body twice is one row)."""
    insert = dialect_named(dialect).insert(job_run_results)
    stmt = insert.values({c: param(f"new_{c}", job_run_results.c[c]) for c in RESULT_COLUMNS})
    return PreparedQuery(
        stmt.on_conflict_do_nothing(index_elements=["tenant", "environment", "job_id", "sha256"])
    )


def now() -> datetime:
    return datetime.now(UTC)


def new_etag() -> str:
    # Opaque and unique per revision: A -> B -> A gets three different etags.
    return uuid.uuid4().hex
