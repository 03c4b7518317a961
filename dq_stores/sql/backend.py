"""The SQL stores: all four kinds on SQLAlchemy Core, for SQLite (embedded, memory) and Postgres.

Every query lives here once; the dialects differ only in the upsert construct and in how a JSON
document is bound and read (JSONB on Postgres, text on SQLite) and how tag containment is tested
(``@>`` on a GIN-indexed JSONB column on Postgres, ``json_each`` on SQLite). Each put is one
transaction; every list is one keyset-paginated query served by an index.

The hot paths - get by key, latest for a dataset, put of a job run, one page of runs - are single
statements built once (``PreparedQuery``, bound by name) and run through ``SqlEngine.fetch`` /
``execute``: compiled once per dialect, one round trip, no per-call statement construction.
"""

from __future__ import annotations

import builtins
import functools
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from dq_stores.base import (
    ActionProfileStore,
    ContractStore,
    JobDefinitionStore,
    JobRunStore,
    Revision,
    RunFilters,
    StoredDoc,
    VersionedStore,
    VersionFilters,
    encode_cursor,
    parse_sortable_time,
    sortable_time,
)
from dq_stores.canonical import canonical_json, sha256_hex
from dq_stores.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidArtifactError,
    StoreNotFoundError,
)
from dq_stores.kinds import ArtifactIndex, RunIndex
from dq_stores.models import JobRun, JobRunStatus
from dq_stores.models.job_runs import allowed_previous, check_transition
from dq_stores.payloads import PayloadStore
from dq_stores.registry import Stores
from dq_stores.scope import Scope
from dq_stores.sql.engine import PreparedQuery, SqlEngine, create_sql_engine
from dq_stores.sql.migrate import ensure_schema, new_store_id
from dq_stores.sql.schema import (
    STORE_ID,
    artifact_revisions,
    artifacts,
    contract_datasets,
    job_run_results,
    job_runs,
    store_info,
)

__all__ = [
    "SqlActionProfileStore",
    "SqlContractStore",
    "SqlJobDefinitionStore",
    "SqlJobRunStore",
    "connect_sql",
    "open_sql_stores",
]

A = artifacts.c
R = job_runs.c
D = contract_datasets.c


def _param(name: str, column: sa.ColumnElement[Any]) -> sa.BindParameter[Any]:
    """A named placeholder typed like ``column`` (so timestamps get the column's processing)."""
    return sa.bindparam(name, type_=column.type)


def _one_of(column: sa.ColumnElement[Any], values: Sequence[str]) -> sa.ColumnElement[bool]:
    # Literal binds, one per value: an IN list of plain values would be an "expanding" parameter
    # that a statement compiled once cannot hold.
    return column.in_([sa.literal(v, column.type) for v in values]) if values else sa.false()


