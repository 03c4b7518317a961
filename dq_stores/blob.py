"""The Azure Blob Storage backend: the four stores (the design note's ``AzureBlobJobRunStore``
and its siblings) and the Blob result-payload store, on one shared ``ContainerClient``.

This module holds the blob layout, the write protocols and the listings. Connecting (URL forms,
credentials) and error translation live in ``dq_stores.blob_client``; the behaviour callers see
is written once in ``dq_stores.base``. Open with ``open_stores("azure-blob://...")`` (URL forms
and options: ``dq_stores.blob_client``) or ``AzureBlobJobRunStore.from_url(...)``.

Layout (every name is built from ids validated by ``dq_stores.scope``; a tenant, environment or
id that ends with ``.`` is written with ``%2E`` in its place, because Azure advises against path
segments ending with a dot)::

    <prefix>/<tenant>/<env>/<kind>/current/<id>/<version>.json
        the current revision of a contract / job definition / action profile; its metadata holds
        the content hash, revision number, a generation id, the revision time and the list
        index (status, retired, tags, dataset types, action types, trigger type)
    <prefix>/<tenant>/<env>/<kind>/history/<id>/<version>/<generation>/rev-00000001.json
        earlier revisions, immutable; revision n is copied here by the put that writes n+1
    <prefix>/<tenant>/<env>/job_runs/<job_id>.json
        a job run (metadata: content hash, status, run time, first-recorded time)
    <prefix>/<tenant>/<env>/job_runs/.by-time/<inverted run time>-<inverted job id>~
        an empty index entry per run, named so that a plain prefix listing returns the newest run
        first; its metadata repeats the run's filter fields
    <prefix>/<tenant>/<env>/job_runs/<job_id>/result-<sha256[:16]>.<ext>
        result payloads (``dq_stores.results.payloads.result_key``), when results go to this container

Concurrency: every write that replaces something is conditional on the etag read before it
(``If-Match``), every create is ``If-None-Match: *``; callers' ``if_match`` etags are the blob
etags of the current blob, so the etag a put returns works as ``if_match`` for the next one.
A versioned put writes revision n+1 into the current blob in one conditional request, after
copying revision n (deterministic content) into history, so a crash never loses a revision.
A run put writes its index entry as *pending* (no metadata: readers must check the run itself)
before the conditional write of the run, and marks it final afterwards; entries left stale by a
crash or a lost race are skipped by readers, who always check the run they return.

What each operation costs, in Blob requests (N = current (id, version) pairs of the kind in the
scope, one list request per 5,000 of them; lists download the returned items in parallel)::

    versioned put                new key: 2 (1 with create_only); changed: 3; identical: 1
    get(id, version)             1
    get(id) latest               1 list of that id's versions + 1
    get_latest_for_dataset       ceil(N/5000) lists + 1   (no artifact is downloaded to choose)
    list / iter_all / versions   ceil(N/5000) lists + 1 per returned item (filtered by metadata)
    history                      2;  get_revision: 1 (current) or 2
    delete(id, version)          2 + 1 list + 1 per revision;  delete(id): 1 list + that per version
    run put                      4 (HEAD, index entry, run, index metadata); identical: 1;
                                 +2 when the run's time changes
    run get                      1;  run delete: 4
    run list / list_by_tenant    1 list (+1 per 5,000 skipped entries) + 1 per returned run + 1
                                 look-ahead; all environments: +1 list + 1 list per environment
    put_many                     run puts, 8 in parallel

Index metadata over 6 KB (huge tag lists, long asset keys) is not written; such items are
downloaded to be filtered, which is correct but costs one request each.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import hashlib
import heapq
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, Self, TypeVar
from urllib.parse import quote, unquote, urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobProperties, ContentSettings

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
)
from dq_stores.blob_client import (
    BlobConnection,
    connect_container,
    error_code,
    scrub_exception,
    translate_azure_error,
)
from dq_stores.canonical import sha256_hex
from dq_stores.errors import BackendUnavailableError, ConflictError, InvalidArtifactError, NotFoundError
from dq_stores.inputs import encode_cursor, parse_sortable_time, sortable_time
from dq_stores.kinds import ArtifactIndex, Kind, RunIndex
from dq_stores.models import JobRun, JobRunStatus
from dq_stores.models.job_runs import check_transition
from dq_stores.results.payloads import PayloadInfo, PayloadListing, PayloadStore, iter_chunks
from dq_stores.scope import Scope, validate_id
from dq_stores.secrets import redact
from dq_stores.stores import Backend, Stores
from dq_stores.versions import version_key

__all__ = [
    "AzureBlobActionProfileStore",
    "AzureBlobContractStore",
    "AzureBlobJobDefinitionStore",
    "AzureBlobJobRunStore",
    "BlobBackend",
    "BlobLayout",
    "BlobPayloadStore",
    "descending_id",
    "descending_time",
    "open_blob_backend",
    "open_blob_payload_store",
    "open_blob_stores",
]

log = logging.getLogger(__name__)
R = TypeVar("R")
X = TypeVar("X")

MAX_INDEX_METADATA = 6000
"""Largest index metadata value written (Azure allows 8 KB of metadata per blob in total)."""
LIST_PAGE = 5000
"""Azure's maximum page of a blob listing."""
_RETRIES = 12
"""Attempts of an upsert (no ``if_match``) that keeps losing races before ``ConflictError``."""

# -- names ----------------------------------------------------------------------------------------

_ID_ALPHABET = "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"  # ASCII order
_INVERT_ID = str.maketrans(_ID_ALPHABET, _ID_ALPHABET[::-1])
_INVERT_DIGITS = str.maketrans("0123456789", "9876543210")
_END = "~"  # sorts above every id character


def descending_id(value: str) -> str:
    """An encoding of a validated id whose byte order is the reverse of the id's (a proper prefix
    sorts after its extensions thanks to the ``~`` terminator), for newest-first listings.
    """
    return value.translate(_INVERT_ID) + _END


def id_from_descending(value: str) -> str:
    if not value.endswith(_END):
        raise ValueError("not a descending id")
    return value[:-1].translate(_INVERT_ID)


def descending_time(value: datetime) -> str:
    """20 digits whose order is the reverse of the (UTC, microsecond) time's."""
    t = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    digits = (
        f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}{t.microsecond:06d}"
    )
    return digits.translate(_INVERT_DIGITS)


def time_from_descending(token: str) -> datetime:
    digits = token.translate(_INVERT_DIGITS)
    if len(digits) != 20 or not digits.isdigit():
        raise ValueError("not a descending time")
    return datetime.strptime(digits[:14], "%Y%m%d%H%M%S").replace(microsecond=int(digits[14:]), tzinfo=UTC)


