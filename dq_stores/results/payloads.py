"""Payload stores: where large job-run results go (the claim check's storage side).

A result (a validation report, cleansing report, profiling snapshot, Parquet bytes or any JSON) is
kept inline in the metadata store when it is small and the backend can (SQL), and otherwise written
to a payload store (a local folder or Azure Blob) whose URI, sha256, size and content type the run
record keeps. Writes stream in chunks and hash on the way, so a 200 MB result never sits in memory
whole more than once. Order of writes makes a crash safe: payload first, record second; a payload
with no record is an orphan that ``gc`` removes after a grace period; a record never points to a
payload that was not completely written.

This module holds the payload store interface and the key layout; the file, memory and Blob
payload stores implement it (``dq_stores.results.files``, ``.memory``, ``dq_stores.blob.payloads``),
``dq_stores.results.store.ResultStore`` uses it, ``dq_stores.stores`` opens one from a URL.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from dq_stores.errors import InvalidArtifactError
from dq_stores.models.reports import result_extension
from dq_stores.scope import Scope, validate_id

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_OFFLOAD_THRESHOLD",
    "PayloadInfo",
    "PayloadListing",
    "PayloadStore",
    "iter_chunks",
    "parse_result_key",
    "result_key",
]

DEFAULT_OFFLOAD_THRESHOLD = 256 * 1024
CHUNK_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True)
class PayloadInfo:
    uri: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class PayloadListing:
    uri: str
    key: str
    size_bytes: int
    modified: datetime


def result_key(
    scope: Scope, job_id: str, token: str, content_type: str, *, namespace: str | None = None
) -> str:
    """``[<namespace>/]<tenant>/<environment>/job_runs/<job_id>/result-<token[:16]>.<ext>``; ids
    validated. ``token``: 16 or more hex digits, random for the payloads ``put_result`` writes
    (older versions used the content's sha256). The namespace is the writing store's identity (``JobRunStore.store_id``), so two
    stores sharing one results location never write, collect or delete each other's payloads.
    """
    validate_id(job_id, "job_id")
    ext = result_extension(content_type)
    key = f"{scope.tenant}/{scope.environment}/job_runs/{job_id}/result-{token[:16]}.{ext}"
    if namespace is not None:
        key = f"{validate_id(namespace, 'store_id')}/{key}"
    return key


def parse_result_key(key: str, namespace: str | None = None) -> tuple[Scope, str] | None:
    """(scope, job_id) of a key written by ``result_key`` (with ``namespace``, only keys under
    it); ``None`` for anything else.
    """
    if namespace is not None:
        if not key.startswith(f"{namespace}/"):
            return None
        key = key[len(namespace) + 1 :]
    parts = key.split("/")
    if len(parts) != 5 or parts[2] != "job_runs" or not parts[4].startswith("result-"):
        return None
    try:
        return Scope(parts[0], parts[1]), validate_id(parts[3], "job_id")
    except InvalidArtifactError:
        return None


def iter_chunks(data: bytes | Iterable[bytes] | BinaryIO, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Chunks of ``data`` (bytes, an iterable of bytes, or a binary file object) of ``size``
    bytes (the last may be shorter). Small pieces of an iterable are joined: a generator of CSV
    lines must not become one Blob block (one request, of at most 50,000 per blob) per line.
    Pieces already ``size`` or larger pass through as they are, without a copy.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        view = memoryview(data)
        for start in range(0, len(view), size):
            yield bytes(view[start : start + size])
        return
    if hasattr(data, "read"):
        while chunk := data.read(size):
            yield chunk
        return
    pending = bytearray()
    for piece in data:
        if not isinstance(piece, bytes | bytearray | memoryview):
            raise InvalidArtifactError(
                f"a result stream must yield bytes, got {type(piece).__name__}", field="result"
            )
        if not pending and len(piece) >= size:
            yield bytes(piece)
            continue
        pending += piece
        if len(pending) >= size:
            yield bytes(pending)
            pending.clear()
    if pending:
        yield bytes(pending)


class PayloadStore(ABC):
    """A place for result payloads, addressed by key; returns URIs the run record keeps."""

    @abstractmethod
    def write(
        self,
        key: str,
        data: bytes | Iterable[bytes] | BinaryIO,
        *,
        content_type: str,
        sha256: str | None = None,
    ) -> PayloadInfo:
        """Write all of ``data`` under ``key`` atomically (complete or absent); hash while writing.

        ``sha256`` is the caller's hash of ``data`` when ``data`` is bytes it has just hashed (it is
        trusted, so the bytes are not hashed twice); ignored for streams.
        """

    @abstractmethod
    def read_chunks(self, uri: str) -> Iterator[bytes]:
        """Stream a payload; ``NotFoundError`` if absent."""

    @abstractmethod
    def delete(self, uri: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[PayloadListing]:
        """Every payload whose key starts with ``prefix``."""

    @abstractmethod
    def owns(self, uri: str) -> bool:
        """Whether ``uri`` points into this store."""

    @abstractmethod
    def key_of(self, uri: str) -> str:
        """The key of a URI this store ``owns`` (``InvalidArtifactError`` otherwise)."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where this store keeps payloads, as a URL with any secret redacted (for messages)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients."""