_RUN_KEY = sa.and_(
    R.tenant == _param("tenant", R.tenant),
    R.environment == _param("environment", R.environment),
    R.job_id == _param("job_id", R.job_id),
)
_GET_RUN = PreparedQuery(sa.select(R.document, R.etag, R.content_hash).where(_RUN_KEY))
_RUN_STATE = PreparedQuery(sa.select(R.status, R.etag, R.content_hash).where(_RUN_KEY))
_RUN_COLUMNS = (
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
_RUN_FIXED = frozenset({"tenant", "environment", "job_id", "recorded_at", "revision", "run_time"})
"""Columns an update of a run does not copy from the new values (``run_time``: see below)."""


@functools.cache
def _upsert_run_query(postgres: bool, status: str, keep_run_time: bool, create_only: bool) -> PreparedQuery:
    """Insert a run, or update it if its status may move to ``status`` and its content changed;
    ``RETURNING etag`` is empty when nothing was written (the caller then finds out why).
    """
    insert = postgresql.insert(job_runs) if postgres else sqlite.insert(job_runs)
    # Parameters are "new_<column>": a parameter named like a column of an INSERT / UPDATE is
    # reserved by SQLAlchemy (the non-fast path executes these statements through it too).
    stmt = insert.values({c: _param(f"new_{c}", job_runs.c[c]) for c in _RUN_COLUMNS})
    keys = ["tenant", "environment", "job_id"]
    if create_only:
        return PreparedQuery(stmt.on_conflict_do_nothing(index_elements=keys).returning(R.etag))
    excluded = stmt.excluded
    updates: dict[str, Any] = {c: excluded[c] for c in _RUN_COLUMNS if c not in _RUN_FIXED}
    updates["revision"] = R.revision + 1
    # A run without its own times keeps the time the store first recorded it.
    updates["run_time"] = R.run_time if keep_run_time else excluded.run_time
    upsert = stmt.on_conflict_do_update(
        index_elements=keys,
        set_=updates,
        where=sa.and_(
            _one_of(R.status, [s.value for s in allowed_previous(JobRunStatus(status))]),
            R.content_hash != excluded.content_hash,
        ),
    )
    return PreparedQuery(upsert.returning(R.etag))


@functools.cache
def _update_run_query(status: str, keep_run_time: bool) -> PreparedQuery:
    """Update a run whose etag is ``if_match`` (optimistic concurrency); ``RETURNING etag``."""
    values: dict[str, Any] = {
        c: _param(f"new_{c}", job_runs.c[c]) for c in _RUN_COLUMNS if c not in _RUN_FIXED
    }
    values["revision"] = R.revision + 1
    if not keep_run_time:
        values["run_time"] = _param("new_run_time", R.run_time)
    stmt = (
        job_runs.update()
        .where(
            R.tenant == _param("key_tenant", R.tenant),
            R.environment == _param("key_environment", R.environment),
            R.job_id == _param("key_job_id", R.job_id),
            R.etag == _param("if_match", R.etag),
            _one_of(R.status, [s.value for s in allowed_previous(JobRunStatus(status))]),
            R.content_hash != _param("new_content_hash", R.content_hash),
        )
        .values(values)
        .returning(R.etag)
    )
    return PreparedQuery(stmt)


_RUN_FILTER_COLUMNS = (
    "job_type",
    "status",
    "job_definition_id",
    "dataset_type",
    "dagster_run_id",
    "asset_key",
    "partition_key",
)


@functools.lru_cache(maxsize=512)
def _list_runs_query(
    scoped: bool, keyset: bool, filters: tuple[str, ...], since: bool, until: bool, limit: int
) -> PreparedQuery:
    """One page of runs newest first; one statement per shape of the request."""
    query = sa.select(R.document, R.run_time, R.job_id, R.environment).where(
        R.tenant == _param("tenant", R.tenant)
    )
    if scoped:
        query = query.where(R.environment == _param("environment", R.environment))
    if keyset:
        t = _param("after_time", R.run_time)
        job_id = _param("after_job_id", R.job_id)
        env = _param("after_environment", R.environment)
        # A row-value comparison, not the equivalent OR of ANDs: Postgres and SQLite seek the index
        # to it, so a deep page costs what the first one does (the OR form is a filter that scans
        # every earlier row of the scope, OFFSET in disguise).
        query = query.where(sa.tuple_(R.run_time, R.job_id, R.environment) < sa.tuple_(t, job_id, env))
        if scoped:
            # Implied by the line above; its two columns follow (tenant, environment) in the scope
            # index, so the planner can seek that index to it.
            query = query.where(sa.tuple_(R.run_time, R.job_id) <= sa.tuple_(t, job_id))
    for name in filters:
        query = query.where(job_runs.c[name] == _param(f"f_{name}", job_runs.c[name]))
    if since:
        query = query.where(R.run_time >= _param("since", R.run_time))
    if until:
        query = query.where(R.run_time < _param("until", R.run_time))
    # The limit is part of the SQL text, not a parameter: Postgres then plans a prepared page
    # query for the rows it really fetches.
    query = query.order_by(R.run_time.desc(), R.job_id.desc(), R.environment.desc()).limit(
        sa.literal_column(str(int(limit)), sa.Integer)
    )
    return PreparedQuery(query)


_VERSIONED_KEY = sa.and_(
    A.tenant == _param("tenant", A.tenant),
    A.environment == _param("environment", A.environment),
    A.kind == _param("kind", A.kind),
    A.artifact_id == _param("artifact_id", A.artifact_id),
)
_GET_VERSION = PreparedQuery(
    sa.select(A.document, A.etag, A.content_hash)
    .where(_VERSIONED_KEY, A.version == _param("version", A.version))
    .limit(sa.literal_column("1", sa.Integer))
)
_GET_LATEST = PreparedQuery(
    sa.select(A.document, A.etag, A.content_hash)
    .where(_VERSIONED_KEY, A.retired.is_(False))
    .order_by(A.version_key.desc(), A.updated_at.desc(), A.version.desc())
    .limit(sa.literal_column("1", sa.Integer))
)
_LATEST_FOR_DATASET = PreparedQuery(
    sa.select(A.document, A.etag, A.content_hash)
    .select_from(
        contract_datasets.join(
            artifacts,
            sa.and_(
                A.tenant == D.tenant,
                A.environment == D.environment,
                A.kind == _param("kind", A.kind),
                A.artifact_id == D.contract_id,
                A.version == D.version,
            ),
        )
    )
    .where(
        D.tenant == _param("tenant", D.tenant),
        D.environment == _param("environment", D.environment),
        D.dataset_type == _param("dataset_type", D.dataset_type),
        D.retired.is_(False),
    )
    .order_by(D.version_key.desc(), D.updated_at.desc(), D.contract_id.asc())
    .limit(sa.literal_column("1", sa.Integer))
)
_RESULT_COLUMNS = (
    "tenant",
    "environment",
    "job_id",
    "sha256",
    "size_bytes",
    "content_type",
    "body",
    "recorded_at",
)
_GET_INLINE = PreparedQuery(
    sa.select(job_run_results.c.body).where(
        job_run_results.c.tenant == _param("tenant", job_run_results.c.tenant),
        job_run_results.c.environment == _param("environment", job_run_results.c.environment),
        job_run_results.c.job_id == _param("job_id", job_run_results.c.job_id),
        job_run_results.c.sha256 == _param("sha256", job_run_results.c.sha256),
    )
)
_DELETE_INLINE = PreparedQuery(
    job_run_results.delete().where(
        job_run_results.c.tenant == _param("key_tenant", job_run_results.c.tenant),
        job_run_results.c.environment == _param("key_environment", job_run_results.c.environment),
        job_run_results.c.job_id == _param("key_job_id", job_run_results.c.job_id),
        job_run_results.c.sha256 != _param("key_keep", job_run_results.c.sha256),
    )
)


@functools.cache
def _put_inline_query(postgres: bool) -> PreparedQuery:
    """Insert a run's inline result body (keyed by its sha256: the same body twice is one row)."""
    insert = postgresql.insert(job_run_results) if postgres else sqlite.insert(job_run_results)
    stmt = insert.values({c: _param(f"new_{c}", job_run_results.c[c]) for c in _RESULT_COLUMNS})
    return PreparedQuery(
        stmt.on_conflict_do_nothing(index_elements=["tenant", "environment", "job_id", "sha256"])
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _new_etag() -> str:
    # Opaque and unique per revision: A -> B -> A gets three different etags.
    return uuid.uuid4().hex


def connect_sql(
    url_or_engine: str | Engine,
    *,
    schema: str | None = None,
    auto_upgrade: bool | None = None,
    create: bool = True,
    **engine_kwargs: Any,
) -> SqlEngine:
    """Open (or wrap) an engine and make sure its schema is usable (see ``sql.migrate``).

    ``create=False`` creates nothing (no SQLite file, no tables, no upgrade): a missing store is
    ``StoreNotFoundError``.
    """
    if isinstance(url_or_engine, Engine):
        engine, owned = url_or_engine, False
    else:
        engine, owned = create_sql_engine(url_or_engine, schema=schema, create=create, **engine_kwargs), True
    db = SqlEngine(engine, owned=owned)
    if auto_upgrade is None:
        auto_upgrade = not db.is_postgres  # embedded SQLite upgrades itself; Postgres is explicit
    for attempt in range(6):
        try:
            with db._guard(), db._translate():
                ensure_schema(engine, auto_upgrade=auto_upgrade, create=create)
            return db
        except StoreNotFoundError as exc:
            if owned:
                engine.dispose()
            where = db.url_for_messages + (f" (schema {schema})" if schema else "")
            raise StoreNotFoundError(f"no store at {where}: {exc}") from None
        except BackendUnavailableError as exc:
            # Several processes opening one fresh SQLite file at once: switching it to WAL can
            # report "locked" without waiting on the busy handler. Back off and check again.
            if db.is_postgres or "locked" not in str(exc) or attempt == 5:
                raise
            time.sleep(0.05 * 2**attempt)
    return db


class _SqlBase:
    """Holds the engine; stores opened together share one."""

    def __init__(
        self,
        url_or_engine: str | Engine | SqlEngine,
        *,
        schema: str | None = None,
        **options: Any,
    ) -> None:
        if isinstance(url_or_engine, SqlEngine):
            self._db, self._owns_db = url_or_engine, False
        else:
            self._db, self._owns_db = connect_sql(url_or_engine, schema=schema, **options), True

    def close(self) -> None:
        if self._owns_db:
            self._db.dispose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._db.url_for_messages!r})"

    # dialect helpers --------------------------------------------------------------------------
    @staticmethod
    def _doc_param(document: bytes | str) -> str:
        return document.decode("utf-8") if isinstance(document, bytes) else document

    @staticmethod
    def _doc_column(column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        # Stored as canonical JSON text; pydantic's Rust parser decodes it once.
        return column

    def _json_list_param(self, values: Sequence[str]) -> Any:
        text = canonical_json(list(values)).decode()
        if self._db.is_postgres:
            return sa.cast(sa.literal(text, sa.Text()), postgresql.JSONB())
        return sa.literal(text, sa.Text())

    def _contains_all(self, column: sa.ColumnElement[Any], values: Sequence[str]) -> sa.ColumnElement[bool]:
        if self._db.is_postgres:
            # Served by the GIN index on the column.
            return column.op("@>")(self._json_list_param(values))
        clauses = [
            sa.exists(
                sa.select(sa.literal(1))
                .select_from(sa.func.json_each(column).table_valued("value"))
                .where(sa.literal_column("value") == v)
            )
            for v in values
        ]
        return sa.and_(*clauses)

    def _insert(self, table: sa.Table) -> Any:
        return postgresql.insert(table) if self._db.is_postgres else sqlite.insert(table)


class _SqlVersioned(_SqlBase, VersionedStore[Any]):
    def _list_scopes(self, tenant: str | None, environment: str | None) -> builtins.list[Scope]:
        return list_sql_scopes(self._db, tenant, environment, [self.kind.name])

    def _pk(self, scope: Scope, artifact_id: str, version: str) -> sa.ColumnElement[bool]:
        return sa.and_(
            A.tenant == scope.tenant,
            A.environment == scope.environment,
            A.kind == self.kind.name,
            A.artifact_id == artifact_id,
            A.version == version,
        )

    def _put(
        self,
        scope: Scope,
        index: ArtifactIndex,
        document: bytes,
        content_hash: str,
        *,
        if_match: str | None,
        create_only: bool,
    ) -> str:
        label = f"{self.kind.label} {index.artifact_id}@{index.version} in {scope}"
        with self._db.write() as conn:
            query = sa.select(A.revision, A.etag, A.content_hash).where(
                self._pk(scope, index.artifact_id, index.version)
            )
            if self._db.is_postgres:
                query = query.with_for_update()
            current = conn.execute(query).first()
            now = _now()
            etag = _new_etag()
            values: dict[str, Any] = {
                "version_key": index.version_key,
                "name": index.name,
                "status": index.status,
                "retired": index.retired,
                "tags": self._json_list_param(index.tags),
                "action_types": self._json_list_param(index.action_types),
                "trigger_type": index.trigger_type,
                "etag": etag,
                "content_hash": content_hash,
                "document": self._doc_param(document),
                "updated_at": now,
            }
            if current is None:
                if if_match is not None:
                    raise ConflictError(f"{label} does not exist; if_match={if_match!r} cannot hold")
                revision = 1
                conn.execute(
                    artifacts.insert().values(
                        tenant=scope.tenant,
                        environment=scope.environment,
                        kind=self.kind.name,
                        artifact_id=index.artifact_id,
                        version=index.version,
                        revision=revision,
                        created_at=now,
                        **values,
                    )
                )
            else:
                if create_only:
                    raise ConflictError(f"{label} already exists (create_only)")
                if if_match is not None and if_match != current.etag:
                    raise ConflictError(f"{label} changed since etag {if_match!r} (now {current.etag!r})")
                if current.content_hash == content_hash:
                    return str(current.etag)
                revision = current.revision + 1
                conn.execute(
                    artifacts.update()
                    .where(self._pk(scope, index.artifact_id, index.version))
                    .values(revision=revision, **values)
                )
            conn.execute(
                artifact_revisions.insert().values(
                    tenant=scope.tenant,
                    environment=scope.environment,
                    kind=self.kind.name,
                    artifact_id=index.artifact_id,
                    version=index.version,
                    revision=revision,
                    etag=etag,
                    content_hash=content_hash,
                    document=self._doc_param(document),
                    recorded_at=now,
                )
            )
            self._after_write(conn, scope, index, now)
            return etag

    def _after_write(self, conn: Connection, scope: Scope, index: ArtifactIndex, now: datetime) -> None:
        """Kind-specific side tables (contracts keep a dataset-type index)."""

    def _after_delete(self, conn: Connection, scope: Scope, artifact_id: str, version: str | None) -> None:
        """Kind-specific side tables."""

    def _get(self, scope: Scope, artifact_id: str, version: str | None) -> StoredDoc | None:
        params = {
            "tenant": scope.tenant,
            "environment": scope.environment,
            "kind": self.kind.name,
            "artifact_id": artifact_id,
        }
        if version is None:
            rows = self._db.fetch(_GET_LATEST, params)
        else:
            rows = self._db.fetch(_GET_VERSION, {**params, "version": version})
        return StoredDoc(*rows[0]) if rows else None

    def _list(
        self, scope: Scope, limit: int, after: builtins.list[Any] | None, filters: VersionFilters
    ) -> tuple[builtins.list[bytes | str], str | None]:
        query = sa.select(self._doc_column(A.document), A.artifact_id, A.version_key, A.version).where(
            A.tenant == scope.tenant, A.environment == scope.environment, A.kind == self.kind.name
        )
        if after is not None:
            aid, vkey, ver = (str(v) for v in after)
            query = query.where(
                sa.or_(
                    A.artifact_id > aid,
                    sa.and_(A.artifact_id == aid, A.version_key < vkey),
                    sa.and_(A.artifact_id == aid, A.version_key == vkey, A.version > ver),
                )
            )
        query = self._apply_filters(query, scope, filters)
        query = query.order_by(A.artifact_id.asc(), A.version_key.desc(), A.version.asc()).limit(limit + 1)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = encode_cursor([rows[-1][1], rows[-1][2], rows[-1][3]]) if more else None
        return [r[0] for r in rows], cursor

    def _apply_filters(self, query: Any, scope: Scope, filters: VersionFilters) -> Any:
        if filters.artifact_id is not None:
            query = query.where(A.artifact_id == filters.artifact_id)
        if filters.status is not None:
            query = query.where(A.status == filters.status)
        if filters.trigger_type is not None:
            query = query.where(A.trigger_type == filters.trigger_type)
        if filters.tags:
            query = query.where(self._contains_all(A.tags, filters.tags))
        if filters.action_type is not None:
            query = query.where(self._contains_all(A.action_types, [filters.action_type]))
        if filters.dataset_type is not None:
            D = contract_datasets.c
            query = query.where(
                sa.exists(
                    sa.select(sa.literal(1)).where(
                        D.tenant == scope.tenant,
                        D.environment == scope.environment,
                        D.contract_id == A.artifact_id,
                        D.version == A.version,
                        D.dataset_type == filters.dataset_type,
                    )
                )
            )
        return query

    def _delete(self, scope: Scope, artifact_id: str, version: str | None, if_match: str | None) -> bool:
        where_current = sa.and_(
            A.tenant == scope.tenant,
            A.environment == scope.environment,
            A.kind == self.kind.name,
            A.artifact_id == artifact_id,
        )
        H = artifact_revisions.c
        where_history = sa.and_(
            H.tenant == scope.tenant,
            H.environment == scope.environment,
            H.kind == self.kind.name,
            H.artifact_id == artifact_id,
        )
        if version is not None:
            where_current = sa.and_(where_current, A.version == version)
            where_history = sa.and_(where_history, H.version == version)
        with self._db.write() as conn:
            if if_match is not None:
                current = conn.execute(sa.select(A.etag).where(where_current)).scalar()
                if current is None or current != if_match:
                    raise ConflictError(
                        f"{self.kind.label} {artifact_id}@{version} in {scope} does not match etag {if_match!r}"
                    )
            deleted = conn.execute(artifacts.delete().where(where_current)).rowcount
            conn.execute(artifact_revisions.delete().where(where_history))
            self._after_delete(conn, scope, artifact_id, version)
        return bool(deleted)

    def _history(self, scope: Scope, artifact_id: str, version: str) -> builtins.list[Revision]:
        H = artifact_revisions.c
        query = (
            sa.select(H.revision, H.etag, H.content_hash, H.recorded_at)
            .where(
                H.tenant == scope.tenant,
                H.environment == scope.environment,
                H.kind == self.kind.name,
                H.artifact_id == artifact_id,
                H.version == version,
            )
            .order_by(H.revision.asc())
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [Revision(artifact_id, version, r[0], r[1], r[2], r[3]) for r in rows]

    def _get_revision(
        self, scope: Scope, artifact_id: str, version: str, revision: int
    ) -> bytes | str | None:
        H = artifact_revisions.c
        query = sa.select(self._doc_column(H.document)).where(
            H.tenant == scope.tenant,
            H.environment == scope.environment,
            H.kind == self.kind.name,
            H.artifact_id == artifact_id,
            H.version == version,
            H.revision == revision,
        )
        with self._db.read() as conn:
            return conn.execute(query).scalar()


class SqlContractStore(_SqlVersioned, ContractStore):
    """Data contracts on SQLite / Postgres, with a dataset-type index for latest lookups."""

    def _after_write(self, conn: Connection, scope: Scope, index: ArtifactIndex, now: datetime) -> None:
        self._after_delete(conn, scope, index.artifact_id, index.version)
        if index.dataset_types:
            conn.execute(
                contract_datasets.insert(),
                [
                    {
                        "tenant": scope.tenant,
                        "environment": scope.environment,
                        "contract_id": index.artifact_id,
                        "version": index.version,
                        "dataset_type": dataset_type,
                        "version_key": index.version_key,
                        "retired": index.retired,
                        "updated_at": now,
                    }
                    for dataset_type in index.dataset_types
                ],
            )

    def _after_delete(self, conn: Connection, scope: Scope, artifact_id: str, version: str | None) -> None:
        D = contract_datasets.c
        where = sa.and_(
            D.tenant == scope.tenant, D.environment == scope.environment, D.contract_id == artifact_id
        )
        if version is not None:
            where = sa.and_(where, D.version == version)
        conn.execute(contract_datasets.delete().where(where))

    def _get_latest_for_dataset(self, scope: Scope, dataset_type: str) -> StoredDoc | None:
        rows = self._db.fetch(
            _LATEST_FOR_DATASET,
            {
                "tenant": scope.tenant,
                "environment": scope.environment,
                "kind": self.kind.name,
                "dataset_type": dataset_type,
            },
        )
        return StoredDoc(*rows[0]) if rows else None


class SqlJobDefinitionStore(_SqlVersioned, JobDefinitionStore):
    """Job definitions / checkpoints on SQLite / Postgres."""


class SqlActionProfileStore(_SqlVersioned, ActionProfileStore):
    """Action profiles on SQLite / Postgres."""


class SqlJobRunStore(_SqlBase, JobRunStore):
    """Job runs on SQLite / Postgres: single-statement upsert on the common path; small results
    inline in ``dq_job_run_results``.
    """

    supports_inline_results = True
    _identity: str | None = None

    def _list_scopes(self, tenant: str | None, environment: str | None) -> builtins.list[Scope]:
        return list_sql_scopes(self._db, tenant, environment, ["job_runs"])

    def _store_identity(self, create: bool) -> str | None:
        if self._identity is not None:
            return self._identity
        with self._db.write() if create else self._db.read() as conn:
            if not sa.inspect(conn).has_table(store_info.name):
                # An embedded store at an older revision opened read-only: no identity yet.
                return None
            found = conn.execute(sa.select(store_info.c.value).where(store_info.c.name == STORE_ID)).scalar()
            if found is None and create:
                # Normally written by the schema's creation or migration; a deleted row is
                # recreated, first writer wins.
                conn.execute(
                    self._insert(store_info)
                    .values(name=STORE_ID, value=new_store_id())
                    .on_conflict_do_nothing(index_elements=["name"])
                )
                found = conn.execute(
                    sa.select(store_info.c.value).where(store_info.c.name == STORE_ID)
                ).scalar()
        self._identity = str(found) if found is not None else None
        return self._identity

    def _put_inline(self, scope: Scope, job_id: str, body: bytes, sha256: str, content_type: str) -> None:
        self._db.execute(
            _put_inline_query(self._db.is_postgres),
            {
                "new_tenant": scope.tenant,
                "new_environment": scope.environment,
                "new_job_id": job_id,
                "new_sha256": sha256,
                "new_size_bytes": len(body),
                "new_content_type": content_type,
                "new_body": body,
                "new_recorded_at": _now(),
            },
        )

    def _get_inline(self, scope: Scope, job_id: str, sha256: str) -> bytes | None:
        rows = self._db.fetch(
            _GET_INLINE,
            {"tenant": scope.tenant, "environment": scope.environment, "job_id": job_id, "sha256": sha256},
        )
        return bytes(rows[0][0]) if rows else None

    def _delete_inline(self, scope: Scope, job_id: str, keep: str | None = None) -> None:
        self._db.execute(
            _DELETE_INLINE,
            {
                "key_tenant": scope.tenant,
                "key_environment": scope.environment,
                "key_job_id": job_id,
                "key_keep": keep or "",
            },
        )

    def _run_values(
        self, scope: Scope, index: RunIndex, document: bytes, content_hash: str, etag: str, now: datetime
    ) -> dict[str, Any]:
        return {
            "tenant": scope.tenant,
            "environment": scope.environment,
            "job_id": index.job_id,
            "job_type": index.job_type,
            "status": index.status,
            "job_definition_id": index.job_definition_id,
            "dataset_type": index.dataset_type,
            "contract_id": index.contract_id,
            "contract_version": index.contract_version,
            "dagster_run_id": index.dagster_run_id,
            "asset_key": index.asset_key,
            "partition_key": index.partition_key,
            "run_time": index.run_time or now,
            "recorded_at": now,
            "updated_at": now,
            "revision": 1,
            "etag": etag,
            "content_hash": content_hash,
            "document": self._doc_param(document),
        }

    def _pk(self, scope: Scope, job_id: str) -> sa.ColumnElement[bool]:
        return sa.and_(R.tenant == scope.tenant, R.environment == scope.environment, R.job_id == job_id)

    def _put_run(
        self,
        scope: Scope,
        index: RunIndex,
        document: bytes,
        content_hash: str,
        *,
        if_match: str | None,
        create_only: bool,
    ) -> str:
        now = _now()
        values = self._run_values(scope, index, document, content_hash, _new_etag(), now)
        keep_run_time = index.run_time is None
        params = {f"new_{k}": v for k, v in values.items()}
        if if_match is None:
            query = _upsert_run_query(self._db.is_postgres, index.status, keep_run_time, create_only)
            rows = self._db.execute(query, params)
        else:
            params.update(key_tenant=scope.tenant, key_environment=scope.environment, key_job_id=index.job_id)
            params["if_match"] = if_match
            rows = self._db.execute(_update_run_query(index.status, keep_run_time), params)
        if rows:
            return str(rows[0][0])
        # Slow path: find out why nothing was written.
        state = self._db.fetch(
            _RUN_STATE, {"tenant": scope.tenant, "environment": scope.environment, "job_id": index.job_id}
        )
        label = f"job run {index.job_id} in {scope}"
        if not state:
            raise ConflictError(f"{label} does not exist; if_match={if_match!r} cannot hold")
        status, etag, _ = state[0]
        if create_only:
            raise ConflictError(f"{label} already exists (create_only)")
        if if_match is not None and etag != if_match:
            raise ConflictError(f"{label} changed since etag {if_match!r} (now {etag!r})")
        if not check_transition(JobRunStatus(status), JobRunStatus(index.status)):
            raise InvalidArtifactError(
                f"{label}: status may not change from {status} to {index.status}", field="status"
            )
        return str(etag)  # identical content: a no-op

    def put_many(self, runs: Sequence[JobRun]) -> builtins.list[str]:
        """Upsert many runs in one transaction: one read of the existing statuses (to check
        transitions; a forbidden one raises ``InvalidArtifactError`` and nothing is written), then
        the changed runs in bulk (Postgres: ``COPY`` into a temporary table and one
        ``INSERT ... SELECT ... ON CONFLICT``; SQLite: multi-row upserts). A job id given twice:
        the later run wins.
        """
        if not runs:
            return []
        prepared = []
        for run in runs:
            model = self._coerce(run)
            scope = Scope(model.tenant_id, model.environment)
            document = canonical_json(model)
            prepared.append((scope, RunIndex.of(model), document, sha256_hex(document)))
        now = _now()
        with self._db.write() as conn:
            keys = [(s.tenant, s.environment, i.job_id) for s, i, _, _ in prepared]
            existing = self._existing_runs(conn, keys)
            result: builtins.list[str] = []
            to_write: dict[tuple[str, str, str], dict[str, Any]] = {}
            for (scope, index, document, content_hash), key in zip(prepared, keys, strict=True):
                old = existing.get(key)
                if old is not None:
                    if not check_transition(JobRunStatus(old[0]), JobRunStatus(index.status)):
                        raise InvalidArtifactError(
                            f"job run {index.job_id} in {scope}: status may not change from {old[0]} "
                            f"to {index.status}",
                            field="status",
                        )
                    if old[2] == content_hash:
                        result.append(old[1])
                        continue
                etag = _new_etag()
                to_write[key] = self._run_values(scope, index, document, content_hash, etag, now)
                existing[key] = (index.status, etag, content_hash)
                result.append(etag)
            rows = list(to_write.values())
            if rows and self._db.is_postgres:
                self._copy_upsert(conn, rows)
            else:
                for chunk in _chunks(rows, 1000):
                    self._bulk_upsert(conn, chunk)
        return result

    def _existing_runs(
        self, conn: Connection, keys: Sequence[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], tuple[str, str, str]]:
        """(status, etag, content hash) of the runs among ``keys`` that exist."""
        found: dict[tuple[str, str, str], tuple[str, str, str]] = {}
        if self._db.is_postgres:
            # One round trip: the keys travel as three arrays and are joined to the primary key.
            rows = conn.exec_driver_sql(
                "SELECT r.tenant, r.environment, r.job_id, r.status, r.etag, r.content_hash "
                "FROM unnest(%(t)s::text[], %(e)s::text[], %(j)s::text[]) AS k(tenant, environment, job_id) "
                'JOIN dq_job_runs r ON r.tenant = k.tenant COLLATE "C" '
                'AND r.environment = k.environment COLLATE "C" AND r.job_id = k.job_id COLLATE "C"',
                {"t": [k[0] for k in keys], "e": [k[1] for k in keys], "j": [k[2] for k in keys]},
            ).all()
            return {(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows}
        for chunk in _chunks(keys, 500):
            rows = conn.execute(
                sa.select(R.tenant, R.environment, R.job_id, R.status, R.etag, R.content_hash).where(
                    sa.tuple_(R.tenant, R.environment, R.job_id).in_(chunk)
                )
            ).all()
            found.update({(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows})
        return found

    def _copy_upsert(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Postgres bulk path: ``COPY`` into a session temporary table (emptied at commit), then
        one upsert from it, in the caller's transaction.
        """
        columns = ", ".join(_RUN_COLUMNS)
        updates = ", ".join(
            f"{c} = excluded.{c}"
            for c in _RUN_COLUMNS
            if c not in {"tenant", "environment", "job_id", "recorded_at", "revision"}
        )
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cur:
            cur.execute(
                "CREATE TEMPORARY TABLE IF NOT EXISTS dq_put_many "
                "(LIKE dq_job_runs INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            with cur.copy(f"COPY pg_temp.dq_put_many ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[c] for c in _RUN_COLUMNS])
            cur.execute(
                f"INSERT INTO dq_job_runs ({columns}) SELECT {columns} FROM pg_temp.dq_put_many "
                f"ON CONFLICT (tenant, environment, job_id) DO UPDATE SET {updates}, "
                "revision = dq_job_runs.revision + 1"
            )

    def _bulk_upsert(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        stmt = self._insert(job_runs)
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant", "environment", "job_id"],
            set_={
                **{
                    c: excluded[c]
                    for c in rows[0]
                    if c not in {"tenant", "environment", "job_id", "recorded_at", "revision"}
                },
                "revision": R.revision + 1,
            },
        )
        conn.execute(stmt, rows)

    def _get_run(self, scope: Scope, job_id: str) -> StoredDoc | None:
        rows = self._db.fetch(
            _GET_RUN, {"tenant": scope.tenant, "environment": scope.environment, "job_id": job_id}
        )
        return StoredDoc(*rows[0]) if rows else None

    def _list_runs(
        self,
        tenant: str,
        environment: str | None,
        limit: int,
        after: builtins.list[Any] | None,
        filters: RunFilters,
    ) -> tuple[builtins.list[bytes | str], str | None]:
        params: dict[str, Any] = {"tenant": tenant}
        if environment is not None:
            params["environment"] = environment
        if after is not None:
            params["after_time"] = parse_sortable_time(after[0])
            params["after_job_id"] = str(after[1])
            params["after_environment"] = str(after[2])
        present = []
        for name in _RUN_FILTER_COLUMNS:
            value = getattr(filters, name)
            if value is not None:
                present.append(name)
                params[f"f_{name}"] = value
        if filters.since is not None:
            params["since"] = filters.since
        if filters.until is not None:
            params["until"] = filters.until
        query = _list_runs_query(
            environment is not None,
            after is not None,
            tuple(present),
            filters.since is not None,
            filters.until is not None,
            limit + 1,
        )
        rows = self._db.fetch(query, params)
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = encode_cursor([sortable_time(rows[-1][1]), rows[-1][2], rows[-1][3]]) if more else None
        return [r[0] for r in rows], cursor

    def _delete_run(self, scope: Scope, job_id: str, if_match: str | None) -> bool:
        with self._db.write() as conn:
            where = self._pk(scope, job_id)
            if if_match is not None:
                current = conn.execute(sa.select(R.etag).where(where)).scalar()
                if current is None or current != if_match:
                    raise ConflictError(f"job run {job_id} in {scope} does not match etag {if_match!r}")
            deleted = bool(conn.execute(job_runs.delete().where(where)).rowcount)
            T = job_run_results.c
            conn.execute(
                job_run_results.delete().where(
                    T.tenant == scope.tenant, T.environment == scope.environment, T.job_id == job_id
                )
            )
            return deleted


def _chunks(items: Sequence[Any], size: int) -> builtins.list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _scope_query(
    table: sa.Table, tenant: str | None, environment: str | None, kind: str | None = None
) -> sa.Select[Any]:
    """Distinct (tenant, environment) of ``table``: a GROUP BY on the leading columns of its
    primary key, so an index (only) scan serves it.
    """
    c = table.c
    query = sa.select(c.tenant, c.environment)
    if kind is not None:
        query = query.where(c.kind == kind)
    if tenant is not None:
        query = query.where(c.tenant == tenant)
    if environment is not None:
        query = query.where(c.environment == environment)
    return query.group_by(c.tenant, c.environment)


def list_sql_scopes(
    db: SqlEngine, tenant: str | None, environment: str | None, kinds: Sequence[str] | None = None
) -> builtins.list[Scope]:
    """Every scope holding an artifact (of ``kinds``, default all) or a job run: one query."""
    parts: builtins.list[sa.Select[Any]] = []
    if kinds is None:
        parts.append(_scope_query(artifacts, tenant, environment))
        parts.append(_scope_query(job_runs, tenant, environment))
    else:
        for kind in kinds:
            table = job_runs if kind == "job_runs" else artifacts
            parts.append(_scope_query(table, tenant, environment, None if table is job_runs else kind))
    query: Any = parts[0] if len(parts) == 1 else sa.union(*parts)
    with db.read() as conn:
        rows = conn.execute(query).all()
    return [Scope(str(t), str(e)) for t, e in rows]


def open_sql_stores(
    url: str,
    *,
    schema: str | None = None,
    results_url: str | None = None,
    offload_threshold: int | None = None,
    results_options: dict[str, Any] | None = None,
    row_level_security: bool = False,
    create: bool = True,
    **options: Any,
) -> Stores:
    """The four SQL stores on one shared engine (``memory://``, ``sqlite:///``, ``postgresql...``).

    Large results go to ``results_url``; for an embedded SQLite file the default is the folder
    named after the database beside it (``dq.db`` -> ``dq.results/``), so two stores in one folder
    never share one. A store created before that default keeps reading the payloads it wrote to
    the former shared ``results/`` folder (read-only: nothing is written or collected there).
    Postgres has no default: results stay inline up to the offload threshold.
    ``row_level_security=True`` (Postgres) opens the stores of ``dq_stores.sql.rls``: every
    transaction is restricted to its call's scope by the database's own policies.
    ``create=False`` creates nothing (see ``connect_sql``).
    """
    from dq_stores.payloads import FilePayloadStore, open_payload_store
    from dq_stores.secrets import redact

    if row_level_security:
        from dq_stores.sql.rls import open_rls_stores

        return open_rls_stores(
            url,
            schema=schema,
            results_url=results_url,
            offload_threshold=offload_threshold,
            results_options=results_options,
            create=create,
            **options,
        )

    db = connect_sql(url, schema=schema, create=create, **options)
    legacy: builtins.list[PayloadStore] = []
    database = db.engine.url.database
    if db.dialect == "sqlite" and database not in (None, "", ":memory:"):
        from pathlib import Path

        path = Path(str(database)).expanduser().resolve()
        if results_url is None:
            results_url = path.with_name(f"{path.stem}.results").as_uri()
        former = path.parent / "results"
        if former.is_dir():
            legacy.append(FilePayloadStore(former))
    try:
        payloads = (
            open_payload_store(results_url, **(results_options or {})) if results_url is not None else None
        )
    except BaseException:
        db.dispose()
        raise
    stores = Stores(
        contracts=SqlContractStore(db),
        job_definitions=SqlJobDefinitionStore(db),
        action_profiles=SqlActionProfileStore(db),
        job_runs=SqlJobRunStore(db),
        url=redact(url),
        _scope_lister=functools.partial(list_sql_scopes, db),
    )
    stores.job_runs.configure_results(payloads, offload_threshold, legacy=legacy)
    stores.add_closer(db.dispose)
    if payloads is not None:
        stores.add_closer(payloads.close)
    return stores
