"""Job runs on SQLite / Postgres, and their small results kept inline (``dq_job_run_results``).

The common put is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE <allowed transition>
RETURNING etag`` statement on the fast path; ``put_many`` is one transaction (one per scope under
row-level security) with the dialect's bulk load; pages are keyset-paginated by index.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from dq_stores.base import JobRunStore, RunFilters, StoredDoc, WriteCheck
from dq_stores.canonical import canonical_json, sha256_hex
from dq_stores.errors import ConflictError, InvalidArtifactError
from dq_stores.inputs import encode_cursor, parse_sortable_time, sortable_time
from dq_stores.kinds import RunIndex
from dq_stores.models import JobRun, JobRunStatus
from dq_stores.models.job_runs import check_transition
from dq_stores.scope import Scope
from dq_stores.sql import queries as q
from dq_stores.sql.common import SqlStoreBase
from dq_stores.sql.common import scope_key as _key
from dq_stores.sql.engine import ScopeKey
from dq_stores.sql.migrate import new_store_id
from dq_stores.sql.schema import STORE_ID, job_run_results, job_runs, store_info
from dq_stores.sql.scopes import list_sql_scopes

__all__ = ["SqlJobRunStore"]

R = job_runs.c


class SqlJobRunStore(SqlStoreBase, JobRunStore):
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
        with self._db.write() if create else self._db.read() as conn:  # unscoped: not tenant data
            if not sa.inspect(conn).has_table(store_info.name):
                # An embedded store at an older revision opened read-only: no identity yet.
                return None
            found = conn.execute(sa.select(store_info.c.value).where(store_info.c.name == STORE_ID)).scalar()
            if found is None and create:
                # Normally written by the schema's creation or migration; a deleted row is
                # recreated, first writer wins.
                conn.execute(
                    self._db.dialect.insert(store_info)
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
            q.put_inline_query(self._db.dialect.name),
            {
                "new_tenant": scope.tenant,
                "new_environment": scope.environment,
                "new_job_id": job_id,
                "new_sha256": sha256,
                "new_size_bytes": len(body),
                "new_content_type": content_type,
                "new_body": body,
                "new_recorded_at": q.now(),
            },
            _key(scope),
        )

    def _get_inline(self, scope: Scope, job_id: str, sha256: str) -> bytes | None:
        rows = self._db.fetch(
            q.GET_INLINE,
            {"tenant": scope.tenant, "environment": scope.environment, "job_id": job_id, "sha256": sha256},
            _key(scope),
        )
        return bytes(rows[0][0]) if rows else None

    def _delete_inline(self, scope: Scope, job_id: str, keep: str | None = None) -> None:
        self._db.execute(
            q.DELETE_INLINE,
            {
                "key_tenant": scope.tenant,
                "key_environment": scope.environment,
                "key_job_id": job_id,
                "key_keep": keep or "",
            },
            _key(scope),
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
        now = q.now()
        values = self._run_values(scope, index, document, content_hash, q.new_etag(), now)
        keep_run_time = index.run_time is None
        params = {f"new_{k}": v for k, v in values.items()}
        if if_match is None:
            query = q.upsert_run_query(self._db.dialect.name, index.status, keep_run_time, create_only)
            rows = self._db.execute(query, params, _key(scope))
        else:
            params.update(key_tenant=scope.tenant, key_environment=scope.environment, key_job_id=index.job_id)
            params["if_match"] = if_match
            rows = self._db.execute(q.update_run_query(index.status, keep_run_time), params, _key(scope))
        if rows:
            return str(rows[0][0])
        # Slow path: find out why nothing was written.
        state = self._db.fetch(
            q.RUN_STATE,
            {"tenant": scope.tenant, "environment": scope.environment, "job_id": index.job_id},
            _key(scope),
        )
        label = f"job run {index.job_id} in {scope}"
        check = WriteCheck(label, if_match, create_only)
        if not state:
            check.absent()
            raise ConflictError(f"{label} was deleted by another writer meanwhile")
        status, etag, _ = state[0]
        check.present(etag)
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
        if self._db.scope_hook is None:
            return self._put_many(prepared, None)
        # Row-level security: a transaction has one scope, so one transaction per scope, in the
        # order the scopes first appear.
        groups: dict[Scope, builtins.list[int]] = {}
        for i, (scope, _, _, _) in enumerate(prepared):
            groups.setdefault(scope, []).append(i)
        etags: builtins.list[str] = [""] * len(prepared)
        for scope, positions in groups.items():
            written = self._put_many([prepared[i] for i in positions], _key(scope))
            for i, etag in zip(positions, written, strict=True):
                etags[i] = etag
        return etags

    def _put_many(
        self, prepared: Sequence[tuple[Scope, RunIndex, bytes, str]], scope: ScopeKey | None
    ) -> builtins.list[str]:
        now = q.now()
        with self._db.write(scope) as conn:
            keys = [(s.tenant, s.environment, i.job_id) for s, i, _, _ in prepared]
            existing = self._db.dialect.existing_runs(conn, keys)
            result: builtins.list[str] = []
            to_write: dict[tuple[str, str, str], dict[str, Any]] = {}
            for (run_scope, index, document, content_hash), key in zip(prepared, keys, strict=True):
                old = existing.get(key)
                if old is not None:
                    if not check_transition(JobRunStatus(old[0]), JobRunStatus(index.status)):
                        raise InvalidArtifactError(
                            f"job run {index.job_id} in {run_scope}: status may not change from {old[0]} "
                            f"to {index.status}",
                            field="status",
                        )
                    if old[2] == content_hash:
                        result.append(old[1])
                        continue
                etag = q.new_etag()
                to_write[key] = self._run_values(run_scope, index, document, content_hash, etag, now)
                existing[key] = (index.status, etag, content_hash)
                result.append(etag)
            if to_write:
                self._db.dialect.upsert_runs(conn, q.RUN_COLUMNS, list(to_write.values()))
        return result

    def _get_run(self, scope: Scope, job_id: str) -> StoredDoc | None:
        rows = self._db.fetch(
            q.GET_RUN,
            {"tenant": scope.tenant, "environment": scope.environment, "job_id": job_id},
            _key(scope),
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
        for name in q.RUN_FILTER_COLUMNS:
            value = getattr(filters, name)
            if value is not None:
                present.append(name)
                params[f"f_{name}"] = value
        if filters.since is not None:
            params["since"] = filters.since
        if filters.until is not None:
            params["until"] = filters.until
        query = q.list_runs_query(
            environment is not None,
            after is not None,
            tuple(present),
            filters.since is not None,
            filters.until is not None,
            limit + 1,
        )
        rows = self._db.fetch(query, params, (tenant, environment))
        more = len(rows) > limit
        rows = rows[:limit]
        cursor = encode_cursor([sortable_time(rows[-1][1]), rows[-1][2], rows[-1][3]]) if more else None
        return [r[0] for r in rows], cursor

    def _delete_run(self, scope: Scope, job_id: str, if_match: str | None) -> bool:
        with self._db.write(_key(scope)) as conn:
            where = self._pk(scope, job_id)
            if if_match is not None:
                current = conn.execute(sa.select(R.etag).where(where)).scalar()
                WriteCheck(f"job run {job_id} in {scope}", if_match).deleting(current)
            deleted = bool(conn.execute(job_runs.delete().where(where)).rowcount)
            T = job_run_results.c
            conn.execute(
                job_run_results.delete().where(
                    T.tenant == scope.tenant, T.environment == scope.environment, T.job_id == job_id
                )
            )
            return deleted
