"""Store interfaces (the design note's public names), pages, revisions and capability flags.

Every public method validates its scope, ids, filters and cursor here, once, and then calls a
small set of backend primitives (``_put``, ``_get``, ``_list``, ``_delete``, ...) that receive
only validated values. Backends (SQL, filesystem, Azure Blob) implement the primitives; the
behaviour callers see is written once, in this module, and checked for every backend by the
conformance suite in ``dq_stores.testing``. Nothing here does I/O. The claim check is
``dq_stores.results`` (the run store delegates to it); argument checks and cursors are
``dq_stores.inputs``.

Why one module of ~900 lines: it is the whole public Store API of the design note - every method
with the docstring that states its contract - plus the few rules every backend applies
(``WriteCheck``, ``optimistic_attempts``); splitting it would scatter one contract over files.
"""

from __future__ import annotations

import builtins
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

import pydantic

from dq_stores.canonical import canonical_json, sha256_hex
from dq_stores.errors import ConflictError, InvalidArtifactError, ScopeViolationError
from dq_stores.inputs import (
    MAX_PAGE_SIZE,
    check_limit,
    check_text,
    check_write_options,
    decode_artifact_cursor,
    decode_run_cursor,
    enum_value,
    opt_str,
    opt_time,
)
from dq_stores.kinds import (
    ACTION_PROFILES,
    CONTRACTS,
    JOB_DEFINITIONS,
    JOB_RUNS,
    ArtifactIndex,
    Kind,
    RunIndex,
)
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
from dq_stores.results.payloads import PayloadStore
from dq_stores.results.store import PurgedRun, ResultStore
from dq_stores.scope import Scope, validate_id

__all__ = [
    "MAX_PAGE_SIZE",
    "ActionProfileStore",
    "ContractStore",
    "Entry",
    "JobDefinitionStore",
    "JobRunStore",
    "Page",
    "PurgedRun",
    "Revision",
    "RunFilters",
    "Store",
    "StoredDoc",
    "VersionFilters",
    "VersionedStore",
    "WriteCheck",
    "optimistic_attempts",
]

