"""Contracts, job definitions and action profiles on SQLite / Postgres: one implementation of
the versioned store primitives (``dq_stores.base.VersionedStore``) over ``dq_artifacts`` (current
revisions), ``dq_artifact_revisions`` (history) and, for contracts, ``dq_contract_datasets``.

Each put is one transaction that locks the row it reads (``dialect.for_update``); gets and latest
lookups are single prepared statements on the fast path; lists are keyset-paginated by an index.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dq_stores.base import (
    ActionProfileStore,
    ContractStore,
    JobDefinitionStore,
    Revision,
    StoredDoc,
    VersionedStore,
    VersionFilters,
    WriteCheck,
)
from dq_stores.inputs import encode_cursor
from dq_stores.kinds import ArtifactIndex
from dq_stores.scope import Scope
from dq_stores.sql import queries as q
from dq_stores.sql.common import SqlStoreBase
from dq_stores.sql.common import scope_key as _key
from dq_stores.sql.schema import artifact_revisions, artifacts, contract_datasets
from dq_stores.sql.scopes import list_sql_scopes

__all__ = ["SqlActionProfileStore", "SqlContractStore", "SqlJobDefinitionStore"]

A = artifacts.c


class _SqlVersioned(SqlStoreBase, VersionedStore[Any]):
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
        with self._db.write(_key(scope)) as conn:
            query = sa.select(A.revision, A.etag, A.content_hash).where(
                self._pk(scope, index.artifact_id, index.version)
            )
            current = conn.execute(self._db.dialect.for_update(query)).first()
            now = q.now()
            etag = q.new_etag()
            values: dict[str, Any] = {
                "version_key": index.version_key,
                "name": index.name,
                "status": index.status,
                "retired": index.retired,
                "tags": self._db.dialect.json_list(index.tags),
                "action_types": self._db.dialect.json_list(index.action_types),
                "trigger_type": index.trigger_type,
                "etag": etag,
                "content_hash": content_hash,
                "document": self._doc_param(document),
                "updated_at": now,
            }
            check = WriteCheck(label, if_match, create_only)
            if current is None:
                check.absent()
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
                check.present(current.etag)
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
            rows = self._db.fetch(q.GET_LATEST, params, _key(scope))
        else:
            rows = self._db.fetch(q.GET_VERSION, {**params, "version": version}, _key(scope))
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
        with self._db.read(_key(scope)) as conn:
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
            query = query.where(self._db.dialect.contains_all(A.tags, filters.tags))
        if filters.action_type is not None:
            query = query.where(self._db.dialect.contains_all(A.action_types, [filters.action_type]))
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
        with self._db.write(_key(scope)) as conn:
            if if_match is not None:
                current = conn.execute(sa.select(A.etag).where(where_current)).scalar()
                WriteCheck(f"{self.kind.label} {artifact_id}@{version} in {scope}", if_match).deleting(
                    current
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
        with self._db.read(_key(scope)) as conn:
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
        with self._db.read(_key(scope)) as conn:
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
            q.LATEST_FOR_DATASET,
            {
                "tenant": scope.tenant,
                "environment": scope.environment,
                "kind": self.kind.name,
                "dataset_type": dataset_type,
            },
            _key(scope),
        )
        return StoredDoc(*rows[0]) if rows else None


class SqlJobDefinitionStore(_SqlVersioned, JobDefinitionStore):
    """Job definitions / checkpoints on SQLite / Postgres."""


class SqlActionProfileStore(_SqlVersioned, ActionProfileStore):
    """Action profiles on SQLite / Postgres."""
