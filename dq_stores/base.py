"""Store interfaces (the design note's public names), pages, revisions and capability flags.

Every public method validates its scope, ids, filters and cursor here, once, and then calls a
small set of backend primitives (``_put``, ``_get``, ``_list``, ``_delete``, ...) that receive
only validated values. Backends (SQL, filesystem, Azure Blob) implement the primitives; the
behaviour callers see is written once, in this module, and checked for every backend by the
conformance suite in ``dq_stores.testing``. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

import pydantic

from dq_stores.canonical import canonical_json, sha256_hex
from dq_stores.errors import InvalidArtifactError, ScopeViolationError
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
from dq_stores.payloads import DEFAULT_OFFLOAD_THRESHOLD, PayloadStore
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
]

T = TypeVar("T", bound=CanonicalModel)
V = TypeVar("V", DataContract, JobDefinition, ActionProfile)
MAX_PAGE_SIZE = 1000


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
class PurgedRun:
    """What ``JobRunStore.purge_run`` did: whether the record was deleted, and what happened to
    its result (``None`` when it had none).
    """

    deleted: bool
    result: str | None


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


# -- cursors ------------------------------------------------------------------------------------


def encode_cursor(values: Sequence[Any]) -> str:
    """Opaque keyset cursor: the sort key of the last item of a page."""
    raw = json.dumps(list(values), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, arity: int) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidArtifactError("cursor is not one this store issued", field="cursor") from exc
    if not isinstance(values, list) or len(values) != arity:
        raise InvalidArtifactError("cursor is not one this store issued", field="cursor")
    return values


def sortable_time(value: datetime) -> str:
    """Fixed-width UTC text of a timestamp (always microseconds): sorts like the datetime."""
    from dq_stores.models.common import _to_utc

    v = _to_utc(value)
    # Not strftime: glibc does not zero-pad years before 1000, which would break the ordering.
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}Z"


def parse_sortable_time(value: Any) -> datetime:
    from datetime import UTC

    if not isinstance(value, str):
        raise InvalidArtifactError("cursor is not one this store issued", field="cursor")
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidArtifactError("cursor is not one this store issued", field="cursor") from exc


def decode_artifact_cursor(cursor: str | None) -> list[Any] | None:
    """``[artifact_id, version_key, version]``, each checked, or ``None``."""
    values = decode_cursor(cursor, 3)
    if values is None:
        return None
    aid, vkey, ver = values
    try:
        validate_id(aid, "cursor")
        validate_id(ver, "cursor")
    except InvalidArtifactError as exc:
        raise InvalidArtifactError("cursor is not one this store issued", field="cursor") from exc
    if not isinstance(vkey, str) or len(vkey) > 1024:
        raise InvalidArtifactError("cursor is not one this store issued", field="cursor")
    return values


def decode_run_cursor(cursor: str | None) -> list[Any] | None:
    """``[run_time, job_id, environment]``, each checked, or ``None``."""
    values = decode_cursor(cursor, 3)
    if values is None:
        return None
    parse_sortable_time(values[0])
    try:
        validate_id(values[1], "cursor")
        validate_id(values[2], "cursor")
    except InvalidArtifactError as exc:
        raise InvalidArtifactError("cursor is not one this store issued", field="cursor") from exc
    return values


def _check_write_options(if_match: Any, create_only: Any) -> None:
    # Checked here, not left to a driver: a list bound as an etag is a database error there.
    if if_match is not None and not isinstance(if_match, str):
        raise InvalidArtifactError("if_match must be an etag string", field="if_match")
    if not isinstance(create_only, bool):
        raise InvalidArtifactError("create_only must be True or False", field="create_only")


def _check_limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidArtifactError(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}", field="limit")
    return limit


def _enum_value(value: Any, enum: type[Enum], field_name: str) -> str:
    try:
        return str(enum(value).value)
    except ValueError as exc:
        allowed = ", ".join(str(m.value) for m in enum)
        raise InvalidArtifactError(
            f"{field_name} {value!r} is not one of: {allowed}", field=field_name
        ) from exc


def _opt_str(value: Any, field_name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise InvalidArtifactError(f"{field_name} must be a non-empty string", field=field_name)
    return _check_text(value, field_name)


def _check_text(value: str, field_name: str) -> str:
    """Refuse text no backend can bind: NUL (Postgres text) and lone surrogates (not UTF-8)."""
    if "\x00" in value:
        raise InvalidArtifactError(f"{field_name} must not contain NUL characters", field=field_name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArtifactError(
            f"{field_name} is not valid Unicode text (lone surrogate at {exc.start})", field=field_name
        ) from exc
    return value


_KEY_PREFIX_RE = re.compile(r"[A-Za-z0-9._/-]*")

# RFC 6838 type/subtype, optionally with ``; name=value`` parameters: it is sent as an HTTP header
# by the Blob payload store, so a CR/LF or control character must never get through.
_TOKEN = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_CONTENT_TYPE_RE = re.compile(
    rf"{_TOKEN}/{_TOKEN}(?:\s*;\s*{_TOKEN}=(?:{_TOKEN}|\"[\x20\x21\x23-\x5b\x5d-\x7e]*\"))*"
)


def _content_type(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 255 or _CONTENT_TYPE_RE.fullmatch(value) is None:
        shown = repr(value)[:60] if isinstance(value, str) else type(value).__name__
        raise InvalidArtifactError(
            f"content_type {shown} is not a media type such as application/json", field="content_type"
        )
    return value


def _label(value: Any, field_name: str) -> str | None:
    """An optional short printable label (no control characters), e.g. a result type."""
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 128 or not value.isprintable():
        raise InvalidArtifactError(f"{field_name} must be 1 to 128 printable characters", field=field_name)
    return value


def _opt_time(value: Any, field_name: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidArtifactError(f"{field_name} must be a datetime", field=field_name)
    from dq_stores.models.common import _to_utc

    return _to_utc(value)


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
    supports_listing_all_scopes: ClassVar[bool] = True
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
        _check_write_options(if_match, create_only)
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
        docs, next_cursor = self._list(scope, _check_limit(limit), decode_artifact_cursor(cursor), parsed)
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
        _check_write_options(if_match, False)
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
            values["status"] = _opt_str(getattr(filters["status"], "value", filters["status"]), "status")
        if filters.get("dataset_type") is not None:
            values["dataset_type"] = str(_opt_str(filters["dataset_type"], "dataset_type")).lower()
        if filters.get("tags"):
            tags = filters["tags"]
            if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
                raise InvalidArtifactError("tags must be a list of strings", field="tags")
            for tag in tags:
                _check_text(tag, "tags")
            values["tags"] = tuple(sorted(set(tags)))
        if filters.get("action_type") is not None:
            values["action_type"] = _enum_value(filters["action_type"], ActionType, "action_type")
        if filters.get("trigger_type") is not None:
            from dq_stores.models import TriggerType

            values["trigger_type"] = _enum_value(filters["trigger_type"], TriggerType, "trigger_type")
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
        wanted = _opt_str(dataset_type, "dataset_type")
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
        _check_write_options(if_match, create_only)
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
            job_type=_enum_value(job_type, JobType, "job_type") if job_type is not None else None,
            status=_enum_value(status, JobRunStatus, "status") if status is not None else None,
            job_definition_id=validate_id(job_definition_id, "job_definition_id")
            if job_definition_id is not None
            else None,
            dataset_type=(_opt_str(dataset_type, "dataset_type") or "").lower() or None,
            dagster_run_id=_opt_str(dagster_run_id, "dagster_run_id"),
            asset_key=_opt_str(asset_key, "asset_key"),
            partition_key=_opt_str(partition_key, "partition_key"),
            since=_opt_time(since, "since"),
            until=_opt_time(until, "until"),
        )
        docs, next_cursor = self._list_runs(
            scope.tenant, scope.environment, _check_limit(limit), decode_run_cursor(cursor), filters
        )
        return Page([self._decode_in_scope(scope, d) for d in docs], next_cursor)

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
        _check_write_options(if_match, False)
        return self._delete_run(Scope(tenant, environment), self._id(job_id), if_match)

    # results (claim check) --------------------------------------------------------------------
    payloads: PayloadStore | None = None
    """Where results over ``offload_threshold`` go (new payloads are written here, under this
    store's own namespace); set by ``open_stores(results_url=...)`` or the backend's default."""
    legacy_payloads: tuple[PayloadStore, ...] = ()
    """Older results locations this store still reads (payloads written before store identities,
    e.g. SQLite's former shared ``results/`` folder). Never written to, never garbage-collected."""
    offload_threshold: int = DEFAULT_OFFLOAD_THRESHOLD
    supports_inline_results: ClassVar[bool] = False
    """The backend can keep small results inline (SQL); others always use ``payloads``."""

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
        self.payloads = payloads
        if legacy is not None:
            self.legacy_payloads = tuple(legacy)
        if offload_threshold is not None:
            if offload_threshold < 0:
                raise InvalidArtifactError("offload_threshold must be >= 0", field="offload_threshold")
            self.offload_threshold = offload_threshold

    @property
    def results_location(self) -> str:
        """Where offloaded results go, secrets redacted; says so when there is no such place."""
        if self.payloads is None:
            return (
                "no results location (results stay inline)"
                if self.supports_inline_results
                else ("no results location")
            )
        return self.payloads.location

    def store_id(self, *, create: bool = False) -> str | None:
        """The store's identity, recorded in its own metadata (``None`` if it has none yet and
        ``create`` is false). Payloads live under ``<results location>/<store id>/``, so stores
        sharing a results location never collect or delete each other's payloads.
        """
        return self._store_identity(create)

    @abstractmethod
    def _store_identity(self, create: bool) -> str | None:
        """The identity recorded in the backend's metadata; create and record one if ``create``
        and there is none (race-safe: two processes end with the same identity).
        """

    def _own_key(self, uri: str) -> str | None:
        """The key (below this store's namespace) of a payload this store wrote, else ``None``."""
        if self.payloads is None or not self.payloads.owns(uri):
            return None
        namespace = self.store_id()
        key = self.payloads.key_of(uri)
        if namespace is None or not key.startswith(f"{namespace}/"):
            return None
        return key

    def _reader_for(self, uri: str) -> PayloadStore | None:
        for store in (self.payloads, *self.legacy_payloads):
            if store is not None and store.owns(uri):
                return store
        return None

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
        """Store a run's result and point the run record at it; return the reference.

        ``result`` is a report model, a JSON value, ``bytes``, an iterable of byte chunks or a
        binary file (the last two always stream to the payload store). Small results stay inline
        where the backend can; ``offload=True`` forces the payload store, ``False`` forces inline.
        Payload first, record second: a crash in between leaves an orphan payload for ``gc``, never
        a record pointing at nothing. Raises ``NotFoundError`` if the run does not exist.
        """
        from dq_stores.errors import NotFoundError

        scope = Scope(tenant, environment)
        job_id = self._id(job_id)
        if self.get_entry(tenant, environment, job_id) is None:
            raise NotFoundError(f"job run {job_id} not found in {scope}")
        ref = self._write_result(scope, job_id, result, content_type, result_type, offload)
        try:
            old = self._attach_result(scope, job_id, ref)
        except BaseException:
            self._discard_written(scope, job_id, ref)
            raise
        self._after_result_switch(scope, job_id, old, ref)
        return ref

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
        """Write a run record and its result as one item: the result first (payload or inline
        body), then the record pointing at it; return ``(etag, ref)``.

        If the result cannot be written (no results location for a result that must be offloaded,
        a failing payload store) nothing is written at all; if the record cannot be written
        (``ConflictError``, a refused status change, an outage) the result just written is removed
        again (best effort; a crash leaves an orphan for ``gc_payloads``). Any ``result`` field of
        ``run`` is replaced by the new reference. Used by ``copy`` and ``import``.
        """
        model = self._coerce(run)
        scope = Scope(model.tenant_id, model.environment)
        _check_write_options(if_match, create_only)
        existing = None if create_only else self.get_entry(scope.tenant, scope.environment, model.job_id)
        ref = self._write_result(scope, model.job_id, result, content_type, result_type, offload)
        try:
            etag = self.put(
                model.model_copy(update={"result": ref}), if_match=if_match, create_only=create_only
            )
        except BaseException:
            self._discard_written(scope, model.job_id, ref)
            raise
        old = existing.artifact.result if existing is not None else None
        self._after_result_switch(scope, model.job_id, old, ref)
        return etag, ref

    def needs_results_location(self, size_bytes: int) -> bool:
        """Whether a result of ``size_bytes`` would have to go to a results location here."""
        return not self.supports_inline_results or size_bytes > self.offload_threshold

    def _write_result(
        self,
        scope: Scope,
        job_id: str,
        result: Any,
        content_type: str | None,
        result_type: str | None,
        offload: bool | None,
    ) -> ResultRef:
        """Write the result's bytes (inline body or payload) and return the reference to them;
        nothing points at them yet.
        """
        from dq_stores.payloads import result_key

        content_type = _content_type(content_type)
        result_type = _label(result_type, "result_type")
        data: Any
        if isinstance(result, (CanonicalModel, Mapping | list)):
            try:
                data = canonical_json(result)
            except RecursionError as exc:
                raise InvalidArtifactError(
                    "result is nested too deeply to be stored as JSON", field="result"
                ) from exc
            content_type = content_type or "application/json"
            result_type = result_type or getattr(result, "report_type", None)
        elif isinstance(result, bytes | bytearray | memoryview):
            data = bytes(result)
        elif isinstance(result, str) or not (hasattr(result, "read") or isinstance(result, Iterable)):
            raise InvalidArtifactError(
                f"a result is a report, a JSON object or list, bytes, an iterable of bytes or a binary "
                f"file; got {type(result).__name__} (encode text first)",
                field="result",
            )
        else:
            data = result  # a stream: size unknown until written
        content_type = content_type or "application/octet-stream"
        small = isinstance(data, bytes) and len(data) <= self.offload_threshold
        use_inline = (
            self.supports_inline_results
            and isinstance(data, bytes)
            and (offload is False or (offload is None and small))
        )
        if use_inline:
            assert isinstance(data, bytes)
            digest = sha256_hex(data)
            self._put_inline(scope, job_id, data, digest, content_type)
            return ResultRef(
                location="inline",
                sha256=digest,
                size_bytes=len(data),
                content_type=content_type,
                result_type=result_type,
            )
        if self.payloads is None:
            from dq_stores.errors import NoResultsLocationError

            size = f"{len(data):,} bytes" if isinstance(data, bytes) else "a stream"
            raise NoResultsLocationError(
                f"the result of job run {job_id} in {scope} ({size}) must be offloaded, but these "
                "stores have no results location; open them with results_url=... "
                "(DQ_STORES_RESULTS_URL, the CLI's --results-url)"
            )
        namespace = self.store_id(create=True)
        known: str | None = None
        if isinstance(data, bytes):
            known = sha256_hex(data)
            key = result_key(scope, job_id, known, content_type, namespace=namespace)
        else:
            import uuid

            key = result_key(scope, job_id, uuid.uuid4().hex, content_type, namespace=namespace)
        info = self.payloads.write(key, data, content_type=content_type, sha256=known)
        return ResultRef(
            location="external",
            uri=info.uri,
            sha256=info.sha256,
            size_bytes=info.size_bytes,
            content_type=content_type,
            result_type=result_type,
        )

    def _discard_written(self, scope: Scope, job_id: str, ref: ResultRef) -> None:
        """Best-effort removal of a result written for a record that was then not written."""
        try:
            if ref.location == "inline":
                # Every body but the one the record points at is an orphan now.
                current = self.get(scope.tenant, scope.environment, job_id)
                kept = current.result if current is not None else None
                keep = kept.sha256 if kept is not None and kept.location == "inline" else None
                self._delete_inline(scope, job_id, keep=keep)
            else:
                self._drop_payload(ref)
        except Exception:
            pass

    def _after_result_switch(self, scope: Scope, job_id: str, old: ResultRef | None, ref: ResultRef) -> None:
        # Only now that the record points at the new result may the old one go.
        if old is not None and old.location == "external" and old.uri != ref.uri:
            self._drop_payload(old)
        if ref.location == "inline":
            self._delete_inline(scope, job_id, keep=ref.sha256)
        elif old is not None and old.location == "inline":
            self._delete_inline(scope, job_id)

    def _attach_result(self, scope: Scope, job_id: str, ref: ResultRef) -> ResultRef | None:
        from dq_stores.errors import ConflictError, NotFoundError

        for _ in range(20):
            entry = self.get_entry(scope.tenant, scope.environment, job_id)
            if entry is None:
                raise NotFoundError(f"job run {job_id} disappeared from {scope} while storing its result")
            old = entry.artifact.result
            updated = entry.artifact.model_copy(update={"result": ref})
            try:
                self.put(updated, if_match=entry.etag)
            except ConflictError:
                continue  # another writer updated the run; re-read and re-apply
            return old
        raise ConflictError(f"job run {job_id} in {scope} kept changing; result not attached")

    def _drop_payload(self, ref: ResultRef) -> bool:
        """Delete a referenced payload if this store wrote it (its own namespace); ``False`` when
        it is left in place (another store's or a pre-identity payload, or already gone).
        """
        if self.payloads is None or ref.uri is None or self._own_key(ref.uri) is None:
            return False
        return self.payloads.delete(ref.uri)

    def iter_result(self, tenant: str, environment: str, job_id: str) -> Iterator[bytes]:
        """Stream a run's result; the hash and size are checked at the end, and a mismatch raises
        ``PayloadIntegrityError`` (so a consumer must not trust the data before the stream ends).
        """
        run = self.get(tenant, environment, job_id)
        if run is None:
            from dq_stores.errors import NotFoundError

            raise NotFoundError(f"job run {job_id} not found in {Scope(tenant, environment)}")
        return self.iter_run_result(run)

    def result_readable(self, run: JobRun) -> bool:
        """Whether these stores can read ``run``'s result (inline, or at a location they were
        opened with); no request is made. ``False`` for a run without a result.
        """
        ref = run.result
        if ref is None:
            return False
        return ref.location == "inline" or (ref.uri is not None and self._reader_for(ref.uri) is not None)

    def iter_run_result(self, run: JobRun) -> Iterator[bytes]:
        """Stream the result of a run record just read (saves the lookup ``iter_result`` makes)."""
        import hashlib

        from dq_stores.errors import NotFoundError, PayloadIntegrityError

        scope = Scope(run.tenant_id, run.environment)
        job_id = run.job_id
        ref = run.result
        if ref is None:
            raise NotFoundError(f"job run {job_id} in {scope} has no result")
        chunks: Iterable[bytes]
        if ref.location == "inline":
            body = self._get_inline(scope, job_id, ref.sha256)
            if body is None:
                raise NotFoundError(f"inline result of job run {job_id} in {scope} is missing")
            chunks = (body,)
        else:
            assert ref.uri is not None
            reader = self._reader_for(ref.uri)
            if reader is None:
                from dq_stores.secrets import redact

                raise NotFoundError(
                    f"result of job run {job_id} in {scope} lives at {redact(ref.uri)}, a location these "
                    f"stores were not opened with (their results location: {self.results_location}); "
                    "open them with that results_url"
                )
            chunks = reader.read_chunks(ref.uri)

        def verified() -> Iterator[bytes]:
            digest = hashlib.sha256()
            size = 0
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                yield chunk
            if digest.hexdigest() != ref.sha256 or size != ref.size_bytes:
                raise PayloadIntegrityError(
                    f"result of job run {job_id} in {scope} is corrupt: expected sha256 {ref.sha256[:12]}... "
                    f"and {ref.size_bytes} bytes, found {digest.hexdigest()[:12]}... and {size} bytes"
                )

        return verified()

    def get_result(self, tenant: str, environment: str, job_id: str) -> bytes:
        """A run's result bytes, verified against the sha256 and size its record holds."""
        return b"".join(self.iter_result(tenant, environment, job_id))

    def get_result_model(self, tenant: str, environment: str, job_id: str) -> Any:
        """The result parsed into its report model (by ``result_type``), else plain JSON."""
        from dq_stores.models import CleansingReport, ProfilingSnapshot, ValidationReport

        run = self.get(tenant, environment, job_id)
        data = self.get_result(tenant, environment, job_id)
        models: dict[str, type[CanonicalModel]] = {
            "validation": ValidationReport,
            "cleansing": CleansingReport,
            "profiling": ProfilingSnapshot,
        }
        model = models.get((run.result.result_type or "") if run and run.result else "")
        return model.model_validate_json(data) if model else json.loads(data)

    def delete_result(self, tenant: str, environment: str, job_id: str) -> bool:
        """Remove a run's result: record first (it stops pointing at it), then the payload (if this
        store wrote it).
        """
        scope = Scope(tenant, environment)
        job_id = self._id(job_id)
        entry = self.get_entry(tenant, environment, job_id)
        if entry is None or entry.artifact.result is None:
            return False
        ref = entry.artifact.result
        self.put(entry.artifact.model_copy(update={"result": None}), if_match=entry.etag)
        if ref.location == "inline":
            self._delete_inline(scope, job_id)
        else:
            self._drop_payload(ref)
        return True

    def delete_with_result(self, tenant: str, environment: str, job_id: str) -> bool:
        """Delete a run record and then its result payload (retention): nothing left orphaned.
        A payload this store did not write (another store's, or one from before store identities)
        is left in place: see ``purge_run``, which says so.
        """
        return self.purge_run(tenant, environment, job_id).deleted

    def purge_run(self, tenant: str, environment: str, job_id: str) -> PurgedRun:
        """Delete a run record, then its result: what ``delete_with_result`` does, reporting what
        happened to the result (``"deleted"``, ``"inline"``, ``"left in place: ..."``, ``None``).
        """
        scope = Scope(tenant, environment)
        entry = self.get_entry(tenant, environment, job_id)
        if entry is None:
            return PurgedRun(False, None)
        self.delete(tenant, environment, job_id, if_match=entry.etag)
        ref = entry.artifact.result
        if ref is None:
            return PurgedRun(True, None)
        if ref.location == "inline":
            self._delete_inline(scope, entry.artifact.job_id)
            return PurgedRun(True, "deleted (inline)")
        if self._drop_payload(ref):
            return PurgedRun(True, "deleted")
        from dq_stores.secrets import redact

        uri = redact(ref.uri or "?")
        if ref.uri is not None and self.payloads is not None and self.payloads.owns(ref.uri):
            why = "written by another store or before store identities"
            if self._own_key(ref.uri) is not None:
                why = "already gone"
        else:
            why = "not in this store's results location"
        return PurgedRun(True, f"left in place ({why}): {uri}")

    def gc_payloads(
        self, *, prefix: str = "", older_than: timedelta = timedelta(hours=1), dry_run: bool = False
    ) -> builtins.list[str]:
        """Remove payloads of this store (its own namespace in its results location) that no run
        record points to (orphans of crashed writes), if older than ``older_than`` (a grace period
        so in-flight writes are not collected). Returns their URIs. Payloads of other stores
        sharing the location, and payloads written before store identities, are never touched.
        """
        from datetime import UTC

        from dq_stores.payloads import parse_result_key

        if not isinstance(prefix, str) or len(prefix) > 1024 or _KEY_PREFIX_RE.fullmatch(prefix) is None:
            # Keys are built from validated ids only, so any other prefix could never match; and
            # it is passed to the payload store's listing, where a NUL or control character makes
            # a service fail (and retry) instead of answering "nothing".
            raise InvalidArtifactError(
                "prefix may only contain letters, digits, '.', '_', '-' and '/'", field="prefix"
            )
        if self.payloads is None:
            return []
        namespace = self.store_id()
        if namespace is None:
            return []  # this store never wrote a payload
        cutoff = datetime.now(UTC) - older_than
        removed: builtins.list[str] = []
        for listing in self.payloads.list(f"{namespace}/{prefix}"):
            if listing.modified > cutoff:
                continue
            parsed = parse_result_key(listing.key, namespace)
            if parsed is None:
                continue
            scope, job_id = parsed
            run = self.get(scope.tenant, scope.environment, job_id)
            if run is not None and run.result is not None and run.result.uri == listing.uri:
                continue
            if not dry_run:
                self.payloads.delete(listing.uri)
            removed.append(listing.uri)
        return removed

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
