"""Result payloads on Azure Blob Storage: ``BlobPayloadStore`` and ``open_blob_payload_store``
(the ``azure-blob`` entry of the results table in ``dq_stores.stores``).

What lives here: writing a payload as one Put Blob (bytes in memory) or as blocks staged in
parallel and committed in one request (streams), so a payload is complete or absent; ranged
reads pinned to one revision; listing and deleting payloads. What must not: the stores' blobs or
their layout (a payload store only ever lists ``result-*`` names), the claim-check rules
(``dq_stores.results.store``).
"""

from __future__ import annotations

import base64
import builtins
import hashlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import AzureError
from azure.storage.blob import BlobBlock, ContentSettings

from dq_stores.blob.client import BlobConnection, connect_container
from dq_stores.blob.errors import blob_missing, scrub_exception, translate_azure_error
from dq_stores.errors import BackendUnavailableError, InvalidArtifactError, NotFoundError
from dq_stores.results.payloads import PayloadInfo, PayloadListing, PayloadStore, iter_chunks
from dq_stores.secrets import redact

__all__ = ["BlobPayloadStore", "open_blob_payload_store"]

_SINGLE_PUT_LIMIT = 64 * 1024 * 1024
"""Bytes up to this size go in one Put Blob (the service allows 5,000 MiB; the SDK's default is 64)."""
_READ_RANGE = 8 * 1024 * 1024
"""Bytes per ranged read; two are held at a time (the current one and the one downloading)."""
_HASH_ASIDE = 1024 * 1024
"""Bytes from which a payload's sha256 is computed in another thread during its upload."""
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
                # is several times faster than staging blocks, and just as atomic. The hash runs
                # on another core meanwhile (hashlib releases the GIL): sequential, it cost a
                # third of the upload's time.
                body = bytes(data)
                if sha256 is not None or len(body) < _HASH_ASIDE:
                    blob.upload_blob(body, length=len(body), overwrite=True, content_settings=settings)
                    return PayloadInfo(self._uri(name), sha256 or hashlib.sha256(body).hexdigest(), len(body))
                with ThreadPoolExecutor(1, thread_name_prefix="dq-blob-hash") as pool:
                    hashed = pool.submit(lambda: hashlib.sha256(body).hexdigest())
                    blob.upload_blob(body, length=len(body), overwrite=True, content_settings=settings)
                    return PayloadInfo(self._uri(name), hashed.result(), len(body))
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
        except AzureError as exc:
            if blob_missing(exc):
                raise NotFoundError(f"payload {name} is missing from {self._connection.display}") from exc
            raise translate_azure_error(
                exc, f"read payload {name}", location=self._connection.display
            ) from scrub_exception(exc)

    def delete(self, uri: str) -> bool:
        name = self._require(uri)
        try:
            self._container.delete_blob(name)
        except AzureError as exc:
            if blob_missing(exc):
                return False
            raise translate_azure_error(
                exc, f"delete payload {name}", location=self._connection.display
            ) from scrub_exception(exc)
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
            raise translate_azure_error(
                exc, f"list payloads {prefix}", location=self._connection.display
            ) from scrub_exception(exc)


def open_blob_payload_store(url: str, **options: Any) -> BlobPayloadStore:
    """A payload store at an ``azure-blob://`` URL with its own client (closed by ``close()``)."""
    return BlobPayloadStore(connect_container(url, **options), owns_connection=True)
