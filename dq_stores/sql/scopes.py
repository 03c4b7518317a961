"""Which (tenant, environment) scopes a SQL store holds: one query over the primary keys.

A ``GROUP BY`` on the leading columns of ``dq_artifacts`` / ``dq_job_runs``' primary keys, so an
index (only) scan serves it; under row-level security only the scopes of one tenant are visible,
so a tenant is required there.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from dq_stores.errors import StoreError
from dq_stores.scope import Scope
from dq_stores.sql.engine import SqlEngine
from dq_stores.sql.schema import artifacts, job_runs

__all__ = ["list_sql_scopes"]


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
    if db.scope_hook is not None and tenant is None:
        raise StoreError(
            "with row-level security the stores see one tenant at a time: list the scopes of a "
            "tenant (tenant=...)"
        )
    with db.read((tenant, environment) if tenant is not None else None) as conn:
        rows = conn.execute(query).all()
    return [Scope(str(t), str(e)) for t, e in rows]