T = TypeVar("T", bound=CanonicalModel)
V = TypeVar("V", DataContract, JobDefinition, ActionProfile)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing. ``next_cursor`` is ``None`` on the last page."""

    items: list[T]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class Revision:
    """One stored revision of a versioned artifact; revisions count from 1, oldest first."""

    artifact_id: str
    version: str
    revision: int
    etag: str
    content_hash: str
    recorded_at: datetime


@dataclass(frozen=True)
class Entry(Generic[T]):
    """An artifact with the etag of its current revision (for ``if_match`` read-modify-write)."""

    artifact: T
    etag: str
    content_hash: str


@dataclass(frozen=True)
class StoredDoc:
    """What a backend primitive returns: the stored canonical JSON and its revision metadata."""

    document: bytes | str
    etag: str
    content_hash: str


@dataclass(frozen=True)
class VersionFilters:
    """Validated list filters of versioned artifacts; ``None`` means 'no filter'."""

    artifact_id: str | None = None
    status: str | None = None
    dataset_type: str | None = None
    tags: tuple[str, ...] = ()
    action_type: str | None = None
    trigger_type: str | None = None

    def matches(self, index: ArtifactIndex) -> bool:
        """The filter as a predicate, for backends that filter index entries in Python."""
        return (
            (self.artifact_id is None or index.artifact_id == self.artifact_id)
            and (self.status is None or index.status == self.status)
            and (self.dataset_type is None or self.dataset_type in index.dataset_types)
            and all(t in index.tags for t in self.tags)
            and (self.action_type is None or self.action_type in index.action_types)
            and (self.trigger_type is None or index.trigger_type == self.trigger_type)
        )


@dataclass(frozen=True)
class RunFilters:
    """Validated job-run list filters; ``since`` is inclusive, ``until`` exclusive."""

    job_type: str | None = None
    status: str | None = None
    job_definition_id: str | None = None
    dataset_type: str | None = None
    dagster_run_id: str | None = None
    asset_key: str | None = None
    partition_key: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def matches(self, index: RunIndex, run_time: datetime) -> bool:
        return (
            (self.job_type is None or index.job_type == self.job_type)
            and (self.status is None or index.status == self.status)
            and (self.job_definition_id is None or index.job_definition_id == self.job_definition_id)
            and (self.dataset_type is None or index.dataset_type == self.dataset_type)
            and (self.dagster_run_id is None or index.dagster_run_id == self.dagster_run_id)
            and (self.asset_key is None or index.asset_key == self.asset_key)
            and (self.partition_key is None or index.partition_key == self.partition_key)
            and (self.since is None or run_time >= self.since)
            and (self.until is None or run_time < self.until)
        )


# -- write preconditions and optimistic retries: the rules every backend applies -----------------


@dataclass(frozen=True)
class WriteCheck:
    """The ``if_match`` / ``create_only`` rules of a put or delete, with the messages every
    backend raises, written once. A backend reads the key's current etag (``None``: absent) and
    calls ``absent()`` or ``present(etag)``; when its conditional write then loses a race it calls
    ``lost_race(exc)``, which raises when the caller's condition can no longer hold and returns
    when a fresh attempt may succeed.
    """

    label: str
    """What is written, for messages: ``contract c1@1.0.0 in t/dev``."""
    if_match: str | None = None
    create_only: bool = False

    def absent(self) -> None:
        if self.if_match is not None:
            raise ConflictError(f"{self.label} does not exist; if_match={self.if_match!r} cannot hold")

    def present(self, etag: str) -> None:
        if self.create_only:
            raise ConflictError(f"{self.label} already exists (create_only)")
        if self.if_match is not None and self.if_match != etag:
            raise ConflictError(f"{self.label} changed since etag {self.if_match!r} (now {etag!r})")

    def lost_race(self, exc: BaseException) -> None:
        if self.create_only:
            raise ConflictError(f"{self.label} already exists (create_only)") from exc
        if self.if_match is not None:
            raise ConflictError(f"{self.label} changed since etag {self.if_match!r}") from exc

    def deleting(self, etag: str | None) -> None:
        """A delete with ``if_match``: the key must exist with exactly that etag."""
        if self.if_match is not None and etag != self.if_match:
            raise ConflictError(f"{self.label} does not match etag {self.if_match!r}")


OPTIMISTIC_ATTEMPTS = 12
"""Attempts of a read-modify-write that keeps losing races before ``ConflictError``."""


def optimistic_attempts(label: str, attempts: int = OPTIMISTIC_ATTEMPTS) -> Iterator[int]:
    """The attempt numbers of an optimistic read-modify-write loop (``for _ in ...: ... return``);
    from the third attempt on, a short growing random pause keeps colliding writers from spinning.
    When every attempt lost its race, ``ConflictError`` is raised.
    """
    for attempt in range(attempts):
        if attempt >= 2:
            time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 8)))
        yield attempt
    raise ConflictError(f"{label}: too many concurrent writers, gave up after {attempts} attempts")


# -- the stores ---------------------------------------------------------------------------------


class Store(ABC, Generic[T]):
    """The generic store of the design note: tenant + environment scoped canonical JSON artifacts.

    Capability flags say what a backend can do; the conformance suite skips only what a backend
    declares it cannot do.
    """

    kind: ClassVar[Kind[Any]]
    supports_history: ClassVar[bool] = True
    """``history()`` and ``get_revision()`` return every revision ever written."""
    supports_cross_process_concurrency: ClassVar[bool] = True
    """``if_match`` / ``create_only`` hold between processes, not only between threads."""
    supports_listing_all_scopes: bool = True
    """``list_scopes()`` without a tenant sees every tenant (not so under row-level security,
    where a connection sees one tenant at a time)."""

    def close(self) -> None:
        """Release connections or clients. Stores opened by ``open_stores`` share them and are
        closed through ``Stores.close()``.
        """

    def __enter__(self: S) -> S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def list_scopes(self, tenant: str | None = None, environment: str | None = None) -> builtins.list[Scope]:
        """Every (tenant, environment) holding an artifact of this kind, sorted; only those of
        ``tenant`` / ``environment`` when given. Nothing is created.
        """
        t = validate_id(tenant, "tenant") if tenant is not None else None
        e = validate_id(environment, "environment") if environment is not None else None
        return sorted(set(self._list_scopes(t, e)), key=lambda s: (s.tenant, s.environment))

    @abstractmethod
    def _list_scopes(self, tenant: str | None, environment: str | None) -> Iterable[Scope]:
        """The scopes holding anything of this kind (validated ids in; any order, duplicates ok)."""

    # shared helpers ---------------------------------------------------------------------------
    def _coerce(self, artifact: Any) -> T:
        model: type[T] = self.kind.model
        if isinstance(artifact, model):
            return artifact
        if isinstance(artifact, Mapping):
            try:
                return model.model_validate(artifact)
            except pydantic.ValidationError as exc:
                raise InvalidArtifactError.from_pydantic(exc, what=self.kind.label) from exc
        raise InvalidArtifactError(
            f"expected a {model.__name__} or a mapping, got {type(artifact).__name__}",
            field="<artifact>",
        )

    def _decode(self, document: bytes | str) -> T:
        try:
            result: T = self.kind.model.model_validate_json(document)
        except pydantic.ValidationError as exc:
            raise InvalidArtifactError.from_pydantic(exc, what=f"stored {self.kind.label}") from exc
        return result

    def _decode_in_scope(self, scope: Scope, document: bytes | str) -> T:
        artifact = self._decode(document)
        if (artifact.tenant_id, artifact.environment) != (scope.tenant, scope.environment):  # type: ignore[attr-defined]
            # Defence in depth: a backend bug or a hand-edited file must never leak another
            # scope's artifact.
            raise ScopeViolationError(f"stored {self.kind.label} does not belong to scope {scope}")
        return artifact

    def _id(self, value: Any) -> str:
        return validate_id(value, self.kind.id_field)


S = TypeVar("S", bound=Store[Any])


class VersionedStore(Store[V], Generic[V]):
    """Contracts, job definitions and action profiles: keyed by (scope, id, version).

    * ``put`` of identical content is a no-op returning the current etag; changed content appends
      a revision (history is kept); ``if_match`` with a stale etag, or any ``if_match`` on a key
      that does not exist, raises ``ConflictError``; ``create_only=True`` on an existing key
      raises ``ConflictError``.
    * ``get(..., version=None)`` returns the latest: the highest version (numeric-aware, see
      ``dq_stores.versions``) that is not retired; ties go to the newest revision.
    * ``list`` orders by id ascending, then version descending; keyset-paginated.
    """

    _allowed_filters: ClassVar[frozenset[str]] = frozenset({"artifact_id", "status"})

    # public API -------------------------------------------------------------------------------
    def put(
        self, artifact: V | Mapping[str, Any], *, if_match: str | None = None, create_only: bool = False
    ) -> str:
        """Store ``artifact`` in its own scope; return the etag of the resulting revision.

        Raises ``InvalidArtifactError`` (bad document), ``ConflictError`` (stale ``if_match``,
        ``create_only`` on an existing key, lost race), ``BackendUnavailableError``.
        """
        model = self._coerce(artifact)
        scope = Scope(model.tenant_id, model.environment)
        check_write_options(if_match, create_only)
        document = canonical_json(model)
        return self._put(
            scope,
            ArtifactIndex.of(model),
            document,
            sha256_hex(document),
            if_match=if_match,
            create_only=create_only,
        )

    def get(self, tenant: str, environment: str, artifact_id: str, version: str | None = None) -> V | None:
        """The artifact at ``version``, or the latest one if ``version`` is None; ``None`` if absent."""
        entry = self.get_entry(tenant, environment, artifact_id, version)
        return entry.artifact if entry else None

    def get_entry(
        self, tenant: str, environment: str, artifact_id: str, version: str | None = None
    ) -> Entry[V] | None:
        """Like ``get`` but with the etag and content hash of the current revision."""
        scope = Scope(tenant, environment)
        aid = self._id(artifact_id)
        ver = validate_id(version, "version") if version is not None else None
        stored = self._get(scope, aid, ver)
        if stored is None:
            return None
        return Entry(self._decode_in_scope(scope, stored.document), stored.etag, stored.content_hash)

    def require(self, tenant: str, environment: str, artifact_id: str, version: str | None = None) -> V:
        """Like ``get`` but raises ``NotFoundError`` when absent."""
        from dq_stores.errors import NotFoundError

        found = self.get(tenant, environment, artifact_id, version)
        if found is None:
            what = f"{artifact_id}@{version}" if version else f"{artifact_id} (latest)"
            raise NotFoundError(f"{self.kind.label} {what} not found in {tenant}/{environment}")
        return found

    def list(
        self,
        tenant: str,
        environment: str,
        *,
        limit: int = 100,
        cursor: str | None = None,
        **filters: Any,
    ) -> Page[V]:
        """One page of (id, version) artifacts in the scope, current revision of each."""
        scope = Scope(tenant, environment)
        parsed = self._parse_filters(filters)
        docs, next_cursor = self._list(scope, check_limit(limit), decode_artifact_cursor(cursor), parsed)
        return Page([self._decode_in_scope(scope, d) for d in docs], next_cursor)

    def iter_all(self, tenant: str, environment: str, **filters: Any) -> Iterator[V]:
        """Every artifact matching ``filters``, following cursors page by page. Bad scopes or
        filters are refused here, at the call, not when iteration starts.
        """
        first = self.list(tenant, environment, limit=MAX_PAGE_SIZE // 2, **filters)

        def pages() -> Iterator[V]:
            page = first
            while True:
                yield from page.items
                if page.next_cursor is None:
                    return
                page = self.list(
                    tenant, environment, limit=MAX_PAGE_SIZE // 2, cursor=page.next_cursor, **filters
                )

        return pages()

    def versions(self, tenant: str, environment: str, artifact_id: str) -> builtins.list[str]:
        """Every stored version of ``artifact_id``, highest first."""
        return [a.version for a in self.iter_all(tenant, environment, artifact_id=self._id(artifact_id))]

    def delete(
        self,
        tenant: str,
        environment: str,
        artifact_id: str,
        version: str | None = None,
        *,
        if_match: str | None = None,
    ) -> bool:
        """Delete one version (or every version when ``version`` is None) with its history.

        Returns whether anything was deleted. ``if_match`` needs a ``version`` and raises
        ``ConflictError`` when stale.
        """
        scope = Scope(tenant, environment)
        aid = self._id(artifact_id)
        ver = validate_id(version, "version") if version is not None else None
        if if_match is not None and ver is None:
            raise InvalidArtifactError("if_match needs a version", field="if_match")
        check_write_options(if_match, False)
        return self._delete(scope, aid, ver, if_match)

    def history(
        self, tenant: str, environment: str, artifact_id: str, version: str
    ) -> builtins.list[Revision]:
        """Every revision of (id, version), oldest first; empty if it does not exist."""
        scope = Scope(tenant, environment)
        return self._history(scope, self._id(artifact_id), validate_id(version, "version"))

    def get_revision(
        self, tenant: str, environment: str, artifact_id: str, version: str, revision: int
    ) -> V | None:
        """The artifact as it was at ``revision`` (see ``history``); ``None`` if absent."""
        scope = Scope(tenant, environment)
        stored = self._get_revision(scope, self._id(artifact_id), validate_id(version, "version"), revision)
        return self._decode_in_scope(scope, stored) if stored is not None else None

    # filter parsing ---------------------------------------------------------------------------
    def _parse_filters(self, filters: Mapping[str, Any]) -> VersionFilters:
        unknown = sorted(set(filters) - self._allowed_filters)
        if unknown:
            raise InvalidArtifactError(
                f"unknown filter(s) {unknown} for {self.kind.name}; allowed: {sorted(self._allowed_filters)}",
                field=unknown[0],
            )
        values: dict[str, Any] = {}
        if filters.get("artifact_id") is not None:
            values["artifact_id"] = self._id(filters["artifact_id"])
        if filters.get("status") is not None:
            values["status"] = opt_str(getattr(filters["status"], "value", filters["status"]), "status")
        if filters.get("dataset_type") is not None:
            values["dataset_type"] = str(opt_str(filters["dataset_type"], "dataset_type")).lower()
        if filters.get("tags"):
            tags = filters["tags"]
            if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
                raise InvalidArtifactError("tags must be a list of strings", field="tags")
            for tag in tags:
                check_text(tag, "tags")
            values["tags"] = tuple(sorted(set(tags)))
        if filters.get("action_type") is not None:
            values["action_type"] = enum_value(filters["action_type"], ActionType, "action_type")
        if filters.get("trigger_type") is not None:
            from dq_stores.models import TriggerType

            values["trigger_type"] = enum_value(filters["trigger_type"], TriggerType, "trigger_type")
        return VersionFilters(**values)

    # backend primitives -----------------------------------------------------------------------
    @abstractmethod
    def _put(
        self,
        scope: Scope,
        index: ArtifactIndex,
        document: bytes,
        content_hash: str,
        *,
        if_match: str | None,
        create_only: bool,
    ) -> str: ...

    @abstractmethod
    def _get(self, scope: Scope, artifact_id: str, version: str | None) -> StoredDoc | None: ...

    @abstractmethod
    def _list(
        self, scope: Scope, limit: int, after: builtins.list[Any] | None, filters: VersionFilters
    ) -> tuple[builtins.list[bytes | str], str | None]:
        """Return documents ordered by (id asc, version_key desc, version asc) strictly after the
        cursor values ``[artifact_id, version_key, version]``, and the next cursor.
        """

    @abstractmethod
    def _delete(self, scope: Scope, artifact_id: str, version: str | None, if_match: str | None) -> bool: ...

    @abstractmethod
    def _history(self, scope: Scope, artifact_id: str, version: str) -> builtins.list[Revision]: ...

    @abstractmethod
    def _get_revision(
        self, scope: Scope, artifact_id: str, version: str, revision: int
    ) -> bytes | str | None: ...


class ContractStore(VersionedStore[DataContract]):
    """Data contracts (with their dataset contracts)."""

    kind = CONTRACTS
    _allowed_filters = frozenset({"artifact_id", "status", "dataset_type"})

    def get_latest_for_dataset(self, tenant: str, environment: str, dataset_type: str) -> DataContract | None:
        """The latest non-retired contract holding a dataset contract of ``dataset_type``
        (case-insensitive); ``None`` if there is none.
        """
        scope = Scope(tenant, environment)
        wanted = opt_str(dataset_type, "dataset_type")
        if wanted is None:
            raise InvalidArtifactError("dataset_type is required", field="dataset_type")
        stored = self._get_latest_for_dataset(scope, wanted.lower())
        return self._decode_in_scope(scope, stored.document) if stored else None

    @abstractmethod
    def _get_latest_for_dataset(self, scope: Scope, dataset_type: str) -> StoredDoc | None: ...


class JobDefinitionStore(VersionedStore[JobDefinition]):
    """Job definitions / checkpoints, filterable by tags, status and trigger type."""

    kind = JOB_DEFINITIONS
    _allowed_filters = frozenset({"artifact_id", "status", "tags", "trigger_type"})

    def list_by_tags(
        self, tenant: str, environment: str, tags: Sequence[str] | None = None
    ) -> Iterator[JobDefinition]:
        """Every job definition (each id and version) carrying all of ``tags``."""
        return self.iter_all(tenant, environment, tags=list(tags or ()))


class ActionProfileStore(VersionedStore[ActionProfile]):
    """Action profiles, filterable by action type and tags."""

    kind = ACTION_PROFILES
    _allowed_filters = frozenset({"artifact_id", "status", "tags", "action_type"})

    def list_by_type(
        self, tenant: str, environment: str, action_type: ActionType | str | None = None
    ) -> Iterator[ActionProfile]:
        """Every action profile with at least one action of ``action_type`` (all if None)."""
        return self.iter_all(tenant, environment, action_type=action_type)


class JobRunStore(Store[JobRun]):
    """Job runs of validation, cleansing and profiling, keyed by (scope, job_id).

    ``put`` upserts by job id; a status transition that is not allowed (see
    ``dq_stores.models.job_runs.ALLOWED_TRANSITIONS``) raises ``InvalidArtifactError``; identical
    content is a no-op returning the current etag. Lists are newest first by the run's time
    (submitted, else started, else completed, else when the store first recorded it), then job id
    descending.
    """

    kind = JOB_RUNS
    supports_history = False

    def put(
        self, run: JobRun | Mapping[str, Any], *, if_match: str | None = None, create_only: bool = False
    ) -> str:
        """Insert or update ``run``; return its new etag. Raises ``ConflictError`` (stale
        ``if_match``, ``create_only`` on an existing run), ``InvalidArtifactError`` (bad document,
        forbidden status transition), ``BackendUnavailableError``.
        """
        model = self._coerce(run)
        scope = Scope(model.tenant_id, model.environment)
        check_write_options(if_match, create_only)
        document = canonical_json(model)
        return self._put_run(
            scope,
            RunIndex.of(model),
            document,
            sha256_hex(document),
            if_match=if_match,
            create_only=create_only,
        )

    def put_many(self, runs: Sequence[JobRun]) -> builtins.list[str]:
        """Upsert many runs (no ``if_match``); backends override this with a bulk path."""
        return [self.put(r) for r in runs]

    def get(self, tenant: str, environment: str, job_id: str, version: str | None = None) -> JobRun | None:
        entry = self.get_entry(tenant, environment, job_id, version)
        return entry.artifact if entry else None

    def get_entry(
        self, tenant: str, environment: str, job_id: str, version: str | None = None
    ) -> Entry[JobRun] | None:
        if version is not None:
            raise InvalidArtifactError("job runs are not versioned", field="version")
        scope = Scope(tenant, environment)
        stored = self._get_run(scope, self._id(job_id))
        if stored is None:
            return None
        return Entry(self._decode_in_scope(scope, stored.document), stored.etag, stored.content_hash)

    def list(
        self,
        tenant: str,
        environment: str,
        *,
        job_type: JobType | str | None = None,
        status: JobRunStatus | str | None = None,
        job_definition_id: str | None = None,
        dataset_type: str | None = None,
        dagster_run_id: str | None = None,
        asset_key: str | None = None,
        partition_key: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[JobRun]:
        """One page of runs in the scope, newest first, matching every given filter."""
        scope = Scope(tenant, environment)
        filters = RunFilters(
            job_type=enum_value(job_type, JobType, "job_type") if job_type is not None else None,
            status=enum_value(status, JobRunStatus, "status") if status is not None else None,
            job_definition_id=validate_id(job_definition_id, "job_definition_id")
            if job_definition_id is not None
            else None,
            dataset_type=(opt_str(dataset_type, "dataset_type") or "").lower() or None,
            dagster_run_id=opt_str(dagster_run_id, "dagster_run_id"),
            asset_key=opt_str(asset_key, "asset_key"),
            partition_key=opt_str(partition_key, "partition_key"),
            since=opt_time(since, "since"),
            until=opt_time(until, "until"),
        )
        docs, next_cursor = self._list_runs(
            scope.tenant, scope.environment, check_limit(limit), decode_run_cursor(cursor), filters
        )
        return Page([self._decode_in_scope(scope, d) for d in docs], next_cursor)

    def list_documents(
        self,
        tenant: str,
        environment: str,
        *,
        since: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[builtins.list[bytes | str], str | None]:
        """One page of the scope's run records as stored (canonical JSON), newest first, and the
        cursor of the next page (``None`` on the last), as ``list`` pages: for readers that hash
        or compare records before deciding which to decode (the data-docs site lists every
        record on each rebuild and decodes only the changed ones); ``decode_in_scope`` decodes one.
        """
        scope = Scope(tenant, environment)
        filters = RunFilters(since=opt_time(since, "since"))
        docs, next_cursor = self._list_runs(
            scope.tenant, scope.environment, check_limit(limit), decode_run_cursor(cursor), filters
        )
        return builtins.list(docs), next_cursor

    def decode_in_scope(self, tenant: str, environment: str, document: bytes | str) -> JobRun:
        """A record from ``list_documents`` as a ``JobRun``; ``ScopeViolationError`` if it
        belongs to another scope.
        """
        return self._decode_in_scope(Scope(tenant, environment), document)

    def list_by_tenant(self, tenant: str, environment: str | None = None) -> Iterator[JobRun]:
        """Every run of ``tenant`` (in one environment, or in all when None), newest first."""
        validate_id(tenant, "tenant")
        if environment is not None:
            validate_id(environment, "environment")

        def runs() -> Iterator[JobRun]:
            after: builtins.list[Any] | None = None
            while True:
                docs, next_cursor = self._list_runs(tenant, environment, 500, after, RunFilters())
                for doc in docs:
                    run = self._decode(doc)
                    if run.tenant_id != tenant or (
                        environment is not None and run.environment != environment
                    ):
                        raise ScopeViolationError(f"stored job run does not belong to tenant {tenant}")
                    yield run
                if next_cursor is None:
                    return
                after = decode_run_cursor(next_cursor)

        return runs()

    def delete(
        self,
        tenant: str,
        environment: str,
        job_id: str,
        version: str | None = None,
        *,
        if_match: str | None = None,
    ) -> bool:
        """Delete a run record; returns whether it existed. Stale ``if_match``: ``ConflictError``."""
        if version is not None:
            raise InvalidArtifactError("job runs are not versioned", field="version")
        check_write_options(if_match, False)
        return self._delete_run(Scope(tenant, environment), self._id(job_id), if_match)

    # results (claim check): ``dq_stores.results.ResultStore`` does the work ---------------------
    supports_inline_results: ClassVar[bool] = False
    """The backend can keep small results inline (SQL); others always use a payload store."""
    _result_store: ResultStore | None = None

    @property
    def results(self) -> ResultStore:
        """Where this store's results live (``open_stores`` configures it)."""
        if self._result_store is None:
            self._result_store = ResultStore(self)
        return self._result_store

    def configure_results(
        self,
        payloads: PayloadStore | None,
        offload_threshold: int | None = None,
        *,
        legacy: Sequence[PayloadStore] | None = None,
    ) -> None:
        """Set where large results go and from which size (bytes) they are offloaded; ``legacy``
        replaces the read-only older locations (kept as they are when ``None``).
        """
        current = self._result_store
        self._result_store = ResultStore(
            self,
            payloads,
            legacy=tuple(legacy) if legacy is not None else (current.legacy if current else ()),
            offload_threshold=offload_threshold
            if offload_threshold is not None
            else (current.offload_threshold if current else None),
        )

    @property
    def payloads(self) -> PayloadStore | None:
        """Where results over ``offload_threshold`` go (under this store's own namespace)."""
        return self.results.payloads

    @property
    def legacy_payloads(self) -> tuple[PayloadStore, ...]:
        """Older results locations this store still reads, never writes nor collects."""
        return self.results.legacy

    @property
    def offload_threshold(self) -> int:
        return self.results.offload_threshold

    @property
    def results_location(self) -> str:
        """Where offloaded results go, secrets redacted; says so when there is no such place."""
        return self.results.location

    def store_id(self, *, create: bool = False) -> str | None:
        """The store's identity, recorded in its own metadata (``None`` if it has none yet and
        ``create`` is false). Payloads live under ``<results location>/<store id>/``, so stores
        sharing a results location never collect or delete each other's payloads.
        """
        return self._store_identity(create)

    # The claim-check API of the design note, on the run store (see ``ResultStore``).
    def put_result(
        self,
        tenant: str,
        environment: str,
        job_id: str,
        result: Any,
        *,
        content_type: str | None = None,
        result_type: str | None = None,
        offload: bool | None = None,
    ) -> ResultRef:
        """Store a run's result and point the run record at it (``ResultStore.put_result``)."""
        return self.results.put_result(
            tenant,
            environment,
            job_id,
            result,
            content_type=content_type,
            result_type=result_type,
            offload=offload,
        )

    def put_with_result(
        self,
        run: JobRun | Mapping[str, Any],
        result: Any,
        *,
        if_match: str | None = None,
        create_only: bool = False,
        content_type: str | None = None,
        result_type: str | None = None,
        offload: bool | None = None,
    ) -> tuple[str, ResultRef]:
        """Write a run and its result as one item, result first (``ResultStore.put_with_result``)."""
        return self.results.put_with_result(
            run,
            result,
            if_match=if_match,
            create_only=create_only,
            content_type=content_type,
            result_type=result_type,
            offload=offload,
        )

    def needs_results_location(self, size_bytes: int) -> bool:
        return self.results.needs_results_location(size_bytes)

    def result_readable(self, run: JobRun) -> bool:
        return self.results.result_readable(run)

    def iter_result(self, tenant: str, environment: str, job_id: str) -> Iterator[bytes]:
        """Stream a run's result, hash and size checked at the end (``PayloadIntegrityError``)."""
        return self.results.iter_result(tenant, environment, job_id)

    def iter_run_result(self, run: JobRun) -> Iterator[bytes]:
        return self.results.iter_run_result(run)

    def get_result(self, tenant: str, environment: str, job_id: str) -> bytes:
        """A run's result bytes, verified against the sha256 and size its record holds."""
        return self.results.get_result(tenant, environment, job_id)

    def get_result_model(self, tenant: str, environment: str, job_id: str) -> Any:
        """The result parsed into its report model (by ``result_type``), else plain JSON."""
        return self.results.get_result_model(tenant, environment, job_id)

    def delete_result(self, tenant: str, environment: str, job_id: str) -> bool:
        return self.results.delete_result(tenant, environment, job_id)

    def delete_with_result(self, tenant: str, environment: str, job_id: str) -> bool:
        """Delete a run record, then its result payload if this store wrote it."""
        return self.results.delete_with_result(tenant, environment, job_id)

    def purge_run(self, tenant: str, environment: str, job_id: str) -> PurgedRun:
        return self.results.purge_run(tenant, environment, job_id)

    def gc_payloads(
        self, *, prefix: str = "", older_than: timedelta = timedelta(hours=1), dry_run: bool = False
    ) -> builtins.list[str]:
        """Remove this store's payloads no record points to, older than ``older_than``."""
        return self.results.gc_payloads(prefix=prefix, older_than=older_than, dry_run=dry_run)

    @abstractmethod
    def _store_identity(self, create: bool) -> str | None:
        """The identity recorded in the backend's metadata; create and record one if ``create``
        and there is none (race-safe: two processes end with the same identity).
        """

    def _put_inline(self, scope: Scope, job_id: str, body: bytes, sha256: str, content_type: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} keeps no inline results")

    def _get_inline(self, scope: Scope, job_id: str, sha256: str) -> bytes | None:
        raise NotImplementedError(f"{type(self).__name__} keeps no inline results")

    def _delete_inline(self, scope: Scope, job_id: str, keep: str | None = None) -> None:
        """Remove a run's inline result bodies, except the one whose sha256 is ``keep`` (no-op for
        backends without inline results).
        """

    # backend primitives -----------------------------------------------------------------------
    @abstractmethod
    def _put_run(
        self,
        scope: Scope,
        index: RunIndex,
        document: bytes,
        content_hash: str,
        *,
        if_match: str | None,
        create_only: bool,
    ) -> str: ...

    @abstractmethod
    def _get_run(self, scope: Scope, job_id: str) -> StoredDoc | None: ...

    @abstractmethod
    def _list_runs(
        self,
        tenant: str,
        environment: str | None,
        limit: int,
        after: builtins.list[Any] | None,
        filters: RunFilters,
    ) -> tuple[builtins.list[bytes | str], str | None]:
        """Documents newest first by (run time desc, job_id desc, environment desc) strictly after
        the cursor values ``[run_time, job_id, environment]`` (run time as ``sortable_time``
        writes it; ``parse_sortable_time`` reads it back);
        ``environment=None`` spans all environments of the tenant.
        """

    @abstractmethod
    def _delete_run(self, scope: Scope, job_id: str, if_match: str | None) -> bool: ...
