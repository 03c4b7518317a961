"""The SQL stores: all four kinds on SQLAlchemy Core, for SQLite (embedded, memory) and Postgres.

Every query lives here once; the dialects differ only in the upsert construct and in how a JSON
document is bound and read (JSONB on Postgres, text on SQLite) and how tag containment is tested
(``@>`` on a GIN-indexed JSONB column on Postgres, ``json_each`` on SQLite). Each put is one
transaction; every list is one keyset-paginated query served by an index.
"""

from __future__ import annotations

import builtins
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
from dq_stores.errors import ConflictError, InvalidArtifactError
from dq_stores.kinds import ArtifactIndex, RunIndex
from dq_stores.models import JobRun, JobRunStatus
from dq_stores.models.job_runs import allowed_previous, check_transition
from dq_stores.registry import Stores
from dq_stores.scope import Scope
from dq_stores.sql.engine import SqlEngine, create_sql_engine
from dq_stores.sql.migrate import ensure_schema
from dq_stores.sql.schema import (
    artifact_revisions,
    artifacts,
    contract_datasets,
    job_run_results,
    job_runs,
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
    **engine_kwargs: Any,
) -> SqlEngine:
    """Open (or wrap) an engine and make sure its schema is usable (see ``sql.migrate``)."""
    if isinstance(url_or_engine, Engine):
        engine, owned = url_or_engine, False
    else:
        engine, owned = create_sql_engine(url_or_engine, schema=schema, **engine_kwargs), True
    db = SqlEngine(engine, owned=owned)
    if auto_upgrade is None:
        auto_upgrade = not db.is_postgres  # embedded SQLite upgrades itself; Postgres is explicit
    with db._guard(), db._translate():
        ensure_schema(engine, auto_upgrade=auto_upgrade)
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
        query = sa.select(self._doc_column(A.document), A.etag, A.content_hash).where(
            A.tenant == scope.tenant,
            A.environment == scope.environment,
            A.kind == self.kind.name,
            A.artifact_id == artifact_id,
        )
        if version is not None:
            query = query.where(A.version == version)
        else:
            query = query.where(A.retired.is_(False)).order_by(
                A.version_key.desc(), A.updated_at.desc(), A.version.desc()
            )
        with self._db.read() as conn:
            row = conn.execute(query.limit(1)).first()
        return StoredDoc(row[0], row[1], row[2]) if row else None

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
        D = contract_datasets.c
        query = (
            sa.select(self._doc_column(A.document), A.etag, A.content_hash)
            .select_from(
                contract_datasets.join(
                    artifacts,
                    sa.and_(
                        A.tenant == D.tenant,
                        A.environment == D.environment,
                        A.kind == self.kind.name,
                        A.artifact_id == D.contract_id,
                        A.version == D.version,
                    ),
                )
            )
            .where(
                D.tenant == scope.tenant,
                D.environment == scope.environment,
                D.dataset_type == dataset_type,
                D.retired.is_(False),
            )
            .order_by(D.version_key.desc(), D.updated_at.desc(), D.contract_id.asc())
            .limit(1)
        )
        with self._db.read() as conn:
            row = conn.execute(query).first()
        return StoredDoc(row[0], row[1], row[2]) if row else None


class SqlJobDefinitionStore(_SqlVersioned, JobDefinitionStore):
    """Job definitions / checkpoints on SQLite / Postgres."""


class SqlActionProfileStore(_SqlVersioned, ActionProfileStore):
    """Action profiles on SQLite / Postgres."""


