"""Blob primitives of the Azure Blob backend: the one ``BlobBackend`` (container and prefix)
shared by the four stores, and the base of those stores.

What lives here: single-blob reads and conditional writes with Azure errors translated, lazy
listings, delimiter listings of scopes, the store identity blob, and a small thread pool for
parallel downloads. What must not: the write protocols of the stores (``dq_stores.blob.versioned``,
``dq_stores.blob.runs``), blob names (``dq_stores.blob.layout``), connecting
(``dq_stores.blob.client``). Every write that replaces something takes the etag it replaces
(``If-Match``), every create is ``If-None-Match: *``; a failed condition is ``ConflictError``.
"""

from __future__ import annotations

import builtins
import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError
from azure.storage.blob import BlobProperties, ContentSettings

from dq_stores.blob.client import BlobConnection, connect_container
from dq_stores.blob.errors import blob_missing, scrub_exception, translate_azure_error
from dq_stores.blob.layout import STORE_BLOB, BlobLayout, unseg
from dq_stores.errors import ConflictError, InvalidArtifactError, NotFoundError
from dq_stores.kinds import Kind
from dq_stores.scope import Scope, validate_id

__all__ = ["LIST_PAGE", "Blob", "BlobBackend", "BlobStoreBase", "Head", "KnownHeads", "now", "required"]

R = TypeVar("R")
X = TypeVar("X")

LIST_PAGE = 5000
"""Azure's maximum page of a blob listing."""

_worker = threading.local()
"""``active`` is true in a pool thread: ``map`` runs inline there (waiting could deadlock)."""


@dataclass(frozen=True)
class Blob:
    name: str
    content: bytes
    etag: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class Head:
    name: str
    etag: str
    metadata: dict[str, str]


class KnownHeads:
    """The metadata of blob revisions this process has seen, by (blob name, etag): a bounded,
    thread-safe LRU map.

    Sound because a blob's etag changes with every write, metadata included: the metadata of a
    given (name, etag) never changes. A writer that then writes conditionally on that etag
    (``If-Match``) either writes over exactly that revision or fails, so it may decide from these
    metadata instead of asking the service again.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, str], dict[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, etag: str) -> Head | None:
        with self._lock:
            metadata = self._items.get((name, etag))
            if metadata is None:
                return None
            self._items.move_to_end((name, etag))
        return Head(name, etag, dict(metadata))

    def add(self, name: str, etag: str, metadata: dict[str, str]) -> None:
        with self._lock:
            self._items[(name, etag)] = dict(metadata)
            self._items.move_to_end((name, etag))
            while len(self._items) > self._size:
                self._items.popitem(last=False)


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
    def get(self, name: str) -> Blob | None:
        """Download a blob; ``None`` if it does not exist."""
        try:
            downloader = self.container.download_blob(name)
            content = downloader.readall()
        except AzureError as exc:
            if blob_missing(exc):
                return None
            raise self._fail(exc, f"read {name}") from exc
        props = downloader.properties
        return Blob(name, bytes(content), str(props.etag), dict(props.metadata or {}))

    def head(self, name: str) -> Head | None:
        try:
            props = self.container.get_blob_client(name).get_blob_properties()
        except AzureError as exc:
            if blob_missing(exc):
                return None
            raise self._fail(exc, f"read {name}") from exc
        return Head(name, str(props.etag), dict(props.metadata or {}))

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
        except AzureError as exc:
            if etag is not None and blob_missing(exc):
                raise ConflictError(f"write {name}: it was deleted meanwhile") from exc
            raise self._fail(exc, f"write {name}") from exc
        return str(result["etag"])

    def set_metadata(self, name: str, metadata: dict[str, str], *, etag: str) -> str:
        try:
            result = self.container.get_blob_client(name).set_blob_metadata(
                metadata, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except AzureError as exc:
            if blob_missing(exc):
                raise NotFoundError(f"write {name}: not found") from exc
            raise self._fail(exc, f"write {name}") from exc
        return str(result["etag"])

    def delete(self, name: str, *, etag: str | None = None) -> bool:
        """Delete a blob; ``False`` if it did not exist; a stale ``etag`` raises ``ConflictError``."""
        kwargs: dict[str, Any] = {}
        if etag is not None:
            kwargs = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
        try:
            self.container.delete_blob(name, **kwargs)
        except AzureError as exc:
            if blob_missing(exc):
                return False
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
        tenants = [tenant] if tenant is not None else self.ids(self.layout.prefix, "tenant")
        for t in tenants:
            envs = self.ids(self.layout.tenant(t), "environment")
            for e in envs:
                if environment is not None and e != environment:
                    continue
                scope = Scope(t, e)
                if kind is None or kind in self.child_prefixes(self.layout.scope(scope)):
                    found.append(scope)
        return found

    def ids(self, prefix: str, what: str) -> builtins.list[str]:
        ids = []
        for segment in self.child_prefixes(prefix):
            try:
                ids.append(validate_id(unseg(segment), what))
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

    def fetch_many(self, names: Sequence[str]) -> builtins.list[Blob | None]:
        return self.map(self.get, names)


def required(name: str, metadata: dict[str, str], key: str) -> str:
    """A metadata value every blob dq_stores writes carries; its absence means a foreign blob."""
    value = metadata.get(key)
    if value is None:
        raise InvalidArtifactError(
            f"blob {name} was not written by dq_stores (metadata {key!r} is missing)", field=key
        )
    return value


def now() -> datetime:
    """The current UTC time (one place, so revision and record times agree)."""
    return datetime.now(UTC)


class BlobStoreBase:
    """What the four Blob stores share: their backend (owned when opened with ``from_url``)."""

    def __init__(self, backend: BlobBackend, *, owns_backend: bool = False) -> None:
        self._backend = backend
        self._owns_backend = owns_backend

    @classmethod
    def from_url(cls, url: str | None = None, **options: Any) -> Self:
        """A store with its own client (closed by ``close()``); URL forms and options in
        ``dq_stores.blob.client``.
        """
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
