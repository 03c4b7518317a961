"""Payloads in memory (``memory://`` results locations): for tests and one-process tools.

Each store is its own namespace of bytes, gone when the process ends; URIs are
``memory://<name>/<key>``. Writes are atomic (a payload is stored once it is complete).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlsplit

from dq_stores.errors import InvalidArtifactError, NotFoundError
from dq_stores.results.payloads import CHUNK_SIZE, PayloadInfo, PayloadListing, PayloadStore, iter_chunks

__all__ = ["MemoryPayloadStore", "open_memory_payloads"]

_STORES: dict[str, dict[str, tuple[bytes, datetime]]] = {}
_LOCK = threading.Lock()


class MemoryPayloadStore(PayloadStore):
    """Payloads in a dict shared by every store opened with the same ``memory://<name>`` in this
    process (so a test can reopen it); ``memory://`` alone is a fresh, private location.
    """

    def __init__(self, name: str | None = None) -> None:
        import uuid

        self.name = name or f"anonymous-{uuid.uuid4().hex[:12]}"
        with _LOCK:
            self._blobs = _STORES.setdefault(self.name, {})

    def __repr__(self) -> str:
        return f"MemoryPayloadStore({self.name!r})"

    @property
    def location(self) -> str:
        return f"memory://{self.name}"

    def _uri(self, key: str) -> str:
        return f"memory://{self.name}/{quote(key)}"

    def owns(self, uri: str) -> bool:
        parts = urlsplit(uri)
        return parts.scheme == "memory" and parts.netloc == self.name

    def key_of(self, uri: str) -> str:
        if not self.owns(uri):
            raise InvalidArtifactError(f"{uri!r} is not a payload of {self!r}", field="uri")
        return unquote(urlsplit(uri).path.lstrip("/"))

    def write(
        self,
        key: str,
        data: bytes | Iterable[bytes] | BinaryIO,
        *,
        content_type: str,
        sha256: str | None = None,
    ) -> PayloadInfo:
        segments = key.split("/")
        if not key or any(s in {"", ".", ".."} for s in segments):
            raise InvalidArtifactError(f"payload key {key[:80]!r} is not a relative path", field="key")
        body = b"".join(iter_chunks(data))  # complete before it is visible
        digest = sha256 if isinstance(data, bytes) and sha256 else hashlib.sha256(body).hexdigest()
        with _LOCK:
            self._blobs[key] = (body, datetime.now(UTC))
        return PayloadInfo(self._uri(key), digest, len(body))

    def read_chunks(self, uri: str) -> Iterator[bytes]:
        key = self.key_of(uri)
        with _LOCK:
            found = self._blobs.get(key)
        if found is None:
            raise NotFoundError(f"payload {key} is missing from {self.location}")
        body = found[0]
        for start in range(0, len(body), CHUNK_SIZE):
            yield body[start : start + CHUNK_SIZE]

    def delete(self, uri: str) -> bool:
        key = self.key_of(uri)
        with _LOCK:
            return self._blobs.pop(key, None) is not None

    def list(self, prefix: str = "") -> Iterator[PayloadListing]:
        with _LOCK:
            items = sorted((k, len(v[0]), v[1]) for k, v in self._blobs.items() if k.startswith(prefix))
        for key, size, modified in items:
            yield PayloadListing(self._uri(key), key, size, modified)


def open_memory_payloads(url: str, **options: Any) -> MemoryPayloadStore:
    """``memory://`` (fresh) or ``memory://<name>`` (shared by name in this process)."""
    if options:
        name = sorted(options)[0]
        raise InvalidArtifactError(f"unknown option {name!r} for a memory:// results location", field=name)
    return MemoryPayloadStore(urlsplit(url).netloc or None)
