"""Tenant-bound views of the stores, and the rule that says which tenant a caller may use.

``ScopedContractStore(store, scope)`` and its siblings expose the store methods without tenant or
environment arguments: the scope is fixed when the view is made, every read is served from that
scope only, and every write of an artifact whose own ``tenant_id``/``environment`` differ from it
is refused with ``ScopeViolationError`` before the backend sees it. ``TenantPolicy`` decides which
scope a caller gets (a fixed tenant, or one named by a partition key, checked against an allow
list). ``ScopedStores`` bundles the four views of one scope. This module is plain Python: no
Dagster import, so it is tested without Dagster; the Dagster resources in ``dq_dagster.resources``
delegate to these views (this is the one copy of the tenant-bound API).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pydantic

from dq_stores.base import (
    ActionProfileStore,
    ContractStore,
    Entry,
    JobDefinitionStore,
    JobRunStore,
    Page,
    Revision,
    VersionedStore,
)
from dq_stores.errors import InvalidArtifactError, NotFoundError, ScopeViolationError
from dq_stores.models import (
    ActionProfile,
    ActionType,
    DataContract,
    JobDefinition,
    JobRun,
    JobRunStatus,
    JobType,
    ResultRef,
)
from dq_stores.models.common import CanonicalModel
from dq_stores.scope import Scope, check_artifact_scope, validate_id

if TYPE_CHECKING:
    from dq_stores.stores import Stores

__all__ = [
    "ScopedActionProfileStore",
    "ScopedContractStore",
    "ScopedJobDefinitionStore",
    "ScopedJobRunStore",
    "ScopedStores",
    "ScopedVersionedStore",
    "TenantNotAllowedError",
    "TenantPolicy",
]

V = TypeVar("V", DataContract, JobDefinition, ActionProfile)
M = TypeVar("M", bound=CanonicalModel)


class TenantNotAllowedError(ScopeViolationError):
    """A tenant (from a partition key or a call) that this binding may not serve."""


class TenantPolicy:
    """Which tenant a resource bound to ``environment`` may serve.

    * ``tenant`` set, ``allowed_tenants`` unset: a single-tenant binding; any other tenant (e.g.
      from a partition key) is refused, so a resource bound to tenant A never serves B.
    * ``allowed_tenants`` set: exactly those tenants (``tenant``, if set, is the default and must
      be one of them).
    * neither set: any valid tenant, but only when one is named (no default).
    """

    __slots__ = ("allowed_tenants", "environment", "tenant")

    def __init__(
        self,
        tenant: str | None,
        environment: str,
        allowed_tenants: Sequence[str] | None = None,
    ) -> None:
        self.environment = validate_id(environment, "environment")
        self.tenant = validate_id(tenant, "tenant") if tenant is not None else None
        if isinstance(allowed_tenants, str):
            raise InvalidArtifactError("allowed_tenants must be a list of tenants", field="allowed_tenants")
        self.allowed_tenants: frozenset[str] | None = (
            frozenset(validate_id(t, "allowed_tenants") for t in allowed_tenants)
            if allowed_tenants is not None
            else None
        )
        if (
            self.tenant is not None
            and self.allowed_tenants is not None
            and self.tenant not in self.allowed_tenants
        ):
            raise InvalidArtifactError(
                f"tenant {self.tenant!r} is not one of allowed_tenants {sorted(self.allowed_tenants)}",
                field="tenant",
            )

    def __repr__(self) -> str:
        allowed = sorted(self.allowed_tenants) if self.allowed_tenants is not None else None
        return f"TenantPolicy(tenant={self.tenant!r}, environment={self.environment!r}, allowed_tenants={allowed!r})"

    def scope(self, tenant: str | None = None) -> Scope:
        """The scope for ``tenant`` (the bound tenant when ``None``), or ``TenantNotAllowedError``."""
        if tenant is None:
            if self.tenant is None:
                raise TenantNotAllowedError(
                    "no tenant: this resource is not bound to a tenant; configure `tenant`, or call "
                    "for_context(context) from an asset partitioned by tenant, or for_tenant(name)"
                )
            return Scope(self.tenant, self.environment)
        validate_id(tenant, "tenant")
        if self.allowed_tenants is not None:
            if tenant not in self.allowed_tenants:
                raise TenantNotAllowedError(
                    f"tenant {tenant!r} is not allowed here: it is not in allowed_tenants "
                    f"{sorted(self.allowed_tenants)}"
                )
        elif self.tenant is not None and tenant != self.tenant:
            raise TenantNotAllowedError(
                f"tenant {tenant!r} is not allowed here: this resource is bound to tenant "
                f"{self.tenant!r} (set allowed_tenants to serve several tenants)"
            )
        return Scope(tenant, self.environment)


def _coerce(model: type[M], artifact: Any, what: str) -> M:
    if isinstance(artifact, model):
        return artifact
    if isinstance(artifact, Mapping):
        try:
            return model.model_validate(artifact)
        except pydantic.ValidationError as exc:
            raise InvalidArtifactError.from_pydantic(exc, what=what) from exc
    raise InvalidArtifactError(
        f"expected a {model.__name__} or a mapping, got {type(artifact).__name__}", field="<artifact>"
    )


class _Scoped:
    __slots__ = ("scope",)
    scope: Scope

    def __init__(self, scope: Scope) -> None:
        if not isinstance(scope, Scope):
            raise TypeError(f"scope must be a dq_stores.scope.Scope, got {type(scope).__name__}")
        self.scope = scope

    @property
    def tenant(self) -> str:
        return self.scope.tenant

    @property
    def environment(self) -> str:
        return self.scope.environment

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.scope})"


class ScopedVersionedStore(_Scoped, Generic[V]):
    """A versioned store (contracts, job definitions, action profiles) bound to one scope."""

    __slots__ = ("_store",)
    _store: VersionedStore[V]

    def __init__(self, store: VersionedStore[V], scope: Scope) -> None:
        super().__init__(scope)
        self._store = store

    @property
    def store(self) -> VersionedStore[V]:
        """The unscoped store underneath (for tooling that spans tenants on purpose)."""
        return self._store

    def _in_scope(self, artifact: V | Mapping[str, Any]) -> V:
        kind = self._store.kind
        model: V = _coerce(kind.model, artifact, kind.label)
        check_artifact_scope(self.scope, model.tenant_id, model.environment, kind.label)
        return model

    def put(
        self, artifact: V | Mapping[str, Any], *, if_match: str | None = None, create_only: bool = False
    ) -> str:
        """Store ``artifact`` (which must belong to this scope); return the new etag."""
        return self._store.put(self._in_scope(artifact), if_match=if_match, create_only=create_only)

    def get(self, artifact_id: str, version: str | None = None) -> V | None:
        """The artifact at ``version`` (latest when ``None``); ``None`` if absent."""
        return self._store.get(self.tenant, self.environment, artifact_id, version)

    def get_entry(self, artifact_id: str, version: str | None = None) -> Entry[V] | None:
        return self._store.get_entry(self.tenant, self.environment, artifact_id, version)

    def require(self, artifact_id: str, version: str | None = None) -> V:
        """Like ``get`` but raises ``NotFoundError`` when absent."""
        return self._store.require(self.tenant, self.environment, artifact_id, version)

    def list(self, *, limit: int = 100, cursor: str | None = None, **filters: Any) -> Page[V]:
        return self._store.list(self.tenant, self.environment, limit=limit, cursor=cursor, **filters)

    def iter_all(self, **filters: Any) -> Iterator[V]:
        return self._store.iter_all(self.tenant, self.environment, **filters)

    def versions(self, artifact_id: str) -> builtins.list[str]:
        return self._store.versions(self.tenant, self.environment, artifact_id)

    def delete(self, artifact_id: str, version: str | None = None, *, if_match: str | None = None) -> bool:
        return self._store.delete(self.tenant, self.environment, artifact_id, version, if_match=if_match)

    def history(self, artifact_id: str, version: str) -> builtins.list[Revision]:
        return self._store.history(self.tenant, self.environment, artifact_id, version)

    def get_revision(self, artifact_id: str, version: str, revision: int) -> V | None:
        return self._store.get_revision(self.tenant, self.environment, artifact_id, version, revision)


class ScopedContractStore(ScopedVersionedStore[DataContract]):
    """Data contracts of one tenant + environment."""

    __slots__ = ("_contracts",)
    _contracts: ContractStore

    def __init__(self, store: ContractStore, scope: Scope) -> None:
        super().__init__(store, scope)
        self._contracts = store

    def get_latest_for_dataset(self, dataset_type: str) -> DataContract | None:
        """The latest non-retired contract holding a dataset contract of ``dataset_type``."""
        return self._contracts.get_latest_for_dataset(self.tenant, self.environment, dataset_type)

    def require_latest_for_dataset(self, dataset_type: str) -> DataContract:
        """Like ``get_latest_for_dataset`` but raises ``NotFoundError`` when there is none."""
        found = self.get_latest_for_dataset(dataset_type)
        if found is None:
            raise NotFoundError(f"no contract for dataset type {dataset_type!r} in {self.scope}")
        return found


class ScopedJobDefinitionStore(ScopedVersionedStore[JobDefinition]):
    """Job definitions (checkpoints) of one tenant + environment."""

    __slots__ = ("_job_definitions",)
    _job_definitions: JobDefinitionStore

    def __init__(self, store: JobDefinitionStore, scope: Scope) -> None:
        super().__init__(store, scope)
        self._job_definitions = store

    def list_by_tags(self, tags: Sequence[str] | None = None) -> Iterator[JobDefinition]:
        """Every job definition (each id and version) carrying all of ``tags``."""
        return self._job_definitions.list_by_tags(self.tenant, self.environment, tags)


class ScopedActionProfileStore(ScopedVersionedStore[ActionProfile]):
    """Action profiles of one tenant + environment."""

    __slots__ = ("_action_profiles",)
    _action_profiles: ActionProfileStore

    def __init__(self, store: ActionProfileStore, scope: Scope) -> None:
        super().__init__(store, scope)
        self._action_profiles = store

    def list_by_type(self, action_type: ActionType | str | None = None) -> Iterator[ActionProfile]:
        """Every action profile with at least one action of ``action_type`` (all if None)."""
        return self._action_profiles.list_by_type(self.tenant, self.environment, action_type)


class ScopedJobRunStore(_Scoped):
    """Job runs (and their results) of one tenant + environment."""

    __slots__ = ("_store",)
    _store: JobRunStore

    def __init__(self, store: JobRunStore, scope: Scope) -> None:
        super().__init__(scope)
        self._store = store

    @property
    def store(self) -> JobRunStore:
        """The unscoped store underneath."""
        return self._store

    def _in_scope(self, run: JobRun | Mapping[str, Any]) -> JobRun:
        model = _coerce(JobRun, run, "job run")
        check_artifact_scope(self.scope, model.tenant_id, model.environment, "job run")
        return model

    def put(
        self, run: JobRun | Mapping[str, Any], *, if_match: str | None = None, create_only: bool = False
    ) -> str:
        """Insert or update ``run`` (which must belong to this scope); return its etag."""
        return self._store.put(self._in_scope(run), if_match=if_match, create_only=create_only)

    def put_many(self, runs: Iterable[JobRun | Mapping[str, Any]]) -> builtins.list[str]:
        return self._store.put_many([self._in_scope(r) for r in runs])

    def get(self, job_id: str) -> JobRun | None:
        return self._store.get(self.tenant, self.environment, job_id)

    def get_entry(self, job_id: str) -> Entry[JobRun] | None:
        return self._store.get_entry(self.tenant, self.environment, job_id)

    def require(self, job_id: str) -> JobRun:
        found = self.get(job_id)
        if found is None:
            raise NotFoundError(f"job run {job_id} not found in {self.scope}")
        return found

    def list(
        self,
        *,
        job_type: JobType | str | None = None,
        status: JobRunStatus | str | None = None,
        job_definition_id: str | None = None,
        dataset_type: str | None = None,
        dagster_run_id: str | None = None,
        asset_key: str | None = None,
        partition_key: str | None = None,
        since: Any = None,
        until: Any = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[JobRun]:
        """One page of this scope's runs, newest first, matching every given filter."""
        return self._store.list(
            self.tenant,
            self.environment,
            job_type=job_type,
            status=status,
            job_definition_id=job_definition_id,
            dataset_type=dataset_type,
            dagster_run_id=dagster_run_id,
            asset_key=asset_key,
            partition_key=partition_key,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )

    def iter_all(self) -> Iterator[JobRun]:
        """Every run of this scope, newest first."""
        return self._store.list_by_tenant(self.tenant, self.environment)

    def delete(self, job_id: str, *, if_match: str | None = None) -> bool:
        return self._store.delete(self.tenant, self.environment, job_id, if_match=if_match)

    def delete_with_result(self, job_id: str) -> bool:
        return self._store.delete_with_result(self.tenant, self.environment, job_id)

    def put_result(
        self,
        job_id: str,
        result: Any,
        *,
        content_type: str | None = None,
        result_type: str | None = None,
        offload: bool | None = None,
    ) -> ResultRef:
        """Store a run's result (inline or offloaded by size) and point the run at it."""
        return self._store.put_result(
            self.tenant,
            self.environment,
            job_id,
            result,
            content_type=content_type,
            result_type=result_type,
            offload=offload,
        )

    def get_result(self, job_id: str) -> bytes:
        """A run's result bytes, verified against the sha256 and size its record holds."""
        return self._store.get_result(self.tenant, self.environment, job_id)

    def iter_result(self, job_id: str) -> Iterator[bytes]:
        return self._store.iter_result(self.tenant, self.environment, job_id)

    def get_result_model(self, job_id: str) -> Any:
        return self._store.get_result_model(self.tenant, self.environment, job_id)

    def delete_result(self, job_id: str) -> bool:
        return self._store.delete_result(self.tenant, self.environment, job_id)


class ScopedStores(_Scoped):
    """The four stores of one backend, bound to one scope: ``.contracts``, ``.job_definitions``,
    ``.action_profiles``, ``.job_runs``.
    """

    __slots__ = ("action_profiles", "contracts", "job_definitions", "job_runs")

    def __init__(self, stores: Stores, scope: Scope) -> None:
        super().__init__(scope)
        self.contracts = ScopedContractStore(stores.contracts, scope)
        self.job_definitions = ScopedJobDefinitionStore(stores.job_definitions, scope)
        self.action_profiles = ScopedActionProfileStore(stores.action_profiles, scope)
        self.job_runs = ScopedJobRunStore(stores.job_runs, scope)