class SqlJobRunStore(_SqlBase, JobRunStore):
    """Job runs on SQLite / Postgres: single-statement upsert on the common path; small results
    inline in ``dq_job_run_results``.
    """

    supports_inline_results = True

    def _put_inline(self, scope: Scope, job_id: str, body: bytes, sha256: str, content_type: str) -> None:
        T = job_run_results.c
        values = {
            "tenant": scope.tenant,
            "environment": scope.environment,
            "job_id": job_id,
            "sha256": sha256,
            "size_bytes": len(body),
            "content_type": content_type,
            "body": body,
            "recorded_at": _now(),
        }
        stmt = self._insert(job_run_results).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant", "environment", "job_id"],
            set_={
                k: stmt.excluded[k] for k in ("sha256", "size_bytes", "content_type", "body", "recorded_at")
            },
        )
        with self._db.write() as conn:
            conn.execute(stmt)
        del T

    def _get_inline(self, scope: Scope, job_id: str) -> bytes | None:
        T = job_run_results.c
        with self._db.read() as conn:
            body = conn.execute(
                sa.select(T.body).where(
                    T.tenant == scope.tenant, T.environment == scope.environment, T.job_id == job_id
                )
            ).scalar()
        return bytes(body) if body is not None else None

    def _delete_inline(self, scope: Scope, job_id: str) -> None:
        T = job_run_results.c
        with self._db.write() as conn:
            conn.execute(
                job_run_results.delete().where(
                    T.tenant == scope.tenant, T.environment == scope.environment, T.job_id == job_id
                )
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
        etag = _new_etag()
        values = self._run_values(scope, index, document, content_hash, etag, now)
        new_status = JobRunStatus(index.status)
        with self._db.write() as conn:
            if if_match is None:
                stmt = self._insert(job_runs).values(**values)
                if create_only:
                    stmt = stmt.on_conflict_do_nothing(index_elements=["tenant", "environment", "job_id"])
                else:
                    updates = self._update_values(values, index, new_status)
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["tenant", "environment", "job_id"],
                        set_=updates,
                        where=sa.and_(
                            R.status.in_([s.value for s in allowed_previous(new_status)]),
                            R.content_hash != content_hash,
                        ),
                    )
                row = conn.execute(stmt.returning(R.etag)).first()
            else:
                stmt = (
                    job_runs.update()
                    .where(
                        self._pk(scope, index.job_id),
                        R.etag == if_match,
                        R.status.in_([s.value for s in allowed_previous(new_status)]),
                        R.content_hash != content_hash,
                    )
                    .values(**self._update_values(values, index, new_status))
                    .returning(R.etag)
                )
                row = conn.execute(stmt).first()
            if row is not None:
                return str(row[0])
            # Slow path: find out why nothing was written.
            current = conn.execute(
                sa.select(R.status, R.etag, R.content_hash).where(self._pk(scope, index.job_id))
            ).first()
        label = f"job run {index.job_id} in {scope}"
        if current is None:
            raise ConflictError(f"{label} does not exist; if_match={if_match!r} cannot hold")
        if create_only:
            raise ConflictError(f"{label} already exists (create_only)")
        if if_match is not None and current.etag != if_match:
            raise ConflictError(f"{label} changed since etag {if_match!r} (now {current.etag!r})")
        if not check_transition(JobRunStatus(current.status), new_status):
            raise InvalidArtifactError(
                f"{label}: status may not change from {current.status} to {new_status.value}", field="status"
            )
        return str(current.etag)  # identical content: a no-op

    def _update_values(
        self, values: dict[str, Any], index: RunIndex, new_status: JobRunStatus
    ) -> dict[str, Any]:
        updates = {
            k: v for k, v in values.items() if k not in {"tenant", "environment", "job_id", "recorded_at"}
        }
        updates["revision"] = R.revision + 1
        if index.run_time is None:
            updates["run_time"] = R.run_time  # keep the time the store first recorded it
        return updates

    def put_many(self, runs: Sequence[JobRun]) -> builtins.list[str]:
        """Upsert many runs in one transaction: one read of the existing statuses (to check
        transitions), then one multi-row statement per chunk.
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
        etags = [_new_etag() for _ in prepared]
        with self._db.write() as conn:
            keys = [(s.tenant, s.environment, i.job_id) for s, i, _, _ in prepared]
            existing: dict[tuple[str, str, str], tuple[str, str, str]] = {}
            for chunk in _chunks(keys, 500):
                rows = conn.execute(
                    sa.select(R.tenant, R.environment, R.job_id, R.status, R.etag, R.content_hash).where(
                        sa.tuple_(R.tenant, R.environment, R.job_id).in_(chunk)
                    )
                ).all()
                existing.update({(r[0], r[1], r[2]): (r[3], r[4], r[5]) for r in rows})
            result: builtins.list[str] = []
            rows_to_write = []
            for (scope, index, document, content_hash), etag in zip(prepared, etags, strict=True):
                key = (scope.tenant, scope.environment, index.job_id)
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
                values = self._run_values(scope, index, document, content_hash, etag, now)
                values["document"] = document.decode()
                values["tags"] = None
                rows_to_write.append(values)
                existing[key] = (index.status, etag, content_hash)
                result.append(etag)
            for chunk in _chunks(rows_to_write, 1000):
                self._bulk_upsert(conn, chunk)
        return result

    def _bulk_upsert(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            row.pop("tags", None)
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
        query = sa.select(self._doc_column(R.document), R.etag, R.content_hash).where(self._pk(scope, job_id))
        with self._db.read() as conn:
            row = conn.execute(query).first()
        return StoredDoc(row[0], row[1], row[2]) if row else None

    def _list_runs(
        self,
        tenant: str,
        environment: str | None,
        limit: int,
        after: builtins.list[Any] | None,
        filters: RunFilters,
    ) -> tuple[builtins.list[bytes | str], str | None]:
        query = sa.select(self._doc_column(R.document), R.run_time, R.job_id, R.environment).where(
            R.tenant == tenant
        )
        if environment is not None:
            query = query.where(R.environment == environment)
        if after is not None:
            t, job_id, env = parse_sortable_time(after[0]), str(after[1]), str(after[2])
            query = query.where(
                sa.or_(
                    R.run_time < t,
                    sa.and_(R.run_time == t, R.job_id < job_id),
                    sa.and_(R.run_time == t, R.job_id == job_id, R.environment < env),
                )
            )
        for column, value in (
            (R.job_type, filters.job_type),
            (R.status, filters.status),
            (R.job_definition_id, filters.job_definition_id),
            (R.dataset_type, filters.dataset_type),
            (R.dagster_run_id, filters.dagster_run_id),
            (R.asset_key, filters.asset_key),
            (R.partition_key, filters.partition_key),
        ):
            if value is not None:
                query = query.where(column == value)
        if filters.since is not None:
            query = query.where(R.run_time >= filters.since)
        if filters.until is not None:
            query = query.where(R.run_time < filters.until)
        query = query.order_by(R.run_time.desc(), R.job_id.desc(), R.environment.desc()).limit(limit + 1)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
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


def open_sql_stores(
    url: str,
    *,
    schema: str | None = None,
    results_url: str | None = None,
    offload_threshold: int | None = None,
    results_options: dict[str, Any] | None = None,
    **options: Any,
) -> Stores:
    """The four SQL stores on one shared engine (``memory://``, ``sqlite:///``, ``postgresql...``).

    Large results go to ``results_url``; for an embedded SQLite file the default is the folder
    ``results/`` beside the database file (the embedded default: SQLite + local files).
    """
    from dq_stores.payloads import open_payload_store
    from dq_stores.secrets import redact

    db = connect_sql(url, schema=schema, **options)
    if (
        results_url is None
        and db.dialect == "sqlite"
        and db.engine.url.database not in (None, "", ":memory:")
    ):
        from pathlib import Path

        results_url = (Path(str(db.engine.url.database)).expanduser().resolve().parent / "results").as_uri()
    payloads = open_payload_store(results_url, **(results_options or {})) if results_url is not None else None
    stores = Stores(
        contracts=SqlContractStore(db),
        job_definitions=SqlJobDefinitionStore(db),
        action_profiles=SqlActionProfileStore(db),
        job_runs=SqlJobRunStore(db),
        url=redact(url),
    )
    stores.job_runs.configure_results(payloads, offload_threshold)
    stores._closers.append(db.dispose)
    if payloads is not None:
        stores._closers.append(payloads.close)
    return stores
