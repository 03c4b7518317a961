"""Where large job-run results go: the claim check.

A result (a validation report, cleansing report, profiling snapshot, Parquet bytes or any JSON) is
kept inline in the metadata store when it is small and the backend can (SQL), and otherwise written
to a payload store (a local folder or Azure Blob) whose URI, sha256, size and content type the run
record keeps. Writes stream in chunks and hash on the way, so a 200 MB result never sits in memory
whole more than once. Order of writes makes a crash safe: payload first, record second; a payload
with no record is an orphan that ``gc`` removes after a grace period; a record never points to a
payload that was not completely written.

This module holds the payload stores and key layout; the run-record side is in
``dq_stores.base.JobRunStore`` (``put_result`` / ``get_result``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from dq_stores.errors import BackendUnavailableError, InvalidArtifactError, NotFoundError
from dq_stores.scope import Scope, validate_id

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_OFFLOAD_THRESHOLD",
    "FilePayloadStore",
    "PayloadInfo",
    "PayloadListing",
    "PayloadStore",
    "iter_chunks",
    "open_payload_store",
    "result_key",
]

DEFAULT_OFFLOAD_THRESHOLD = 256 * 1024
CHUNK_SIZE = 4 * 1024 * 1024

_EXTENSIONS = {
    "application/json": "json",
    "application/vnd.apache.parquet": "parquet",
    "text/csv": "csv",
}


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
    scope: Scope, job_id: str, sha256: str, content_type: str, *, namespace: str | None = None
) -> str:
    """``[<namespace>/]<tenant>/<environment>/job_runs/<job_id>/result-<sha256[:16]>.<ext>``; ids
    validated. The namespace is the writing store's identity (``JobRunStore.store_id``), so two
    stores sharing one results location never write, collect or delete each other's payloads.
    """
    validate_id(job_id, "job_id")
    ext = _EXTENSIONS.get(content_type, "bin")
    key = f"{scope.tenant}/{scope.environment}/job_runs/{job_id}/result-{sha256[:16]}.{ext}"
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


class FilePayloadStore(PayloadStore):
    """Payloads as files under a root folder: temp file in the same folder, fsync, rename.

    A temp file is named ``<final name>.<random>.part``: a writer killed mid-write leaves it
    behind, and since its name starts like a payload's, ``list`` yields it and ``gc_payloads``
    collects it (no record ever points at it) once it is older than the grace period.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"FilePayloadStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise InvalidArtifactError(f"payload key {key!r} escapes the results root", field="key")
        return path

    @property
    def location(self) -> str:
        return self.root.as_uri()

    def key_of(self, uri: str) -> str:
        if not self.owns(uri):
            raise InvalidArtifactError(f"{uri!r} is not a payload of {self!r}", field="uri")
        path = Path(unquote(urlsplit(uri).path)).resolve()
        return path.relative_to(self.root).as_posix()

    def owns(self, uri: str) -> bool:
        parts = urlsplit(uri)
        if parts.scheme != "file":
            return False
        return Path(unquote(parts.path)).resolve().is_relative_to(self.root)

    def write(
        self,
        key: str,
        data: bytes | Iterable[bytes] | BinaryIO,
        *,
        content_type: str,
        sha256: str | None = None,
    ) -> PayloadInfo:
        path = self._path(key)
        digest = hashlib.sha256()
        size = 0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".part")
            try:
                known = sha256 if isinstance(data, bytes) else None
                with os.fdopen(fd, "wb") as out:
                    for chunk in iter_chunks(data):
                        if known is None:
                            digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _fsync_dir(path.parent)
        except OSError as exc:
            raise BackendUnavailableError(f"cannot write payload {key}: {exc.strerror}") from exc
        return PayloadInfo(path.as_uri(), known or digest.hexdigest(), size)

    def read_chunks(self, uri: str) -> Iterator[bytes]:
        path = self._path(self.key_of(uri))
        try:
            handle = path.open("rb")
        except FileNotFoundError as exc:
            raise NotFoundError(f"payload {self.key_of(uri)} is missing from {self.root}") from exc
        except OSError as exc:
            raise BackendUnavailableError(f"cannot read payload: {exc.strerror}") from exc
        with handle:
            yield from iter_chunks(handle)

    def delete(self, uri: str) -> bool:
        path = self._path(self.key_of(uri))
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise BackendUnavailableError(f"cannot delete payload: {exc.strerror}") from exc
        return True

    def list(self, prefix: str = "") -> Iterator[PayloadListing]:
        """Payloads, and leftovers of interrupted writes (``*.part``, for ``gc_payloads``)."""
        # Start below the prefix's folder part: a namespace prefix never walks other stores'.
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self._path(folder) if folder else self.root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("result-*")):
            if not path.is_file():
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                stat = path.stat()
                yield PayloadListing(
                    path.as_uri(), key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)
                )


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_payload_store(url: str, **options: Any) -> PayloadStore:
    """``file:///abs/dir``, ``file://rel/dir`` or ``azure-blob://...`` (see ``dq_stores.blob``)."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = unquote((parts.netloc + parts.path) if parts.netloc else parts.path)
        return FilePayloadStore(path)
    if parts.scheme == "azure-blob":
        import importlib

        blob = importlib.import_module("dq_stores.blob")  # lazy: the Azure SDK is an extra
        store: PayloadStore = blob.open_blob_payload_store(url, **options)
        return store
    raise InvalidArtifactError(
        f"unsupported results_url scheme {parts.scheme!r} (use file:// or azure-blob://)", field="results_url"
    )