def _seg(value: str) -> str:
    # Ids never contain '%', so this is reversible.
    return value[:-1] + "%2E" if value.endswith(".") else value


def _unseg(value: str) -> str:
    return value[:-3] + "." if value.endswith("%2E") else value


class BlobLayout:
    """Blob names of every kind under one prefix (``""`` or ``"<prefix>/"``). Pure functions."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix

    def tenant(self, tenant: str) -> str:
        return f"{self.prefix}{_seg(tenant)}/"

    def scope(self, scope: Scope) -> str:
        return f"{self.prefix}{_seg(scope.tenant)}/{_seg(scope.environment)}/"

    def current_prefix(self, scope: Scope, kind: str, artifact_id: str | None = None) -> str:
        base = f"{self.scope(scope)}{kind}/current/"
        return f"{base}{_seg(artifact_id)}/" if artifact_id is not None else base

    def current(self, scope: Scope, kind: str, artifact_id: str, version: str) -> str:
        return f"{self.current_prefix(scope, kind, artifact_id)}{version}.json"

    def parse_current(self, name: str) -> tuple[str, str] | None:
        """(artifact id, version) of a current-revision blob name; ``None`` for anything else."""
        parts = name.rsplit("/", 2)
        if len(parts) != 3 or not parts[2].endswith(".json"):
            return None
        try:
            return validate_id(_unseg(parts[1]), "id"), validate_id(parts[2][: -len(".json")], "version")
        except InvalidArtifactError:
            return None

    def history_prefix(self, scope: Scope, kind: str, artifact_id: str, version: str, generation: str) -> str:
        return f"{self.scope(scope)}{kind}/history/{_seg(artifact_id)}/{_seg(version)}/{generation}/"

    def revision(
        self, scope: Scope, kind: str, artifact_id: str, version: str, generation: str, revision: int
    ) -> str:
        return f"{self.history_prefix(scope, kind, artifact_id, version, generation)}rev-{revision:08d}.json"

    def run(self, scope: Scope, job_id: str) -> str:
        return f"{self.scope(scope)}job_runs/{job_id}.json"

    def run_index_prefix(self, scope: Scope) -> str:
        # '.by-time' can never be a job id (ids do not start with a dot), so neither a run nor a
        # result payload folder (job_runs/<job_id>/...) can land in it.
        return f"{self.scope(scope)}job_runs/.by-time/"

    @staticmethod
    def run_index_key(run_time: datetime, job_id: str) -> str:
        return f"{descending_time(run_time)}-{descending_id(job_id)}"

    def run_index(self, scope: Scope, run_time: datetime, job_id: str) -> str:
        return self.run_index_prefix(scope) + self.run_index_key(run_time, job_id)

    @staticmethod
    def parse_run_index_key(key: str) -> tuple[datetime, str] | None:
        if len(key) < 23 or key[20] != "-":
            return None
        try:
            return time_from_descending(key[:20]), validate_id(id_from_descending(key[21:]), "job_id")
        except (ValueError, InvalidArtifactError):
            return None


# -- metadata -------------------------------------------------------------------------------------


def _pack(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":"), ensure_ascii=True, sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unpack(value: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))


def _pack_artifact_index(index: ArtifactIndex) -> str | None:
    packed = _pack(
        {
            "s": index.status,
            "r": index.retired,
            "t": index.tags,
            "d": index.dataset_types,
            "a": index.action_types,
            "g": index.trigger_type,
        }
    )
    return packed if len(packed) <= MAX_INDEX_METADATA else None


def _unpack_artifact_index(artifact_id: str, version: str, metadata: dict[str, str]) -> ArtifactIndex | None:
    """The index in ``metadata``, or ``None`` when absent or unreadable: the item is then checked
    by downloading it, which is always correct.
    """
    try:
        data = _unpack(metadata["dqindex"])
        return ArtifactIndex(
            artifact_id=artifact_id,
            version=version,
            version_key=version_key(version),
            name="",
            status=data["s"],
            retired=bool(data["r"]),
            tags=list(data["t"]),
            dataset_types=list(data["d"]),
            action_types=list(data["a"]),
            trigger_type=data["g"],
        )
    except (KeyError, ValueError, TypeError):
        return None


_RUN_FIELDS = (
    "job_type",
    "status",
    "job_definition_id",
    "dataset_type",
    "contract_id",
    "contract_version",
    "dagster_run_id",
    "asset_key",
    "partition_key",
)


def _pack_run_index(index: RunIndex) -> str | None:
    packed = _pack({f: getattr(index, f) for f in _RUN_FIELDS})
    return packed if len(packed) <= MAX_INDEX_METADATA else None


def _unpack_run_index(job_id: str, metadata: dict[str, str]) -> RunIndex | None:
    """Like ``_unpack_artifact_index``, for the run index entries."""
    try:
        data = _unpack(metadata["dqindex"])
        return RunIndex(job_id=job_id, run_time=None, **{f: data[f] for f in _RUN_FIELDS})
    except (KeyError, ValueError, TypeError):
        return None


# -- the shared backend ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Blob:
    name: str
    content: bytes
    etag: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class _Head:
    name: str
    etag: str
    metadata: dict[str, str]


class BlobBackend:
    """One container (and blob prefix) shared by the four stores: blob primitives with Azure
    errors translated, conditional writes, listings and a small pool for parallel downloads.
    """

    def __init__(self, connection: BlobConnection, *, owns_connection: bool = True) -> None:
        self.connection = connection
        self.container = connection.container
        self.layout = BlobLayout(connection.prefix)
        self._owns_connection = owns_connection
        self._max_workers = int(connection.options.get("max_workers", 8))
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._start_from = True

    @classmethod
    def from_url(cls, url: str | None = None, **options: Any) -> BlobBackend:
        return cls(connect_container(url, **options))

    @property
    def display(self) -> str:
        return self.connection.display

    def __repr__(self) -> str:
        return f"BlobBackend({self.display!r})"

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        if self._owns_connection:
            self.connection.close()

    # errors -----------------------------------------------------------------------------------
    def _fail(self, exc: AzureError, what: str) -> Exception:
        error = translate_azure_error(exc, what, location=self.display)
        scrub_exception(exc)
        return error

    # single blobs -----------------------------------------------------------------------------
    def get(self, name: str) -> _Blob | None:
        """Download a blob; ``None`` if it does not exist."""
        try:
            downloader = self.container.download_blob(name)
            content = downloader.readall()
        except ResourceNotFoundError as exc:
            if error_code(exc) == "ContainerNotFound":
                raise self._fail(exc, f"read {name}") from exc
            return None
        except AzureError as exc:
            raise self._fail(exc, f"read {name}") from exc
        props = downloader.properties
        return _Blob(name, bytes(content), str(props.etag), dict(props.metadata or {}))

    def head(self, name: str) -> _Head | None:
        try:
            props = self.container.get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError as exc:
            if error_code(exc) == "ContainerNotFound":
                raise self._fail(exc, f"read {name}") from exc
            return None
        except AzureError as exc:
            raise self._fail(exc, f"read {name}") from exc
        return _Head(name, str(props.etag), dict(props.metadata or {}))

    def put(
        self,
        name: str,
        data: bytes,
        metadata: dict[str, str],
        *,
        etag: str | None = None,
        create: bool = False,
        content_type: str = "application/json",
    ) -> str:
        """Write a blob and return its new etag. ``create``: only if absent; ``etag``: only if
        unchanged. A failed condition raises ``ConflictError``.
        """
        kwargs: dict[str, Any] = {
            "metadata": metadata,
            "content_settings": ContentSettings(content_type=content_type),
        }
        if create:
            kwargs["overwrite"] = False  # the SDK sends If-None-Match: *
        else:
            kwargs["overwrite"] = True
            if etag is not None:
                kwargs["etag"] = etag
                kwargs["match_condition"] = MatchConditions.IfNotModified
        try:
            result = self.container.get_blob_client(name).upload_blob(data, length=len(data), **kwargs)
        except ResourceNotFoundError as exc:
            if etag is not None and error_code(exc) != "ContainerNotFound":
                raise ConflictError(f"write {name}: it was deleted meanwhile") from exc
            raise self._fail(exc, f"write {name}") from exc
        except AzureError as exc:
            raise self._fail(exc, f"write {name}") from exc
        return str(result["etag"])

    def set_metadata(self, name: str, metadata: dict[str, str], *, etag: str) -> str:
        try:
            result = self.container.get_blob_client(name).set_blob_metadata(
                metadata, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceNotFoundError as exc:
            if error_code(exc) == "ContainerNotFound":
                raise self._fail(exc, f"write {name}") from exc
            raise NotFoundError(f"write {name}: not found") from exc
        except AzureError as exc:
            raise self._fail(exc, f"write {name}") from exc
        return str(result["etag"])

    def delete(self, name: str, *, etag: str | None = None) -> bool:
        """Delete a blob; ``False`` if it did not exist; a stale ``etag`` raises ``ConflictError``."""
        kwargs: dict[str, Any] = {}
        if etag is not None:
            kwargs = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        try:
            self.container.delete_blob(name, **kwargs)
        except ResourceNotFoundError as exc:
            if error_code(exc) == "ContainerNotFound":
                raise self._fail(exc, f"delete {name}") from exc
            return False
        except AzureError as exc:
            raise self._fail(exc, f"delete {name}") from exc
        return True

    # listings ---------------------------------------------------------------------------------
    def scan(
        self, prefix: str, *, start_from: str | None = None, first_page: int = LIST_PAGE
    ) -> Iterator[BlobProperties]:
        """Blobs under ``prefix`` in name order (with metadata), from ``start_from`` (inclusive)
        on; fetched lazily, the first page sized ``first_page``, later ones 5,000.
        """
        token: str | None = None
        size = max(1, min(first_page, LIST_PAGE))
        while True:
            kwargs: dict[str, Any] = {}
            if token is None and start_from is not None and self._start_from:
                kwargs["start_from"] = start_from
            try:
                pages: Any = self.container.list_blobs(
                    name_starts_with=prefix, include=["metadata"], results_per_page=size, **kwargs
                ).by_page(continuation_token=token)
                items = list(next(pages))
                token = pages.continuation_token
            except StopIteration:
                return
            except HttpResponseError as exc:
                if "start_from" in kwargs and exc.status_code == 400:
                    # startFrom is recent (x-ms-version 2025+); where the service refuses it,
                    # list from the prefix and skip ahead here instead.
                    self._start_from = False
                    continue
                raise self._fail(exc, f"list {prefix}") from exc
            except AzureError as exc:
                raise self._fail(exc, f"list {prefix}") from exc
            for item in items:
                if start_from is not None and item.name < start_from:
                    continue  # a service that ignored startFrom
                yield item
            if not token:
                return
            size = LIST_PAGE

    def child_prefixes(self, prefix: str) -> builtins.list[str]:
        """The next path segment of every blob under ``prefix`` (a delimiter listing)."""
        out: builtins.list[str] = []
        try:
            for item in self.container.walk_blobs(name_starts_with=prefix, delimiter="/"):
                name = str(item.name)
                if name.endswith("/"):
                    out.append(name[len(prefix) : -1])
        except AzureError as exc:
            raise self._fail(exc, f"list {prefix}") from exc
        return out

    def scopes(
        self, tenant: str | None, environment: str | None, kind: str | None = None
    ) -> builtins.list[Scope]:
        """Scopes under the prefix (optionally only those holding ``kind``): delimiter listings,
        one for the tenants, one per tenant, and one per scope when ``kind`` is given. Names that
        are no valid id (``.results``, the identity blob) are skipped.
        """
        found: builtins.list[Scope] = []
        tenants = [tenant] if tenant is not None else self._ids(self.layout.prefix, "tenant")
        for t in tenants:
            envs = self._ids(self.layout.tenant(t), "environment")
            for e in envs:
                if environment is not None and e != environment:
                    continue
                scope = Scope(t, e)
                if kind is None or kind in self.child_prefixes(self.layout.scope(scope)):
                    found.append(scope)
        return found

    def _ids(self, prefix: str, what: str) -> builtins.list[str]:
        ids = []
        for segment in self.child_prefixes(prefix):
            try:
                ids.append(validate_id(_unseg(segment), what))
            except InvalidArtifactError:
                continue
        return ids

    def store_identity(self, create: bool) -> str | None:
        """``<prefix>.dq-store.json`` holds {"store_id": ...}; created (If-None-Match: *, the first
        writer wins) on the first payload write.
        """
        name = f"{self.layout.prefix}{STORE_BLOB}"
        blob = self.get(name)
        if blob is None and create:
            body = json.dumps({"store_id": uuid.uuid4().hex[:16]}).encode()
            with suppress(ConflictError):
                self.put(name, body, {}, create=True)
            blob = self.get(name)
        if blob is None:
            return None
        try:
            return validate_id(json.loads(blob.content)["store_id"], "store_id")
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidArtifactError(f"{name} is not a store identity", field="store_id") from exc

    # parallelism ------------------------------------------------------------------------------
    def map(self, fn: Callable[[X], R], items: Sequence[X]) -> builtins.list[R]:
        """``fn`` over ``items`` on the backend's pool, results in order; the first error is
        raised after every call has finished (nothing is left running behind the caller).
        """
        if len(items) <= 1 or self._max_workers <= 1 or getattr(_worker, "active", False):
            # Inline inside a pool thread: waiting there for more pool work could deadlock.
            return [fn(i) for i in items]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._max_workers, thread_name_prefix="dq-blob")
            executor = self._executor

        def run(item: X) -> R:
            _worker.active = True
            try:
                return fn(item)
            finally:
                _worker.active = False

        futures = [executor.submit(run, i) for i in items]
        results: builtins.list[R] = []
        error: BaseException | None = None
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as exc:  # re-raised below, once every call has finished
                error = error or exc
        if error is not None:
            raise error
        return results

    def fetch_many(self, names: Sequence[str]) -> builtins.list[_Blob | None]:
        return self.map(self.get, names)


_worker = threading.local()


def _required(name: str, metadata: dict[str, str], key: str) -> str:
    """A metadata value every blob dq_stores writes carries; its absence means a foreign blob."""
    value = metadata.get(key)
    if value is None:
        raise InvalidArtifactError(
            f"blob {name} was not written by dq_stores (metadata {key!r} is missing)", field=key
        )
    return value


def _now() -> datetime:
    return datetime.now(UTC)


def _pause(attempt: int) -> None:
    # Writers that keep colliding back off a little, with jitter, instead of spinning.
    if attempt >= 2:
        time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 8)))


# -- the stores -----------------------------------------------------------------------------------


class _BlobStore:
    def __init__(self, backend: BlobBackend, *, owns_backend: bool = False) -> None:
        self._backend = backend
        self._owns_backend = owns_backend

    @classmethod
    def from_url(cls, url: str | None = None, **options: Any) -> Self:
        """A store with its own client (closed by ``close()``); see ``dq_stores.blob_client``."""
        return cls(BlobBackend.from_url(url, **options), owns_backend=True)

    @property
    def backend(self) -> BlobBackend:
        return self._backend

    def close(self) -> None:
        if self._owns_backend:
            self._backend.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._backend.display!r})"

    def _list_scopes(self, tenant: str | None, environment: str | None) -> builtins.list[Scope]:
        kind: Kind[Any] = self.kind  # type: ignore[attr-defined]
        return self._backend.scopes(tenant, environment, kind.name)


@dataclass(frozen=True)
class _Current:
    name: str
    index: ArtifactIndex
    recorded: str


class _BlobVersioned(_BlobStore, VersionedStore[Any]):
    # put --------------------------------------------------------------------------------------
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
        b = self._backend
        kind = self.kind.name
        aid, version = index.artifact_id, index.version
        name = b.layout.current(scope, kind, aid, version)
        label = f"{self.kind.label} {aid}@{version} in {scope}"
        for attempt in range(_RETRIES):
            _pause(attempt)
            current = None if create_only else b.get(name)
            if current is None:
                if if_match is not None:
                    raise ConflictError(f"{label} does not exist; if_match={if_match!r} cannot hold")
                meta = self._metadata(index, content_hash, 1, uuid.uuid4().hex, sortable_time(_now()))
                try:
                    return b.put(name, document, meta, create=True)
                except ConflictError as exc:
                    if create_only:
                        raise ConflictError(f"{label} already exists (create_only)") from exc
                    continue  # created concurrently: go again as an update
            if if_match is not None and if_match != current.etag:
                raise ConflictError(f"{label} changed since etag {if_match!r} (now {current.etag!r})")
            if current.metadata.get("dqhash") == content_hash:
                return current.etag
            revision = int(_required(current.name, current.metadata, "dqrev"))
            generation = _required(current.name, current.metadata, "dqgen")
            # Revision n goes to history before n+1 replaces it; its content is fixed once n was
            # committed, so rewriting it (a retry, a racing writer) is harmless.
            b.put(
                b.layout.revision(scope, kind, aid, version, generation, revision),
                current.content,
                {
                    "dqhash": current.metadata.get("dqhash") or sha256_hex(current.content),
                    "dqetag": current.etag,
                    "dqtime": _required(current.name, current.metadata, "dqtime"),
                },
            )
            meta = self._metadata(index, content_hash, revision + 1, generation, sortable_time(_now()))
            try:
                return b.put(name, document, meta, etag=current.etag)
            except ConflictError as exc:
                if if_match is not None:
                    raise ConflictError(f"{label} changed since etag {if_match!r}") from exc
        raise ConflictError(f"{label}: too many concurrent writers, gave up after {_RETRIES} attempts")

    @staticmethod
    def _metadata(
        index: ArtifactIndex, content_hash: str, revision: int, generation: str, at: str
    ) -> dict[str, str]:
        meta = {"dqhash": content_hash, "dqrev": str(revision), "dqgen": generation, "dqtime": at}
        packed = _pack_artifact_index(index)
        if packed is not None:
            meta["dqindex"] = packed
        return meta

    # reads ------------------------------------------------------------------------------------
    def _stored(self, blob: _Blob) -> StoredDoc:
        return StoredDoc(blob.content, blob.etag, sha256_hex(blob.content))

    def _currents(self, scope: Scope, artifact_id: str | None = None) -> builtins.list[_Current]:
        """Every current (id, version) of the kind in the scope, with its index; from the listing
        metadata, downloading only items whose index did not fit in metadata.
        """
        b = self._backend
        found: builtins.list[_Current] = []
        missing: builtins.list[tuple[str, str, str, str]] = []
        for item in b.scan(b.layout.current_prefix(scope, self.kind.name, artifact_id)):
            parsed = b.layout.parse_current(item.name)
            if parsed is None:
                continue
            aid, version = parsed
            meta = item.metadata or {}
            recorded = meta.get("dqtime", "")
            index = _unpack_artifact_index(aid, version, meta)
            if index is not None:
                found.append(_Current(item.name, index, recorded))
            else:
                missing.append((item.name, aid, version, recorded))
        blobs = b.fetch_many([m[0] for m in missing])
        for (name, _aid, _version, recorded), blob in zip(missing, blobs, strict=True):
            if blob is not None:
                found.append(_Current(name, ArtifactIndex.of(self._decode(blob.content)), recorded))
        return found

    def _get(self, scope: Scope, artifact_id: str, version: str | None) -> StoredDoc | None:
        b = self._backend
        if version is not None:
            blob = b.get(b.layout.current(scope, self.kind.name, artifact_id, version))
            return self._stored(blob) if blob else None
        for _ in range(3):
            live = [c for c in self._currents(scope, artifact_id) if not c.index.retired]
            if not live:
                return None
            best = max(live, key=lambda c: (c.index.version_key, c.recorded, c.index.version))
            blob = b.get(best.name)
            if blob is not None:
                return self._stored(blob)
            # deleted between the listing and the read: look again
        return None

    def _list(
        self, scope: Scope, limit: int, after: builtins.list[Any] | None, filters: VersionFilters
    ) -> tuple[builtins.list[bytes | str], str | None]:
        rows = [c for c in self._currents(scope, filters.artifact_id) if filters.matches(c.index)]
        rows.sort(key=lambda c: c.index.version)
        rows.sort(key=lambda c: c.index.version_key, reverse=True)
        rows.sort(key=lambda c: c.index.artifact_id)
        if after is not None:
            if not all(isinstance(v, str) for v in after):
                raise InvalidArtifactError("cursor is not one this store issued", field="cursor")
            aid, vkey, ver = after
            rows = [
                c
                for c in rows
                if c.index.artifact_id > aid
                or (c.index.artifact_id == aid and c.index.version_key < vkey)
                or (c.index.artifact_id == aid and c.index.version_key == vkey and c.index.version > ver)
            ]
        page = rows[:limit]
        blobs = self._backend.fetch_many([c.name for c in page])
        docs: builtins.list[bytes | str] = [blob.content for blob in blobs if blob is not None]
        cursor = None
        if len(rows) > limit:
            last = page[-1].index
            cursor = encode_cursor([last.artifact_id, last.version_key, last.version])
        return docs, cursor

    def _history(self, scope: Scope, artifact_id: str, version: str) -> builtins.list[Revision]:
        b = self._backend
        kind = self.kind.name
        current = b.head(b.layout.current(scope, kind, artifact_id, version))
        if current is None:
            return []
        revision = int(_required(current.name, current.metadata, "dqrev"))
        prefix = b.layout.history_prefix(
            scope, kind, artifact_id, version, _required(current.name, current.metadata, "dqgen")
        )
        revisions: builtins.list[Revision] = []
        for item in b.scan(prefix):
            number = _revision_number(item.name[len(prefix) :])
            meta = item.metadata or {}
            if number is None or number >= revision:
                continue  # a copy written by a put that then lost its race
            revisions.append(
                Revision(
                    artifact_id,
                    version,
                    number,
                    _required(item.name, meta, "dqetag"),
                    _required(item.name, meta, "dqhash"),
                    parse_sortable_time(_required(item.name, meta, "dqtime")),
                )
            )
        revisions.append(
            Revision(
                artifact_id,
                version,
                revision,
                current.etag,
                _required(current.name, current.metadata, "dqhash"),
                parse_sortable_time(_required(current.name, current.metadata, "dqtime")),
            )
        )
        return sorted(revisions, key=lambda r: r.revision)

    def _get_revision(
        self, scope: Scope, artifact_id: str, version: str, revision: int
    ) -> bytes | str | None:
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 1:
            return None
        b = self._backend
        kind = self.kind.name
        current = b.get(b.layout.current(scope, kind, artifact_id, version))
        if current is None:
            return None
        latest = int(_required(current.name, current.metadata, "dqrev"))
        if revision == latest:
            return current.content
        if revision > latest:
            return None
        old = b.get(
            b.layout.revision(
                scope,
                kind,
                artifact_id,
                version,
                _required(current.name, current.metadata, "dqgen"),
                revision,
            )
        )
        return old.content if old else None

    # delete -----------------------------------------------------------------------------------
    def _delete(self, scope: Scope, artifact_id: str, version: str | None, if_match: str | None) -> bool:
        b = self._backend
        if version is not None:
            return self._delete_version(scope, artifact_id, version, if_match)
        versions = [c.index.version for c in self._currents(scope, artifact_id)]
        deleted = b.map(lambda v: self._delete_version(scope, artifact_id, v, None), versions)
        return any(deleted)

    def _delete_version(self, scope: Scope, artifact_id: str, version: str, if_match: str | None) -> bool:
        b = self._backend
        kind = self.kind.name
        name = b.layout.current(scope, kind, artifact_id, version)
        label = f"{self.kind.label} {artifact_id}@{version} in {scope}"
        for attempt in range(_RETRIES):
            _pause(attempt)
            current = b.head(name)
            if current is None:
                if if_match is not None:
                    raise ConflictError(f"{label} does not exist; if_match={if_match!r} cannot hold")
                return False
            if if_match is not None and if_match != current.etag:
                raise ConflictError(f"{label} does not match etag {if_match!r}")
            try:
                if not b.delete(name, etag=current.etag):
                    return False  # deleted by someone else meanwhile
            except ConflictError:
                if if_match is not None:
                    raise
                continue
            # The current blob is gone, so this generation's history is unreachable; remove it.
            # A failure here leaves invisible garbage, never a visible half-deleted artifact.
            prefix = b.layout.history_prefix(
                scope, kind, artifact_id, version, current.metadata.get("dqgen", "-")
            )
            try:
                b.map(lambda n: b.delete(n), [item.name for item in b.scan(prefix)])
            except BackendUnavailableError as exc:
                log.warning("%s deleted; removing its history under %s failed: %s", label, prefix, exc)
            return True
        raise ConflictError(f"{label}: too many concurrent writers, gave up after {_RETRIES} attempts")


def _revision_number(leaf: str) -> int | None:
    if not (leaf.startswith("rev-") and leaf.endswith(".json")):
        return None
    digits = leaf[4:-5]
    return int(digits) if digits.isdigit() else None


class AzureBlobContractStore(_BlobVersioned, ContractStore):
    """Data contracts on Azure Blob Storage."""

    def _get_latest_for_dataset(self, scope: Scope, dataset_type: str) -> StoredDoc | None:
        for _ in range(3):
            rows = [
                c
                for c in self._currents(scope)
                if not c.index.retired and dataset_type in c.index.dataset_types
            ]
            if not rows:
                return None
            # version key desc, newest revision, then contract id asc (as the SQL backend).
            rows.sort(key=lambda c: c.index.artifact_id)
            rows.sort(key=lambda c: (c.index.version_key, c.recorded), reverse=True)
            blob = self._backend.get(rows[0].name)
            if blob is not None:
                return self._stored(blob)
        return None


class AzureBlobJobDefinitionStore(_BlobVersioned, JobDefinitionStore):
    """Job definitions / checkpoints on Azure Blob Storage."""


class AzureBlobActionProfileStore(_BlobVersioned, ActionProfileStore):
    """Action profiles on Azure Blob Storage."""


@dataclass(frozen=True)
class _IndexEntry:
    key: tuple[str, str]
    """(name within the environment's index, descending environment): the merge order."""
    environment: str
    job_id: str
    run_time: datetime
    sortable: str
    index: RunIndex | None
    content_hash: str | None


class AzureBlobJobRunStore(_BlobStore, JobRunStore):
    """Job runs on Azure Blob Storage, listed newest first through a time-ordered index.

    Results always go to the payload store (``configure_results``): by default the same
    container, under ``<prefix>/.results/<store id>/`` (``open_blob_stores``).
    """

    _identity: str | None = None

    def _store_identity(self, create: bool) -> str | None:
        if self._identity is None:
            self._identity = self._backend.store_identity(create)
        return self._identity

    def _run_meta(self, content_hash: str, index: RunIndex, recorded: str, run_time: str) -> dict[str, str]:
        return {
            "dqhash": content_hash,
            "dqstatus": index.status,
            "dqrecorded": recorded,
            "dqruntime": run_time,
        }

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
        b = self._backend
        name = b.layout.run(scope, index.job_id)
        label = f"job run {index.job_id} in {scope}"
        new_status = JobRunStatus(index.status)
        for attempt in range(_RETRIES):
            _pause(attempt)
            current = b.head(name)
            old_time: str | None = None
            if current is None:
                if if_match is not None:
                    raise ConflictError(f"{label} does not exist; if_match={if_match!r} cannot hold")
                recorded = sortable_time(_now())
            else:
                if create_only:
                    raise ConflictError(f"{label} already exists (create_only)")
                if if_match is not None and if_match != current.etag:
                    raise ConflictError(f"{label} changed since etag {if_match!r} (now {current.etag!r})")
                old_status = current.metadata.get("dqstatus", JobRunStatus.PENDING.value)
                if not check_transition(JobRunStatus(old_status), new_status):
                    raise InvalidArtifactError(
                        f"{label}: status may not change from {old_status} to {new_status.value}",
                        field="status",
                    )
                if current.metadata.get("dqhash") == content_hash:
                    return current.etag
                recorded = _required(current.name, current.metadata, "dqrecorded")
                old_time = _required(current.name, current.metadata, "dqruntime")
            # A run without times keeps the time it already had (first: when it was recorded).
            run_time = sortable_time(index.run_time) if index.run_time else (old_time or recorded)
            entry = b.layout.run_index(scope, parse_sortable_time(run_time), index.job_id)
            old_entry_etag: str | None = None
            if old_time is not None and old_time != run_time:
                old_head = b.head(b.layout.run_index(scope, parse_sortable_time(old_time), index.job_id))
                old_entry_etag = old_head.etag if old_head else None
            # Pending first: until the run is written, readers must check the run itself.
            entry_etag = b.put(entry, b"", {"dqpending": "1"}, content_type="application/octet-stream")
            meta = self._run_meta(content_hash, index, recorded, run_time)
            try:
                if current is None:
                    etag = b.put(name, document, meta, create=True)
                else:
                    etag = b.put(name, document, meta, etag=current.etag)
            except ConflictError as exc:
                if create_only:
                    raise ConflictError(f"{label} already exists (create_only)") from exc
                if if_match is not None:
                    raise ConflictError(f"{label} changed since etag {if_match!r}") from exc
                continue  # lost a race with another writer: read again (and re-check the transition)
            self._finalize_entry(entry, entry_etag, index, content_hash)
            if old_entry_etag is not None:
                old_name = b.layout.run_index(scope, parse_sortable_time(old_time or run_time), index.job_id)
                # Conditional: if another writer re-used that entry meanwhile, it is theirs now.
                with contextlib.suppress(ConflictError):
                    b.delete(old_name, etag=old_entry_etag)
            return etag
        raise ConflictError(f"{label}: too many concurrent writers, gave up after {_RETRIES} attempts")

    def _finalize_entry(self, entry: str, entry_etag: str, index: RunIndex, content_hash: str) -> None:
        meta = {"dqhash": content_hash}
        packed = _pack_run_index(index)
        if packed is None:
            return  # too big for metadata: stays "check the run" for readers
        meta["dqindex"] = packed
        b = self._backend
        try:
            b.set_metadata(entry, meta, etag=entry_etag)
        except ConflictError:
            pass  # another writer marked it pending again after us: they finish it
        except NotFoundError:
            with contextlib.suppress(ConflictError):
                b.put(entry, b"", meta, create=True, content_type="application/octet-stream")

    def put_many(self, runs: Sequence[JobRun]) -> builtins.list[str]:
        """Upsert many runs, several at a time (each run is its own conditional write: a failure
        leaves the runs before it written; the first error is raised when all are done).
        """
        return self._backend.map(self.put, list(runs))

    def _get_run(self, scope: Scope, job_id: str) -> StoredDoc | None:
        blob = self._backend.get(self._backend.layout.run(scope, job_id))
        return StoredDoc(blob.content, blob.etag, sha256_hex(blob.content)) if blob else None

    def _delete_run(self, scope: Scope, job_id: str, if_match: str | None) -> bool:
        b = self._backend
        name = b.layout.run(scope, job_id)
        label = f"job run {job_id} in {scope}"
        for attempt in range(_RETRIES):
            _pause(attempt)
            current = b.head(name)
            if current is None:
                if if_match is not None:
                    raise ConflictError(f"{label} does not match etag {if_match!r}")
                return False
            if if_match is not None and if_match != current.etag:
                raise ConflictError(f"{label} does not match etag {if_match!r}")
            entry = b.layout.run_index(
                scope, parse_sortable_time(_required(current.name, current.metadata, "dqruntime")), job_id
            )
            entry_head = b.head(entry)
            try:
                if not b.delete(name, etag=current.etag):
                    return False
            except ConflictError:
                if if_match is not None:
                    raise
                continue
            if entry_head is not None:
                # Conditional: a writer that re-created the run meanwhile owns the entry now.
                with contextlib.suppress(ConflictError):
                    b.delete(entry, etag=entry_head.etag)
            return True
        raise ConflictError(f"{label}: too many concurrent writers, gave up after {_RETRIES} attempts")

    # listing ----------------------------------------------------------------------------------
    def _entries(self, scope: Scope, start_from: str | None, first_page: int) -> Iterator[_IndexEntry]:
        b = self._backend
        prefix = b.layout.run_index_prefix(scope)
        env_key = descending_id(scope.environment)
        for item in b.scan(prefix, start_from=start_from, first_page=first_page):
            key = item.name[len(prefix) :]
            parsed = b.layout.parse_run_index_key(key)
            if parsed is None:
                continue  # not one of ours
            run_time, job_id = parsed
            meta = item.metadata or {}
            index = _unpack_run_index(job_id, meta)
            yield _IndexEntry(
                (key, env_key),
                scope.environment,
                job_id,
                run_time,
                sortable_time(run_time),
                index,
                meta.get("dqhash"),
            )

    def _list_runs(
        self,
        tenant: str,
        environment: str | None,
        limit: int,
        after: builtins.list[Any] | None,
        filters: RunFilters,
    ) -> tuple[builtins.list[bytes | str], str | None]:
        b = self._backend
        cursor_key: tuple[str, str] | None = None
        if after is not None:
            try:
                job_after = validate_id(after[1], "job_id")
                env_after = validate_id(after[2], "environment")
            except InvalidArtifactError as exc:
                raise InvalidArtifactError("cursor is not one this store issued", field="cursor") from exc
            cursor_key = (
                BlobLayout.run_index_key(parse_sortable_time(after[0]), job_after),
                descending_id(env_after),
            )
        until = descending_time(filters.until) if filters.until is not None else None
        since = descending_time(filters.since) if filters.since is not None else None
        by_fields = (
            any(
                getattr(filters, f) is not None
                for f in (
                    "job_type",
                    "status",
                    "job_definition_id",
                    "dataset_type",
                    "dagster_run_id",
                    "asset_key",
                )
            )
            or filters.partition_key is not None
        )
        first_page = LIST_PAGE if by_fields else limit + 9
        environments = [environment] if environment is not None else self._environments(tenant)
        streams = []
        for env in environments:
            scope = Scope(tenant, env)
            prefix = b.layout.run_index_prefix(scope)
            starts = []
            if cursor_key is not None:
                starts.append(prefix + cursor_key[0])
            if until is not None:
                starts.append(prefix + until + ".")  # '.' > '-': past every entry at `until`
            streams.append(self._entries(scope, max(starts) if starts else None, first_page))
        merged = heapq.merge(*streams, key=lambda e: e.key)

        found: builtins.list[tuple[_IndexEntry, bytes]] = []
        batch: builtins.list[_IndexEntry] = []

        def check(batch: builtins.list[_IndexEntry]) -> None:
            blobs = b.fetch_many([b.layout.run(Scope(tenant, e.environment), e.job_id) for e in batch])
            for entry, blob in zip(batch, blobs, strict=True):
                if blob is None or blob.metadata.get("dqruntime") != entry.sortable:
                    continue  # stale entry: the run is gone or lives under another time
                described = entry.index is not None and blob.metadata.get("dqhash") == entry.content_hash
                # A pending or outdated entry: the run itself decides.
                if not described and not filters.matches(
                    RunIndex.of(self._decode(blob.content)), entry.run_time
                ):
                    continue
                found.append((entry, blob.content))

        for entry in merged:
            if cursor_key is not None and entry.key <= cursor_key:
                continue
            token = entry.key[0][:20]
            if since is not None and token > since:
                break  # older than `since`, and so is everything after it
            if until is not None and token <= until:
                continue
            if entry.index is not None and not filters.matches(entry.index, entry.run_time):
                continue
            batch.append(entry)
            if len(batch) >= limit + 1 - len(found):
                check(batch)
                batch = []
                if len(found) > limit:
                    break
        if batch and len(found) <= limit:
            check(batch)
        page = found[:limit]
        cursor = None
        if len(found) > limit:
            last = page[-1][0]
            cursor = encode_cursor([last.sortable, last.job_id, last.environment])
        return [doc for _, doc in page], cursor

    def _environments(self, tenant: str) -> builtins.list[str]:
        return self._backend._ids(self._backend.layout.tenant(tenant), "environment")


# -- result payloads ------------------------------------------------------------------------------


_SINGLE_PUT_LIMIT = 64 * 1024 * 1024
"""Bytes up to this size go in one Put Blob (the service allows 5,000 MiB; the SDK's default is 64)."""
_READ_RANGE = 8 * 1024 * 1024
"""Bytes per ranged read; two are held at a time (the current one and the one downloading)."""
_STAGE_WINDOW = 4
"""Blocks staged in parallel (each CHUNK_SIZE): bounds memory for streams and keeps the link busy."""


class BlobPayloadStore(PayloadStore):
    """Result payloads as block blobs under the connection's prefix: staged in chunks while
    hashing, then committed in one request, so a payload is complete or absent. URIs are the
    blobs' https (or emulator http) URLs, without any SAS token.
    """

    def __init__(
        self, connection: BlobConnection, *, owns_connection: bool = False, subfolder: str = ""
    ) -> None:
        self._connection = connection
        self._container = connection.container
        self._prefix = connection.prefix + (f"{subfolder.strip('/')}/" if subfolder else "")
        self._owns = owns_connection
        parts = urlsplit(connection.base_url)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._container_path = unquote(parts.path).rstrip("/") + "/"

    def __repr__(self) -> str:
        return f"BlobPayloadStore({self.location!r})"

    @property
    def location(self) -> str:
        base = self._connection.display
        return f"{base}/{self._prefix[len(self._connection.prefix) :].rstrip('/')}".rstrip("/")

    def key_of(self, uri: str) -> str:
        name = self._require(uri)
        if not name.startswith(self._prefix):
            raise InvalidArtifactError(f"{redact(uri)!r} is not a payload of {self!r}", field="uri")
        return name[len(self._prefix) :]

    def close(self) -> None:
        if self._owns:
            self._connection.close()

    def _name(self, key: str) -> str:
        segments = key.split("/")
        if not key or key.startswith("/") or "\\" in key or any(s in {"", ".", ".."} for s in segments):
            raise InvalidArtifactError(f"payload key {key[:80]!r} is not a relative blob path", field="key")
        return self._prefix + key

    def _uri(self, name: str) -> str:
        return self._origin + quote(self._container_path + name, safe="/~")

    def _name_of(self, uri: str) -> str | None:
        parts = urlsplit(uri)
        if f"{parts.scheme}://{parts.netloc}" != self._origin or parts.query:
            return None
        path = unquote(parts.path)
        if not path.startswith(self._container_path + self._prefix):
            return None
        return path[len(self._container_path) :]

    def owns(self, uri: str) -> bool:
        return self._name_of(uri) is not None

    def _require(self, uri: str) -> str:
        name = self._name_of(uri)
        if name is None:
            raise InvalidArtifactError(f"{redact(uri)!r} is not a payload of {self!r}", field="uri")
        return name

    def write(
        self,
        key: str,
        data: bytes | Iterable[bytes] | BinaryIO,
        *,
        content_type: str,
        sha256: str | None = None,
    ) -> PayloadInfo:
        name = self._name(key)
        blob = self._container.get_blob_client(name)
        settings = ContentSettings(content_type=content_type)
        digest = hashlib.sha256()
        size = 0
        try:
            if isinstance(data, bytes | bytearray | memoryview) and len(data) <= _SINGLE_PUT_LIMIT:
                # Bytes already in memory: one Put Blob (what upload_blob itself does up to 64 MiB)
                # is several times faster than staging blocks, and just as atomic.
                body = bytes(data)
                blob.upload_blob(body, length=len(body), overwrite=True, content_settings=settings)
                return PayloadInfo(self._uri(name), sha256 or hashlib.sha256(body).hexdigest(), len(body))
            blocks: builtins.list[BlobBlock] = []
            pending: builtins.list[Any] = []
            # Stage blocks in parallel, at most _STAGE_WINDOW in flight: a stream of any size is
            # held a few blocks at a time, and the network is kept busy while the next is hashed.
            with ThreadPoolExecutor(_STAGE_WINDOW, thread_name_prefix="dq-blob-stage") as pool:
                for number, chunk in enumerate(iter_chunks(data)):
                    digest.update(chunk)
                    size += len(chunk)
                    block_id = base64.b64encode(f"{number:08d}".encode()).decode()
                    pending.append(pool.submit(blob.stage_block, block_id, chunk, length=len(chunk)))
                    blocks.append(BlobBlock(block_id=block_id))
                    if len(pending) >= _STAGE_WINDOW:
                        pending.pop(0).result()
                for future in pending:
                    future.result()
            # Committing the block list is what makes the blob visible: all or nothing.
            blob.commit_block_list(blocks, content_settings=settings)
        except AzureError as exc:
            raise translate_azure_error(
                exc, f"write payload {name}", location=self._connection.display
            ) from (scrub_exception(exc))
        return PayloadInfo(self._uri(name), digest.hexdigest(), size)

    def read_chunks(self, uri: str) -> Iterator[bytes]:
        """The payload in ``CHUNK_SIZE`` ranges, all of the revision first seen (``If-Match``),
        the next range downloading while the consumer handles the current one (so at most two are
        held). The SDK's own download starts with one 32 MiB request, which a streaming reader must
        not have to hold.
        """
        name = self._require(uri)
        blob = self._container.get_blob_client(name)

        def fetch(offset: int, length: int, etag: str) -> bytes:
            chunk: bytes = blob.download_blob(
                offset=offset, length=length, etag=etag, match_condition=MatchConditions.IfNotModified
            ).readall()
            if len(chunk) != length:
                raise BackendUnavailableError(
                    f"read payload {name}: got {len(chunk)} of {length} bytes at offset {offset}"
                )
            return chunk

        try:
            props = blob.get_blob_properties()
            size, etag = int(props.size), str(props.etag)
            ranges = [(o, min(_READ_RANGE, size - o)) for o in range(0, size, _READ_RANGE)]
            if len(ranges) <= 1:
                if ranges:
                    yield fetch(ranges[0][0], ranges[0][1], etag)
                return
            with ThreadPoolExecutor(1, thread_name_prefix="dq-blob-read") as pool:
                ahead = pool.submit(fetch, ranges[0][0], ranges[0][1], etag)
                for offset, length in ranges[1:]:
                    current = ahead.result()
                    ahead = pool.submit(fetch, offset, length, etag)
                    yield current
                yield ahead.result()
        except ResourceNotFoundError as exc:
            if error_code(exc) == "ContainerNotFound":
                raise translate_azure_error(exc, f"read payload {name}") from scrub_exception(exc)
            raise NotFoundError(f"payload {name} is missing from {self._connection.display}") from exc
        except AzureError as exc:
            raise translate_azure_error(exc, f"read payload {name}") from scrub_exception(exc)

    def delete(self, uri: str) -> bool:
        name = self._require(uri)
        try:
            self._container.delete_blob(name)
        except ResourceNotFoundError as exc:
            if error_code(exc) == "ContainerNotFound":
                raise translate_azure_error(exc, f"delete payload {name}") from scrub_exception(exc)
            return False
        except AzureError as exc:
            raise translate_azure_error(exc, f"delete payload {name}") from scrub_exception(exc)
        return True

    def list(self, prefix: str = "") -> Iterator[PayloadListing]:
        try:
            for item in self._container.list_blobs(name_starts_with=self._prefix + prefix):
                name = str(item.name)
                if not name.rsplit("/", 1)[-1].startswith("result-"):
                    continue  # run records and index entries share the prefix: never list them
                yield PayloadListing(
                    self._uri(name), name[len(self._prefix) :], int(item.size), item.last_modified
                )
        except AzureError as exc:
            raise translate_azure_error(exc, f"list payloads {prefix}") from scrub_exception(exc)


def open_blob_payload_store(url: str, **options: Any) -> BlobPayloadStore:
    """A payload store at an ``azure-blob://`` URL with its own client (closed by ``close()``)."""
    return BlobPayloadStore(connect_container(url, **options), owns_connection=True)


# -- opening --------------------------------------------------------------------------------------


RESULTS_FOLDER = ".results"
"""Default results location of a Blob store: ``<prefix>/.results/`` in its own container (a
dot-folder: never taken for a tenant)."""
STORE_BLOB = ".dq-store.json"


def open_blob_backend(url: str, *, create: bool = True, **options: Any) -> Backend:
    """The four Blob stores on one shared container client: the metadata backend ``open_stores``
    uses for ``azure-blob://`` URLs (forms and options in ``dq_stores.blob_client``). The default
    results location is ``<prefix>/.results/`` in the same container, on the same client; payloads
    written beside the runs before store identities stay readable. A Blob store creates nothing
    when opened (``create`` is accepted for symmetry); a missing container is reported by the first
    call as ``StoreNotFoundError``.
    """
    del create
    connection = connect_container(url, **options)
    try:
        backend = BlobBackend(connection)
        default = BlobPayloadStore(connection, subfolder=RESULTS_FOLDER)
        return Backend(
            contracts=AzureBlobContractStore(backend),
            job_definitions=AzureBlobJobDefinitionStore(backend),
            action_profiles=AzureBlobActionProfileStore(backend),
            job_runs=AzureBlobJobRunStore(backend),
            url=redact(url),
            close=backend.close,
            list_scopes=lambda tenant, environment: backend.scopes(tenant, environment),
            default_results=lambda: default,
            legacy_results=[BlobPayloadStore(connection)],
        )
    except BaseException:
        connection.close()
        raise


def open_blob_stores(url: str, **options: Any) -> Stores:
    """``open_stores`` for an ``azure-blob://`` URL, ignoring the environment (kept for existing
    callers).
    """
    from dq_stores.stores import open_stores

    return open_stores(url, use_env=False, **options)
